//! [`CustomKeyStoreStore`] for SQLite: the `kms_custom_key_stores` and
//! `kms_custom_key_store_keys` tables.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, backend, insert_key_row, upsert_tags};
use crate::records::{KeyRecord, Tag};
use crate::{CustomKeyStoreRecord, CustomKeyStoreStore, Result, StoreError};

const COLUMNS: &str = "id, account, region, name, store_type, cluster_id, trust_anchor, \
     sealed_password, connection_state, connection_error, creation_ms";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CustomKeyStoreRecord> {
    Ok(CustomKeyStoreRecord {
        id: r.get(0)?,
        account: r.get(1)?,
        region: r.get(2)?,
        name: r.get(3)?,
        store_type: r.get(4)?,
        cluster_id: r.get(5)?,
        trust_anchor: r.get(6)?,
        sealed_password: r.get(7)?,
        connection_state: r.get(8)?,
        connection_error: r.get(9)?,
        creation_ms: r.get(10)?,
    })
}

#[async_trait]
impl CustomKeyStoreStore for SqliteStore {
    async fn insert_custom_key_store(&self, store: &CustomKeyStoreRecord) -> Result<()> {
        let s = store.clone();
        self.write(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO kms_custom_key_stores ({COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                ),
                params![
                    s.id,
                    s.account,
                    s.region,
                    s.name,
                    s.store_type,
                    s.cluster_id,
                    s.trust_anchor,
                    s.sealed_password,
                    s.connection_state,
                    s.connection_error,
                    s.creation_ms
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn get_custom_key_store(&self, id: &str) -> Result<Option<CustomKeyStoreRecord>> {
        let id = id.to_owned();
        self.read(move |c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM kms_custom_key_stores WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn list_custom_key_stores(
        &self,
        account: &str,
        region: &str,
    ) -> Result<Vec<CustomKeyStoreRecord>> {
        let (account, region) = (account.to_owned(), region.to_owned());
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM kms_custom_key_stores \
                     WHERE account = ?1 AND region = ?2 ORDER BY id"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![account, region], from_row)
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn update_custom_key_store(&self, store: &CustomKeyStoreRecord) -> Result<()> {
        let s = store.clone();
        self.write(move |c| {
            let changed = c
                .execute(
                    "UPDATE kms_custom_key_stores SET name = ?2, cluster_id = ?3, \
                     sealed_password = ?4, connection_state = ?5, connection_error = ?6 \
                     WHERE id = ?1",
                    params![
                        s.id,
                        s.name,
                        s.cluster_id,
                        s.sealed_password,
                        s.connection_state,
                        s.connection_error
                    ],
                )
                .map_err(backend)?;
            if changed == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }

    async fn delete_custom_key_store(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.write(move |c| {
            let deleted = c
                .execute(
                    "DELETE FROM kms_custom_key_stores WHERE id = ?1 AND NOT EXISTS \
                     (SELECT 1 FROM kms_custom_key_store_keys WHERE custom_key_store_id = ?1)",
                    [id],
                )
                .map_err(backend)?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn custom_key_store_key_count(&self, id: &str) -> Result<usize> {
        let id = id.to_owned();
        self.read(move |c| {
            let n: i64 = c
                .query_row(
                    "SELECT COUNT(*) FROM kms_custom_key_store_keys WHERE custom_key_store_id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            usize::try_from(n).map_err(|_| StoreError::Corrupt("negative count"))
        })
        .await
    }

    async fn insert_custom_key_store_key(
        &self,
        key: &KeyRecord,
        tags: &[Tag],
        custom_key_store_id: &str,
    ) -> Result<()> {
        let (key, tags, store_id) = (key.clone(), tags.to_vec(), custom_key_store_id.to_owned());
        self.write(move |c| {
            let tx = c.savepoint().map_err(backend)?;
            insert_key_row(&tx, &key)?;
            tx.execute(
                "INSERT INTO kms_custom_key_store_keys (key_id, custom_key_store_id) \
                 VALUES (?1, ?2)",
                params![key.key_id, store_id],
            )
            .map_err(backend)?;
            upsert_tags(&tx, &key.key_id, &tags)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn key_custom_key_store(&self, key_id: &str) -> Result<Option<String>> {
        let key_id = key_id.to_owned();
        self.read(move |c| {
            c.query_row(
                "SELECT custom_key_store_id FROM kms_custom_key_store_keys WHERE key_id = ?1",
                [key_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)
        })
        .await
    }
}
