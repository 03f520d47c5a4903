//! The KMS service: symmetric, asymmetric, HMAC and post-quantum keys, aliases, tags, key
//! policies, grants, rotation, and the cryptographic operations.
//!
//! - [`KmsService`] implements the generated [`KmsApi`] trait; each operation family lives in
//!   its own file (`keys`, `crypto_ops`, `asymmetric_ops`, `aliases`, `tags`, `policies`,
//!   `grants`, `rotation`, `custom_key_stores`) as a
//!   function taking the service, the request context and the validated input.
//! - Keys are cached in memory with their unsealed backing keys and their grants
//!   ([`key::Key`], [`grant::KeyGrants`]), by their 16-byte id, so the cryptographic
//!   operations and their authorization read nothing from the store in steady state. The
//!   cache is bounded (`[cache] kms_keys`, CLOCK eviction, [`crate::cache`]): an evicted key
//!   is read and unsealed again on its next use. Key ids the store does not have are
//!   remembered too (a bounded negative cache), so a stream of requests naming a missing
//!   key costs no store read each.
//! - Changes go to the store first (durably) and then to the cache, under the service's
//!   write lock ([`WriteLocks`]): `CreateKey` takes none (its key id is new and random),
//!   every other write locks the whole service. The locks count writes: a key (or a missing
//!   key, or an alias) read from the store is cached only if no write ran while it was read,
//!   so the cache never holds anything older than the store, and every write (a key created
//!   or imported included) forgets the negative cache.
//! - Every operation makes exactly one authorization decision through [`authz`] (grants
//!   included); `RetireGrant` is decided by the grant it retires.

mod aliases;
mod asymmetric_ops;
pub mod authz;
mod crypto_ops;
mod custom_key_stores;
pub mod error;
pub mod grant;
mod grant_token;
mod grants;
mod import;
pub mod key;
mod keys;
mod last_usage;
mod managed;
pub mod multi_region;
mod pagination;
mod policies;
mod resolve;
mod rotation;
pub mod seed;
mod service_calls;
mod shared_policy;
mod specs;
mod tags;

use std::collections::HashMap;
use std::sync::Arc;

use keyhold_crypto::seal::DomainKey;
use keyhold_crypto::token::TokenKey;
use keyhold_crypto::{KeyId, MaterialId};
use keyhold_proto::ApiError;
use keyhold_proto::kms::*;
use keyhold_store::{KeyRecord, KeySnapshot, MaterialRecord, Store, Tag};

use crate::write_locks::WriteLocks;

pub use service_calls::{DataKey, Decrypted};

use crate::audit::Auditor;
use crate::audit::source::LookupSource;
use crate::cache::BoundedCache;
use crate::clock::Clock;
use crate::context::RequestContext;
use error::KmsError;
use grant::{Grant, KeyGrants};
use key::{Key, KeyAliases, Materials, parse_key_uuid};

/// Key ids remembered as missing from the store, at most.
const UNKNOWN_KEYS_CACHED: usize = 10_000;

/// The KMS service of one Keyhold server.
pub struct KmsService {
    store: Arc<dyn Store>,
    domain: Arc<DomainKey>,
    clock: Clock,
    audit: Arc<dyn Auditor>,
    /// The cached keys, by id (bounded).
    keys: BoundedCache<KeyId, Arc<Key>>,
    /// The cached rows of multi-Region keys, by storage id (`mrk-<hex>:<region>`: one key id
    /// has a row in each region it is replicated to), bounded likewise.
    regional: BoundedCache<String, Arc<Key>>,
    /// Key ids the store did not have, with the write generation ([`WriteLocks`]) at which
    /// that was read: valid while the generation is unchanged.
    unknown: BoundedCache<KeyId, u64>,
    /// Alias targets (key ids), by alias (bounded like the keys).
    aliases: BoundedCache<AliasId, String>,
    writes: WriteLocks,
    /// Tags grant tokens; loaded (or created) on first use.
    token_key: tokio::sync::OnceCell<TokenKey>,
    /// Where cache lookups and rotations are counted (`crate::ops::metrics`).
    metrics: std::sync::OnceLock<Arc<crate::ops::metrics::Metrics>>,
    /// The request quotas, when they are on: the cryptographic operations are admitted here,
    /// once their `KeyId` is decoded.
    quotas: std::sync::OnceLock<Arc<crate::ops::quotas::Quotas>>,
    /// Where `GetKeyLastUsage` finds a key's last use: this node's trail, or on a PostgreSQL
    /// store the nodes' shared lookup index (the last use through any node).
    lookups: Arc<LookupSource>,
    /// The configured tokens of custom key stores, and the stores this process connected.
    custom_key_stores: custom_key_stores::CustomKeyStores,
}

