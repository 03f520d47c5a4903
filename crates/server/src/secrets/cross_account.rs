//! Cross-account replication: AssociateCrossAccountReplica, DisassociateCrossAccountReplica,
//! and copying the primary's value to its replica.
//!
//! The replica's owner creates it with `CreateSecret` + `CrossAccountPrimaryARN` (in the same
//! Region, under a customer managed key); the primary's owner then associates it. From then
//! on, every new `AWSCURRENT` value of the primary is copied to the replica as a new version
//! (same version id, labelled `AWSCURRENT`), encrypted under the replica's key with the
//! identity of the caller who changed the primary — as AWS's AcceptCrossAccountReplication
//! does — so the replica's key policy must let the primary's account use the key. A copy
//! that fails marks both sides `Failed`; association itself fails whole.

use std::sync::Arc;

use keyhold_proto::ApiError;
use keyhold_proto::secretsmanager::*;

use super::error::SecretsError;
use super::labels::attach;
use super::secret::{AWSCURRENT, CrossAccountLink, Secret};
use super::value::Target;
use super::{Change, SecretsService};
use crate::context::RequestContext;

const IN_SYNC: &str = "InSync";
const FAILED: &str = "Failed";
const DETACHED: &str = "Detached";

pub async fn associate_cross_account_replica(
    service: &SecretsService,
    ctx: &RequestContext,
    input: AssociateCrossAccountReplicaRequest,
) -> Result<AssociateCrossAccountReplicaResponse, SecretsError> {
    let _guard = service.writes.lock().await;
    let primary = service.resolve_writable(ctx, &input.secret_id).await?;
    if primary.account != ctx.caller.account {
        return Err(SecretsError::NotFound);
    }
    let replica = service
        .find(ctx, &input.cross_account_replica_arn)
        .await?
        .ok_or(SecretsError::NotFound)?;
    let replica_of_primary = replica
        .meta
        .cross_account_primary
        .as_ref()
        .is_some_and(|l| names_secret(&l.arn, &primary));
    if replica.account == primary.account || replica.region != primary.region || !replica_of_primary
    {
        return Err(SecretsError::NotReplicaOfPrimary);
    }
    if replica.is_deleted() {
        return Err(SecretsError::MarkedForDeletion);
    }
    if primary
        .meta
        .cross_account_replicas
        .iter()
        .any(|l| l.arn != replica.arn)
    {
        return Err(SecretsError::CrossAccountReplicaLimit);
    }
    let mut next_primary = (*primary).clone();
    next_primary.meta.cross_account_replicas = vec![CrossAccountLink {
        arn: replica.arn.clone(),
        role_arn: input.replication_role_arn,
        status: IN_SYNC.to_owned(),
        status_message: None,
        synced_version: None,
    }];
    // Association fails whole if the first copy fails.
    let next_replica = service
        .copied_to_replica(ctx, &mut next_primary, &replica)
        .await?;
    next_primary.meta.last_changed_ms = service.now_ms();
    service
        .commit(vec![
            Change::Put {
                old: Some(primary.clone()),
                new: next_primary,
            },
            Change::Put {
                old: Some(replica.clone()),
                new: next_replica,
            },
        ])
        .await?;
    Ok(AssociateCrossAccountReplicaResponse {
        arn: Some(primary.arn.clone()),
        cross_account_replica_arn: Some(replica.arn.clone()),
        replication_status: Some(StatusType::InSync),
    })
}

pub async fn disassociate_cross_account_replica(
    service: &SecretsService,
    ctx: &RequestContext,
    input: DisassociateCrossAccountReplicaRequest,
) -> Result<DisassociateCrossAccountReplicaResponse, SecretsError> {
    let _guard = service.writes.lock().await;
    let primary = service.resolve_writable(ctx, &input.secret_id).await?;
    let replica = service.find(ctx, &input.cross_account_replica_arn).await?;
    let linked = |l: &CrossAccountLink| {
        l.arn == input.cross_account_replica_arn || replica.as_ref().is_some_and(|r| l.arn == r.arn)
    };
    let Some(link) = primary
        .meta
        .cross_account_replicas
        .iter()
        .find(|l| linked(l))
        .cloned()
    else {
        return Err(SecretsError::NotAssociated);
    };
    let mut next_primary = (*primary).clone();
    next_primary
        .meta
        .cross_account_replicas
        .retain(|l| !linked(l));
    next_primary.meta.last_changed_ms = service.now_ms();
    let mut changes = vec![Change::Put {
        old: Some(primary.clone()),
        new: next_primary,
    }];
    if let Some(replica) = replica {
        let mut next_replica = (*replica).clone();
        if let Some(l) = next_replica.meta.cross_account_primary.as_mut() {
            l.status = DETACHED.to_owned();
            l.status_message = Some("Replication was stopped by the primary.".to_owned());
        }
        changes.push(Change::Put {
            old: Some(replica),
            new: next_replica,
        });
    }
    service.commit(changes).await?;
    Ok(DisassociateCrossAccountReplicaResponse {
        arn: Some(primary.arn.clone()),
        cross_account_replica_arn: Some(link.arn),
    })
}

