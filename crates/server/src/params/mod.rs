//! The SSM Parameter Store service: parameters, their versions and labels, tags, tiers and
//! policies; SecureString values envelope-encrypted through Keyhold's own KMS on the
//! caller's behalf.
//!
//! - [`SsmService`] implements the generated [`SsmApi`] trait; each operation family lives
//!   in its own file (`put`, `get`, `describe`, `history`, `labels`, `delete`, `tags`,
//!   `reference`) as a function taking the service, the request context and the validated
//!   input.
//! - The parameters of an account and region are loaded into memory the first time the
//!   scope is touched (one read transaction: parameters and their versions) and kept there,
//!   so `GetParameter` reads nothing from the store in steady state. Changes go to the store
//!   first (one durable transaction) and then replace the cached parameters; they are
//!   serialized by one write lock, since each costs an fsync anyway.
//! - Memory is bounded (`[cache] parameters`): when the loaded scopes hold more parameters
//!   than that, the least recently used other scopes are evicted whole, and loaded again on
//!   their next use (a single scope larger than the bound is still loaded whole). A scope
//!   read from the store while a change was being committed is used but not kept, so the
//!   cache never holds a state older than the store.
//! - SecureString values are sealed as described in [`value`]; the store never sees a
//!   plaintext. `Expiration` policies are enforced by [`SsmService::sweep_expirations`],
//!   which the server's background task runs.

mod authz;
mod delete;
mod describe;
pub mod error;
mod filters;
mod get;
mod history;
mod labels;
mod name;
mod pagination;
mod param;
mod policies;
mod put;
mod reference;
mod reset;
mod tags;
mod value;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use keyhold_proto::ApiError;
use keyhold_proto::ssm::*;
use keyhold_store::{ParamWrite, Store};

use crate::arn::Scope;
use crate::audit::Auditor;
use crate::clock::Clock;
use crate::context::RequestContext;
use crate::kms::KmsService;
use crate::secrets::SecretsService;
use crate::write_locks::WriteLocks;
use error::SsmError;
use param::Param;

/// The Parameter Store service of one Keyhold server.
pub struct SsmService {
    store: Arc<dyn Store>,
    kms: Arc<KmsService>,
    secrets: Arc<SecretsService>,
    audit: Arc<dyn Auditor>,
    clock: Clock,
    /// The loaded scopes (account, region), each with its parameters by key.
    scopes: RwLock<HashMap<Scope, Arc<ScopeParams>>>,
    /// How many parameters the loaded scopes may hold before others are evicted.
    max_cached: usize,
    /// The clock of the scopes' last use (for eviction).
    uses: AtomicU64,
    /// Writes lock their parameter or the whole service; a scope read from the store while
    /// a write ran is not cached.
    writes: WriteLocks,
}

/// The parameters of one account and region.
#[derive(Default)]
struct ScopeParams {
    state: RwLock<ScopeState>,
    /// When it was last used ([`SsmService::uses`]).
    last_used: AtomicU64,
}

#[derive(Default)]
struct ScopeState {
    /// By key (the name without its leading slash), in key order.
    by_key: BTreeMap<String, Arc<Param>>,
    /// How many parameters of each tier (for the per-tier quotas).
    counts: TierCounts,
}

/// How many parameters of each tier a scope holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TierCounts {
    pub standard: usize,
    pub advanced: usize,
}

impl TierCounts {
    fn add(&mut self, param: &Param) {
        match param.tier() {
            ParameterTier::Advanced => self.advanced += 1,
            _ => self.standard += 1,
        }
    }

    fn remove(&mut self, param: &Param) {
        match param.tier() {
            ParameterTier::Advanced => self.advanced = self.advanced.saturating_sub(1),
            _ => self.standard = self.standard.saturating_sub(1),
        }
    }
}

/// One change to commit: a parameter as it is to be (with its previous state, to store only
/// what changed), or a parameter to delete.
enum Change {
    Put { old: Option<Arc<Param>>, new: Param },
    Delete(Arc<Param>),
}

