//! [`CustomKeyStoreStore`] on PostgreSQL: the same tables and contract as the SQLite store's
//! `custom_key_stores.rs`.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{PgStore, has_nul, insert_key_row, pg, rows, upsert_tags};
use crate::records::{KeyRecord, Tag};
use crate::{CustomKeyStoreRecord, CustomKeyStoreStore, Result, StoreError};

const COLUMNS: &str = "id, account, region, name, store_type, cluster_id, trust_anchor, \
     sealed_password, connection_state, connection_error, creation_ms";

fn from_row(r: &Row) -> Result<CustomKeyStoreRecord> {
    Ok(CustomKeyStoreRecord {
        id: r.try_get(0).map_err(pg)?,
        account: r.try_get(1).map_err(pg)?,
        region: r.try_get(2).map_err(pg)?,
        name: r.try_get(3).map_err(pg)?,
        store_type: r.try_get(4).map_err(pg)?,
        cluster_id: r.try_get(5).map_err(pg)?,
        trust_anchor: r.try_get(6).map_err(pg)?,
        sealed_password: r.try_get(7).map_err(pg)?,
        connection_state: r.try_get(8).map_err(pg)?,
        connection_error: r.try_get(9).map_err(pg)?,
        creation_ms: r.try_get(10).map_err(pg)?,
    })
}

#[async_trait]
impl CustomKeyStoreStore for PgStore {
    async fn insert_custom_key_store(&self, s: &CustomKeyStoreRecord) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            &format!(
                "INSERT INTO kms_custom_key_stores ({COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            ),
            &[
                &s.id,
                &s.account,
                &s.region,
                &s.name,
                &s.store_type,
                &s.cluster_id,
                &s.trust_anchor,
                &s.sealed_password,
                &s.connection_state,
                &s.connection_error,
                &s.creation_ms,
            ],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }

    async fn get_custom_key_store(&self, id: &str) -> Result<Option<CustomKeyStoreRecord>> {
        if has_nul(&[id]) {
            return Ok(None);
        }
        let c = self.client().await?;
        let found = c
            .query_opt(
                &format!("SELECT {COLUMNS} FROM kms_custom_key_stores WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(pg)?;
        found.as_ref().map(from_row).transpose()
    }

    async fn list_custom_key_stores(
        &self,
        account: &str,
        region: &str,
    ) -> Result<Vec<CustomKeyStoreRecord>> {
        if has_nul(&[account, region]) {
            return Ok(Vec::new());
        }
        let c = self.client().await?;
        let found = c
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM kms_custom_key_stores \
                     WHERE account = $1 AND region = $2 ORDER BY id"
                ),
                &[&account, &region],
            )
            .await
            .map_err(pg)?;
        rows(found, from_row)
    }

    async fn update_custom_key_store(&self, s: &CustomKeyStoreRecord) -> Result<()> {
        let c = self.client().await?;
        let changed = c
            .execute(
                "UPDATE kms_custom_key_stores SET name = $2, cluster_id = $3, \
                 sealed_password = $4, connection_state = $5, connection_error = $6 \
                 WHERE id = $1",
                &[
                    &s.id,
                    &s.name,
                    &s.cluster_id,
                    &s.sealed_password,
                    &s.connection_state,
                    &s.connection_error,
                ],
            )
            .await
            .map_err(pg)?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_custom_key_store(&self, id: &str) -> Result<bool> {
        if has_nul(&[id]) {
            return Ok(false);
        }
        let c = self.client().await?;
        let deleted = c
            .execute(
                "DELETE FROM kms_custom_key_stores WHERE id = $1 AND NOT EXISTS \
                 (SELECT 1 FROM kms_custom_key_store_keys WHERE custom_key_store_id = $1)",
                &[&id],
            )
            .await
            .map_err(pg)?;
        Ok(deleted > 0)
    }

    async fn custom_key_store_key_count(&self, id: &str) -> Result<usize> {
        if has_nul(&[id]) {
            return Ok(0);
        }
        let c = self.client().await?;
        let n: i64 = c
            .query_one(
                "SELECT COUNT(*) FROM kms_custom_key_store_keys WHERE custom_key_store_id = $1",
                &[&id],
            )
            .await
            .map_err(pg)?
            .try_get(0)
            .map_err(pg)?;
        usize::try_from(n).map_err(|_| StoreError::Corrupt("negative count"))
    }

    async fn insert_custom_key_store_key(
        &self,
        key: &KeyRecord,
        tags: &[Tag],
        custom_key_store_id: &str,
    ) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        insert_key_row(&tx, key).await?;
        tx.execute(
            "INSERT INTO kms_custom_key_store_keys (key_id, custom_key_store_id) \
             VALUES ($1, $2)",
            &[&key.key_id, &custom_key_store_id],
        )
        .await
        .map_err(pg)?;
        upsert_tags(&tx, &key.key_id, tags).await?;
        tx.commit().await.map_err(pg)
    }

    async fn key_custom_key_store(&self, key_id: &str) -> Result<Option<String>> {
        if has_nul(&[key_id]) {
            return Ok(None);
        }
        let c = self.client().await?;
        let found = c
            .query_opt(
                "SELECT custom_key_store_id FROM kms_custom_key_store_keys WHERE key_id = $1",
                &[&key_id],
            )
            .await
            .map_err(pg)?;
        found.map(|r| r.try_get(0).map_err(pg)).transpose()
    }
}
