//! Access keys with fixed ids and secrets from a seed file (`keyhold serve --seed`), and
//! forgetting every identity when the state is reset (`POST /_keyhold/reset`). Dev-mode
//! tools for test suites; see `crate::ops`.

use std::sync::Arc;

use keyhold_proto::iam::StatusType;
use keyhold_store::{AccessKeyRecord, IamWrite};
use zeroize::Zeroizing;

use super::IamService;
use super::credentials::{SECRET_PURPOSE, Secret};
use super::directory::{AccessKey, Directory};

/// Why a seeded access key was refused.
#[derive(Debug, thiserror::Error)]
pub enum SeedKeyError {
    #[error("user {0} does not exist")]
    NoSuchUser(String),
    #[error(
        "access key id {0:?} must be 16 to 128 upper-case letters and digits, and not start with ASIA (temporary credentials)"
    )]
    BadId(String),
    #[error("the secret of access key {0} must be at least 16 characters")]
    ShortSecret(String),
    #[error("access key {0} belongs to another user")]
    OtherUser(String),
    #[error("user {0} would have more than 2 access keys")]
    TooMany(String),
    #[error("storing access key {0} failed: {1:?}")]
    Store(String, super::error::IamError),
}

impl IamService {
    /// Gives the user `name` of `account` the access key `id` with `secret`, unless it has
    /// it already (a restart with the same seed file). Returns whether it created the key.
    pub async fn seed_access_key(
        &self,
        account: &str,
        name: &str,
        id: &str,
        secret: &str,
    ) -> Result<bool, SeedKeyError> {
        let well_formed = (16..=128).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            && !id.starts_with("ASIA");
        if !well_formed {
            return Err(SeedKeyError::BadId(id.to_owned()));
        }
        if secret.len() < 16 {
            return Err(SeedKeyError::ShortSecret(id.to_owned()));
        }
        let store_error = |e| SeedKeyError::Store(id.to_owned(), e);
        let _guard = self.writes.lock().await;
        let (user, existing) = self
            .read(|d| (d.user(account, name), d.access_key(id)))
            .map_err(store_error)?;
        let user = user.ok_or_else(|| SeedKeyError::NoSuchUser(name.to_owned()))?;
        if let Some(existing) = existing {
            return if existing.record.user_id == user.record.user_id {
                Ok(false)
            } else {
                Err(SeedKeyError::OtherUser(id.to_owned()))
            };
        }
        let count = self
            .read(|d| d.access_keys_of(&user.record.user_id).len())
            .map_err(store_error)?;
        if count >= 2 {
            return Err(SeedKeyError::TooMany(name.to_owned()));
        }
        let sealed_secret = self
            .domain
            .seal_secret(SECRET_PURPOSE, id, secret.as_bytes())
            .map_err(|_| store_error(super::error::IamError::Internal))?;
        let record = AccessKeyRecord {
            access_key_id: id.to_owned(),
            account: account.to_owned(),
            user_id: user.record.user_id.clone(),
            status: StatusType::Active.as_str().to_owned(),
            created_ms: self.now_ms(),
            sealed_secret,
        };
        let key = AccessKey {
            record: record.clone(),
            secret: Arc::new(Secret::new(Zeroizing::new(secret.as_bytes().to_vec()))),
        };
        self.commit(&[IamWrite::PutAccessKey(record)], |d| d.put_key(key))
            .await
            .map_err(store_error)?;
        Ok(true)
    }

    /// Waits for the writers of this service and keeps them out while the guard lives.
    pub(crate) async fn lock_writes(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writes.lock().await
    }

    /// Forgets every user, role, access key and session (the store has been erased). The
    /// caller holds [`Self::lock_writes`].
    pub(crate) fn forget_all(&self) {
        if let Ok(mut directory) = self.directory.write() {
            *directory = Directory::default();
            self.version
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}
