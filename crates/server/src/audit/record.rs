//! The CloudTrail record of one call.
//!
//! Fields as CloudTrail writes them (eventVersion 1.09): `userIdentity` (with `invokedBy`
//! when a service calls on the caller's behalf), `eventTime`, `eventSource`, `eventName`,
//! `awsRegion`, `sourceIPAddress`, `userAgent`, `requestParameters` (sensitive members never
//! present), `responseElements` (null for reads and cryptographic operations, as AWS writes
//! them), `requestID`, `eventID`, `readOnly`, `resources`, `eventType`, `managementEvent`,
//! `recipientAccountId`, `eventCategory`, and `errorCode`/`errorMessage` on failure.
//! A service event (`eventType` `AwsServiceEvent`) has the service as its identity, no
//! request or response, and says what happened in `serviceEventDetails`.

use std::borrow::Cow;

use keyhold_proto::route::{Operation, Service};
use keyhold_proto::{ApiError, Timestamp};
use serde::Serialize;
use serde_json::Value;

use super::{AuditEvent, ServiceEvent};
use crate::context::{PrincipalKind, RequestContext};

/// A record before it is chained (serialized already, so the single writer thread only
/// appends the link and hashes), with the columns lookups filter on.
#[derive(Debug)]
pub struct Pending {
    /// The record as JSON text, without its `keyholdChain` link.
    pub text: String,
    pub account: String,
    pub recipient_account: String,
    pub region: String,
    pub event_id: String,
    pub time_ms: i64,
    pub event_name: String,
    pub event_source: String,
    pub read_only: bool,
    pub username: Option<String>,
    pub access_key_id: Option<String>,
    pub resources: Vec<(String, String)>,
}

/// Builds the record of `event`.
pub fn build(event: AuditEvent<'_>) -> Pending {
    let ctx = event.ctx;
    let op = ctx.operation;
    let now = Timestamp::now();
    let event_id = new_event_id(now.as_millis());
    let read_only = is_read_only(op);
    let source_ip = match &ctx.via_service {
        Some(_) => SourceIp::Service(&ctx.user_agent),
        None => SourceIp::Address(ctx.source_ip),
    };
    // `read_only` covers KMS's cryptographic operations too: AWS writes null for both.
    let response = match (event.error, read_only) {
        (None, false) => event.notes.response_elements.as_ref(),
        _ => None,
    };
    let resources: Vec<(String, String)> = event
        .notes
        .resources
        .iter()
        .map(|(t, arn)| ((*t).to_owned(), arn.clone()))
        .collect();
    let refs = resource_refs(&resources, &ctx.scope.account);
    // The account of the first resource (CloudTrail's recipient), else the caller's scope.
    let recipient = refs
        .first()
        .map_or(ctx.scope.account.as_str(), |r| r.account_id)
        .to_owned();
    let record = Record {
        event_version: "1.09",
        user_identity: user_identity(ctx),
        event_time: now.to_iso8601_seconds(),
        event_source: op.service().event_source(),
        event_name: op.name(),
        aws_region: &ctx.scope.region,
        source_ip_address: source_ip,
        user_agent: &ctx.user_agent,
        error_code: event.error.map(|e| error_code(op, e)),
        error_message: event.error.and_then(ApiError::message),
        request_parameters: event.notes.request_parameters.as_ref(),
        response_elements: response,
        request_id: Some(&ctx.request_id),
        event_id: &event_id,
        read_only,
        resources: refs,
        event_type: "AwsApiCall",
        management_event: true,
        recipient_account_id: &recipient,
        service_event_details: None,
        event_category: "Management",
    };
    let text = to_text(&record);
    Pending {
        text,
        account: ctx.caller.account.clone(),
        recipient_account: recipient,
        region: ctx.scope.region.clone(),
        event_id,
        time_ms: now.as_millis(),
        event_name: op.name().to_owned(),
        event_source: op.service().event_source().to_owned(),
        read_only,
        username: username(ctx),
        access_key_id: ctx.caller.access_key_id.clone(),
        resources,
    }
}

/// Builds the record of a service event: CloudTrail's `AwsServiceEvent` shape, the acting
/// service as the identity (`userIdentity.invokedBy`, `sourceIPAddress`, `userAgent`), the details
/// under `serviceEventDetails`, and no request or response.
pub fn build_service_event(event: ServiceEvent<'_>) -> Pending {
    let now = Timestamp::now();
    let event_id = new_event_id(now.as_millis());
    let resources: Vec<(String, String)> = event
        .resources
        .iter()
        .map(|(t, arn)| ((*t).to_owned(), arn.clone()))
        .collect();
    let record = Record {
        event_version: "1.09",
        user_identity: Identity {
            account_id: event.account,
            invoked_by: Some(Cow::Borrowed(event.invoked_by)),
            ..Identity::default()
        },
        event_time: now.to_iso8601_seconds(),
        event_source: event.source,
        event_name: event.name,
        aws_region: event.region,
        source_ip_address: SourceIp::Service(event.invoked_by),
        user_agent: event.invoked_by,
        error_code: None,
        error_message: None,
        request_parameters: None,
        response_elements: None,
        request_id: None,
        event_id: &event_id,
        read_only: false,
        resources: resource_refs(&resources, event.account),
        event_type: "AwsServiceEvent",
        management_event: true,
        recipient_account_id: event.account,
        service_event_details: Some(&event.details),
        event_category: "Management",
    };
    let text = to_text(&record);
    Pending {
        text,
        account: event.account.to_owned(),
        recipient_account: event.account.to_owned(),
        region: event.region.to_owned(),
        event_id,
        time_ms: now.as_millis(),
        event_name: event.name.to_owned(),
        event_source: event.source.to_owned(),
        read_only: false,
        username: None,
        access_key_id: None,
        resources,
    }
}

