//! The PostgreSQL store (`storage = "postgres://..."`).
//!
//! A pool of connections (deadpool-postgres); every write is one transaction on one pooled
//! connection, committed before the call returns (with PostgreSQL's default
//! `synchronous_commit = on`, a commit is on disk — and on synchronous replicas — when it is
//! acknowledged). Writes that must not race rely on the database, not on a process lock:
//! uniqueness on constraints (a violation is [`StoreError::AlreadyExists`]), conditional
//! changes on `UPDATE ... WHERE` and row locks (`SELECT ... FOR UPDATE`), so that several
//! processes sharing one database keep the same guarantees as one.
//!
//! The schema is versioned ([`migrations`]) and brought up to date when the store opens.
//! Every connection is configured in one place, [`PgConfig`], with TLS as libpq's `sslmode`
//! and `sslrootcert` ask ([`tls`]; docs/storage.md).

mod audit_cluster;
mod audit_lookup;
mod config;
mod custom_key_stores;
mod feed;
mod iam;
mod migrations;
mod services;
mod tls;

pub(crate) use config::split as split_url;
pub use config::{PgConfig, SslMode};
pub use tls::RustlsStream;

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use deadpool_postgres::{ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

use crate::audit::AuditAnchor;
use crate::changes::{Change, ChangeFeed};
use crate::records::{AliasRecord, KeyRecord, KeyRotation, MaterialRecord, Tag};
use crate::{KeySnapshot, KeySnapshotStore, KmsStore, MetaStore, Result, StoreError};

/// Connections the pool keeps open at most.
const POOL_SIZE: usize = 16;

/// PostgreSQL-backed [`crate::Store`]. Cloning shares the pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    config: PgConfig,
    /// This process's tag: in the notifications of its writes (so that its own change
    /// feed skips them) and as the holder of the leases it takes.
    node: std::sync::Arc<str>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the connection string: it may hold a password.
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

/// Whether a `storage` setting names a PostgreSQL database.
pub fn is_postgres_url(storage: &str) -> bool {
    storage.starts_with("postgres://") || storage.starts_with("postgresql://")
}

/// Parses a `postgres://` URL (or a `key=value` connection string) without ever putting it
/// (it may hold a password) into the error; reads the CA bundle its `sslrootcert` names.
/// See [`PgConfig::parse`].
pub fn parse_postgres_url(url: &str) -> Result<PgConfig> {
    PgConfig::parse(url)
}

impl PgStore {
    /// Connects to the database `url` names and brings its schema up to date.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_config(parse_postgres_url(url)?).await
    }

    /// Connects with an already parsed configuration and brings the schema up to date.
    pub async fn connect_config(config: PgConfig) -> Result<Self> {
        let store = Self::open_without_migrating(config)?;
        store.migrate().await?;
        Ok(store)
    }

    fn open_without_migrating(mut config: PgConfig) -> Result<Self> {
        let settings = config.config_mut();
        if settings.get_connect_timeout().is_none() {
            settings.connect_timeout(Duration::from_secs(10));
        }
        if settings.get_application_name().is_none() {
            settings.application_name("keyhold");
        }
        let manager = config.manager(ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        });
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(15)))
            .build()
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        Ok(Self {
            pool,
            config,
            node: node_tag().into(),
        })
    }

    /// This process's tag (the holder of its leases, the sender of its notifications).
    pub fn node_tag(&self) -> &str {
        &self.node
    }

    /// Announces `changes` when `tx` commits (see [`feed`]).
    pub(crate) async fn notify(&self, tx: &impl GenericClient, changes: &[Change]) -> Result<()> {
        feed::notify(tx, &self.node, changes).await
    }

    /// Applies the migrations this database lacks (under an advisory lock, so that nodes
    /// starting together apply each once). Returns how many it applied.
    pub async fn migrate(&self) -> Result<usize> {
        let mut client = self.client().await?;
        migrations::apply(&mut client).await
    }

    /// A store on the database `url` names, its schema left as it is (no migrations);
    /// connects on first use. For offline tools that only read (`keyhold audit verify
    /// --storage`).
    pub fn connect_without_migrating(url: &str) -> Result<Self> {
        Self::open_without_migrating(parse_postgres_url(url)?)
    }

    /// Connects to the database `url` names and applies the migrations it lacks, without
    /// keeping the pool (`keyhold migrate`). Returns how many it applied.
    pub async fn migrate_url(url: &str) -> Result<usize> {
        Self::open_without_migrating(parse_postgres_url(url)?)?
            .migrate()
            .await
    }

    /// The number of the newest migration this Keyhold knows.
    pub fn latest_schema_version() -> usize {
        migrations::MIGRATIONS.len()
    }

    async fn client(&self) -> Result<Object> {
        self.pool.get().await.map_err(|e| {
            let why = match &e {
                // The connection's own error, with its causes (a TLS handshake's says
                // which check failed).
                deadpool_postgres::PoolError::Backend(e) => causes(e),
                other => other.to_string(),
            };
            StoreError::Backend(format!("no database connection: {why}").into())
        })
    }
}

