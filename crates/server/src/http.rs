//! The HTTP front end: one handler for every AWS request.
//!
//! `POST /` (any path) → body (capped) → protocol and operation (`X-Amz-Target` or
//! `Action=`) → authentication → the service's generated dispatch (decode, validate,
//! operation, encode) → one audit record → the response, with `x-amzn-RequestId` always.
//! Every failure is answered in the protocol of the request, AWS-shaped; a panic inside an
//! operation becomes a logged `InternalFailure`, never a dropped connection.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::FutureExt as _;
use keyhold_proto::route::{self, Operation, Protocol, Service};
use keyhold_proto::runtime::query::QueryParams;
use keyhold_proto::sigv4::SignedRequest;
use keyhold_proto::{ApiError, CommonError, cloudtrail, iam, kms, secretsmanager, ssm, sts};

use crate::audit::{AuditEvent, Auditor};
use crate::auth::Authenticator;
use crate::config::Mode;
use crate::context::RequestContext;
use crate::iam::IamService;
use crate::kms::KmsService;
use crate::ops::metrics::Served;
use crate::params::SsmService;
use crate::secrets::SecretsService;
use crate::sts::StsService;

/// What the handler shares across requests.
pub struct AppState {
    pub mode: Mode,
    pub max_body_bytes: usize,
    pub body_read_timeout: std::time::Duration,
    pub trusted_proxies: crate::transport::forwarded::TrustedProxies,
    pub auth: Authenticator,
    pub kms: Arc<KmsService>,
    pub secrets: Arc<SecretsService>,
    pub ssm: Arc<SsmService>,
    pub iam: Arc<IamService>,
    pub sts: Arc<StsService>,
    pub cloudtrail: Arc<crate::audit::lookup::CloudTrailService>,
    pub audit: Arc<dyn Auditor>,
    pub trail: Arc<crate::audit::trail::AuditTrail>,
    /// The cluster digest chain's writer, on a store shared by several nodes (PostgreSQL);
    /// the sweep lease's holder appends with it.
    pub cluster_audit: Option<Arc<crate::audit::cluster::ClusterDigests>>,
    /// Operator features: seeding, reset (see [`crate::ops`]).
    pub ops: crate::ops::Ops,
}

/// The health endpoint of the API listener.
pub const HEALTH_PATH: &str = "/_keyhold/health";

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(HEALTH_PATH, get(health))
        .merge(crate::ops::routes())
        .fallback(handle)
        .with_state(state)
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    let mode = match state.mode {
        Mode::Dev => "dev",
        Mode::Strict => "strict",
    };
    let (status, body) = match state.trail.health().error() {
        None => (
            StatusCode::OK,
            serde_json::json!({"status": "ok", "mode": mode, "audit": "ok"}),
        ),
        Some(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "degraded", "mode": mode, "audit": error}),
        ),
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A response, and what the request metrics count it under (once its operation is known).
struct Answer {
    response: Response,
    served: Option<Served>,
}

/// The request as far as it has been understood.
struct Incoming {
    request_id: String,
    protocol: Protocol,
    service: Option<Service>,
    /// Once resolved: what the metrics count the answer under.
    operation: Option<Operation>,
}

/// Answers an AWS API request and counts it in the request metrics: the transport's direct
/// path (past the routers: see [`crate::seal::admin::Front`]).
pub(crate) async fn serve_api(state: &AppState, peer: SocketAddr, request: Request) -> Response {
    let started = Instant::now();
    let Answer { response, served } = answer(state, peer, request).await;
    if let Some(served) = served {
        state
            .ops
            .metrics
            .request(served, response.status(), started.elapsed());
    }
    response
}

/// The router's fallback (an unrouted path under `/_keyhold/` or `/health/`): an API
/// request like any other.
async fn handle(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    serve_api(&state, peer, request).await
}

/// Every log line of a request carries its request id (the span's field).
async fn answer(state: &AppState, peer: SocketAddr, request: Request) -> Answer {
    use tracing::Instrument as _;
    let request_id = crate::context::new_request_id();
    let span = tracing::info_span!("request", request_id = %request_id);
    handle_request(state, peer, request, request_id)
        .instrument(span)
        .await
}

