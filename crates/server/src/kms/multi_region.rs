//! Multi-Region keys: ReplicateKey, UpdatePrimaryRegion, and the mapping between the key id
//! the wire shows and the id each region's row is stored under.
//!
//! A multi-Region key has the id `mrk-` and 32 lower-case hex digits in every region it is
//! in (the hex digits are its 16-byte [`KeyId`], the one a ciphertext names). Each region has
//! its own row in the store — its own ARN, policy, tags, description, state, grants and
//! aliases, and the same materials sealed under its own ARN — stored under the id
//! `mrk-<hex>:<region>` ([`storage_id`]). Every row carries the region of the primary key
//! (`multi_region_primary`). The wire never shows a storage id ([`wire_id`]).
//!
//! Only the primary is replicated and rotated: a rotation of the primary gives every replica
//! the new material in the primary's rotation transaction
//! ([`KmsService::replica_rotations`]); replicas answer
//! `UnsupportedOperationException` to the rotation operations and report the primary's
//! rotation status.
//!
//! A primary scheduled for deletion while it has replicas waits in `PendingReplicaDeletion`
//! (its record's `deletion_ms` holding the waiting period's length) until the deletion sweep
//! deletes its last replica ([`KmsService::before_regional_deletion`]). A replica of a key
//! with imported material is made without material (`PendingImport`), naming its primary's
//! material id: the same material is imported into it separately.

use std::sync::Arc;

use keyhold_crypto::{KeyId, MaterialId};
use keyhold_proto::kms::*;
use keyhold_store::{KeyRecord, KeyRotation, MaterialRecord};

use super::KmsService;
use super::authz::Facts;
use super::error::KmsError;
use super::key::{DAY_MS, Key, KeyAliases, Materials};
use super::managed::default_key_policy;
use super::policies::validate_new_policy;
use super::resolve::Aliases;
use super::tags::{merge_tags, to_store_tags};
use crate::arn::Scope;
use crate::context::RequestContext;

const PREFIX: &str = "mrk-";

/// The shortest waiting period of a deletion (`ScheduleKeyDeletion`'s minimum).
const MIN_PENDING_WINDOW_DAYS: i32 = 7;

/// The 16-byte id of a multi-Region key id (`mrk-` and 32 lower-case hex digits).
pub fn parse_wire(key_id: &str) -> Option<KeyId> {
    let hex = key_id.strip_prefix(PREFIX)?;
    if hex.len() != 32 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let bytes: [u8; 16] = hex::decode(hex).ok()?.try_into().ok()?;
    Some(KeyId::from_bytes(bytes))
}

/// The multi-Region key id of a 16-byte id.
pub fn format_wire(id: &KeyId) -> String {
    format!("{PREFIX}{}", hex::encode(id.as_bytes()))
}

/// The id the row of multi-Region key `wire_key_id` in `region` is stored under.
pub fn storage_id(wire_key_id: &str, region: &str) -> String {
    format!("{wire_key_id}:{region}")
}

/// Whether a stored key id is a multi-Region key's row (`mrk-<hex>:<region>`).
pub fn is_storage_id(key_id: &str) -> bool {
    key_id
        .split_once(':')
        .is_some_and(|(wire, _)| parse_wire(wire).is_some())
}

/// The key id the wire shows for a stored key id: `mrk-<hex>` for a multi-Region key's row,
/// any other id unchanged.
pub fn wire_id(key_id: &str) -> &str {
    match key_id.split_once(':') {
        Some((wire, _)) if parse_wire(wire).is_some() => wire,
        _ => key_id,
    }
}

/// The 16-byte id of a multi-Region key's row.
pub fn key_id_of_storage(key_id: &str) -> Option<KeyId> {
    parse_wire(key_id.split_once(':')?.0)
}

/// A key ARN with another region (the same key id, account and partition).
pub fn arn_in_region(arn: &str, region: &str) -> String {
    let mut parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() == 6 {
        parts[3] = region;
    }
    parts.join(":")
}