impl SsmService {
    pub fn new(
        store: Arc<dyn Store>,
        kms: Arc<KmsService>,
        secrets: Arc<SecretsService>,
        audit: Arc<dyn Auditor>,
        clock: Clock,
        max_cached: usize,
    ) -> Self {
        Self {
            store,
            kms,
            secrets,
            audit,
            clock,
            scopes: RwLock::default(),
            max_cached,
            uses: AtomicU64::new(0),
            writes: WriteLocks::counting_windows(),
        }
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().as_millis()
    }

    /// The parameters of `scope`, loaded from the store the first time.
    async fn scope_params(&self, scope: &Scope) -> Result<Arc<ScopeParams>, SsmError> {
        let tick = self.uses.fetch_add(1, Ordering::Relaxed);
        if let Some(loaded) = read(&self.scopes).get(scope) {
            loaded.last_used.store(tick, Ordering::Relaxed);
            return Ok(loaded.clone());
        }
        let generation = self.writes.generation();
        let (records, all_versions) = self
            .store
            .load_params(&scope.account, &scope.region)
            .await?;
        let mut versions: HashMap<String, Vec<_>> = HashMap::new();
        for v in all_versions {
            versions.entry(v.param_arn.clone()).or_default().push(v);
        }
        let mut state = ScopeState::default();
        for record in records {
            let own = versions.remove(&record.arn).unwrap_or_default();
            let param = Param::from_records(record, own)?;
            state.counts.add(&param);
            state.by_key.insert(param.key.clone(), Arc::new(param));
        }
        let size = state.by_key.len();
        let loaded = Arc::new(ScopeParams {
            state: RwLock::new(state),
            last_used: AtomicU64::new(tick),
        });
        // A concurrent first load may have won: keep the one that is cached (writes only
        // ever change a cached scope, so the cached one is never older than ours).
        let mut scopes = write(&self.scopes);
        if let Some(cached) = scopes.get(scope) {
            return Ok(cached.clone());
        }
        if !self.writes.quiet_since(generation) {
            return Ok(loaded);
        }
        evict_for(&mut scopes, size, self.max_cached);
        scopes.insert(scope.clone(), loaded.clone());
        Ok(loaded)
    }

    /// Forgets the parameters of one account and region (another node changed one); they
    /// are read from the store again on their next use. Counts as a write, so that a read
    /// of the store that overlapped it is not cached.
    pub fn forget_scope(&self, account: &str, region: &str) {
        self.writes.note_write();
        write(&self.scopes).remove(&Scope::new(account.to_owned(), region.to_owned()));
    }

    /// Reads one parameter again (another node created, changed or deleted it) into its
    /// scope's cache, in place of the cached one, if that scope is loaded: the rest of the
    /// scope stays cached, and so does its key order (the path queries walk it) and its tier
    /// counts. Waits for this node's write of the same parameter, so that it never overtakes
    /// one. Counts as a write, so that a read of the store that overlapped it is not cached.
    pub async fn refresh_param(&self, arn: &str) {
        self.writes.note_write();
        let Some((scope, key)) = name::scope_and_key_of_arn(arn) else {
            self.forget_everything();
            return;
        };
        if !read(&self.scopes).contains_key(&scope) {
            return;
        }
        let _guard = self.writes.lock_resource(&resource_of(&scope, key)).await;
        if let Err(e) = self.reload_param(&scope, key, arn).await {
            tracing::warn!(error = ?e, arn, "reading a parameter another node changed failed");
            self.forget_scope(&scope.account, &scope.region);
        }
    }

    /// Replaces what a loaded scope holds of one parameter with the store's state of it.
    /// Callers hold the parameter's write lock (or the service's).
    async fn reload_param(&self, scope: &Scope, key: &str, arn: &str) -> Result<(), SsmError> {
        let _writing = self.writes.writing();
        let stored = match self.store.load_param(arn).await? {
            Some((record, versions)) => Some(Param::from_records(record, versions)?),
            None => None,
        };
        let Some(params) = read(&self.scopes).get(scope).cloned() else {
            return Ok(());
        };
        let mut state = write(&params.state);
        if let Some(old) = state.by_key.remove(key) {
            state.counts.remove(&old);
        }
        if let Some(param) = stored {
            state.counts.add(&param);
            state.by_key.insert(param.key.clone(), Arc::new(param));
        }
        Ok(())
    }

