//! Multi-Region secrets: ReplicateSecretToRegions, RemoveRegionsFromReplication,
//! StopReplicationToReplica, and keeping replicas in step with their primary.
//!
//! A replica lives in another Region of the same Keyhold under the primary's ARN with the
//! Region changed. It holds the same versions and staging labels, each value re-encrypted
//! under the replica's own KMS key of its Region (by default that Region's
//! `aws/secretsmanager`), plus the primary's description, tags, policy and rotation settings.
//! Every change to the primary is carried to its replicas in the same transaction; a replica
//! that cannot be written (its key refuses, say) is marked `Failed` with the reason. Replicas
//! are read-only until promoted with `StopReplicationToReplica` in their Region.

use std::sync::Arc;

use keyhold_proto::ApiError;
use keyhold_proto::secretsmanager::*;

use super::error::SecretsError;
use super::secret::{Meta, Replica, Secret};
use super::value::{DEFAULT_KEY, Target};
use super::{Change, SecretsService};
use crate::arn::{Scope, is_region_name};
use crate::context::RequestContext;

const IN_SYNC: &str = "InSync";
const FAILED: &str = "Failed";
const SUCCEEDED: &str = "Replication succeeded";

pub async fn replicate_secret_to_regions(
    service: &SecretsService,
    ctx: &RequestContext,
    input: ReplicateSecretToRegionsRequest,
) -> Result<ReplicateSecretToRegionsResponse, SecretsError> {
    let _guard = service.writes.lock().await;
    let secret = service.resolve_writable(ctx, &input.secret_id).await?;
    if secret.meta.cross_account_primary.is_some() {
        return Err(SecretsError::InvalidCrossAccountReplica {
            detail: "A cross-account replica can't be replicated to other Regions.",
        });
    }
    let regions: Vec<ReplicaRegionType> = input
        .add_replica_regions
        .into_iter()
        .filter(|r| {
            !secret
                .meta
                .replicas
                .iter()
                .any(|existing| Some(&existing.region) == r.region.as_ref())
        })
        .collect();
    let force = input.force_overwrite_replica_secret == Some(true);
    let (replicas, mut changes) = service.new_replicas(ctx, &secret, &regions, force).await?;
    let mut next = (*secret).clone();
    next.meta.replicas.extend(replicas);
    next.meta.last_changed_ms = service.now_ms();
    let statuses = statuses(&next);
    changes.insert(
        0,
        Change::Put {
            old: Some(secret.clone()),
            new: next,
        },
    );
    service.commit(changes).await?;
    Ok(ReplicateSecretToRegionsResponse {
        arn: Some(secret.arn.clone()),
        replication_status: Some(statuses),
    })
}

pub async fn remove_regions_from_replication(
    service: &SecretsService,
    ctx: &RequestContext,
    input: RemoveRegionsFromReplicationRequest,
) -> Result<RemoveRegionsFromReplicationResponse, SecretsError> {
    let _guard = service.writes.lock().await;
    let secret = service.resolve_writable(ctx, &input.secret_id).await?;
    let mut next = (*secret).clone();
    let mut changes = Vec::new();
    for region in &input.remove_replica_regions {
        let Some(position) = next.meta.replicas.iter().position(|r| &r.region == region) else {
            continue;
        };
        next.meta.replicas.remove(position);
        let arn = replica_arn(&secret, region);
        if let Some(replica) = service.load_arn(&arn).await?
            && replica.meta.primary_arn.as_deref() == Some(secret.arn.as_str())
        {
            changes.push(Change::Delete(replica));
        }
    }
    next.meta.last_changed_ms = service.now_ms();
    let statuses = statuses(&next);
    changes.insert(
        0,
        Change::Put {
            old: Some(secret.clone()),
            new: next,
        },
    );
    service.commit(changes).await?;
    Ok(RemoveRegionsFromReplicationResponse {
        arn: Some(secret.arn.clone()),
        replication_status: Some(statuses),
    })
}