pub async fn replicate_key(
    kms: &KmsService,
    ctx: &RequestContext,
    input: ReplicateKeyRequest,
) -> Result<ReplicateKeyResponse, KmsError> {
    let _guard = kms.writes.lock().await;
    let key = kms.resolve(ctx, &input.key_id, Aliases::NotAllowed).await?;
    let region = input.replica_region;
    // As AWS documents it: `kms:ReplicateKey` on the primary (`kms:ReplicaRegion` is the
    // region asked for), and — the replica being a new key — `kms:CreateKey` in an IAM
    // policy, and `kms:TagResource` too when tags are given, both evaluated in the replica
    // region (`aws:RequestedRegion`).
    let facts = Facts {
        replica_region: Some(&region),
        ..Facts::default()
    };
    kms.authorize(ctx, &key, "kms:ReplicateKey", &facts)?;
    let in_replica_region = Facts {
        requested_region: Some(&region),
        ..Facts::default()
    };
    kms.authorize_account_with(ctx, "kms:CreateKey", &in_replica_region)?;
    check_primary(&key)?;
    key.check_usable()?;
    let scope = Scope::new(key.record.account.clone(), region.clone());
    if region == key.record.region || scope.partition != ctx.scope.partition {
        return Err(KmsError::ReplicaRegion { region });
    }
    let wire = key.wire_key_id().to_owned();
    let stored_id = storage_id(&wire, &region);
    let arn = scope.arn("kms", format_args!("key/{wire}"));
    if input.tags.as_ref().is_some_and(|t| !t.is_empty()) {
        kms.authorize_identity_on(ctx, "kms:TagResource", &arn, &in_replica_region)?;
    }
    if kms.store.get_key(&stored_id).await?.is_some() {
        return Err(KmsError::ReplicaExists { arn });
    }
    let policy = match input.policy {
        Some(text) => {
            let bypass = input.bypass_policy_lockout_safety_check == Some(true);
            validate_new_policy(ctx, kms.clock.now(), &text, bypass, &arn)?;
            text
        }
        None => default_key_policy(&scope),
    };
    let tags = merge_tags(&[], input.tags.as_deref().unwrap_or_default())?;
    let external = key.origin == OriginType::External;
    let record = KeyRecord {
        key_id: stored_id,
        region: region.clone(),
        arn,
        creation_ms: kms.clock.now().as_millis(),
        description: input.description.unwrap_or_default(),
        // A replica of a key with imported material has none of it: the same material is
        // imported into it separately (its current material id names which).
        state: if external {
            KeyState::PendingImport
        } else {
            KeyState::Enabled
        }
        .as_str()
        .to_owned(),
        deletion_ms: None,
        policy: policy.clone(),
        // The primary's schedule rotates the replicas.
        rotation_period_days: None,
        next_rotation_ms: None,
        state_after_import: None,
        ..key.record.clone()
    };
    let store_tags = to_store_tags(&tags);
    let materials = if external {
        kms.store
            .insert_key_without_material(&record, &store_tags)
            .await?;
        Arc::new(Materials::default())
    } else {
        let sealed = kms.sealed_for_replica(&key, &record).await?;
        kms.store
            .insert_key_with_materials(&record, &sealed, &store_tags)
            .await?;
        key.materials.clone()
    };
    kms.writes.note_write();
    let replica = Key::from_parts(
        record,
        store_tags,
        materials,
        Arc::default(),
        Arc::new(KeyAliases::default()),
    )
    .ok_or(KmsError::Internal)?;
    let replica = Arc::new(replica);
    kms.cache_put(replica.clone());
    ctx.note_resource("AWS::KMS::Key", replica.arn());
    Ok(ReplicateKeyResponse {
        replica_key_metadata: Some(kms.key_metadata(&replica).await?),
        replica_policy: Some(policy),
        replica_tags: Some(tags),
    })
}

