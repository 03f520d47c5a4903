//! GetKeyLastUsage: the last successful cryptographic operation with a key, read from the
//! audit trail (the record AWS's answer names), so the hot path writes nothing for it.
//!
//! Keyhold's trail records every call from a key's creation on, so `TrackingStartDate` is
//! the key's creation date. A call whose event is still on its way to the trail (spool
//! mode) shows up once written; events pruned from the trail are no longer found. On a
//! PostgreSQL store the nodes' shared lookup index answers: the last use through any node
//! (another node's within the lag docs/ha.md states). [`crate::audit::source`] decides
//! which index answers.

use keyhold_proto::Timestamp;
use keyhold_proto::kms::*;

use super::KmsService;
use super::authz::Facts;
use super::error::KmsError;
use super::resolve::Aliases;
use crate::audit::LastSuccessQuery;
use crate::context::RequestContext;

/// The operations AWS tracks (`KeyLastUsageTrackingOperation`).
const TRACKED: &[&str] = &[
    "Decrypt",
    "DeriveSharedSecret",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateMac",
    "ReEncrypt",
    "Sign",
    "Verify",
    "VerifyMac",
    "Encapsulate",
    "Decapsulate",
];

pub async fn get_key_last_usage(
    kms: &KmsService,
    ctx: &RequestContext,
    input: GetKeyLastUsageRequest,
) -> Result<GetKeyLastUsageResponse, KmsError> {
    // Alias names are not supported here (AWS's API reference).
    let key = kms.resolve(ctx, &input.key_id, Aliases::NotAllowed).await?;
    kms.authorize(ctx, &key, "kms:GetKeyLastUsage", &Facts::default())?;
    let found = kms
        .lookups
        .last_success(&LastSuccessQuery {
            account: &key.record.account,
            region: &key.record.region,
            source: "kms.amazonaws.com",
            resource: key.arn(),
            names: TRACKED,
        })
        .await
        .map_err(|_| KmsError::Internal)?;
    let created = Timestamp::from_millis(key.record.creation_ms);
    Ok(GetKeyLastUsageResponse {
        key_id: Some(key.arn().to_owned()),
        key_creation_date: Some(created),
        tracking_start_date: Some(created),
        key_last_usage: found.map(|f| KeyLastUsageData {
            cloud_trail_event_id: Some(f.event_id),
            kms_request_id: Some(f.request_id),
            operation: KeyLastUsageTrackingOperation::parse(&f.event_name),
            timestamp: Some(Timestamp::from_millis(f.time_ms)),
        }),
    })
}
