//! The IAM service (users, access keys, roles, inline policies) and the credentials it
//! issues, which authentication resolves.
//!
//! - [`IamService`] implements the generated [`IamApi`]; each operation family lives in its
//!   own file (`users`, `access_keys`, `roles`, `policies`) as a function taking the
//!   service, the request context and the validated input.
//! - All of IAM is held in memory ([`directory::Directory`]): loaded once at start, changed
//!   only after the store committed (one durable transaction per change, changes serialized
//!   by one write lock). Authentication ([`crate::auth::CredentialSource`]) and
//!   authorization (the principal's compiled identity policies) read only memory.
//! - STS ([`crate::sts`]) issues its sessions through [`IamService::issue_session`].
//! - Every operation authorizes once, through [`crate::authz`] ([`authz`]).
//! - IAM is global: its resources belong to an account, not a region, and ARNs take the
//!   partition of the request's region.

mod access_keys;
mod authz;
pub mod bootstrap;
pub mod credentials;
pub mod directory;
pub mod error;
pub mod names;
mod pagination;
mod policies;
mod roles;
pub mod seed;
mod users;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use keyhold_crypto::seal::DomainKey;
use keyhold_proto::ApiError;
use keyhold_proto::iam::*;
use keyhold_store::{IamWrite, SessionRecord, Store};
use zeroize::Zeroizing;

use crate::auth::{CredentialSource, Lookup};
use crate::clock::Clock;
use crate::context::RequestContext;
use credentials::{SESSION_PURPOSE, Secret};
use directory::{Directory, Session, SessionKind};
use error::IamError;

/// How long an expired session is still recognised (and answered `ExpiredToken`) before
/// it is swept and its id retired.
const EXPIRED_SESSION_GRACE_MS: i64 = 24 * 3600 * 1000;

/// The IAM service of one Keyhold server.
pub struct IamService {
    store: Arc<dyn Store>,
    domain: Arc<DomainKey>,
    clock: Clock,
    directory: RwLock<Directory>,
    /// Moves on with every change to the directory, once it is applied
    /// ([`CredentialSource::version`]).
    version: AtomicU64,
    writes: tokio::sync::Mutex<()>,
}

/// Temporary credentials as STS hands them out.
pub struct IssuedSession {
    pub access_key_id: String,
    pub secret_access_key: Zeroizing<String>,
    pub session_token: Zeroizing<String>,
    pub expires_ms: i64,
}

impl IamService {
    /// Loads every user, role, key and session from the store (unsealing the secrets).
    pub async fn open(
        store: Arc<dyn Store>,
        domain: Arc<DomainKey>,
        clock: Clock,
    ) -> Result<Self, IamError> {
        let snapshot = store.load_iam().await?;
        let directory = Directory::load(snapshot, &domain)?;
        Ok(Self {
            store,
            domain,
            clock,
            directory: RwLock::new(directory),
            version: AtomicU64::new(0),
            writes: tokio::sync::Mutex::new(()),
        })
    }

    /// Reads the directory.
    fn read<T>(&self, f: impl FnOnce(&Directory) -> T) -> Result<T, IamError> {
        let directory = self.directory.read().map_err(|_| IamError::Internal)?;
        Ok(f(&directory))
    }

    /// Writes `writes` durably, then applies `change` to the directory. Callers hold the
    /// write lock ([`Self::writes`]) from their checks until this returns.
    async fn commit(
        &self,
        writes: &[IamWrite],
        change: impl FnOnce(&mut Directory),
    ) -> Result<(), IamError> {
        self.store.write_iam(writes).await?;
        let mut directory = self.directory.write().map_err(|_| IamError::Internal)?;
        change(&mut directory);
        // While the directory is still locked: a lookup that read the old version sees the
        // new directory only after this.
        self.version.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().as_millis()
    }

    /// Creates temporary credentials for `owner_id` (a role id, a user id, or the account
    /// for the root) valid for `duration_s` seconds. The secret is stored sealed; of the
    /// token only its SHA-256.
    pub async fn issue_session(
        &self,
        account: &str,
        owner_id: &str,
        kind: SessionKind,
        duration_s: i64,
    ) -> Result<IssuedSession, IamError> {
        let access_key_id = credentials::session_key_id()?;
        let secret_access_key = credentials::secret_access_key()?;
        let session_token = credentials::session_token()?;
        let sealed_secret = self
            .domain
            .seal_secret(
                SESSION_PURPOSE,
                &access_key_id,
                secret_access_key.as_bytes(),
            )
            .map_err(|_| IamError::Internal)?;
        let now = self.now_ms();
        let record = SessionRecord {
            access_key_id: access_key_id.clone(),
            account: account.to_owned(),
            owner_id: owner_id.to_owned(),
            created_ms: now,
            expires_ms: now.saturating_add(duration_s.saturating_mul(1000)),
            token_sha256: keyhold_crypto::digest::sha256(session_token.as_bytes()).to_vec(),
            sealed_secret,
            meta: directory::encode(&kind),
        };
        let session = Session {
            record: record.clone(),
            kind,
            secret: Arc::new(Secret::new(Zeroizing::new(
                secret_access_key.as_bytes().to_vec(),
            ))),
        };
        let expires_ms = record.expires_ms;
        let _guard = self.writes.lock().await;
        self.commit(&[IamWrite::PutSession(record)], |d| d.put_session(session))
            .await?;
        Ok(IssuedSession {
            access_key_id,
            secret_access_key,
            session_token,
            expires_ms,
        })
    }