/// `sourceIPAddress`: the caller's address, or the name of the service that acted. The
/// address is written into the record as it is serialized, without a string of its own.
#[derive(Clone, Copy)]
enum SourceIp<'a> {
    Address(std::net::IpAddr),
    Service(&'a str),
}

impl Serialize for SourceIp<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Address(ip) => serializer.collect_str(ip),
            Self::Service(name) => serializer.serialize_str(name),
        }
    }
}

/// A new event's `eventID`: a UUID of version 7 (RFC 9562), whose first 48 bits are the
/// event's time in milliseconds and the other 74 random. It is still a UUID, as CloudTrail's
/// event ids are, and ids sort by time: the lookup index's event-id B-tree takes each
/// insert at its end, where random (version 4) ids landed on another page each time. The
/// random bits come from AWS-LC's generator (a user-space DRBG, no system call per id),
/// drawn for [`IDS_PER_DRAW`] ids at a time.
pub fn new_event_id(time_ms: i64) -> String {
    let random = ID_RANDOM.with(|pool| pool.borrow_mut().take());
    let millis = u64::try_from(time_ms).unwrap_or(0);
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
    let mut text = uuid::Uuid::encode_buffer();
    id.hyphenated().encode_lower(&mut text).to_owned()
}

/// Event ids whose random bits one call to the generator draws (a call costs about what
/// drawing a few hundred bytes does).
const IDS_PER_DRAW: usize = 64;

/// Random bits of an event id (the 74 bits of a version 7 UUID after its time, in 10 bytes).
type IdRandom = [u8; 10];

thread_local! {
    static ID_RANDOM: std::cell::RefCell<IdPool> = const {
        std::cell::RefCell::new(IdPool { bits: [[0; 10]; IDS_PER_DRAW], next: IDS_PER_DRAW })
    };
}

/// Random bits drawn ahead for the next event ids of one thread.
struct IdPool {
    bits: [IdRandom; IDS_PER_DRAW],
    /// The next unused entry of `bits` (`IDS_PER_DRAW`: none left).
    next: usize,
}

impl IdPool {
    fn take(&mut self) -> IdRandom {
        if self.next >= IDS_PER_DRAW {
            if keyhold_crypto::random::fill(self.bits.as_flattened_mut()).is_err() {
                // Not expected (AWS-LC's generator does not fail once seeded); the operating
                // system's generator then, through `uuid`.
                for bits in &mut self.bits {
                    bits.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..10]);
                }
            }
            self.next = 0;
        }
        let bits = self.bits[self.next];
        self.next += 1;
        bits
    }
}

/// The record as CloudTrail writes it, serialized straight to text (no intermediate
/// `Value`s, borrowing what the request already holds).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Record<'a> {
    event_version: &'static str,
    user_identity: Identity<'a>,
    event_time: String,
    event_source: &'a str,
    event_name: &'a str,
    aws_region: &'a str,
    #[serde(rename = "sourceIPAddress")]
    source_ip_address: SourceIp<'a>,
    user_agent: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<&'a str>,
    request_parameters: Option<&'a Value>,
    response_elements: Option<&'a Value>,
    #[serde(rename = "requestID", skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(rename = "eventID")]
    event_id: &'a str,
    read_only: bool,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    resources: Vec<ResourceRef<'a>>,
    event_type: &'static str,
    management_event: bool,
    recipient_account_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_event_details: Option<&'a Value>,
    event_category: &'static str,
}

/// `userIdentity`: the caller (a call) or the acting service (a service event).
#[derive(Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Identity<'a> {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    principal_id: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_context: Option<SessionContext<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arn: Option<&'a str>,
    account_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_key_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    invoked_by: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionContext<'a> {
    session_issuer: SessionIssuer<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionIssuer<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    principal_id: &'a str,
    arn: &'a str,
    account_id: &'a str,
    user_name: &'a str,
}

#[derive(Serialize)]
struct ResourceRef<'a> {
    #[serde(rename = "accountId")]
    account_id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(rename = "ARN")]
    arn: &'a str,
}

/// What a record's text is first given room for: a typical record and the chain link the
/// writer appends to it (so the text is not copied to grow on the way).
const TEXT_CAPACITY: usize = 1536;

