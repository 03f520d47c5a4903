//! Key rotation: EnableKeyRotation, DisableKeyRotation, GetKeyRotationStatus,
//! RotateKeyOnDemand, ListKeyRotations, and the scheduled rotations of the background sweep.
//!
//! A rotation gives a key a new backing key (a new material id), sealed under the domain key
//! and stored durably in the same transaction that makes it current and moves the key's
//! next automatic rotation ([`keyhold_store::KmsStore::rotate_key`]). Every older material
//! stays with the key for good: a ciphertext names its material, so Decrypt and ReEncrypt
//! open ciphertexts from before any rotation, and Encrypt and GenerateDataKey use the newest.
//!
//! **Schedule.** A key's next automatic rotation is a date in its record. The sweep rotates
//! every enabled key whose date has passed, once, and sets the next date one period after
//! the rotation — so a server that was down over one or more due dates rotates each such
//! key once when it starts, not once per missed period. On-demand rotations leave the date
//! alone, as on AWS. Disabled keys and keys pending deletion are not rotated (their date
//! stays; an enabled key whose date passed while it was disabled rotates at the next sweep,
//! as AWS rotates a re-enabled key whose material is older than its period).
//!
//! Only customer-managed symmetric encryption keys with `AWS_KMS` origin can be configured;
//! AWS-managed keys rotate every year on their own (`GetKeyRotationStatus` says `true`).
//! Asymmetric, HMAC and post-quantum keys never rotate: the configuring operations,
//! `RotateKeyOnDemand` and `ListKeyRotations` answer `UnsupportedOperationException`, and
//! `GetKeyRotationStatus` says `false`, as on AWS.

use keyhold_crypto::{MaterialId, SymmetricKey};
use keyhold_proto::Timestamp;
use keyhold_proto::kms::*;
use keyhold_store::{KeyRotation, MaterialRecord};

use super::KmsService;
use super::authz::Facts;
use super::error::KmsError;
use super::key::Key;
use super::pagination::{List, page};
use super::resolve::Aliases;
use crate::audit::ServiceEvent;
use crate::context::RequestContext;

/// `RotationPeriodInDays` when EnableKeyRotation does not give one (the model enforces
/// 90–2560).
pub const DEFAULT_ROTATION_DAYS: i32 = 365;
/// How many on-demand rotations AWS allows per key (not adjustable).
pub const ON_DEMAND_ROTATION_LIMIT: usize = 25;

pub async fn enable_key_rotation(
    kms: &KmsService,
    ctx: &RequestContext,
    input: EnableKeyRotationRequest,
) -> Result<(), KmsError> {
    let days = input
        .rotation_period_in_days
        .unwrap_or(DEFAULT_ROTATION_DAYS);
    let _guard = kms.writes.lock().await;
    let key = kms.resolve(ctx, &input.key_id, Aliases::NotAllowed).await?;
    let facts = Facts {
        rotation_period_in_days: input.rotation_period_in_days,
        ..Facts::default()
    };
    kms.authorize(ctx, &key, "kms:EnableKeyRotation", &facts)?;
    key.check_usable()?;
    check_configurable(&key)?;
    if key.record.rotation_period_days == Some(days) {
        return Ok(());
    }
    let mut record = key.record.clone();
    enable_schedule(&mut record, days, kms.clock.now());
    kms.update_key(&key, record, None).await?;
    Ok(())
}

pub async fn disable_key_rotation(
    kms: &KmsService,
    ctx: &RequestContext,
    input: DisableKeyRotationRequest,
) -> Result<(), KmsError> {
    let _guard = kms.writes.lock().await;
    let key = kms.resolve(ctx, &input.key_id, Aliases::NotAllowed).await?;
    kms.authorize(ctx, &key, "kms:DisableKeyRotation", &Facts::default())?;
    key.check_usable()?;
    check_configurable(&key)?;
    if key.record.rotation_period_days.is_none() {
        return Ok(());
    }
    let mut record = key.record.clone();
    record.rotation_period_days = None;
    record.next_rotation_ms = None;
    kms.update_key(&key, record, None).await?;
    Ok(())
}