    /// Reads the whole directory from the store again (another node changed IAM). Holds the
    /// write lock, so that no change of this node's is lost between the read and the swap.
    pub async fn reload(&self) -> Result<(), IamError> {
        let _guard = self.writes.lock().await;
        let snapshot = self.store.load_iam().await?;
        let directory = Directory::load(snapshot, &self.domain)?;
        let mut current = self.directory.write().map_err(|_| IamError::Internal)?;
        *current = directory;
        // While the directory is still locked, as in `commit`.
        self.version.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// A role by name, for STS.
    pub fn role(
        &self,
        account: &str,
        name: &str,
    ) -> Result<Option<Arc<directory::Role>>, IamError> {
        self.read(|d| d.role(account, name))
    }

    /// Deletes the sessions that expired more than a grace period ago, remembering their ids
    /// as retired. Returns how many it deleted.
    pub async fn sweep_sessions(&self) -> Result<usize, IamError> {
        let before = self.now_ms().saturating_sub(EXPIRED_SESSION_GRACE_MS);
        let _guard = self.writes.lock().await;
        let expired = self.read(|d| d.sessions_expired(before))?;
        if expired.is_empty() {
            return Ok(0);
        }
        let now = self.now_ms();
        let writes: Vec<IamWrite> = expired
            .iter()
            .flat_map(|id| {
                [
                    IamWrite::DeleteSession {
                        access_key_id: id.clone(),
                    },
                    IamWrite::Retire {
                        access_key_id: id.clone(),
                        retired_ms: now,
                    },
                ]
            })
            .collect();
        self.commit(&writes, |d| {
            for id in &expired {
                d.retire_session(id);
            }
        })
        .await?;
        Ok(expired.len())
    }
}

impl CredentialSource for IamService {
    fn lookup(&self, access_key_id: &str, partition: &str) -> Lookup {
        match self.directory.read() {
            Ok(directory) => directory.lookup(access_key_id, partition),
            Err(_) => Lookup::Refused,
        }
    }

    fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }
}

macro_rules! delegate {
    ($($method:ident($input:ty) -> $output:ty => $path:path;)*) => {
        #[async_trait::async_trait]
        impl IamApi for IamService {
            type Context = RequestContext;
            $(
                async fn $method(&self, ctx: &RequestContext, input: $input) -> Result<$output, ApiError> {
                    Ok($path(self, ctx, input).await?)
                }
            )*
        }
    };
}

delegate! {
    create_user(CreateUserRequest) -> CreateUserResponse => users::create_user;
    get_user(GetUserRequest) -> GetUserResponse => users::get_user;
    list_users(ListUsersRequest) -> ListUsersResponse => users::list_users;
    delete_user(DeleteUserRequest) -> () => users::delete_user;
    create_access_key(CreateAccessKeyRequest) -> CreateAccessKeyResponse => access_keys::create_access_key;
    list_access_keys(ListAccessKeysRequest) -> ListAccessKeysResponse => access_keys::list_access_keys;
    update_access_key(UpdateAccessKeyRequest) -> () => access_keys::update_access_key;
    delete_access_key(DeleteAccessKeyRequest) -> () => access_keys::delete_access_key;
    create_role(CreateRoleRequest) -> CreateRoleResponse => roles::create_role;
    get_role(GetRoleRequest) -> GetRoleResponse => roles::get_role;
    list_roles(ListRolesRequest) -> ListRolesResponse => roles::list_roles;
    delete_role(DeleteRoleRequest) -> () => roles::delete_role;
    update_assume_role_policy(UpdateAssumeRolePolicyRequest) -> () => roles::update_assume_role_policy;
    put_user_policy(PutUserPolicyRequest) -> () => policies::put_user_policy;
    get_user_policy(GetUserPolicyRequest) -> GetUserPolicyResponse => policies::get_user_policy;
    delete_user_policy(DeleteUserPolicyRequest) -> () => policies::delete_user_policy;
    list_user_policies(ListUserPoliciesRequest) -> ListUserPoliciesResponse => policies::list_user_policies;
    put_role_policy(PutRolePolicyRequest) -> () => policies::put_role_policy;
    get_role_policy(GetRolePolicyRequest) -> GetRolePolicyResponse => policies::get_role_policy;
    delete_role_policy(DeleteRolePolicyRequest) -> () => policies::delete_role_policy;
    list_role_policies(ListRolePoliciesRequest) -> ListRolePoliciesResponse => policies::list_role_policies;
}

/// The operations this service implements: all of its model's.
pub const SUPPORTED: &[IamOperation] = IamOperation::ALL;
