//! Key lifecycle: CreateKey, DescribeKey, ListKeys, EnableKey, DisableKey,
//! ScheduleKeyDeletion, CancelKeyDeletion, UpdateKeyDescription.

use keyhold_crypto::asymmetric::PrivateKey;
use keyhold_proto::kms::*;

use super::KmsService;
use super::authz::Facts;
use super::error::KmsError;
use super::key::DAY_MS;
use super::managed::default_key_policy;
use super::pagination::List;
use super::policies::validate_new_policy;
use super::resolve::Aliases;
use super::specs::{check_create, crypto_spec, crypto_use};
use super::tags::{merge_tags, to_store_tags};
use crate::context::RequestContext;

/// The waiting period of `ScheduleKeyDeletion`: 7 to 30 days, 30 by default.
const PENDING_WINDOW_DAYS: std::ops::RangeInclusive<i32> = 7..=30;
const DEFAULT_PENDING_WINDOW_DAYS: i32 = 30;

pub async fn create_key(
    kms: &KmsService,
    ctx: &RequestContext,
    input: CreateKeyRequest,
) -> Result<CreateKeyResponse, KmsError> {
    let facts = Facts {
        bypass_policy_lockout_safety_check: input.bypass_policy_lockout_safety_check,
        multi_region: Some(input.multi_region == Some(true)),
        ..Facts::default()
    };
    kms.authorize_account_with(ctx, "kms:CreateKey", &facts)?;
    let spec = match (input.key_spec, input.customer_master_key_spec) {
        (Some(spec), Some(cmk)) if spec.as_str() != cmk.as_str() => {
            return Err(KmsError::SpecConflict);
        }
        (Some(spec), _) => spec,
        (None, Some(cmk)) => KeySpec::parse(cmk.as_str()).ok_or(KmsError::SpecConflict)?,
        (None, None) => KeySpec::SymmetricDefault,
    };
    let usage = check_create(spec, input.key_usage)?;
    if input.custom_key_store_id.is_some() || input.origin == Some(OriginType::AwsCloudhsm) {
        return super::custom_key_stores::create_key(kms, ctx, input, spec).await;
    }
    let external = match input.origin {
        None | Some(OriginType::AwsKms) => false,
        // Imported material: symmetric encryption, RSA, ECC (not Ed25519) and HMAC keys.
        Some(OriginType::External) if super::import::importable(spec) => true,
        Some(origin) => {
            return Err(KmsError::Unsupported {
                what: format!("Origin {origin} with KeySpec {spec}"),
            });
        }
    };
    let multi_region = input.multi_region == Some(true);
    if input.xks_key_id.is_some() || input.origin == Some(OriginType::ExternalKeyStore) {
        return Err(KmsError::Unsupported {
            what: "keys in external key stores".into(),
        });
    }
    let tags = merge_tags(&[], input.tags.as_deref().unwrap_or_default())?;
    let private = match (crypto_spec(spec), crypto_use(spec, usage)) {
        // An external key waits for its material: nothing to generate.
        _ if external => None,
        (Some(spec), Some(key_use)) => {
            // RSA key generation takes up to a second: off the async workers.
            let generated =
                tokio::task::spawn_blocking(move || PrivateKey::generate(spec, key_use))
                    .await
                    .map_err(|_| KmsError::Internal)?;
            Some(generated.map_err(|_| KmsError::Internal)?)
        }
        _ => None,
    };
    let mut new = kms.new_key(
        &ctx.scope,
        input.description.unwrap_or_default(),
        default_key_policy(&ctx.scope),
        KeyManagerType::Customer,
        private,
        multi_region,
    )?;
    // As AWS documents for `Tags`: `kms:TagResource` in an IAM policy, on the new key.
    if !tags.is_empty() {
        kms.authorize_identity_on(ctx, "kms:TagResource", &new.record.arn, &Facts::default())?;
    }
    if external {
        // The spec and usage asked for: the material comes with the import.
        new.record.key_spec = spec.as_str().to_owned();
        new.record.key_usage = usage.as_str().to_owned();
    }
    if let Some(text) = input.policy {
        let bypass = input.bypass_policy_lockout_safety_check == Some(true);
        validate_new_policy(ctx, kms.clock.now(), &text, bypass, &new.record.arn)?;
        new.record.policy = text;
    }
    // No write lock: the key's id is new and random, so no other writer can touch it yet;
    // the insert marks the write for readers (see `WriteLocks::note_write`).
    let key = if external {
        kms.insert_external_key(new, to_store_tags(&tags)).await?
    } else {
        kms.insert_key(new, to_store_tags(&tags), None).await?
    };
    ctx.note_resource("AWS::KMS::Key", key.arn());
    let mut metadata = key.metadata();
    if multi_region {
        metadata.multi_region_configuration = kms.multi_region_configuration(&key).await?;
    }
    Ok(CreateKeyResponse {
        key_metadata: Some(metadata),
    })
}

