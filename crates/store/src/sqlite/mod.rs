//! The embedded SQLite store.
//!
//! One writer connection and one reader connection (WAL lets reads proceed during a write).
//! `synchronous=FULL` makes every commit durable before the call returns.
//!
//! Writes are **group-committed**: a writer thread owns the writer connection, takes every
//! write queued (up to [`GROUP`]), runs each in a savepoint of one transaction (a write that
//! fails is rolled back alone) and commits once — one fsync for the group — before it
//! answers any of them. No lock is held across an await, and concurrent writers share a
//! commit instead of queueing for one each. Reads use the reader connection from Tokio's
//! blocking pool.

mod audit;
mod audit_cluster;
mod audit_index;
mod custom_key_stores;
mod grants;
mod iam;
mod imports;
pub(crate) mod migrations;
mod params;
mod secrets;

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use crate::records::{AliasRecord, KeyRecord, KeyRotation, MaterialRecord, Tag};
use crate::{KeySnapshot, KeySnapshotStore, KmsStore, MetaStore, Result, StoreError};

pub use audit::{SqliteAuditAnchor, SqliteAuditLog};
pub use audit_index::{IndexHit, SqliteAuditIndex};

/// SQLite-backed [`crate::Store`].
#[derive(Clone)]
pub struct SqliteStore {
    writes: std::sync::mpsc::Sender<WriteJob>,
    reader: Arc<Mutex<Connection>>,
}

/// Writes committed together at most.
const GROUP: usize = 256;

/// One queued write: runs in the group's transaction and says whether it succeeded, and
/// what to do once the group's commit is known.
type WriteJob = Box<dyn FnOnce(&mut Connection) -> (bool, Completion) + Send>;
type Completion = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        let writer = Connection::open(path).map_err(backend)?;
        configure(&writer)?;
        migrations::apply(&writer)?;
        let reader = Connection::open(path).map_err(backend)?;
        configure(&reader)?;
        let (writes, jobs) = std::sync::mpsc::channel::<WriteJob>();
        std::thread::Builder::new()
            .name("keyhold-store-writer".into())
            .spawn(move || group_commit(writer, &jobs))
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        Ok(Self {
            writes,
            reader: Arc::new(Mutex::new(reader)),
        })
    }

    /// Runs `f` in the next group commit; returns its result once the group is durable.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<T>>();
        let job: WriteJob = Box::new(move |conn| match f(conn) {
            Ok(value) => (
                true,
                Box::new(move |committed| {
                    let _ = tx.send(committed.map(|()| value).map_err(|e| {
                        StoreError::Backend(format!("the commit failed: {e}").into())
                    }));
                }),
            ),
            Err(e) => {
                let _ = tx.send(Err(e));
                (false, Box::new(|_| {}))
            }
        });
        self.writes
            .send(job)
            .map_err(|_| StoreError::Backend("the store's writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Backend("the write was not committed".into()))?
    }

    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        run(self.reader.clone(), f).await
    }
}

/// Copies the SQLite database at `source` to `target` (a new file) with SQLite's online
/// backup API: a consistent snapshot taken in one step under a read transaction, while
/// other connections (a running server) go on writing. Blocking.
pub fn snapshot_sqlite(source: &Path, target: &Path) -> Result<()> {
    let src = Connection::open_with_flags(
        source,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(backend)?;
    src.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(backend)?;
    let mut dst = Connection::open(target).map_err(backend)?;
    {
        let backup = rusqlite::backup::Backup::new(&src, &mut dst).map_err(backend)?;
        // -1: every page in one step, so that no write in between restarts the copy
        // (`run_to_completion` takes only a positive page count).
        loop {
            match backup.step(-1).map_err(backend)? {
                rusqlite::backup::StepResult::Done => break,
                _ => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
    }
    // A self-contained file: no -wal beside it.
    dst.pragma_update(None, "journal_mode", "DELETE")
        .map_err(backend)?;
    Ok(())
}

/// The writer thread: one transaction (one fsync) per group of queued writes, each write
/// in its own savepoint so that one that fails is undone alone.
fn group_commit(mut conn: Connection, jobs: &std::sync::mpsc::Receiver<WriteJob>) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let mut done = Vec::with_capacity(group.len());
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            // Not run: dropping a job answers its caller that the write was not committed.
            tracing::error!(error = %e, writes = group.len(), "the store cannot begin a write transaction");
            continue;
        }
        for job in group {
            done.push(in_savepoint(&mut conn, job));
        }
        let committed = conn.execute_batch("COMMIT").map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            e.to_string()
        });
        for complete in done {
            complete(committed.clone());
        }
    }
}