/// An error and its causes on one line: tokio-postgres's own message ("error performing TLS
/// handshake") does not say why.
pub(crate) fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A tag unique to this store handle among the processes sharing the database: host name,
/// process id and a random number.
fn node_tag() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| {
            h.trim()
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(32)
                .collect::<String>()
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "keyhold".into());
    format!(
        "{host}-{}-{:08x}",
        std::process::id(),
        hasher.finish() as u32
    )
}

/// Maps a database error: only a uniqueness violation means "already exists"; a foreign
/// key, NOT NULL or CHECK failure is a backend error.
pub(crate) fn pg(e: tokio_postgres::Error) -> StoreError {
    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        StoreError::AlreadyExists
    } else {
        StoreError::Backend(Box::new(e))
    }
}

/// Whether a lookup value holds a NUL character: PostgreSQL's TEXT cannot hold one (it
/// refuses the parameter), so no stored row can match it — the lookup finds nothing, as it
/// does on SQLite, instead of failing.
pub(crate) fn has_nul(values: &[&str]) -> bool {
    values.iter().any(|v| v.contains('\0'))
}

fn limit_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

const KEY_COLUMNS: &str = "key_id, account, region, arn, creation_ms, description, key_usage, \
     key_spec, origin, key_manager, state, deletion_ms, policy, current_material_id, \
     rotation_period_days, next_rotation_ms, state_after_import, multi_region_primary";

fn key_from_row(row: &Row) -> Result<KeyRecord> {
    Ok(KeyRecord {
        key_id: row.try_get(0).map_err(pg)?,
        account: row.try_get(1).map_err(pg)?,
        region: row.try_get(2).map_err(pg)?,
        arn: row.try_get(3).map_err(pg)?,
        creation_ms: row.try_get(4).map_err(pg)?,
        description: row.try_get(5).map_err(pg)?,
        key_usage: row.try_get(6).map_err(pg)?,
        key_spec: row.try_get(7).map_err(pg)?,
        origin: row.try_get(8).map_err(pg)?,
        key_manager: row.try_get(9).map_err(pg)?,
        state: row.try_get(10).map_err(pg)?,
        deletion_ms: row.try_get(11).map_err(pg)?,
        policy: row.try_get(12).map_err(pg)?,
        current_material_id: row.try_get(13).map_err(pg)?,
        rotation_period_days: row.try_get(14).map_err(pg)?,
        next_rotation_ms: row.try_get(15).map_err(pg)?,
        state_after_import: row.try_get(16).map_err(pg)?,
        multi_region_primary: row.try_get(17).map_err(pg)?,
    })
}

fn alias_from_row(row: &Row) -> Result<AliasRecord> {
    Ok(AliasRecord {
        account: row.try_get(0).map_err(pg)?,
        region: row.try_get(1).map_err(pg)?,
        name: row.try_get(2).map_err(pg)?,
        target_key_id: row.try_get(3).map_err(pg)?,
        creation_ms: row.try_get(4).map_err(pg)?,
        updated_ms: row.try_get(5).map_err(pg)?,
    })
}

fn alias_change(account: &str, region: &str, name: &str) -> Change {
    Change::Alias {
        account: account.to_owned(),
        region: region.to_owned(),
        name: name.to_owned(),
    }
}

fn rows<T>(rows: Vec<Row>, f: impl Fn(&Row) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(f).collect()
}

async fn key_row(c: &impl GenericClient, key_id: &str) -> Result<Option<KeyRecord>> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {KEY_COLUMNS} FROM kms_keys WHERE key_id = $1"
        ))
        .await
        .map_err(pg)?;
    let row = c.query_opt(&stmt, &[&key_id]).await.map_err(pg)?;
    row.as_ref().map(key_from_row).transpose()
}