pub async fn update_primary_region(
    kms: &KmsService,
    ctx: &RequestContext,
    input: UpdatePrimaryRegionRequest,
) -> Result<(), KmsError> {
    let _guard = kms.writes.lock().await;
    let key = kms.resolve(ctx, &input.key_id, Aliases::NotAllowed).await?;
    kms.authorize(ctx, &key, "kms:UpdatePrimaryRegion", &Facts::default())?;
    check_primary(&key)?;
    key.check_usable()?;
    let new_primary = input.primary_region;
    if new_primary == key.record.region {
        return Ok(());
    }
    let rows = kms
        .store
        .multi_region_keys(&key.record.account, key.wire_key_id())
        .await?;
    let missing = || KmsError::KeyNotFound {
        arn: arn_in_region(key.arn(), &new_primary),
    };
    if !rows.iter().any(|r| r.region == new_primary) {
        return Err(missing());
    }
    // The replica to promote has a key policy of its own: AWS requires the permission on
    // it too, and it must be usable.
    let promoted = kms
        .load_regional(&storage_id(key.wire_key_id(), &new_primary))
        .await?
        .ok_or_else(missing)?;
    kms.authorize(ctx, &promoted, "kms:UpdatePrimaryRegion", &Facts::default())?;
    promoted.check_usable()?;
    let records: Vec<(KeyRecord, KeyRecord)> = rows
        .into_iter()
        .map(|read| {
            let mut record = read.clone();
            record.multi_region_primary = Some(new_primary.clone());
            if record.region == new_primary {
                // The rotation schedule moves with the primary.
                record.rotation_period_days = key.record.rotation_period_days;
                record.next_rotation_ms = key.record.next_rotation_ms;
            } else {
                record.rotation_period_days = None;
                record.next_rotation_ms = None;
            }
            (read, record)
        })
        .collect();
    // Every row in one transaction (a crash never leaves two primaries, or none), each
    // only over the row read (another node's change in between: decided again).
    let written = kms.store.update_keys(&records).await;
    // Written or refused, every row is read again on its next use.
    for (_, record) in &records {
        kms.cache_remove(&record.key_id);
    }
    written?;
    kms.writes.note_write();
    Ok(())
}

/// ReplicateKey, UpdatePrimaryRegion and the rotation operations take a primary key only.
pub(super) fn check_primary(key: &Key) -> Result<(), KmsError> {
    match key.record.multi_region_primary.as_deref() {
        None => Err(KmsError::NotMultiRegion {
            arn: key.arn().to_owned(),
        }),
        Some(primary) if primary != key.record.region => Err(KmsError::NotPrimary {
            arn: key.arn().to_owned(),
        }),
        Some(_) => Ok(()),
    }
}

impl KmsService {
    /// `MultiRegionConfiguration` of a multi-Region key: its type, its primary, and every
    /// replica (the key itself included when it is one), from the store.
    pub(super) async fn multi_region_configuration(
        &self,
        key: &Key,
    ) -> Result<Option<MultiRegionConfiguration>, KmsError> {
        let Some(primary) = key.record.multi_region_primary.as_deref() else {
            return Ok(None);
        };
        let rows = self
            .store
            .multi_region_keys(&key.record.account, key.wire_key_id())
            .await?;
        let replica_keys = rows
            .iter()
            .filter(|r| r.region != primary)
            .map(|r| MultiRegionKey {
                arn: Some(r.arn.clone()),
                region: Some(r.region.clone()),
            })
            .collect();
        let key_type = if primary == key.record.region {
            MultiRegionKeyType::Primary
        } else {
            MultiRegionKeyType::Replica
        };
        Ok(Some(MultiRegionConfiguration {
            multi_region_key_type: Some(key_type),
            primary_key: Some(MultiRegionKey {
                arn: Some(arn_in_region(key.arn(), primary)),
                region: Some(primary.to_owned()),
            }),
            replica_keys: Some(replica_keys),
        }))
    }

