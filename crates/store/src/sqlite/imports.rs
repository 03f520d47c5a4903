//! [`ImportStore`] for SQLite: the `kms_imported_materials` table.

use async_trait::async_trait;
use rusqlite::params;

use super::{SqliteStore, backend, insert_key_row, update_key_row, upsert_tags};
use crate::records::{KeyRecord, Tag};
use crate::{ImportStore, ImportedMaterialRecord, Result};

const COLUMNS: &str = "key_id, material_id, sealed, creation_ms, expiration_model, valid_to_ms, \
     description, pending_rotation, rotation_type, rotation_ms";

#[async_trait]
impl ImportStore for SqliteStore {
    async fn insert_key_without_material(&self, key: &KeyRecord, tags: &[Tag]) -> Result<()> {
        let (key, tags) = (key.clone(), tags.to_vec());
        self.write(move |c| {
            let tx = c.savepoint().map_err(backend)?;
            insert_key_row(&tx, &key)?;
            upsert_tags(&tx, &key.key_id, &tags)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn imported_materials(&self, key_id: &str) -> Result<Vec<ImportedMaterialRecord>> {
        let key_id = key_id.to_owned();
        self.read(move |c| imported_rows(c, &key_id)).await
    }

    async fn write_imported_materials(
        &self,
        key: &KeyRecord,
        upsert: &[ImportedMaterialRecord],
        remove: &[String],
    ) -> Result<()> {
        let (key, upsert, remove) = (key.clone(), upsert.to_vec(), remove.to_vec());
        self.write(move |c| {
            let tx = c.savepoint().map_err(backend)?;
            for m in &upsert {
                // An upsert that keeps the row (and so its position in the listing).
                tx.execute(
                    &format!(
                        "INSERT INTO kms_imported_materials ({COLUMNS}) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                         ON CONFLICT (key_id, material_id) DO UPDATE SET sealed = ?3, \
                         expiration_model = ?5, valid_to_ms = ?6, description = ?7, \
                         pending_rotation = ?8, rotation_type = ?9, rotation_ms = ?10"
                    ),
                    params![
                        m.key_id,
                        m.material_id,
                        m.sealed,
                        m.creation_ms,
                        m.expiration_model,
                        m.valid_to_ms,
                        m.description,
                        i64::from(m.pending_rotation),
                        m.rotation_type,
                        m.rotation_ms
                    ],
                )
                .map_err(backend)?;
            }
            for id in &remove {
                tx.execute(
                    "DELETE FROM kms_imported_materials WHERE key_id = ?1 AND material_id = ?2",
                    params![key.key_id, id],
                )
                .map_err(backend)?;
            }
            update_key_row(&tx, &key)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn keys_with_expired_imports(&self, now_ms: i64) -> Result<Vec<String>> {
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT DISTINCT key_id FROM kms_imported_materials \
                     WHERE valid_to_ms IS NOT NULL AND sealed IS NOT NULL AND valid_to_ms <= ?1 \
                     ORDER BY key_id",
                )
                .map_err(backend)?;
            let rows = stmt.query_map([now_ms], |r| r.get(0)).map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
                .map_err(backend)
        })
        .await
    }
}

pub(super) fn imported_rows(
    c: &rusqlite::Connection,
    key_id: &str,
) -> Result<Vec<ImportedMaterialRecord>> {
    let mut stmt = c
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM kms_imported_materials WHERE key_id = ?1 \
             ORDER BY creation_ms, rowid"
        ))
        .map_err(backend)?;
    let rows = stmt
        .query_map([key_id], |r| {
            Ok(ImportedMaterialRecord {
                key_id: r.get(0)?,
                material_id: r.get(1)?,
                sealed: r.get(2)?,
                creation_ms: r.get(3)?,
                expiration_model: r.get(4)?,
                valid_to_ms: r.get(5)?,
                description: r.get(6)?,
                pending_rotation: r.get::<_, i64>(7)? != 0,
                rotation_type: r.get(8)?,
                rotation_ms: r.get(9)?,
            })
        })
        .map_err(backend)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
}