async fn material_rows(c: &impl GenericClient, key_id: &str) -> Result<Vec<MaterialRecord>> {
    let stmt = c
        .prepare_cached(
            "SELECT key_id, material_id, sealed, creation_ms, rotation_type \
             FROM kms_materials WHERE key_id = $1 ORDER BY creation_ms, seq",
        )
        .await
        .map_err(pg)?;
    let found = c.query(&stmt, &[&key_id]).await.map_err(pg)?;
    rows(found, |r| {
        Ok(MaterialRecord {
            key_id: r.try_get(0).map_err(pg)?,
            material_id: r.try_get(1).map_err(pg)?,
            sealed: r.try_get(2).map_err(pg)?,
            creation_ms: r.try_get(3).map_err(pg)?,
            rotation_type: r.try_get(4).map_err(pg)?,
        })
    })
}

async fn alias_rows(
    c: &impl GenericClient,
    account: &str,
    region: &str,
    key_id: Option<&str>,
) -> Result<Vec<AliasRecord>> {
    let found = c
        .query(
            "SELECT account, region, name, target_key_id, creation_ms, updated_ms \
             FROM kms_aliases WHERE account = $1 AND region = $2 \
             AND ($3::TEXT IS NULL OR target_key_id = $3) ORDER BY name",
            &[&account, &region, &key_id],
        )
        .await
        .map_err(pg)?;
    rows(found, alias_from_row)
}

async fn tag_rows(c: &impl GenericClient, key_id: &str) -> Result<Vec<Tag>> {
    let found = c
        .query(
            "SELECT tag_key, tag_value FROM kms_tags WHERE key_id = $1 ORDER BY tag_key",
            &[&key_id],
        )
        .await
        .map_err(pg)?;
    rows(found, |r| {
        Ok(Tag {
            key: r.try_get(0).map_err(pg)?,
            value: r.try_get(1).map_err(pg)?,
        })
    })
}

