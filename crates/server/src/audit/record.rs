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

use keyhold_proto::route::{Operation, Service};
use keyhold_proto::{ApiError, Timestamp};
use serde_json::{Map, Value, json};

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
    let event_id = uuid::Uuid::new_v4().to_string();
    let read_only = is_read_only(op);
    let username = username(ctx);
    let mut record = Map::new();
    record.insert("eventVersion".into(), "1.09".into());
    record.insert("userIdentity".into(), user_identity(ctx));
    record.insert("eventTime".into(), now.to_iso8601_seconds().into());
    record.insert("eventSource".into(), op.service().event_source().into());
    record.insert("eventName".into(), op.name().into());
    record.insert("awsRegion".into(), ctx.scope.region.clone().into());
    let (source_ip, user_agent) = match &ctx.via_service {
        Some(_) => (ctx.user_agent.clone(), ctx.user_agent.clone()),
        None => (ctx.source_ip.to_string(), ctx.user_agent.clone()),
    };
    record.insert("sourceIPAddress".into(), source_ip.into());
    record.insert("userAgent".into(), user_agent.into());
    if let Some(error) = event.error {
        record.insert("errorCode".into(), error_code(op, error).into());
        if let Some(message) = error.message() {
            record.insert("errorMessage".into(), message.into());
        }
    }
    record.insert(
        "requestParameters".into(),
        event
            .notes
            .request_parameters
            .clone()
            .unwrap_or(Value::Null),
    );
    // `read_only` covers KMS's cryptographic operations too: AWS writes null for both.
    let response = match (event.error, read_only) {
        (None, false) => event.notes.response_elements.clone().unwrap_or(Value::Null),
        _ => Value::Null,
    };
    record.insert("responseElements".into(), response);
    record.insert("requestID".into(), ctx.request_id.clone().into());
    record.insert("eventID".into(), event_id.clone().into());
    record.insert("readOnly".into(), read_only.into());
    let resources: Vec<(String, String)> = event
        .notes
        .resources
        .iter()
        .map(|(t, arn)| ((*t).to_owned(), arn.clone()))
        .collect();
    if !resources.is_empty() {
        let list: Vec<Value> = resources
            .iter()
            .map(|(t, arn)| json!({"accountId": arn_account(arn).unwrap_or(&ctx.scope.account), "type": t, "ARN": arn}))
            .collect();
        record.insert("resources".into(), Value::Array(list));
    }
    record.insert("eventType".into(), "AwsApiCall".into());
    record.insert("managementEvent".into(), true.into());
    let recipient = resources
        .first()
        .and_then(|(_, arn)| arn_account(arn))
        .unwrap_or(&ctx.scope.account)
        .to_owned();
    record.insert("recipientAccountId".into(), recipient.clone().into());
    record.insert("eventCategory".into(), "Management".into());
    Pending {
        text: Value::Object(record).to_string(),
        account: ctx.caller.account.clone(),
        recipient_account: recipient,
        region: ctx.scope.region.clone(),
        event_id,
        time_ms: now.as_millis(),
        event_name: op.name().to_owned(),
        event_source: op.service().event_source().to_owned(),
        read_only,
        username,
        access_key_id: ctx.caller.access_key_id.clone(),
        resources,
    }
}

/// Builds the record of a service event: CloudTrail's `AwsServiceEvent` shape, the acting
/// service as the identity (`userIdentity.invokedBy`, `sourceIPAddress`, `userAgent`), the details
/// under `serviceEventDetails`, and no request or response.
pub fn build_service_event(event: ServiceEvent<'_>) -> Pending {
    let now = Timestamp::now();
    let event_id = uuid::Uuid::new_v4().to_string();
    let resources: Vec<(String, String)> = event
        .resources
        .iter()
        .map(|(t, arn)| ((*t).to_owned(), arn.clone()))
        .collect();
    let mut record = Map::new();
    record.insert("eventVersion".into(), "1.09".into());
    record.insert(
        "userIdentity".into(),
        json!({"accountId": event.account, "invokedBy": event.invoked_by}),
    );
    record.insert("eventTime".into(), now.to_iso8601_seconds().into());
    record.insert("eventSource".into(), event.source.into());
    record.insert("eventName".into(), event.name.into());
    record.insert("awsRegion".into(), event.region.into());
    record.insert("sourceIPAddress".into(), event.invoked_by.into());
    record.insert("userAgent".into(), event.invoked_by.into());
    record.insert("requestParameters".into(), Value::Null);
    record.insert("responseElements".into(), Value::Null);
    record.insert("eventID".into(), event_id.clone().into());
    record.insert("readOnly".into(), false.into());
    if !resources.is_empty() {
        let list: Vec<Value> = resources
            .iter()
            .map(|(t, arn)| json!({"accountId": arn_account(arn).unwrap_or(event.account), "type": t, "ARN": arn}))
            .collect();
        record.insert("resources".into(), Value::Array(list));
    }
    record.insert("eventType".into(), "AwsServiceEvent".into());
    record.insert("managementEvent".into(), true.into());
    record.insert("recipientAccountId".into(), event.account.into());
    record.insert("serviceEventDetails".into(), event.details);
    record.insert("eventCategory".into(), "Management".into());
    Pending {
        text: Value::Object(record).to_string(),
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

fn user_identity(ctx: &RequestContext) -> Value {
    let caller = &ctx.caller;
    let mut identity = Map::new();
    match &caller.kind {
        PrincipalKind::Root => {
            identity.insert("type".into(), "Root".into());
            identity.insert("principalId".into(), caller.account.clone().into());
        }
        PrincipalKind::User { user_id, .. } => {
            identity.insert("type".into(), "IAMUser".into());
            identity.insert("principalId".into(), user_id.clone().into());
        }
        PrincipalKind::AssumedRole {
            role_arn,
            role_id,
            session_name,
        } => {
            identity.insert("type".into(), "AssumedRole".into());
            identity.insert(
                "principalId".into(),
                format!("{role_id}:{session_name}").into(),
            );
            let role_name = role_arn.rsplit('/').next().unwrap_or_default();
            identity.insert(
                "sessionContext".into(),
                json!({
                    "sessionIssuer": {
                        "type": "Role",
                        "principalId": role_id,
                        "arn": role_arn,
                        "accountId": caller.account,
                        "userName": role_name,
                    }
                }),
            );
        }
    }
    identity.insert("arn".into(), caller.arn.clone().into());
    identity.insert("accountId".into(), caller.account.clone().into());
    if let Some(key) = &caller.access_key_id {
        identity.insert("accessKeyId".into(), key.clone().into());
    }
    if let PrincipalKind::User { name, .. } = &caller.kind {
        identity.insert("userName".into(), name.clone().into());
    }
    if let Some(via) = &ctx.via_service {
        let service = via.split('.').next().unwrap_or_default();
        identity.insert(
            "invokedBy".into(),
            format!("{service}.amazonaws.com").into(),
        );
    }
    Value::Object(identity)
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
