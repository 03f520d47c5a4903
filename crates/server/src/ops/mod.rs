//! What operators and test suites use beside the AWS APIs.
//!
//! - [`seed`]: `keyhold serve --seed FILE` (YAML or JSON) creates keys (with fixed ids and,
//!   in dev mode only, fixed key material), aliases, secrets, parameters and IAM users with
//!   fixed access keys, through the same operations a client would call.
//! - [`reset`]: `POST /_keyhold/reset` (dev mode only) empties every resource in one call,
//!   for per-test isolation.
//! - [`backup`]: `keyhold backup` / `keyhold restore` (online snapshot, checked restore).
//! - [`move_store`]: `keyhold migrate-store` (a node's state into another store, verified).
//! - [`quotas`]: AWS's request quotas (token buckets; `ThrottlingException`).
//! - [`metrics`]: Prometheus metrics on their own listener (`metrics_listen`).
//! - [`health`]: `/health/live` and `/health/ready`, with [`health::ReadyCheck`] for other
//!   parts of the server (the seal) to add conditions of readiness.
//!
//! None of these endpoints is an AWS operation; each decides on its own who may call it
//! (documented in docs/operations.md).

pub mod backup;
pub mod health;
pub mod metrics;
pub mod move_store;
pub mod quotas;
pub mod reset;
pub mod seed;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::http::AppState;

/// The operator features' share of the server state.
pub struct Ops {
    /// The seed file the server started with (`reset?reseed=true` applies it again).
    pub seed: Option<Arc<seed::SeedFile>>,
    /// The account of seeded resources that do not name one.
    pub default_account: String,
    /// The store the services share (for the reset and the readiness check).
    pub store: Arc<dyn keyhold_store::Store>,
    pub metrics: Arc<metrics::Metrics>,
    /// `None` when request quotas are off.
    pub quotas: Option<std::sync::Arc<quotas::Quotas>>,
    /// Conditions of readiness beside the store and the audit trail (the seal's).
    pub ready_checks: Vec<Arc<dyn health::ReadyCheck>>,
}

/// The non-AWS endpoints of the service listener, merged into the server's router.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(reset::PATH, post(reset::handle))
        .route(health::LIVE, get(health::live))
        .route(health::READY, get(health::ready))
}

/// The metrics listener's router: `/metrics` and the health checks, nothing else.
pub fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics::handle))
        .route(health::LIVE, get(health::live))
        .route(health::READY, get(health::ready))
        .with_state(state)
}
