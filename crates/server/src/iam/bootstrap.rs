//! The first administrator: an IAM user `admin` in the default account with an
//! `AdministratorAccess` inline policy and one access key, created exactly once per data
//! directory (`keyhold init`, or the first strict-mode start without configured
//! credentials). Its secret is returned to the caller to print once; a marker written in
//! the same transaction makes every later attempt a no-op.

use std::fmt;
use std::sync::Arc;

use keyhold_policy::{Policy, PolicyKind};
use keyhold_store::{AccessKeyRecord, IamUserRecord, IamWrite, InlinePolicyRecord};
use zeroize::Zeroizing;

use super::credentials::{self, SECRET_PURPOSE, Secret};
use super::directory::{AccessKey, Policies, User, UserMeta, encode};
use super::error::IamError;
use super::{IamService, names};

/// The marker of a data directory whose administrator exists.
const MARKER: &str = "iam.bootstrap.v1";
/// The administrator's user name.
pub const ADMIN_USER: &str = "admin";
/// The name of its inline policy.
pub const ADMIN_POLICY_NAME: &str = "AdministratorAccess";
/// Everything, like AWS's `AdministratorAccess` managed policy.
pub const ADMIN_POLICY: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// The administrator's credentials, to show once.
pub struct AdminCredentials {
    pub account: String,
    pub user_arn: String,
    pub access_key_id: String,
    pub secret_access_key: Zeroizing<String>,
}

impl fmt::Debug for AdminCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminCredentials")
            .field("account", &self.account)
            .field("user_arn", &self.user_arn)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[redacted]")
            .finish()
    }
}

impl IamService {
    /// Creates the administrator of `account` unless this data directory already has one
    /// (then `None`: its credentials were shown when it was created, and never again).
    pub async fn bootstrap(&self, account: &str) -> Result<Option<AdminCredentials>, IamError> {
        let _guard = self.writes.lock().await;
        if self.store.get_meta(MARKER).await?.is_some() {
            return Ok(None);
        }
        if self.read(|d| d.user(account, ADMIN_USER).is_some())? {
            tracing::error!(
                account,
                "a user named {ADMIN_USER} exists but was not made by bootstrap"
            );
            return Err(IamError::UserExists {
                name: ADMIN_USER.to_owned(),
            });
        }
        let now = self.now_ms();
        let user_record = IamUserRecord {
            user_id: credentials::user_id()?,
            account: account.to_owned(),
            name: ADMIN_USER.to_owned(),
            path: "/".to_owned(),
            created_ms: now,
            meta: encode(&UserMeta::default()),
        };
        let policy =
            Policy::parse(ADMIN_POLICY, PolicyKind::Identity).map_err(|_| IamError::Internal)?;
        let access_key_id = credentials::access_key_id()?;
        let secret = credentials::secret_access_key()?;
        let sealed_secret = self
            .domain
            .seal_secret(SECRET_PURPOSE, &access_key_id, secret.as_bytes())
            .map_err(|_| IamError::Internal)?;
        let key_record = AccessKeyRecord {
            access_key_id: access_key_id.clone(),
            account: account.to_owned(),
            user_id: user_record.user_id.clone(),
            status: "Active".to_owned(),
            created_ms: now,
            sealed_secret,
        };
        let user_arn = names::user_arn("aws", account, "/", ADMIN_USER);
        let writes = [
            IamWrite::PutUser(user_record.clone()),
            IamWrite::PutPolicy(InlinePolicyRecord {
                owner_id: user_record.user_id.clone(),
                account: account.to_owned(),
                name: ADMIN_POLICY_NAME.to_owned(),
                document: ADMIN_POLICY.to_owned(),
            }),
            IamWrite::PutAccessKey(key_record.clone()),
            IamWrite::InsertMeta {
                name: MARKER.to_owned(),
                value: user_arn.clone().into_bytes(),
            },
        ];
        let user = User {
            record: user_record,
            meta: UserMeta::default(),
            policies: Policies::default().with(
                ADMIN_POLICY_NAME,
                ADMIN_POLICY.to_owned(),
                Arc::new(policy),
            ),
        };
        let key = AccessKey {
            record: key_record,
            secret: Arc::new(Secret::new(Zeroizing::new(secret.as_bytes().to_vec()))),
        };
        self.commit(&writes, |d| {
            d.put_user(user);
            d.put_key(key);
        })
        .await?;
        tracing::info!(user = %user_arn, %access_key_id, "created the bootstrap administrator");
        Ok(Some(AdminCredentials {
            account: account.to_owned(),
            user_arn,
            access_key_id,
            secret_access_key: secret,
        }))
    }
}
