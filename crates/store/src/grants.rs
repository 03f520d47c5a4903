//! What KMS keeps of grants: one row per grant, deleted with its key.

use async_trait::async_trait;

use crate::Result;

/// One KMS grant. The service encodes `operations` and `constraints`; the store does not
/// read them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantRecord {
    /// 64 lowercase hex characters; the primary key.
    pub grant_id: String,
    /// The key the grant is for (a row of `kms_keys`).
    pub key_id: String,
    /// The grant's `Name`, if it was given one (names need not be unique).
    pub name: Option<String>,
    pub grantee_principal: String,
    pub retiring_principal: Option<String>,
    /// The grant operations, encoded by the service.
    pub operations: String,
    /// The encryption-context constraint, encoded by the service, if the grant has one.
    pub constraints: Option<String>,
    /// The account under which the grant was issued (the key's account).
    pub issuing_account: String,
    pub creation_ms: i64,
}

/// Grants of KMS keys. Deleting a key ([`crate::KmsStore::delete_key`]) deletes its grants.
#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Adds a grant, durably. [`crate::StoreError::AlreadyExists`] if the id is taken.
    async fn insert_grant(&self, grant: &GrantRecord) -> Result<()>;
    /// Deletes one grant of one key, durably; [`crate::StoreError::NotFound`] if the key
    /// has no grant with that id.
    async fn delete_grant(&self, key_id: &str, grant_id: &str) -> Result<()>;
    /// Every grant of a key, ordered by grant id.
    async fn key_grants(&self, key_id: &str) -> Result<Vec<GrantRecord>>;
    /// Every grant whose retiring principal is `retiring_principal`, on keys of any account
    /// in `region`, ordered by grant id.
    async fn retirable_grants(
        &self,
        retiring_principal: &str,
        region: &str,
    ) -> Result<Vec<GrantRecord>>;
}
