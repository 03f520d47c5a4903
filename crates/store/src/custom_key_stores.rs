//! What KMS keeps of custom key stores (`CreateCustomKeyStore`): one row per store, with the
//! token user's PIN (the `KeyStorePassword`) sealed under the domain key, and which keys
//! live in which store. A key of a custom key store has no material row: its material is in
//! the token. A store with keys cannot be deleted; a key's row goes with the key.

use async_trait::async_trait;

use crate::Result;
use crate::records::{KeyRecord, Tag};

/// One custom key store.
#[derive(Clone, PartialEq, Eq)]
pub struct CustomKeyStoreRecord {
    /// `cks-` and 17 hex digits; the primary key.
    pub id: String,
    pub account: String,
    pub region: String,
    /// Unique within the account and region.
    pub name: String,
    /// `AWS_CLOUDHSM`.
    pub store_type: String,
    /// The configured `[[custom_key_stores]]` entry (`cluster_id`) it is associated with.
    pub cluster_id: String,
    /// The `TrustAnchorCertificate` given at creation (PEM).
    pub trust_anchor: String,
    /// The token user's PIN, sealed under the domain key (bound to the store id).
    pub sealed_password: Vec<u8>,
    /// `CONNECTED`, `CONNECTING`, `DISCONNECTED`, `DISCONNECTING` or `FAILED`.
    pub connection_state: String,
    /// Why the last connection failed, while `connection_state` is `FAILED`.
    pub connection_error: Option<String>,
    pub creation_ms: i64,
}

impl std::fmt::Debug for CustomKeyStoreRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomKeyStoreRecord")
            .field("id", &self.id)
            .field("account", &self.account)
            .field("region", &self.region)
            .field("name", &self.name)
            .field("cluster_id", &self.cluster_id)
            .field("connection_state", &self.connection_state)
            .field(
                "sealed_password",
                &format_args!("{} bytes", self.sealed_password.len()),
            )
            .finish_non_exhaustive()
    }
}

/// Custom key stores and the keys in them.
#[async_trait]
pub trait CustomKeyStoreStore: Send + Sync {
    /// [`crate::StoreError::AlreadyExists`] if the name is taken in the account and region.
    async fn insert_custom_key_store(&self, store: &CustomKeyStoreRecord) -> Result<()>;
    async fn get_custom_key_store(&self, id: &str) -> Result<Option<CustomKeyStoreRecord>>;
    /// The stores of one account and region, ordered by id.
    async fn list_custom_key_stores(
        &self,
        account: &str,
        region: &str,
    ) -> Result<Vec<CustomKeyStoreRecord>>;
    /// Replaces the mutable fields (name, cluster, password, connection state and error);
    /// [`crate::StoreError::NotFound`] if it does not exist,
    /// [`crate::StoreError::AlreadyExists`] if the new name is taken.
    async fn update_custom_key_store(&self, store: &CustomKeyStoreRecord) -> Result<()>;
    /// Deletes the store if it has no keys; returns whether it deleted it.
    async fn delete_custom_key_store(&self, id: &str) -> Result<bool>;
    /// How many keys (in any state) the store holds.
    async fn custom_key_store_key_count(&self, id: &str) -> Result<usize>;
    /// Creates a key whose material is in the store's token, with its tags, in one durable
    /// transaction.
    async fn insert_custom_key_store_key(
        &self,
        key: &KeyRecord,
        tags: &[Tag],
        custom_key_store_id: &str,
    ) -> Result<()>;
    /// The custom key store a key lives in, if any.
    async fn key_custom_key_store(&self, key_id: &str) -> Result<Option<String>>;
}