    /// Every material of the primary `key`, sealed again under the ARN of its new replica
    /// `replica`.
    async fn sealed_for_replica(
        &self,
        key: &Key,
        replica: &KeyRecord,
    ) -> Result<Vec<MaterialRecord>, KmsError> {
        let mut materials = Vec::new();
        for stored in self.store.materials(&key.record.key_id).await? {
            let id = MaterialId::from_hex(&stored.material_id).ok_or(KmsError::Internal)?;
            let sealed = match (&key.materials.private, key.materials.by_id.get(&id)) {
                (Some(private), _) => self.domain.seal_private_key(private, &replica.arn, &id),
                (None, Some(material)) => self.domain.seal_material(material, &replica.arn, &id),
                (None, None) => return Err(KmsError::Internal),
            }
            .map_err(|_| KmsError::Internal)?;
            materials.push(MaterialRecord {
                key_id: replica.key_id.clone(),
                sealed,
                ..stored
            });
        }
        Ok(materials)
    }

    /// Whether `key` is a multi-Region primary that has replicas (in any state).
    pub(super) async fn has_replicas(&self, key: &Key) -> Result<bool, KmsError> {
        if key.record.multi_region_primary.is_none() || key.is_replica() {
            return Ok(false);
        }
        let rows = self
            .store
            .multi_region_keys(&key.record.account, key.wire_key_id())
            .await?;
        Ok(rows.iter().any(|r| r.key_id != key.record.key_id))
    }

    /// What the deletion sweep does before it deletes `storage_id`, a multi-Region key's
    /// row whose waiting period is over; `false`: leave the row. Callers hold the write lock.
    ///
    /// - The last replica of a primary in `PendingReplicaDeletion`: the primary's waiting
    ///   period starts (`PendingDeletion`, its date one period from now). That is stored
    ///   before the replica is deleted, so a stop in between loses nothing: the replica,
    ///   still due, is deleted by the next sweep (at start), at least seven days before the
    ///   primary is due. The transition happens once: afterwards the primary is no longer
    ///   in `PendingReplicaDeletion`.
    /// - A primary: never deleted while a replica exists. That happens only if a replica's
    ///   deletion was cancelled (on another node) in the instant between the two writes
    ///   above; the primary then goes back to `PendingReplicaDeletion`, with the shortest
    ///   waiting period (its own is no longer known).
    pub(super) async fn before_regional_deletion(
        &self,
        storage_id: &str,
    ) -> Result<bool, KmsError> {
        let Some(record) = self.store.get_key(storage_id).await? else {
            return Ok(true);
        };
        let Some(primary_region) = record.multi_region_primary.clone() else {
            return Ok(true);
        };
        let rows = self
            .store
            .multi_region_keys(&record.account, wire_id(storage_id))
            .await?;
        let others: Vec<&KeyRecord> = rows.iter().filter(|r| r.key_id != record.key_id).collect();
        if record.region == primary_region {
            if others.is_empty() {
                return Ok(true);
            }
            let mut primary = record;
            primary.state = KeyState::PendingReplicaDeletion.as_str().to_owned();
            primary.deletion_ms = Some(i64::from(MIN_PENDING_WINDOW_DAYS) * DAY_MS);
            self.store.update_key(&primary).await?;
            self.cache_remove(&primary.key_id);
            tracing::warn!(
                key_id = storage_id,
                "a multi-Region primary key due for deletion still has replicas: it waits for them again"
            );
            return Ok(false);
        }
        if let [primary] = others.as_slice()
            && primary.region == primary_region
            && primary.state == KeyState::PendingReplicaDeletion.as_str()
        {
            let window = primary
                .deletion_ms
                .unwrap_or(i64::from(MIN_PENDING_WINDOW_DAYS) * DAY_MS);
            let mut primary = (*primary).clone();
            primary.state = KeyState::PendingDeletion.as_str().to_owned();
            primary.deletion_ms = Some(self.clock.now().as_millis() + window);
            self.store.update_key(&primary).await?;
            self.cache_remove(&primary.key_id);
            tracing::info!(
                key_id = primary.key_id,
                "the last replica of a multi-Region primary key is deleted: its waiting period starts"
            );
        }
        Ok(true)
    }

