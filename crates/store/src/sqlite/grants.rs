//! [`GrantStore`] on SQLite: table `kms_grants` (see the grants migration).

use async_trait::async_trait;
use rusqlite::params;

use super::{SqliteStore, backend};
use crate::grants::{GrantRecord, GrantStore};
use crate::{Result, StoreError};

const GRANT_COLUMNS: &str = "grant_id, key_id, name, grantee_principal, retiring_principal, \
     operations, constraints, issuing_account, creation_ms";

#[async_trait]
impl GrantStore for SqliteStore {
    async fn insert_grant(&self, grant: &GrantRecord) -> Result<()> {
        let g = grant.clone();
        self.write(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO kms_grants ({GRANT_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ),
                params![
                    g.grant_id,
                    g.key_id,
                    g.name,
                    g.grantee_principal,
                    g.retiring_principal,
                    g.operations,
                    g.constraints,
                    g.issuing_account,
                    g.creation_ms
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn delete_grant(&self, key_id: &str, grant_id: &str) -> Result<()> {
        let (key_id, grant_id) = (key_id.to_owned(), grant_id.to_owned());
        self.write(move |c| {
            let n = c
                .execute(
                    "DELETE FROM kms_grants WHERE key_id = ?1 AND grant_id = ?2",
                    params![key_id, grant_id],
                )
                .map_err(backend)?;
            if n == 0 {
                Err(StoreError::NotFound)
            } else {
                Ok(())
            }
        })
        .await
    }

    async fn key_grants(&self, key_id: &str) -> Result<Vec<GrantRecord>> {
        let key_id = key_id.to_owned();
        self.read(move |c| grant_rows(c, &key_id)).await
    }

    async fn retirable_grants(
        &self,
        retiring_principal: &str,
        region: &str,
    ) -> Result<Vec<GrantRecord>> {
        let (principal, region) = (retiring_principal.to_owned(), region.to_owned());
        self.read(move |c| {
            let columns = GRANT_COLUMNS
                .split(", ")
                .map(|col| format!("g.{col}"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {columns} FROM kms_grants g JOIN kms_keys k ON k.key_id = g.key_id \
                     WHERE g.retiring_principal = ?1 AND k.region = ?2 ORDER BY g.grant_id"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![principal, region], grant_from_row)
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }
}

fn grant_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<GrantRecord> {
    Ok(GrantRecord {
        grant_id: row.get(0)?,
        key_id: row.get(1)?,
        name: row.get(2)?,
        grantee_principal: row.get(3)?,
        retiring_principal: row.get(4)?,
        operations: row.get(5)?,
        constraints: row.get(6)?,
        issuing_account: row.get(7)?,
        creation_ms: row.get(8)?,
    })
}

pub(super) fn grant_rows(c: &rusqlite::Connection, key_id: &str) -> Result<Vec<GrantRecord>> {
    let mut stmt = c
        .prepare_cached(&format!(
            "SELECT {GRANT_COLUMNS} FROM kms_grants WHERE key_id = ?1 ORDER BY grant_id"
        ))
        .map_err(backend)?;
    let rows = stmt.query_map([key_id], grant_from_row).map_err(backend)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::KmsStore;
    use crate::records::{KeyRecord, MaterialRecord};

    fn key(key_id: &str, region: &str) -> KeyRecord {
        KeyRecord {
            key_id: key_id.into(),
            account: "111122223333".into(),
            region: region.into(),
            arn: format!("arn:aws:kms:{region}:111122223333:key/{key_id}"),
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
            rotation_period_days: None,
            next_rotation_ms: None,
            state_after_import: None,
            multi_region_primary: None,
        }
    }

    async fn insert_key(store: &SqliteStore, key_id: &str, region: &str) {
        let material = MaterialRecord {
            key_id: key_id.into(),
            material_id: "00".repeat(32),
            sealed: vec![1],
            creation_ms: 1,
            rotation_type: None,
        };
        store
            .insert_key(&key(key_id, region), &material, &[], None)
            .await
            .unwrap();
    }

    fn grant(grant_id: &str, key_id: &str, retiring: Option<&str>) -> GrantRecord {
        GrantRecord {
            grant_id: grant_id.into(),
            key_id: key_id.into(),
            name: None,
            grantee_principal: "arn:aws:iam::444455556666:root".into(),
            retiring_principal: retiring.map(str::to_owned),
            operations: "Decrypt".into(),
            constraints: Some("{}".into()),
            issuing_account: "111122223333".into(),
            creation_ms: 5,
        }
    }

    #[tokio::test]
    async fn grants_round_trip_and_go_with_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db")).unwrap();
        insert_key(&store, "k1", "us-east-1").await;
        insert_key(&store, "k2", "eu-west-1").await;
        let admin = "arn:aws:iam::111122223333:user/admin";
        let (a, b, c) = (
            grant("bb", "k1", Some(admin)),
            grant("aa", "k1", None),
            grant("cc", "k2", Some(admin)),
        );
        for g in [&a, &b, &c] {
            store.insert_grant(g).await.unwrap();
        }
        assert!(matches!(
            store.insert_grant(&a).await,
            Err(StoreError::AlreadyExists)
        ));
        assert_eq!(
            store.key_grants("k1").await.unwrap(),
            vec![b.clone(), a.clone()]
        );
        assert_eq!(
            store.retirable_grants(admin, "us-east-1").await.unwrap(),
            vec![a.clone()]
        );
        assert_eq!(
            store.retirable_grants(admin, "eu-west-1").await.unwrap(),
            vec![c.clone()]
        );

        assert!(matches!(
            store.delete_grant("k2", "aa").await,
            Err(StoreError::NotFound)
        ));
        store.delete_grant("k1", "aa").await.unwrap();
        assert_eq!(store.key_grants("k1").await.unwrap(), vec![a]);

        // Only a key pending deletion and due is deleted.
        assert!(!store.delete_key_if_due("k1", 10).await.unwrap());
        assert_eq!(store.key_grants("k1").await.unwrap().len(), 1);
        let mut pending = key("k1", "us-east-1");
        pending.state = "PendingDeletion".into();
        pending.deletion_ms = Some(10);
        store.update_key(&pending).await.unwrap();
        assert!(!store.delete_key_if_due("k1", 9).await.unwrap());
        assert!(store.delete_key_if_due("k1", 10).await.unwrap());
        assert!(store.key_grants("k1").await.unwrap().is_empty());
        assert_eq!(store.key_grants("k2").await.unwrap(), vec![c]);
    }
}
