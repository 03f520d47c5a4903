//! The seal gate: what stands between the listener and the services. While sealed it
//! answers every API call with `ServiceUnavailable` (503); unsealed, it hands requests to
//! the services built around the domain key. It serves the seal administration endpoints
//! either way:
//!
//! | endpoint | | |
//! |---|---|---|
//! | `GET /_keyhold/seal/status` | open | `{"sealed", "kind", "threshold", "shares", "progress"}` |
//! | `POST /_keyhold/seal/unseal` | admin | body: one share (Shamir) or empty (other seals) |
//! | `POST /_keyhold/seal/seal` | admin | drops the domain key and every unsealed key |
//!
//! "admin": the request must come from a loopback address and carry the header
//! `X-Keyhold-Admin-Token` with the token the server wrote at start to
//! `<data_dir>/admin.token` (mode 0600, a fresh random value every start). Whoever can read
//! that file can read the database too; nobody else, and nobody remote, can seal the server
//! or disturb an unseal in progress. The status endpoint shows nothing secret.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use keyhold_store::Store;
use tokio::sync::{Mutex, watch};
use zeroize::Zeroizing;

use crate::clock::Clock;
use crate::config::{Config, SealConfig};
use crate::http::AppState;
use crate::seal::{ShamirUnseal, UnsealError, UnsealStep};

/// The header carrying the admin token.
pub const ADMIN_TOKEN_HEADER: &str = "x-keyhold-admin-token";
pub const STATUS_PATH: &str = "/_keyhold/seal/status";
pub const UNSEAL_PATH: &str = "/_keyhold/seal/unseal";
pub const SEAL_PATH: &str = "/_keyhold/seal/seal";
/// The longest request body the unseal endpoint reads (a share is under 100 bytes).
const MAX_SHARE_BODY: usize = 1024;

/// An unsealed server's services, their router and background sweep.
struct Live {
    state: Arc<AppState>,
    router: Router,
    metrics_router: Router,
    stop: watch::Sender<bool>,
    sweeper: tokio::task::JoinHandle<()>,
}

/// Holds the services while unsealed, and the unseal progress while sealed.
pub struct SealGate {
    config: Config,
    store: Arc<dyn Store>,
    clock: Clock,
    /// Where rotation functions call back into this server.
    endpoint: String,
    metrics: Arc<crate::ops::metrics::Metrics>,
    token: Zeroizing<String>,
    live: RwLock<Option<Arc<Live>>>,
    /// Serializes seal and unseal; holds the shares entered so far.
    progress: Mutex<ShamirUnseal>,
}

impl SealGate {
    /// A gate, unsealed with `state` or sealed without; writes a fresh admin token.
    pub(crate) fn new(
        config: Config,
        store: Arc<dyn Store>,
        clock: Clock,
        state: Option<Arc<AppState>>,
        endpoint: String,
        metrics: Arc<crate::ops::metrics::Metrics>,
    ) -> anyhow::Result<Arc<Self>> {
        let token = write_admin_token(&config)?;
        let gate = Arc::new(Self {
            live: RwLock::new(state.map(|state| Arc::new(Self::go_live(&config, state)))),
            config,
            store,
            clock,
            endpoint,
            metrics,
            token,
            progress: Mutex::new(ShamirUnseal::default()),
        });
        if gate.is_sealed() {
            tracing::warn!(
                "Keyhold is SEALED: API calls are refused until operators enter enough shares \
                 (keyhold unseal --config FILE)"
            );
        }
        Ok(gate)
    }

    fn go_live(config: &Config, state: Arc<AppState>) -> Live {
        let (stop, sweeper) = crate::server::start_sweep(&state, config.deletion_sweep_interval);
        Live {
            router: crate::http::router(state.clone()),
            metrics_router: crate::ops::metrics_router(state.clone()),
            state,
            stop,
            sweeper,
        }
    }

    pub fn is_sealed(&self) -> bool {
        self.current().is_none()
    }