/// Runs a job inside a savepoint of the open transaction; undoes it if it failed or
/// panicked.
fn in_savepoint(conn: &mut Connection, job: WriteJob) -> Completion {
    if let Err(e) = conn.execute_batch("SAVEPOINT job") {
        tracing::error!(error = %e, "the store cannot open a savepoint for a write");
        return Box::new(move |_| drop(job));
    }
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(conn)));
    match outcome {
        Ok((true, complete)) => {
            if let Err(e) = conn.execute_batch("RELEASE job") {
                let reason = e.to_string();
                let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
                return Box::new(move |_| complete(Err(reason)));
            }
            complete
        }
        Ok((false, complete)) => {
            let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
            complete
        }
        Err(_) => {
            let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
            tracing::error!("a store write panicked; it was rolled back");
            Box::new(|_| {})
        }
    }
}

async fn run<T, F>(conn: Arc<Mutex<Connection>>, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let mut guard = conn
            .lock()
            .map_err(|_| StoreError::Corrupt("connection mutex poisoned"))?;
        f(&mut guard)
    })
    .await
    .map_err(|e| StoreError::Backend(Box::new(e)))?
}

fn configure(conn: &Connection) -> Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(backend)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(backend)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(backend)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(backend)?;
    Ok(())
}

pub(crate) fn backend(e: rusqlite::Error) -> StoreError {
    match e {
        // Only a uniqueness conflict means "already exists"; a foreign-key, NOT NULL or
        // CHECK failure is a backend error.
        rusqlite::Error::SqliteFailure(err, _)
            if matches!(
                err.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                    | rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            ) =>
        {
            StoreError::AlreadyExists
        }
        other => StoreError::Backend(Box::new(other)),
    }
}

const KEY_COLUMNS: &str = "key_id, account, region, arn, creation_ms, description, key_usage, \
     key_spec, origin, key_manager, state, deletion_ms, policy, current_material_id, \
     rotation_period_days, next_rotation_ms, state_after_import, multi_region_primary";

fn key_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRecord> {
    Ok(KeyRecord {
        key_id: row.get(0)?,
        account: row.get(1)?,
        region: row.get(2)?,
        arn: row.get(3)?,
        creation_ms: row.get(4)?,
        description: row.get(5)?,
        key_usage: row.get(6)?,
        key_spec: row.get(7)?,
        origin: row.get(8)?,
        key_manager: row.get(9)?,
        state: row.get(10)?,
        deletion_ms: row.get(11)?,
        policy: row.get(12)?,
        current_material_id: row.get(13)?,
        rotation_period_days: row.get(14)?,
        next_rotation_ms: row.get(15)?,
        state_after_import: row.get(16)?,
        multi_region_primary: row.get(17)?,
    })
}

/// Inserts a key's row (its materials, tags and aliases are the caller's).
pub(super) fn insert_key_row(tx: &Connection, key: &KeyRecord) -> Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO kms_keys ({KEY_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
        ),
        params![
            key.key_id,
            key.account,
            key.region,
            key.arn,
            key.creation_ms,
            key.description,
            key.key_usage,
            key.key_spec,
            key.origin,
            key.key_manager,
            key.state,
            key.deletion_ms,
            key.policy,
            key.current_material_id,
            key.rotation_period_days,
            key.next_rotation_ms,
            key.state_after_import,
            key.multi_region_primary
        ],
    )
    .map_err(backend)?;
    Ok(())
}

