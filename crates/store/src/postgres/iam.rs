//! [`IamStore`] on PostgreSQL: the `iam_*` tables, as the SQLite store's `iam.rs`.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{PgStore, pg, rows, snapshot};
use crate::Result;
use crate::iam::{
    AccessKeyRecord, IamRoleRecord, IamSnapshot, IamStore, IamUserRecord, IamWrite,
    InlinePolicyRecord, SessionRecord,
};

const USER_COLUMNS: &str = "user_id, account, name, path, created_ms, meta";
const ROLE_COLUMNS: &str = "role_id, account, name, path, created_ms, trust_policy, meta";
const KEY_COLUMNS: &str = "access_key_id, account, user_id, status, created_ms, sealed_secret";
const POLICY_COLUMNS: &str = "owner_id, account, name, document";
const SESSION_COLUMNS: &str = "access_key_id, account, owner_id, created_ms, expires_ms, \
     token_sha256, sealed_secret, meta";

#[async_trait]
impl IamStore for PgStore {
    async fn write_iam(&self, writes: &[IamWrite]) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        for write in writes {
            apply(&tx, write).await?;
        }
        self.notify(&tx, &[crate::changes::Change::Iam]).await?;
        tx.commit().await.map_err(pg)
    }

    async fn load_iam(&self) -> Result<IamSnapshot> {
        let mut c = self.client().await?;
        let tx = snapshot(&mut c).await?;
        let select = |sql: String| {
            let tx = &tx;
            async move { tx.query(&sql, &[]).await.map_err(pg) }
        };
        let snapshot = IamSnapshot {
            users: rows(
                select(format!(
                    "SELECT {USER_COLUMNS} FROM iam_users ORDER BY user_id"
                ))
                .await?,
                user_from_row,
            )?,
            roles: rows(
                select(format!(
                    "SELECT {ROLE_COLUMNS} FROM iam_roles ORDER BY role_id"
                ))
                .await?,
                role_from_row,
            )?,
            access_keys: rows(
                select(format!(
                    "SELECT {KEY_COLUMNS} FROM iam_access_keys ORDER BY access_key_id"
                ))
                .await?,
                key_from_row,
            )?,
            policies: rows(
                select(format!(
                    "SELECT {POLICY_COLUMNS} FROM iam_policies ORDER BY owner_id, name"
                ))
                .await?,
                policy_from_row,
            )?,
            sessions: rows(
                select(format!(
                    "SELECT {SESSION_COLUMNS} FROM iam_sessions ORDER BY access_key_id"
                ))
                .await?,
                session_from_row,
            )?,
            retired: rows(
                select(
                    "SELECT access_key_id FROM iam_retired_keys ORDER BY access_key_id".to_owned(),
                )
                .await?,
                |r| r.try_get(0).map_err(pg),
            )?,
        };
        tx.commit().await.map_err(pg)?;
        Ok(snapshot)
    }
}

