//! CloudTrail's `LookupEvents` over the trail: `aws cloudtrail lookup-events` works against
//! Keyhold. Events of the caller's account (as caller or as resource owner) in the request's
//! region, newest first, filtered by one lookup attribute and a time range, 50 per page.
//!
//! The caller needs `cloudtrail:LookupEvents` on `*` (the account root always has it), decided
//! by the shared engine like every other operation: the trail names every caller and resource
//! of the account, so it is not readable by default.
//!
//! On a single node the trail's own index answers (newest first by sequence). On a
//! PostgreSQL store the nodes' shared lookup index does ([`super::shared`]): the events of
//! every node, newest first by time (then node and sequence), with `NextToken`s that any node
//! continues.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyhold_proto::cloudtrail::*;
use keyhold_proto::{ApiError, CommonError, Timestamp};
use keyhold_store::audit::{AuditAttribute, AuditQuery, AuditRow};
use keyhold_store::audit_lookup::{SharedEvent, SharedQuery};

use super::shared::{SharedLookups, parse_position, position_text};
use super::trail::AuditTrail;
use crate::authz::{Access, Denied, RequestConditions, ResourceRule, decide};
use crate::context::RequestContext;

/// The CloudTrail service.
pub struct CloudTrailService {
    trail: Arc<AuditTrail>,
    /// The nodes' shared index, on a PostgreSQL store: lookups read it instead of the
    /// trail's own.
    shared: Option<Arc<SharedLookups>>,
}

impl CloudTrailService {
    pub fn new(trail: Arc<AuditTrail>, shared: Option<Arc<SharedLookups>>) -> Self {
        Self { trail, shared }
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
        Ok(self.lookup(ctx, input).await?)
    }
}

impl CloudTrailService {
    async fn lookup(
        &self,
        ctx: &RequestContext,
        input: LookupEventsRequest,
    ) -> Result<LookupEventsResponse, CloudTrailError> {
        authorize_lookup(ctx)?;
        let attributes = input.lookup_attributes.unwrap_or_default();
        if attributes.len() > 1 {
            return Err(CloudTrailError::SeveralLookupAttributes);
        }
        let attribute = attributes
            .into_iter()
            .next()
            .map(|a| (attribute(a.attribute_key), a.attribute_value));
        if let (Some(start), Some(end)) = (input.start_time, input.end_time)
            && start > end
        {
            return Err(CloudTrailError::StartAfterEnd);
        }
        // The page starts after the token's event: a sequence of this node's trail, or a
        // position in the shared index's listing (whichever this node answers from).
        let token = match input.next_token.as_deref() {
            Some(token) => Some(decode_token(token).ok_or(CloudTrailError::InvalidNextToken)?),
            None => None,
        };
        let (before_seq, after) = match (&self.shared, token.as_deref()) {
            (_, None) => (None, None),
            (None, Some(t)) => (
                Some(parse_seq(t).ok_or(CloudTrailError::InvalidNextToken)?),
                None,
            ),
            (Some(_), Some(t)) => (
                None,
                Some(parse_position(t).ok_or(CloudTrailError::InvalidNextToken)?),
            ),
        };
        // Keyhold records management events only: there are no Insights events to return.
        if input.event_category == Some(EventCategory::Insight) {
            return Ok(LookupEventsResponse {
                events: Some(Vec::new()),
                next_token: None,
            });
        }
        let limit = input
            .max_results
            .and_then(|m| usize::try_from(m).ok())
            .unwrap_or(DEFAULT_PAGE);
        let (start_ms, end_ms) = (
            input.start_time.map(Timestamp::as_millis),
            input.end_time.map(Timestamp::as_millis),
        );
        let (events, next_token) = match &self.shared {
            Some(shared) => {
                let query = SharedQuery {
                    account: ctx.scope.account.clone(),
                    region: ctx.scope.region.clone(),
                    attribute,
                    start_ms,
                    end_ms,
                    after,
                    limit: limit + 1,
                };
                let mut found = shared
                    .lookup(&query)
                    .await
                    .map_err(|_| CloudTrailError::Internal)?;
                let next = (found.len() > limit).then(|| {
                    found.truncate(limit);
                    found
                        .last()
                        .map(|e| encode_token(&position_text(&e.position())))
                });
                let events: Vec<Event> = found.into_iter().map(shared_event).collect();
                (events, next.flatten())
            }
            None => {
                let query = AuditQuery {
                    account: ctx.scope.account.clone(),
                    region: ctx.scope.region.clone(),
                    attribute,
                    start_ms,
                    end_ms,
                    before_seq,
                    limit: limit + 1,
                };
                let index = self.trail.index();
                let mut rows =
                    tokio::task::spawn_blocking(move || index.lookup(&query).map_err(|_| ()))
                        .await
                        .map_err(|_| CloudTrailError::Internal)?
                        .map_err(|()| CloudTrailError::Internal)?;
                let next = (rows.len() > limit).then(|| {
                    rows.truncate(limit);
                    rows.last().map(|r| encode_token(&format!("ct:{}", r.seq)))
                });
                let events: Vec<Event> = rows.into_iter().map(local_event).collect();
                (events, next.flatten())
            }
        };
        Ok(LookupEventsResponse {
            events: Some(events),
            next_token,
        })
    }
}

