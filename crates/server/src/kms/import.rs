//! Imported key material (BYOK): CreateKey with `Origin=EXTERNAL`, GetParametersForImport,
//! ImportKeyMaterial, DeleteImportedKeyMaterial, on-demand rotation to imported material, and
//! the enforcement of `ValidTo`.
//!
//! **Materials.** A key with `EXTERNAL` origin starts without material (`PendingImport`). The
//! first material imported becomes current and stays associated with the key for good; later
//! materials are imported with `ImportType=NEW_KEY_MATERIAL` (state `PENDING_ROTATION`) and
//! made current by `RotateKeyOnDemand`. A material's id is derived from the material
//! ([`keyhold_crypto::import::imported_material_id`]), so a re-import
//! (`EXISTING_KEY_MATERIAL`) is checked against the id without keeping deleted material.
//! RSA, ECC and HMAC keys take one material for good (a PKCS#8 private key of exactly their
//! spec, or HMAC key bytes), held as the key's parsed private key while imported; its id is
//! derived from the public key ([`keyhold_crypto::import::imported_private_material_id`]).
//!
//! **Expiry.** `ValidTo` is enforced against the server's clock: the moment it passes, the
//! material is gone from memory (every use of the key goes through
//! [`KmsService::apply_import_expiry`]) and the key is `PendingImport`; the background sweep
//! ([`KmsService::sweep_import_expiry`]) then deletes the sealed material from the store. A
//! key is usable only while every material associated with it is imported, as on AWS.
//!
//! **State.** While a material associated with the key is missing (deleted, or expired) the
//! key is `PendingImport`, unless it is pending deletion. The state it had before (`Enabled`
//! or `Disabled`) is kept in the key's record (`state_after_import`) and restored when the
//! material is back: a key that was disabled when its material expired is still disabled
//! after the re-import, as on AWS. A key that never had material becomes `Enabled`.
//!
//! **Import tokens.** Each `GetParametersForImport` generates an RSA key pair inside
//! `keyhold-crypto` and hands out the public key and a random token naming it. The store
//! keeps the outstanding token (its SHA-256, never the token), the key it was issued for,
//! the wrapping spec and algorithm, its expiry (24 hours), and the wrapping private key
//! (PKCS#8) sealed under the domain key, bound to the key's ARN and the token's hash
//! ([`keyhold_crypto::seal::DomainKey::seal_wrapping_key`]). So a token survives a restart
//! and works on every node sharing the store. A token is single-use: `ImportKeyMaterial`
//! deletes it in the same store transaction that writes the material, and writes nothing if
//! it was already gone, so two concurrent imports with one token (on one node or several)
//! cannot both succeed. An import that fails (wrong material, say) leaves the token usable.
//! Expired tokens are deleted by the import-expiry sweep and whenever a token is issued; a
//! key has at most [`MAX_OUTSTANDING_TOKENS_PER_KEY`] outstanding (issuing another drops the
//! oldest).

use std::sync::Arc;

use keyhold_crypto::asymmetric::{KeySpec as CryptoKeySpec, KeyUse, PrivateKey};
use keyhold_crypto::import::{
    WrappingAlgorithm, WrappingKey, WrappingKeySpec as Spec, import_token_sha256,
};
use keyhold_crypto::{MaterialId, SymmetricKey};
use keyhold_proto::kms::*;
use keyhold_proto::{Blob, SensitiveBlob, Timestamp};
use keyhold_store::{ImportTokenRecord, ImportedMaterialRecord, KeyRecord, Tag};

use super::KmsService;
use super::authz::Facts;
use super::error::KmsError;
use super::key::{Key, Materials, NO_MATERIAL};
use super::managed::NewKey;
use super::resolve::Aliases;
use crate::context::RequestContext;

/// How long the parameters of `GetParametersForImport` are valid.
const TOKEN_VALIDITY_MS: i64 = 24 * 3_600_000;
/// The latest `ValidTo` an import may set: 365 days from the request.
const MAX_VALID_TO_DAYS: i64 = 365;
/// How many import tokens a key may have outstanding; past this the oldest is dropped.
pub const MAX_OUTSTANDING_TOKENS_PER_KEY: usize = 1024;
/// Length of an import token.
const TOKEN_LEN: usize = 32;

