//! `GET /health/live` and `GET /health/ready`, on the service listener and on the
//! metrics listener.
//!
//! - live: the process answers HTTP (200 always): restart it when this fails.
//! - ready: it can serve calls (200) or not (503): the store answers a read, the audit
//!   trail can be written, and every [`ReadyCheck`] registered with [`super::Ops`] passes
//!   (the seal adds one: sealed means not ready). Take it out of the load balancer when
//!   this fails.
//!
//! Both answer JSON and need no credentials: they say nothing but the names of the checks
//! and why one fails (never a key, a secret or a path).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::config::Mode;
use crate::http::AppState;

pub const LIVE: &str = "/health/live";
pub const READY: &str = "/health/ready";

/// A condition of readiness another part of the server contributes (the seal: "unsealed").
pub trait ReadyCheck: Send + Sync {
    /// The check's name in `/health/ready`'s answer.
    fn name(&self) -> &'static str;
    /// `Err(reason)` while the server is not ready.
    fn check(&self) -> Result<(), String>;
}

/// The outcome of every check, by name: `"ok"` or the reason it fails.
pub type Checks = Map<String, Value>;

/// Runs every readiness check; `Err` when one fails.
pub async fn readiness(state: &AppState) -> Result<Checks, Checks> {
    let mut checks = Checks::new();
    let mut ready = true;
    let mut note = |name: &str, result: Result<(), String>| {
        ready &= result.is_ok();
        let value = result.map_or_else(Value::String, |()| Value::from("ok"));
        checks.insert(name.to_owned(), value);
    };
    let store = state
        .ops
        .store
        .get_meta("health.probe")
        .await
        .map(|_| ())
        .map_err(|_| "the store cannot be read".to_owned());
    note("store", store);
    note("audit", state.trail.health().error().map_or(Ok(()), Err));
    for check in &state.ops.ready_checks {
        note(check.name(), check.check());
    }
    if ready { Ok(checks) } else { Err(checks) }
}

pub async fn live(State(state): State<Arc<AppState>>) -> Response {
    json(
        StatusCode::OK,
        json!({"status": "live", "mode": mode(&state)}),
    )
}

pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let (status, word, checks) = match readiness(&state).await {
        Ok(checks) => (StatusCode::OK, "ready", checks),
        Err(checks) => (StatusCode::SERVICE_UNAVAILABLE, "not ready", checks),
    };
    state.ops.metrics.set_ready(status == StatusCode::OK);
    json(
        status,
        json!({"status": word, "mode": mode(&state), "checks": checks}),
    )
}

fn mode(state: &AppState) -> &'static str {
    match state.mode {
        Mode::Dev => "dev",
        Mode::Strict => "strict",
    }
}

fn json(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
