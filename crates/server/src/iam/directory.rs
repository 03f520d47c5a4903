//! The in-memory IAM directory: every user, role, inline policy, access key and STS
//! session, with secrets unsealed and policies compiled, so that authentication and
//! authorization read no database.
//!
//! Entities are immutable `Arc`s: a change builds a new value and swaps it in, so a request
//! that resolved a principal keeps a consistent view while a change lands. The directory is
//! changed only by [`super::IamService::commit`], after the store committed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use keyhold_crypto::seal::DomainKey;
use keyhold_policy::{Policy, PolicyKind};
use keyhold_store::{AccessKeyRecord, IamRoleRecord, IamSnapshot, IamUserRecord, SessionRecord};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::credentials::{SECRET_PURPOSE, SESSION_PURPOSE, Secret};
use super::error::IamError;
use super::names::{self, StoredTag};
use crate::auth::{Issued, Lookup, SessionCheck};
use crate::context::{Principal, PrincipalKind};

/// An IAM user.
#[derive(Clone, Debug)]
pub struct User {
    pub record: IamUserRecord,
    pub meta: UserMeta,
    pub policies: Policies,
}

/// What a user row's `meta` holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserMeta {
    #[serde(default)]
    pub tags: Vec<StoredTag>,
}

/// An IAM role.
#[derive(Clone, Debug)]
pub struct Role {
    pub record: IamRoleRecord,
    pub meta: RoleMeta,
    /// The trust policy, compiled.
    pub trust: Arc<Policy>,
    pub policies: Policies,
}

/// What a role row's `meta` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleMeta {
    pub description: Option<String>,
    pub max_session_duration: i32,
    #[serde(default)]
    pub tags: Vec<StoredTag>,
}

/// A user's or role's inline policies: the documents as written, and compiled.
#[derive(Clone, Debug, Default)]
pub struct Policies {
    documents: BTreeMap<String, (String, Arc<Policy>)>,
    compiled: Arc<[Arc<Policy>]>,
}

impl Policies {
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.documents.keys()
    }

    pub fn document(&self, name: &str) -> Option<&str> {
        self.documents.get(name).map(|(text, _)| text.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.documents.is_empty()
    }

    /// The policies as the authorization engine takes them.
    pub fn compiled(&self) -> Arc<[Arc<Policy>]> {
        self.compiled.clone()
    }

    /// The size IAM counts against its quota, with `name` replaced by `document`.
    pub fn size_with(&self, name: &str, document: &str) -> usize {
        let others: usize = self
            .documents
            .iter()
            .filter(|(n, _)| n.as_str() != name)
            .map(|(_, (text, _))| names::policy_size(text))
            .sum();
        others + names::policy_size(document)
    }

    pub fn with(&self, name: &str, document: String, parsed: Arc<Policy>) -> Self {
        let mut documents = self.documents.clone();
        documents.insert(name.to_owned(), (document, parsed));
        Self::from_map(documents)
    }

    pub fn without(&self, name: &str) -> Self {
        let mut documents = self.documents.clone();
        documents.remove(name);
        Self::from_map(documents)
    }

    fn from_map(documents: BTreeMap<String, (String, Arc<Policy>)>) -> Self {
        let compiled = documents.values().map(|(_, p)| p.clone()).collect();
        Self {
            documents,
            compiled,
        }
    }
}

/// An IAM user's access key.
#[derive(Debug)]
pub struct AccessKey {
    pub record: AccessKeyRecord,
    pub secret: Arc<Secret>,
}

impl AccessKey {
    pub fn is_active(&self) -> bool {
        self.record.status == "Active"
    }
}

/// Temporary credentials issued by STS.
#[derive(Debug)]
pub struct Session {
    pub record: SessionRecord,
    pub kind: SessionKind,
    pub secret: Arc<Secret>,
}

/// Whose session it is (a session row's `meta`); the owner id is in the record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum SessionKind {
    /// `AssumeRole`: the owner is the role.
    AssumedRole { session_name: String },
    /// `GetSessionToken` of an IAM user.
    User,
    /// `GetSessionToken` of the account root: the owner is the account.
    Root,
}

/// Everything IAM knows, in memory.
#[derive(Default)]
pub struct Directory {
    users: HashMap<String, Arc<User>>,
    user_names: HashMap<(String, String), String>,
    roles: HashMap<String, Arc<Role>>,
    role_names: HashMap<(String, String), String>,
    keys: HashMap<String, Arc<AccessKey>>,
    sessions: HashMap<String, Arc<Session>>,
    retired: HashSet<String>,
}