pub async fn get_key_rotation_status(
    kms: &KmsService,
    ctx: &RequestContext,
    input: GetKeyRotationStatusRequest,
) -> Result<GetKeyRotationStatusResponse, KmsError> {
    let key = kms.resolve(ctx, &input.key_id, Aliases::NotAllowed).await?;
    kms.authorize(ctx, &key, "kms:GetKeyRotationStatus", &Facts::default())?;
    // A multi-Region replica rotates with its primary, and reports the primary's schedule.
    let primary = match key.is_replica() {
        true => kms.primary_record(&key).await?,
        false => None,
    };
    let record = primary.as_ref().unwrap_or(&key.record);
    // While a key is pending deletion its status is false (and comes back on cancel).
    let schedule = match key.state {
        KeyState::PendingDeletion | KeyState::PendingReplicaDeletion => None,
        _ => record.rotation_period_days.zip(record.next_rotation_ms),
    };
    // On-demand rotations complete before RotateKeyOnDemand answers, so none is ever in
    // progress: OnDemandRotationStartDate is never present.
    Ok(GetKeyRotationStatusResponse {
        key_id: Some(key.arn().to_owned()),
        key_rotation_enabled: Some(schedule.is_some()),
        rotation_period_in_days: schedule.map(|(days, _)| days),
        next_rotation_date: schedule.map(|(_, next)| Timestamp::from_millis(next)),
        on_demand_rotation_start_date: None,
    })
}

pub async fn rotate_key_on_demand(
    kms: &KmsService,
    ctx: &RequestContext,
    input: RotateKeyOnDemandRequest,
) -> Result<RotateKeyOnDemandResponse, KmsError> {
    let _guard = kms.writes.lock().await;
    let key = kms.resolve(ctx, &input.key_id, Aliases::NotAllowed).await?;
    kms.authorize(ctx, &key, "kms:RotateKeyOnDemand", &Facts::default())?;
    if key.is_replica() {
        return Err(KmsError::NotPrimary {
            arn: key.arn().to_owned(),
        });
    }
    if key.origin == OriginType::External && key.spec == KeySpec::SymmetricDefault {
        let after = super::import::rotate_to_imported(kms, &key).await?;
        kms.record_rotation(&key, &after, RotationType::OnDemand, Some(ctx.receipts()));
        return Ok(RotateKeyOnDemandResponse {
            key_id: Some(after.wire_key_id().to_owned()),
        });
    }
    key.check_usable()?;
    check_configurable(&key)?;
    let done = kms
        .store
        .materials(&key.record.key_id)
        .await?
        .iter()
        .filter(|m| m.rotation_type.as_deref() == Some(RotationType::OnDemand.as_str()))
        .count();
    if done >= ON_DEMAND_ROTATION_LIMIT {
        return Err(KmsError::OnDemandRotationLimit {
            arn: key.arn().to_owned(),
            limit: ON_DEMAND_ROTATION_LIMIT,
        });
    }
    let next = key.record.next_rotation_ms;
    let after = kms.rotate(&key, RotationType::OnDemand, next).await?;
    // Besides the RotateKeyOnDemand call, AWS records the rotation itself; the response
    // waits until that record is durable too.
    kms.record_rotation(&key, &after, RotationType::OnDemand, Some(ctx.receipts()));
    Ok(RotateKeyOnDemandResponse {
        key_id: Some(after.wire_key_id().to_owned()),
    })
}