/// One imported material of a key, as the server holds it (no key bytes: those are in
/// [`Materials::by_id`] while the material is imported).
#[derive(Clone, Debug)]
pub struct ImportedMaterial {
    pub id: MaterialId,
    /// Whether the material is in KMS (`IMPORTED`) or was deleted or expired
    /// (`PENDING_IMPORT`).
    pub imported: bool,
    pub creation_ms: i64,
    pub expiration_model: ExpirationModelType,
    pub valid_to_ms: Option<i64>,
    pub description: Option<String>,
    pub pending_rotation: bool,
    pub rotation_type: Option<RotationType>,
    pub rotation_ms: Option<i64>,
}

impl ImportedMaterial {
    fn from_record(r: &ImportedMaterialRecord) -> Option<Self> {
        Some(Self {
            id: MaterialId::from_hex(&r.material_id)?,
            imported: r.sealed.is_some(),
            creation_ms: r.creation_ms,
            expiration_model: ExpirationModelType::parse(&r.expiration_model)?,
            valid_to_ms: r.valid_to_ms,
            description: r.description.clone(),
            pending_rotation: r.pending_rotation,
            rotation_type: match &r.rotation_type {
                Some(t) => Some(RotationType::parse(t)?),
                None => None,
            },
            rotation_ms: r.rotation_ms,
        })
    }

    fn to_record(&self, key_id: &str, sealed: Option<Vec<u8>>) -> ImportedMaterialRecord {
        ImportedMaterialRecord {
            key_id: key_id.to_owned(),
            material_id: self.id.to_hex(),
            sealed,
            creation_ms: self.creation_ms,
            expiration_model: self.expiration_model.as_str().to_owned(),
            valid_to_ms: self.valid_to_ms,
            description: self.description.clone(),
            pending_rotation: self.pending_rotation,
            rotation_type: self.rotation_type.map(|t| t.as_str().to_owned()),
            rotation_ms: self.rotation_ms,
        }
    }

    fn expired(&self, now_ms: i64) -> bool {
        self.imported && self.valid_to_ms.is_some_and(|t| t <= now_ms)
    }
}

pub async fn get_parameters_for_import(
    kms: &KmsService,
    ctx: &RequestContext,
    input: GetParametersForImportRequest,
) -> Result<GetParametersForImportResponse, KmsError> {
    let key = kms.resolve(ctx, &input.key_id, Aliases::NotAllowed).await?;
    let facts = Facts {
        wrapping_algorithm: Some(input.wrapping_algorithm.as_str()),
        wrapping_key_spec: Some(input.wrapping_key_spec.as_str()),
        ..Facts::default()
    };
    kms.authorize(ctx, &key, "kms:GetParametersForImport", &facts)?;
    check_external(&key)?;
    key.check_not_pending_deletion()?;
    let Some(spec) = crypto_spec(input.wrapping_key_spec) else {
        return Err(KmsError::ImportParameter {
            what: format!(
                "WrappingKeySpec {} is not supported in this region.",
                input.wrapping_key_spec
            ),
        });
    };
    let algorithm = wrapping_algorithm(input.wrapping_algorithm)?;
    check_wrapping_for_key(
        &key,
        input.wrapping_key_spec,
        input.wrapping_algorithm,
        algorithm,
    )?;
    let mut token = [0u8; TOKEN_LEN];
    keyhold_crypto::random::fill(&mut token).map_err(|_| KmsError::Internal)?;
    let token_sha256 = import_token_sha256(&token);
    let (domain, arn) = (kms.domain.clone(), key.arn().to_owned());
    // Generated and sealed off the async workers; only the sealed private key is kept.
    let (public_key, sealed) = tokio::task::spawn_blocking(move || {
        let wrapping = WrappingKey::generate(spec)?;
        let sealed = domain.seal_wrapping_key(&wrapping, &arn, &token_sha256)?;
        Ok::<_, keyhold_crypto::CryptoError>((wrapping.public_key_der().to_vec(), sealed))
    })
    .await
    .map_err(|_| KmsError::Internal)?
    .map_err(|_| KmsError::Internal)?;
    let now = kms.clock.now().as_millis();
    let expires_ms = now + TOKEN_VALIDITY_MS;
    kms.store
        .insert_import_token(
            &ImportTokenRecord {
                token_sha256: token_sha256.to_vec(),
                key_id: key.record.key_id.clone(),
                wrapping_key_spec: input.wrapping_key_spec.as_str().to_owned(),
                wrapping_algorithm: input.wrapping_algorithm.as_str().to_owned(),
                created_ms: now,
                expires_ms,
                sealed_private_key: sealed,
            },
            now,
            MAX_OUTSTANDING_TOKENS_PER_KEY,
        )
        .await?;
    Ok(GetParametersForImportResponse {
        key_id: Some(key.arn().to_owned()),
        import_token: Some(Blob::new(token.to_vec())),
        public_key: Some(SensitiveBlob::new(public_key)),
        parameters_valid_to: Some(Timestamp::from_millis(expires_ms)),
    })
}