    fn current(&self) -> Option<Arc<Live>> {
        self.live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Seals: stops the sweep and the audit writer and drops the services, with them the
    /// domain key and every cache of unsealed keys (zeroized on drop; requests in flight
    /// finish first, holding their reference). Returns whether it was unsealed.
    pub async fn seal(&self) -> bool {
        let mut progress = self.progress.lock().await;
        progress.reset();
        let taken = self
            .live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(live) = taken else {
            return false;
        };
        Self::stop(live).await;
        tracing::warn!("Keyhold is SEALED: the domain key and all unsealed keys were dropped");
        true
    }

    async fn stop(live: Arc<Live>) {
        let _ = live.stop.send(true);
        let trail = live.state.trail.clone();
        // The sweeper's handle is awaited through the last reference; the others finish
        // with their requests.
        match Arc::try_unwrap(live) {
            Ok(live) => {
                let _ = live.sweeper.await;
            }
            Err(live) => {
                live.sweeper.abort();
            }
        }
        trail.shutdown().await;
    }

    /// At server shutdown.
    pub(crate) async fn close(&self) {
        let taken = self
            .live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(live) = taken {
            Self::stop(live).await;
        }
    }

    /// The status document (also the body of every admin answer).
    async fn status(&self) -> serde_json::Value {
        let sealed = self.is_sealed();
        let mut status = serde_json::json!({
            "sealed": sealed,
            "kind": crate::seal::kind_name(&self.config),
        });
        if matches!(self.config.seal, Some(SealConfig::Shamir)) {
            if let Ok(set) = crate::seal::shamir_set(self.store.as_ref()).await {
                status["threshold"] = set.threshold.into();
                status["shares"] = set.shares.into();
            }
            status["progress"] = self.progress.lock().await.progress().into();
        }
        status
    }

    /// Enters a share (Shamir) or reopens the seal (other kinds).
    async fn unseal(&self, share: &str) -> Result<&'static str, (StatusCode, String)> {
        let mut progress = self.progress.lock().await;
        if !self.is_sealed() {
            return Ok("Keyhold is already unsealed.");
        }
        let domain = if matches!(self.config.seal, Some(SealConfig::Shamir)) {
            match progress.enter(self.store.as_ref(), share).await {
                Ok(UnsealStep::Progress { .. }) => return Ok("Share accepted."),
                Ok(UnsealStep::Unsealed(domain)) => domain,
                Err(UnsealError::Malformed) => {
                    return Err((
                        StatusCode::BAD_REQUEST,
                        "That is not a Keyhold root key share (malformed, mistyped or \
                         truncated); progress is kept."
                            .into(),
                    ));
                }
                Err(UnsealError::Duplicate) => {
                    return Err((
                        StatusCode::BAD_REQUEST,
                        "This share was already entered; progress is kept.".into(),
                    ));
                }
                Err(UnsealError::WrongSet) => {
                    tracing::warn!("unseal failed: the shares entered do not rebuild the root key");
                    return Err((
                        StatusCode::BAD_REQUEST,
                        "The shares entered do not rebuild the root key (a wrong share, or \
                         shares of different sets): unseal progress was reset; enter the \
                         shares again."
                            .into(),
                    ));
                }
                Err(UnsealError::Store(e)) => {
                    tracing::error!(error = format!("{e:#}"), "unseal: the store failed");
                    return Err((
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "The key store could not be read.".into(),
                    ));
                }
            }
        } else {
            match crate::seal::open(&self.config, self.store.as_ref()).await {
                Ok(Some(domain)) => domain,
                Ok(None) => return Err((StatusCode::CONFLICT, "The seal did not open.".into())),
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "unseal failed");
                    return Err((StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")));
                }
            }
        };
        let (state, _) = crate::server::unsealed_state(
            &self.config,
            self.store.clone(),
            domain,
            self.clock.clone(),
            false,
            &self.endpoint,
            &self.metrics,
        )
        .await
        .map_err(|e| {
            tracing::error!(
                error = format!("{e:#}"),
                "starting the services after unseal failed"
            );
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("The seal opened but the services did not start: {e:#}"),
            )
        })?;
        *self
            .live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(Arc::new(Self::go_live(&self.config, state)));
        tracing::info!("Keyhold is unsealed");
        Ok("Keyhold is unsealed.")
    }

    /// Why the caller may not administer the seal, if it may not.
    fn authorized(&self, peer: SocketAddr, headers: &HeaderMap) -> Result<(), &'static str> {
        if !peer.ip().is_loopback() {
            return Err("The seal is administered from the server's own host (loopback) only.");
        }
        let given = headers
            .get(ADMIN_TOKEN_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if aws_lc_rs::constant_time::verify_slices_are_equal(given, self.token.as_bytes()).is_err()
        {
            return Err(
                "Missing or wrong admin token (the server writes it to <data_dir>/admin.token at start).",
            );
        }
        Ok(())
    }
}

/// A fresh random token in `<data_dir>/admin.token` (0600).
fn write_admin_token(config: &Config) -> anyhow::Result<Zeroizing<String>> {
    let random = keyhold_crypto::SecretBytes::random(32)?;
    let token = Zeroizing::new(hex::encode(random.expose_secret()));
    let path = config.admin_token_path();
    crate::data_dir::create_private_file(&path)?;
    std::fs::write(&path, format!("{}\n", token.as_str()))
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    Ok(token)
}