async fn insert_key_row(c: &impl GenericClient, key: &KeyRecord) -> Result<()> {
    c.execute(
        &format!(
            "INSERT INTO kms_keys ({KEY_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
        ),
        &[
            &key.key_id,
            &key.account,
            &key.region,
            &key.arn,
            &key.creation_ms,
            &key.description,
            &key.key_usage,
            &key.key_spec,
            &key.origin,
            &key.key_manager,
            &key.state,
            &key.deletion_ms,
            &key.policy,
            &key.current_material_id,
            &key.rotation_period_days,
            &key.next_rotation_ms,
            &key.state_after_import,
            &key.multi_region_primary,
        ],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// Writes `key` only over `read` (compared whole): [`StoreError::Conflict`] if another
/// writer changed the record since. The row lock holds off another node's write until this
/// transaction commits; that writer then finds a record other than the one it read.
async fn update_key_row_from(
    c: &impl GenericClient,
    read: &KeyRecord,
    key: &KeyRecord,
) -> Result<()> {
    if has_nul(&[&key.key_id]) {
        return Err(StoreError::NotFound);
    }
    let stored = c
        .query_opt(
            &format!("SELECT {KEY_COLUMNS} FROM kms_keys WHERE key_id = $1 FOR UPDATE"),
            &[&key.key_id],
        )
        .await
        .map_err(pg)?;
    match stored.as_ref().map(key_from_row).transpose()? {
        None => Err(StoreError::NotFound),
        Some(stored) if stored != *read => Err(StoreError::Conflict),
        Some(_) => update_key_row(c, key).await,
    }
}

async fn update_key_row(c: &impl GenericClient, key: &KeyRecord) -> Result<()> {
    let n = c
        .execute(
            "UPDATE kms_keys SET description = $2, state = $3, deletion_ms = $4, policy = $5, \
             current_material_id = $6, rotation_period_days = $7, next_rotation_ms = $8, \
             state_after_import = $9, multi_region_primary = $10 WHERE key_id = $1",
            &[
                &key.key_id,
                &key.description,
                &key.state,
                &key.deletion_ms,
                &key.policy,
                &key.current_material_id,
                &key.rotation_period_days,
                &key.next_rotation_ms,
                &key.state_after_import,
                &key.multi_region_primary,
            ],
        )
        .await
        .map_err(pg)?;
    if n == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

async fn insert_material_row(c: &impl GenericClient, m: &MaterialRecord) -> Result<()> {
    c.execute(
        "INSERT INTO kms_materials (key_id, material_id, sealed, creation_ms, rotation_type) \
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &m.key_id,
            &m.material_id,
            &m.sealed,
            &m.creation_ms,
            &m.rotation_type,
        ],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

async fn insert_alias_row(c: &impl GenericClient, a: &AliasRecord) -> Result<()> {
    c.execute(
        "INSERT INTO kms_aliases (account, region, name, target_key_id, creation_ms, updated_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &a.account,
            &a.region,
            &a.name,
            &a.target_key_id,
            &a.creation_ms,
            &a.updated_ms,
        ],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

async fn upsert_tags(c: &impl GenericClient, key_id: &str, tags: &[Tag]) -> Result<()> {
    if tags.is_empty() {
        return Ok(());
    }
    let stmt = c
        .prepare(
            "INSERT INTO kms_tags (key_id, tag_key, tag_value) VALUES ($1, $2, $3) \
             ON CONFLICT (key_id, tag_key) DO UPDATE SET tag_value = excluded.tag_value",
        )
        .await
        .map_err(pg)?;
    for tag in tags {
        c.execute(&stmt, &[&key_id, &tag.key, &tag.value])
            .await
            .map_err(pg)?;
    }
    Ok(())
}

/// The tables `erase_resources` empties, children before their parents (foreign keys are
/// checked per statement). A migration that adds a service table must add it here.
const RESOURCE_TABLES: &[&str] = &[
    "kms_grants",
    "kms_aliases",
    "kms_tags",
    "kms_materials",
    "kms_imported_materials",
    "kms_import_tokens",
    "kms_custom_key_store_keys",
    "kms_keys",
    "kms_custom_key_stores",
    "sm_versions",
    "sm_secrets",
    "ssm_versions",
    "ssm_params",
    "iam_access_keys",
    "iam_policies",
    "iam_sessions",
    "iam_retired_keys",
    "iam_users",
    "iam_roles",
];

#[async_trait]
impl MetaStore for PgStore {
    async fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        if has_nul(&[name]) {
            return Ok(None);
        }
        let c = self.client().await?;
        let row = c
            .query_opt("SELECT value FROM meta WHERE name = $1", &[&name])
            .await
            .map_err(pg)?;
        row.map(|r| r.try_get(0).map_err(pg)).transpose()
    }

    async fn insert_meta_if_absent(&self, name: &str, value: &[u8]) -> Result<bool> {
        let c = self.client().await?;
        let n = c
            .execute(
                "INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&name, &value],
            )
            .await
            .map_err(pg)?;
        Ok(n == 1)
    }

    async fn replace_meta(&self, name: &str, expected: &[u8], value: &[u8]) -> Result<bool> {
        let c = self.client().await?;
        let n = c
            .execute(
                "UPDATE meta SET value = $3 WHERE name = $1 AND value = $2",
                &[&name, &expected, &value],
            )
            .await
            .map_err(pg)?;
        Ok(n == 1)
    }

    async fn erase_resources(&self) -> Result<usize> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let mut deleted = 0u64;
        for table in RESOURCE_TABLES {
            deleted += tx
                .execute(&format!("DELETE FROM {table}"), &[])
                .await
                .map_err(pg)?;
        }
        self.notify(&tx, &[Change::Everything]).await?;
        tx.commit().await.map_err(pg)?;
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
    }

    fn change_feed(&self) -> Option<ChangeFeed> {
        feed::spawn(self.config.clone(), self.node.to_string())
    }

    async fn try_lease(&self, name: &str, ttl_ms: i64) -> Result<bool> {
        let c = self.client().await?;
        // The database's clock, so that the nodes' clocks need not agree.
        let row = c
            .query_opt(
                "INSERT INTO keyhold_leases (name, holder, expires_ms) \
                 VALUES ($1, $2, (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT + $3) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                 expires_ms = excluded.expires_ms \
                 WHERE keyhold_leases.holder = excluded.holder \
                 OR keyhold_leases.expires_ms < (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT \
                 RETURNING holder",
                &[&name, &&*self.node, &ttl_ms],
            )
            .await
            .map_err(pg)?;
        Ok(row.is_some())
    }

    async fn release_lease(&self, name: &str) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "DELETE FROM keyhold_leases WHERE name = $1 AND holder = $2",
            &[&name, &&*self.node],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }
}

#[async_trait]
impl KmsStore for PgStore {
    async fn insert_key(
        &self,
        key: &KeyRecord,
        material: &MaterialRecord,
        tags: &[Tag],
        alias: Option<&AliasRecord>,
    ) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        insert_key_row(&tx, key).await?;
        insert_material_row(&tx, material).await?;
        upsert_tags(&tx, &key.key_id, tags).await?;
        let mut changes = vec![Change::Key(key.key_id.clone())];
        if let Some(alias) = alias {
            insert_alias_row(&tx, alias).await?;
            changes.push(alias_change(&alias.account, &alias.region, &alias.name));
        }
        self.notify(&tx, &changes).await?;
        tx.commit().await.map_err(pg)
    }

    async fn get_key(&self, key_id: &str) -> Result<Option<KeyRecord>> {
        if has_nul(&[key_id]) {
            return Ok(None);
        }
        key_row(&self.client().await?, key_id).await
    }

    async fn update_key(&self, key: &KeyRecord) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        update_key_row(&tx, key).await?;
        self.notify(&tx, &[Change::Key(key.key_id.clone())]).await?;
        tx.commit().await.map_err(pg)
    }

    async fn update_key_from(&self, read: &KeyRecord, key: &KeyRecord) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        update_key_row_from(&tx, read, key).await?;
        self.notify(&tx, &[Change::Key(key.key_id.clone())]).await?;
        tx.commit().await.map_err(pg)
    }

    async fn delete_key_if_due(&self, key_id: &str, now_ms: i64) -> Result<bool> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        // The row lock makes a concurrent CancelKeyDeletion either wait for this deletion
        // or (having committed first) make the key no longer due when the lock is granted.
        let due = tx
            .query_opt(
                "SELECT key_id FROM kms_keys WHERE key_id = $1 AND state = 'PendingDeletion' \
                 AND deletion_ms IS NOT NULL AND deletion_ms <= $2 FOR UPDATE",
                &[&key_id, &now_ms],
            )
            .await
            .map_err(pg)?
            .is_some();
        if !due {
            return Ok(false);
        }
        for table in [
            "kms_grants WHERE key_id",
            "kms_aliases WHERE target_key_id",
            "kms_tags WHERE key_id",
            "kms_materials WHERE key_id",
            "kms_imported_materials WHERE key_id",
            "kms_import_tokens WHERE key_id",
            "kms_custom_key_store_keys WHERE key_id",
            "kms_keys WHERE key_id",
        ] {
            tx.execute(&format!("DELETE FROM {table} = $1"), &[&key_id])
                .await
                .map_err(pg)?;
        }
        // The key's change makes every node forget the aliases that pointed to it, too.
        self.notify(&tx, &[Change::Key(key_id.to_owned())]).await?;
        tx.commit().await.map_err(pg)?;
        Ok(true)
    }

    async fn list_keys(
        &self,
        account: &str,
        region: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<KeyRecord>> {
        if has_nul(&[account, region, after.unwrap_or("")]) {
            return Ok(Vec::new());
        }
        let c = self.client().await?;
        let after = after.unwrap_or("");
        let found = c
            .query(
                &format!(
                    "SELECT {KEY_COLUMNS} FROM kms_keys WHERE account = $1 AND region = $2 \
                     AND key_id > $3 ORDER BY key_id LIMIT $4"
                ),
                &[&account, &region, &after, &limit_i64(limit)],
            )
            .await
            .map_err(pg)?;
        rows(found, key_from_row)
    }

    async fn keys_due_for_deletion(&self, now_ms: i64) -> Result<Vec<String>> {
        let c = self.client().await?;
        let found = c
            .query(
                "SELECT key_id FROM kms_keys WHERE state = 'PendingDeletion' \
                 AND deletion_ms IS NOT NULL AND deletion_ms <= $1 ORDER BY deletion_ms, key_id",
                &[&now_ms],
            )
            .await
            .map_err(pg)?;
        rows(found, |r| r.try_get(0).map_err(pg))
    }

    async fn multi_region_keys(&self, account: &str, wire_key_id: &str) -> Result<Vec<KeyRecord>> {
        if has_nul(&[account, wire_key_id]) {
            return Ok(Vec::new());
        }
        // Every row of the key sorts between `mrk-<hex>:` and `mrk-<hex>;` (';' follows ':').
        let (low, high) = (format!("{wire_key_id}:"), format!("{wire_key_id};"));
        let c = self.client().await?;
        let found = c
            .query(
                &format!(
                    "SELECT {KEY_COLUMNS} FROM kms_keys WHERE account = $1 AND key_id > $2 \
                     AND key_id < $3 ORDER BY key_id"
                ),
                &[&account, &low, &high],
            )
            .await
            .map_err(pg)?;
        rows(found, key_from_row)
    }

    async fn insert_key_with_materials(
        &self,
        key: &KeyRecord,
        materials: &[MaterialRecord],
        tags: &[Tag],
    ) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        insert_key_row(&tx, key).await?;
        for material in materials {
            insert_material_row(&tx, material).await?;
        }
        upsert_tags(&tx, &key.key_id, tags).await?;
        self.notify(&tx, &[Change::Key(key.key_id.clone())]).await?;
        tx.commit().await.map_err(pg)
    }

    async fn materials(&self, key_id: &str) -> Result<Vec<MaterialRecord>> {
        if has_nul(&[key_id]) {
            return Ok(Vec::new());
        }
        material_rows(&self.client().await?, key_id).await
    }

    async fn rotate_keys(&self, rotations: &[KeyRotation]) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        for r in rotations {
            insert_material_row(&tx, &r.material).await?;
            update_key_row_from(&tx, &r.read, &r.key).await?;
        }
        let changes: Vec<Change> = rotations
            .iter()
            .map(|r| Change::Key(r.key.key_id.clone()))
            .collect();
        self.notify(&tx, &changes).await?;
        tx.commit().await.map_err(pg)
    }

    async fn update_keys(&self, keys: &[(KeyRecord, KeyRecord)]) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        for (read, key) in keys {
            update_key_row_from(&tx, read, key).await?;
        }
        let changes: Vec<Change> = keys
            .iter()
            .map(|(_, k)| Change::Key(k.key_id.clone()))
            .collect();
        self.notify(&tx, &changes).await?;
        tx.commit().await.map_err(pg)
    }

    async fn keys_due_for_rotation(&self, now_ms: i64) -> Result<Vec<String>> {
        let c = self.client().await?;
        let found = c
            .query(
                "SELECT key_id FROM kms_keys WHERE next_rotation_ms IS NOT NULL \
                 AND next_rotation_ms <= $1 AND state = 'Enabled' ORDER BY key_id",
                &[&now_ms],
            )
            .await
            .map_err(pg)?;
        rows(found, |r| r.try_get(0).map_err(pg))
    }

    async fn insert_alias(&self, alias: &AliasRecord) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        insert_alias_row(&tx, alias).await?;
        let changes = [
            alias_change(&alias.account, &alias.region, &alias.name),
            Change::Key(alias.target_key_id.clone()),
        ];
        self.notify(&tx, &changes).await?;
        tx.commit().await.map_err(pg)
    }

    async fn update_alias(
        &self,
        account: &str,
        region: &str,
        name: &str,
        from_key_id: &str,
        target_key_id: &str,
        updated_ms: i64,
    ) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let previous = tx
            .query_opt(
                "SELECT target_key_id FROM kms_aliases \
                 WHERE account = $1 AND region = $2 AND name = $3 FOR UPDATE",
                &[&account, &region, &name],
            )
            .await
            .map_err(pg)?;
        let Some(previous) = previous else {
            return Err(StoreError::NotFound);
        };
        let previous: String = previous.try_get(0).map_err(pg)?;
        if previous != from_key_id {
            return Err(StoreError::Conflict);
        }
        tx.execute(
            "UPDATE kms_aliases SET target_key_id = $4, updated_ms = $5 \
             WHERE account = $1 AND region = $2 AND name = $3",
            &[&account, &region, &name, &target_key_id, &updated_ms],
        )
        .await
        .map_err(pg)?;
        let changes = [
            alias_change(account, region, name),
            Change::Key(previous),
            Change::Key(target_key_id.to_owned()),
        ];
        self.notify(&tx, &changes).await?;
        tx.commit().await.map_err(pg)
    }

    async fn delete_alias(
        &self,
        account: &str,
        region: &str,
        name: &str,
        from_key_id: &str,
    ) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let current = tx
            .query_opt(
                "SELECT target_key_id FROM kms_aliases \
                 WHERE account = $1 AND region = $2 AND name = $3 FOR UPDATE",
                &[&account, &region, &name],
            )
            .await
            .map_err(pg)?;
        let Some(current) = current else {
            return Err(StoreError::NotFound);
        };
        let target: String = current.try_get(0).map_err(pg)?;
        if target != from_key_id {
            return Err(StoreError::Conflict);
        }
        tx.execute(
            "DELETE FROM kms_aliases WHERE account = $1 AND region = $2 AND name = $3",
            &[&account, &region, &name],
        )
        .await
        .map_err(pg)?;
        let changes = [alias_change(account, region, name), Change::Key(target)];
        self.notify(&tx, &changes).await?;
        tx.commit().await.map_err(pg)
    }

    async fn get_alias(
        &self,
        account: &str,
        region: &str,
        name: &str,
    ) -> Result<Option<AliasRecord>> {
        if has_nul(&[account, region, name]) {
            return Ok(None);
        }
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT account, region, name, target_key_id, creation_ms, updated_ms \
                 FROM kms_aliases WHERE account = $1 AND region = $2 AND name = $3",
                &[&account, &region, &name],
            )
            .await
            .map_err(pg)?;
        row.as_ref().map(alias_from_row).transpose()
    }

    async fn list_aliases(
        &self,
        account: &str,
        region: &str,
        key_id: Option<&str>,
    ) -> Result<Vec<AliasRecord>> {
        if has_nul(&[account, region, key_id.unwrap_or("")]) {
            return Ok(Vec::new());
        }
        alias_rows(&self.client().await?, account, region, key_id).await
    }

    async fn put_tags(&self, key_id: &str, tags: &[Tag]) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        upsert_tags(&tx, key_id, tags).await?;
        self.notify(&tx, &[Change::Key(key_id.to_owned())]).await?;
        tx.commit().await.map_err(pg)
    }

    async fn remove_tags(&self, key_id: &str, tag_keys: &[String]) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        tx.execute(
            "DELETE FROM kms_tags WHERE key_id = $1 AND tag_key = ANY($2)",
            &[&key_id, &tag_keys],
        )
        .await
        .map_err(pg)?;
        self.notify(&tx, &[Change::Key(key_id.to_owned())]).await?;
        tx.commit().await.map_err(pg)
    }

    async fn list_tags(&self, key_id: &str) -> Result<Vec<Tag>> {
        if has_nul(&[key_id]) {
            return Ok(Vec::new());
        }
        tag_rows(&self.client().await?, key_id).await
    }
}