pub async fn import_key_material(
    kms: &KmsService,
    ctx: &RequestContext,
    input: ImportKeyMaterialRequest,
) -> Result<ImportKeyMaterialResponse, KmsError> {
    let _guard = kms.writes.lock().await;
    let key = kms.resolve(ctx, &input.key_id, Aliases::NotAllowed).await?;
    let model = input
        .expiration_model
        .unwrap_or(ExpirationModelType::KeyMaterialExpires);
    let facts = Facts {
        expiration_model: Some(model.as_str()),
        valid_to_ms: input.valid_to.map(Timestamp::as_millis),
        ..Facts::default()
    };
    kms.authorize(ctx, &key, "kms:ImportKeyMaterial", &facts)?;
    check_external(&key)?;
    key.check_not_pending_deletion()?;
    let now = kms.clock.now().as_millis();
    let valid_to_ms = check_expiration(model, input.valid_to, now)?;
    let token_sha256 = import_token_sha256(input.import_token.as_bytes());
    let (wrapping, algorithm) = kms.import_wrapping_key(&key, &token_sha256, now).await?;
    let encrypted = input.encrypted_key_material.as_bytes().to_vec();
    let private_spec = private_spec(&key);
    let material = tokio::task::spawn_blocking(move || match private_spec {
        None => wrapping
            .unwrap_symmetric(algorithm, &encrypted)
            .map(Unwrapped::Symmetric),
        Some((spec, key_use)) => wrapping
            .unwrap_private(algorithm, &encrypted, spec, key_use)
            .map(Unwrapped::Private),
    })
    .await
    .map_err(|_| KmsError::Internal)?
    .map_err(|_| KmsError::InvalidCiphertext)?;
    let id = match &material {
        Unwrapped::Symmetric(m) => keyhold_crypto::import::imported_material_id(m, &key.id),
        Unwrapped::Private(p) => keyhold_crypto::import::imported_private_material_id(p, &key.id),
    };

    let materials = &key.materials.imported;
    let import_type = input.import_type;
    let existing = materials.iter().find(|m| m.id == id);
    let pending_rotation = match (materials.is_empty(), import_type) {
        // The first material of a key, whichever type the caller named.
        (true, _) => {
            if let Some(named) = &input.key_material_id
                && *named != id.to_hex()
            {
                return Err(KmsError::IncorrectKeyMaterial);
            }
            // A multi-Region replica is made naming its primary's material (the same key id
            // and material give the same material id in every region): it takes that
            // material only.
            if key.record.multi_region_primary.is_some()
                && key.current_material != NO_MATERIAL
                && key.current_material != id
            {
                return Err(KmsError::IncorrectKeyMaterial);
            }
            false
        }
        // New material for a multi-Region key would have to reach every region before a
        // rotation (AWS's `PENDING_MULTI_REGION_IMPORT_AND_ROTATION`): not implemented.
        (false, Some(ImportType::NewKeyMaterial)) if key.record.multi_region_primary.is_some() => {
            return Err(KmsError::Unsupported {
                what: "new key material (ImportType NEW_KEY_MATERIAL) for multi-Region keys".into(),
            });
        }
        // Asymmetric and HMAC keys keep their first material for good (they do not rotate).
        (false, Some(ImportType::NewKeyMaterial)) if private_spec.is_some() => {
            return Err(KmsError::RotationUnsupported {
                arn: key.arn().to_owned(),
            });
        }
        (false, Some(ImportType::NewKeyMaterial)) => {
            if input.key_material_id.is_some() {
                return Err(KmsError::ImportParameter {
                    what: "KeyMaterialId can be specified only when ImportType is \
                           EXISTING_KEY_MATERIAL."
                        .into(),
                });
            }
            if existing.is_some() {
                return Err(KmsError::MaterialAlreadyImported {
                    arn: key.arn().to_owned(),
                });
            }
            if materials.iter().any(|m| m.pending_rotation) {
                return Err(KmsError::PendingRotationExists {
                    arn: key.arn().to_owned(),
                });
            }
            true
        }
        (false, _) => {
            let target = match &input.key_material_id {
                Some(named) => MaterialId::from_hex(named).ok_or(KmsError::IncorrectKeyMaterial)?,
                None => key.current_material,
            };
            if target != id || existing.is_none() {
                return Err(KmsError::IncorrectKeyMaterial);
            }
            existing.is_some_and(|m| m.pending_rotation)
        }
    };
    let sealed = match &material {
        Unwrapped::Symmetric(m) => kms.domain.seal_material(m, key.arn(), &id),
        Unwrapped::Private(p) => kms.domain.seal_private_key(p, key.arn(), &id),
    }
    .map_err(|_| KmsError::Internal)?;
    let entry = ImportedMaterial {
        id,
        imported: true,
        creation_ms: existing.map_or(now, |m| m.creation_ms),
        expiration_model: model,
        valid_to_ms,
        description: input
            .key_material_description
            .or_else(|| existing.and_then(|m| m.description.clone())),
        pending_rotation,
        rotation_type: existing.and_then(|m| m.rotation_type),
        rotation_ms: existing.and_then(|m| m.rotation_ms),
    };
    let mut record = key.record.clone();
    if materials.is_empty() {
        record.current_material_id = id.to_hex();
    }
    let mut imported: Vec<ImportedMaterial> = materials.clone();
    match imported.iter_mut().find(|m| m.id == id) {
        Some(slot) => *slot = entry.clone(),
        None => imported.push(entry.clone()),
    }
    set_state_after(&mut record, &imported);
    let upsert = entry.to_record(&record.key_id, Some(sealed));
    // Uses the token up in the same transaction: if another import (here or on another node)
    // used it first, nothing is written.
    if !kms
        .store
        .import_with_token(&record, &[upsert], &token_sha256)
        .await?
    {
        return Err(KmsError::InvalidImportToken);
    }
    let mut by_id = key.materials.by_id.clone();
    let private = match material {
        Unwrapped::Symmetric(m) => {
            by_id.insert(id, Arc::new(m));
            None
        }
        Unwrapped::Private(p) => Some(Arc::new(p)),
    };
    let key = kms.replace_materials(
        &key,
        record,
        Materials {
            by_id,
            imported,
            private,
            custom_key_store: None,
        },
    )?;
    Ok(ImportKeyMaterialResponse {
        key_id: Some(key.arn().to_owned()),
        key_material_id: Some(id.to_hex()),
    })
}