    /// Forgets (another node may have changed anything) every cached parameter.
    pub fn forget_everything(&self) {
        self.writes.note_write();
        write(&self.scopes).clear();
    }

    /// The parameter with `key` in `scope`.
    async fn find(&self, scope: &Scope, key: &str) -> Result<Option<Arc<Param>>, SsmError> {
        let params = self.scope_params(scope).await?;
        Ok(read(&params.state).by_key.get(key).cloned())
    }

    /// Every parameter of `scope`, in key order.
    async fn all(&self, scope: &Scope) -> Result<Vec<Arc<Param>>, SsmError> {
        let params = self.scope_params(scope).await?;
        Ok(read(&params.state).by_key.values().cloned().collect())
    }

    /// How many parameters of each tier `scope` holds.
    async fn tier_counts(&self, scope: &Scope) -> Result<TierCounts, SsmError> {
        let params = self.scope_params(scope).await?;
        Ok(read(&params.state).counts)
    }

    /// Stores `changes` in one durable transaction, then caches the results (in order).
    /// Callers hold the write lock of every parameter `changes` touch (or the service's).
    ///
    /// Each changed parameter is written as the revision after the one it was read at, and
    /// only if the store still holds that one: if another node wrote it meanwhile, nothing
    /// is written, the parameters are read again and [`SsmError::Conflict`] says to decide
    /// again ([`crate::write_locks::retry_conflicts`]).
    async fn commit(
        &self,
        scope: &Scope,
        mut changes: Vec<Change>,
    ) -> Result<Vec<Arc<Param>>, SsmError> {
        let _writing = self.writes.writing();
        let mut writes = Vec::with_capacity(changes.len());
        for change in &mut changes {
            writes.push(match change {
                Change::Put { old, new } => {
                    new.revision = old.as_ref().map_or(1, |o| o.revision + 1);
                    put_write(scope, old.as_deref(), new)?
                }
                Change::Delete(param) => ParamWrite::Delete {
                    arn: param.arn.clone(),
                },
            });
        }
        if let Err(e) = self.store.write_params(&writes).await {
            let e = SsmError::from(e);
            if matches!(e, SsmError::Conflict) {
                for change in &changes {
                    if let Change::Put { new, .. } = change {
                        self.reload_param(scope, &new.key, &new.arn).await?;
                    }
                }
            }
            return Err(e);
        }
        let params = self.scope_params(scope).await?;
        let mut state = write(&params.state);
        let mut stored = Vec::new();
        for change in changes {
            match change {
                Change::Put { new, .. } => {
                    let new = Arc::new(new);
                    if let Some(old) = state.by_key.insert(new.key.clone(), new.clone()) {
                        state.counts.remove(&old);
                    }
                    state.counts.add(&new);
                    stored.push(new);
                }
                Change::Delete(param) => {
                    if let Some(old) = state.by_key.remove(&param.key) {
                        state.counts.remove(&old);
                    }
                }
            }
        }
        Ok(stored)
    }

    /// Deletes the parameters whose `Expiration` policy is due. Returns how many it deleted.
    pub async fn sweep_expirations(&self) -> Result<usize, SsmError> {
        let now = self.now_ms();
        let due = self.store.params_due_for_expiration(now).await?;
        if due.is_empty() {
            return Ok(0);
        }
        let _guard = self.writes.lock().await;
        let mut deleted = 0;
        for record in due {
            let scope = Scope::new(record.account, record.region);
            let Some(param) = self.find(&scope, name::key_of(&record.name)).await? else {
                continue;
            };
            if param.expires_ms().is_none_or(|at| at > now) {
                continue;
            }
            self.commit(&scope, vec![Change::Delete(param.clone())])
                .await?;
            deleted += 1;
            tracing::info!(arn = %param.arn, "deleted parameter: its Expiration policy was due");
        }
        Ok(deleted)
    }
}

