//! GetSecretValue, BatchGetSecretValue, PutSecretValue.
//!
//! Reads touch no storage in steady state: the secret and its sealed versions are cached,
//! and KMS decrypts the data key from its own cache. The one write is the access date
//! (`LastAccessedDate`, a date without time), at most once a day per secret and version.

use std::sync::Arc;

use keyhold_proto::secretsmanager::*;
use keyhold_proto::{ApiError, Timestamp};
use keyhold_store::SecretVersionRecord;

use super::error::SecretsError;
use super::filters::Filters;
use super::labels::{attach, check_label_count, detach, prune};
use super::pagination::{List, page};
use super::secret::{AWSCURRENT, AWSPENDING, Secret, day_of};
use super::value::{SecretValue, Target};
use super::{Change, SecretsService};
use crate::context::RequestContext;

/// `BatchGetSecretValue`'s page size when `MaxResults` is absent.
const BATCH_PAGE: usize = 20;

pub async fn get_secret_value(
    service: &SecretsService,
    ctx: &RequestContext,
    input: GetSecretValueRequest,
) -> Result<GetSecretValueResponse, SecretsError> {
    let secret = service.resolve_active(ctx, &input.secret_id).await?;
    let version = select(
        &secret,
        input.version_id.as_deref(),
        input.version_stage.as_deref(),
    )?;
    let value = service.open_version(ctx, &version).await?;
    service.note_access(&secret.arn, &version.version_id).await;
    let (secret_string, secret_binary) = value.into_members();
    Ok(GetSecretValueResponse {
        arn: Some(secret.arn.clone()),
        name: Some(secret.name.clone()),
        version_id: Some(version.version_id.clone()),
        secret_string,
        secret_binary,
        version_stages: Some(secret.labels(&version.version_id).to_vec()),
        created_date: Some(Timestamp::from_millis(version.created_ms)),
    })
}

pub async fn batch_get_secret_value(
    service: &SecretsService,
    ctx: &RequestContext,
    input: BatchGetSecretValueRequest,
) -> Result<BatchGetSecretValueResponse, SecretsError> {
    // AWS requires BatchGetSecretValue, ListSecrets when filtering, and GetSecretValue on
    // each secret (checked per secret: a refusal is that secret's error entry).
    service.authorize_in_account(ctx, "secretsmanager:BatchGetSecretValue", "*", &[])?;
    if input.filters.is_some() {
        service.authorize_in_account(ctx, "secretsmanager:ListSecrets", "*", &[])?;
    }
    let (ids, next_token) = match (input.secret_id_list, input.filters) {
        (Some(ids), None) => {
            if input.max_results.is_some() {
                return Err(SecretsError::BatchMaxResultsWithoutFilters);
            }
            (ids, None)
        }
        (None, Some(filters)) => {
            let filters = Filters::parse(&filters)?;
            let secrets = service.scope_secrets(ctx, false).await?;
            let matching: Vec<Arc<Secret>> =
                secrets.into_iter().filter(|s| filters.matches(s)).collect();
            let size = input
                .max_results
                .and_then(|m| usize::try_from(m).ok())
                .unwrap_or(BATCH_PAGE);
            let (secrets, next) = page(
                List::BatchValues,
                matching,
                input.next_token.as_deref(),
                size,
            )?;
            (secrets.into_iter().map(|s| s.arn.clone()).collect(), next)
        }
        _ => return Err(SecretsError::BatchIdsOrFilters),
    };
    let mut values = Vec::new();
    let mut errors = Vec::new();
    for id in ids {
        match one_value(service, ctx, &id).await {
            Ok(entry) => values.push(entry),
            Err(e) => {
                let api = ApiError::from(e);
                errors.push(APIErrorType {
                    error_code: Some(api.code().to_owned()),
                    message: api.message().map(str::to_owned),
                    secret_id: Some(id),
                });
            }
        }
    }
    Ok(BatchGetSecretValueResponse {
        secret_values: Some(values),
        errors: Some(errors),
        next_token,
    })
}

/// One secret of a batch: its `AWSCURRENT` value, read as GetSecretValue reads it.
async fn one_value(
    service: &SecretsService,
    ctx: &RequestContext,
    id: &str,
) -> Result<SecretValueEntry, SecretsError> {
    let request = GetSecretValueRequest {
        secret_id: id.to_owned(),
        version_id: None,
        version_stage: None,
    };
    let value = get_secret_value(service, ctx, request).await?;
    Ok(SecretValueEntry {
        arn: value.arn,
        name: value.name,
        version_id: value.version_id,
        secret_string: value.secret_string,
        secret_binary: value.secret_binary,
        version_stages: value.version_stages,
        created_date: value.created_date,
    })
}

pub async fn put_secret_value(
    service: &SecretsService,
    ctx: &RequestContext,
    input: PutSecretValueRequest,
) -> Result<PutSecretValueResponse, SecretsError> {
    let token = input
        .client_request_token
        .ok_or(SecretsError::TokenRequired)?;
    let value = SecretValue::from_request(input.secret_string, input.secret_binary)?
        .ok_or(SecretsError::NoValue)?;
    let stages = input
        .version_stages
        .unwrap_or_else(|| vec![AWSCURRENT.to_owned()]);
    // Another node may move AWSCURRENT between this node's read and its write: the store
    // refuses the write, and the labels are decided again on what is stored then.
    crate::write_locks::retry_conflicts(|| {
        put_once(service, ctx, &input.secret_id, &token, &value, &stages)
    })
    .await
}

