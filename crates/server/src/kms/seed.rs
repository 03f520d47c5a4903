//! Keys from a seed file (`keyhold serve --seed`), and forgetting every key when the
//! state is reset (`POST /_keyhold/reset`). Both are dev-mode tools for test suites; see
//! `crate::ops`.

use std::collections::HashMap;
use std::sync::Arc;

use keyhold_crypto::{MaterialId, SymmetricKey};
use keyhold_proto::kms::KeyManagerType;
use zeroize::Zeroizing;

use super::KmsService;
use super::error::KmsError;
use super::key::Materials;
use super::managed::default_key_policy;
use crate::arn::Scope;

/// A customer-managed symmetric key as a seed file describes it.
pub struct SeedKey {
    /// The key id (a UUID); a random one when `None`.
    pub key_id: Option<uuid::Uuid>,
    /// The backing key (dev mode only: the caller checks); a random one when `None`.
    pub material: Option<Zeroizing<[u8; 32]>>,
    pub description: String,
}

impl std::fmt::Debug for SeedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedKey")
            .field("key_id", &self.key_id)
            .field("material", &self.material.as_ref().map(|_| "[redacted]"))
            .field("description", &self.description)
            .finish()
    }
}

/// Why a seeded key was not created.
#[derive(Debug)]
pub enum SeedKeyOutcome {
    Created(String),
    /// A key with this id exists already (a restart with the same seed file).
    Exists(String),
}

impl KmsService {
    /// Creates a key as a seed file describes it, with the default key policy of `scope`.
    ///
    /// With fixed material the material id is derived from the key id and the material, so
    /// that a ciphertext made by one server decrypts on every server seeded with the same
    /// file (the blob names its key and material, DESIGN.md "Symmetric ciphertext blob").
    pub async fn seed_key(&self, scope: &Scope, seed: SeedKey) -> Result<SeedKeyOutcome, KmsError> {
        let _guard = self.writes.lock().await;
        let mut new = self.new_symmetric_key(
            scope,
            seed.description,
            default_key_policy(scope),
            KeyManagerType::Customer,
        )?;
        if let Some(id) = seed.key_id {
            let key_id = id.hyphenated().to_string();
            if self.store.get_key(&key_id).await?.is_some() {
                return Ok(SeedKeyOutcome::Exists(key_id));
            }
            new.record.key_id = key_id.clone();
            new.record.arn = scope.arn("kms", format_args!("key/{key_id}"));
            new.material.key_id = key_id;
        }
        let (material_id, material) = match seed.material {
            Some(bytes) => (
                seeded_material_id(&new.record.key_id, &bytes),
                SymmetricKey::dangerous_from_bytes(*bytes),
            ),
            None => {
                // Reseal the generated material: the AAD names the (possibly new) ARN.
                let id = MaterialId::random().map_err(|_| KmsError::Internal)?;
                (
                    id,
                    SymmetricKey::generate().map_err(|_| KmsError::Internal)?,
                )
            }
        };
        new.material.sealed = self
            .domain
            .seal_material(&material, &new.record.arn, &material_id)
            .map_err(|_| KmsError::Internal)?;
        new.material.material_id = material_id.to_hex();
        new.record.current_material_id = material_id.to_hex();
        let mut by_id = HashMap::new();
        by_id.insert(material_id, Arc::new(material));
        new.materials = Materials::symmetric(by_id);
        let key = self.insert_key(new, Vec::new(), None).await?;
        Ok(SeedKeyOutcome::Created(key.record.key_id.clone()))
    }

    /// Counts cache lookups and scheduled rotations in `metrics` from now on.
    pub fn attach_metrics(&self, metrics: Arc<crate::ops::metrics::Metrics>) {
        let _ = self.metrics.set(metrics);
    }

    pub(super) fn note_cache(&self, hit: bool) {
        if let Some(m) = self.metrics.get() {
            m.cache_lookup("kms_keys", hit);
        }
    }

    pub(super) fn note_rotation(&self, failed: bool) {
        if let Some(m) = self.metrics.get() {
            m.rotation(failed);
        }
    }

    /// Waits for the writers of this service and keeps them out while the guard lives.
    pub(crate) async fn lock_writes(&self) -> crate::write_locks::WriteGuard<'_> {
        self.writes.lock().await
    }

    /// Forgets every cached key and alias (the store has been erased). The caller holds
    /// [`Self::lock_writes`], which also forgets the key ids remembered as missing.
    pub(crate) fn forget_all(&self) {
        self.keys.clear();
        self.regional.clear();
        self.aliases.clear();
        self.unknown.clear();
    }
}

/// The material id of a seeded key's fixed material: SHA-256 over a label, the key id and
/// the material. One-way, so it reveals nothing of the material.
fn seeded_material_id(key_id: &str, material: &[u8; 32]) -> MaterialId {
    let mut input = Zeroizing::new(Vec::with_capacity(64 + key_id.len()));
    input.extend_from_slice(b"keyhold-seed-material-id\0");
    input.extend_from_slice(key_id.as_bytes());
    input.push(0);
    input.extend_from_slice(material);
    MaterialId::from_bytes(keyhold_crypto::digest::sha256(&input))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_material_ids_depend_on_key_and_material() {
        let a = seeded_material_id("k1", &[1; 32]);
        assert_eq!(a, seeded_material_id("k1", &[1; 32]));
        assert_ne!(a, seeded_material_id("k2", &[1; 32]));
        assert_ne!(a, seeded_material_id("k1", &[2; 32]));
    }
}
