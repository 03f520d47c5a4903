//! [`IamStore`] on SQLite: the `iam_*` tables (migration 4).

use async_trait::async_trait;
use rusqlite::{Connection, params};

use super::{SqliteStore, backend};
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
impl IamStore for SqliteStore {
    async fn write_iam(&self, writes: &[IamWrite]) -> Result<()> {
        let writes = writes.to_vec();
        self.write(move |c| {
            let tx = c.savepoint().map_err(backend)?;
            for write in &writes {
                apply(&tx, write)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn load_iam(&self) -> Result<IamSnapshot> {
        self.read(|c| {
            let tx = c.transaction().map_err(backend)?;
            let snapshot = IamSnapshot {
                users: all(
                    &tx,
                    &format!("SELECT {USER_COLUMNS} FROM iam_users ORDER BY user_id"),
                    user_from_row,
                )?,
                roles: all(
                    &tx,
                    &format!("SELECT {ROLE_COLUMNS} FROM iam_roles ORDER BY role_id"),
                    role_from_row,
                )?,
                access_keys: all(
                    &tx,
                    &format!("SELECT {KEY_COLUMNS} FROM iam_access_keys ORDER BY access_key_id"),
                    key_from_row,
                )?,
                policies: all(
                    &tx,
                    &format!("SELECT {POLICY_COLUMNS} FROM iam_policies ORDER BY owner_id, name"),
                    policy_from_row,
                )?,
                sessions: all(
                    &tx,
                    &format!("SELECT {SESSION_COLUMNS} FROM iam_sessions ORDER BY access_key_id"),
                    session_from_row,
                )?,
                retired: all(
                    &tx,
                    "SELECT access_key_id FROM iam_retired_keys ORDER BY access_key_id",
                    |r| r.get(0),
                )?,
            };
            tx.commit().map_err(backend)?;
            Ok(snapshot)
        })
        .await
    }
}

fn apply(tx: &Connection, write: &IamWrite) -> Result<()> {
    match write {
        IamWrite::PutUser(u) => tx.execute(
            "INSERT INTO iam_users (user_id, account, name, name_key, path, created_ms, meta) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (user_id) DO UPDATE SET name = excluded.name, \
             name_key = excluded.name_key, path = excluded.path, meta = excluded.meta",
            params![
                u.user_id,
                u.account,
                u.name,
                u.name.to_lowercase(),
                u.path,
                u.created_ms,
                u.meta
            ],
        ),
        IamWrite::DeleteUser { user_id } => {
            tx.execute("DELETE FROM iam_users WHERE user_id = ?1", [user_id])
        }
        IamWrite::PutRole(r) => tx.execute(
            "INSERT INTO iam_roles \
             (role_id, account, name, name_key, path, created_ms, trust_policy, meta) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT (role_id) DO UPDATE SET name = excluded.name, \
             name_key = excluded.name_key, path = excluded.path, \
             trust_policy = excluded.trust_policy, meta = excluded.meta",
            params![
                r.role_id,
                r.account,
                r.name,
                r.name.to_lowercase(),
                r.path,
                r.created_ms,
                r.trust_policy,
                r.meta
            ],
        ),
        IamWrite::DeleteRole { role_id } => {
            tx.execute("DELETE FROM iam_roles WHERE role_id = ?1", [role_id])
        }
        IamWrite::PutAccessKey(k) => tx.execute(
            &format!(
                "INSERT INTO iam_access_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (access_key_id) DO UPDATE SET status = excluded.status"
            ),
            params![
                k.access_key_id,
                k.account,
                k.user_id,
                k.status,
                k.created_ms,
                k.sealed_secret
            ],
        ),
        IamWrite::DeleteAccessKey { access_key_id } => tx.execute(
            "DELETE FROM iam_access_keys WHERE access_key_id = ?1",
            [access_key_id],
        ),
        IamWrite::PutPolicy(p) => tx.execute(
            &format!(
                "INSERT INTO iam_policies ({POLICY_COLUMNS}) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (owner_id, name) DO UPDATE SET document = excluded.document"
            ),
            params![p.owner_id, p.account, p.name, p.document],
        ),
        IamWrite::DeletePolicy { owner_id, name } => tx.execute(
            "DELETE FROM iam_policies WHERE owner_id = ?1 AND name = ?2",
            params![owner_id, name],
        ),
        IamWrite::PutSession(s) => tx.execute(
            &format!(
                "INSERT INTO iam_sessions ({SESSION_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ),
            params![
                s.access_key_id,
                s.account,
                s.owner_id,
                s.created_ms,
                s.expires_ms,
                s.token_sha256,
                s.sealed_secret,
                s.meta
            ],
        ),
        IamWrite::DeleteSession { access_key_id } => tx.execute(
            "DELETE FROM iam_sessions WHERE access_key_id = ?1",
            [access_key_id],
        ),
        IamWrite::Retire {
            access_key_id,
            retired_ms,
        } => tx.execute(
            "INSERT INTO iam_retired_keys (access_key_id, retired_ms) VALUES (?1, ?2) \
             ON CONFLICT (access_key_id) DO NOTHING",
            params![access_key_id, retired_ms],
        ),
        IamWrite::InsertMeta { name, value } => tx.execute(
            "INSERT INTO meta (name, value) VALUES (?1, ?2)",
            params![name, value],
        ),
    }
    .map(|_| ())
    .map_err(backend)
}

fn all<T>(
    tx: &Connection,
    sql: &str,
    map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = tx.prepare(sql).map_err(backend)?;
    let rows = stmt.query_map([], map).map_err(backend)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
}

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<IamUserRecord> {
    Ok(IamUserRecord {
        user_id: row.get(0)?,
        account: row.get(1)?,
        name: row.get(2)?,
        path: row.get(3)?,
        created_ms: row.get(4)?,
        meta: row.get(5)?,
    })
}

fn role_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<IamRoleRecord> {
    Ok(IamRoleRecord {
        role_id: row.get(0)?,
        account: row.get(1)?,
        name: row.get(2)?,
        path: row.get(3)?,
        created_ms: row.get(4)?,
        trust_policy: row.get(5)?,
        meta: row.get(6)?,
    })
}

fn key_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AccessKeyRecord> {
    Ok(AccessKeyRecord {
        access_key_id: row.get(0)?,
        account: row.get(1)?,
        user_id: row.get(2)?,
        status: row.get(3)?,
        created_ms: row.get(4)?,
        sealed_secret: row.get(5)?,
    })
}

fn policy_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<InlinePolicyRecord> {
    Ok(InlinePolicyRecord {
        owner_id: row.get(0)?,
        account: row.get(1)?,
        name: row.get(2)?,
        document: row.get(3)?,
    })
}

fn session_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        access_key_id: row.get(0)?,
        account: row.get(1)?,
        owner_id: row.get(2)?,
        created_ms: row.get(3)?,
        expires_ms: row.get(4)?,
        token_sha256: row.get(5)?,
        sealed_secret: row.get(6)?,
        meta: row.get(7)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::StoreError;

    fn user(id: &str, name: &str) -> IamUserRecord {
        IamUserRecord {
            user_id: id.into(),
            account: "111122223333".into(),
            name: name.into(),
            path: "/".into(),
            created_ms: 1,
            meta: "{}".into(),
        }
    }

    fn key(id: &str, user_id: &str) -> AccessKeyRecord {
        AccessKeyRecord {
            access_key_id: id.into(),
            account: "111122223333".into(),
            user_id: user_id.into(),
            status: "Active".into(),
            created_ms: 2,
            sealed_secret: vec![1, 2, 3],
        }
    }

    #[tokio::test]
    async fn iam_state_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db")).unwrap();
        let alice = user("AIDA1", "Alice");
        let policy = InlinePolicyRecord {
            owner_id: "AIDA1".into(),
            account: "111122223333".into(),
            name: "p".into(),
            document: "{}".into(),
        };
        store
            .write_iam(&[
                IamWrite::PutUser(alice.clone()),
                IamWrite::PutAccessKey(key("AKIA1", "AIDA1")),
                IamWrite::PutPolicy(policy.clone()),
            ])
            .await
            .unwrap();
        let snapshot = store.load_iam().await.unwrap();
        assert_eq!(snapshot.users, vec![alice]);
        assert_eq!(snapshot.access_keys, vec![key("AKIA1", "AIDA1")]);
        assert_eq!(snapshot.policies, vec![policy]);

        // Names are unique per account ignoring case; a failed transaction changes nothing.
        let e = store
            .write_iam(&[
                IamWrite::PutPolicy(InlinePolicyRecord {
                    owner_id: "AIDA1".into(),
                    account: "111122223333".into(),
                    name: "q".into(),
                    document: "{}".into(),
                }),
                IamWrite::PutUser(user("AIDA2", "ALICE")),
            ])
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::AlreadyExists));
        assert_eq!(store.load_iam().await.unwrap().policies.len(), 1);

        store
            .write_iam(&[
                IamWrite::DeleteAccessKey {
                    access_key_id: "AKIA1".into(),
                },
                IamWrite::Retire {
                    access_key_id: "AKIA1".into(),
                    retired_ms: 3,
                },
                IamWrite::DeletePolicy {
                    owner_id: "AIDA1".into(),
                    name: "p".into(),
                },
                IamWrite::DeleteUser {
                    user_id: "AIDA1".into(),
                },
            ])
            .await
            .unwrap();
        let snapshot = store.load_iam().await.unwrap();
        assert!(snapshot.users.is_empty() && snapshot.access_keys.is_empty());
        assert_eq!(snapshot.retired, vec!["AKIA1".to_owned()]);
    }

    #[tokio::test]
    async fn meta_markers_insert_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db")).unwrap();
        let mark = || IamWrite::InsertMeta {
            name: "m".into(),
            value: b"1".to_vec(),
        };
        store.write_iam(&[mark()]).await.unwrap();
        assert!(matches!(
            store.write_iam(&[mark()]).await.unwrap_err(),
            StoreError::AlreadyExists
        ));
    }
}