/// An alias's identity: account, region, name (`alias/...`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct AliasId {
    account: String,
    region: String,
    name: String,
}

impl KmsService {
    /// `cached_keys`: how many keys (and aliases) the caches hold at most.
    pub fn new(
        store: Arc<dyn Store>,
        domain: Arc<DomainKey>,
        clock: Clock,
        audit: Arc<dyn Auditor>,
        lookups: Arc<LookupSource>,
        cached_keys: usize,
    ) -> Self {
        Self {
            store,
            domain,
            clock,
            audit,
            lookups,
            keys: BoundedCache::new(cached_keys),
            regional: BoundedCache::new(cached_keys),
            unknown: BoundedCache::new(UNKNOWN_KEYS_CACHED),
            aliases: BoundedCache::new(cached_keys),
            writes: WriteLocks::new(),
            token_key: tokio::sync::OnceCell::new(),
            metrics: std::sync::OnceLock::new(),
            quotas: std::sync::OnceLock::new(),
            custom_key_stores: custom_key_stores::CustomKeyStores::default(),
        }
    }

    /// Admits the cryptographic operations under the quotas from now on.
    pub fn attach_quotas(&self, quotas: Arc<crate::ops::quotas::Quotas>) {
        let _ = self.quotas.set(quotas);
    }

    /// Takes a request of `operation` from the shared cryptographic quota of the class of
    /// key `named` names (symmetric when it names none or a key not in memory: the quota is
    /// decided without a store read), or answers `ThrottlingException`.
    fn admit_crypto(
        &self,
        ctx: &RequestContext,
        operation: KmsOperation,
        named: Option<&str>,
    ) -> Result<(), ApiError> {
        use crate::ops::quotas::{KeyClass, depends_on_key};
        let Some(quotas) = self.quotas.get() else {
            return Ok(());
        };
        if !depends_on_key(keyhold_proto::route::Operation::Kms(operation)) {
            return Ok(());
        }
        let class = || {
            named
                .and_then(|id| self.key_spec_hint(ctx, id))
                .map_or(KeyClass::Symmetric, |spec| KeyClass::of_spec(spec.as_str()))
        };
        quotas.admit(ctx, class, self.metrics.get().map(|m| &**m))
    }

    /// The key with this id (text form), from the cache or from the store.
    async fn load(&self, key_id: &str) -> Result<Option<Arc<Key>>, KmsError> {
        match parse_key_uuid(key_id) {
            Some(id) => self.load_id(id).await,
            None if multi_region::is_storage_id(key_id) => self.load_regional(key_id).await,
            // Every other key has a UUID id: anything else names no key.
            None => Ok(None),
        }
    }

    /// The key with this id, from the cache or (then cached) from the store.
    async fn load_id(&self, id: KeyId) -> Result<Option<Arc<Key>>, KmsError> {
        if let Some(key) = self.keys.get(&id) {
            self.note_cache(true);
            return Ok(Some(self.apply_import_expiry(key)));
        }
        let generation = self.writes.generation();
        if self.unknown.get(&id) == Some(generation) && generation.is_multiple_of(2) {
            self.note_cache(true);
            return Ok(None);
        }
        self.note_cache(false);
        let key_id = key::format_key_uuid(&id);
        // Everything about the key from one read transaction: read piecemeal, a concurrent
        // write (the import-expiry sweep, a rotation) could be seen half-done.
        let Some(snapshot) = self.store.key_snapshot(&key_id).await? else {
            self.unknown
                .get_or_insert_if(id, generation, || self.writes.quiet_since(generation));
            return Ok(None);
        };
        let key = self.key_from_snapshot(&key_id, snapshot).await?;
        // Cached unless a writer ran meanwhile (what was read may then be older than what
        // the writer cached), or another reader cached it first (then that one is used:
        // grants change in place on the cached key).
        Ok(Some(self.keys.get_or_insert_if(id, key, || {
            self.writes.quiet_since(generation)
        })))
    }

