//! Keyhold's storage: what the services need to keep, and where.
//!
//! The store holds metadata and *sealed* blobs only. Key material arrives here already sealed
//! under the domain key (see `keyhold-crypto`), so nothing in a database file, a backup or a
//! replica can decrypt anything by itself.
//!
//! - [`Store`] is the whole contract, split by subject: [`MetaStore`] (the sealed domain key,
//!   server identity), [`KmsStore`] (keys, their sealed materials, aliases, tags),
//!   [`SecretStore`] (Secrets Manager secrets and their sealed versions), [`ParamStore`]
//!   (Parameter Store parameters and their versions), [`IamStore`] (IAM users, roles, inline
//!   policies, access keys with sealed secrets, STS sessions), [`GrantStore`] (KMS grants),
//!   [`ImportStore`] (imported key material), [`CustomKeyStoreStore`] (custom key stores),
//!   [`AuditClusterStore`] (the cluster digest chain joining the nodes' audit trails, and
//!   on PostgreSQL their shared lookup index, [`audit_lookup`]).
//! - [`SqliteStore`] is the embedded default: WAL journal, `synchronous=FULL`, so a call that
//!   creates or changes key material is acknowledged only once its commit is on disk.
//! - [`PgStore`] keeps the same tables in PostgreSQL (`storage = "postgres://..."`): one
//!   transaction per write, committed before the call returns; races are settled by the
//!   database's constraints and row locks, so that several processes may share it.
//! - [`records`] are the plain rows the traits exchange.
//! - [`copy`] moves a node's state from one store to another (`keyhold migrate-store`).
//!
//! Every implementation runs the same test suite (`tests/store_suite.rs`).

pub mod audit;
pub mod audit_cluster;
pub mod audit_lookup;
pub mod changes;
pub mod copy;
mod custom_key_stores;
mod grants;
pub mod iam;
mod imports;
mod params;
mod postgres;
pub mod records;
mod secrets;
pub mod segment;
mod sqlite;

use async_trait::async_trait;

pub use audit_cluster::{AuditClusterStore, ClusterDigestRow};
pub use audit_lookup::SharedAuditIndex;