pub async fn stop_replication_to_replica(
    service: &SecretsService,
    ctx: &RequestContext,
    input: StopReplicationToReplicaRequest,
) -> Result<StopReplicationToReplicaResponse, SecretsError> {
    let _guard = service.writes.lock().await;
    let replica = service.resolve_active(ctx, &input.secret_id).await?;
    let mut promoted = (*replica).clone();
    let mut changes = Vec::new();
    if let Some(primary_arn) = promoted.meta.primary_arn.take() {
        if let Some(primary) = service.load_arn(&primary_arn).await? {
            let mut next = (*primary).clone();
            next.meta.replicas.retain(|r| r.region != replica.region);
            changes.push(Change::Put {
                old: Some(primary),
                new: next,
            });
        }
    } else if let Some(link) = promoted.meta.cross_account_primary.take() {
        if let Some(primary) = service.load_arn(&link.arn).await? {
            let mut next = (*primary).clone();
            for l in &mut next.meta.cross_account_replicas {
                if l.arn == replica.arn {
                    l.status = "Detached".to_owned();
                    l.status_message = Some("Replication was stopped by the replica.".into());
                }
            }
            changes.push(Change::Put {
                old: Some(primary),
                new: next,
            });
        }
    } else {
        return Err(SecretsError::NotAReplica);
    }
    promoted.meta.last_changed_ms = service.now_ms();
    changes.insert(
        0,
        Change::Put {
            old: Some(replica.clone()),
            new: promoted,
        },
    );
    service.commit(changes).await?;
    Ok(StopReplicationToReplicaResponse {
        arn: Some(replica.arn.clone()),
    })
}

/// `ReplicationStatus` of a primary.
pub fn statuses(secret: &Secret) -> Vec<ReplicationStatusType> {
    secret
        .meta
        .replicas
        .iter()
        .map(|r| ReplicationStatusType {
            region: Some(r.region.clone()),
            kms_key_id: Some(
                r.kms_key_id
                    .clone()
                    .unwrap_or_else(|| DEFAULT_KEY.to_owned()),
            ),
            status: StatusType::parse(&r.status),
            status_message: Some(r.status_message.clone()),
            last_accessed_date: None,
        })
        .collect()
}

/// The ARN of `primary`'s replica in `region`.
fn replica_arn(primary: &Secret, region: &str) -> String {
    let resource = primary
        .arn
        .split_once(":secret:")
        .map_or(primary.name.as_str(), |(_, r)| r);
    Scope::new(primary.account.clone(), region)
        .arn("secretsmanager", format_args!("secret:{resource}"))
}

/// The caller, acting in another Region of its account (for that Region's KMS keys).
fn in_region(ctx: &RequestContext, account: &str, region: &str) -> RequestContext {
    ctx.in_scope(Scope::new(account, region))
}

impl SecretsService {
    /// Creates the replicas of `primary` in `regions`: their statuses (a replica that could
    /// not be created is `Failed`), and the changes that store them.
    pub(super) async fn new_replicas(
        &self,
        ctx: &RequestContext,
        primary: &Secret,
        regions: &[ReplicaRegionType],
        force: bool,
    ) -> Result<(Vec<Replica>, Vec<Change>), SecretsError> {
        let mut seen: Vec<&str> = Vec::new();
        for r in regions {
            let region = r.region.as_deref().unwrap_or_default();
            if !is_region_name(region) || region == primary.region || seen.contains(&region) {
                return Err(SecretsError::InvalidReplicaRegion {
                    region: region.to_owned(),
                });
            }
            seen.push(region);
        }
        let mut replicas = Vec::new();
        let mut changes = Vec::new();
        for r in regions {
            let region = r.region.clone().unwrap_or_default();
            let kms_key_id = r.kms_key_id.clone().filter(|k| !k.is_empty());
            let mut replica = Replica {
                region: region.clone(),
                kms_key_id,
                status: IN_SYNC.to_owned(),
                status_message: SUCCEEDED.to_owned(),
            };
            if let Some(existing) = self
                .load_name(&primary.account, &region, &primary.name)
                .await?
            {
                if !force {
                    replica.status = FAILED.to_owned();
                    replica.status_message = format!(
                        "Replication failed: Secret name {} already exists in region {region}.",
                        primary.name
                    );
                    replicas.push(replica);
                    continue;
                }
                changes.push(Change::Delete(existing));
            }
            match self.synced_replica(ctx, primary, &replica, None).await {
                Ok(secret) => changes.push(Change::Put {
                    old: None,
                    new: secret,
                }),
                Err(e) => fail(&mut replica, e),
            }
            replicas.push(replica);
        }
        Ok((replicas, changes))
    }

