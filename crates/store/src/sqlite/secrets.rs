//! [`SecretStore`] on SQLite: tables `sm_secrets` and `sm_versions` (migration 2).

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, backend};
use crate::records::{SecretRecord, SecretVersionRecord};
use crate::{Result, SecretStore, SecretWrite, StoreError};

const SECRET_COLUMNS: &str = "arn, account, region, name, created_ms, deletion_ms, meta, revision";
const VERSION_COLUMNS: &str = "secret_arn, version_id, created_ms, last_accessed_ms, kms_key_id, \
     kms_key_arn, data_key, sealed_value";

#[async_trait]
impl SecretStore for SqliteStore {
    async fn write_secrets(&self, writes: &[SecretWrite]) -> Result<()> {
        let writes = writes.to_vec();
        self.write(move |c| {
            let tx = c.savepoint().map_err(backend)?;
            for write in &writes {
                match write {
                    SecretWrite::Put {
                        secret,
                        versions,
                        removed_versions,
                    } => put(&tx, secret, versions, removed_versions)?,
                    SecretWrite::Delete { arn } => delete(&tx, arn)?,
                }
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn get_secret(&self, arn: &str) -> Result<Option<SecretRecord>> {
        let arn = arn.to_owned();
        self.read(move |c| {
            c.query_row(
                &format!("SELECT {SECRET_COLUMNS} FROM sm_secrets WHERE arn = ?1"),
                [arn],
                secret_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn find_secret(
        &self,
        account: &str,
        region: &str,
        name: &str,
    ) -> Result<Option<SecretRecord>> {
        let args = (account.to_owned(), region.to_owned(), name.to_owned());
        self.read(move |c| {
            c.query_row(
                &format!(
                    "SELECT {SECRET_COLUMNS} FROM sm_secrets \
                     WHERE account = ?1 AND region = ?2 AND name = ?3"
                ),
                params![args.0, args.1, args.2],
                secret_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn list_secrets(&self, account: &str, region: &str) -> Result<Vec<SecretRecord>> {
        let args = (account.to_owned(), region.to_owned());
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {SECRET_COLUMNS} FROM sm_secrets WHERE account = ?1 AND region = ?2 \
                     ORDER BY created_ms, arn"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![args.0, args.1], secret_from_row)
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn secret_versions(&self, arn: &str) -> Result<Vec<SecretVersionRecord>> {
        let arn = arn.to_owned();
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {VERSION_COLUMNS} FROM sm_versions WHERE secret_arn = ?1 \
                     ORDER BY created_ms, version_id"
                ))
                .map_err(backend)?;
            let rows = stmt.query_map([arn], version_from_row).map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn secrets_due_for_deletion(&self, now_ms: i64) -> Result<Vec<String>> {
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT arn FROM sm_secrets WHERE deletion_ms IS NOT NULL \
                     AND deletion_ms <= ?1 ORDER BY deletion_ms",
                )
                .map_err(backend)?;
            let rows = stmt.query_map([now_ms], |r| r.get(0)).map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
                .map_err(backend)
        })
        .await
    }

    async fn secrets_due_for_rotation(&self, now_ms: i64) -> Result<Vec<String>> {
        // The metadata is a JSON document; rotating secrets are few, so a scan is cheap.
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT arn FROM sm_secrets WHERE deletion_ms IS NULL \
                     AND json_extract(meta, '$.rotation.enabled') = 1 \
                     AND COALESCE(json_extract(meta, '$.rotation.due_ms'), \
                                  json_extract(meta, '$.rotation.next_rotation_ms')) <= ?1 \
                     ORDER BY created_ms",
                )
                .map_err(backend)?;
            let rows = stmt.query_map([now_ms], |r| r.get(0)).map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
                .map_err(backend)
        })
        .await
    }
}

fn put(
    tx: &Connection,
    s: &SecretRecord,
    versions: &[SecretVersionRecord],
    removed: &[String],
) -> Result<()> {
    // Only at the revision before the one written (see SecretRecord::revision).
    let written = tx
        .execute(
            &format!(
                "INSERT INTO sm_secrets ({SECRET_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (arn) DO UPDATE SET name = excluded.name, \
                 deletion_ms = excluded.deletion_ms, meta = excluded.meta, \
                 revision = excluded.revision WHERE sm_secrets.revision = excluded.revision - 1"
            ),
            params![
                s.arn,
                s.account,
                s.region,
                s.name,
                s.created_ms,
                s.deletion_ms,
                s.meta,
                s.revision
            ],
        )
        .map_err(backend)?;
    if written == 0 {
        return Err(StoreError::Conflict);
    }
    {
        let mut stmt = tx
            .prepare_cached(&format!(
                "INSERT INTO sm_versions ({VERSION_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (secret_arn, version_id) DO UPDATE SET \
                 last_accessed_ms = excluded.last_accessed_ms, kms_key_id = excluded.kms_key_id, \
                 kms_key_arn = excluded.kms_key_arn, data_key = excluded.data_key, \
                 sealed_value = excluded.sealed_value"
            ))
            .map_err(backend)?;
        for v in versions {
            stmt.execute(params![
                v.secret_arn,
                v.version_id,
                v.created_ms,
                v.last_accessed_ms,
                v.kms_key_id,
                v.kms_key_arn,
                v.data_key,
                v.sealed_value
            ])
            .map_err(backend)?;
        }
    }
    let mut stmt = tx
        .prepare_cached("DELETE FROM sm_versions WHERE secret_arn = ?1 AND version_id = ?2")
        .map_err(backend)?;
    for version_id in removed {
        stmt.execute(params![s.arn, version_id]).map_err(backend)?;
    }
    Ok(())
}

fn delete(tx: &Connection, arn: &str) -> Result<()> {
    tx.execute("DELETE FROM sm_versions WHERE secret_arn = ?1", [arn])
        .map_err(backend)?;
    tx.execute("DELETE FROM sm_secrets WHERE arn = ?1", [arn])
        .map_err(backend)?;
    Ok(())
}

fn secret_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SecretRecord> {
    Ok(SecretRecord {
        arn: row.get(0)?,
        account: row.get(1)?,
        region: row.get(2)?,
        name: row.get(3)?,
        created_ms: row.get(4)?,
        deletion_ms: row.get(5)?,
        meta: row.get(6)?,
        revision: row.get(7)?,
    })
}

fn version_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SecretVersionRecord> {
    Ok(SecretVersionRecord {
        secret_arn: row.get(0)?,
        version_id: row.get(1)?,
        created_ms: row.get(2)?,
        last_accessed_ms: row.get(3)?,
        kms_key_id: row.get(4)?,
        kms_key_arn: row.get(5)?,
        data_key: row.get(6)?,
        sealed_value: row.get(7)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn secret(arn: &str, name: &str) -> SecretRecord {
        SecretRecord {
            arn: arn.into(),
            account: "111122223333".into(),
            region: "us-east-1".into(),
            name: name.into(),
            created_ms: 1,
            deletion_ms: None,
            meta: "{}".into(),
            revision: 1,
        }
    }

    fn version(arn: &str, id: &str, created_ms: i64) -> SecretVersionRecord {
        SecretVersionRecord {
            secret_arn: arn.into(),
            version_id: id.into(),
            created_ms,
            last_accessed_ms: None,
            kms_key_id: None,
            kms_key_arn: "arn:aws:kms:us-east-1:111122223333:key/k".into(),
            data_key: vec![1, 2, 3],
            sealed_value: vec![4, 5, 6],
        }
    }

    fn put(s: SecretRecord, versions: Vec<SecretVersionRecord>, removed: &[&str]) -> SecretWrite {
        SecretWrite::Put {
            secret: s,
            versions,
            removed_versions: removed.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[tokio::test]
    async fn secrets_and_versions_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db")).unwrap();
        let a = secret("arn:a-AAAAAA", "a");
        store
            .write_secrets(&[put(
                a.clone(),
                vec![version(&a.arn, "v1", 1), version(&a.arn, "v2", 2)],
                &[],
            )])
            .await
            .unwrap();
        assert_eq!(store.get_secret(&a.arn).await.unwrap(), Some(a.clone()));
        assert_eq!(
            store
                .find_secret("111122223333", "us-east-1", "a")
                .await
                .unwrap(),
            Some(a.clone())
        );
        let ids: Vec<String> = store
            .secret_versions(&a.arn)
            .await
            .unwrap()
            .into_iter()
            .map(|v| v.version_id)
            .collect();
        assert_eq!(ids, ["v1", "v2"]);

        // Another secret with the same name is refused, and nothing of that batch lands.
        let b = secret("arn:a-BBBBBB", "a");
        let err = store
            .write_secrets(&[put(b.clone(), vec![version(&b.arn, "v9", 9)], &[])])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::AlreadyExists));
        assert_eq!(store.get_secret(&b.arn).await.unwrap(), None);

        let mut scheduled = a.clone();
        scheduled.deletion_ms = Some(50);
        scheduled.revision = 2;
        let mut v2 = version(&a.arn, "v2", 2);
        v2.last_accessed_ms = Some(86_400_000);
        store
            .write_secrets(&[put(scheduled.clone(), vec![v2.clone()], &["v1"])])
            .await
            .unwrap();
        assert_eq!(
            store.secret_versions(&a.arn).await.unwrap(),
            vec![v2.clone()]
        );

        // A write decided on the first revision (another node's, say) is refused whole.
        let mut stale = a.clone();
        stale.revision = 2;
        let err = store
            .write_secrets(&[put(stale, vec![version(&a.arn, "v3", 3)], &[])])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict), "{err:?}");
        assert_eq!(store.secret_versions(&a.arn).await.unwrap(), vec![v2]);
        assert!(store.secrets_due_for_deletion(49).await.unwrap().is_empty());
        assert_eq!(
            store.secrets_due_for_deletion(50).await.unwrap(),
            [a.arn.as_str()]
        );
        assert_eq!(
            store
                .list_secrets("111122223333", "us-east-1")
                .await
                .unwrap(),
            vec![scheduled]
        );

        store
            .write_secrets(&[SecretWrite::Delete { arn: a.arn.clone() }])
            .await
            .unwrap();
        assert_eq!(store.get_secret(&a.arn).await.unwrap(), None);
        assert!(store.secret_versions(&a.arn).await.unwrap().is_empty());
    }
}
