//! The audit trail: one CloudTrail-format event for every call, success or failure,
//! hash-chained, sealed by signed digests, durable before the response by default.
//!
//! - [`Auditor`] is the hook every request (and every call one service makes to another on
//!   a caller's behalf) passes through exactly once; [`trail::AuditTrail`] implements it.
//! - [`record`] builds the CloudTrail record of a call, and of a [`ServiceEvent`] (something
//!   a service did on its own, such as a background validation that failed).
//! - [`chain`] holds what the trail and the verifier share: how a record is chained
//!   (`keyholdChain: {sequence, previousHash}` inside the hashed record), how digests are
//!   written and signed.
//! - [`verify`] walks a trail (a data directory or exported files) and reports the first
//!   event that was changed, removed, inserted or reordered, and any gap in the digests.
//! - [`index`] keeps the SQLite index lookups read, derived from the segment log.
//! - [`lookup`] serves CloudTrail's `LookupEvents`; [`export`] writes CloudTrail-shaped files.

pub mod anchor;
pub mod chain;
pub mod export;
pub mod index;
mod legacy;
pub mod lookup;
pub mod offline;
pub mod record;
pub mod rejection;
pub mod trail;
pub mod verify;

use std::sync::Mutex;

use keyhold_proto::{ApiError, CommonError};
use tokio::sync::oneshot;

use crate::context::{AuditNotes, RequestContext};

/// Converts a trail of the first format (`audit.db`) at `legacy` into a segment log at
/// `dir`, unless `dir` holds one already (see [`legacy`]).
pub fn convert_first_format(legacy: &std::path::Path, dir: &std::path::Path) -> anyhow::Result<()> {
    legacy::convert_if_needed(legacy, dir)
}

/// One finished call.
pub struct AuditEvent<'a> {
    pub ctx: &'a RequestContext,
    pub notes: AuditNotes,
    pub error: Option<&'a ApiError>,
}

/// Something a service did on its own rather than as a caller's call (CloudTrail's
/// `AwsServiceEvent`): no caller identity, no request; what happened is in `details`
/// (`serviceEventDetails`). Parameter Store records the asynchronous validation of an
/// `aws:ec2:image` value that failed this way.
pub struct ServiceEvent<'a> {
    /// The service that acted, as in `eventSource` (`ssm.amazonaws.com`).
    pub source: &'static str,
    /// Who the record names as acting (`userIdentity.invokedBy`, `sourceIPAddress`,
    /// `userAgent`): the service's name, or `AWS Internal` where AWS writes that (KMS's
    /// `RotateKey`).
    pub invoked_by: &'static str,
    pub name: &'static str,
    /// The account and Region the event belongs to.
    pub account: &'a str,
    pub region: &'a str,
    /// The resources involved: (type, ARN).
    pub resources: Vec<(&'static str, String)>,
    pub details: serde_json::Value,
    /// The receipts of the request that led to the event, when there is one: its response
    /// then waits until this event too is durable.
    pub receipts: Option<&'a Receipts>,
}

pub trait Auditor: Send + Sync {
    /// Whether a call may start. The trail refuses (fails closed) when it could not record
    /// the call's event: a server that cannot audit does not serve.
    fn admit(&self) -> Result<(), ApiError> {
        Ok(())
    }

    /// Hands one event to the trail. Its durability receipt goes to the request's
    /// [`Receipts`], which the front end awaits before answering.
    fn record(&self, event: AuditEvent<'_>);

    /// Hands one service event to the trail (see [`ServiceEvent`]).
    fn record_service_event(&self, event: ServiceEvent<'_>);

    /// Records a call rejected before dispatch (rate limited; see [`rejection`]).
    fn record_rejection(&self, _rejection: rejection::Rejection<'_>) {}

    /// The newest recorded call of `account` and `region` that named `resource`, was one of
    /// `names` (of `source`) and succeeded — what KMS's `GetKeyLastUsage` reports. Reads the
    /// trail's index (blocking: call it off the async threads). `None` for a trail that keeps
    /// no index.
    fn last_success(&self, _query: &LastSuccessQuery<'_>) -> Option<LastSuccess> {
        None
    }
}

/// What [`Auditor::last_success`] looks for.
pub struct LastSuccessQuery<'a> {
    pub account: &'a str,
    pub region: &'a str,
    pub source: &'a str,
    pub resource: &'a str,
    pub names: &'a [&'a str],
}

/// The call [`Auditor::last_success`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastSuccess {
    pub event_id: String,
    pub request_id: String,
    pub event_name: String,
    pub time_ms: i64,
}

/// The durability receipts of one request's audit events.
#[derive(Debug, Default)]
pub struct Receipts {
    pending: Mutex<Vec<oneshot::Receiver<bool>>>,
    failed: std::sync::atomic::AtomicBool,
}

impl Receipts {
    /// Expects a receipt: `true` once the event is durable, `false` if it was lost.
    pub fn expect(&self) -> oneshot::Sender<bool> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut pending) = self.pending.lock() {
            pending.push(rx);
        }
        tx
    }

    /// Marks that an event could not even be handed to the trail.
    pub fn fail(&self) {
        self.failed
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Waits until every event of the request is durable; an error if one was not recorded.
    pub async fn wait(&self) -> Result<(), ApiError> {
        let pending = self
            .pending
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default();
        let mut ok = !self.failed.load(std::sync::atomic::Ordering::Relaxed);
        for rx in pending {
            ok &= rx.await.unwrap_or(false);
        }
        if ok { Ok(()) } else { Err(unavailable()) }
    }
}

/// The answer when a call cannot be recorded.
pub fn unavailable() -> ApiError {
    ApiError::new(
        CommonError::ServiceUnavailable,
        "The audit trail cannot record this call, so Keyhold refuses to serve it. Retry later.",
    )
}