    /// What the replicas (and the cross-account replica) of `new` must become after a
    /// change; failures are recorded in `new`'s replication statuses.
    pub(super) async fn replica_changes(
        &self,
        ctx: &RequestContext,
        _old: &Secret,
        new: &mut Secret,
    ) -> Result<Vec<Change>, SecretsError> {
        let mut changes = Vec::new();
        let mut replicas = std::mem::take(&mut new.meta.replicas);
        for replica in &mut replicas {
            if replica.status != IN_SYNC {
                continue;
            }
            let arn = replica_arn(new, &replica.region);
            let Some(existing) = self.load_arn(&arn).await? else {
                replica.status = FAILED.to_owned();
                replica.status_message = "The replica secret no longer exists.".to_owned();
                continue;
            };
            match self
                .synced_replica(ctx, new, replica, Some(&existing))
                .await
            {
                Ok(secret) => changes.push(Change::Put {
                    old: Some(existing),
                    new: secret,
                }),
                Err(e) => fail(replica, e),
            }
        }
        new.meta.replicas = replicas;
        changes.extend(self.cross_account_changes(ctx, new).await?);
        Ok(changes)
    }

    /// `primary`'s replica in `replica.region`, as it must be now: `existing`'s versions are
    /// kept where the primary still has them, the others are re-encrypted.
    async fn synced_replica(
        &self,
        ctx: &RequestContext,
        primary: &Secret,
        replica: &Replica,
        existing: Option<&Arc<Secret>>,
    ) -> Result<Secret, SecretsError> {
        let arn = replica_arn(primary, &replica.region);
        let regional = in_region(ctx, &primary.account, &replica.region);
        let mut versions = Vec::with_capacity(primary.versions.len());
        for version in &primary.versions {
            let empty = Secret::is_empty_version(version);
            if let Some(kept) = existing.and_then(|e| e.version(&version.version_id))
                && Secret::is_empty_version(kept) == empty
            {
                versions.push(kept.clone());
                continue;
            }
            if empty {
                // A rotation's pending version before its function filled it.
                versions.push(Arc::new(keyhold_store::SecretVersionRecord {
                    secret_arn: arn.clone(),
                    ..(**version).clone()
                }));
                continue;
            }
            let value = self.open_version(ctx, version).await?;
            let target = Target {
                arn: &arn,
                kms_key_id: replica.kms_key_id.as_deref(),
            };
            let sealed = self
                .seal_version(
                    &regional,
                    &target,
                    &version.version_id,
                    version.created_ms,
                    &value,
                )
                .await?;
            versions.push(Arc::new(sealed));
        }
        let previous = existing.map(|e| &e.meta);
        Ok(Secret {
            arn,
            account: primary.account.clone(),
            region: replica.region.clone(),
            name: primary.name.clone(),
            created_ms: existing.map_or(self.now_ms(), |e| e.created_ms),
            deletion_ms: None,
            meta: Meta {
                kms_key_id: replica.kms_key_id.clone(),
                last_accessed_ms: previous.and_then(|m| m.last_accessed_ms),
                primary_arn: Some(primary.arn.clone()),
                replicas: Vec::new(),
                cross_account_primary: None,
                cross_account_replicas: Vec::new(),
                ..primary.meta.clone()
            },
            versions,
            revision: existing.map_or(0, |e| e.revision),
        })
    }
}

/// Marks a replica `Failed` with the error's message.
fn fail(replica: &mut Replica, e: SecretsError) {
    let api = ApiError::from(e);
    replica.status = FAILED.to_owned();
    replica.status_message = format!(
        "Replication failed: {}",
        api.message().unwrap_or(api.code())
    );
}
