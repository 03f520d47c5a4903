//! The KMS service: symmetric keys, aliases, tags, key policies, and the cryptographic
//! operations.
//!
//! - [`KmsService`] implements the generated [`KmsApi`] trait; each operation family lives in
//!   its own file (`keys`, `crypto_ops`, `aliases`, `tags`, `policies`, `grants`,
//!   `rotation`) as a
//!   function taking the service, the request context and the validated input.
//! - Keys are cached in memory with their unsealed backing keys and their grants
//!   ([`key::Key`], [`grant::KeyGrants`]), so the cryptographic operations and their
//!   authorization read nothing from the store in steady state. Changes go to the store
//!   first (durably) and then to the cache; they are serialized by one write lock, since
//!   they are rare and each costs an fsync anyway.
//! - Every operation makes exactly one authorization decision through [`authz`] (grants
//!   included); `RetireGrant` is decided by the grant it retires.

mod aliases;
pub mod authz;
mod crypto_ops;
pub mod error;
pub mod grant;
mod grant_token;
mod grants;
pub mod key;
mod keys;
mod managed;
mod pagination;
mod policies;
mod resolve;
mod rotation;
pub mod seed;
mod service_calls;
mod tags;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use keyhold_crypto::MaterialId;
use keyhold_crypto::seal::DomainKey;
use keyhold_crypto::token::TokenKey;
use keyhold_proto::ApiError;
use keyhold_proto::kms::*;
use keyhold_store::{KeyRecord, Store, Tag};

pub use service_calls::{DataKey, Decrypted};

use crate::audit::Auditor;
use crate::clock::Clock;
use crate::context::RequestContext;
use error::KmsError;
use grant::{Grant, KeyGrants};
use key::{Key, KeyAliases, Materials};

/// The KMS service of one Keyhold server.
pub struct KmsService {
    store: Arc<dyn Store>,
    domain: Arc<DomainKey>,
    clock: Clock,
    audit: Arc<dyn Auditor>,
    keys: RwLock<HashMap<String, Arc<Key>>>,
    aliases: RwLock<HashMap<AliasId, String>>,
    writes: tokio::sync::Mutex<()>,
    /// Tags grant tokens; loaded (or created) on first use.
    token_key: tokio::sync::OnceCell<TokenKey>,
    /// Where cache lookups and rotations are counted (`crate::ops::metrics`).
    metrics: std::sync::OnceLock<Arc<crate::ops::metrics::Metrics>>,
}

/// An alias's identity: account, region, name (`alias/...`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct AliasId {
    account: String,
    region: String,
    name: String,
}

impl KmsService {
    pub fn new(
        store: Arc<dyn Store>,
        domain: Arc<DomainKey>,
        clock: Clock,
        audit: Arc<dyn Auditor>,
    ) -> Self {
        Self {
            store,
            domain,
            clock,
            audit,
            keys: RwLock::default(),
            aliases: RwLock::default(),
            writes: tokio::sync::Mutex::new(()),
            token_key: tokio::sync::OnceCell::new(),
            metrics: std::sync::OnceLock::new(),
        }
    }

    /// The key with this id, from the cache or (once) from the store.
    async fn load(&self, key_id: &str) -> Result<Option<Arc<Key>>, KmsError> {
        if let Some(key) = self.cached(key_id) {
            self.note_cache(true);
            return Ok(Some(key));
        }
        self.note_cache(false);
        let Some(record) = self.store.get_key(key_id).await? else {
            return Ok(None);
        };
        let tags = self.store.list_tags(key_id).await?;
        let mut by_id = HashMap::new();
        for m in self.store.materials(key_id).await? {
            let id = MaterialId::from_hex(&m.material_id)
                .ok_or_else(|| corrupt("material id", key_id))?;
            let material = self
                .domain
                .unseal_material(&m.sealed, &record.arn, &id)
                .map_err(|_| corrupt("sealed material", key_id))?;
            by_id.insert(id, Arc::new(material));
        }
        let grants = self
            .store
            .key_grants(key_id)
            .await?
            .into_iter()
            .map(|r| Grant::from_record(r).ok_or_else(|| corrupt("grant", key_id)))
            .collect::<Result<Vec<_>, _>>()?;
        let grants = Arc::new(KeyGrants::new(grants));
        let aliases = self
            .store
            .list_aliases(&record.account, &record.region, Some(key_id))
            .await?
            .into_iter()
            .map(|a| a.name)
            .collect();
        let aliases = Arc::new(KeyAliases::new(aliases));
        let key = Key::from_parts(record, tags, Arc::new(Materials { by_id }), grants, aliases)
            .ok_or_else(|| corrupt("key record", key_id))?;
        Ok(Some(self.cache_put_if_absent(Arc::new(key))))
    }