/// What answers the listener's requests. An AWS API request (any path outside `/_keyhold/`
/// and `/health/`) goes straight to its handler, or gets the sealed answer: past the
/// routers, whose per-request layers (a boxed service cloned and a future boxed per layer,
/// the peer's address and the metrics' tag in extension maps) were about a fifth of a
/// Decrypt's allocations in the request workers (docs/performance.md). Everything else goes
/// through [`router`]: the seal endpoints, then the services' own routes.
#[derive(Clone)]
pub(crate) struct Front {
    gate: Arc<SealGate>,
    router: Router,
}

impl Front {
    pub(crate) fn new(gate: Arc<SealGate>) -> Self {
        Self {
            router: router(gate.clone()),
            gate,
        }
    }
}

impl crate::transport::Front for Front {
    fn answer(
        &self,
        request: Request,
        peer: SocketAddr,
    ) -> impl Future<Output = Response> + Send + use<> {
        use futures_util::future::Either;
        if routed(request.uri().path()) {
            return Either::Left(self.router.answer(request, peer));
        }
        let live = self.gate.current();
        Either::Right(async move {
            match live {
                Some(live) => crate::http::serve_api(&live.state, peer, request).await,
                None => crate::http::sealed_response(request.headers()),
            }
        })
    }
}

/// Whether a path goes through the routers: every route of [`router`] and of
/// `http::router` is under one of these prefixes (a test pins it).
fn routed(path: &str) -> bool {
    path.starts_with("/_keyhold/") || path.starts_with("/health/")
}

/// The listener's router: the seal endpoints, then the services (or the sealed answer).
pub(crate) fn router(gate: Arc<SealGate>) -> Router {
    Router::new()
        .route(STATUS_PATH, get(status))
        .route(UNSEAL_PATH, post(unseal))
        .route(SEAL_PATH, post(seal))
        .fallback(forward)
        .with_state(gate)
}

/// The metrics listener's router: `/metrics` and the health checks of the live services.
/// While sealed only liveness answers yes; readiness and metrics answer 503.
pub(crate) fn metrics_router(gate: Arc<SealGate>) -> Router {
    Router::new().fallback(forward_metrics).with_state(gate)
}

async fn forward_metrics(State(gate): State<Arc<SealGate>>, request: Request) -> Response {
    let router = gate.current().map(|live| live.metrics_router.clone());
    drop(gate);
    match router {
        Some(mut router) => match tower_service::Service::call(&mut router, request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        None if request.uri().path() == crate::ops::health::LIVE => StatusCode::OK.into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "sealed").into_response(),
    }
}

async fn forward(State(gate): State<Arc<SealGate>>, request: Request) -> Response {
    let router = gate.current().map(|live| live.router.clone());
    drop(gate);
    match router {
        Some(mut router) => match tower_service::Service::call(&mut router, request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        None => crate::http::sealed_response(request.headers()),
    }
}

async fn status(State(gate): State<Arc<SealGate>>) -> Response {
    json(StatusCode::OK, gate.status().await)
}

async fn unseal(
    State(gate): State<Arc<SealGate>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(denied) = gate.authorized(peer, &headers) {
        return admin_error(StatusCode::FORBIDDEN, denied);
    }
    if body.len() > MAX_SHARE_BODY {
        return admin_error(StatusCode::PAYLOAD_TOO_LARGE, "A share is under 100 bytes.");
    }
    let share = Zeroizing::new(String::from_utf8_lossy(&body).into_owned());
    let result = gate.unseal(&share).await;
    let mut status = gate.status().await;
    match result {
        Ok(message) => {
            status["message"] = message.into();
            json(StatusCode::OK, status)
        }
        Err((code, message)) => {
            status["error"] = message.into();
            json(code, status)
        }
    }
}

async fn seal(
    State(gate): State<Arc<SealGate>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(denied) = gate.authorized(peer, &headers) {
        return admin_error(StatusCode::FORBIDDEN, denied);
    }
    let was_unsealed = gate.seal().await;
    let mut status = gate.status().await;
    status["message"] = if was_unsealed {
        "Keyhold is sealed."
    } else {
        "Keyhold was already sealed."
    }
    .into();
    json(StatusCode::OK, status)
}

fn admin_error(code: StatusCode, message: &str) -> Response {
    json(code, serde_json::json!({ "error": message }))
}

fn json(code: StatusCode, body: serde_json::Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_of_the_listener_is_routed_and_an_api_path_is_not() {
        let routes = [
            STATUS_PATH,
            UNSEAL_PATH,
            SEAL_PATH,
            crate::http::HEALTH_PATH,
            crate::ops::reset::PATH,
            crate::ops::health::LIVE,
            crate::ops::health::READY,
        ];
        for path in routes {
            assert!(routed(path), "{path}");
        }
        for path in ["/", "/elsewhere", "/_keyhold", "/health"] {
            assert!(!routed(path), "{path}");
        }
    }
}
