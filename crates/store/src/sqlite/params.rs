//! [`ParamStore`] on SQLite: tables `ssm_params` and `ssm_versions` (migration 3).

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, backend};
use crate::params::{
    OneParam, ParamRecord, ParamStore, ParamVersionRecord, ParamWrite, ScopeParams,
};
use crate::{Result, StoreError};

const PARAM_COLUMNS: &str = "arn, account, region, name, created_ms, expires_ms, meta, revision";
const VERSION_COLUMNS: &str = "param_arn, version, modified_ms, value, meta";

#[async_trait]
impl ParamStore for SqliteStore {
    async fn write_params(&self, writes: &[ParamWrite]) -> Result<()> {
        let writes = writes.to_vec();
        self.write(move |c| {
            let tx = c.savepoint().map_err(backend)?;
            for write in &writes {
                match write {
                    ParamWrite::Put {
                        param,
                        versions,
                        removed_versions,
                    } => put(&tx, param, versions, removed_versions)?,
                    ParamWrite::Delete { arn } => delete(&tx, arn)?,
                }
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn load_params(&self, account: &str, region: &str) -> Result<ScopeParams> {
        let args = (account.to_owned(), region.to_owned());
        self.read(move |c| {
            // One read transaction: both queries see the same snapshot (WAL).
            let tx = c.transaction().map_err(backend)?;
            let params = {
                let mut stmt = tx
                    .prepare_cached(&format!(
                        "SELECT {PARAM_COLUMNS} FROM ssm_params \
                         WHERE account = ?1 AND region = ?2 ORDER BY arn"
                    ))
                    .map_err(backend)?;
                let rows = stmt
                    .query_map(params![args.0, args.1], param_from_row)
                    .map_err(backend)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(backend)?
            };
            let versions = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT v.param_arn, v.version, v.modified_ms, v.value, v.meta \
                         FROM ssm_versions v JOIN ssm_params p ON p.arn = v.param_arn \
                         WHERE p.account = ?1 AND p.region = ?2 ORDER BY v.param_arn, v.version",
                    )
                    .map_err(backend)?;
                let rows = stmt
                    .query_map(params![args.0, args.1], version_from_row)
                    .map_err(backend)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(backend)?
            };
            tx.commit().map_err(backend)?;
            Ok((params, versions))
        })
        .await
    }

    async fn load_param(&self, arn: &str) -> Result<Option<OneParam>> {
        let arn = arn.to_owned();
        self.read(move |c| {
            let tx = c.transaction().map_err(backend)?;
            let param = tx
                .query_row(
                    &format!("SELECT {PARAM_COLUMNS} FROM ssm_params WHERE arn = ?1"),
                    [&arn],
                    param_from_row,
                )
                .optional()
                .map_err(backend)?;
            let Some(param) = param else {
                return Ok(None);
            };
            let versions = {
                let mut stmt = tx
                    .prepare_cached(&format!(
                        "SELECT {VERSION_COLUMNS} FROM ssm_versions WHERE param_arn = ?1 \
                         ORDER BY version"
                    ))
                    .map_err(backend)?;
                let rows = stmt.query_map([&arn], version_from_row).map_err(backend)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(backend)?
            };
            tx.commit().map_err(backend)?;
            Ok(Some((param, versions)))
        })
        .await
    }

    async fn params_due_for_expiration(&self, now_ms: i64) -> Result<Vec<ParamRecord>> {
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {PARAM_COLUMNS} FROM ssm_params WHERE expires_ms IS NOT NULL \
                     AND expires_ms <= ?1 ORDER BY expires_ms, arn"
                ))
                .map_err(backend)?;
            let rows = stmt.query_map([now_ms], param_from_row).map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }
}

fn put(
    tx: &Connection,
    p: &ParamRecord,
    versions: &[ParamVersionRecord],
    removed: &[i64],
) -> Result<()> {
    // The row is replaced only at the revision before the one written (see ParamRecord).
    let written = tx
        .execute(
            &format!(
                "INSERT INTO ssm_params ({PARAM_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (arn) DO UPDATE SET expires_ms = excluded.expires_ms, \
                 meta = excluded.meta, revision = excluded.revision \
                 WHERE ssm_params.revision = excluded.revision - 1"
            ),
            params![
                p.arn,
                p.account,
                p.region,
                p.name,
                p.created_ms,
                p.expires_ms,
                p.meta,
                p.revision
            ],
        )
        .map_err(backend)?;
    if written == 0 {
        return Err(StoreError::Conflict);
    }
    {
        let mut stmt = tx
            .prepare_cached(&format!(
                "INSERT INTO ssm_versions ({VERSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (param_arn, version) DO UPDATE SET \
                 modified_ms = excluded.modified_ms, value = excluded.value, meta = excluded.meta"
            ))
            .map_err(backend)?;
        for v in versions {
            stmt.execute(params![
                v.param_arn,
                v.version,
                v.modified_ms,
                v.value,
                v.meta
            ])
            .map_err(backend)?;
        }
    }
    let mut stmt = tx
        .prepare_cached("DELETE FROM ssm_versions WHERE param_arn = ?1 AND version = ?2")
        .map_err(backend)?;
    for version in removed {
        stmt.execute(params![p.arn, version]).map_err(backend)?;
    }
    Ok(())
}