async fn handle_request(
    state: &AppState,
    peer: SocketAddr,
    request: Request,
    request_id: String,
) -> Answer {
    let (parts, body) = request.into_parts();
    let target = header_str(&parts.headers, "x-amz-target").map(str::to_owned);
    let mut incoming = Incoming {
        request_id,
        protocol: if target.is_some() {
            Protocol::Json
        } else {
            Protocol::Query
        },
        service: None,
        operation: None,
    };
    let body = match crate::transport::body::read(
        body,
        state.max_body_bytes,
        state.body_read_timeout,
    )
    .await
    {
        Ok(body) => body,
        Err(e) => {
            tracing::debug!(request_id = %incoming.request_id, %peer, error = ?e, "request body not read");
            let e = e.to_api_error();
            let claimed = target.as_deref();
            return reject(state, &incoming, &parts.headers, peer, (None, claimed), &e);
        }
    };

    let authorization = header_str(&parts.headers, "authorization");
    let query = match &target {
        Some(_) => None,
        None if parts.method == axum::http::Method::GET => Some(QueryParams::parse(
            parts.uri.query().unwrap_or("").as_bytes(),
        )),
        None => Some(QueryParams::parse(&body)),
    };
    let operation = match (&target, &query) {
        (Some(target), _) => route::resolve_target(target),
        (None, Some(q)) => route::resolve_action(
            q.action(),
            q.version(),
            authorization.and_then(scope_service),
        ),
        (None, None) => Err(ApiError::bare(CommonError::UnknownOperation)),
    };
    let operation = match operation {
        Ok(op) => op,
        Err(e) => {
            let claimed = target
                .as_deref()
                .or(query.as_ref().and_then(|q| q.action()));
            return reject(state, &incoming, &parts.headers, peer, (None, claimed), &e);
        }
    };
    incoming.service = Some(operation.service());
    incoming.operation = Some(operation);

    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let signed = SignedRequest::new(parts.method.as_str(), path_and_query, &parts.headers, &body);
    let authenticated = match state.auth.authenticate(
        &signed,
        operation.service(),
        authorization,
        SystemTime::now(),
    ) {
        Ok(a) => a,
        Err(e) => {
            let e = e.to_api_error(incoming.protocol);
            let op = (Some(operation), None);
            return reject(state, &incoming, &parts.headers, peer, op, &e);
        }
    };

    let user_agent = header_str(&parts.headers, "user-agent")
        .unwrap_or("")
        .to_owned();
    let ctx = RequestContext::new(
        incoming.request_id.clone(),
        operation,
        authenticated.principal,
        authenticated.scope,
        state.trusted_proxies.client_ip(peer.ip(), &parts.headers),
        user_agent,
    );
    // Fail closed: a call whose event could not be recorded is not served.
    if let Err(e) = state.audit.admit() {
        return error_response(&incoming, &e);
    }
    // AWS's request quotas (when on): a throttled call is refused before it runs.
    let result = match crate::ops::quotas::admit(state, &ctx) {
        Err(e) => Err(e),
        Ok(()) => AssertUnwindSafe(dispatch(state, &ctx, operation, &body, query.as_ref()))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                tracing::error!(request_id = %ctx.request_id, operation = operation.name(), "operation panicked");
                Err(ApiError::internal())
            }),
    };
    state.audit.record(AuditEvent {
        ctx: &ctx,
        notes: ctx.take_notes(),
        error: result.as_ref().err(),
    });
    // Durable audit: the answer goes out only once every event of the call is on disk.
    let result = match (result, ctx.receipts().wait().await) {
        (Ok(_), Err(e)) => Err(e),
        (result, _) => result,
    };
    match result {
        Ok(body) => success_response(&incoming, body),
        Err(e) => error_response(&incoming, &e),
    }
}

/// Runs an operation made in code (a seed file's), not received over the wire: dispatched
/// and audited like a request, answered once its audit event is durable.
pub(crate) async fn call_in_process(
    state: &AppState,
    ctx: &RequestContext,
    body: &[u8],
    query: Option<&QueryParams>,
) -> Result<Vec<u8>, ApiError> {
    let operation = ctx.operation;
    state.audit.admit()?;
    let result = dispatch(state, ctx, operation, body, query).await;
    state.audit.record(AuditEvent {
        ctx,
        notes: ctx.take_notes(),
        error: result.as_ref().err(),
    });
    match (result, ctx.receipts().wait().await) {
        (Ok(_), Err(e)) => Err(e),
        (result, _) => result,
    }
}

/// Answers a call rejected before dispatch, and records it (rate limited): `operation` is
/// the resolved operation, or the name the request claimed.
fn reject(
    state: &AppState,
    incoming: &Incoming,
    headers: &HeaderMap,
    peer: SocketAddr,
    (operation, claimed_operation): (Option<Operation>, Option<&str>),
    error: &ApiError,
) -> Answer {
    let (access_key_id, region) = header_str(headers, "authorization")
        .and_then(crate::auth::lenient_credential)
        .unzip();
    state
        .audit
        .record_rejection(crate::audit::rejection::Rejection {
            request_id: &incoming.request_id,
            source_ip: state.trusted_proxies.client_ip(peer.ip(), headers),
            user_agent: header_str(headers, "user-agent").unwrap_or(""),
            operation,
            claimed_operation,
            access_key_id,
            region,
            error_code: match incoming.protocol {
                Protocol::Json => error.code(),
                Protocol::Query => error.query_code(),
            },
            error_message: error.message(),
        });
    error_response(incoming, error)
}

