//! What Secrets Manager keeps: secrets (metadata) and their sealed versions.

use async_trait::async_trait;

use crate::Result;
use crate::records::{SecretRecord, SecretVersionRecord};

/// One change to one secret, applied with others in a single transaction by
/// [`SecretStore::write_secrets`].
#[derive(Clone, Debug)]
pub enum SecretWrite {
    /// Inserts or replaces the secret row, inserts or replaces `versions`, and deletes the
    /// versions named in `removed_versions`.
    Put {
        secret: SecretRecord,
        versions: Vec<SecretVersionRecord>,
        removed_versions: Vec<String>,
    },
    /// Deletes a secret with all its versions (nothing if it does not exist).
    Delete { arn: String },
}

/// Secrets and their versions.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Applies `writes` in order, in one durable transaction: all or nothing. Fails with
    /// [`crate::StoreError::AlreadyExists`] if a `Put` would give a second secret the name
    /// of an existing one in the same account and region.
    async fn write_secrets(&self, writes: &[SecretWrite]) -> Result<()>;
    async fn get_secret(&self, arn: &str) -> Result<Option<SecretRecord>>;
    /// The secret of this name in the account and region.
    async fn find_secret(
        &self,
        account: &str,
        region: &str,
        name: &str,
    ) -> Result<Option<SecretRecord>>;
    /// Every secret of one account and region, ordered by creation time.
    async fn list_secrets(&self, account: &str, region: &str) -> Result<Vec<SecretRecord>>;
    /// A secret's versions, ordered by creation time.
    async fn secret_versions(&self, arn: &str) -> Result<Vec<SecretVersionRecord>>;
    /// ARNs of secrets scheduled for deletion whose date is at or before `now_ms`.
    async fn secrets_due_for_deletion(&self, now_ms: i64) -> Result<Vec<String>>;
    /// ARNs of secrets not scheduled for deletion whose rotation is enabled and due at or
    /// before `now_ms` (the metadata's `rotation.due_ms`, or `rotation.next_rotation_ms`
    /// where a secret has none).
    async fn secrets_due_for_rotation(&self, now_ms: i64) -> Result<Vec<String>>;
}
