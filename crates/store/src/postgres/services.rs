//! Grants, imported key material, secrets and parameters on PostgreSQL: the same tables and
//! contracts as the SQLite store's `grants.rs`, `imports.rs`, `secrets.rs` and `params.rs`.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{PgStore, has_nul, insert_key_row, pg, rows, snapshot, update_key_row, upsert_tags};
use crate::changes::Change;
use crate::grants::{GrantRecord, GrantStore};
use crate::params::{
    OneParam, ParamRecord, ParamStore, ParamVersionRecord, ParamWrite, ScopeParams,
};
use crate::records::{KeyRecord, SecretRecord, SecretVersionRecord, Tag};
use crate::{
    ImportStore, ImportTokenRecord, ImportedMaterialRecord, Result, SecretStore, SecretWrite,
    StoreError,
};

const GRANT_COLUMNS: &str = "grant_id, key_id, name, grantee_principal, retiring_principal, \
     operations, constraints, issuing_account, creation_ms";

pub(super) async fn imported_rows(
    c: &impl GenericClient,
    key_id: &str,
) -> Result<Vec<ImportedMaterialRecord>> {
    let found = c
        .query(
            &format!(
                "SELECT {IMPORT_COLUMNS} FROM kms_imported_materials WHERE key_id = $1 \
                 ORDER BY creation_ms, seq"
            ),
            &[&key_id],
        )
        .await
        .map_err(pg)?;
    rows(found, |r| {
        Ok(ImportedMaterialRecord {
            key_id: r.try_get(0).map_err(pg)?,
            material_id: r.try_get(1).map_err(pg)?,
            sealed: r.try_get(2).map_err(pg)?,
            creation_ms: r.try_get(3).map_err(pg)?,
            expiration_model: r.try_get(4).map_err(pg)?,
            valid_to_ms: r.try_get(5).map_err(pg)?,
            description: r.try_get(6).map_err(pg)?,
            pending_rotation: r.try_get(7).map_err(pg)?,
            rotation_type: r.try_get(8).map_err(pg)?,
            rotation_ms: r.try_get(9).map_err(pg)?,
        })
    })
}

pub(super) async fn grant_rows(c: &impl GenericClient, key_id: &str) -> Result<Vec<GrantRecord>> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {GRANT_COLUMNS} FROM kms_grants WHERE key_id = $1 ORDER BY grant_id"
        ))
        .await
        .map_err(pg)?;
    let found = c.query(&stmt, &[&key_id]).await.map_err(pg)?;
    rows(found, grant_from_row)
}

fn grant_from_row(row: &Row) -> Result<GrantRecord> {
    Ok(GrantRecord {
        grant_id: row.try_get(0).map_err(pg)?,
        key_id: row.try_get(1).map_err(pg)?,
        name: row.try_get(2).map_err(pg)?,
        grantee_principal: row.try_get(3).map_err(pg)?,
        retiring_principal: row.try_get(4).map_err(pg)?,
        operations: row.try_get(5).map_err(pg)?,
        constraints: row.try_get(6).map_err(pg)?,
        issuing_account: row.try_get(7).map_err(pg)?,
        creation_ms: row.try_get(8).map_err(pg)?,
    })
}

#[async_trait]
impl GrantStore for PgStore {
    async fn insert_grant(&self, g: &GrantRecord) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        tx.execute(
            &format!(
                "INSERT INTO kms_grants ({GRANT_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ),
            &[
                &g.grant_id,
                &g.key_id,
                &g.name,
                &g.grantee_principal,
                &g.retiring_principal,
                &g.operations,
                &g.constraints,
                &g.issuing_account,
                &g.creation_ms,
            ],
        )
        .await
        .map_err(pg)?;
        self.notify(&tx, &[Change::Key(g.key_id.clone())]).await?;
        tx.commit().await.map_err(pg)
    }

