//! `POST /_keyhold/reset`: empties every resource in one call, for per-test isolation
//! (what LocalStack's state reset gives its users).
//!
//! Dev mode only: in strict mode the endpoint answers 403 and changes nothing. In dev mode
//! any caller could act as any account's root anyway, so the endpoint asks for no
//! signature; it refuses requests that carry an `Origin` header, so that a web page the
//! developer visits cannot wipe the local server with a cross-site form post.
//!
//! What is erased: KMS keys (with their materials, aliases, tags, grants), secrets,
//! parameters, IAM users, roles, access keys and STS sessions. What stays: the seal (domain
//! key) and the audit trail, which is append-only by design; the reset itself is logged.
//! `?reseed=true` applies the server's seed file again afterwards.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::config::Mode;
use crate::http::AppState;

pub const PATH: &str = "/_keyhold/reset";

pub async fn handle(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if state.mode != Mode::Dev {
        return refuse(
            StatusCode::FORBIDDEN,
            "POST /_keyhold/reset is served only in dev mode; this server runs in strict mode",
        );
    }
    if headers.contains_key(header::ORIGIN) {
        return refuse(
            StatusCode::FORBIDDEN,
            "POST /_keyhold/reset refuses requests from web pages (an Origin header)",
        );
    }
    let reseed = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .any(|(name, value)| name == "reseed" && value == "true");
    let deleted = match reset(&state).await {
        Ok(deleted) => deleted,
        Err(e) => {
            tracing::error!(error = %e, "reset failed");
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the reset failed; see the server log",
            );
        }
    };
    tracing::warn!(deleted_rows = deleted, "reset: every resource was erased");
    let mut body = serde_json::json!({"reset": true, "deletedRows": deleted});
    if reseed {
        let Some(seed) = state.ops.seed.clone() else {
            return refuse(
                StatusCode::BAD_REQUEST,
                "reseed=true, but the server was started without --seed",
            );
        };
        match super::seed::apply(&state, &seed, &state.ops.default_account).await {
            Ok(applied) => body["seeded"] = applied.created.into(),
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "reseeding after the reset failed");
                return refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the state was reset, but applying the seed file failed; see the server log",
                );
            }
        }
    }
    json(StatusCode::OK, body)
}

/// Erases every resource while no service writes: the services' write locks are taken
/// outermost first (Parameter Store and Secrets Manager call KMS while holding theirs).
pub async fn reset(state: &AppState) -> anyhow::Result<usize> {
    let _ssm = state.ssm.lock_writes().await;
    let _secrets = state.secrets.lock_writes().await;
    let _iam = state.iam.lock_writes().await;
    let _kms = state.kms.lock_writes().await;
    let deleted = state.ops.store.erase_resources().await?;
    state.ssm.forget_all();
    state.secrets.forget_all();
    state.iam.forget_all();
    state.kms.forget_all();
    Ok(deleted)
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let code = match status {
        StatusCode::FORBIDDEN => "AccessDeniedException",
        StatusCode::BAD_REQUEST => "ValidationException",
        _ => "InternalFailure",
    };
    json(
        status,
        serde_json::json!({"__type": code, "message": message}),
    )
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