async fn apply(tx: &impl GenericClient, write: &IamWrite) -> Result<()> {
    match write {
        IamWrite::PutUser(u) => {
            tx.execute(
                "INSERT INTO iam_users (user_id, account, name, name_key, path, created_ms, meta) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (user_id) DO UPDATE SET name = excluded.name, \
                 name_key = excluded.name_key, path = excluded.path, meta = excluded.meta",
                &[
                    &u.user_id,
                    &u.account,
                    &u.name,
                    &u.name.to_lowercase(),
                    &u.path,
                    &u.created_ms,
                    &u.meta,
                ],
            )
            .await
        }
        IamWrite::DeleteUser { user_id } => {
            tx.execute("DELETE FROM iam_users WHERE user_id = $1", &[user_id])
                .await
        }
        IamWrite::PutRole(r) => {
            tx.execute(
                "INSERT INTO iam_roles \
                 (role_id, account, name, name_key, path, created_ms, trust_policy, meta) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (role_id) DO UPDATE SET name = excluded.name, \
                 name_key = excluded.name_key, path = excluded.path, \
                 trust_policy = excluded.trust_policy, meta = excluded.meta",
                &[
                    &r.role_id,
                    &r.account,
                    &r.name,
                    &r.name.to_lowercase(),
                    &r.path,
                    &r.created_ms,
                    &r.trust_policy,
                    &r.meta,
                ],
            )
            .await
        }
        IamWrite::DeleteRole { role_id } => {
            tx.execute("DELETE FROM iam_roles WHERE role_id = $1", &[role_id])
                .await
        }
        IamWrite::PutAccessKey(k) => {
            tx.execute(
                &format!(
                    "INSERT INTO iam_access_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (access_key_id) DO UPDATE SET status = excluded.status"
                ),
                &[
                    &k.access_key_id,
                    &k.account,
                    &k.user_id,
                    &k.status,
                    &k.created_ms,
                    &k.sealed_secret,
                ],
            )
            .await
        }
        IamWrite::DeleteAccessKey { access_key_id } => {
            tx.execute(
                "DELETE FROM iam_access_keys WHERE access_key_id = $1",
                &[access_key_id],
            )
            .await
        }
        IamWrite::PutPolicy(p) => {
            tx.execute(
                &format!(
                    "INSERT INTO iam_policies ({POLICY_COLUMNS}) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (owner_id, name) DO UPDATE SET document = excluded.document"
                ),
                &[&p.owner_id, &p.account, &p.name, &p.document],
            )
            .await
        }
        IamWrite::DeletePolicy { owner_id, name } => {
            tx.execute(
                "DELETE FROM iam_policies WHERE owner_id = $1 AND name = $2",
                &[owner_id, name],
            )
            .await
        }
        IamWrite::PutSession(s) => {
            tx.execute(
                &format!(
                    "INSERT INTO iam_sessions ({SESSION_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                ),
                &[
                    &s.access_key_id,
                    &s.account,
                    &s.owner_id,
                    &s.created_ms,
                    &s.expires_ms,
                    &s.token_sha256,
                    &s.sealed_secret,
                    &s.meta,
                ],
            )
            .await
        }
        IamWrite::DeleteSession { access_key_id } => {
            tx.execute(
                "DELETE FROM iam_sessions WHERE access_key_id = $1",
                &[access_key_id],
            )
            .await
        }
        IamWrite::Retire {
            access_key_id,
            retired_ms,
        } => {
            tx.execute(
                "INSERT INTO iam_retired_keys (access_key_id, retired_ms) VALUES ($1, $2) \
                 ON CONFLICT (access_key_id) DO NOTHING",
                &[access_key_id, retired_ms],
            )
            .await
        }
        IamWrite::InsertMeta { name, value } => {
            tx.execute(
                "INSERT INTO meta (name, value) VALUES ($1, $2)",
                &[name, value],
            )
            .await
        }
    }
    .map(|_| ())
    .map_err(pg)
}

fn user_from_row(row: &Row) -> Result<IamUserRecord> {
    Ok(IamUserRecord {
        user_id: row.try_get(0).map_err(pg)?,
        account: row.try_get(1).map_err(pg)?,
        name: row.try_get(2).map_err(pg)?,
        path: row.try_get(3).map_err(pg)?,
        created_ms: row.try_get(4).map_err(pg)?,
        meta: row.try_get(5).map_err(pg)?,
    })
}

fn role_from_row(row: &Row) -> Result<IamRoleRecord> {
    Ok(IamRoleRecord {
        role_id: row.try_get(0).map_err(pg)?,
        account: row.try_get(1).map_err(pg)?,
        name: row.try_get(2).map_err(pg)?,
        path: row.try_get(3).map_err(pg)?,
        created_ms: row.try_get(4).map_err(pg)?,
        trust_policy: row.try_get(5).map_err(pg)?,
        meta: row.try_get(6).map_err(pg)?,
    })
}

fn key_from_row(row: &Row) -> Result<AccessKeyRecord> {
    Ok(AccessKeyRecord {
        access_key_id: row.try_get(0).map_err(pg)?,
        account: row.try_get(1).map_err(pg)?,
        user_id: row.try_get(2).map_err(pg)?,
        status: row.try_get(3).map_err(pg)?,
        created_ms: row.try_get(4).map_err(pg)?,
        sealed_secret: row.try_get(5).map_err(pg)?,
    })
}

fn policy_from_row(row: &Row) -> Result<InlinePolicyRecord> {
    Ok(InlinePolicyRecord {
        owner_id: row.try_get(0).map_err(pg)?,
        account: row.try_get(1).map_err(pg)?,
        name: row.try_get(2).map_err(pg)?,
        document: row.try_get(3).map_err(pg)?,
    })
}

fn session_from_row(row: &Row) -> Result<SessionRecord> {
    Ok(SessionRecord {
        access_key_id: row.try_get(0).map_err(pg)?,
        account: row.try_get(1).map_err(pg)?,
        owner_id: row.try_get(2).map_err(pg)?,
        created_ms: row.try_get(3).map_err(pg)?,
        expires_ms: row.try_get(4).map_err(pg)?,
        token_sha256: row.try_get(5).map_err(pg)?,
        sealed_secret: row.try_get(6).map_err(pg)?,
        meta: row.try_get(7).map_err(pg)?,
    })
}