    async fn delete_grant(&self, key_id: &str, grant_id: &str) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let n = tx
            .execute(
                "DELETE FROM kms_grants WHERE key_id = $1 AND grant_id = $2",
                &[&key_id, &grant_id],
            )
            .await
            .map_err(pg)?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        self.notify(&tx, &[Change::Key(key_id.to_owned())]).await?;
        tx.commit().await.map_err(pg)
    }

    async fn key_grants(&self, key_id: &str) -> Result<Vec<GrantRecord>> {
        if has_nul(&[key_id]) {
            return Ok(Vec::new());
        }
        grant_rows(&self.client().await?, key_id).await
    }

    async fn retirable_grants(
        &self,
        retiring_principal: &str,
        region: &str,
    ) -> Result<Vec<GrantRecord>> {
        if has_nul(&[retiring_principal, region]) {
            return Ok(Vec::new());
        }
        let c = self.client().await?;
        let columns = GRANT_COLUMNS
            .split(", ")
            .map(|col| format!("g.{col}"))
            .collect::<Vec<_>>()
            .join(", ");
        let found = c
            .query(
                &format!(
                    "SELECT {columns} FROM kms_grants g JOIN kms_keys k ON k.key_id = g.key_id \
                     WHERE g.retiring_principal = $1 AND k.region = $2 ORDER BY g.grant_id"
                ),
                &[&retiring_principal, &region],
            )
            .await
            .map_err(pg)?;
        rows(found, grant_from_row)
    }
}

const IMPORT_COLUMNS: &str = "key_id, material_id, sealed, creation_ms, expiration_model, \
     valid_to_ms, description, pending_rotation, rotation_type, rotation_ms";
const TOKEN_COLUMNS: &str = "token_sha256, key_id, wrapping_key_spec, wrapping_algorithm, \
     created_ms, expires_ms, sealed_private_key";

/// In `tx`: adds or replaces `upsert`, removes the materials `remove` names, and writes `key`.
async fn write_materials(
    tx: &impl GenericClient,
    key: &KeyRecord,
    upsert: &[ImportedMaterialRecord],
    remove: &[String],
) -> Result<()> {
    for m in upsert {
        // An upsert that keeps the row (and so its `seq`, its place in the listing).
        tx.execute(
            &format!(
                "INSERT INTO kms_imported_materials ({IMPORT_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (key_id, material_id) DO UPDATE SET sealed = excluded.sealed, \
                 expiration_model = excluded.expiration_model, \
                 valid_to_ms = excluded.valid_to_ms, description = excluded.description, \
                 pending_rotation = excluded.pending_rotation, \
                 rotation_type = excluded.rotation_type, rotation_ms = excluded.rotation_ms"
            ),
            &[
                &m.key_id,
                &m.material_id,
                &m.sealed,
                &m.creation_ms,
                &m.expiration_model,
                &m.valid_to_ms,
                &m.description,
                &m.pending_rotation,
                &m.rotation_type,
                &m.rotation_ms,
            ],
        )
        .await
        .map_err(pg)?;
    }
    for id in remove {
        tx.execute(
            "DELETE FROM kms_imported_materials WHERE key_id = $1 AND material_id = $2",
            &[&key.key_id, id],
        )
        .await
        .map_err(pg)?;
    }
    update_key_row(tx, key).await
}