impl SecretsService {
    /// The change to the cross-account replica of `primary` after a change, if its current
    /// value moved on; a failed copy is recorded on both sides.
    pub(super) async fn cross_account_changes(
        &self,
        ctx: &RequestContext,
        primary: &mut Secret,
    ) -> Result<Vec<Change>, SecretsError> {
        let Some(link) = primary.meta.cross_account_replicas.first().cloned() else {
            return Ok(Vec::new());
        };
        if link.status == DETACHED
            || primary.version_with(AWSCURRENT).map(str::to_owned) == link.synced_version
        {
            return Ok(Vec::new());
        }
        let Some(replica) = self.load_arn(&link.arn).await? else {
            set_status(
                primary,
                FAILED,
                Some("The replica secret no longer exists."),
            );
            return Ok(Vec::new());
        };
        match self.copied_to_replica(ctx, primary, &replica).await {
            Ok(next) => Ok(vec![Change::Put {
                old: Some(replica),
                new: next,
            }]),
            Err(e) => {
                let api = ApiError::from(e);
                let message = api.message().unwrap_or(api.code()).to_owned();
                set_status(primary, FAILED, Some(&message));
                let mut next = (*replica).clone();
                if let Some(l) = next.meta.cross_account_primary.as_mut() {
                    l.status = FAILED.to_owned();
                    l.status_message = Some(message);
                }
                Ok(vec![Change::Put {
                    old: Some(replica),
                    new: next,
                }])
            }
        }
    }

    /// `replica` with `primary`'s current value copied in (if it has one), both links marked
    /// `InSync`.
    async fn copied_to_replica(
        &self,
        ctx: &RequestContext,
        primary: &mut Secret,
        replica: &Arc<Secret>,
    ) -> Result<Secret, SecretsError> {
        let mut next = (**replica).clone();
        let current = primary
            .version_with(AWSCURRENT)
            .and_then(|id| primary.version(id))
            .cloned();
        if let Some(version) = &current
            && next.version(&version.version_id).is_none()
        {
            let value = self.open_version(ctx, version).await?;
            let target = Target {
                arn: &replica.arn,
                kms_key_id: replica.meta.kms_key_id.as_deref(),
            };
            let now = self.now_ms();
            let sealed = self
                .seal_version(ctx, &target, &version.version_id, now, &value)
                .await?;
            next.put_version(sealed);
            attach(
                &mut next.meta.stages,
                &version.version_id,
                &[AWSCURRENT.to_owned()],
            );
            next.meta.last_changed_ms = now;
        }
        if let Some(l) = next.meta.cross_account_primary.as_mut() {
            l.arn = primary.arn.clone();
            l.status = IN_SYNC.to_owned();
            l.status_message = None;
        }
        set_status(primary, IN_SYNC, None);
        if let Some(l) = primary.meta.cross_account_replicas.first_mut() {
            l.synced_version = current.map(|v| v.version_id.clone());
        }
        Ok(next)
    }
}

fn set_status(primary: &mut Secret, status: &str, message: Option<&str>) {
    for l in &mut primary.meta.cross_account_replicas {
        l.status = status.to_owned();
        l.status_message = message.map(str::to_owned);
    }
}

/// Whether `arn` (full or partial) names `secret`.
fn names_secret(arn: &str, secret: &Secret) -> bool {
    arn == secret.arn
        || super::resolve::parse_secret_arn(arn).is_some_and(|(scope, name)| {
            scope.account == secret.account && scope.region == secret.region && name == secret.name
        })
}
