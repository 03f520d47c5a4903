//! UpdateSecret: description, KMS key, type, and (optionally) a new value.
//!
//! A new value becomes a new version labelled `AWSCURRENT` (`AWSPREVIOUS` moves to the
//! version it left). A new KMS key re-encrypts the versions labelled `AWSCURRENT`,
//! `AWSPENDING` and `AWSPREVIOUS`, as AWS does; older versions keep their key. Reusing a
//! version's id as `ClientRequestToken` with the same value is an idempotent retry (that
//! version's id is answered, no new version made); with another value it is refused:
//! existing versions never change.

use keyhold_proto::secretsmanager::*;
use keyhold_store::SecretVersionRecord;

use super::SecretsService;
use super::error::SecretsError;
use super::secret::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, Secret};
use super::value::{SecretValue, Target};
use crate::context::RequestContext;

pub async fn update_secret(
    service: &SecretsService,
    ctx: &RequestContext,
    input: UpdateSecretRequest,
) -> Result<UpdateSecretResponse, SecretsError> {
    let value = SecretValue::from_request(input.secret_string, input.secret_binary)?;
    if value.is_some() && input.client_request_token.is_none() {
        return Err(SecretsError::TokenRequired);
    }

    let _guard = service.writes.lock().await;
    let secret = service.resolve_writable(ctx, &input.secret_id).await?;
    let mut next = (*secret).clone();
    if let Some(description) = input.description {
        next.meta.description = Some(description).filter(|d| !d.is_empty());
    }
    if let Some(secret_type) = input.r#type {
        next.meta.secret_type = Some(secret_type).filter(|t| !t.is_empty());
    }
    if let Some(key) = input.kms_key_id {
        let key = Some(key).filter(|k| !k.is_empty());
        if key != next.meta.kms_key_id {
            next.meta.kms_key_id = key;
            reencrypt_labelled(service, ctx, &mut next).await?;
        }
    }
    let mut version_id = None;
    if let Some(value) = &value {
        let token = super::create::new_version_id(input.client_request_token);
        match next.version(&token).cloned() {
            // A retry of a call that succeeded: the same value under the same token is that
            // version again, as for PutSecretValue and CreateSecret.
            Some(existing) => {
                let stored = service.open_version(ctx, &existing).await?;
                if !stored.same_as(value) {
                    return Err(SecretsError::VersionExists {
                        token,
                        arn: secret.arn.clone(),
                    });
                }
            }
            None => {
                next = service
                    .with_new_version(ctx, &next, &token, value, &[AWSCURRENT.to_owned()])
                    .await?;
            }
        }
        version_id = Some(token);
    }
    next.meta.last_changed_ms = service.now_ms();
    let stored = service.save(ctx, secret, next).await?;
    Ok(UpdateSecretResponse {
        arn: Some(stored.arn.clone()),
        name: Some(stored.name.clone()),
        version_id,
    })
}

/// Re-encrypts the versions labelled `AWSCURRENT`, `AWSPENDING` or `AWSPREVIOUS` under the
/// secret's (new) key: decrypt as the caller under the old key, encrypt under the new one.
async fn reencrypt_labelled(
    service: &SecretsService,
    ctx: &RequestContext,
    secret: &mut Secret,
) -> Result<(), SecretsError> {
    let labelled: Vec<String> = [AWSCURRENT, AWSPENDING, AWSPREVIOUS]
        .iter()
        .filter_map(|label| secret.version_with(label).map(str::to_owned))
        .collect();
    for version_id in labelled {
        let Some(old) = secret.version(&version_id).cloned() else {
            continue;
        };
        let value = service.open_version(ctx, &old).await?;
        let target = Target {
            arn: &secret.arn,
            kms_key_id: secret.meta.kms_key_id.as_deref(),
        };
        let sealed = service
            .seal_version(ctx, &target, &version_id, old.created_ms, &value)
            .await?;
        secret.put_version(SecretVersionRecord {
            last_accessed_ms: old.last_accessed_ms,
            ..sealed
        });
    }
    Ok(())
}