    fn cached(&self, key_id: &str) -> Option<Arc<Key>> {
        self.keys.read().ok()?.get(key_id).cloned()
    }

    /// Caches a key just read from the store, unless a writer cached one meanwhile: the
    /// cached one is then at least as new (writers go to the store first), and its grants
    /// are the ones writers change, so it wins.
    fn cache_put_if_absent(&self, key: Arc<Key>) -> Arc<Key> {
        match self.keys.write() {
            Ok(mut keys) => keys.entry(key.record.key_id.clone()).or_insert(key).clone(),
            Err(_) => key,
        }
    }

    fn cache_put(&self, key: Arc<Key>) {
        if let Ok(mut keys) = self.keys.write() {
            keys.insert(key.record.key_id.clone(), key);
        }
    }

    fn cache_remove(&self, key_id: &str) {
        if let Ok(mut keys) = self.keys.write() {
            keys.remove(key_id);
        }
        if let Ok(mut aliases) = self.aliases.write() {
            aliases.retain(|_, target| target != key_id);
        }
    }

    fn alias_cached(&self, id: &AliasId) -> Option<String> {
        self.aliases.read().ok()?.get(id).cloned()
    }

    fn alias_cache_put(&self, id: AliasId, key_id: String) {
        if let Ok(mut aliases) = self.aliases.write() {
            aliases.insert(id, key_id);
        }
    }

    fn alias_cache_remove(&self, id: &AliasId) {
        if let Ok(mut aliases) = self.aliases.write() {
            aliases.remove(id);
        }
    }

    /// Applies `change` to a key's record and tags, durably, and caches the result.
    /// Callers hold the write lock.
    async fn update_key(
        &self,
        key: &Key,
        record: KeyRecord,
        tags: Option<Vec<Tag>>,
    ) -> Result<Arc<Key>, KmsError> {
        self.store.update_key(&record).await?;
        let tags = tags.unwrap_or_else(|| key.tags.clone());
        let updated = key.with_record(record, tags).ok_or(KmsError::Internal)?;
        let updated = Arc::new(updated);
        self.cache_put(updated.clone());
        Ok(updated)
    }

    /// Carries out the scheduled deletions that are due. Returns how many keys it deleted.
    pub async fn sweep_deletions(&self) -> Result<usize, KmsError> {
        // Under the write lock, so no CancelKeyDeletion interleaves with a key's deletion;
        // the store re-checks the state in the deleting transaction as well.
        let _guard = self.writes.lock().await;
        let now = self.clock.now().as_millis();
        let mut deleted = 0;
        for key_id in self.store.keys_due_for_deletion(now).await? {
            if self.store.delete_key_if_due(&key_id, now).await? {
                self.cache_remove(&key_id);
                deleted += 1;
                tracing::info!(key_id, "deleted KMS key at the end of its waiting period");
            }
        }
        Ok(deleted)
    }
}

fn corrupt(what: &str, key_id: &str) -> KmsError {
    tracing::error!(key_id, what, "stored KMS key cannot be read");
    KmsError::Internal
}

/// Implements each listed operation by its function, and lists them in [`SUPPORTED`] (the
/// rest answer "unsupported").
macro_rules! delegate {
    ($($op:ident: $method:ident($input:ty) -> $output:ty => $path:path;)*) => {
        #[async_trait::async_trait]
        impl KmsApi for KmsService {
            type Context = RequestContext;
            $(
                async fn $method(&self, ctx: &RequestContext, input: $input) -> Result<$output, ApiError> {
                    Ok($path(self, ctx, input).await?)
                }
            )*
        }

        /// The operations this service implements (the rest answer "unsupported").
        pub const SUPPORTED: &[KmsOperation] = &[$(KmsOperation::$op),*];
    };
}