pub async fn delete_imported_key_material(
    kms: &KmsService,
    ctx: &RequestContext,
    input: DeleteImportedKeyMaterialRequest,
) -> Result<DeleteImportedKeyMaterialResponse, KmsError> {
    let _guard = kms.writes.lock().await;
    let key = kms.resolve(ctx, &input.key_id, Aliases::NotAllowed).await?;
    kms.authorize(
        ctx,
        &key,
        "kms:DeleteImportedKeyMaterial",
        &Facts::default(),
    )?;
    check_external(&key)?;
    key.check_not_pending_deletion()?;
    if key.current_material == NO_MATERIAL && input.key_material_id.is_none() {
        return Err(KmsError::PendingImport {
            arn: key.arn().to_owned(),
        });
    }
    let target = match &input.key_material_id {
        Some(named) => MaterialId::from_hex(named),
        None => Some(key.current_material),
    };
    let Some(target) = target.filter(|t| key.materials.imported.iter().any(|m| m.id == *t)) else {
        return Err(KmsError::KeyMaterialNotFound {
            arn: key.arn().to_owned(),
            material_id: input.key_material_id.unwrap_or_default(),
        });
    };
    let mut imported = key.materials.imported.clone();
    let mut by_id = key.materials.by_id.clone();
    by_id.remove(&target);
    let mut upsert = Vec::new();
    let mut remove = Vec::new();
    if let Some(pos) = imported.iter().position(|m| m.id == target) {
        if imported.get(pos).is_some_and(|m| m.pending_rotation) {
            // Not yet associated with the key: it goes entirely, and other material may be
            // imported in its place.
            imported.remove(pos);
            remove.push(target.to_hex());
        } else if let Some(m) = imported.get_mut(pos) {
            m.imported = false;
            upsert.push(m.to_record(&key.record.key_id, None));
        }
    }
    let mut record = key.record.clone();
    set_state_after(&mut record, &imported);
    kms.store
        .write_imported_materials(&record, &upsert, &remove)
        .await?;
    let key = kms.replace_materials(
        &key,
        record,
        Materials {
            by_id,
            imported,
            private: None,
            custom_key_store: None,
        },
    )?;
    Ok(DeleteImportedKeyMaterialResponse {
        key_id: Some(key.arn().to_owned()),
        key_material_id: Some(target.to_hex()),
    })
}

