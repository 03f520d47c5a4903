//! DeleteSecret and RestoreSecret.
//!
//! A deletion waits out a recovery window of 7 to 30 days (30 by default), during which the
//! secret refuses reads and changes, keeps its name, and can be restored; the background
//! sweeper ([`SecretsService::sweep_deletions`]) purges it when the window ends.
//! `ForceDeleteWithoutRecovery` purges at once, and succeeds for a secret that does not exist.
//! A primary secret with replicas cannot be deleted; nor can a replica (remove its Region from
//! the primary instead).

use keyhold_proto::Timestamp;
use keyhold_proto::secretsmanager::*;

use super::error::SecretsError;
use super::{Change, SecretsService};
use crate::context::RequestContext;

const RECOVERY_WINDOW_DAYS: std::ops::RangeInclusive<i64> = 7..=30;
const DEFAULT_RECOVERY_WINDOW_DAYS: i64 = 30;

pub async fn delete_secret(
    service: &SecretsService,
    ctx: &RequestContext,
    input: DeleteSecretRequest,
) -> Result<DeleteSecretResponse, SecretsError> {
    if let Some(days) = input.recovery_window_in_days
        && !RECOVERY_WINDOW_DAYS.contains(&days)
    {
        return Err(SecretsError::RecoveryWindow);
    }
    let force = input.force_delete_without_recovery == Some(true);
    if force && input.recovery_window_in_days.is_some() {
        return Err(SecretsError::ForceWithRecoveryWindow);
    }

    let _guard = service.writes.lock().await;
    let now = service.now_ms();
    let secret = match service.resolve(ctx, &input.secret_id).await {
        Ok(secret) => secret,
        Err(SecretsError::NotFound) if force => {
            // AWS: forcing the deletion of a secret that does not exist is not an error —
            // for a caller allowed to delete it (IAM decides before the secret is looked
            // up; the every-operation check found this answered to any caller).
            let arn = unknown_arn(ctx, &input.secret_id);
            service.authorize_in_account(ctx, "secretsmanager:DeleteSecret", &arn, &[])?;
            return Ok(DeleteSecretResponse {
                arn: Some(arn),
                name: Some(input.secret_id),
                deletion_date: Some(Timestamp::from_millis(now)),
            });
        }
        Err(e) => return Err(e),
    };
    if secret.is_replica() {
        return Err(SecretsError::ReplicaReadOnly);
    }
    if !secret.meta.replicas.is_empty() {
        return Err(SecretsError::HasReplicas {
            name: secret.name.clone(),
            regions: secret
                .meta
                .replicas
                .iter()
                .map(|r| r.region.clone())
                .collect(),
        });
    }
    if !secret.meta.cross_account_replicas.is_empty() {
        return Err(SecretsError::HasCrossAccountReplica {
            name: secret.name.clone(),
        });
    }
    let response = |deletion_ms| DeleteSecretResponse {
        arn: Some(secret.arn.clone()),
        name: Some(secret.name.clone()),
        deletion_date: Some(Timestamp::from_millis(deletion_ms)),
    };
    if force {
        let answer = response(now);
        service.commit(vec![Change::Delete(secret.clone())]).await?;
        return Ok(answer);
    }
    if secret.is_deleted() {
        return Err(SecretsError::MarkedForDeletion);
    }
    let days = input
        .recovery_window_in_days
        .unwrap_or(DEFAULT_RECOVERY_WINDOW_DAYS);
    let deletion = Timestamp::from_millis(now).plus_days(days).as_millis();
    let mut next = (*secret).clone();
    next.deletion_ms = Some(deletion);
    next.meta.deleted_ms = Some(now);
    next.meta.last_changed_ms = now;
    service.save(ctx, secret.clone(), next).await?;
    Ok(response(deletion))
}

pub async fn restore_secret(
    service: &SecretsService,
    ctx: &RequestContext,
    input: RestoreSecretRequest,
) -> Result<RestoreSecretResponse, SecretsError> {
    let _guard = service.writes.lock().await;
    let secret = service.resolve(ctx, &input.secret_id).await?;
    if secret.is_replica() {
        return Err(SecretsError::ReplicaReadOnly);
    }
    if secret.is_deleted() {
        let mut next = (*secret).clone();
        next.deletion_ms = None;
        next.meta.deleted_ms = None;
        next.meta.last_changed_ms = service.now_ms();
        service.save(ctx, secret.clone(), next).await?;
    }
    Ok(RestoreSecretResponse {
        arn: Some(secret.arn.clone()),
        name: Some(secret.name.clone()),
    })
}

/// What `DeleteSecret` reports as the ARN of a secret it did not find: the ARN given, or the
/// partial ARN of the name.
fn unknown_arn(ctx: &RequestContext, id: &str) -> String {
    if id.starts_with("arn:") {
        id.to_owned()
    } else {
        ctx.scope.arn("secretsmanager", format_args!("secret:{id}"))
    }
}
