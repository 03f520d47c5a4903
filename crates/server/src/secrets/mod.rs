//! The Secrets Manager service: secrets, their versions and staging labels, every value
//! envelope-encrypted through Keyhold's own KMS on the caller's behalf.
//!
//! - [`SecretsService`] implements the generated [`SecretsManagerApi`] trait; each operation
//!   family lives in its own file (`create`, `values`, `update`, `stages`, `describe`,
//!   `delete`, `tags`, `password`, `rotation`, `policies`, `replication`, `cross_account`) as a
//!   function taking the service, the request context and the validated input.
//! - [`secret::Secret`]s are cached in memory, metadata and sealed versions alike, so that
//!   `GetSecretValue` reads nothing from the store in steady state: it finds the secret in
//!   the cache and asks KMS (itself cached) to decrypt the version's data key. Its one write
//!   is the access date, at most once a day per secret. The cache is bounded
//!   (`[cache] secrets`, CLOCK eviction, [`crate::cache`]): an evicted secret is read from
//!   the store again on its next use.
//! - Changes go to the store first (one durable transaction, replicas included) and then
//!   replace the cached secrets; they are serialized by one write lock, since they are rare
//!   and each costs an fsync anyway.
//! - Values are sealed as AWS does it ([`value`]); the store never sees a plaintext.

mod authz;
mod create;
mod cross_account;
mod delete;
mod describe;
pub mod error;
mod filters;
mod labels;
mod pagination;
mod password;
mod policies;
mod replication;
mod reset;
mod resolve;
mod rotate;
mod rotate_builtin;
mod rotate_db;
mod rotation;
mod schedule;
mod secret;
mod stages;
mod tags;
mod update;
mod value;
mod values;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::cache::BoundedCache;

use keyhold_proto::ApiError;
use keyhold_proto::secretsmanager::*;
use keyhold_store::{SecretWrite, Store, StoreError};

use crate::clock::Clock;
use crate::context::RequestContext;
use crate::kms::KmsService;
use crate::write_locks::{WriteGuard, WriteLocks};
use error::SecretsError;
pub use rotate::{RotationCounters, RotationSetup};
use secret::Secret;

/// The Secrets Manager service of one Keyhold server.
pub struct SecretsService {
    store: Arc<dyn Store>,
    kms: Arc<KmsService>,
    clock: Clock,
    /// Secrets by ARN, with their versions (bounded).
    secrets: BoundedCache<String, Arc<Secret>>,
    /// ARN by (account, region, name) (bounded likewise).
    names: BoundedCache<NameKey, String>,
    /// Parsed resource policies, by secret ARN (bounded; see `authz`).
    policies: RwLock<HashMap<String, authz::CachedPolicy>>,
    /// Writes lock their secret or the whole service; a secret read from the store while a
    /// write ran is not cached.
    writes: WriteLocks,
    /// The rotation engine, connected at start ([`SecretsService::install_rotation`]).
    rotation: std::sync::OnceLock<rotate::Engine>,
    /// The secrets being rotated: one rotation at a time per secret.
    running: rotate::Running,
    rotation_counters: RotationCounters,
    /// Where cache lookups are counted (`crate::ops::metrics`).
    metrics: std::sync::OnceLock<Arc<crate::ops::metrics::Metrics>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct NameKey {
    account: String,
    region: String,
    name: String,
}

impl NameKey {
    fn of(secret: &Secret) -> Self {
        Self {
            account: secret.account.clone(),
            region: secret.region.clone(),
            name: secret.name.clone(),
        }
    }
}

/// One change to commit: a secret as it is to be (its previous state, to store only what
/// changed), or a secret to purge. Short-lived (built, committed, dropped), so the size
/// difference between the variants costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum Change {
    Put {
        old: Option<Arc<Secret>>,
        new: Secret,
    },
    Delete(Arc<Secret>),
}