pub async fn list_key_rotations(
    kms: &KmsService,
    ctx: &RequestContext,
    input: ListKeyRotationsRequest,
) -> Result<ListKeyRotationsResponse, KmsError> {
    let key = kms.resolve(ctx, &input.key_id, Aliases::NotAllowed).await?;
    kms.authorize(ctx, &key, "kms:ListKeyRotations", &Facts::default())?;
    // Asymmetric, HMAC and post-quantum keys have one material and never rotate.
    if key.spec != KeySpec::SymmetricDefault {
        return Err(KmsError::RotationUnsupported {
            arn: key.arn().to_owned(),
        });
    }
    let all = input.include_key_material == Some(IncludeKeyMaterial::AllKeyMaterial);
    let current = key.record.current_material_id.as_str();
    let imported =
        (key.origin == OriginType::External).then(|| super::import::rotation_entries(&key, all));
    // Oldest first; the marker is the position, zero-padded so that it sorts as a string.
    let stored = match imported {
        Some(_) => Vec::new(),
        None => kms.store.materials(&key.record.key_id).await?,
    };
    let mut entries: Vec<(String, RotationsListEntry)> = stored
        .into_iter()
        .filter(|m| all || m.rotation_type.is_some())
        .enumerate()
        .map(|(i, m)| {
            let state = if m.material_id == current {
                KeyMaterialState::Current
            } else {
                KeyMaterialState::NonCurrent
            };
            let rotated = m.rotation_type.as_deref().and_then(RotationType::parse);
            let entry = RotationsListEntry {
                key_id: Some(key.wire_key_id().to_owned()),
                key_material_id: Some(m.material_id),
                key_material_state: Some(state),
                rotation_date: rotated.map(|_| Timestamp::from_millis(m.creation_ms)),
                rotation_type: rotated,
                ..RotationsListEntry::default()
            };
            (format!("{i:010}"), entry)
        })
        .collect();
    if let Some(imported) = imported {
        entries = imported
            .into_iter()
            .enumerate()
            .map(|(i, entry)| (format!("{i:010}"), entry))
            .collect();
    }
    let page = page(
        List::Rotations,
        entries,
        |(position, _)| position.as_str(),
        input.marker.as_deref(),
        input.limit,
    )?;
    let truncated = page.truncated();
    Ok(ListKeyRotationsResponse {
        rotations: Some(page.items.into_iter().map(|(_, e)| e).collect()),
        next_marker: page.next_marker,
        truncated: Some(truncated),
    })
}

/// Turns automatic rotation on with `days` between rotations, the first one `days` from
/// `now`.
pub(super) fn enable_schedule(record: &mut keyhold_store::KeyRecord, days: i32, now: Timestamp) {
    record.rotation_period_days = Some(days);
    record.next_rotation_ms = Some(now.plus_days(i64::from(days)).as_millis());
}

/// Which keys may have their rotation configured or rotated on demand: customer-managed
/// symmetric encryption keys whose material KMS generated.
fn check_configurable(key: &Key) -> Result<(), KmsError> {
    if key.is_replica() {
        return Err(KmsError::NotPrimary {
            arn: key.arn().to_owned(),
        });
    }
    let rotatable = key.manager == KeyManagerType::Customer
        && key.spec == KeySpec::SymmetricDefault
        && key.usage == KeyUsageType::EncryptDecrypt
        && key.origin == OriginType::AwsKms;
    if rotatable {
        Ok(())
    } else {
        Err(KmsError::RotationUnsupported {
            arn: key.arn().to_owned(),
        })
    }
}

impl KmsService {
    /// Carries out the automatic rotations that are due: each due key once, its next
    /// rotation one period from now. Returns how many keys it rotated.
    pub async fn sweep_rotations(&self) -> Result<usize, KmsError> {
        let now = self.clock.now();
        let mut rotated = 0;
        for key_id in self.store.keys_due_for_rotation(now.as_millis()).await? {
            // One key at a time under the write lock, so a backlog (every AWS-managed key
            // after an upgrade) does not hold up other writes, and one key that cannot be
            // rotated does not stop the rest: it is retried at the next sweep.
            match self.rotate_if_due(&key_id, now).await {
                Ok(true) => {
                    rotated += 1;
                    self.note_rotation(false);
                }
                Ok(false) => {}
                Err(e) => {
                    self.note_rotation(true);
                    tracing::warn!(key_id, error = ?e, "scheduled rotation failed; retried at the next sweep")
                }
            }
        }
        Ok(rotated)
    }