impl crate::write_locks::WriteConflict for SsmError {
    fn is_write_conflict(&self) -> bool {
        matches!(self, SsmError::Conflict)
    }
}

/// The name a write locks one parameter under ([`WriteLocks::lock_resource`]).
fn resource_of(scope: &Scope, key: &str) -> String {
    format!("{}/{}/{key}", scope.account, scope.region)
}

/// The store write for `new`, given what was stored before (`old`): the versions that are
/// new or changed, and the numbers of those that are gone.
fn put_write(scope: &Scope, old: Option<&Param>, new: &Param) -> Result<ParamWrite, SsmError> {
    let versions = new
        .versions
        .iter()
        .filter(|v| {
            old.and_then(|o| o.version(v.number))
                .is_none_or(|before| !Arc::ptr_eq(before, v))
        })
        .map(|v| v.record(&new.arn))
        .collect::<Result<_, _>>()?;
    let removed_versions = old
        .map(|o| {
            o.versions
                .iter()
                .filter(|v| new.version(v.number).is_none())
                .map(|v| v.number)
                .collect()
        })
        .unwrap_or_default();
    Ok(ParamWrite::Put {
        param: new.record(scope)?,
        versions,
        removed_versions,
    })
}

/// Evicts the least recently used scopes until `incoming` more parameters fit under `max`
/// (or none is left).
fn evict_for(scopes: &mut HashMap<Scope, Arc<ScopeParams>>, incoming: usize, max: usize) {
    let mut held: usize = scopes.values().map(|s| read(&s.state).by_key.len()).sum();
    while held.saturating_add(incoming) > max {
        let Some(oldest) = scopes
            .iter()
            .min_by_key(|(_, s)| s.last_used.load(Ordering::Relaxed))
            .map(|(scope, _)| scope.clone())
        else {
            return;
        };
        if let Some(evicted) = scopes.remove(&oldest) {
            held = held.saturating_sub(read(&evicted.state).by_key.len());
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

macro_rules! delegate {
    ($($method:ident($input:ty) -> $output:ty => $path:path;)*) => {
        #[async_trait::async_trait]
        impl SsmApi for SsmService {
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
    put_parameter(PutParameterRequest) -> PutParameterResult => put::put_parameter;
    get_parameter(GetParameterRequest) -> GetParameterResult => get::get_parameter;
    get_parameters(GetParametersRequest) -> GetParametersResult => get::get_parameters;
    get_parameters_by_path(GetParametersByPathRequest) -> GetParametersByPathResult => get::get_parameters_by_path;
    delete_parameter(DeleteParameterRequest) -> DeleteParameterResult => delete::delete_parameter;
    delete_parameters(DeleteParametersRequest) -> DeleteParametersResult => delete::delete_parameters;
    describe_parameters(DescribeParametersRequest) -> DescribeParametersResult => describe::describe_parameters;
    get_parameter_history(GetParameterHistoryRequest) -> GetParameterHistoryResult => history::get_parameter_history;
    label_parameter_version(LabelParameterVersionRequest) -> LabelParameterVersionResult => labels::label_parameter_version;
    unlabel_parameter_version(UnlabelParameterVersionRequest) -> UnlabelParameterVersionResult => labels::unlabel_parameter_version;
    add_tags_to_resource(AddTagsToResourceRequest) -> AddTagsToResourceResult => tags::add_tags_to_resource;
    remove_tags_from_resource(RemoveTagsFromResourceRequest) -> RemoveTagsFromResourceResult => tags::remove_tags_from_resource;
    list_tags_for_resource(ListTagsForResourceRequest) -> ListTagsForResourceResult => tags::list_tags_for_resource;
}

/// The operations this service implements: all of the model's.
pub const SUPPORTED: &[SsmOperation] = SsmOperation::ALL;