/// Writes `key` only over `read` (compared whole): [`StoreError::Conflict`] if another
/// writer changed the record since (in the caller's write transaction).
fn update_key_row_from(c: &Connection, read: &KeyRecord, key: &KeyRecord) -> Result<()> {
    match key_row(c, &key.key_id)? {
        None => Err(StoreError::NotFound),
        Some(stored) if stored != *read => Err(StoreError::Conflict),
        Some(_) => update_key_row(c, key),
    }
}

fn update_key_row(c: &Connection, key: &KeyRecord) -> Result<()> {
    let n = c
        .execute(
            "UPDATE kms_keys SET description = ?2, state = ?3, deletion_ms = ?4, policy = ?5, \
             current_material_id = ?6, rotation_period_days = ?7, next_rotation_ms = ?8, \
             state_after_import = ?9, multi_region_primary = ?10 WHERE key_id = ?1",
            params![
                key.key_id,
                key.description,
                key.state,
                key.deletion_ms,
                key.policy,
                key.current_material_id,
                key.rotation_period_days,
                key.next_rotation_ms,
                key.state_after_import,
                key.multi_region_primary
            ],
        )
        .map_err(backend)?;
    if n == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

fn insert_material_row(c: &Connection, m: &MaterialRecord) -> Result<()> {
    c.execute(
        "INSERT INTO kms_materials (key_id, material_id, sealed, creation_ms, rotation_type) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            m.key_id,
            m.material_id,
            m.sealed,
            m.creation_ms,
            m.rotation_type
        ],
    )
    .map_err(backend)?;
    Ok(())
}

fn alias_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AliasRecord> {
    Ok(AliasRecord {
        account: row.get(0)?,
        region: row.get(1)?,
        name: row.get(2)?,
        target_key_id: row.get(3)?,
        creation_ms: row.get(4)?,
        updated_ms: row.get(5)?,
    })
}

fn insert_alias_row(tx: &Connection, a: &AliasRecord) -> Result<()> {
    tx.execute(
        "INSERT INTO kms_aliases (account, region, name, target_key_id, creation_ms, updated_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            a.account,
            a.region,
            a.name,
            a.target_key_id,
            a.creation_ms,
            a.updated_ms
        ],
    )
    .map_err(backend)?;
    Ok(())
}

fn upsert_tags(tx: &Connection, key_id: &str, tags: &[Tag]) -> Result<()> {
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO kms_tags (key_id, tag_key, tag_value) VALUES (?1, ?2, ?3) \
             ON CONFLICT (key_id, tag_key) DO UPDATE SET tag_value = excluded.tag_value",
        )
        .map_err(backend)?;
    for tag in tags {
        stmt.execute(params![key_id, tag.key, tag.value])
            .map_err(backend)?;
    }
    Ok(())
}