    /// The stored record of the primary of a multi-Region replica (for its rotation status).
    pub(super) async fn primary_record(&self, key: &Key) -> Result<Option<KeyRecord>, KmsError> {
        let Some(primary) = key.record.multi_region_primary.as_deref() else {
            return Ok(None);
        };
        let rows = self
            .store
            .multi_region_keys(&key.record.account, key.wire_key_id())
            .await?;
        Ok(rows.into_iter().find(|r| r.region == primary))
    }

    /// The rotations that give every replica of the multi-Region primary `key` the material
    /// the primary is rotating to (`stored`, sealed again under each replica's ARN), as its
    /// current one; none for a single-Region key. The caller stores them in the primary's
    /// own rotation transaction, so a replica never misses a material the primary uses.
    /// Callers hold the write lock.
    pub(super) async fn replica_rotations(
        &self,
        key: &Key,
        material: &keyhold_crypto::SymmetricKey,
        stored: &MaterialRecord,
    ) -> Result<Vec<KeyRotation>, KmsError> {
        if key.record.multi_region_primary.is_none() {
            return Ok(Vec::new());
        }
        let id = MaterialId::from_hex(&stored.material_id).ok_or(KmsError::Internal)?;
        let rows = self
            .store
            .multi_region_keys(&key.record.account, key.wire_key_id())
            .await?;
        rows.into_iter()
            .filter(|r| r.key_id != key.record.key_id)
            .map(|read| {
                let sealed = self
                    .domain
                    .seal_material(material, &read.arn, &id)
                    .map_err(|_| KmsError::Internal)?;
                let mut key = read.clone();
                key.current_material_id = stored.material_id.clone();
                let material = MaterialRecord {
                    key_id: key.key_id.clone(),
                    sealed,
                    ..stored.clone()
                };
                Ok(KeyRotation {
                    read,
                    key,
                    material,
                })
            })
            .collect()
    }

    /// The key a symmetric ciphertext (or a grant token) names by its 16-byte id, in
    /// `region`: a single-Region key, or the row of a multi-Region key there.
    pub(super) async fn load_for_ciphertext(
        &self,
        id: KeyId,
        region: &str,
    ) -> Result<Option<Arc<Key>>, KmsError> {
        if let Some(key) = self.load_id(id).await? {
            return Ok(Some(key));
        }
        self.load_regional(&storage_id(&format_wire(&id), region))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        let wire = "mrk-1234abcd12ab34cd56ef1234567890ab";
        let id = parse_wire(wire).unwrap();
        assert_eq!(format_wire(&id), wire);
        let stored = storage_id(wire, "eu-west-1");
        assert!(is_storage_id(&stored));
        assert_eq!(wire_id(&stored), wire);
        assert_eq!(
            key_id_of_storage(&stored).map(|k| *k.as_bytes()),
            Some(*id.as_bytes())
        );
        assert!(!is_storage_id(wire));
        assert!(!is_storage_id("1234abcd-12ab-34cd-56ef-1234567890ab"));
        assert_eq!(
            wire_id("1234abcd-12ab-34cd-56ef-1234567890ab"),
            "1234abcd-12ab-34cd-56ef-1234567890ab"
        );
        assert!(parse_wire("mrk-1234ABCD12ab34cd56ef1234567890ab").is_none());
        assert_eq!(
            arn_in_region("arn:aws:kms:us-east-1:111122223333:key/mrk-1", "eu-west-1"),
            "arn:aws:kms:eu-west-1:111122223333:key/mrk-1"
        );
    }
}