pub use changes::{Change, ChangeFeed};
pub use custom_key_stores::{CustomKeyStoreRecord, CustomKeyStoreStore};
pub use grants::{GrantRecord, GrantStore};
pub use iam::{
    AccessKeyRecord, IamRoleRecord, IamSnapshot, IamStore, IamUserRecord, IamWrite,
    InlinePolicyRecord, SessionRecord,
};
pub use imports::{ImportStore, ImportTokenRecord, ImportedMaterialRecord};
pub use params::{OneParam, ParamRecord, ParamStore, ParamVersionRecord, ParamWrite, ScopeParams};
pub use postgres::{
    PgAuditAnchor, PgConfig, PgStore, RustlsStream, SslMode, is_postgres_url, parse_postgres_url,
};
pub use records::{
    AliasRecord, KeyRecord, KeyRotation, MaterialRecord, SecretRecord, SecretVersionRecord, Tag,
};
pub use secrets::{SecretStore, SecretWrite};
pub use sqlite::{
    IndexHit, SqliteAuditAnchor, SqliteAuditIndex, SqliteAuditLog, SqliteStore, snapshot_sqlite,
};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A row with the same unique key already exists.
    #[error("the record already exists")]
    AlreadyExists,
    /// The record to change does not exist.
    #[error("the record does not exist")]
    NotFound,
    /// The record changed since the writer read it (another writer, usually on another
    /// node, wrote it first); nothing was written. Read it again and decide again.
    #[error("the record changed since it was read")]
    Conflict,
    /// The stored data does not have the expected shape (a migration bug or tampering).
    #[error("stored data is corrupt: {0}")]
    Corrupt(&'static str),
    /// A derived file (named) was written by another version in another layout: it is
    /// rebuilt, not migrated.
    #[error("{0} has the layout of another version")]
    OtherLayout(&'static str),
    /// The store's configuration is unusable (a connection string, a CA bundle it names);
    /// the message never holds a password.
    #[error("{0}")]
    Config(String),
    /// The database refused or failed.
    #[error("database error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Server-wide values: the sealed domain key and the like.
#[async_trait]
pub trait MetaStore: Send + Sync {
    async fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// Inserts `value` unless `name` exists; returns whether it inserted. Durable on return.
    async fn insert_meta_if_absent(&self, name: &str, value: &[u8]) -> Result<bool>;
    /// Replaces `name`'s value with `value` only if it is still `expected`; returns whether
    /// it replaced it. Durable on return.
    async fn replace_meta(&self, name: &str, expected: &[u8], value: &[u8]) -> Result<bool>;
    /// Deletes every resource (KMS keys with their materials, aliases, tags and grants;
    /// secrets; parameters; IAM users, roles, keys and sessions) in one durable
    /// transaction, keeping the server's own values (the sealed domain key, the audit
    /// anchor). Returns how many rows it deleted. For `POST /_keyhold/reset` (dev mode).
    async fn erase_resources(&self) -> Result<usize>;

    /// The feed of changes other processes sharing this store commit (see [`changes`]), or
    /// `None` for a store that only one process opens (SQLite): then nothing but this
    /// process writes it. Each call starts a feed of its own.
    fn change_feed(&self) -> Option<ChangeFeed> {
        None
    }

    /// Takes or renews the lease `name` for `ttl_ms` for this process, unless another
    /// process holds it and it has not expired; returns whether this process holds it now.
    /// Background jobs run only while their node holds their lease, so that a cluster
    /// sharing the store runs each once. A store only one process opens always grants it.
    async fn try_lease(&self, name: &str, ttl_ms: i64) -> Result<bool> {
        let _ = (name, ttl_ms);
        Ok(true)
    }

    /// Gives up the lease `name` if this process holds it (a node stopping hands its jobs
    /// over at once instead of when the lease expires).
    async fn release_lease(&self, name: &str) -> Result<()> {
        let _ = name;
        Ok(())
    }
}

/// KMS keys, their sealed backing-key materials, aliases and tags.
#[async_trait]
pub trait KmsStore: Send + Sync {
    /// Creates a key with its first material, its tags and (for AWS-managed keys) its alias,
    /// in one durable transaction.
    async fn insert_key(
        &self,
        key: &KeyRecord,
        material: &MaterialRecord,
        tags: &[Tag],
        alias: Option<&AliasRecord>,
    ) -> Result<()>;
    async fn get_key(&self, key_id: &str) -> Result<Option<KeyRecord>>;
    /// Replaces the mutable fields of a key (description, state, deletion date, policy,
    /// rotation settings).
    async fn update_key(&self, key: &KeyRecord) -> Result<()>;
    /// [`KmsStore::update_key`] only while the stored record is still `read`, the one the
    /// change was decided on: [`StoreError::Conflict`] if another writer (another node)
    /// changed it since, [`StoreError::NotFound`] if it is gone. Checked under the row's
    /// lock, in the transaction that writes it.
    async fn update_key_from(&self, read: &KeyRecord, key: &KeyRecord) -> Result<()>;
    /// Deletes a key with its materials, tags, aliases and grants — only if, at the moment
    /// of deleting, it is still pending deletion with a date at or before `now_ms` (a
    /// concurrent `CancelKeyDeletion` wins). Returns whether it deleted the key.
    async fn delete_key_if_due(&self, key_id: &str, now_ms: i64) -> Result<bool>;
    /// Keys of one account and region ordered by key id, after `after` (exclusive).
    async fn list_keys(
        &self,
        account: &str,
        region: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<KeyRecord>>;
    /// The rows of one multi-Region key (`wire_key_id` is `mrk-<hex>`) in every region of
    /// `account`, ordered by storage id.
    async fn multi_region_keys(&self, account: &str, wire_key_id: &str) -> Result<Vec<KeyRecord>>;
    /// Stores a key with several materials (a multi-Region replica gets every material of
    /// its primary) and its tags, in one durable transaction.
    async fn insert_key_with_materials(
        &self,
        key: &KeyRecord,
        materials: &[MaterialRecord],
        tags: &[Tag],
    ) -> Result<()>;
    /// Ids of keys pending deletion whose deletion date is at or before `now_ms`.
    async fn keys_due_for_deletion(&self, now_ms: i64) -> Result<Vec<String>>;
    /// A key's materials, oldest first (the order they became current).
    async fn materials(&self, key_id: &str) -> Result<Vec<MaterialRecord>>;
    /// A rotation: adds `material` and writes `key` (whose `current_material_id` names it,
    /// and whose `next_rotation_ms` is the next automatic rotation), in one durable
    /// transaction — a crash leaves either both or neither — over the record stored now.
    async fn rotate_key(&self, key: &KeyRecord, material: &MaterialRecord) -> Result<()> {
        let read = self
            .get_key(&key.key_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        self.rotate_keys(&[KeyRotation {
            read,
            key: key.clone(),
            material: material.clone(),
        }])
        .await
    }
    /// Several keys' rotations in one durable transaction: a multi-Region primary and each
    /// replica's copy of its new material, so that no replica misses a material the
    /// primary encrypts with. Each record is written only over the one its rotation was
    /// decided on (`read`, compared whole, as [`KmsStore::update_key_from`]): if another
    /// writer changed any, [`StoreError::Conflict`] and nothing is written.
    async fn rotate_keys(&self, rotations: &[KeyRotation]) -> Result<()>;
    /// Writes several keys' mutable fields in one durable transaction (the rows of a
    /// multi-Region key when its primary region moves), each pair `(read, key)` only over
    /// the record read, as [`KmsStore::rotate_keys`].
    async fn update_keys(&self, keys: &[(KeyRecord, KeyRecord)]) -> Result<()>;
    /// Ids of enabled keys whose next automatic rotation is at or before `now_ms`.
    async fn keys_due_for_rotation(&self, now_ms: i64) -> Result<Vec<String>>;

    /// Fails with [`StoreError::AlreadyExists`] if the name is taken in the account and region.
    async fn insert_alias(&self, alias: &AliasRecord) -> Result<()>;
    /// Points an existing alias from `from_key_id` (the target the change was decided on)
    /// at `target_key_id`: [`StoreError::NotFound`] if the alias does not exist,
    /// [`StoreError::Conflict`] (nothing written) if it points elsewhere now — another node
    /// moved it after this one read it, so what was authorized no longer holds.
    async fn update_alias(
        &self,
        account: &str,
        region: &str,
        name: &str,
        from_key_id: &str,
        target_key_id: &str,
        updated_ms: i64,
    ) -> Result<()>;
    /// Deletes an alias that still points at `from_key_id`: [`StoreError::NotFound`] if it
    /// does not exist, [`StoreError::Conflict`] (nothing deleted) if it points elsewhere now.
    async fn delete_alias(
        &self,
        account: &str,
        region: &str,
        name: &str,
        from_key_id: &str,
    ) -> Result<()>;
    async fn get_alias(
        &self,
        account: &str,
        region: &str,
        name: &str,
    ) -> Result<Option<AliasRecord>>;
    /// Aliases of one account and region (of one key if given), ordered by name.
    async fn list_aliases(
        &self,
        account: &str,
        region: &str,
        key_id: Option<&str>,
    ) -> Result<Vec<AliasRecord>>;

    /// Adds or replaces tags.
    async fn put_tags(&self, key_id: &str, tags: &[Tag]) -> Result<()>;
    async fn remove_tags(&self, key_id: &str, tag_keys: &[String]) -> Result<()>;
    /// Tags ordered by key.
    async fn list_tags(&self, key_id: &str) -> Result<Vec<Tag>>;
}

/// A KMS key with everything stored about it, as of one moment.
#[derive(Debug, Clone)]
pub struct KeySnapshot {
    pub record: KeyRecord,
    pub tags: Vec<Tag>,
    pub materials: Vec<MaterialRecord>,
    pub imported: Vec<ImportedMaterialRecord>,
    pub grants: Vec<GrantRecord>,
    pub aliases: Vec<AliasRecord>,
}

/// Reads of a key that must not be torn by a concurrent write.
#[async_trait]
pub trait KeySnapshotStore: Send + Sync {
    /// The key with its tags, materials, imported materials, grants and aliases, all read
    /// in one read transaction: a write that changes the record and the materials together
    /// (an expiry sweep, a rotation, an import) is seen entirely or not at all.
    async fn key_snapshot(&self, key_id: &str) -> Result<Option<KeySnapshot>>;
}

/// Everything a Keyhold server stores.
pub trait Store:
    MetaStore
    + KmsStore
    + KeySnapshotStore
    + SecretStore
    + ParamStore
    + IamStore
    + GrantStore
    + ImportStore
    + CustomKeyStoreStore
    + AuditClusterStore
{
}

impl<
    T: MetaStore
        + KmsStore
        + KeySnapshotStore
        + SecretStore
        + ParamStore
        + IamStore
        + GrantStore
        + ImportStore
        + CustomKeyStoreStore
        + AuditClusterStore,
> Store for T
{
}