delegate! {
    CreateKey: create_key(CreateKeyRequest) -> CreateKeyResponse => keys::create_key;
    DescribeKey: describe_key(DescribeKeyRequest) -> DescribeKeyResponse => keys::describe_key;
    ListKeys: list_keys(ListKeysRequest) -> ListKeysResponse => keys::list_keys;
    EnableKey: enable_key(EnableKeyRequest) -> () => keys::enable_key;
    DisableKey: disable_key(DisableKeyRequest) -> () => keys::disable_key;
    ScheduleKeyDeletion: schedule_key_deletion(ScheduleKeyDeletionRequest) -> ScheduleKeyDeletionResponse => keys::schedule_key_deletion;
    CancelKeyDeletion: cancel_key_deletion(CancelKeyDeletionRequest) -> CancelKeyDeletionResponse => keys::cancel_key_deletion;
    UpdateKeyDescription: update_key_description(UpdateKeyDescriptionRequest) -> () => keys::update_key_description;
    CreateAlias: create_alias(CreateAliasRequest) -> () => aliases::create_alias;
    UpdateAlias: update_alias(UpdateAliasRequest) -> () => aliases::update_alias;
    DeleteAlias: delete_alias(DeleteAliasRequest) -> () => aliases::delete_alias;
    ListAliases: list_aliases(ListAliasesRequest) -> ListAliasesResponse => aliases::list_aliases;
    Encrypt: encrypt(EncryptRequest) -> EncryptResponse => crypto_ops::encrypt;
    Decrypt: decrypt(DecryptRequest) -> DecryptResponse => crypto_ops::decrypt;
    ReEncrypt: re_encrypt(ReEncryptRequest) -> ReEncryptResponse => crypto_ops::re_encrypt;
    GenerateDataKey: generate_data_key(GenerateDataKeyRequest) -> GenerateDataKeyResponse => crypto_ops::generate_data_key;
    GenerateDataKeyWithoutPlaintext: generate_data_key_without_plaintext(GenerateDataKeyWithoutPlaintextRequest) -> GenerateDataKeyWithoutPlaintextResponse => crypto_ops::generate_data_key_without_plaintext;
    GenerateRandom: generate_random(GenerateRandomRequest) -> GenerateRandomResponse => crypto_ops::generate_random;
    TagResource: tag_resource(TagResourceRequest) -> () => tags::tag_resource;
    UntagResource: untag_resource(UntagResourceRequest) -> () => tags::untag_resource;
    ListResourceTags: list_resource_tags(ListResourceTagsRequest) -> ListResourceTagsResponse => tags::list_resource_tags;
    GetKeyPolicy: get_key_policy(GetKeyPolicyRequest) -> GetKeyPolicyResponse => policies::get_key_policy;
    PutKeyPolicy: put_key_policy(PutKeyPolicyRequest) -> () => policies::put_key_policy;
    ListKeyPolicies: list_key_policies(ListKeyPoliciesRequest) -> ListKeyPoliciesResponse => policies::list_key_policies;
    CreateGrant: create_grant(CreateGrantRequest) -> CreateGrantResponse => grants::create_grant;
    ListGrants: list_grants(ListGrantsRequest) -> ListGrantsResponse => grants::list_grants;
    ListRetirableGrants: list_retirable_grants(ListRetirableGrantsRequest) -> ListGrantsResponse => grants::list_retirable_grants;
    RetireGrant: retire_grant(RetireGrantRequest) -> () => grants::retire_grant;
    RevokeGrant: revoke_grant(RevokeGrantRequest) -> () => grants::revoke_grant;
    EnableKeyRotation: enable_key_rotation(EnableKeyRotationRequest) -> () => rotation::enable_key_rotation;
    DisableKeyRotation: disable_key_rotation(DisableKeyRotationRequest) -> () => rotation::disable_key_rotation;
    GetKeyRotationStatus: get_key_rotation_status(GetKeyRotationStatusRequest) -> GetKeyRotationStatusResponse => rotation::get_key_rotation_status;
    RotateKeyOnDemand: rotate_key_on_demand(RotateKeyOnDemandRequest) -> RotateKeyOnDemandResponse => rotation::rotate_key_on_demand;
    ListKeyRotations: list_key_rotations(ListKeyRotationsRequest) -> ListKeyRotationsResponse => rotation::list_key_rotations;
}