fn delete(tx: &Connection, arn: &str) -> Result<()> {
    tx.execute("DELETE FROM ssm_versions WHERE param_arn = ?1", [arn])
        .map_err(backend)?;
    tx.execute("DELETE FROM ssm_params WHERE arn = ?1", [arn])
        .map_err(backend)?;
    Ok(())
}

fn param_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ParamRecord> {
    Ok(ParamRecord {
        arn: row.get(0)?,
        account: row.get(1)?,
        region: row.get(2)?,
        name: row.get(3)?,
        created_ms: row.get(4)?,
        expires_ms: row.get(5)?,
        meta: row.get(6)?,
        revision: row.get(7)?,
    })
}

fn version_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ParamVersionRecord> {
    Ok(ParamVersionRecord {
        param_arn: row.get(0)?,
        version: row.get(1)?,
        modified_ms: row.get(2)?,
        value: row.get(3)?,
        meta: row.get(4)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const ACCOUNT: &str = "111122223333";
    const REGION: &str = "us-east-1";

    fn param(name: &str, expires_ms: Option<i64>) -> ParamRecord {
        ParamRecord {
            arn: format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{name}"),
            account: ACCOUNT.into(),
            region: REGION.into(),
            name: name.into(),
            created_ms: 1,
            expires_ms,
            meta: "{}".into(),
            revision: 1,
        }
    }

    fn version(p: &ParamRecord, version: i64) -> ParamVersionRecord {
        ParamVersionRecord {
            param_arn: p.arn.clone(),
            version,
            modified_ms: version * 10,
            value: format!("value {version}").into_bytes(),
            meta: "{}".into(),
        }
    }

    fn put(p: &ParamRecord, versions: Vec<ParamVersionRecord>, removed: &[i64]) -> ParamWrite {
        ParamWrite::Put {
            param: p.clone(),
            versions,
            removed_versions: removed.to_vec(),
        }
    }

    #[tokio::test]
    async fn params_and_versions_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db")).unwrap();
        let a = param("a", None);
        let b = param("b/c", Some(500));
        store
            .write_params(&[
                put(&a, vec![version(&a, 1), version(&a, 2)], &[]),
                put(&b, vec![version(&b, 1)], &[]),
            ])
            .await
            .unwrap();
        let (params, versions) = store.load_params(ACCOUNT, REGION).await.unwrap();
        assert_eq!(params, vec![a.clone(), b.clone()]);
        let (other, _) = store.load_params(ACCOUNT, "eu-west-1").await.unwrap();
        assert!(other.is_empty());
        let ids: Vec<(&str, i64)> = versions
            .iter()
            .map(|v| (v.param_arn.as_str(), v.version))
            .collect();
        assert_eq!(
            ids,
            [
                (a.arn.as_str(), 1),
                (a.arn.as_str(), 2),
                (b.arn.as_str(), 1)
            ]
        );

        // Replace version 2, drop version 1, in one write.
        let mut v2 = version(&a, 2);
        v2.meta = "{\"labels\":[\"x\"]}".into();
        let a2 = ParamRecord {
            revision: 2,
            ..a.clone()
        };
        store
            .write_params(&[put(&a2, vec![v2.clone()], &[1])])
            .await
            .unwrap();
        let (_, versions) = store.load_params(ACCOUNT, REGION).await.unwrap();
        assert_eq!(versions.first(), Some(&v2));
        assert_eq!(versions.len(), 2);
        assert_eq!(
            store.load_param(&a.arn).await.unwrap(),
            Some((a2.clone(), vec![v2.clone()]))
        );

        // A write from the revision before (another writer's, decided on what it read then)
        // is refused whole, as is a second creation.
        let stale = store
            .write_params(&[put(&a2, vec![version(&a, 3)], &[])])
            .await;
        assert!(matches!(stale, Err(StoreError::Conflict)), "{stale:?}");
        let again = store.write_params(&[put(&b, vec![], &[])]).await;
        assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
        assert_eq!(
            store.load_param(&a.arn).await.unwrap().unwrap().1,
            vec![v2.clone()]
        );

        assert!(
            store
                .params_due_for_expiration(499)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store.params_due_for_expiration(500).await.unwrap(),
            vec![b.clone()]
        );

        store
            .write_params(&[ParamWrite::Delete { arn: b.arn.clone() }])
            .await
            .unwrap();
        let (params, versions) = store.load_params(ACCOUNT, REGION).await.unwrap();
        assert_eq!(params, vec![a2]);
        assert_eq!(versions.len(), 1);
    }
}