/// `RotateKeyOnDemand` of a key with imported material: the material imported as
/// `NEW_KEY_MATERIAL` becomes current. Callers hold the write lock and have authorized.
pub(super) async fn rotate_to_imported(kms: &KmsService, key: &Key) -> Result<Arc<Key>, KmsError> {
    key.check_usable()?;
    let done = key
        .materials
        .imported
        .iter()
        .filter(|m| m.rotation_type == Some(RotationType::OnDemand))
        .count();
    if done >= super::rotation::ON_DEMAND_ROTATION_LIMIT {
        return Err(KmsError::OnDemandRotationLimit {
            arn: key.arn().to_owned(),
            limit: super::rotation::ON_DEMAND_ROTATION_LIMIT,
        });
    }
    let now = kms.clock.now().as_millis();
    let mut imported = key.materials.imported.clone();
    let Some(next) = imported
        .iter_mut()
        .find(|m| m.pending_rotation && m.imported)
    else {
        return Err(KmsError::NoPendingRotationMaterial {
            arn: key.arn().to_owned(),
        });
    };
    next.pending_rotation = false;
    next.rotation_type = Some(RotationType::OnDemand);
    next.rotation_ms = Some(now);
    let upsert = next.to_record(&key.record.key_id, None);
    let id = next.id;
    // The sealed material does not change: write the row with the sealed bytes it has.
    let sealed = kms
        .store
        .imported_materials(&key.record.key_id)
        .await?
        .into_iter()
        .find(|r| r.material_id == upsert.material_id)
        .and_then(|r| r.sealed)
        .ok_or(KmsError::Internal)?;
    let upsert = ImportedMaterialRecord {
        sealed: Some(sealed),
        ..upsert
    };
    let mut record = key.record.clone();
    record.current_material_id = id.to_hex();
    kms.store
        .write_imported_materials(&record, &[upsert], &[])
        .await?;
    let by_id = key.materials.by_id.clone();
    kms.replace_materials(
        key,
        record,
        Materials {
            by_id,
            imported,
            private: None,
            custom_key_store: None,
        },
    )
}

/// The entries of `ListKeyRotations` for a key with imported material.
pub(super) fn rotation_entries(key: &Key, all: bool) -> Vec<RotationsListEntry> {
    key.materials
        .imported
        .iter()
        .filter(|m| all || m.rotation_type.is_some() || m.pending_rotation)
        .map(|m| {
            let state = if m.pending_rotation {
                KeyMaterialState::PendingRotation
            } else if m.id == key.current_material {
                KeyMaterialState::Current
            } else {
                KeyMaterialState::NonCurrent
            };
            RotationsListEntry {
                key_id: Some(key.record.key_id.clone()),
                key_material_id: Some(m.id.to_hex()),
                key_material_description: m.description.clone(),
                key_material_state: Some(state),
                import_state: Some(if m.imported {
                    ImportState::Imported
                } else {
                    ImportState::PendingImport
                }),
                expiration_model: Some(m.expiration_model),
                valid_to: m.valid_to_ms.map(Timestamp::from_millis),
                rotation_date: m.rotation_ms.map(Timestamp::from_millis),
                rotation_type: m.rotation_type,
            }
        })
        .collect()
}

/// `ExpirationModel` and `ValidTo` of `DescribeKey`: those of the key's current material,
/// for keys with imported material that have one.
pub(super) fn metadata_expiration(key: &Key) -> (Option<ExpirationModelType>, Option<Timestamp>) {
    if key.origin != OriginType::External {
        return (None, None);
    }
    match key
        .materials
        .imported
        .iter()
        .find(|m| m.id == key.current_material && m.imported)
    {
        Some(m) => (
            Some(m.expiration_model),
            m.valid_to_ms.map(Timestamp::from_millis),
        ),
        None => (None, None),
    }
}

/// Whether a key with `EXTERNAL` origin lacks any material associated with it (so that its
/// state is `PendingImport` whenever it is not pending deletion).
pub(super) fn lacks_material(origin: OriginType, imported: &[ImportedMaterial]) -> bool {
    origin == OriginType::External
        && (imported.iter().all(|m| m.pending_rotation)
            || imported.iter().any(|m| !m.pending_rotation && !m.imported))
}

