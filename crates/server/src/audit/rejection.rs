//! Calls rejected before they reach a service — bad or missing signatures, unknown or
//! expired access keys, unknown operations, oversized bodies — are recorded too, as
//! CloudTrail records failed authentications: an event with `errorCode` and
//! `errorMessage`, attributed to no verified identity (`userIdentity.type` `Unknown`, with
//! the access key id the request claimed).
//!
//! Anyone can send such requests, so they are rate limited before they reach the trail: a
//! token bucket per source IP and one for all sources. What the buckets refuse is counted,
//! and the next recorded rejection carries the count
//! (`additionalEventData.suppressedRejections`), so a flood is visible without filling the
//! disk. Rejections do not wait for durability: nothing was done that a response could
//! acknowledge.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use keyhold_proto::Timestamp;
use keyhold_proto::route::Operation;
use serde_json::{Map, Value};

use super::record::Pending;

/// One call rejected before dispatch, as far as it was understood.
pub struct Rejection<'a> {
    pub request_id: &'a str,
    pub source_ip: IpAddr,
    pub user_agent: &'a str,
    /// The operation, when it was resolved.
    pub operation: Option<Operation>,
    /// The operation the request named (`X-Amz-Target` or `Action`), when unresolved.
    pub claimed_operation: Option<&'a str>,
    /// The access key id and region of the request's credential scope (unverified).
    pub access_key_id: Option<&'a str>,
    pub region: Option<&'a str>,
    /// The error code and message the caller was answered with.
    pub error_code: &'a str,
    pub error_message: Option<&'a str>,
}

/// How many rejections are recorded: per source IP and in all.
#[derive(Clone, Copy, Debug)]
pub struct RejectionLimits {
    pub per_source_per_second: f64,
    pub per_source_burst: f64,
    pub total_per_second: f64,
    pub total_burst: f64,
}

impl Default for RejectionLimits {
    fn default() -> Self {
        Self {
            per_source_per_second: 5.0,
            per_source_burst: 20.0,
            total_per_second: 50.0,
            total_burst: 100.0,
        }
    }
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Self {
        Self {
            tokens: burst,
            at: now,
        }
    }

    fn refill(&mut self, rate: f64, burst: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at = now;
    }
}

/// The token buckets, and what they refused since the last recorded rejection.
pub struct Limiter {
    limits: RejectionLimits,
    state: Mutex<LimiterState>,
}

struct LimiterState {
    total: Bucket,
    sources: HashMap<IpAddr, Bucket>,
    suppressed: u64,
    /// When idle sources were last forgotten.
    swept: Instant,
}

/// Sources tracked at most; beyond it, full (idle) buckets are forgotten.
const MAX_SOURCES: usize = 10_000;

impl Limiter {
    pub fn new(limits: RejectionLimits) -> Self {
        let now = Instant::now();
        Self {
            limits,
            state: Mutex::new(LimiterState {
                total: Bucket::full(limits.total_burst, now),
                sources: HashMap::new(),
                suppressed: 0,
                swept: now,
            }),
        }
    }

    /// Whether a rejection from `source` is recorded; if so, how many were suppressed
    /// before it (the count is then reset).
    pub fn admit(&self, source: IpAddr) -> Option<u64> {
        let l = self.limits;
        let now = Instant::now();
        let mut guard = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let LimiterState {
            total,
            sources,
            suppressed,
            swept,
        } = &mut *guard;
        total.refill(l.total_per_second, l.total_burst, now);
        // Forgetting idle sources walks the whole map: at most once a second.
        if sources.len() >= MAX_SOURCES
            && !sources.contains_key(&source)
            && now.duration_since(*swept) >= std::time::Duration::from_secs(1)
        {
            *swept = now;
            sources.retain(|_, b| {
                let mut b = *b;
                b.refill(l.per_source_per_second, l.per_source_burst, now);
                b.tokens < l.per_source_burst
            });
        }
        // Past the cap (a flood from many addresses, none idle), a new source gets no
        // bucket of its own: only the total one limits it, and the map stops growing.
        let room = sources.len() < MAX_SOURCES;
        let source_ok = match sources.get_mut(&source) {
            Some(bucket) => {
                bucket.refill(l.per_source_per_second, l.per_source_burst, now);
                bucket.tokens >= 1.0
            }
            None => {
                if room {
                    sources.insert(source, Bucket::full(l.per_source_burst, now));
                }
                true
            }
        };
        if source_ok && total.tokens >= 1.0 {
            if let Some(b) = sources.get_mut(&source) {
                b.tokens -= 1.0;
            }
            total.tokens -= 1.0;
            Some(std::mem::take(suppressed))
        } else {
            *suppressed += 1;
            None
        }
    }
}