/// The answer's form of an event found in the trail's own index.
fn local_event(r: AuditRow) -> Event {
    Event {
        event_id: Some(r.event_id),
        event_name: Some(r.event_name),
        read_only: Some(r.read_only.to_string()),
        access_key_id: r.access_key_id,
        event_time: Some(Timestamp::from_millis(r.time_ms)),
        event_source: Some(r.event_source),
        username: r.username,
        resources: Some(resources(r.resources)),
        cloud_trail_event: Some(r.record),
    }
}

/// The answer's form of an event found in the shared index.
fn shared_event(e: SharedEvent) -> Event {
    Event {
        event_id: Some(e.event_id),
        event_name: Some(e.event_name),
        read_only: Some(e.read_only.to_string()),
        access_key_id: e.access_key_id,
        event_time: Some(Timestamp::from_millis(e.time_ms)),
        event_source: Some(e.event_source),
        username: e.username,
        resources: Some(resources(e.resources)),
        cloud_trail_event: Some(e.record),
    }
}

fn resources(pairs: Vec<(String, String)>) -> Vec<Resource> {
    pairs
        .into_iter()
        .map(|(t, n)| Resource {
            resource_type: Some(t),
            resource_name: Some(n),
        })
        .collect()
}

/// CloudTrail's failures, and the one place they become AWS's wire errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloudTrailError {
    /// The caller may not call `cloudtrail:LookupEvents` (the engine's message names why).
    AccessDenied(Denied),
    /// More than one lookup attribute.
    SeveralLookupAttributes,
    /// `StartTime` after `EndTime`.
    StartAfterEnd,
    /// A `NextToken` this service did not issue.
    InvalidNextToken,
    /// The trail could not be read.
    Internal,
}

impl From<CloudTrailError> for ApiError {
    fn from(e: CloudTrailError) -> Self {
        use CloudTrailError as E;
        use CloudTrailErrorCode as Code;
        match e {
            E::AccessDenied(denied) => ApiError::new(CommonError::AccessDenied, denied.message()),
            E::SeveralLookupAttributes => ApiError::new(
                Code::InvalidLookupAttributesException,
                "You can specify only one lookup attribute.",
            ),
            E::StartAfterEnd => ApiError::new(
                Code::InvalidTimeRangeException,
                "The start time must be earlier than the end time.",
            ),
            E::InvalidNextToken => {
                ApiError::new(Code::InvalidNextTokenException, "Invalid NextToken.")
            }
            E::Internal => ApiError::internal(),
        }
    }
}

/// `cloudtrail:LookupEvents` on `*`: the trail has no resource policy, so the caller's
/// identity policies decide.
fn authorize_lookup(ctx: &RequestContext) -> Result<(), CloudTrailError> {
    let context = RequestConditions::new(ctx, Timestamp::now(), &[]);
    decide(
        ctx,
        &Access {
            principal: &ctx.caller,
            action: "cloudtrail:LookupEvents",
            resource: "*",
            resource_account: &ctx.scope.account,
            rule: ResourceRule::None,
            context: &context,
        },
    )
    .map_err(CloudTrailError::AccessDenied)
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

/// A `NextToken`: where the page ended (`ct:SEQ` on a single node's index, `ctc:...` on
/// the shared index), base64url.
fn encode_token(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

fn decode_token(token: &str) -> Option<String> {
    String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()
}

fn parse_seq(text: &str) -> Option<i64> {
    text.strip_prefix("ct:")?.parse().ok()
}