pub async fn describe_key(
    kms: &KmsService,
    ctx: &RequestContext,
    input: DescribeKeyRequest,
) -> Result<DescribeKeyResponse, KmsError> {
    kms.check_grant_tokens(input.grant_tokens.as_deref())
        .await?;
    let key = kms.resolve(ctx, &input.key_id, Aliases::Allowed).await?;
    kms.authorize(ctx, &key, "kms:DescribeKey", &Facts::default())?;
    Ok(DescribeKeyResponse {
        key_metadata: Some(kms.key_metadata(&key).await?),
    })
}

pub async fn list_keys(
    kms: &KmsService,
    ctx: &RequestContext,
    input: ListKeysRequest,
) -> Result<ListKeysResponse, KmsError> {
    kms.authorize_account(ctx, "kms:ListKeys")?;
    let after = List::Keys.decode(input.marker.as_deref())?;
    let size = List::Keys.page_size(input.limit);
    let scope = &ctx.scope;
    let mut records = kms
        .store
        .list_keys(&scope.account, &scope.region, after.as_deref(), size + 1)
        .await?;
    let truncated = records.len() > size;
    records.truncate(size);
    let next_marker = if truncated {
        records.last().map(|r| List::Keys.encode(&r.key_id))
    } else {
        None
    };
    let keys = records
        .into_iter()
        .map(|r| KeyListEntry {
            key_id: Some(super::multi_region::wire_id(&r.key_id).to_owned()),
            key_arn: Some(r.arn),
        })
        .collect();
    Ok(ListKeysResponse {
        keys: Some(keys),
        next_marker,
        truncated: Some(truncated),
    })
}

pub async fn enable_key(
    kms: &KmsService,
    ctx: &RequestContext,
    input: EnableKeyRequest,
) -> Result<(), KmsError> {
    set_enabled(kms, ctx, &input.key_id, true).await
}

pub async fn disable_key(
    kms: &KmsService,
    ctx: &RequestContext,
    input: DisableKeyRequest,
) -> Result<(), KmsError> {
    set_enabled(kms, ctx, &input.key_id, false).await
}

async fn set_enabled(
    kms: &KmsService,
    ctx: &RequestContext,
    key_id: &str,
    enabled: bool,
) -> Result<(), KmsError> {
    let action = if enabled {
        "kms:EnableKey"
    } else {
        "kms:DisableKey"
    };
    let _guard = kms.writes.lock().await;
    let key = kms.resolve(ctx, key_id, Aliases::NotAllowed).await?;
    kms.authorize(ctx, &key, action, &Facts::default())?;
    key.check_not_pending_deletion()?;
    if key.state == KeyState::PendingImport {
        return Err(KmsError::PendingImport {
            arn: key.arn().to_owned(),
        });
    }
    let state = if enabled {
        KeyState::Enabled
    } else {
        KeyState::Disabled
    };
    if key.state == state {
        return Ok(());
    }
    let mut record = key.record.clone();
    record.state = state.as_str().to_owned();
    kms.update_key(&key, record, None).await?;
    Ok(())
}