impl KmsService {
    /// Stores a new key with `EXTERNAL` origin: no material, `PendingImport`. The material
    /// `new` was made with is dropped (zeroized) unused.
    pub(super) async fn insert_external_key(
        &self,
        new: NewKey,
        tags: Vec<Tag>,
    ) -> Result<Arc<Key>, KmsError> {
        let mut record = new.record;
        record.origin = OriginType::External.as_str().to_owned();
        record.state = KeyState::PendingImport.as_str().to_owned();
        record.current_material_id = String::new();
        self.store
            .insert_key_without_material(&record, &tags)
            .await?;
        self.writes.note_write();
        let key = Key::from_parts(
            record,
            tags,
            Arc::new(Materials::default()),
            Arc::default(),
            Arc::default(),
        )
        .ok_or(KmsError::Internal)?;
        let key = Arc::new(key);
        self.cache_put(key.clone());
        Ok(key)
    }

    /// Unseals the imported materials of a key read from the store into `materials`: the
    /// symmetric ones still imported into `by_id`, the one material of an asymmetric or HMAC
    /// key (if imported) into `private`; what each material is into `imported`.
    pub(super) fn unseal_imported(
        &self,
        record: &KeyRecord,
        stored: Vec<ImportedMaterialRecord>,
        materials: &mut Materials,
    ) -> Result<(), KmsError> {
        let key_id = record.key_id.as_str();
        let private_spec = super::specs::stored_private_spec(record)?;
        let mut out = Vec::new();
        for r in stored {
            let m = ImportedMaterial::from_record(&r)
                .ok_or_else(|| super::corrupt("imported material", key_id))?;
            if let Some(sealed) = &r.sealed {
                match private_spec {
                    None => {
                        let material = self
                            .domain
                            .unseal_material(sealed, &record.arn, &m.id)
                            .map_err(|_| super::corrupt("sealed imported material", key_id))?;
                        materials.by_id.insert(m.id, Arc::new(material));
                    }
                    Some((crypto, usage)) => {
                        let private = self
                            .domain
                            .unseal_private_key(sealed, &record.arn, &m.id, crypto, usage)
                            .map_err(|_| super::corrupt("sealed imported private key", key_id))?;
                        materials.private = Some(Arc::new(private));
                    }
                }
            }
            out.push(m);
        }
        materials.imported = out;
        Ok(())
    }

    /// `key` (a cached key) as it is now: if an imported material's `ValidTo` has passed,
    /// the same key without that material and (unless pending deletion) `PendingImport`.
    /// Cached in place of `key` (if that is still the cached one), so it is built once; the
    /// sweep makes it durable.
    pub(super) fn apply_import_expiry(&self, key: Arc<Key>) -> Arc<Key> {
        let original = key.clone();
        match self.expired_view(key) {
            Ok(expired) => {
                let is_original = |cached: &Arc<Key>| Arc::ptr_eq(cached, &original);
                if super::multi_region::is_storage_id(&expired.record.key_id) {
                    self.regional
                        .replace_if(&expired.record.key_id, expired.clone(), is_original);
                } else {
                    self.keys
                        .replace_if(&expired.id, expired.clone(), is_original);
                }
                expired
            }
            Err(key) => key,
        }
    }

    /// `Ok` with the key without its expired imported materials, if it has any; `Err` with
    /// `key` itself otherwise.
    pub(super) fn expired_view(&self, key: Arc<Key>) -> Result<Arc<Key>, Arc<Key>> {
        if key.origin != OriginType::External {
            return Err(key);
        }
        let now = self.clock.now().as_millis();
        if !key.materials.imported.iter().any(|m| m.expired(now)) {
            return Err(key);
        }
        match expire(&key, now) {
            Some(expired) => Ok(Arc::new(expired)),
            None => Err(key),
        }
    }

    /// Deletes expired imported material from the store (the in-memory keys already lack
    /// it). Returns how many keys it changed.
    pub async fn sweep_import_expiry(&self) -> Result<usize, KmsError> {
        let now = self.clock.now().as_millis();
        let purged = self.store.purge_import_tokens(now).await?;
        if purged > 0 {
            tracing::debug!(purged, "deleted expired import tokens");
        }
        let mut changed = 0;
        for key_id in self.store.keys_with_expired_imports(now).await? {
            let _guard = self.writes.lock().await;
            let Some(key) = self.load(&key_id).await? else {
                continue;
            };
            let upsert: Vec<ImportedMaterialRecord> = key
                .materials
                .imported
                .iter()
                .filter(|m| !m.imported && m.valid_to_ms.is_some_and(|t| t <= now))
                .map(|m| m.to_record(&key.record.key_id, None))
                .collect();
            self.store
                .write_imported_materials(&key.record, &upsert, &[])
                .await?;
            tracing::info!(key_id, "deleted expired imported key material");
            changed += 1;
        }
        Ok(changed)
    }