/// The audit trail's anchor in the PostgreSQL store: the row `audit.anchor` of its `meta`
/// table (`audit.anchor.NODE` for the node named NODE of several sharing the store: each
/// node keeps its own trail). The trail's writer calls it synchronously, so it runs on a thread of its own
/// with its own connection (and a small runtime that drives it only while it answers).
pub struct PgAuditAnchor {
    requests: std::sync::mpsc::Sender<AnchorRequest>,
}

/// The key store's meta entry that holds the audit trail's anchor (as in SQLite).
const ANCHOR: &str = "audit.anchor";

type AnchorRequest = (AnchorOp, std::sync::mpsc::Sender<Result<Option<Vec<u8>>>>);

enum AnchorOp {
    Load,
    Store(Vec<u8>),
    Clear,
}

impl PgAuditAnchor {
    /// The anchor of `store`'s database (whose schema the store has made).
    pub fn open(store: &PgStore) -> Result<Self> {
        Self::with_config(store.config.clone())
    }

    /// The anchor of the node named `node` (`audit.anchor.NODE`) in the database `url`
    /// names, or the only node's (`audit.anchor`) for `None`. Connects on first use.
    pub fn connect_node(url: &str, node: Option<&str>) -> Result<Self> {
        let name = match node {
            Some(node) => format!("{ANCHOR}.{node}"),
            None => ANCHOR.to_owned(),
        };
        Self::spawn(parse_postgres_url(url)?, name)
    }

