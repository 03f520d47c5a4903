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
//! - [`source`] is the one index lookups (`LookupEvents`, KMS's `GetKeyLastUsage`) read:
//!   the trail's own, or on a PostgreSQL store the nodes' shared lookup index, into which
//!   [`shared`] publishes the trail (the whole cluster's events).
//! - [`cluster`] joins the trails of the nodes sharing a store with a signed cluster digest
//!   chain in the store.

pub mod anchor;
pub mod chain;
pub mod cluster;
pub mod cluster_verify;
pub mod export;
pub mod index;
mod legacy;
pub mod lookup;
pub mod offline;
pub mod record;
pub mod rejection;
pub mod shared;
pub mod source;
pub mod trail;
pub mod verify;

use std::sync::{Arc, Mutex};

use crate::context::{AuditNotes, RequestContext};
use keyhold_proto::{ApiError, CommonError};

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
    /// `names` (of `source`) and succeeded — what KMS's `GetKeyLastUsage` reports, through
    /// [`source::LookupSource::last_success`] on a single node. Reads the trail's index
    /// (blocking: call it off the async threads). `None` for a trail that keeps no index.
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
    /// The operations that count (a fixed list, such as KMS's tracked operations).
    pub names: &'static [&'static str],
}

impl LastSuccessQuery<'_> {
    /// The call an event of the resource records, if it answers this question: one of
    /// `names` to `source` that succeeded (its record has no `errorCode`). Both lookup
    /// indexes decide with this.
    pub fn answer(
        &self,
        event_id: &str,
        event_source: &str,
        event_name: &str,
        time_ms: i64,
        record: &str,
    ) -> Option<LastSuccess> {
        if event_source != self.source || !self.names.contains(&event_name) {
            return None;
        }
        let record = serde_json::from_str::<serde_json::Value>(record).ok()?;
        if record.get("errorCode").is_some_and(|v| !v.is_null()) {
            return None;
        }
        Some(LastSuccess {
            event_id: event_id.to_owned(),
            request_id: record
                .get("requestID")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned(),
            event_name: event_name.to_owned(),
            time_ms,
        })
    }
}

/// The call [`Auditor::last_success`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastSuccess {
    pub event_id: String,
    pub request_id: String,
    pub event_name: String,
    pub time_ms: i64,
}

/// The durability receipts of one request's audit events: the tickets of its events (see
/// [`Durability`]), awaited together before the response goes out.
#[derive(Debug, Default)]
pub struct Receipts {
    waiting: Mutex<Option<Waiting>>,
    failed: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
struct Waiting {
    durability: Arc<Durability>,
    /// The first and last ticket of the request's events.
    first: u64,
    last: u64,
}

impl Receipts {
    /// Expects the event with `ticket` of `durability` to be made durable.
    pub fn expect(&self, durability: &Arc<Durability>, ticket: u64) {
        let Ok(mut waiting) = self.waiting.lock() else {
            return self.fail();
        };
        match waiting.as_mut() {
            None => {
                *waiting = Some(Waiting {
                    durability: durability.clone(),
                    first: ticket,
                    last: ticket,
                });
            }
            Some(w) if Arc::ptr_eq(&w.durability, durability) => {
                w.first = w.first.min(ticket);
                w.last = w.last.max(ticket);
            }
            // One request's events all go to one trail.
            Some(_) => self.fail(),
        }
    }