#[async_trait]
impl MetaStore for SqliteStore {
    async fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let name = name.to_owned();
        self.read(move |c| {
            c.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn insert_meta_if_absent(&self, name: &str, value: &[u8]) -> Result<bool> {
        let (name, value) = (name.to_owned(), value.to_vec());
        self.write(move |c| {
            let n = c
                .execute(
                    "INSERT INTO meta (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                    params![name, value],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn replace_meta(&self, name: &str, expected: &[u8], value: &[u8]) -> Result<bool> {
        let (name, expected, value) = (name.to_owned(), expected.to_vec(), value.to_vec());
        self.write(move |c| {
            let n = c
                .execute(
                    "UPDATE meta SET value = ?3 WHERE name = ?1 AND value = ?2",
                    params![name, expected, value],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn erase_resources(&self) -> Result<usize> {
        self.write(|c| {
            let tx = c.savepoint().map_err(backend)?;
            // Every table of a service, whichever migration added it: a table added later
            // is erased too. Foreign keys are checked at commit, so the order is free.
            tx.pragma_update(None, "defer_foreign_keys", "ON")
                .map_err(backend)?;
            let tables: Vec<String> = {
                let mut stmt = tx
                    .prepare(
                        "SELECT name FROM sqlite_schema WHERE type = 'table' AND (name GLOB 'kms_*' \
                         OR name GLOB 'sm_*' OR name GLOB 'ssm_*' OR name GLOB 'iam_*')",
                    )
                    .map_err(backend)?;
                stmt.query_map([], |r| r.get(0))
                    .map_err(backend)?
                    .collect::<rusqlite::Result<_>>()
                    .map_err(backend)?
            };
            let mut deleted = 0;
            for table in tables {
                // The names come from the schema and match [a-z_]+ by the filter above.
                if !table.bytes().all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit()) {
                    return Err(StoreError::Corrupt("unexpected table name"));
                }
                deleted += tx
                    .execute(&format!("DELETE FROM {table}"), [])
                    .map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(deleted)
        })
        .await
    }
}

#[async_trait]
impl KmsStore for SqliteStore {
    async fn insert_key(
        &self,
        key: &KeyRecord,
        material: &MaterialRecord,
        tags: &[Tag],
        alias: Option<&AliasRecord>,
    ) -> Result<()> {
        let (key, material, tags, alias) =
            (key.clone(), material.clone(), tags.to_vec(), alias.cloned());
        self.write(move |c| {
            let tx = c.savepoint().map_err(backend)?;
            insert_key_row(&tx, &key)?;
            insert_material_row(&tx, &material)?;
            upsert_tags(&tx, &key.key_id, &tags)?;
            if let Some(alias) = &alias {
                insert_alias_row(&tx, alias)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn get_key(&self, key_id: &str) -> Result<Option<KeyRecord>> {
        let key_id = key_id.to_owned();
        self.read(move |c| key_row(c, &key_id)).await
    }

    async fn update_key(&self, key: &KeyRecord) -> Result<()> {
        let key = key.clone();
        self.write(move |c| update_key_row(c, &key)).await
    }

    async fn update_key_from(&self, read: &KeyRecord, key: &KeyRecord) -> Result<()> {
        let (read, key) = (read.clone(), key.clone());
        self.write(move |c| {
            let tx = c.savepoint().map_err(backend)?;
            update_key_row_from(&tx, &read, &key)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn rotate_keys(&self, rotations: &[KeyRotation]) -> Result<()> {
        let rotations = rotations.to_vec();
        self.write(move |c| {
            let tx = c.savepoint().map_err(backend)?;
            for r in &rotations {
                insert_material_row(&tx, &r.material)?;
                update_key_row_from(&tx, &r.read, &r.key)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn update_keys(&self, keys: &[(KeyRecord, KeyRecord)]) -> Result<()> {
        let keys = keys.to_vec();
        self.write(move |c| {
            let tx = c.savepoint().map_err(backend)?;
            for (read, key) in &keys {
                update_key_row_from(&tx, read, key)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn keys_due_for_rotation(&self, now_ms: i64) -> Result<Vec<String>> {
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT key_id FROM kms_keys WHERE next_rotation_ms IS NOT NULL \
                     AND next_rotation_ms <= ?1 AND state = 'Enabled' ORDER BY key_id",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map([now_ms], |r| r.get::<_, String>(0))
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
                .map_err(backend)
        })
        .await
    }

    async fn delete_key_if_due(&self, key_id: &str, now_ms: i64) -> Result<bool> {
        let key_id = key_id.to_owned();
        self.write(move |c| {
            let tx = c.savepoint().map_err(backend)?;
            let due: bool = tx
                .query_row(
                    "SELECT EXISTS(SELECT 1 FROM kms_keys WHERE key_id = ?1 \
                     AND state = 'PendingDeletion' AND deletion_ms IS NOT NULL \
                     AND deletion_ms <= ?2)",
                    rusqlite::params![key_id, now_ms],
                    |r| r.get(0),
                )
                .map_err(backend)?;
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
                tx.execute(&format!("DELETE FROM {table} = ?1"), [&key_id])
                    .map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(true)
        })
        .await
    }

    async fn list_keys(
        &self,
        account: &str,
        region: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<KeyRecord>> {
        let (account, region, after) = (
            account.to_owned(),
            region.to_owned(),
            after.unwrap_or("").to_owned(),
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {KEY_COLUMNS} FROM kms_keys WHERE account = ?1 AND region = ?2 \
                     AND key_id > ?3 ORDER BY key_id LIMIT ?4"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![account, region, after, limit], key_from_row)
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn keys_due_for_deletion(&self, now_ms: i64) -> Result<Vec<String>> {
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT key_id FROM kms_keys WHERE state = 'PendingDeletion' \
                     AND deletion_ms IS NOT NULL AND deletion_ms <= ?1 ORDER BY deletion_ms",
                )
                .map_err(backend)?;
            let rows = stmt.query_map([now_ms], |r| r.get(0)).map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
                .map_err(backend)
        })
        .await
    }

    async fn multi_region_keys(&self, account: &str, wire_key_id: &str) -> Result<Vec<KeyRecord>> {
        // Every row of the key sorts between `mrk-<hex>:` and `mrk-<hex>;` (';' follows ':').
        let (account, low, high) = (
            account.to_owned(),
            format!("{wire_key_id}:"),
            format!("{wire_key_id};"),
        );
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {KEY_COLUMNS} FROM kms_keys WHERE account = ?1 AND key_id > ?2 \
                     AND key_id < ?3 ORDER BY key_id"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![account, low, high], key_from_row)
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn insert_key_with_materials(
        &self,
        key: &KeyRecord,
        materials: &[MaterialRecord],
        tags: &[Tag],
    ) -> Result<()> {
        let (key, materials, tags) = (key.clone(), materials.to_vec(), tags.to_vec());
        self.write(move |c| {
            let tx = c.savepoint().map_err(backend)?;
            insert_key_row(&tx, &key)?;
            for material in &materials {
                insert_material_row(&tx, material)?;
            }
            upsert_tags(&tx, &key.key_id, &tags)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn materials(&self, key_id: &str) -> Result<Vec<MaterialRecord>> {
        let key_id = key_id.to_owned();
        self.read(move |c| material_rows(c, &key_id)).await
    }

    async fn insert_alias(&self, alias: &AliasRecord) -> Result<()> {
        let alias = alias.clone();
        self.write(move |c| insert_alias_row(c, &alias)).await
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
        let args = (
            account.to_owned(),
            region.to_owned(),
            name.to_owned(),
            from_key_id.to_owned(),
            target_key_id.to_owned(),
        );
        self.write(move |c| {
            let n = c
                .execute(
                    "UPDATE kms_aliases SET target_key_id = ?5, updated_ms = ?6 \
                     WHERE account = ?1 AND region = ?2 AND name = ?3 AND target_key_id = ?4",
                    params![args.0, args.1, args.2, args.3, args.4, updated_ms],
                )
                .map_err(backend)?;
            if n == 0 {
                Err(alias_missing_or_moved(c, &args.0, &args.1, &args.2)?)
            } else {
                Ok(())
            }
        })
        .await
    }

    async fn delete_alias(
        &self,
        account: &str,
        region: &str,
        name: &str,
        from_key_id: &str,
    ) -> Result<()> {
        let args = (
            account.to_owned(),
            region.to_owned(),
            name.to_owned(),
            from_key_id.to_owned(),
        );
        self.write(move |c| {
            let n = c
                .execute(
                    "DELETE FROM kms_aliases \
                     WHERE account = ?1 AND region = ?2 AND name = ?3 AND target_key_id = ?4",
                    params![args.0, args.1, args.2, args.3],
                )
                .map_err(backend)?;
            if n == 0 {
                Err(alias_missing_or_moved(c, &args.0, &args.1, &args.2)?)
            } else {
                Ok(())
            }
        })
        .await
    }

    async fn get_alias(
        &self,
        account: &str,
        region: &str,
        name: &str,
    ) -> Result<Option<AliasRecord>> {
        let args = (account.to_owned(), region.to_owned(), name.to_owned());
        self.read(move |c| {
            c.query_row(
                "SELECT account, region, name, target_key_id, creation_ms, updated_ms \
                 FROM kms_aliases WHERE account = ?1 AND region = ?2 AND name = ?3",
                params![args.0, args.1, args.2],
                alias_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn list_aliases(
        &self,
        account: &str,
        region: &str,
        key_id: Option<&str>,
    ) -> Result<Vec<AliasRecord>> {
        let (account, region, key_id) = (
            account.to_owned(),
            region.to_owned(),
            key_id.map(str::to_owned),
        );
        self.read(move |c| alias_rows(c, &account, &region, key_id.as_deref()))
            .await
    }

    async fn put_tags(&self, key_id: &str, tags: &[Tag]) -> Result<()> {
        let (key_id, tags) = (key_id.to_owned(), tags.to_vec());
        self.write(move |c| {
            let tx = c.savepoint().map_err(backend)?;
            upsert_tags(&tx, &key_id, &tags)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn remove_tags(&self, key_id: &str, tag_keys: &[String]) -> Result<()> {
        let (key_id, tag_keys) = (key_id.to_owned(), tag_keys.to_vec());
        self.write(move |c| {
            let tx = c.savepoint().map_err(backend)?;
            {
                let mut stmt = tx
                    .prepare_cached("DELETE FROM kms_tags WHERE key_id = ?1 AND tag_key = ?2")
                    .map_err(backend)?;
                for k in &tag_keys {
                    stmt.execute(params![key_id, k]).map_err(backend)?;
                }
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn list_tags(&self, key_id: &str) -> Result<Vec<Tag>> {
        let key_id = key_id.to_owned();
        self.read(move |c| tag_rows(c, &key_id)).await
    }
}

#[async_trait]
impl KeySnapshotStore for SqliteStore {
    async fn key_snapshot(&self, key_id: &str) -> Result<Option<KeySnapshot>> {
        let key_id = key_id.to_owned();
        self.read(move |c| {
            // One read transaction: every SELECT below sees the same committed state.
            let tx = c.transaction().map_err(backend)?;
            let Some(record) = key_row(&tx, &key_id)? else {
                return Ok(None);
            };
            let snapshot = KeySnapshot {
                tags: tag_rows(&tx, &key_id)?,
                materials: material_rows(&tx, &key_id)?,
                imported: imports::imported_rows(&tx, &key_id)?,
                grants: grants::grant_rows(&tx, &key_id)?,
                aliases: alias_rows(&tx, &record.account, &record.region, Some(&key_id))?,
                record,
            };
            tx.commit().map_err(backend)?;
            Ok(Some(snapshot))
        })
        .await
    }
}

fn key_row(c: &Connection, key_id: &str) -> Result<Option<KeyRecord>> {
    c.prepare_cached(&format!(
        "SELECT {KEY_COLUMNS} FROM kms_keys WHERE key_id = ?1"
    ))
    .map_err(backend)?
    .query_row([key_id], key_from_row)
    .optional()
    .map_err(backend)
}

fn material_rows(c: &Connection, key_id: &str) -> Result<Vec<MaterialRecord>> {
    let mut stmt = c
        .prepare_cached(
            "SELECT key_id, material_id, sealed, creation_ms, rotation_type \
             FROM kms_materials WHERE key_id = ?1 ORDER BY creation_ms, rowid",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map([key_id], |r| {
            Ok(MaterialRecord {
                key_id: r.get(0)?,
                material_id: r.get(1)?,
                sealed: r.get(2)?,
                creation_ms: r.get(3)?,
                rotation_type: r.get(4)?,
            })
        })
        .map_err(backend)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
}

fn alias_rows(
    c: &Connection,
    account: &str,
    region: &str,
    key_id: Option<&str>,
) -> Result<Vec<AliasRecord>> {
    let mut stmt = c
        .prepare_cached(
            "SELECT account, region, name, target_key_id, creation_ms, updated_ms \
             FROM kms_aliases WHERE account = ?1 AND region = ?2 \
             AND (?3 IS NULL OR target_key_id = ?3) ORDER BY name",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![account, region, key_id], alias_from_row)
        .map_err(backend)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
}

fn tag_rows(c: &Connection, key_id: &str) -> Result<Vec<Tag>> {
    let mut stmt = c
        .prepare_cached(
            "SELECT tag_key, tag_value FROM kms_tags WHERE key_id = ?1 ORDER BY tag_key",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map([key_id], |r| {
            Ok(Tag {
                key: r.get(0)?,
                value: r.get(1)?,
            })
        })
        .map_err(backend)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
}

/// Why an alias change that named the alias's target matched no row: the alias is gone
/// ([`StoreError::NotFound`]) or points elsewhere now ([`StoreError::Conflict`]).
fn alias_missing_or_moved(
    c: &rusqlite::Connection,
    account: &str,
    region: &str,
    name: &str,
) -> Result<StoreError> {
    let exists = c
        .query_row(
            "SELECT 1 FROM kms_aliases WHERE account = ?1 AND region = ?2 AND name = ?3",
            params![account, region, name],
            |_| Ok(()),
        )
        .optional()
        .map_err(backend)?
        .is_some();
    Ok(if exists {
        StoreError::Conflict
    } else {
        StoreError::NotFound
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn key(period: Option<i32>, next: Option<i64>) -> KeyRecord {
        KeyRecord {
            key_id: "k1".into(),
            account: "111122223333".into(),
            region: "us-east-1".into(),
            arn: "arn:aws:kms:us-east-1:111122223333:key/k1".into(),
            creation_ms: 1,
            description: String::new(),
            key_usage: "ENCRYPT_DECRYPT".into(),
            key_spec: "SYMMETRIC_DEFAULT".into(),
            origin: "AWS_KMS".into(),
            key_manager: "CUSTOMER".into(),
            state: "Enabled".into(),
            deletion_ms: None,
            policy: "{}".into(),
            current_material_id: "00".repeat(32),
            rotation_period_days: period,
            next_rotation_ms: next,
            state_after_import: None,
            multi_region_primary: None,
        }
    }

    fn material(id: &str, at: i64, rotation: Option<&str>) -> MaterialRecord {
        MaterialRecord {
            key_id: "k1".into(),
            material_id: id.repeat(32),
            sealed: vec![1],
            creation_ms: at,
            rotation_type: rotation.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn a_rotation_adds_the_material_and_moves_the_schedule_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db")).unwrap();
        store
            .insert_key(
                &key(Some(90), Some(100)),
                &material("00", 1, None),
                &[],
                None,
            )
            .await
            .unwrap();
        assert!(store.keys_due_for_rotation(99).await.unwrap().is_empty());
        assert_eq!(store.keys_due_for_rotation(100).await.unwrap(), ["k1"]);

        let mut rotated = key(Some(90), Some(200));
        rotated.current_material_id = "11".repeat(32);
        store
            .rotate_key(&rotated, &material("11", 150, Some("AUTOMATIC")))
            .await
            .unwrap();
        assert!(store.keys_due_for_rotation(199).await.unwrap().is_empty());
        assert_eq!(store.get_key("k1").await.unwrap().unwrap(), rotated);
        let history: Vec<_> = store
            .materials("k1")
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.material_id, m.rotation_type))
            .collect();
        assert_eq!(
            history,
            [
                ("00".repeat(32), None),
                ("11".repeat(32), Some("AUTOMATIC".to_owned()))
            ]
        );

        // A disabled key is not due; a repeated material id fails the whole rotation.
        let mut disabled = rotated.clone();
        disabled.state = "Disabled".into();
        store.update_key(&disabled).await.unwrap();
        assert!(store.keys_due_for_rotation(1000).await.unwrap().is_empty());
        let mut again = disabled.clone();
        again.next_rotation_ms = Some(5000);
        assert!(
            store
                .rotate_key(&again, &material("11", 160, Some("ON_DEMAND")))
                .await
                .is_err()
        );
        assert_eq!(store.get_key("k1").await.unwrap().unwrap(), disabled);
    }
}
