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
}

/// One backing-key version of a key, sealed under the domain key.
#[derive(Clone, PartialEq, Eq)]
pub struct MaterialRecord {
    pub key_id: String,
    /// 64 lowercase hex characters.
    pub material_id: String,
    pub sealed: Vec<u8>,
    pub creation_ms: i64,
}

impl std::fmt::Debug for MaterialRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaterialRecord")
            .field("key_id", &self.key_id)
            .field("material_id", &self.material_id)
            .field("sealed", &format_args!("{} bytes", self.sealed.len()))
            .field("creation_ms", &self.creation_ms)
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