#[async_trait]
impl ImportStore for PgStore {
    async fn insert_key_without_material(&self, key: &KeyRecord, tags: &[Tag]) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        insert_key_row(&tx, key).await?;
        upsert_tags(&tx, &key.key_id, tags).await?;
        self.notify(&tx, &[Change::Key(key.key_id.clone())]).await?;
        tx.commit().await.map_err(pg)
    }

    async fn imported_materials(&self, key_id: &str) -> Result<Vec<ImportedMaterialRecord>> {
        if has_nul(&[key_id]) {
            return Ok(Vec::new());
        }
        imported_rows(&self.client().await?, key_id).await
    }

    async fn write_imported_materials(
        &self,
        key: &KeyRecord,
        upsert: &[ImportedMaterialRecord],
        remove: &[String],
    ) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        write_materials(&tx, key, upsert, remove).await?;
        self.notify(&tx, &[Change::Key(key.key_id.clone())]).await?;
        tx.commit().await.map_err(pg)
    }

    async fn keys_with_expired_imports(&self, now_ms: i64) -> Result<Vec<String>> {
        let c = self.client().await?;
        let found = c
            .query(
                "SELECT DISTINCT key_id FROM kms_imported_materials \
                 WHERE valid_to_ms IS NOT NULL AND sealed IS NOT NULL AND valid_to_ms <= $1 \
                 ORDER BY key_id",
                &[&now_ms],
            )
            .await
            .map_err(pg)?;
        rows(found, |r| r.try_get(0).map_err(pg))
    }

    async fn insert_import_token(
        &self,
        token: &ImportTokenRecord,
        now_ms: i64,
        max_per_key: usize,
    ) -> Result<()> {
        if has_nul(&[&token.key_id]) {
            return Err(StoreError::NotFound);
        }
        let keep = i64::try_from(max_per_key.saturating_sub(1)).unwrap_or(i64::MAX);
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        // (A key deleted concurrently fails the insert on its foreign key.)
        let exists = tx
            .query_opt(
                "SELECT key_id FROM kms_keys WHERE key_id = $1",
                &[&token.key_id],
            )
            .await
            .map_err(pg)?
            .is_some();
        if !exists {
            return Err(StoreError::NotFound);
        }
        tx.execute(
            "DELETE FROM kms_import_tokens WHERE expires_ms <= $1",
            &[&now_ms],
        )
        .await
        .map_err(pg)?;
        tx.execute(
            "DELETE FROM kms_import_tokens WHERE key_id = $1 AND token_sha256 NOT IN \
             (SELECT token_sha256 FROM kms_import_tokens WHERE key_id = $1 \
             ORDER BY created_ms DESC, token_sha256 LIMIT $2)",
            &[&token.key_id, &keep],
        )
        .await
        .map_err(pg)?;
        tx.execute(
            &format!(
                "INSERT INTO kms_import_tokens ({TOKEN_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)"
            ),
            &[
                &token.token_sha256,
                &token.key_id,
                &token.wrapping_key_spec,
                &token.wrapping_algorithm,
                &token.created_ms,
                &token.expires_ms,
                &token.sealed_private_key,
            ],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)
    }

    async fn import_token(&self, token_sha256: &[u8]) -> Result<Option<ImportTokenRecord>> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                &format!("SELECT {TOKEN_COLUMNS} FROM kms_import_tokens WHERE token_sha256 = $1"),
                &[&token_sha256],
            )
            .await
            .map_err(pg)?;
        row.map(|r| {
            Ok(ImportTokenRecord {
                token_sha256: r.try_get(0).map_err(pg)?,
                key_id: r.try_get(1).map_err(pg)?,
                wrapping_key_spec: r.try_get(2).map_err(pg)?,
                wrapping_algorithm: r.try_get(3).map_err(pg)?,
                created_ms: r.try_get(4).map_err(pg)?,
                expires_ms: r.try_get(5).map_err(pg)?,
                sealed_private_key: r.try_get(6).map_err(pg)?,
            })
        })
        .transpose()
    }

    async fn import_with_token(
        &self,
        key: &KeyRecord,
        upsert: &[ImportedMaterialRecord],
        token_sha256: &[u8],
    ) -> Result<bool> {
        if has_nul(&[&key.key_id]) {
            return Ok(false);
        }
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        // The row lock of the DELETE makes a concurrent use of the same token wait for this
        // transaction, then delete nothing.
        let used = tx
            .execute(
                "DELETE FROM kms_import_tokens WHERE token_sha256 = $1 AND key_id = $2",
                &[&token_sha256, &key.key_id],
            )
            .await
            .map_err(pg)?;
        if used == 0 {
            // Dropped uncommitted: rolled back.
            return Ok(false);
        }
        write_materials(&tx, key, upsert, &[]).await?;
        self.notify(&tx, &[Change::Key(key.key_id.clone())]).await?;
        tx.commit().await.map_err(pg)?;
        Ok(true)
    }

    async fn purge_import_tokens(&self, now_ms: i64) -> Result<usize> {
        let c = self.client().await?;
        let n = c
            .execute(
                "DELETE FROM kms_import_tokens WHERE expires_ms <= $1",
                &[&now_ms],
            )
            .await
            .map_err(pg)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}

const SECRET_COLUMNS: &str = "arn, account, region, name, created_ms, deletion_ms, meta, revision";
const SECRET_VERSION_COLUMNS: &str = "secret_arn, version_id, created_ms, last_accessed_ms, \
     kms_key_id, kms_key_arn, data_key, sealed_value";

fn secret_from_row(row: &Row) -> Result<SecretRecord> {
    Ok(SecretRecord {
        arn: row.try_get(0).map_err(pg)?,
        account: row.try_get(1).map_err(pg)?,
        region: row.try_get(2).map_err(pg)?,
        name: row.try_get(3).map_err(pg)?,
        created_ms: row.try_get(4).map_err(pg)?,
        deletion_ms: row.try_get(5).map_err(pg)?,
        meta: row.try_get(6).map_err(pg)?,
        revision: row.try_get(7).map_err(pg)?,
    })
}

