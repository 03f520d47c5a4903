//! CloudTrail's `LookupEvents` over the trail: `aws cloudtrail lookup-events` works against
//! Keyhold. Events of the caller's account (as caller or as resource owner) in the request's
//! region, newest first, filtered by one lookup attribute and a time range, 50 per page.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyhold_proto::cloudtrail::*;
use keyhold_proto::{ApiError, Timestamp};
use keyhold_store::audit::{AuditAttribute, AuditLog, AuditQuery};

use super::trail::AuditTrail;
use crate::context::RequestContext;

/// The CloudTrail service.
pub struct CloudTrailService {
    trail: Arc<AuditTrail>,
}

impl CloudTrailService {
    pub fn new(trail: Arc<AuditTrail>) -> Self {
        Self { trail }
    }
}

const DEFAULT_PAGE: usize = 50;

#[async_trait::async_trait]
impl CloudTrailApi for CloudTrailService {
    type Context = RequestContext;

    async fn lookup_events(
        &self,
        ctx: &RequestContext,
        input: LookupEventsRequest,
    ) -> Result<LookupEventsResponse, ApiError> {
        if input.event_category.is_some() {
            return Err(ApiError::new(
                CloudTrailErrorCode::InvalidEventCategoryException,
                "Keyhold records management events only; there are no Insights events.",
            ));
        }
        let attributes = input.lookup_attributes.unwrap_or_default();
        if attributes.len() > 1 {
            return Err(ApiError::new(
                CloudTrailErrorCode::InvalidLookupAttributesException,
                "You can specify only one lookup attribute.",
            ));
        }
        let attribute = attributes
            .into_iter()
            .next()
            .map(|a| (attribute(a.attribute_key), a.attribute_value));
        if let (Some(start), Some(end)) = (input.start_time, input.end_time)
            && start > end
        {
            return Err(ApiError::new(
                CloudTrailErrorCode::InvalidTimeRangeException,
                "The start time must be earlier than the end time.",
            ));
        }
        let before_seq = match input.next_token.as_deref() {
            Some(token) => Some(decode_token(token).ok_or_else(|| {
                ApiError::new(
                    CloudTrailErrorCode::InvalidNextTokenException,
                    "Invalid NextToken.",
                )
            })?),
            None => None,
        };
        let limit = input
            .max_results
            .and_then(|m| usize::try_from(m).ok())
            .unwrap_or(DEFAULT_PAGE);
        let query = AuditQuery {
            account: ctx.scope.account.clone(),
            region: ctx.scope.region.clone(),
            attribute,
            start_ms: input.start_time.map(Timestamp::as_millis),
            end_ms: input.end_time.map(Timestamp::as_millis),
            before_seq,
            limit: limit + 1,
        };
        let reader = self.trail.reader();
        let mut rows = tokio::task::spawn_blocking(move || {
            reader
                .lock()
                .map_err(|_| ())
                .and_then(|mut log| log.lookup(&query).map_err(|_| ()))
        })
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(|()| ApiError::internal())?;
        let next_token = (rows.len() > limit).then(|| {
            rows.truncate(limit);
            rows.last().map(|r| encode_token(r.seq))
        });
        let events = rows
            .into_iter()
            .map(|r| Event {
                event_id: Some(r.event_id),
                event_name: Some(r.event_name),
                read_only: Some(r.read_only.to_string()),
                access_key_id: r.access_key_id,
                event_time: Some(Timestamp::from_millis(r.time_ms)),
                event_source: Some(r.event_source),
                username: r.username,
                resources: Some(
                    r.resources
                        .into_iter()
                        .map(|(t, n)| Resource {
                            resource_type: Some(t),
                            resource_name: Some(n),
                        })
                        .collect(),
                ),
                cloud_trail_event: Some(r.record),
            })
            .collect();
        Ok(LookupEventsResponse {
            events: Some(events),
            next_token: next_token.flatten(),
        })
    }
}

fn attribute(key: LookupAttributeKey) -> AuditAttribute {
    match key {
        LookupAttributeKey::EventId => AuditAttribute::EventId,
        LookupAttributeKey::EventName => AuditAttribute::EventName,
        LookupAttributeKey::ReadOnly => AuditAttribute::ReadOnly,
        LookupAttributeKey::Username => AuditAttribute::Username,
        LookupAttributeKey::ResourceType => AuditAttribute::ResourceType,
        LookupAttributeKey::ResourceName => AuditAttribute::ResourceName,
        LookupAttributeKey::EventSource => AuditAttribute::EventSource,
        LookupAttributeKey::AccessKeyId => AuditAttribute::AccessKeyId,
    }
}

fn encode_token(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("ct:{seq}"))
}

fn decode_token(token: &str) -> Option<i64> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
    text.strip_prefix("ct:")?.parse().ok()
}
