//! DescribeSecret, ListSecrets (filters and sort), ListSecretVersionIds.
//!
//! As AWS answers: only fields that have a value are returned; versions without staging
//! labels are deprecated and left out of `VersionIdsToStages` and, unless
//! `IncludeDeprecated`, out of `ListSecretVersionIds`.

use std::sync::Arc;

use keyhold_proto::Timestamp;
use keyhold_proto::secretsmanager::*;

use super::SecretsService;
use super::error::SecretsError;
use super::filters::Filters;
use super::pagination::{List, page};
use super::secret::Secret;
use super::tags::to_wire;
use super::value::DEFAULT_KEY_LABEL;
use crate::context::RequestContext;

/// Page size of `ListSecrets` and `ListSecretVersionIds` without `MaxResults`.
const DEFAULT_PAGE: usize = 100;

pub async fn describe_secret(
    service: &SecretsService,
    ctx: &RequestContext,
    input: DescribeSecretRequest,
) -> Result<DescribeSecretResponse, SecretsError> {
    let secret = service.resolve(ctx, &input.secret_id).await?;
    let meta = &secret.meta;
    let rotation = meta.rotation.as_ref();
    let stages = secret.versions_to_stages();
    Ok(DescribeSecretResponse {
        arn: Some(secret.arn.clone()),
        name: Some(secret.name.clone()),
        r#type: meta.secret_type.clone(),
        description: meta.description.clone(),
        kms_key_id: meta.kms_key_id.clone(),
        rotation_enabled: rotation.map(|r| r.enabled),
        rotation_lambda_arn: rotation.and_then(|r| r.lambda_arn.clone()),
        rotation_rules: super::rotation::rules_of(meta),
        external_secret_rotation_metadata: super::rotation::external_metadata_of(meta),
        external_secret_rotation_role_arn: rotation.and_then(|r| r.external_role_arn.clone()),
        last_rotated_date: rotation
            .and_then(|r| r.last_rotated_ms)
            .map(Timestamp::from_millis),
        last_changed_date: Some(Timestamp::from_millis(meta.last_changed_ms)),
        last_accessed_date: meta.last_accessed_ms.map(Timestamp::from_millis),
        deleted_date: meta.deleted_ms.map(Timestamp::from_millis),
        next_rotation_date: super::rotation::next_rotation_of(meta),
        tags: meta.tags.as_deref().map(to_wire),
        version_ids_to_stages: (!stages.is_empty()).then_some(stages),
        owning_service: None,
        created_date: Some(Timestamp::from_millis(secret.created_ms)),
        primary_region: primary_region(&secret),
        replication_status: (!meta.replicas.is_empty())
            .then(|| super::replication::statuses(&secret)),
        cross_account_primary: meta.cross_account_primary.as_ref().map(|l| {
            CrossAccountPrimaryType {
                primary_secret_arn: Some(l.arn.clone()),
                replication_status: StatusType::parse(&l.status),
                status_message: l.status_message.clone(),
            }
        }),
        cross_account_replicas: (!meta.cross_account_replicas.is_empty()).then(|| {
            meta.cross_account_replicas
                .iter()
                .map(|l| CrossAccountReplicaEntry {
                    replica_secret_arn: Some(l.arn.clone()),
                    replication_role_arn: l.role_arn.clone(),
                    replication_status: StatusType::parse(&l.status),
                    status_message: l.status_message.clone(),
                })
                .collect()
        }),
    })
}

pub async fn list_secrets(
    service: &SecretsService,
    ctx: &RequestContext,
    input: ListSecretsRequest,
) -> Result<ListSecretsResponse, SecretsError> {
    service.authorize_in_account(ctx, "secretsmanager:ListSecrets", "*", &[])?;
    let filters = Filters::parse(input.filters.as_deref().unwrap_or_default())?;
    let include_deleted = input.include_planned_deletion == Some(true);
    let mut secrets: Vec<Arc<Secret>> = service
        .scope_secrets(ctx, include_deleted)
        .await?
        .into_iter()
        .filter(|s| filters.matches(s))
        .collect();
    let sort_by = input.sort_by.unwrap_or(SortByType::CreatedDate);
    secrets.sort_by(|a, b| {
        let key = |s: &Secret| match sort_by {
            SortByType::CreatedDate => (s.created_ms, String::new()),
            SortByType::LastChangedDate => (s.meta.last_changed_ms, String::new()),
            SortByType::LastAccessedDate => (s.meta.last_accessed_ms.unwrap_or(0), String::new()),
            SortByType::Name => (0, s.name.clone()),
        };
        (key(a), &a.arn).cmp(&(key(b), &b.arn))
    });
    if input.sort_order == Some(SortOrderType::Desc) {
        secrets.reverse();
    }
    let size = input
        .max_results
        .and_then(|m| usize::try_from(m).ok())
        .unwrap_or(DEFAULT_PAGE);
    let (secrets, next_token) = page(List::Secrets, secrets, input.next_token.as_deref(), size)?;
    Ok(ListSecretsResponse {
        secret_list: Some(secrets.iter().map(|s| list_entry(s)).collect()),
        next_token,
    })
}