    /// The anchor in the database `url` names (whose schema a [`PgStore`] has made). Connects
    /// on first use.
    pub fn connect(url: &str) -> Result<Self> {
        Self::with_config(parse_postgres_url(url)?)
    }

    /// The anchor in the database `config` names.
    pub fn with_config(config: PgConfig) -> Result<Self> {
        Self::spawn(config, ANCHOR.to_owned())
    }

    fn spawn(config: PgConfig, name: String) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        let (requests, incoming) = std::sync::mpsc::channel::<AnchorRequest>();
        std::thread::Builder::new()
            .name("keyhold-audit-anchor".into())
            .spawn(move || {
                let mut client: Option<tokio_postgres::Client> = None;
                while let Ok((op, reply)) = incoming.recv() {
                    let answer = runtime.block_on(anchor_op(&config, &name, &mut client, op));
                    if answer.is_err() {
                        // Reconnect for the next request.
                        client = None;
                    }
                    let _ = reply.send(answer);
                }
            })
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        Ok(Self { requests })
    }

    fn ask(&self, op: AnchorOp) -> Result<Option<Vec<u8>>> {
        let (reply, answer) = std::sync::mpsc::channel();
        self.requests
            .send((op, reply))
            .map_err(|_| StoreError::Backend("the audit anchor's thread has stopped".into()))?;
        answer
            .recv()
            .map_err(|_| StoreError::Backend("the audit anchor's thread has stopped".into()))?
    }
}