impl SecretsService {
    /// `cached_secrets`: how many secrets the cache holds at most.
    pub fn new(
        store: Arc<dyn Store>,
        kms: Arc<KmsService>,
        clock: Clock,
        cached_secrets: usize,
    ) -> Self {
        Self {
            store,
            kms,
            clock,
            secrets: BoundedCache::new(cached_secrets),
            names: BoundedCache::new(cached_secrets),
            policies: RwLock::default(),
            writes: WriteLocks::counting_windows(),
            rotation: std::sync::OnceLock::new(),
            running: rotate::Running::default(),
            rotation_counters: RotationCounters::default(),
            metrics: std::sync::OnceLock::new(),
        }
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().as_millis()
    }

    /// The secret with this ARN, from the cache or (once) from the store.
    async fn load_arn(&self, arn: &str) -> Result<Option<Arc<Secret>>, SecretsError> {
        if let Some(secret) = self.cached(arn) {
            self.note_cache(true);
            return Ok(Some(secret));
        }
        self.note_cache(false);
        let generation = self.writes.generation();
        let Some(record) = self.store.get_secret(arn).await? else {
            return Ok(None);
        };
        self.load_record(record, generation).await.map(Some)
    }

    /// The cached secret of this name in the account and region.
    fn cached_name(&self, account: &str, region: &str, name: &str) -> Option<Arc<Secret>> {
        let key = NameKey {
            account: account.to_owned(),
            region: region.to_owned(),
            name: name.to_owned(),
        };
        let arn = self.names.get(&key)?;
        self.cached(&arn)
    }

    /// The secret of this name in the account and region.
    async fn load_name(
        &self,
        account: &str,
        region: &str,
        name: &str,
    ) -> Result<Option<Arc<Secret>>, SecretsError> {
        if let Some(secret) = self.cached_name(account, region, name) {
            return Ok(Some(secret));
        }
        let generation = self.writes.generation();
        let Some(record) = self.store.find_secret(account, region, name).await? else {
            return Ok(None);
        };
        self.load_record(record, generation).await.map(Some)
    }

    /// Builds a secret read from the store (when the write generation was `generation`) and
    /// caches it, unless a write ran meanwhile or a writer already cached a newer state.
    async fn load_record(
        &self,
        record: keyhold_store::SecretRecord,
        generation: u64,
    ) -> Result<Arc<Secret>, SecretsError> {
        let versions = self.store.secret_versions(&record.arn).await?;
        let secret = Arc::new(Secret::from_records(record, versions)?);
        let quiet = || self.writes.quiet_since(generation);
        let cached = self
            .secrets
            .get_or_insert_if(secret.arn.clone(), secret.clone(), quiet);
        if Arc::ptr_eq(&cached, &secret) && !quiet() {
            // Not cached: a commit ran meanwhile.
            return Ok(secret);
        }
        self.names.insert(NameKey::of(&cached), cached.arn.clone());
        Ok(cached)
    }

    fn cached(&self, arn: &str) -> Option<Arc<Secret>> {
        self.secrets.get(arn)
    }

    fn cache_put(&self, secret: Arc<Secret>) {
        // No forget_policy here: parsed policies are used only while their text matches the
        // secret's, so a changed policy is never served stale.
        self.names.insert(NameKey::of(&secret), secret.arn.clone());
        self.secrets.insert(secret.arn.clone(), secret);
    }

    /// Forgets a secret another node changed; it is read from the store again on its next
    /// use. Counts as a write, so that a read of the store that overlapped it is not cached.
    pub fn forget(&self, arn: &str) {
        self.writes.note_write();
        match self.secrets.get(arn) {
            Some(secret) => self.cache_remove(&secret),
            None => {
                self.forget_policy(arn);
                self.names.retain(|_, cached| cached != arn);
            }
        }
    }

    /// Forgets (another node may have changed anything) every cached secret.
    pub fn forget_everything(&self) {
        self.writes.note_write();
        self.secrets.clear();
        self.names.clear();
        if let Ok(mut policies) = self.policies.write() {
            policies.clear();
        }
    }

    fn cache_remove(&self, secret: &Secret) {
        self.forget_policy(&secret.arn);
        let key = NameKey::of(secret);
        if self.names.get(&key).as_ref() == Some(&secret.arn) {
            self.names.remove(&key);
        }
        self.secrets.remove(&secret.arn);
    }