fn to_text(record: &Record<'_>) -> String {
    let mut text = Vec::with_capacity(TEXT_CAPACITY);
    // Serializing borrowed strings and `Value`s cannot fail, and gives UTF-8.
    match serde_json::to_writer(&mut text, record) {
        Ok(()) => String::from_utf8(text).unwrap_or_else(|_| "{}".to_owned()),
        Err(_) => "{}".to_owned(),
    }
}

/// The `resources` of a record: each ARN with its account (or `account` for ARNs without
/// one).
fn resource_refs<'a>(resources: &'a [(String, String)], account: &'a str) -> Vec<ResourceRef<'a>> {
    resources
        .iter()
        .map(|(kind, arn)| ResourceRef {
            account_id: arn_account(arn).unwrap_or(account),
            kind,
            arn,
        })
        .collect()
}

fn user_identity(ctx: &RequestContext) -> Identity<'_> {
    let caller = &ctx.caller;
    let mut identity = Identity {
        arn: Some(&caller.arn),
        account_id: &caller.account,
        access_key_id: caller.access_key_id.as_deref(),
        invoked_by: ctx.via_service.as_deref().map(|via| {
            let service = via.split('.').next().unwrap_or_default();
            Cow::Owned(format!("{service}.amazonaws.com"))
        }),
        ..Identity::default()
    };
    match &caller.kind {
        PrincipalKind::Root => {
            identity.kind = Some("Root");
            identity.principal_id = Some(Cow::Borrowed(&caller.account));
        }
        PrincipalKind::User { user_id, name } => {
            identity.kind = Some("IAMUser");
            identity.principal_id = Some(Cow::Borrowed(user_id));
            identity.user_name = Some(name);
        }
        PrincipalKind::AssumedRole {
            role_arn,
            role_id,
            session_name,
        } => {
            identity.kind = Some("AssumedRole");
            identity.principal_id = Some(Cow::Owned(format!("{role_id}:{session_name}")));
            identity.session_context = Some(SessionContext {
                session_issuer: SessionIssuer {
                    kind: "Role",
                    principal_id: role_id,
                    arn: role_arn,
                    account_id: &caller.account,
                    user_name: role_arn.rsplit('/').next().unwrap_or_default(),
                },
            });
        }
    }
    identity
}

/// CloudTrail's `Username` of a caller: the root user is `root`, a session its role's name.
fn username(ctx: &RequestContext) -> Option<String> {
    match &ctx.caller.kind {
        PrincipalKind::Root => Some("root".to_owned()),
        PrincipalKind::User { name, .. } => Some(name.clone()),
        PrincipalKind::AssumedRole { session_name, .. } => Some(session_name.clone()),
    }
}

fn error_code(op: Operation, error: &ApiError) -> &'static str {
    match op.service().protocol() {
        keyhold_proto::Protocol::Json => error.code(),
        keyhold_proto::Protocol::Query => error.query_code(),
    }
}

/// The account of a resource ARN; `None` for ARNs without one (`arn:aws:s3:::bucket`).
fn arn_account(arn: &str) -> Option<&str> {
    crate::arn::Arn::parse(arn)
        .map(|a| a.account)
        .filter(|a| !a.is_empty())
}

/// CloudTrail's `readOnly`: reads, and KMS's cryptographic operations, which change nothing.
pub fn is_read_only(op: Operation) -> bool {
    let name = op.name();
    ["Describe", "Get", "List", "Lookup", "BatchGet", "Validate"]
        .iter()
        .any(|p| name.starts_with(p))
        || is_cryptographic(op)
}

/// KMS operations whose `responseElements` AWS writes as null.
fn is_cryptographic(op: Operation) -> bool {
    op.service() == Service::Kms
        && matches!(
            op.name(),
            "Encrypt"
                | "Decrypt"
                | "ReEncrypt"
                | "GenerateDataKey"
                | "GenerateDataKeyWithoutPlaintext"
                | "GenerateDataKeyPair"
                | "GenerateDataKeyPairWithoutPlaintext"
                | "GenerateRandom"
                | "Sign"
                | "Verify"
                | "GenerateMac"
                | "VerifyMac"
                | "DeriveSharedSecret"
                | "Encapsulate"
                | "Decapsulate"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_version_7_uuids_that_sort_by_time() {
        let ms = 1_765_000_000_123;
        let id = new_event_id(ms);
        let parsed = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
        assert_eq!(
            id,
            parsed.hyphenated().to_string(),
            "canonical lowercase text"
        );
        let (secs, nanos) = parsed.get_timestamp().unwrap().to_unix();
        assert_eq!(
            i64::try_from(secs).unwrap() * 1000 + i64::from(nanos / 1_000_000),
            ms
        );
        assert!(new_event_id(ms) < new_event_id(ms + 1));
        let ids: std::collections::HashSet<String> =
            (0..3 * IDS_PER_DRAW).map(|_| new_event_id(ms)).collect();
        assert_eq!(
            ids.len(),
            3 * IDS_PER_DRAW,
            "random within a millisecond, across draws"
        );
    }
}