    /// Marks that an event could not even be handed to the trail.
    pub fn fail(&self) {
        self.failed
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Waits until every event of the request is durable; an error if one was not recorded.
    pub async fn wait(&self) -> Result<(), ApiError> {
        let waiting = self.waiting.lock().ok().and_then(|mut w| w.take());
        let mut ok = !self.failed.load(std::sync::atomic::Ordering::Relaxed);
        if let Some(w) = waiting {
            ok &= w.durability.wait(w.first, w.last).await;
        }
        if ok { Ok(()) } else { Err(unavailable()) }
    }
}

/// Which events are durable, by ticket: every event handed to the trail gets the next
/// ticket, and the trail resolves tickets in that order — a batch's all at once, when its
/// `fdatasync` returns (or fails). A request waits for its last ticket, then checks that
/// none of its tickets is among the failed ones. Waiters are kept by the ticket they wait
/// for, so a resolution wakes exactly the requests it answers (with dozens of requests in
/// flight and a sync every few hundred microseconds, waking every waiter on every sync
/// would poll each request several times for nothing).
#[derive(Debug, Default)]
pub struct Durability {
    state: Mutex<DurabilityState>,
}

#[derive(Debug, Default)]
struct DurabilityState {
    /// Every ticket up to this one is resolved (durable, or failed).
    through: u64,
    /// The trail stopped: tickets after `through` never will be.
    closed: bool,
    failed: FailedTickets,
    /// The requests waiting, by the last ticket they wait for (and a number that tells
    /// apart waiters of one ticket).
    waiting: std::collections::BTreeMap<(u64, u64), std::task::Waker>,
    next_waiter: u64,
}

/// The failed ticket ranges (only while the trail cannot write). Bounded: when ranges are
/// dropped, every ticket up to `floor` counts as failed (a late waiter is refused rather
/// than told an event is durable that may not be).
#[derive(Debug, Default)]
struct FailedTickets {
    ranges: std::collections::VecDeque<(u64, u64)>,
    floor: u64,
}

const FAILED_RANGES: usize = 4096;

impl Durability {
    fn lock(&self) -> std::sync::MutexGuard<'_, DurabilityState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Tickets up to `through` are resolved: durable if `ok`, else the ones after the last
    /// resolution failed. Called in ticket order. Wakes the requests this answers.
    pub fn resolve(&self, through: u64, ok: bool) {
        let answered = {
            let mut s = self.lock();
            let before = s.through;
            if through <= before {
                return;
            }
            if !ok {
                let failed = &mut s.failed;
                match failed.ranges.back_mut() {
                    Some(last) if last.1 == before => last.1 = through,
                    _ => failed.ranges.push_back((before + 1, through)),
                }
                while failed.ranges.len() > FAILED_RANGES {
                    if let Some((_, end)) = failed.ranges.pop_front() {
                        failed.floor = failed.floor.max(end);
                    }
                }
            }
            s.through = through;
            let later = s.waiting.split_off(&(through + 1, 0));
            std::mem::replace(&mut s.waiting, later)
        };
        answered.into_values().for_each(std::task::Waker::wake);
    }

    /// The trail stopped: no ticket not yet resolved ever will be.
    pub fn close(&self) {
        let waiting = {
            let mut s = self.lock();
            s.closed = true;
            std::mem::take(&mut s.waiting)
        };
        waiting.into_values().for_each(std::task::Waker::wake);
    }

    /// Waits until tickets `first..=last` are resolved; whether all are durable.
    async fn wait(&self, first: u64, last: u64) -> bool {
        /// Forgets the waiter when the request goes away before its answer.
        struct Registered<'a>(&'a Durability, Option<(u64, u64)>);
        impl Drop for Registered<'_> {
            fn drop(&mut self) {
                if let Some(key) = self.1 {
                    self.0.lock().waiting.remove(&key);
                }
            }
        }
        let mut registered = Registered(self, None);
        std::future::poll_fn(|cx| {
            let mut s = self.lock();
            if s.through >= last || s.closed {
                if let Some(key) = registered.1.take() {
                    s.waiting.remove(&key);
                }
                return std::task::Poll::Ready(
                    s.through >= last
                        && first > s.failed.floor
                        && !s
                            .failed
                            .ranges
                            .iter()
                            .any(|&(lo, hi)| lo <= last && first <= hi),
                );
            }
            let key = *registered.1.get_or_insert_with(|| {
                s.next_waiter += 1;
                (last, s.next_waiter)
            });
            s.waiting.insert(key, cx.waker().clone());
            std::task::Poll::Pending
        })
        .await
    }
}