impl Directory {
    /// Builds the directory from the store's snapshot, unsealing every secret.
    pub fn load(snapshot: IamSnapshot, domain: &DomainKey) -> Result<Self, IamError> {
        let mut policies: HashMap<String, Policies> = HashMap::new();
        for p in snapshot.policies {
            let parsed = parse_stored(&p.document, PolicyKind::Identity, &p.owner_id)?;
            let entry = policies.entry(p.owner_id.clone()).or_default();
            *entry = entry.with(&p.name, p.document, parsed);
        }
        let mut directory = Directory::default();
        for record in snapshot.users {
            let meta = decode(&record.meta, &record.user_id)?;
            let policies = policies.remove(&record.user_id).unwrap_or_default();
            directory.put_user(User {
                record,
                meta,
                policies,
            });
        }
        for record in snapshot.roles {
            let meta = decode(&record.meta, &record.role_id)?;
            let trust = parse_stored(&record.trust_policy, PolicyKind::Trust, &record.role_id)?;
            let policies = policies.remove(&record.role_id).unwrap_or_default();
            directory.put_role(Role {
                record,
                meta,
                trust,
                policies,
            });
        }
        for record in snapshot.access_keys {
            let secret = unseal(
                domain,
                SECRET_PURPOSE,
                &record.access_key_id,
                &record.sealed_secret,
            )?;
            directory.put_key(AccessKey { record, secret });
        }
        for record in snapshot.sessions {
            let secret = unseal(
                domain,
                SESSION_PURPOSE,
                &record.access_key_id,
                &record.sealed_secret,
            )?;
            let kind = decode(&record.meta, &record.access_key_id)?;
            directory.put_session(Session {
                record,
                kind,
                secret,
            });
        }
        directory.retired.extend(snapshot.retired);
        Ok(directory)
    }

    pub fn user(&self, account: &str, name: &str) -> Option<Arc<User>> {
        let id = self.user_names.get(&names::name_key(account, name))?;
        self.users.get(id).cloned()
    }

    pub fn user_by_id(&self, user_id: &str) -> Option<Arc<User>> {
        self.users.get(user_id).cloned()
    }

    /// The users of an account.
    pub fn users(&self, account: &str) -> Vec<Arc<User>> {
        self.users
            .values()
            .filter(|u| u.record.account == account)
            .cloned()
            .collect()
    }

    pub fn role(&self, account: &str, name: &str) -> Option<Arc<Role>> {
        let id = self.role_names.get(&names::name_key(account, name))?;
        self.roles.get(id).cloned()
    }

    pub fn role_by_id(&self, role_id: &str) -> Option<Arc<Role>> {
        self.roles.get(role_id).cloned()
    }

    /// The roles of an account.
    pub fn roles(&self, account: &str) -> Vec<Arc<Role>> {
        self.roles
            .values()
            .filter(|r| r.record.account == account)
            .cloned()
            .collect()
    }

    pub fn access_key(&self, access_key_id: &str) -> Option<Arc<AccessKey>> {
        self.keys.get(access_key_id).cloned()
    }

    /// A user's access keys, oldest first.
    pub fn access_keys_of(&self, user_id: &str) -> Vec<Arc<AccessKey>> {
        let mut keys: Vec<_> = self
            .keys
            .values()
            .filter(|k| k.record.user_id == user_id)
            .cloned()
            .collect();
        keys.sort_by(|a, b| {
            (a.record.created_ms, &a.record.access_key_id)
                .cmp(&(b.record.created_ms, &b.record.access_key_id))
        });
        keys
    }

    /// Sessions whose expiry is at or before `before_ms`.
    pub fn sessions_expired(&self, before_ms: i64) -> Vec<String> {
        self.sessions
            .values()
            .filter(|s| s.record.expires_ms <= before_ms)
            .map(|s| s.record.access_key_id.clone())
            .collect()
    }

    pub fn put_user(&mut self, user: User) {
        let key = names::name_key(&user.record.account, &user.record.name);
        self.user_names.insert(key, user.record.user_id.clone());
        self.users
            .insert(user.record.user_id.clone(), Arc::new(user));
    }

    pub fn remove_user(&mut self, user_id: &str) {
        if let Some(user) = self.users.remove(user_id) {
            let key = names::name_key(&user.record.account, &user.record.name);
            self.user_names.remove(&key);
        }
    }

    pub fn put_role(&mut self, role: Role) {
        let key = names::name_key(&role.record.account, &role.record.name);
        self.role_names.insert(key, role.record.role_id.clone());
        self.roles
            .insert(role.record.role_id.clone(), Arc::new(role));
    }

    pub fn remove_role(&mut self, role_id: &str) {
        if let Some(role) = self.roles.remove(role_id) {
            let key = names::name_key(&role.record.account, &role.record.name);
            self.role_names.remove(&key);
        }
    }

    pub fn put_key(&mut self, key: AccessKey) {
        self.keys
            .insert(key.record.access_key_id.clone(), Arc::new(key));
    }

    /// Forgets an access key and remembers its id as retired.
    pub fn retire_key(&mut self, access_key_id: &str) {
        self.keys.remove(access_key_id);
        self.retired.insert(access_key_id.to_owned());
    }

    pub fn put_session(&mut self, session: Session) {
        self.sessions
            .insert(session.record.access_key_id.clone(), Arc::new(session));
    }