/// The record of a rejection (`suppressed`: rejections not recorded since the last one).
pub fn build(r: &Rejection<'_>, account: &str, suppressed: u64) -> Pending {
    let now = Timestamp::now();
    let event_id = super::record::new_event_id(now.as_millis());
    let event_name = match (r.operation, r.claimed_operation) {
        (Some(op), _) => op.name().to_owned(),
        (None, Some(claimed)) => clean(claimed, 128),
        (None, None) => "Unknown".to_owned(),
    };
    let event_source = r
        .operation
        .map_or("unknown", |op| op.service().event_source())
        .to_owned();
    let region = r
        .region
        .filter(|r| crate::arn::is_region_name(r))
        .unwrap_or(crate::auth::DEFAULT_REGION)
        .to_owned();
    let access_key_id = r.access_key_id.map(|k| clean(k, 128));
    let mut identity = Map::new();
    identity.insert("type".into(), "Unknown".into());
    if let Some(key) = &access_key_id {
        identity.insert("accessKeyId".into(), key.clone().into());
    }
    let mut record = Map::new();
    record.insert("eventVersion".into(), "1.09".into());
    record.insert("userIdentity".into(), Value::Object(identity));
    record.insert("eventTime".into(), now.to_iso8601_seconds().into());
    record.insert("eventSource".into(), event_source.clone().into());
    record.insert("eventName".into(), event_name.clone().into());
    record.insert("awsRegion".into(), region.clone().into());
    record.insert("sourceIPAddress".into(), r.source_ip.to_string().into());
    record.insert("userAgent".into(), clean(r.user_agent, 512).into());
    record.insert("errorCode".into(), r.error_code.into());
    if let Some(message) = r.error_message {
        record.insert("errorMessage".into(), message.into());
    }
    record.insert("requestParameters".into(), Value::Null);
    record.insert("responseElements".into(), Value::Null);
    if suppressed > 0 {
        record.insert(
            "additionalEventData".into(),
            serde_json::json!({ "suppressedRejections": suppressed }),
        );
    }
    record.insert("requestID".into(), r.request_id.into());
    record.insert("eventID".into(), event_id.clone().into());
    record.insert("readOnly".into(), false.into());
    record.insert("eventType".into(), "AwsApiCall".into());
    record.insert("managementEvent".into(), true.into());
    record.insert("recipientAccountId".into(), account.into());
    record.insert("eventCategory".into(), "Management".into());
    Pending {
        text: Value::Object(record).to_string(),
        account: account.to_owned(),
        recipient_account: account.to_owned(),
        region,
        event_id,
        time_ms: now.as_millis(),
        event_name,
        event_source,
        read_only: false,
        username: None,
        access_key_id,
        resources: Vec::new(),
    }
}

/// A caller-supplied string as recorded: printable characters only, at most `max` of them.
fn clean(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_to_the_burst_and_the_rest_counted() {
        let limiter = Limiter::new(RejectionLimits {
            per_source_per_second: 0.0,
            per_source_burst: 3.0,
            total_per_second: 0.0,
            total_burst: 5.0,
        });
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let recorded = (0..10).filter(|_| limiter.admit(a).is_some()).count();
        assert_eq!(recorded, 3, "per source");
        assert_eq!(
            limiter.admit(b),
            Some(7),
            "the next recorded one carries the count"
        );
        assert_eq!(limiter.admit(b), Some(0));
        assert_eq!(limiter.admit(b), None, "the global bucket is empty");
    }
}
