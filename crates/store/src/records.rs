//! Plain rows exchanged with the store. Times are epoch milliseconds.

/// A KMS key's metadata. `key_id` is globally unique (a UUID).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    pub key_id: String,
    pub account: String,
    pub region: String,
    pub arn: String,
    pub creation_ms: i64,
    pub description: String,
    pub key_usage: String,
    pub key_spec: String,
    pub origin: String,
    /// `CUSTOMER` or `AWS`.
    pub key_manager: String,
    /// `Enabled`, `Disabled`, `PendingDeletion`, ...
    pub state: String,
    pub deletion_ms: Option<i64>,
    pub policy: String,
    /// Hex id of the material new ciphertexts use.
    pub current_material_id: String,
    /// The automatic rotation period in days while automatic rotation is enabled (`None`:
    /// disabled). Kept while the key is disabled or pending deletion, so that enabling or
    /// cancelling restores it.
    pub rotation_period_days: Option<i32>,
    /// When the next automatic rotation is due; set exactly when `rotation_period_days` is.
    pub next_rotation_ms: Option<i64>,
    /// For a key with imported material that is `PendingImport` because material it had was
    /// deleted or expired: the state it returns to once the material is back (`Enabled` or
    /// `Disabled`, the state it had). `None` otherwise (a key that never had material
    /// becomes `Enabled`).
    pub state_after_import: Option<String>,
    /// For every row of a multi-Region key (stored as `mrk-<hex>:<region>`, one row per
    /// region): the region of its primary key. `None` for a single-Region key.
    pub multi_region_primary: Option<String>,
}

/// One key's part of a rotation ([`crate::KmsStore::rotate_keys`]): the record the rotation
/// was decided on, the record to write (whose `current_material_id` names the new
/// material), and the new material.
#[derive(Debug, Clone)]
pub struct KeyRotation {
    pub read: KeyRecord,
    pub key: KeyRecord,
    pub material: MaterialRecord,
}

/// One backing-key version of a key, sealed under the domain key.
#[derive(Clone, PartialEq, Eq)]
pub struct MaterialRecord {
    pub key_id: String,
    /// 64 lowercase hex characters.
    pub material_id: String,
    pub sealed: Vec<u8>,
    pub creation_ms: i64,
    /// How this material became the key's current one: `None` for the material the key was
    /// created with, `AUTOMATIC` or `ON_DEMAND` for a rotation (at `creation_ms`).
    pub rotation_type: Option<String>,
}

impl std::fmt::Debug for MaterialRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaterialRecord")
            .field("key_id", &self.key_id)
            .field("material_id", &self.material_id)
            .field("sealed", &format_args!("{} bytes", self.sealed.len()))
            .field("creation_ms", &self.creation_ms)
            .field("rotation_type", &self.rotation_type)
            .finish()
    }
}

/// An alias (`alias/name`) in one account and region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AliasRecord {
    pub account: String,
    pub region: String,
    pub name: String,
    pub target_key_id: String,
    pub creation_ms: i64,
    pub updated_ms: i64,
}

/// A resource tag.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// A Secrets Manager secret: identity columns plus the service's metadata document. Never a
/// secret value (those are [`SecretVersionRecord`]s, sealed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRecord {
    /// `arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX`; the primary key.
    pub arn: String,
    pub account: String,
    pub region: String,
    /// Unique within the account and region (a secret scheduled for deletion keeps it).
    pub name: String,
    pub created_ms: i64,
    /// When the background task may purge the secret; set while it is scheduled for deletion.
    pub deletion_ms: Option<i64>,
    /// Everything else (description, KMS key, tags, staging labels, policy, rotation and
    /// replication settings), encoded by the service. Opaque to the store.
    pub meta: String,
    /// How many times the row was written: 1 when the secret is created, one more with
    /// each change. A [`crate::SecretWrite::Put`] names the revision it makes, and the
    /// store replaces the row only while it is at the one before (creates it only while
    /// there is none); otherwise the whole write fails with [`crate::StoreError::Conflict`]
    /// — the writer decided (which version is `AWSCURRENT`, say) on a state another writer
    /// has changed since.
    pub revision: i64,
}

/// One version of a secret: its value sealed under a data key, and that data key encrypted
/// by KMS. Nothing here opens without KMS.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretVersionRecord {
    pub secret_arn: String,
    /// A `ClientRequestToken` (32 to 64 characters) or a generated UUID.
    pub version_id: String,
    pub created_ms: i64,
    /// The day (midnight UTC) the version was last read, if ever.
    pub last_accessed_ms: Option<i64>,
    /// The `KmsKeyId` the secret named when the version was encrypted (`None`: the
    /// AWS-managed `aws/secretsmanager`).
    pub kms_key_id: Option<String>,
    /// The ARN of the KMS key that encrypted `data_key`.
    pub kms_key_arn: String,
    /// The data key, as KMS `GenerateDataKey` returned its ciphertext.
    pub data_key: Vec<u8>,
    /// The value, sealed under the data key (`keyhold_crypto::envelope`).
    pub sealed_value: Vec<u8>,
}

impl std::fmt::Debug for SecretVersionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretVersionRecord")
            .field("secret_arn", &self.secret_arn)
            .field("version_id", &self.version_id)
            .field("created_ms", &self.created_ms)
            .field("last_accessed_ms", &self.last_accessed_ms)
            .field("kms_key_id", &self.kms_key_id)
            .field("kms_key_arn", &self.kms_key_arn)
            .field("data_key", &format_args!("{} bytes", self.data_key.len()))
            .field(
                "sealed_value",
                &format_args!("{} bytes", self.sealed_value.len()),
            )
            .finish()
    }
}
