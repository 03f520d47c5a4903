//! What IAM and STS keep: users, roles, their inline policies, access keys (secrets sealed),
//! STS sessions (secrets sealed, tokens hashed), and the ids of retired credentials.
//!
//! IAM is small and read on every request, so the service loads all of it once
//! ([`IamStore::load_iam`]) and serves from memory; every change is one durable
//! transaction of [`IamWrite`]s, applied to memory after it commits.

use async_trait::async_trait;

use crate::Result;

/// An IAM user. Names are unique per account, ignoring case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IamUserRecord {
    /// `AIDA…`: the primary key, never reused.
    pub user_id: String,
    pub account: String,
    pub name: String,
    pub path: String,
    pub created_ms: i64,
    /// Tags and the like, encoded by the service. Opaque to the store.
    pub meta: String,
}

/// An IAM role. Names are unique per account, ignoring case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IamRoleRecord {
    /// `AROA…`: the primary key, never reused.
    pub role_id: String,
    pub account: String,
    pub name: String,
    pub path: String,
    pub created_ms: i64,
    /// The trust policy, as the caller wrote it.
    pub trust_policy: String,
    /// Description, maximum session duration, tags: encoded by the service.
    pub meta: String,
}

/// An access key of an IAM user; the secret is sealed under the domain key.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKeyRecord {
    /// `AKIA…`: the primary key.
    pub access_key_id: String,
    pub account: String,
    pub user_id: String,
    /// `Active` or `Inactive`.
    pub status: String,
    pub created_ms: i64,
    pub sealed_secret: Vec<u8>,
}

impl std::fmt::Debug for AccessKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKeyRecord")
            .field("access_key_id", &self.access_key_id)
            .field("account", &self.account)
            .field("user_id", &self.user_id)
            .field("status", &self.status)
            .field("created_ms", &self.created_ms)
            .field(
                "sealed_secret",
                &format_args!("{} bytes", self.sealed_secret.len()),
            )
            .finish()
    }
}

/// An inline policy of a user or a role (its owner).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InlinePolicyRecord {
    /// The user id or role id the policy is embedded in.
    pub owner_id: String,
    pub account: String,
    pub name: String,
    pub document: String,
}

/// Temporary credentials issued by STS. The secret is sealed under the domain key; of the
/// session token only its SHA-256 is kept.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// `ASIA…`: the primary key.
    pub access_key_id: String,
    pub account: String,
    /// Whose session it is: a role id, a user id, or the account id for the root.
    pub owner_id: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub token_sha256: Vec<u8>,
    pub sealed_secret: Vec<u8>,
    /// The kind of session and its name, encoded by the service.
    pub meta: String,
}

impl std::fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRecord")
            .field("access_key_id", &self.access_key_id)
            .field("account", &self.account)
            .field("owner_id", &self.owner_id)
            .field("created_ms", &self.created_ms)
            .field("expires_ms", &self.expires_ms)
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// One change, applied with others in a single transaction by [`IamStore::write_iam`].
#[derive(Clone, Debug)]
pub enum IamWrite {
    /// Inserts or replaces a user; [`crate::StoreError::AlreadyExists`] if another user of
    /// the account has the name (ignoring case).
    PutUser(IamUserRecord),
    DeleteUser {
        user_id: String,
    },
    /// Inserts or replaces a role; [`crate::StoreError::AlreadyExists`] if another role of
    /// the account has the name (ignoring case).
    PutRole(IamRoleRecord),
    DeleteRole {
        role_id: String,
    },
    /// Inserts or replaces an access key.
    PutAccessKey(AccessKeyRecord),
    DeleteAccessKey {
        access_key_id: String,
    },
    /// Inserts or replaces an inline policy.
    PutPolicy(InlinePolicyRecord),
    DeletePolicy {
        owner_id: String,
        name: String,
    },
    PutSession(SessionRecord),
    DeleteSession {
        access_key_id: String,
    },
    /// Remembers that an access key id was deleted or expired, so that it is never taken
    /// for an unknown key again.
    Retire {
        access_key_id: String,
        retired_ms: i64,
    },
    /// Inserts a server-wide value; [`crate::StoreError::AlreadyExists`] if it exists (a
    /// once-only marker, such as the bootstrap administrator's).
    InsertMeta {
        name: String,
        value: Vec<u8>,
    },
}

/// Everything IAM keeps, read as one consistent snapshot.
#[derive(Clone, Debug, Default)]
pub struct IamSnapshot {
    pub users: Vec<IamUserRecord>,
    pub roles: Vec<IamRoleRecord>,
    pub access_keys: Vec<AccessKeyRecord>,
    pub policies: Vec<InlinePolicyRecord>,
    pub sessions: Vec<SessionRecord>,
    /// Ids of deleted access keys and expired sessions.
    pub retired: Vec<String>,
}

/// Users, roles, policies, access keys and sessions.
#[async_trait]
pub trait IamStore: Send + Sync {
    /// Applies `writes` in order, in one durable transaction: all or nothing.
    async fn write_iam(&self, writes: &[IamWrite]) -> Result<()>;
    /// The whole IAM state, every list ordered by its primary key.
    async fn load_iam(&self) -> Result<IamSnapshot>;
}