    /// The row of a multi-Region key in one region (`mrk-<hex>:<region>`, see
    /// [`multi_region`]), from the cache or (then cached) from the store. Missing ones are
    /// not remembered: the negative cache is keyed by the 16-byte id alone.
    async fn load_regional(&self, storage_id: &str) -> Result<Option<Arc<Key>>, KmsError> {
        if let Some(key) = self.regional.get(storage_id) {
            self.note_cache(true);
            return Ok(Some(self.apply_import_expiry(key)));
        }
        let generation = self.writes.generation();
        self.note_cache(false);
        let Some(snapshot) = self.store.key_snapshot(storage_id).await? else {
            return Ok(None);
        };
        let key = self.key_from_snapshot(storage_id, snapshot).await?;
        Ok(Some(self.regional.get_or_insert_if(
            storage_id.to_owned(),
            key,
            || self.writes.quiet_since(generation),
        )))
    }

    /// Builds the in-memory key (materials unsealed) from what one read transaction saw.
    async fn key_from_snapshot(
        &self,
        key_id: &str,
        snapshot: KeySnapshot,
    ) -> Result<Arc<Key>, KmsError> {
        let KeySnapshot {
            record,
            tags,
            materials: stored,
            imported,
            grants,
            aliases,
        } = snapshot;
        let mut materials = if record.origin == keyhold_proto::kms::OriginType::External.as_str() {
            // Imported material only (none in `stored`).
            let mut materials = Materials::default();
            self.unseal_imported(&record, imported, &mut materials)?;
            materials
        } else {
            self.unseal_materials(&record, stored).await?
        };
        if record.origin == keyhold_proto::kms::OriginType::AwsCloudhsm.as_str() {
            // Outside the snapshot: a key never changes its custom key store.
            materials.custom_key_store = Some(
                self.store
                    .key_custom_key_store(key_id)
                    .await?
                    .ok_or_else(|| corrupt("custom key store of a key", key_id))?,
            );
        }
        let grants = grants
            .into_iter()
            .map(|r| Grant::from_record(r).ok_or_else(|| corrupt("grant", key_id)))
            .collect::<Result<Vec<_>, _>>()?;
        let grants = Arc::new(KeyGrants::new(grants));
        let aliases = Arc::new(KeyAliases::new(
            aliases.into_iter().map(|a| a.name).collect(),
        ));
        let key = Key::from_parts(record, tags, Arc::new(materials), grants, aliases)
            .ok_or_else(|| corrupt("key record", key_id))?;
        Ok(self.expired_view(Arc::new(key)).unwrap_or_else(|key| key))
    }