    /// The wrapping key and algorithm of the outstanding import token whose SHA-256 is
    /// `token_sha256`, if it was issued for `key` and is still valid at `now_ms`.
    async fn import_wrapping_key(
        &self,
        key: &Key,
        token_sha256: &[u8; 32],
        now_ms: i64,
    ) -> Result<(WrappingKey, WrappingAlgorithm), KmsError> {
        let key_id = key.record.key_id.as_str();
        let token = self
            .store
            .import_token(token_sha256)
            .await?
            .filter(|t| t.key_id == key_id)
            .ok_or(KmsError::InvalidImportToken)?;
        if token.expires_ms <= now_ms {
            return Err(KmsError::ExpiredImportToken);
        }
        let spec = WrappingKeySpec::parse(&token.wrapping_key_spec)
            .and_then(crypto_spec)
            .ok_or_else(|| super::corrupt("import token wrapping key spec", key_id))?;
        let algorithm = AlgorithmSpec::parse(&token.wrapping_algorithm)
            .and_then(|a| wrapping_algorithm(a).ok())
            .ok_or_else(|| super::corrupt("import token wrapping algorithm", key_id))?;
        let (domain, arn, hash) = (self.domain.clone(), key.arn().to_owned(), *token_sha256);
        let sealed = token.sealed_private_key;
        let wrapping = tokio::task::spawn_blocking(move || {
            domain.unseal_wrapping_key(&sealed, &arn, &hash, spec)
        })
        .await
        .map_err(|_| KmsError::Internal)?
        .map_err(|_| super::corrupt("sealed import wrapping key", key_id))?;
        Ok((wrapping, algorithm))
    }

    /// Caches `key` with a new record and materials (same tags, grants, aliases).
    fn replace_materials(
        &self,
        key: &Key,
        record: KeyRecord,
        materials: Materials,
    ) -> Result<Arc<Key>, KmsError> {
        let updated = key
            .with_materials(record, Arc::new(materials))
            .ok_or(KmsError::Internal)?;
        let updated = Arc::new(updated);
        self.cache_put(updated.clone());
        Ok(updated)
    }
}

/// The key once its expired materials are gone.
fn expire(key: &Key, now: i64) -> Option<Key> {
    let mut imported = key.materials.imported.clone();
    let mut by_id = key.materials.by_id.clone();
    for m in imported.iter_mut().filter(|m| m.expired(now)) {
        m.imported = false;
        by_id.remove(&m.id);
    }
    let mut record = key.record.clone();
    set_state_after(&mut record, &imported);
    key.with_materials(
        record,
        Arc::new(Materials {
            by_id,
            imported,
            private: None,
            custom_key_store: None,
        }),
    )
}

/// Sets a key's state after its imported materials changed: `PendingImport` while a
/// material associated with it is missing, remembering the state it had
/// (`state_after_import`); once every material is back, that state again (`Enabled` for a key
/// that never had material). A key pending deletion keeps its state.
fn set_state_after(record: &mut KeyRecord, imported: &[ImportedMaterial]) {
    let state = KeyState::parse(&record.state).unwrap_or(KeyState::PendingImport);
    if matches!(
        state,
        KeyState::PendingDeletion | KeyState::PendingReplicaDeletion
    ) {
        return;
    }
    if lacks_material(OriginType::External, imported) {
        if state != KeyState::PendingImport {
            record.state_after_import = Some(state.as_str().to_owned());
        }
        record.state = KeyState::PendingImport.as_str().to_owned();
    } else if state == KeyState::PendingImport {
        let back = record
            .state_after_import
            .take()
            .and_then(|s| KeyState::parse(&s))
            .filter(|s| *s == KeyState::Disabled)
            .unwrap_or(KeyState::Enabled);
        record.state = back.as_str().to_owned();
    }
}

fn check_external(key: &Key) -> Result<(), KmsError> {
    if key.origin == OriginType::External {
        Ok(())
    } else {
        Err(KmsError::OriginNotExternal {
            arn: key.arn().to_owned(),
            origin: key.origin.as_str(),
        })
    }
}

