//! What KMS keeps of imported key material (keys with `EXTERNAL` origin): one row per
//! material the key ever had, with the material sealed while it is imported and gone once it
//! is deleted or has expired; and the outstanding import tokens of `GetParametersForImport`
//! (so that a token survives a restart and works on every node sharing the store). Both are
//! deleted with their key.

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

/// One outstanding import token of `GetParametersForImport`. The token itself is never
/// stored: only its SHA-256.
#[derive(Clone, PartialEq, Eq)]
pub struct ImportTokenRecord {
    /// SHA-256 of the token (32 bytes).
    pub token_sha256: Vec<u8>,
    /// The key the token was issued for.
    pub key_id: String,
    /// `WrappingKeySpec`, e.g. `RSA_2048`.
    pub wrapping_key_spec: String,
    /// `WrappingAlgorithm`, e.g. `RSAES_OAEP_SHA_256`.
    pub wrapping_algorithm: String,
    pub created_ms: i64,
    /// When the token stops being valid (`ParametersValidTo`).
    pub expires_ms: i64,
    /// The wrapping private key (PKCS#8) sealed under the domain key, bound to the key's ARN
    /// and the token's hash.
    pub sealed_private_key: Vec<u8>,
}

impl std::fmt::Debug for ImportTokenRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportTokenRecord")
            .field("key_id", &self.key_id)
            .field("wrapping_key_spec", &self.wrapping_key_spec)
            .field("wrapping_algorithm", &self.wrapping_algorithm)
            .field("expires_ms", &self.expires_ms)
            .field(
                "sealed_private_key",
                &format_args!("{} bytes", self.sealed_private_key.len()),
            )
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

    /// Stores an outstanding import token. In the same transaction, deletes every token that
    /// has expired at `now_ms` and the oldest tokens of the same key beyond `max_per_key - 1`,
    /// so that a key has at most `max_per_key` outstanding (one or two more only while
    /// several nodes insert for the same key at once). [`crate::StoreError::NotFound`] if
    /// the key does not exist.
    async fn insert_import_token(
        &self,
        token: &ImportTokenRecord,
        now_ms: i64,
        max_per_key: usize,
    ) -> Result<()>;
    /// The outstanding token with this hash, if it was not used up yet (expired or not).
    async fn import_token(&self, token_sha256: &[u8]) -> Result<Option<ImportTokenRecord>>;
    /// `ImportKeyMaterial`'s write: in one durable transaction, uses up the token
    /// `token_sha256` issued for `key` (deletes it) and, only if it was still there, writes
    /// `upsert` and `key` as [`ImportStore::write_imported_materials`] does. `Ok(false)`:
    /// the token was already used (by a concurrent request, on this node or another) and
    /// nothing was written, so that a token imports material once.
    async fn import_with_token(
        &self,
        key: &KeyRecord,
        upsert: &[ImportedMaterialRecord],
        token_sha256: &[u8],
    ) -> Result<bool>;
    /// Deletes the tokens that have expired at `now_ms`; returns how many.
    async fn purge_import_tokens(&self, now_ms: i64) -> Result<usize>;
}