/// Runs one operation through its service's generated dispatch.
async fn dispatch(
    state: &AppState,
    ctx: &RequestContext,
    operation: Operation,
    body: &[u8],
    query: Option<&QueryParams>,
) -> Result<Vec<u8>, ApiError> {
    if !crate::compat::is_supported(operation) {
        return Err(ApiError::unsupported_operation(
            operation.service().service_id(),
            operation.name(),
        ));
    }
    // An operation without a declared authorization does not serve.
    let Some(declaration) = crate::access::declaration(operation) else {
        tracing::error!(
            operation = operation.name(),
            "operation has no declared authorization"
        );
        return Err(ApiError::internal());
    };
    let answer = run(state, ctx, operation, body, query).await?;
    // An answer for which a declared check was never made does not go out.
    if let Some(check) = crate::access::missing_check(declaration, ctx) {
        tracing::error!(
            request_id = %ctx.request_id,
            operation = operation.name(),
            action = check.action,
            resource = ?check.on,
            "operation answered without its declared authorization; answer withheld"
        );
        return Err(ApiError::internal());
    }
    Ok(answer)
}

async fn run(
    state: &AppState,
    ctx: &RequestContext,
    operation: Operation,
    body: &[u8],
    query: Option<&QueryParams>,
) -> Result<Vec<u8>, ApiError> {
    let empty = QueryParams::default();
    let query = query.unwrap_or(&empty);
    match operation {
        Operation::Kms(op) => kms::dispatch(&*state.kms, ctx, op, body).await,
        Operation::SecretsManager(op) => {
            secretsmanager::dispatch(&*state.secrets, ctx, op, body).await
        }
        Operation::Ssm(op) => ssm::dispatch(&*state.ssm, ctx, op, body).await,
        Operation::CloudTrail(op) => cloudtrail::dispatch(&*state.cloudtrail, ctx, op, body).await,
        Operation::Sts(op) => sts::dispatch(&*state.sts, ctx, op, query, &ctx.request_id)
            .await
            .map(String::into_bytes),
        Operation::Iam(op) => iam::dispatch(&*state.iam, ctx, op, query, &ctx.request_id)
            .await
            .map(String::into_bytes),
    }
}

fn success_response(incoming: &Incoming, body: Vec<u8>) -> Answer {
    let content_type = match incoming.protocol {
        Protocol::Json => "application/x-amz-json-1.1",
        Protocol::Query => "text/xml",
    };
    Answer {
        response: respond(
            StatusCode::OK,
            content_type,
            &incoming.request_id,
            Bytes::from(body),
        ),
        served: incoming.operation.map(|operation| Served {
            operation,
            error: None,
        }),
    }
}

fn error_response(incoming: &Incoming, error: &ApiError) -> Answer {
    Answer {
        response: error_body(incoming, error),
        served: incoming.operation.map(|operation| Served {
            operation,
            error: Some(error.code()),
        }),
    }
}

fn error_body(incoming: &Incoming, error: &ApiError) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    match incoming.protocol {
        Protocol::Json => {
            let key = incoming.service.map_or("message", Service::message_key);
            respond(
                status,
                "application/x-amz-json-1.1",
                &incoming.request_id,
                error.to_json(key).into(),
            )
        }
        Protocol::Query => {
            let ns = incoming.service.map_or("", Service::xml_namespace);
            let body = error.to_xml(ns, &incoming.request_id);
            respond(status, "text/xml", &incoming.request_id, body.into())
        }
    }
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    request_id: &str,
    body: Bytes,
) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}

/// The answer to every API call while the seal is closed: AWS's common `ServiceUnavailable`
/// (HTTP 503, which every AWS SDK retries), in the request's protocol. No operation runs and
/// nothing is audited: a sealed server cannot sign or record events.
pub(crate) fn sealed_response(headers: &HeaderMap) -> Response {
    let target = header_str(headers, "x-amz-target");
    let service = match target {
        Some(target) => route::resolve_target(target).ok().map(|op| op.service()),
        None => header_str(headers, "authorization")
            .and_then(scope_service)
            .and_then(|name| {
                Service::ALL
                    .iter()
                    .copied()
                    .find(|s| s.signing_name() == name)
            }),
    };
    let incoming = Incoming {
        request_id: crate::context::new_request_id(),
        protocol: if target.is_some() {
            Protocol::Json
        } else {
            Protocol::Query
        },
        service,
        operation: None,
    };
    let error = ApiError::new(
        CommonError::ServiceUnavailable,
        "Keyhold is sealed: no key can be used until an operator unseals it (keyhold unseal).",
    );
    error_body(&incoming, &error)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The service of the credential scope of an Authorization header, unchecked (routing only:
/// authentication checks it).
fn scope_service(authorization: &str) -> Option<&str> {
    let start = authorization.find("Credential=")? + "Credential=".len();
    authorization
        .get(start..)?
        .split([',', ' '])
        .next()?
        .split('/')
        .nth(3)
}