async fn anchor_op(
    config: &PgConfig,
    name: &str,
    client: &mut Option<tokio_postgres::Client>,
    op: AnchorOp,
) -> Result<Option<Vec<u8>>> {
    if client
        .as_ref()
        .is_none_or(tokio_postgres::Client::is_closed)
    {
        let (c, connection) = config.connect().await.map_err(pg)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %causes(&e), "the audit anchor's database connection failed");
            }
        });
        *client = Some(c);
    }
    let Some(c) = client.as_ref() else {
        return Err(StoreError::Backend("no database connection".into()));
    };
    match op {
        AnchorOp::Load => {
            let row = c
                .query_opt("SELECT value FROM meta WHERE name = $1", &[&name])
                .await
                .map_err(pg)?;
            row.map(|r| r.try_get(0).map_err(pg)).transpose()
        }
        AnchorOp::Store(value) => {
            c.execute(
                "INSERT INTO meta (name, value) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                &[&name, &value],
            )
            .await
            .map_err(pg)?;
            Ok(None)
        }
        AnchorOp::Clear => {
            c.execute("DELETE FROM meta WHERE name = $1", &[&name])
                .await
                .map_err(pg)?;
            Ok(None)
        }
    }
}

impl AuditAnchor for PgAuditAnchor {
    fn load(&mut self) -> Result<Option<Vec<u8>>> {
        self.ask(AnchorOp::Load)
    }