async fn put_once(
    service: &SecretsService,
    ctx: &RequestContext,
    secret_id: &str,
    token: &str,
    value: &SecretValue,
    stages: &[String],
) -> Result<PutSecretValueResponse, SecretsError> {
    let _guard = service.lock_secret(ctx, secret_id).await?;
    let secret = service.resolve_writable(ctx, secret_id).await?;
    if let Some(existing) = secret
        .version(token)
        .filter(|v| !Secret::is_empty_version(v))
    {
        // Idempotent retry: the same value under the same token changes nothing.
        let stored = service.open_version(ctx, existing).await?;
        if !stored.same_as(value) {
            return Err(SecretsError::VersionExists {
                token: token.to_owned(),
                arn: secret.arn.clone(),
            });
        }
        return Ok(PutSecretValueResponse {
            arn: Some(secret.arn.clone()),
            name: Some(secret.name.clone()),
            version_id: Some(token.to_owned()),
            version_stages: Some(secret.labels(token).to_vec()),
        });
    }
    let next = service
        .with_new_version(ctx, &secret, token, value, stages)
        .await?;
    let stored = service.save(ctx, secret, next).await?;
    Ok(PutSecretValueResponse {
        arn: Some(stored.arn.clone()),
        name: Some(stored.name.clone()),
        version_id: Some(token.to_owned()),
        version_stages: Some(stored.labels(token).to_vec()),
    })
}

impl SecretsService {
    /// `secret` with a new version `version_id` of `value` carrying `stages` (plus
    /// `AWSCURRENT` if it is the first version), pruned as AWS prunes. The version that
    /// loses `AWSCURRENT` keeps `AWSPREVIOUS` and nothing of the rotation (`AWSPENDING`).
    pub(super) async fn with_new_version(
        &self,
        ctx: &RequestContext,
        secret: &Secret,
        version_id: &str,
        value: &SecretValue,
        stages: &[String],
    ) -> Result<Secret, SecretsError> {
        let now = self.now_ms();
        let mut next = secret.clone();
        let mut stages = stages.to_vec();
        if secret.version_with(AWSCURRENT).is_none() && !stages.iter().any(|s| s == AWSCURRENT) {
            stages.push(AWSCURRENT.to_owned());
        }
        let target = Target {
            arn: &secret.arn,
            kms_key_id: secret.meta.kms_key_id.as_deref(),
        };
        let version = self
            .seal_version(ctx, &target, version_id, now, value)
            .await?;
        next.put_version(version);
        let promotes = stages.iter().any(|s| s == AWSCURRENT);
        let previous_current = secret.version_with(AWSCURRENT).map(str::to_owned);
        attach(&mut next.meta.stages, version_id, &stages);
        // A new value made current ends the rotation that left AWSPENDING on the version it
        // replaces (both labels there after UpdateSecretVersionStage promoted it): AWS
        // leaves that version with AWSPREVIOUS only.
        if promotes && let Some(previous) = previous_current.filter(|p| p != version_id) {
            detach(&mut next.meta.stages, &previous, AWSPENDING);
        }
        check_label_count(&next)?;
        let removed = prune(&next, now)?;
        next.versions.retain(|v| !removed.contains(&v.version_id));
        next.meta.last_changed_ms = now;
        if promotes {
            super::rotation::value_changed(&mut next.meta, now);
        }
        Ok(next)
    }

    /// Records that a version was read today, once a day, without waiting for a writer: if
    /// another change holds the write lock, a later read records it.
    pub(super) async fn note_access(&self, arn: &str, version_id: &str) {
        let today = day_of(self.now_ms());
        let fresh = |s: &Secret| {
            s.meta.last_accessed_ms == Some(today)
                && s.version(version_id)
                    .is_none_or(|v| v.last_accessed_ms == Some(today))
        };
        if self.cached(arn).is_none_or(|s| fresh(&s)) {
            return;
        }
        let Some(_guard) = self.writes.try_lock() else {
            return;
        };
        let Some(secret) = self.cached(arn) else {
            return;
        };
        if fresh(&secret) {
            return;
        }
        let mut next = (*secret).clone();
        next.meta.last_accessed_ms = Some(today);
        if let Some(version) = next.version(version_id) {
            let mut version: SecretVersionRecord = (**version).clone();
            version.last_accessed_ms = Some(today);
            next.put_version(version);
        }
        if let Err(e) = self
            .commit(vec![Change::Put {
                old: Some(secret),
                new: next,
            }])
            .await
        {
            tracing::warn!(arn, error = ?e, "could not record the secret's access date");
        }
    }
}

/// The version a read asks for: by id, by label, or `AWSCURRENT`.
fn select(
    secret: &Secret,
    version_id: Option<&str>,
    stage: Option<&str>,
) -> Result<Arc<SecretVersionRecord>, SecretsError> {
    match (version_id, stage) {
        (Some(id), stage) => {
            let version = secret
                .version(id)
                .ok_or_else(|| SecretsError::NoValueForVersion {
                    version_id: id.to_owned(),
                })?;
            if let Some(stage) = stage
                && !secret.labels(id).iter().any(|l| l == stage)
            {
                return Err(SecretsError::StageVersionMismatch);
            }
            if Secret::is_empty_version(version) {
                return Err(SecretsError::NoValueForVersion {
                    version_id: id.to_owned(),
                });
            }
            Ok(version.clone())
        }
        (None, stage) => {
            let stage = stage.unwrap_or(AWSCURRENT);
            secret
                .version_with(stage)
                .and_then(|id| secret.version(id))
                .filter(|v| !Secret::is_empty_version(v))
                .cloned()
                .ok_or_else(|| SecretsError::NoValueForStage {
                    stage: stage.to_owned(),
                })
        }
    }
}
