//! Prometheus metrics (`GET /metrics` on the `metrics_listen` address), through the
//! `prometheus-client` crate: one registry per server, so that several servers in one
//! process (the test suites) keep apart.
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `keyhold_requests_total` | service, operation, outcome | AWS requests answered (`success`, `client_error`, `server_error`, `throttled`) |
//! | `keyhold_request_duration_seconds` | service, operation | latency, from the request head to the answer |
//! | `keyhold_throttled_requests_total` | service, quota | requests refused by a request quota |
//! | `keyhold_audit_batch_events` | — | events per audit batch (one commit) |
//! | `keyhold_audit_commit_seconds` | — | time of each audit batch commit: its write and its sync |
//! | `keyhold_cache_lookups_total` | cache, result | in-memory cache lookups (`hit`, `miss`) of KMS keys and secrets |
//! | `keyhold_key_rotations_total` | outcome | scheduled KMS key rotations (`run`, `failed`) |
//! | `keyhold_secret_rotations_total` | outcome | Secrets Manager rotations (`started`, `succeeded`, `failed`) |
//! | `keyhold_ready` | — | 1 while `/health/ready` would answer 200 |
//!
//! Labels come from closed sets (operation names of the models, fixed outcomes): no value
//! a caller chooses, no key id, no secret, ever appears here.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyhold_proto::route::Operation;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::http::AppState;

/// What an answered AWS request is counted under, once its operation is known
/// (`http::serve_api` counts every one).
#[derive(Clone, Copy, Debug)]
pub struct Served {
    pub operation: Operation,
    /// The error code, when the answer is an error.
    pub error: Option<&'static str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    service: &'static str,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    service: &'static str,
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuotaLabels {
    service: &'static str,
    quota: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The metrics of one server.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily<OperationLabels>,
    throttled: Family<QuotaLabels, Counter>,
    audit_batch: Histogram,
    audit_commit: Histogram,
    cache: Family<CacheLabels, Counter>,
    rotations: Family<OutcomeLabels, Counter>,
    secret_rotations: Family<OutcomeLabels, Counter>,
    sweeps: Counter,
    keys_deleted: Counter,
    invalidations: Family<KindLabels, Counter>,
    ready: Gauge,
}

fn latency_histogram() -> Histogram {
    // 100 µs to ~3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("keyhold");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "AWS requests answered", requests.clone());
        let latency: HistogramFamily<OperationLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "request_duration_seconds",
            "Time from a request's head to its answer",
            latency.clone(),
        );
        let throttled = Family::<QuotaLabels, Counter>::default();
        registry.register(
            "throttled_requests",
            "Requests refused by a request quota",
            throttled.clone(),
        );
        let audit_batch = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        registry.register(
            "audit_batch_events",
            "Events per audit batch (one commit)",
            audit_batch.clone(),
        );
        let audit_commit = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "audit_commit_seconds",
            "Time of each audit batch commit: its write and its sync (one durable write when appends are direct)",
            audit_commit.clone(),
        );
        let cache = Family::<CacheLabels, Counter>::default();
        registry.register(
            "cache_lookups",
            "In-memory cache lookups of KMS keys and secrets",
            cache.clone(),
        );
        let rotations = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "key_rotations",
            "Scheduled KMS key rotations",
            rotations.clone(),
        );
        let secret_rotations = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "secret_rotations",
            "Secrets Manager rotations started, succeeded and failed",
            secret_rotations.clone(),
        );
        let sweeps = Counter::default();
        registry.register(
            "background_sweeps",
            "Background sweeps this node ran (deletions, rotations, expirations): with several \
             nodes on one store, only the holder of the sweep lease runs them",
            sweeps.clone(),
        );
        let keys_deleted = Counter::default();
        registry.register(
            "kms_keys_deleted",
            "KMS keys this node deleted at the end of their waiting period",
            keys_deleted.clone(),
        );
        let invalidations = Family::<KindLabels, Counter>::default();
        registry.register(
            "cache_invalidations",
            "Cache entries dropped because another node changed them (the change feed), by kind",
            invalidations.clone(),
        );
        let ready = Gauge::default();
        registry.register(
            "ready",
            "1 while the server is ready (GET /health/ready answers 200)",
            ready.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            throttled,
            audit_batch,
            audit_commit,
            cache,
            rotations,
            secret_rotations,
            sweeps,
            keys_deleted,
            invalidations,
            ready,
        }
    }

    /// Counts one answered AWS request.
    pub fn request(&self, served: Served, status: StatusCode, elapsed: Duration) {
        let service = served.operation.service().signing_name();
        let operation = served.operation.name();
        let outcome = match served.error {
            None => "success",
            Some("ThrottlingException" | "Throttling" | "ThrottledException") => "throttled",
            Some(_) if status.is_server_error() => "server_error",
            Some(_) => "client_error",
        };
        self.requests
            .get_or_create(&RequestLabels {
                service,
                operation,
                outcome,
            })
            .inc();
        self.latency
            .get_or_create(&OperationLabels { service, operation })
            .observe(elapsed.as_secs_f64());
    }

    pub fn throttled(&self, service: &'static str, quota: &'static str) {
        self.throttled
            .get_or_create(&QuotaLabels { service, quota })
            .inc();
    }

    pub fn audit_batch(&self, events: usize, commit: Duration) {
        self.audit_batch.observe(events as f64);
        self.audit_commit.observe(commit.as_secs_f64());
    }

    pub fn cache_lookup(&self, cache: &'static str, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.cache
            .get_or_create(&CacheLabels { cache, result })
            .inc();
    }

    pub fn rotation(&self, failed: bool) {
        let outcome = if failed { "failed" } else { "run" };
        self.rotations
            .get_or_create(&OutcomeLabels { outcome })
            .inc_by(1);
    }

    /// Counts a secret rotation `started`, `succeeded` or `failed`.
    pub fn secret_rotation(&self, outcome: &'static str) {
        self.secret_rotations
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Counts one background sweep this node ran.
    pub fn sweep(&self) {
        self.sweeps.inc();
    }

    /// Counts KMS keys deleted by the sweep.
    pub fn keys_deleted(&self, n: usize) {
        self.keys_deleted.inc_by(n as u64);
    }

    /// Counts one change heard from another node: `key`, `alias`, `secret`, `params`, `iam`
    /// or `everything`.
    pub fn invalidation(&self, kind: &'static str) {
        self.invalidations.get_or_create(&KindLabels { kind }).inc();
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// The exposition text (OpenMetrics, which Prometheus reads).
    pub fn render(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            tracing::error!("encoding the metrics failed");
        }
        text
    }
}

/// `GET /metrics`.
pub async fn handle(State(state): State<Arc<AppState>>) -> Response {
    let ready = super::health::readiness(&state).await.is_ok();
    state.ops.metrics.set_ready(ready);
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.ops.metrics.render(),
    )
        .into_response()
}
