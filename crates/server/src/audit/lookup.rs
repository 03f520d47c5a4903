//! CloudTrail's `LookupEvents` over the trail: `aws cloudtrail lookup-events` works against
//! Keyhold. Events of the caller's account (as caller or as resource owner) in the request's
//! region, newest first, filtered by one lookup attribute and a time range, 50 per page.
//!
//! The caller needs `cloudtrail:LookupEvents` on `*` (the account root always has it), decided
//! by the shared engine like every other operation: the trail names every caller and resource
//! of the account, so it is not readable by default.
//!
//! The events come from the node's [`LookupSource`]: on a single node the trail's own index
//! (newest first by sequence), on a PostgreSQL store the nodes' shared lookup index (the
//! events of every node, newest first by time, then node and sequence, with `NextToken`s that
//! any node continues).

use std::sync::Arc;

use keyhold_proto::cloudtrail::*;
use keyhold_proto::{ApiError, CommonError, Timestamp};
use keyhold_store::audit::AuditAttribute;

use super::source::{EventsQuery, FoundEvent, LookupError, LookupSource};
use crate::authz::{Access, Denied, RequestConditions, ResourceRule, decide};
use crate::context::RequestContext;

/// The CloudTrail service.
pub struct CloudTrailService {
    lookups: Arc<LookupSource>,
}

impl CloudTrailService {
    pub fn new(lookups: Arc<LookupSource>) -> Self {
        Self { lookups }
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
        // The page starts after the token's event (its form is the lookup source's).
        let after = match input.next_token.as_deref() {
            Some(token) => Some(
                self.lookups
                    .page_start(token)
                    .ok_or(CloudTrailError::InvalidNextToken)?,
            ),
            None => None,
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
        let page = self
            .lookups
            .events(EventsQuery {
                account: ctx.scope.account.clone(),
                region: ctx.scope.region.clone(),
                attribute,
                start_ms: input.start_time.map(Timestamp::as_millis),
                end_ms: input.end_time.map(Timestamp::as_millis),
                page: after,
                limit,
            })
            .await?;
        Ok(LookupEventsResponse {
            events: Some(page.events.into_iter().map(event).collect()),
            next_token: page.next_token,
        })
    }
}

/// The answer's form of an event found.
fn event(e: FoundEvent) -> Event {
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

impl From<LookupError> for CloudTrailError {
    fn from(e: LookupError) -> Self {
        match e {
            // A token of the other index's kind: not one this service issued.
            LookupError::ForeignToken => Self::InvalidNextToken,
            LookupError::Unreadable => Self::Internal,
        }
    }
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