    fn store(&mut self, value: &[u8]) -> Result<()> {
        self.ask(AnchorOp::Store(value.to_vec())).map(|_| ())
    }

    fn clear(&mut self) -> Result<()> {
        self.ask(AnchorOp::Clear).map(|_| ())
    }
}

#[async_trait]
impl KeySnapshotStore for PgStore {
    async fn key_snapshot(&self, key_id: &str) -> Result<Option<KeySnapshot>> {
        if has_nul(&[key_id]) {
            return Ok(None);
        }
        let mut c = self.client().await?;
        // One snapshot for every SELECT: a concurrent write is seen entirely or not at all.
        let tx = snapshot(&mut c).await?;
        let Some(record) = key_row(&tx, key_id).await? else {
            return Ok(None);
        };
        let snapshot = KeySnapshot {
            tags: tag_rows(&tx, key_id).await?,
            materials: material_rows(&tx, key_id).await?,
            imported: services::imported_rows(&tx, key_id).await?,
            grants: services::grant_rows(&tx, key_id).await?,
            aliases: alias_rows(&tx, &record.account, &record.region, Some(key_id)).await?,
            record,
        };
        tx.commit().await.map_err(pg)?;
        Ok(Some(snapshot))
    }
}

/// A read-only transaction on one snapshot: every SELECT in it sees a concurrent write
/// entirely or not at all.
pub(crate) async fn snapshot(c: &mut Object) -> Result<deadpool_postgres::Transaction<'_>> {
    c.build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(pg)
}