    /// Forgets a session and remembers its id as retired.
    pub fn retire_session(&mut self, access_key_id: &str) {
        self.sessions.remove(access_key_id);
        self.retired.insert(access_key_id.to_owned());
    }

    /// What authentication needs to know of an access key id: its secret and the principal
    /// it acts as (ARNs in `partition`), with its identity policies as they are now.
    pub fn lookup(&self, access_key_id: &str, partition: &str) -> Lookup {
        if let Some(key) = self.keys.get(access_key_id) {
            if !key.is_active() {
                return Lookup::Refused;
            }
            let Some(user) = self.users.get(&key.record.user_id) else {
                return Lookup::Refused;
            };
            return Lookup::Found(Box::new(Issued {
                secret: key.secret.clone(),
                principal: user_principal(user, partition, access_key_id, false),
                session: None,
            }));
        }
        if let Some(session) = self.sessions.get(access_key_id) {
            let Some(principal) = self.session_principal(session, partition) else {
                return Lookup::Refused;
            };
            let mut token_sha256 = [0u8; 32];
            if session.record.token_sha256.len() != token_sha256.len() {
                return Lookup::Refused;
            }
            token_sha256.copy_from_slice(&session.record.token_sha256);
            return Lookup::Found(Box::new(Issued {
                secret: session.secret.clone(),
                principal,
                session: Some(SessionCheck {
                    token_sha256,
                    expires_ms: session.record.expires_ms,
                }),
            }));
        }
        if self.retired.contains(access_key_id) {
            return Lookup::Refused;
        }
        Lookup::Unknown
    }

    fn session_principal(&self, session: &Session, partition: &str) -> Option<Principal> {
        let record = &session.record;
        let key_id = record.access_key_id.as_str();
        match &session.kind {
            SessionKind::Root => Some(Principal {
                account: record.account.clone(),
                arn: format!("arn:{partition}:iam::{}:root", record.account),
                kind: PrincipalKind::Root,
                access_key_id: Some(key_id.to_owned()),
                temporary_credentials: true,
                identity_policies: Arc::from(Vec::new()),
                tags: Arc::from(Vec::new()),
            }),
            SessionKind::User => {
                let user = self.users.get(&record.owner_id)?;
                Some(user_principal(user, partition, key_id, true))
            }
            SessionKind::AssumedRole { session_name } => {
                let role = self.roles.get(&record.owner_id)?;
                let r = &role.record;
                Some(Principal {
                    account: r.account.clone(),
                    arn: names::assumed_role_arn(partition, &r.account, &r.name, session_name),
                    kind: PrincipalKind::AssumedRole {
                        role_arn: names::role_arn(partition, &r.account, &r.path, &r.name),
                        role_id: r.role_id.clone(),
                        session_name: session_name.clone(),
                    },
                    access_key_id: Some(key_id.to_owned()),
                    temporary_credentials: true,
                    identity_policies: role.policies.compiled(),
                    tags: tag_pairs(&role.meta.tags),
                })
            }
        }
    }
}

fn user_principal(user: &User, partition: &str, key_id: &str, temporary: bool) -> Principal {
    let r = &user.record;
    Principal {
        account: r.account.clone(),
        arn: names::user_arn(partition, &r.account, &r.path, &r.name),
        kind: PrincipalKind::User {
            name: r.name.clone(),
            user_id: r.user_id.clone(),
        },
        access_key_id: Some(key_id.to_owned()),
        temporary_credentials: temporary,
        identity_policies: user.policies.compiled(),
        tags: tag_pairs(&user.meta.tags),
    }
}

fn tag_pairs(tags: &[StoredTag]) -> Arc<[(String, String)]> {
    tags.iter()
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect()
}

fn parse_stored(text: &str, kind: PolicyKind, owner: &str) -> Result<Arc<Policy>, IamError> {
    Policy::parse(text, kind).map(Arc::new).map_err(|e| {
        tracing::error!(owner, error = %e, "a stored IAM policy does not parse");
        IamError::Internal
    })
}

fn decode<T: for<'de> Deserialize<'de>>(meta: &str, id: &str) -> Result<T, IamError> {
    serde_json::from_str(meta).map_err(|e| {
        tracing::error!(id, error = %e, "stored IAM metadata cannot be read");
        IamError::Internal
    })
}

fn unseal(
    domain: &DomainKey,
    purpose: &str,
    id: &str,
    sealed: &[u8],
) -> Result<Arc<Secret>, IamError> {
    let secret = domain.unseal_secret(purpose, id, sealed).map_err(|_| {
        tracing::error!(
            access_key_id = id,
            "a stored secret access key cannot be unsealed"
        );
        IamError::Internal
    })?;
    Ok(Arc::new(Secret::new(Zeroizing::new(
        secret.expose_secret().to_vec(),
    ))))
}

/// Encodes an entity's metadata for the store.
pub fn encode<T: Serialize>(meta: &T) -> String {
    serde_json::to_string(meta).unwrap_or_else(|_| "{}".to_owned())
}