fn secret_version_from_row(row: &Row) -> Result<SecretVersionRecord> {
    Ok(SecretVersionRecord {
        secret_arn: row.try_get(0).map_err(pg)?,
        version_id: row.try_get(1).map_err(pg)?,
        created_ms: row.try_get(2).map_err(pg)?,
        last_accessed_ms: row.try_get(3).map_err(pg)?,
        kms_key_id: row.try_get(4).map_err(pg)?,
        kms_key_arn: row.try_get(5).map_err(pg)?,
        data_key: row.try_get(6).map_err(pg)?,
        sealed_value: row.try_get(7).map_err(pg)?,
    })
}

async fn put_secret(
    tx: &impl GenericClient,
    s: &SecretRecord,
    versions: &[SecretVersionRecord],
    removed: &[String],
) -> Result<()> {
    // Only at the revision before the one written (see SecretRecord::revision).
    let written = tx
        .execute(
            &format!(
                "INSERT INTO sm_secrets ({SECRET_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (arn) DO UPDATE SET name = excluded.name, \
                 deletion_ms = excluded.deletion_ms, meta = excluded.meta, \
                 revision = excluded.revision WHERE sm_secrets.revision = excluded.revision - 1"
            ),
            &[
                &s.arn,
                &s.account,
                &s.region,
                &s.name,
                &s.created_ms,
                &s.deletion_ms,
                &s.meta,
                &s.revision,
            ],
        )
        .await
        .map_err(pg)?;
    if written == 0 {
        return Err(StoreError::Conflict);
    }
    for v in versions {
        tx.execute(
            &format!(
                "INSERT INTO sm_versions ({SECRET_VERSION_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (secret_arn, version_id) DO UPDATE SET \
                 last_accessed_ms = excluded.last_accessed_ms, \
                 kms_key_id = excluded.kms_key_id, kms_key_arn = excluded.kms_key_arn, \
                 data_key = excluded.data_key, sealed_value = excluded.sealed_value"
            ),
            &[
                &v.secret_arn,
                &v.version_id,
                &v.created_ms,
                &v.last_accessed_ms,
                &v.kms_key_id,
                &v.kms_key_arn,
                &v.data_key,
                &v.sealed_value,
            ],
        )
        .await
        .map_err(pg)?;
    }
    if !removed.is_empty() {
        tx.execute(
            "DELETE FROM sm_versions WHERE secret_arn = $1 AND version_id = ANY($2)",
            &[&s.arn, &removed],
        )
        .await
        .map_err(pg)?;
    }
    Ok(())
}