/// The answer when a call cannot be recorded.
pub fn unavailable() -> ApiError {
    ApiError::new(
        CommonError::ServiceUnavailable,
        "The audit trail cannot record this call, so Keyhold refuses to serve it. Retry later.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipts(durability: &Arc<Durability>, tickets: &[u64]) -> Receipts {
        let r = Receipts::default();
        for &t in tickets {
            r.expect(durability, t);
        }
        r
    }

    #[tokio::test]
    async fn a_request_is_answered_once_all_its_tickets_are_durable_and_refused_if_one_failed() {
        let d = Arc::new(Durability::default());
        let ok = receipts(&d, &[1, 3]);
        let failed = receipts(&d, &[4, 6]);
        let later = receipts(&d, &[7]);
        let waiting = tokio::spawn({
            let d = d.clone();
            async move {
                let r = receipts(&d, &[2, 3]);
                r.wait().await
            }
        });
        d.resolve(2, true);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "ticket 3 is not resolved yet");
        d.resolve(3, true);
        assert!(waiting.await.unwrap().is_ok());
        assert!(ok.wait().await.is_ok());
        d.resolve(5, false); // tickets 4 and 5 failed
        d.resolve(7, true);
        assert!(failed.wait().await.is_err(), "ticket 4 failed");
        assert!(later.wait().await.is_ok());
    }

    #[test]
    fn a_resolution_wakes_only_the_requests_it_answers() {
        struct Count(std::sync::atomic::AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let woken = |c: &Arc<Count>| c.0.load(std::sync::atomic::Ordering::SeqCst);
        let d = Durability::default();
        let (early, late) = (Arc::new(Count(0.into())), Arc::new(Count(0.into())));
        let mut first = Box::pin(d.wait(1, 2));
        let mut second = Box::pin(d.wait(3, 5));
        let early_waker = std::task::Waker::from(early.clone());
        let late_waker = std::task::Waker::from(late.clone());
        let mut early_cx = std::task::Context::from_waker(&early_waker);
        let mut late_cx = std::task::Context::from_waker(&late_waker);
        assert!(first.as_mut().poll(&mut early_cx).is_pending());
        assert!(second.as_mut().poll(&mut late_cx).is_pending());
        d.resolve(1, true);
        assert_eq!(
            (woken(&early), woken(&late)),
            (0, 0),
            "ticket 2 is not resolved"
        );
        d.resolve(3, true);
        assert_eq!(
            (woken(&early), woken(&late)),
            (1, 0),
            "only the first is answered"
        );
        assert_eq!(
            first.as_mut().poll(&mut early_cx),
            std::task::Poll::Ready(true)
        );
        // A request that goes away stops waiting.
        drop(second);
        assert!(d.lock().waiting.is_empty());
        d.resolve(5, true);
        assert_eq!(woken(&late), 0);
    }

    #[tokio::test]
    async fn tickets_the_trail_never_resolves_fail_when_it_stops() {
        let d = Arc::new(Durability::default());
        d.resolve(1, true);
        let done = receipts(&d, &[1]);
        let stranded = receipts(&d, &[2]);
        d.close();
        assert!(done.wait().await.is_ok());
        assert!(stranded.wait().await.is_err());
        let nothing = Receipts::default();
        assert!(
            nothing.wait().await.is_ok(),
            "a call without events waits for nothing"
        );
        nothing.fail();
        assert!(nothing.wait().await.is_err());
    }

    #[tokio::test]
    async fn a_late_waiter_below_forgotten_failures_is_refused_rather_than_passed() {
        let d = Arc::new(Durability::default());
        d.resolve(1, true);
        let early = receipts(&d, &[1]);
        // More separate failures than the failed list keeps.
        let mut t = 1;
        for _ in 0..FAILED_RANGES + 10 {
            t += 1;
            d.resolve(t, false);
            t += 1;
            d.resolve(t, true);
        }
        assert!(early.wait().await.is_err());
        let fresh = receipts(&d, &[t]);
        assert!(fresh.wait().await.is_ok());
    }
}