    /// Rotates `key_id` if it is still due and enabled (a change may have come in between
    /// the listing and the lock).
    async fn rotate_if_due(&self, key_id: &str, now: Timestamp) -> Result<bool, KmsError> {
        let _guard = self.writes.lock().await;
        let Some(key) = self.load(key_id).await? else {
            return Ok(false);
        };
        let (Some(days), Some(due)) =
            (key.record.rotation_period_days, key.record.next_rotation_ms)
        else {
            return Ok(false);
        };
        if due > now.as_millis() || key.state != KeyState::Enabled {
            return Ok(false);
        }
        let next = now.plus_days(i64::from(days)).as_millis();
        let after = self
            .rotate(&key, RotationType::Automatic, Some(next))
            .await?;
        self.record_rotation(&key, &after, RotationType::Automatic, None);
        tracing::info!(key_id, "rotated KMS key material on schedule");
        Ok(true)
    }

    /// Records a rotation in the audit trail as AWS does: a `RotateKey` service event
    /// (`AwsServiceEvent`, invoked by `AWS Internal`, no caller), the key as its resource,
    /// the rotation type and the materials before and after in `serviceEventDetails`.
    pub(super) fn record_rotation(
        &self,
        before: &Key,
        after: &Key,
        rotation: RotationType,
        receipts: Option<&crate::audit::Receipts>,
    ) {
        self.audit.record_service_event(ServiceEvent {
            source: "kms.amazonaws.com",
            invoked_by: "AWS Internal",
            name: "RotateKey",
            account: &after.record.account,
            region: &after.record.region,
            resources: vec![("AWS::KMS::Key", after.arn().to_owned())],
            details: serde_json::json!({
                "rotationType": rotation.as_str(),
                "keyId": after.wire_key_id(),
                "keyOrigin": after.origin.as_str(),
                "previousKeyMaterialId": before.record.current_material_id,
                "currentKeyMaterialId": after.record.current_material_id,
            }),
            receipts,
        });
    }

    /// Generates and seals a new material, stores it as the key's current one (with the
    /// next automatic rotation at `next_ms`) and caches the result. Callers hold the write
    /// lock.
    async fn rotate(
        &self,
        key: &Key,
        rotation: RotationType,
        next_ms: Option<i64>,
    ) -> Result<std::sync::Arc<Key>, KmsError> {
        let material_id = MaterialId::random().map_err(|_| KmsError::Internal)?;
        let material = SymmetricKey::generate().map_err(|_| KmsError::Internal)?;
        let sealed = self
            .domain
            .seal_material(&material, key.arn(), &material_id)
            .map_err(|_| KmsError::Internal)?;
        let now = self.clock.now().as_millis();
        let mut record = key.record.clone();
        record.current_material_id = material_id.to_hex();
        record.next_rotation_ms = next_ms;
        let stored = MaterialRecord {
            key_id: record.key_id.clone(),
            material_id: material_id.to_hex(),
            sealed,
            creation_ms: now,
            rotation_type: Some(rotation.as_str().to_owned()),
        };
        let replicas = self.replica_rotations(key, &material, &stored).await?;
        let replica_ids: Vec<String> = replicas.iter().map(|r| r.key.key_id.clone()).collect();
        let mut rotations = vec![KeyRotation {
            read: key.record.clone(),
            key: record.clone(),
            material: stored,
        }];
        rotations.extend(replicas);
        // Over the records read: another node's change of the key in between makes this
        // node forget it, and the rotation is decided again (or, on schedule, at the next
        // sweep).
        if let Err(e) = self.store.rotate_keys(&rotations).await {
            if matches!(e, keyhold_store::StoreError::Conflict) {
                self.forget_key(&record.key_id);
            }
            return Err(e.into());
        }
        for replica in &replica_ids {
            // Read (and unsealed) again on its next use.
            self.cache_remove(replica);
        }
        let materials = std::sync::Arc::new(key.materials.with(material_id, material));
        let rotated = key
            .with_materials(record, materials)
            .ok_or(KmsError::Internal)?;
        let rotated = std::sync::Arc::new(rotated);
        self.cache_put(rotated.clone());
        Ok(rotated)
    }
}