    /// Stores `changes` in one durable transaction, then caches the results (in order).
    /// Callers hold the write lock of every secret `changes` touch (or the service's).
    ///
    /// Each changed secret is written as the revision after the one it was read at, and
    /// only if the store still holds that one: if another node wrote it meanwhile, nothing
    /// is written, the secrets are forgotten (read again on their next use) and
    /// [`SecretsError::Conflict`] says to decide again ([`crate::write_locks::retry_conflicts`]).
    async fn commit(&self, mut changes: Vec<Change>) -> Result<Vec<Arc<Secret>>, SecretsError> {
        let _writing = self.writes.writing();
        let mut writes = Vec::with_capacity(changes.len());
        for change in &mut changes {
            writes.push(match change {
                Change::Put { old, new } => {
                    new.revision = old.as_ref().map_or(1, |o| o.revision + 1);
                    put_write(old.as_deref(), new)?
                }
                Change::Delete(secret) => SecretWrite::Delete {
                    arn: secret.arn.clone(),
                },
            });
        }
        match self.store.write_secrets(&writes).await {
            Ok(()) => {}
            Err(StoreError::AlreadyExists) => {
                let name = changes
                    .iter()
                    .find_map(|c| match c {
                        Change::Put { old: None, new } => Some(new.name.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
                return Err(SecretsError::Exists { name });
            }
            Err(StoreError::Conflict) => {
                for change in &changes {
                    if let Change::Put { new, .. } = change {
                        self.forget(&new.arn);
                    }
                }
                return Err(SecretsError::Conflict);
            }
            Err(e) => return Err(e.into()),
        }
        let mut stored = Vec::new();
        for change in changes {
            match change {
                Change::Put { new, .. } => {
                    let new = Arc::new(new);
                    self.cache_put(new.clone());
                    stored.push(new);
                }
                Change::Delete(secret) => self.cache_remove(&secret),
            }
        }
        Ok(stored)
    }

    /// Stores one changed secret and what its replicas must become, and returns it.
    async fn save(
        &self,
        ctx: &RequestContext,
        old: Arc<Secret>,
        mut new: Secret,
    ) -> Result<Arc<Secret>, SecretsError> {
        let mut changes = self.replica_changes(ctx, &old, &mut new).await?;
        changes.insert(
            0,
            Change::Put {
                old: Some(old),
                new,
            },
        );
        let mut stored = self.commit(changes).await?;
        if stored.is_empty() {
            return Err(SecretsError::Internal);
        }
        Ok(stored.swap_remove(0))
    }

    /// Locks the writes of the secret `id` names: of that secret alone if it exists and is
    /// still the one `id` names once locked, of the whole service otherwise (then the caller
    /// goes on to answer whatever error the name deserves). Writes that rename, create or
    /// delete secrets lock the whole service, so what `id` names cannot change under the
    /// returned guard.
    pub(super) async fn lock_secret(
        &self,
        ctx: &RequestContext,
        id: &str,
    ) -> Result<WriteGuard<'_>, SecretsError> {
        if let Some(found) = self.find(ctx, id).await? {
            let guard = self.writes.lock_resource(&found.arn).await;
            if self
                .find(ctx, id)
                .await?
                .is_some_and(|now| now.arn == found.arn)
            {
                return Ok(guard);
            }
        }
        Ok(self.writes.lock().await)
    }

    /// Purges the secrets whose recovery window has ended. Returns how many it purged.
    pub async fn sweep_deletions(&self) -> Result<usize, SecretsError> {
        let due = self.store.secrets_due_for_deletion(self.now_ms()).await?;
        let _guard = self.writes.lock().await;
        let mut purged = 0;
        for arn in &due {
            let Some(secret) = self.load_arn(arn).await? else {
                continue;
            };
            self.commit(vec![Change::Delete(secret)]).await?;
            purged += 1;
            tracing::info!(arn, "deleted secret at the end of its recovery window");
        }
        Ok(purged)
    }
}

impl crate::write_locks::WriteConflict for SecretsError {
    fn is_write_conflict(&self) -> bool {
        matches!(self, SecretsError::Conflict)
    }
}

/// The store write for `new`, given what was stored before (`old`): the versions that are
/// new or changed, and the ids of those that are gone.
fn put_write(old: Option<&Secret>, new: &Secret) -> Result<SecretWrite, SecretsError> {
    let versions = new
        .versions
        .iter()
        .filter(|v| {
            old.and_then(|o| o.version(&v.version_id))
                .is_none_or(|before| !Arc::ptr_eq(before, v))
        })
        .map(|v| (**v).clone())
        .collect();
    let removed_versions = old
        .map(|o| {
            o.versions
                .iter()
                .filter(|v| new.version(&v.version_id).is_none())
                .map(|v| v.version_id.clone())
                .collect()
        })
        .unwrap_or_default();
    Ok(SecretWrite::Put {
        secret: new.record()?,
        versions,
        removed_versions,
    })
}

macro_rules! delegate {
    ($($method:ident($input:ty) -> $output:ty => $path:path;)*) => {
        #[async_trait::async_trait]
        impl SecretsManagerApi for SecretsService {
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
    create_secret(CreateSecretRequest) -> CreateSecretResponse => create::create_secret;
    get_secret_value(GetSecretValueRequest) -> GetSecretValueResponse => values::get_secret_value;
    batch_get_secret_value(BatchGetSecretValueRequest) -> BatchGetSecretValueResponse => values::batch_get_secret_value;
    put_secret_value(PutSecretValueRequest) -> PutSecretValueResponse => values::put_secret_value;
    update_secret(UpdateSecretRequest) -> UpdateSecretResponse => update::update_secret;
    update_secret_version_stage(UpdateSecretVersionStageRequest) -> UpdateSecretVersionStageResponse => stages::update_secret_version_stage;
    describe_secret(DescribeSecretRequest) -> DescribeSecretResponse => describe::describe_secret;
    list_secrets(ListSecretsRequest) -> ListSecretsResponse => describe::list_secrets;
    list_secret_version_ids(ListSecretVersionIdsRequest) -> ListSecretVersionIdsResponse => describe::list_secret_version_ids;
    delete_secret(DeleteSecretRequest) -> DeleteSecretResponse => delete::delete_secret;
    restore_secret(RestoreSecretRequest) -> RestoreSecretResponse => delete::restore_secret;
    tag_resource(TagResourceRequest) -> () => tags::tag_resource;
    untag_resource(UntagResourceRequest) -> () => tags::untag_resource;
    get_random_password(GetRandomPasswordRequest) -> GetRandomPasswordResponse => password::get_random_password;
    rotate_secret(RotateSecretRequest) -> RotateSecretResponse => rotation::rotate_secret;
    cancel_rotate_secret(CancelRotateSecretRequest) -> CancelRotateSecretResponse => rotation::cancel_rotate_secret;
    put_resource_policy(PutResourcePolicyRequest) -> PutResourcePolicyResponse => policies::put_resource_policy;
    get_resource_policy(GetResourcePolicyRequest) -> GetResourcePolicyResponse => policies::get_resource_policy;
    delete_resource_policy(DeleteResourcePolicyRequest) -> DeleteResourcePolicyResponse => policies::delete_resource_policy;
    validate_resource_policy(ValidateResourcePolicyRequest) -> ValidateResourcePolicyResponse => policies::validate_resource_policy;
    list_resource_policies(ListResourcePoliciesRequest) -> ListResourcePoliciesResponse => policies::list_resource_policies;
    replicate_secret_to_regions(ReplicateSecretToRegionsRequest) -> ReplicateSecretToRegionsResponse => replication::replicate_secret_to_regions;
    remove_regions_from_replication(RemoveRegionsFromReplicationRequest) -> RemoveRegionsFromReplicationResponse => replication::remove_regions_from_replication;
    stop_replication_to_replica(StopReplicationToReplicaRequest) -> StopReplicationToReplicaResponse => replication::stop_replication_to_replica;
    associate_cross_account_replica(AssociateCrossAccountReplicaRequest) -> AssociateCrossAccountReplicaResponse => cross_account::associate_cross_account_replica;
    disassociate_cross_account_replica(DisassociateCrossAccountReplicaRequest) -> DisassociateCrossAccountReplicaResponse => cross_account::disassociate_cross_account_replica;
}

/// The operations this service implements: all of the model's.
pub const SUPPORTED: &[SecretsManagerOperation] = SecretsManagerOperation::ALL;