#[async_trait]
impl SecretStore for PgStore {
    async fn write_secrets(&self, writes: &[SecretWrite]) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        for write in writes {
            match write {
                SecretWrite::Put {
                    secret,
                    versions,
                    removed_versions,
                } => put_secret(&tx, secret, versions, removed_versions).await?,
                SecretWrite::Delete { arn } => {
                    tx.execute("DELETE FROM sm_versions WHERE secret_arn = $1", &[arn])
                        .await
                        .map_err(pg)?;
                    tx.execute("DELETE FROM sm_secrets WHERE arn = $1", &[arn])
                        .await
                        .map_err(pg)?;
                }
            }
        }
        let changes: Vec<Change> = writes
            .iter()
            .map(|w| match w {
                SecretWrite::Put { secret, .. } => Change::Secret(secret.arn.clone()),
                SecretWrite::Delete { arn } => Change::Secret(arn.clone()),
            })
            .collect();
        self.notify(&tx, &changes).await?;
        tx.commit().await.map_err(pg)
    }

    async fn get_secret(&self, arn: &str) -> Result<Option<SecretRecord>> {
        if has_nul(&[arn]) {
            return Ok(None);
        }
        let c = self.client().await?;
        let row = c
            .query_opt(
                &format!("SELECT {SECRET_COLUMNS} FROM sm_secrets WHERE arn = $1"),
                &[&arn],
            )
            .await
            .map_err(pg)?;
        row.as_ref().map(secret_from_row).transpose()
    }

    async fn find_secret(
        &self,
        account: &str,
        region: &str,
        name: &str,
    ) -> Result<Option<SecretRecord>> {
        if has_nul(&[account, region, name]) {
            return Ok(None);
        }
        let c = self.client().await?;
        let row = c
            .query_opt(
                &format!(
                    "SELECT {SECRET_COLUMNS} FROM sm_secrets \
                     WHERE account = $1 AND region = $2 AND name = $3"
                ),
                &[&account, &region, &name],
            )
            .await
            .map_err(pg)?;
        row.as_ref().map(secret_from_row).transpose()
    }

    async fn list_secrets(&self, account: &str, region: &str) -> Result<Vec<SecretRecord>> {
        if has_nul(&[account, region]) {
            return Ok(Vec::new());
        }
        let c = self.client().await?;
        let found = c
            .query(
                &format!(
                    "SELECT {SECRET_COLUMNS} FROM sm_secrets WHERE account = $1 AND region = $2 \
                     ORDER BY created_ms, arn"
                ),
                &[&account, &region],
            )
            .await
            .map_err(pg)?;
        rows(found, secret_from_row)
    }

    async fn secret_versions(&self, arn: &str) -> Result<Vec<SecretVersionRecord>> {
        if has_nul(&[arn]) {
            return Ok(Vec::new());
        }
        let c = self.client().await?;
        let found = c
            .query(
                &format!(
                    "SELECT {SECRET_VERSION_COLUMNS} FROM sm_versions WHERE secret_arn = $1 \
                     ORDER BY created_ms, version_id"
                ),
                &[&arn],
            )
            .await
            .map_err(pg)?;
        rows(found, secret_version_from_row)
    }

    async fn secrets_due_for_deletion(&self, now_ms: i64) -> Result<Vec<String>> {
        let c = self.client().await?;
        let found = c
            .query(
                "SELECT arn FROM sm_secrets WHERE deletion_ms IS NOT NULL \
                 AND deletion_ms <= $1 ORDER BY deletion_ms, arn",
                &[&now_ms],
            )
            .await
            .map_err(pg)?;
        rows(found, |r| r.try_get(0).map_err(pg))
    }

    async fn secrets_due_for_rotation(&self, now_ms: i64) -> Result<Vec<String>> {
        // The metadata is a JSON document; rotating secrets are few, so a scan is cheap.
        // (JSONB and `#>>` are accepted by CockroachDB and YugabyteDB too.)
        let c = self.client().await?;
        let found = c
            .query(
                "SELECT arn FROM sm_secrets WHERE deletion_ms IS NULL \
                 AND (meta::JSONB #>> '{rotation,enabled}') = 'true' \
                 AND COALESCE((meta::JSONB #>> '{rotation,due_ms}')::NUMERIC, \
                              (meta::JSONB #>> '{rotation,next_rotation_ms}')::NUMERIC) <= $1::BIGINT \
                 ORDER BY created_ms, arn",
                &[&now_ms],
            )
            .await
            .map_err(pg)?;
        rows(found, |r| r.try_get(0).map_err(pg))
    }
}

const PARAM_COLUMNS: &str = "arn, account, region, name, created_ms, expires_ms, meta, revision";

fn param_from_row(row: &Row) -> Result<ParamRecord> {
    Ok(ParamRecord {
        arn: row.try_get(0).map_err(pg)?,
        account: row.try_get(1).map_err(pg)?,
        region: row.try_get(2).map_err(pg)?,
        name: row.try_get(3).map_err(pg)?,
        created_ms: row.try_get(4).map_err(pg)?,
        expires_ms: row.try_get(5).map_err(pg)?,
        meta: row.try_get(6).map_err(pg)?,
        revision: row.try_get(7).map_err(pg)?,
    })
}

fn param_version_from_row(row: &Row) -> Result<ParamVersionRecord> {
    Ok(ParamVersionRecord {
        param_arn: row.try_get(0).map_err(pg)?,
        version: row.try_get(1).map_err(pg)?,
        modified_ms: row.try_get(2).map_err(pg)?,
        value: row.try_get(3).map_err(pg)?,
        meta: row.try_get(4).map_err(pg)?,
    })
}