    /// Unseals a stored key's materials: every backing key of a symmetric encryption key, or
    /// the one (parsed) private material of any other key. An RSA key is parsed and checked
    /// here, off the async workers, once per load.
    async fn unseal_materials(
        &self,
        record: &KeyRecord,
        stored: Vec<MaterialRecord>,
    ) -> Result<Materials, KmsError> {
        let key_id = record.key_id.as_str();
        if let Some((crypto_spec, usage)) = specs::stored_private_spec(record)? {
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

    /// A cached key by its stored id (a UUID, or a multi-Region key's `mrk-<hex>:<region>`).
    fn cached(&self, key_id: &str) -> Option<Arc<Key>> {
        if multi_region::is_storage_id(key_id) {
            return self.regional.get(key_id);
        }
        self.keys.get(&parse_key_uuid(key_id)?)
    }

    /// Caches a key a writer (holding the write lock) just stored.
    fn cache_put(&self, key: Arc<Key>) {
        if multi_region::is_storage_id(&key.record.key_id) {
            self.regional.insert(key.record.key_id.clone(), key);
        } else {
            self.keys.insert(key.id, key);
        }
    }

    fn cache_remove(&self, key_id: &str) {
        if let Some(id) = parse_key_uuid(key_id) {
            self.keys.remove(&id);
        }
        if multi_region::is_storage_id(key_id) {
            self.regional.remove(key_id);
        }
        self.aliases.retain(|_, target| target != key_id);
    }

    fn alias_cached(&self, id: &AliasId) -> Option<String> {
        self.aliases.get(id)
    }

    /// Caches an alias a writer (holding the write lock) just stored.
    fn alias_cache_put(&self, id: AliasId, key_id: String) {
        self.aliases.insert(id, key_id);
    }

    /// Caches an alias read from the store when the write generation was `generation`,
    /// unless a writer ran since.
    fn alias_cache_loaded(&self, id: AliasId, key_id: String, generation: u64) {
        self.aliases
            .get_or_insert_if(id, key_id, || self.writes.quiet_since(generation));
    }

    fn alias_cache_remove(&self, id: &AliasId) {
        self.aliases.remove(id);
    }

    /// Applies `change` to a key's record and tags, durably, and caches the result.
    /// Callers hold the write lock.
    async fn update_key(
        &self,
        key: &Key,
        record: KeyRecord,
        tags: Option<Vec<Tag>>,
    ) -> Result<Arc<Key>, KmsError> {
        // Only over the record this change was decided on: another node's change of the
        // same key in between is not overwritten (this node forgets the key, and the
        // dispatch decides the request again on the record as it is then).
        if let Err(e) = self.store.update_key_from(&key.record, &record).await {
            if matches!(e, keyhold_store::StoreError::Conflict) {
                self.forget_key(&record.key_id);
            }
            return Err(e.into());
        }
        let tags = tags.unwrap_or_else(|| key.tags.clone());
        let updated = key.with_record(record, tags).ok_or(KmsError::Internal)?;
        let updated = Arc::new(updated);
        self.cache_put(updated.clone());
        Ok(updated)
    }

    /// Forgets a key another node changed (and the aliases cached as pointing to it); it is
    /// read from the store again on its next use.
    pub fn forget_key(&self, key_id: &str) {
        self.writes.note_write();
        self.cache_remove(key_id);
    }

    /// Forgets an alias another node created, moved or deleted.
    pub fn forget_alias(&self, account: &str, region: &str, name: &str) {
        self.writes.note_write();
        self.alias_cache_remove(&AliasId {
            account: account.to_owned(),
            region: region.to_owned(),
            name: name.to_owned(),
        });
    }

    /// Forgets (another node may have changed anything) every cached key, alias and missing key id.
    pub fn forget_everything(&self) {
        self.writes.note_write();
        self.keys.clear();
        self.regional.clear();
        self.aliases.clear();
        self.unknown.clear();
    }

    /// Carries out the scheduled deletions that are due. Returns how many keys it deleted.
    pub async fn sweep_deletions(&self) -> Result<usize, KmsError> {
        // Under the write lock, so no CancelKeyDeletion interleaves with a key's deletion;
        // the store re-checks the state in the deleting transaction as well.
        let _guard = self.writes.lock().await;
        let now = self.clock.now().as_millis();
        let mut deleted = 0;
        for key_id in self.store.keys_due_for_deletion(now).await? {
            if multi_region::is_storage_id(&key_id)
                && !self.before_regional_deletion(&key_id).await?
            {
                continue;
            }
            let custom_key_store = self.store.key_custom_key_store(&key_id).await?;
            if self.store.delete_key_if_due(&key_id, now).await? {
                self.cache_remove(&key_id);
                if let Some(store_id) = custom_key_store {
                    custom_key_stores::destroy_token_key(self, &key_id, &store_id).await;
                }
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

/// The `KeyId` of a request, for the quota of the class of key it uses (`None`: the request
/// names no key, and counts as symmetric, as the blob of a symmetric `Decrypt` names it).
macro_rules! named_key {
    (Decrypt, $input:ident) => {
        $input.key_id.as_deref()
    };
    (Encrypt, $input:ident) => {
        Some($input.key_id.as_str())
    };
    (GenerateDataKey, $input:ident) => {
        Some($input.key_id.as_str())
    };
    (GenerateDataKeyWithoutPlaintext, $input:ident) => {
        Some($input.key_id.as_str())
    };
    (GenerateMac, $input:ident) => {
        Some($input.key_id.as_str())
    };
    (VerifyMac, $input:ident) => {
        Some($input.key_id.as_str())
    };
    (Sign, $input:ident) => {
        Some($input.key_id.as_str())
    };
    (Verify, $input:ident) => {
        Some($input.key_id.as_str())
    };
    (DeriveSharedSecret, $input:ident) => {
        Some($input.key_id.as_str())
    };
    ($other:ident, $input:ident) => {
        None
    };
}

/// Runs an operation. Those that write a key record decided on the record they read
/// ([`KmsService::update_key`], a rotation, `UpdatePrimaryRegion`), and those that move or
/// delete an alias decided on its target then, are decided again when another node changed
/// that record in between (see [`crate::write_locks::retry_conflicts`]).
macro_rules! run {
    (EnableKey, $kms:ident, $ctx:ident, $input:ident, $path:path) => {
        run!(@again $kms, $ctx, $input, $path)
    };
    (DisableKey, $kms:ident, $ctx:ident, $input:ident, $path:path) => {
        run!(@again $kms, $ctx, $input, $path)
    };
    (ScheduleKeyDeletion, $kms:ident, $ctx:ident, $input:ident, $path:path) => {
        run!(@again $kms, $ctx, $input, $path)
    };
    (CancelKeyDeletion, $kms:ident, $ctx:ident, $input:ident, $path:path) => {
        run!(@again $kms, $ctx, $input, $path)
    };
    (UpdateKeyDescription, $kms:ident, $ctx:ident, $input:ident, $path:path) => {
        run!(@again $kms, $ctx, $input, $path)
    };
    (PutKeyPolicy, $kms:ident, $ctx:ident, $input:ident, $path:path) => {
        run!(@again $kms, $ctx, $input, $path)
    };
    (EnableKeyRotation, $kms:ident, $ctx:ident, $input:ident, $path:path) => {
        run!(@again $kms, $ctx, $input, $path)
    };
    (DisableKeyRotation, $kms:ident, $ctx:ident, $input:ident, $path:path) => {
        run!(@again $kms, $ctx, $input, $path)
    };
    (RotateKeyOnDemand, $kms:ident, $ctx:ident, $input:ident, $path:path) => {
        run!(@again $kms, $ctx, $input, $path)
    };
    (UpdatePrimaryRegion, $kms:ident, $ctx:ident, $input:ident, $path:path) => {
        run!(@again $kms, $ctx, $input, $path)
    };
    (UpdateAlias, $kms:ident, $ctx:ident, $input:ident, $path:path) => {
        run!(@again $kms, $ctx, $input, $path)
    };
    (DeleteAlias, $kms:ident, $ctx:ident, $input:ident, $path:path) => {
        run!(@again $kms, $ctx, $input, $path)
    };
    ($other:ident, $kms:ident, $ctx:ident, $input:ident, $path:path) => {
        Ok($path($kms, $ctx, $input).await?)
    };
    (@again $kms:ident, $ctx:ident, $input:ident, $path:path) => {{
        Ok(crate::write_locks::retry_conflicts(|| $path($kms, $ctx, $input.clone())).await?)
    }};
}

/// Implements each listed operation by its function, and lists them in [`SUPPORTED`] (the
/// rest answer "unsupported"). A request over the cryptographic quota of its key's class is
/// refused here, before it runs (the other quotas are taken before dispatch).
macro_rules! delegate {
    ($($op:ident: $method:ident($input:ty) -> $output:ty => $path:path;)*) => {
        #[async_trait::async_trait]
        impl KmsApi for KmsService {
            type Context = RequestContext;
            $(
                async fn $method(&self, ctx: &RequestContext, input: $input) -> Result<$output, ApiError> {
                    self.admit_crypto(ctx, KmsOperation::$op, named_key!($op, input))?;
                    let kms = self;
                    run!($op, kms, ctx, input, $path)
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
    ReplicateKey: replicate_key(ReplicateKeyRequest) -> ReplicateKeyResponse => multi_region::replicate_key;
    UpdatePrimaryRegion: update_primary_region(UpdatePrimaryRegionRequest) -> () => multi_region::update_primary_region;
    GetKeyLastUsage: get_key_last_usage(GetKeyLastUsageRequest) -> GetKeyLastUsageResponse => last_usage::get_key_last_usage;
    RotateKeyOnDemand: rotate_key_on_demand(RotateKeyOnDemandRequest) -> RotateKeyOnDemandResponse => rotation::rotate_key_on_demand;
    ListKeyRotations: list_key_rotations(ListKeyRotationsRequest) -> ListKeyRotationsResponse => rotation::list_key_rotations;
    Sign: sign(SignRequest) -> SignResponse => asymmetric_ops::sign;
    Verify: verify(VerifyRequest) -> VerifyResponse => asymmetric_ops::verify;
    GetPublicKey: get_public_key(GetPublicKeyRequest) -> GetPublicKeyResponse => asymmetric_ops::get_public_key;
    GenerateMac: generate_mac(GenerateMacRequest) -> GenerateMacResponse => asymmetric_ops::generate_mac;
    VerifyMac: verify_mac(VerifyMacRequest) -> VerifyMacResponse => asymmetric_ops::verify_mac;
    CreateCustomKeyStore: create_custom_key_store(CreateCustomKeyStoreRequest) -> CreateCustomKeyStoreResponse => custom_key_stores::create_custom_key_store;
    ConnectCustomKeyStore: connect_custom_key_store(ConnectCustomKeyStoreRequest) -> ConnectCustomKeyStoreResponse => custom_key_stores::connect_custom_key_store;
    DisconnectCustomKeyStore: disconnect_custom_key_store(DisconnectCustomKeyStoreRequest) -> DisconnectCustomKeyStoreResponse => custom_key_stores::disconnect_custom_key_store;
    DescribeCustomKeyStores: describe_custom_key_stores(DescribeCustomKeyStoresRequest) -> DescribeCustomKeyStoresResponse => custom_key_stores::describe_custom_key_stores;
    UpdateCustomKeyStore: update_custom_key_store(UpdateCustomKeyStoreRequest) -> UpdateCustomKeyStoreResponse => custom_key_stores::update_custom_key_store;
    DeleteCustomKeyStore: delete_custom_key_store(DeleteCustomKeyStoreRequest) -> DeleteCustomKeyStoreResponse => custom_key_stores::delete_custom_key_store;
    DeriveSharedSecret: derive_shared_secret(DeriveSharedSecretRequest) -> DeriveSharedSecretResponse => asymmetric_ops::derive_shared_secret;
    Encapsulate: encapsulate(EncapsulateRequest) -> EncapsulateResponse => asymmetric_ops::encapsulate;
    Decapsulate: decapsulate(DecapsulateRequest) -> DecapsulateResponse => asymmetric_ops::decapsulate;
    GenerateDataKeyPair: generate_data_key_pair(GenerateDataKeyPairRequest) -> GenerateDataKeyPairResponse => asymmetric_ops::generate_data_key_pair;
    GenerateDataKeyPairWithoutPlaintext: generate_data_key_pair_without_plaintext(GenerateDataKeyPairWithoutPlaintextRequest) -> GenerateDataKeyPairWithoutPlaintextResponse => asymmetric_ops::generate_data_key_pair_without_plaintext;
}