pub async fn schedule_key_deletion(
    kms: &KmsService,
    ctx: &RequestContext,
    input: ScheduleKeyDeletionRequest,
) -> Result<ScheduleKeyDeletionResponse, KmsError> {
    let days = input
        .pending_window_in_days
        .unwrap_or(DEFAULT_PENDING_WINDOW_DAYS);
    if !PENDING_WINDOW_DAYS.contains(&days) {
        return Err(KmsError::PendingWindow);
    }
    let _guard = kms.writes.lock().await;
    let key = kms.resolve(ctx, &input.key_id, Aliases::NotAllowed).await?;
    kms.authorize(ctx, &key, "kms:ScheduleKeyDeletion", &Facts::default())?;
    key.check_not_pending_deletion()?;
    let mut record = key.record.clone();
    if kms.has_replicas(&key).await? {
        // A multi-Region primary outlives its replicas: its waiting period starts when the
        // last of them is deleted (the deletion sweep), so there is no date yet; the
        // record keeps the period's length until then.
        record.state = KeyState::PendingReplicaDeletion.as_str().to_owned();
        record.deletion_ms = Some(i64::from(days) * DAY_MS);
        let key = kms.update_key(&key, record, None).await?;
        return Ok(ScheduleKeyDeletionResponse {
            key_id: Some(key.arn().to_owned()),
            deletion_date: None,
            key_state: Some(KeyState::PendingReplicaDeletion),
            pending_window_in_days: Some(days),
        });
    }
    let deletion = kms.clock.now().plus_days(i64::from(days));
    record.state = KeyState::PendingDeletion.as_str().to_owned();
    record.deletion_ms = Some(deletion.as_millis());
    let key = kms.update_key(&key, record, None).await?;
    Ok(ScheduleKeyDeletionResponse {
        key_id: Some(key.arn().to_owned()),
        deletion_date: Some(deletion),
        key_state: Some(KeyState::PendingDeletion),
        pending_window_in_days: Some(days),
    })
}

pub async fn cancel_key_deletion(
    kms: &KmsService,
    ctx: &RequestContext,
    input: CancelKeyDeletionRequest,
) -> Result<CancelKeyDeletionResponse, KmsError> {
    let _guard = kms.writes.lock().await;
    let key = kms.resolve(ctx, &input.key_id, Aliases::NotAllowed).await?;
    kms.authorize(ctx, &key, "kms:CancelKeyDeletion", &Facts::default())?;
    if !key.is_pending_deletion() {
        return Err(KmsError::NotPendingDeletion {
            arn: key.arn().to_owned(),
        });
    }
    let mut record = key.record.clone();
    // A key whose imported material is missing goes back to waiting for it.
    let state = if super::import::lacks_material(key.origin, &key.materials.imported) {
        KeyState::PendingImport
    } else {
        KeyState::Disabled
    };
    record.state = state.as_str().to_owned();
    record.deletion_ms = None;
    let key = kms.update_key(&key, record, None).await?;
    Ok(CancelKeyDeletionResponse {
        key_id: Some(key.arn().to_owned()),
    })
}

pub async fn update_key_description(
    kms: &KmsService,
    ctx: &RequestContext,
    input: UpdateKeyDescriptionRequest,
) -> Result<(), KmsError> {
    let _guard = kms.writes.lock().await;
    let key = kms.resolve(ctx, &input.key_id, Aliases::NotAllowed).await?;
    kms.authorize(ctx, &key, "kms:UpdateKeyDescription", &Facts::default())?;
    key.check_not_pending_deletion()?;
    let mut record = key.record.clone();
    record.description = input.description;
    kms.update_key(&key, record, None).await?;
    Ok(())
}