pub async fn list_secret_version_ids(
    service: &SecretsService,
    ctx: &RequestContext,
    input: ListSecretVersionIdsRequest,
) -> Result<ListSecretVersionIdsResponse, SecretsError> {
    let secret = service.resolve_active(ctx, &input.secret_id).await?;
    let include_deprecated = input.include_deprecated == Some(true);
    let versions: Vec<SecretVersionsListEntry> = secret
        .versions
        .iter()
        .filter(|v| include_deprecated || !secret.labels(&v.version_id).is_empty())
        .map(|v| {
            let labels = secret.labels(&v.version_id);
            SecretVersionsListEntry {
                version_id: Some(v.version_id.clone()),
                version_stages: (!labels.is_empty()).then(|| labels.to_vec()),
                last_accessed_date: v.last_accessed_ms.map(Timestamp::from_millis),
                created_date: Some(Timestamp::from_millis(v.created_ms)),
                kms_key_ids: Some(vec![
                    v.kms_key_id
                        .clone()
                        .unwrap_or_else(|| DEFAULT_KEY_LABEL.to_owned()),
                ]),
            }
        })
        .collect();
    let size = input
        .max_results
        .and_then(|m| usize::try_from(m).ok())
        .unwrap_or(DEFAULT_PAGE);
    let (versions, next_token) = page(List::Versions, versions, input.next_token.as_deref(), size)?;
    Ok(ListSecretVersionIdsResponse {
        arn: Some(secret.arn.clone()),
        name: Some(secret.name.clone()),
        versions: Some(versions),
        next_token,
    })
}

impl SecretsService {
    /// Every secret of the caller's account and Region (the cached copy where there is one),
    /// without those scheduled for deletion unless asked.
    pub(super) async fn scope_secrets(
        &self,
        ctx: &RequestContext,
        include_deleted: bool,
    ) -> Result<Vec<Arc<Secret>>, SecretsError> {
        let records = self
            .store
            .list_secrets(&ctx.scope.account, &ctx.scope.region)
            .await?;
        let mut out = Vec::with_capacity(records.len());
        for record in records {
            let secret = match self.cached(&record.arn) {
                Some(cached) => cached,
                // Metadata only: enough to list, never cached.
                None => Arc::new(Secret::from_records(record, Vec::new())?),
            };
            if include_deleted || !secret.is_deleted() {
                out.push(secret);
            }
        }
        Ok(out)
    }
}

fn list_entry(secret: &Secret) -> SecretListEntry {
    let meta = &secret.meta;
    let rotation = meta.rotation.as_ref();
    let stages = secret.versions_to_stages();
    SecretListEntry {
        arn: Some(secret.arn.clone()),
        name: Some(secret.name.clone()),
        r#type: meta.secret_type.clone(),
        description: meta.description.clone(),
        kms_key_id: meta.kms_key_id.clone(),
        rotation_enabled: rotation.map(|r| r.enabled),
        rotation_lambda_arn: rotation.and_then(|r| r.lambda_arn.clone()),
        rotation_rules: super::rotation::rules_of(meta),
        external_secret_rotation_metadata: super::rotation::external_metadata_of(meta),
        external_secret_rotation_role_arn: rotation.and_then(|r| r.external_role_arn.clone()),
        last_rotated_date: rotation
            .and_then(|r| r.last_rotated_ms)
            .map(Timestamp::from_millis),
        last_changed_date: Some(Timestamp::from_millis(meta.last_changed_ms)),
        last_accessed_date: meta.last_accessed_ms.map(Timestamp::from_millis),
        deleted_date: meta.deleted_ms.map(Timestamp::from_millis),
        next_rotation_date: super::rotation::next_rotation_of(meta),
        tags: meta.tags.as_deref().map(to_wire),
        secret_versions_to_stages: (!stages.is_empty()).then_some(stages),
        owning_service: None,
        created_date: Some(Timestamp::from_millis(secret.created_ms)),
        primary_region: primary_region(secret),
    }
}

/// The Region the secret was created in, for replicated secrets and replicas.
pub(super) fn primary_region(secret: &Secret) -> Option<String> {
    if let Some(primary) = &secret.meta.primary_arn {
        return crate::arn::Arn::parse(primary).map(|a| a.region.to_owned());
    }
    (!secret.meta.replicas.is_empty()).then(|| secret.region.clone())
}