/// Whether keys of `spec` take imported material (`Origin=EXTERNAL`): symmetric encryption,
/// RSA, NIST and secp256k1 ECC, and HMAC keys, as on AWS (not SM2, Ed25519 or the
/// post-quantum specs).
pub(super) fn importable(spec: KeySpec) -> bool {
    matches!(
        spec,
        KeySpec::SymmetricDefault
            | KeySpec::Rsa2048
            | KeySpec::Rsa3072
            | KeySpec::Rsa4096
            | KeySpec::EccNistP256
            | KeySpec::EccNistP384
            | KeySpec::EccNistP521
            | KeySpec::EccSecgP256k1
            | KeySpec::Hmac224
            | KeySpec::Hmac256
            | KeySpec::Hmac384
            | KeySpec::Hmac512
    )
}

/// The wrapping algorithms AWS allows for the key's material: an RSA private key only with
/// `RSA_AES_KEY_WRAP_*` (it does not fit in RSA-OAEP), and ECC P-521 material not with
/// `RSAES_OAEP_*` under an `RSA_2048` wrapping key (likewise).
fn check_wrapping_for_key(
    key: &Key,
    spec: WrappingKeySpec,
    named: AlgorithmSpec,
    algorithm: WrappingAlgorithm,
) -> Result<(), KmsError> {
    let key_wrap = algorithm.is_key_wrap();
    let refused = match key.spec {
        KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => !key_wrap,
        KeySpec::EccNistP521 => !key_wrap && spec == WrappingKeySpec::Rsa2048,
        _ => false,
    };
    if refused {
        return Err(KmsError::ImportParameter {
            what: format!(
                "WrappingAlgorithm {named} with WrappingKeySpec {spec} is not supported for \
                 this KMS key."
            ),
        });
    }
    Ok(())
}

/// Imported material, unwrapped.
enum Unwrapped {
    Symmetric(SymmetricKey),
    Private(PrivateKey),
}

/// The crypto spec and use of an asymmetric or HMAC key (`None` for a symmetric encryption
/// key).
fn private_spec(key: &Key) -> Option<(CryptoKeySpec, KeyUse)> {
    let spec = super::specs::crypto_spec(key.spec)?;
    Some((spec, super::specs::crypto_use(key.spec, key.usage)?))
}

/// The wrapping key sizes this server generates.
fn crypto_spec(spec: WrappingKeySpec) -> Option<Spec> {
    match spec {
        WrappingKeySpec::Rsa2048 => Some(Spec::Rsa2048),
        WrappingKeySpec::Rsa3072 => Some(Spec::Rsa3072),
        WrappingKeySpec::Rsa4096 => Some(Spec::Rsa4096),
        _ => None,
    }
}

fn wrapping_algorithm(spec: AlgorithmSpec) -> Result<WrappingAlgorithm, KmsError> {
    Ok(match spec {
        AlgorithmSpec::RsaesOaepSha1 => WrappingAlgorithm::RsaesOaepSha1,
        AlgorithmSpec::RsaesOaepSha256 => WrappingAlgorithm::RsaesOaepSha256,
        AlgorithmSpec::RsaAesKeyWrapSha1 => WrappingAlgorithm::RsaAesKeyWrapSha1,
        AlgorithmSpec::RsaAesKeyWrapSha256 => WrappingAlgorithm::RsaAesKeyWrapSha256,
        other => {
            return Err(KmsError::ImportParameter {
                what: format!("WrappingAlgorithm {other} is not supported for this KMS key."),
            });
        }
    })
}

/// `ValidTo` as the expiration model requires: present, in the future and at most 365 days
/// ahead for `KEY_MATERIAL_EXPIRES`; absent otherwise.
fn check_expiration(
    model: ExpirationModelType,
    valid_to: Option<Timestamp>,
    now_ms: i64,
) -> Result<Option<i64>, KmsError> {
    match (model, valid_to) {
        (ExpirationModelType::KeyMaterialExpires, None) => Err(KmsError::ImportParameter {
            what: "A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES"
                .into(),
        }),
        (ExpirationModelType::KeyMaterialExpires, Some(t)) => {
            let t = t.as_millis();
            if t <= now_ms || t > now_ms + MAX_VALID_TO_DAYS * super::key::DAY_MS {
                return Err(KmsError::ImportParameter {
                    what: "The validTo date must be in the future and at most 365 days from \
                           now."
                        .into(),
                });
            }
            Ok(Some(t))
        }
        (_, Some(_)) => Err(KmsError::ImportParameter {
            what: "A validTo date is only valid if the ExpirationModel is KEY_MATERIAL_EXPIRES"
                .into(),
        }),
        (_, None) => Ok(None),
    }
}