async fn put_param(
    tx: &impl GenericClient,
    p: &ParamRecord,
    versions: &[ParamVersionRecord],
    removed: &[i64],
) -> Result<()> {
    // The row is replaced only at the revision before the one written (see ParamRecord).
    // A concurrent writer of the same row waits for this transaction, then finds the
    // revision changed and writes nothing.
    let written = tx
        .execute(
            &format!(
                "INSERT INTO ssm_params ({PARAM_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (arn) DO UPDATE SET expires_ms = excluded.expires_ms, \
                 meta = excluded.meta, revision = excluded.revision \
                 WHERE ssm_params.revision = excluded.revision - 1"
            ),
            &[
                &p.arn,
                &p.account,
                &p.region,
                &p.name,
                &p.created_ms,
                &p.expires_ms,
                &p.meta,
                &p.revision,
            ],
        )
        .await
        .map_err(pg)?;
    if written == 0 {
        return Err(StoreError::Conflict);
    }
    for v in versions {
        tx.execute(
            "INSERT INTO ssm_versions (param_arn, version, modified_ms, value, meta) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (param_arn, version) DO UPDATE SET \
             modified_ms = excluded.modified_ms, value = excluded.value, meta = excluded.meta",
            &[&v.param_arn, &v.version, &v.modified_ms, &v.value, &v.meta],
        )
        .await
        .map_err(pg)?;
    }
    if !removed.is_empty() {
        tx.execute(
            "DELETE FROM ssm_versions WHERE param_arn = $1 AND version = ANY($2)",
            &[&p.arn, &removed],
        )
        .await
        .map_err(pg)?;
    }
    Ok(())
}

#[async_trait]
impl ParamStore for PgStore {
    async fn write_params(&self, writes: &[ParamWrite]) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        for write in writes {
            match write {
                ParamWrite::Put {
                    param,
                    versions,
                    removed_versions,
                } => put_param(&tx, param, versions, removed_versions).await?,
                ParamWrite::Delete { arn } => {
                    tx.execute("DELETE FROM ssm_versions WHERE param_arn = $1", &[arn])
                        .await
                        .map_err(pg)?;
                    tx.execute("DELETE FROM ssm_params WHERE arn = $1", &[arn])
                        .await
                        .map_err(pg)?;
                }
            }
        }
        let changes: Vec<Change> = writes
            .iter()
            .map(|w| match w {
                ParamWrite::Put { param, .. } => Change::Param(param.arn.clone()),
                ParamWrite::Delete { arn } => Change::Param(arn.clone()),
            })
            .collect();
        self.notify(&tx, &changes).await?;
        tx.commit().await.map_err(pg)
    }

    async fn load_params(&self, account: &str, region: &str) -> Result<ScopeParams> {
        if has_nul(&[account, region]) {
            return Ok((Vec::new(), Vec::new()));
        }
        let mut c = self.client().await?;
        // One snapshot for both queries.
        let tx = snapshot(&mut c).await?;
        let params = tx
            .query(
                &format!(
                    "SELECT {PARAM_COLUMNS} FROM ssm_params \
                     WHERE account = $1 AND region = $2 ORDER BY arn"
                ),
                &[&account, &region],
            )
            .await
            .map_err(pg)?;
        let versions = tx
            .query(
                "SELECT v.param_arn, v.version, v.modified_ms, v.value, v.meta \
                 FROM ssm_versions v JOIN ssm_params p ON p.arn = v.param_arn \
                 WHERE p.account = $1 AND p.region = $2 ORDER BY v.param_arn, v.version",
                &[&account, &region],
            )
            .await
            .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok((
            rows(params, param_from_row)?,
            rows(versions, param_version_from_row)?,
        ))
    }

    async fn load_param(&self, arn: &str) -> Result<Option<OneParam>> {
        if has_nul(&[arn]) {
            return Ok(None);
        }
        let mut c = self.client().await?;
        let tx = snapshot(&mut c).await?;
        let param = tx
            .query_opt(
                &format!("SELECT {PARAM_COLUMNS} FROM ssm_params WHERE arn = $1"),
                &[&arn],
            )
            .await
            .map_err(pg)?;
        let Some(param) = param else {
            return Ok(None);
        };
        let versions = tx
            .query(
                "SELECT param_arn, version, modified_ms, value, meta FROM ssm_versions \
                 WHERE param_arn = $1 ORDER BY version",
                &[&arn],
            )
            .await
            .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(Some((
            param_from_row(&param)?,
            rows(versions, param_version_from_row)?,
        )))
    }

    async fn params_due_for_expiration(&self, now_ms: i64) -> Result<Vec<ParamRecord>> {
        let c = self.client().await?;
        let found = c
            .query(
                &format!(
                    "SELECT {PARAM_COLUMNS} FROM ssm_params WHERE expires_ms IS NOT NULL \
                     AND expires_ms <= $1 ORDER BY expires_ms, arn"
                ),
                &[&now_ms],
            )
            .await
            .map_err(pg)?;
        rows(found, param_from_row)
    }
}
