//! The KMS service: symmetric, asymmetric, HMAC and post-quantum keys, aliases, tags, key
//! policies, grants, rotation, and the cryptographic operations.
//!
//! - [`KmsService`] implements the generated [`KmsApi`] trait; each operation family lives in
//!   its own file (`keys`, `crypto_ops`, `asymmetric_ops`, `aliases`, `tags`, `policies`,
//!   `grants`, `rotation`) as a
//!   function taking the service, the request context and the validated input.
//! - Keys are cached in memory with their unsealed backing keys and their grants
//!   ([`key::Key`], [`grant::KeyGrants`]), so the cryptographic operations and their
//!   authorization read nothing from the store in steady state. Changes go to the store
//!   first (durably) and then to the cache; they are serialized by one write lock, since
//!   they are rare and each costs an fsync anyway.
//! - Every operation makes exactly one authorization decision through [`authz`] (grants
//!   included); `RetireGrant` is decided by the grant it retires.

mod aliases;
mod asymmetric_ops;
pub mod authz;
mod crypto_ops;
pub mod error;
pub mod grant;
mod grant_token;
mod grants;
mod import;
pub mod key;
mod keys;
mod last_usage;
mod managed;
mod pagination;
mod policies;
mod resolve;
mod rotation;
pub mod seed;
mod service_calls;
mod specs;
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
    /// The outstanding import tokens of `GetParametersForImport`, with their wrapping keys.
    import_tokens: import::ImportTokens,
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
            import_tokens: import::ImportTokens::default(),
            metrics: std::sync::OnceLock::new(),
        }
    }

    /// The key with this id, from the cache or (once) from the store.
    async fn load(&self, key_id: &str) -> Result<Option<Arc<Key>>, KmsError> {
        if let Some(key) = self.cached(key_id) {
            self.note_cache(true);
            return Ok(Some(self.apply_import_expiry(key)));
        }
        self.note_cache(false);
        let Some(record) = self.store.get_key(key_id).await? else {
            return Ok(None);
        };
        let tags = self.store.list_tags(key_id).await?;
        let mut materials = self.unseal_materials(&record).await?;
        if record.origin == keyhold_proto::kms::OriginType::External.as_str() {
            materials.imported = self.load_imported(&record, &mut materials.by_id).await?;
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
        let key = Key::from_parts(record, tags, Arc::new(materials), grants, aliases)
            .ok_or_else(|| corrupt("key record", key_id))?;
        Ok(Some(self.apply_import_expiry(
            self.cache_put_if_absent(Arc::new(key)),
        )))
    }

    /// Unseals a stored key's materials: every backing key of a symmetric encryption key, or
    /// the one (parsed) private material of any other key. An RSA key is parsed and checked
    /// here, off the async workers, once per load.
    async fn unseal_materials(&self, record: &KeyRecord) -> Result<Materials, KmsError> {
        let key_id = record.key_id.as_str();
        let spec = KeySpec::parse(&record.key_spec).ok_or_else(|| corrupt("key spec", key_id))?;
        let stored = self.store.materials(key_id).await?;
        if let Some(crypto_spec) = specs::crypto_spec(spec) {
            let usage = KeyUsageType::parse(&record.key_usage)
                .and_then(|u| specs::crypto_use(spec, u))
                .ok_or_else(|| corrupt("key usage", key_id))?;
            let [m] = stored.as_slice() else {
                return Err(corrupt("materials of an asymmetric key", key_id));
            };
            let id = MaterialId::from_hex(&m.material_id)
                .ok_or_else(|| corrupt("material id", key_id))?;
            let domain = self.domain.clone();
            let (sealed, arn) = (m.sealed.clone(), record.arn.clone());
            let private = tokio::task::spawn_blocking(move || {
                domain.unseal_private_key(&sealed, &arn, &id, crypto_spec, usage)
            })
            .await
            .map_err(|_| KmsError::Internal)?
            .map_err(|_| corrupt("sealed private key", key_id))?;
            return Ok(Materials::private(private));
        }
        let mut by_id = HashMap::new();
        for m in stored {
            let id = MaterialId::from_hex(&m.material_id)
                .ok_or_else(|| corrupt("material id", key_id))?;
            let material = self
                .domain
                .unseal_material(&m.sealed, &record.arn, &id)
                .map_err(|_| corrupt("sealed material", key_id))?;
            by_id.insert(id, Arc::new(material));
        }
        Ok(Materials::symmetric(by_id))
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

pub(super) fn corrupt(what: &str, key_id: &str) -> KmsError {
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
    GetParametersForImport: get_parameters_for_import(GetParametersForImportRequest) -> GetParametersForImportResponse => import::get_parameters_for_import;
    ImportKeyMaterial: import_key_material(ImportKeyMaterialRequest) -> ImportKeyMaterialResponse => import::import_key_material;
    DeleteImportedKeyMaterial: delete_imported_key_material(DeleteImportedKeyMaterialRequest) -> DeleteImportedKeyMaterialResponse => import::delete_imported_key_material;
    GetKeyLastUsage: get_key_last_usage(GetKeyLastUsageRequest) -> GetKeyLastUsageResponse => last_usage::get_key_last_usage;
    RotateKeyOnDemand: rotate_key_on_demand(RotateKeyOnDemandRequest) -> RotateKeyOnDemandResponse => rotation::rotate_key_on_demand;
    ListKeyRotations: list_key_rotations(ListKeyRotationsRequest) -> ListKeyRotationsResponse => rotation::list_key_rotations;
    Sign: sign(SignRequest) -> SignResponse => asymmetric_ops::sign;
    Verify: verify(VerifyRequest) -> VerifyResponse => asymmetric_ops::verify;
    GetPublicKey: get_public_key(GetPublicKeyRequest) -> GetPublicKeyResponse => asymmetric_ops::get_public_key;
    GenerateMac: generate_mac(GenerateMacRequest) -> GenerateMacResponse => asymmetric_ops::generate_mac;
    VerifyMac: verify_mac(VerifyMacRequest) -> VerifyMacResponse => asymmetric_ops::verify_mac;
    DeriveSharedSecret: derive_shared_secret(DeriveSharedSecretRequest) -> DeriveSharedSecretResponse => asymmetric_ops::derive_shared_secret;
    Encapsulate: encapsulate(EncapsulateRequest) -> EncapsulateResponse => asymmetric_ops::encapsulate;
    Decapsulate: decapsulate(DecapsulateRequest) -> DecapsulateResponse => asymmetric_ops::decapsulate;
    GenerateDataKeyPair: generate_data_key_pair(GenerateDataKeyPairRequest) -> GenerateDataKeyPairResponse => asymmetric_ops::generate_data_key_pair;
    GenerateDataKeyPairWithoutPlaintext: generate_data_key_pair_without_plaintext(GenerateDataKeyPairWithoutPlaintextRequest) -> GenerateDataKeyPairWithoutPlaintextResponse => asymmetric_ops::generate_data_key_pair_without_plaintext;
}
