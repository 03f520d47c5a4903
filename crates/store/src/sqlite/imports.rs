//! [`ImportStore`] for SQLite: the `kms_imported_materials` and `kms_import_tokens` tables.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, backend, insert_key_row, update_key_row, upsert_tags};
use crate::records::{KeyRecord, Tag};
use crate::{ImportStore, ImportTokenRecord, ImportedMaterialRecord, Result, StoreError};

const COLUMNS: &str = "key_id, material_id, sealed, creation_ms, expiration_model, valid_to_ms, \
     description, pending_rotation, rotation_type, rotation_ms";
const TOKEN_COLUMNS: &str = "token_sha256, key_id, wrapping_key_spec, wrapping_algorithm, \
     created_ms, expires_ms, sealed_private_key";

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
            write_materials(&tx, &key, &upsert, &remove)?;
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

    async fn insert_import_token(
        &self,
        token: &ImportTokenRecord,
        now_ms: i64,
        max_per_key: usize,
    ) -> Result<()> {
        let token = token.clone();
        let keep = i64::try_from(max_per_key.saturating_sub(1)).unwrap_or(i64::MAX);
        self.write(move |c| {
            let tx = c.savepoint().map_err(backend)?;
            let exists: bool = tx
                .query_row(
                    "SELECT EXISTS(SELECT 1 FROM kms_keys WHERE key_id = ?1)",
                    [&token.key_id],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            if !exists {
                return Err(StoreError::NotFound);
            }
            tx.execute(
                "DELETE FROM kms_import_tokens WHERE expires_ms <= ?1",
                [now_ms],
            )
            .map_err(backend)?;
            tx.execute(
                "DELETE FROM kms_import_tokens WHERE key_id = ?1 AND token_sha256 NOT IN \
                 (SELECT token_sha256 FROM kms_import_tokens WHERE key_id = ?1 \
                 ORDER BY created_ms DESC, token_sha256 LIMIT ?2)",
                params![token.key_id, keep],
            )
            .map_err(backend)?;
            tx.execute(
                &format!(
                    "INSERT INTO kms_import_tokens ({TOKEN_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ),
                params![
                    token.token_sha256,
                    token.key_id,
                    token.wrapping_key_spec,
                    token.wrapping_algorithm,
                    token.created_ms,
                    token.expires_ms,
                    token.sealed_private_key
                ],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn import_token(&self, token_sha256: &[u8]) -> Result<Option<ImportTokenRecord>> {
        let hash = token_sha256.to_vec();
        self.read(move |c| {
            c.query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM kms_import_tokens WHERE token_sha256 = ?1"),
                [&hash],
                |r| {
                    Ok(ImportTokenRecord {
                        token_sha256: r.get(0)?,
                        key_id: r.get(1)?,
                        wrapping_key_spec: r.get(2)?,
                        wrapping_algorithm: r.get(3)?,
                        created_ms: r.get(4)?,
                        expires_ms: r.get(5)?,
                        sealed_private_key: r.get(6)?,
                    })
                },
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn import_with_token(
        &self,
        key: &KeyRecord,
        upsert: &[ImportedMaterialRecord],
        token_sha256: &[u8],
    ) -> Result<bool> {
        let (key, upsert, hash) = (key.clone(), upsert.to_vec(), token_sha256.to_vec());
        self.write(move |c| {
            let tx = c.savepoint().map_err(backend)?;
            let used = tx
                .execute(
                    "DELETE FROM kms_import_tokens WHERE token_sha256 = ?1 AND key_id = ?2",
                    params![hash, key.key_id],
                )
                .map_err(backend)?;
            if used == 0 {
                // Dropped uncommitted: the savepoint rolls back (nothing was written).
                return Ok(false);
            }
            write_materials(&tx, &key, &upsert, &[])?;
            tx.commit().map_err(backend)?;
            Ok(true)
        })
        .await
    }

    async fn purge_import_tokens(&self, now_ms: i64) -> Result<usize> {
        self.write(move |c| {
            c.execute(
                "DELETE FROM kms_import_tokens WHERE expires_ms <= ?1",
                [now_ms],
            )
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

/// In `tx`: adds or replaces `upsert`, removes the materials `remove` names, and writes `key`.
fn write_materials(
    tx: &rusqlite::Connection,
    key: &KeyRecord,
    upsert: &[ImportedMaterialRecord],
    remove: &[String],
) -> Result<()> {
    for m in upsert {
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
    for id in remove {
        tx.execute(
            "DELETE FROM kms_imported_materials WHERE key_id = ?1 AND material_id = ?2",
            params![key.key_id, id],
        )
        .map_err(backend)?;
    }
    update_key_row(tx, key)
}
