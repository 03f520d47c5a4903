//! What KMS keeps of imported key material (keys with `EXTERNAL` origin): one row per
//! material the key ever had, with the material sealed while it is imported and gone once it
//! is deleted or has expired. Deleted with its key.

use async_trait::async_trait;

use crate::Result;
use crate::records::{KeyRecord, Tag};

/// One imported material of a key.
#[derive(Clone, PartialEq, Eq)]
pub struct ImportedMaterialRecord {
    pub key_id: String,
    /// 64 lowercase hex characters, derived from the material (the same material always has
    /// the same id in the same key).
    pub material_id: String,
    /// The material sealed under the domain key while it is imported; `None` once it was
    /// deleted or expired (its import state is then `PENDING_IMPORT`).
    pub sealed: Option<Vec<u8>>,
    /// When the material was first imported.
    pub creation_ms: i64,
    /// `KEY_MATERIAL_EXPIRES` or `KEY_MATERIAL_DOES_NOT_EXPIRE` (of the latest import).
    pub expiration_model: String,
    /// When the material expires, for `KEY_MATERIAL_EXPIRES`.
    pub valid_to_ms: Option<i64>,
    /// The `KeyMaterialDescription` of the latest import.
    pub description: Option<String>,
    /// Imported as new material and not yet made current by `RotateKeyOnDemand`.
    pub pending_rotation: bool,
    /// `ON_DEMAND` once a rotation made this material current (at `rotation_ms`).
    pub rotation_type: Option<String>,
    pub rotation_ms: Option<i64>,
}

impl std::fmt::Debug for ImportedMaterialRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportedMaterialRecord")
            .field("key_id", &self.key_id)
            .field("material_id", &self.material_id)
            .field("sealed", &self.sealed.as_ref().map(|s| s.len()))
            .field("valid_to_ms", &self.valid_to_ms)
            .field("pending_rotation", &self.pending_rotation)
            .finish_non_exhaustive()
    }
}

/// Imported key material of KMS keys.
#[async_trait]
pub trait ImportStore: Send + Sync {
    /// Creates a key that has no material yet (`EXTERNAL` origin), with its tags.
    async fn insert_key_without_material(&self, key: &KeyRecord, tags: &[Tag]) -> Result<()>;
    /// A key's imported materials, in the order they were first imported.
    async fn imported_materials(&self, key_id: &str) -> Result<Vec<ImportedMaterialRecord>>;
    /// In one durable transaction: adds or replaces `upsert`, removes the materials
    /// `remove` names, and writes `key` (its state and current material).
    async fn write_imported_materials(
        &self,
        key: &KeyRecord,
        upsert: &[ImportedMaterialRecord],
        remove: &[String],
    ) -> Result<()>;
    /// Ids of keys with an imported material (still present) whose `valid_to_ms` is at or
    /// before `now_ms`.
    async fn keys_with_expired_imports(&self, now_ms: i64) -> Result<Vec<String>>;
}
