//! CreateSecret.
//!
//! A new secret gets the ARN `arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX`
//! (six random characters, so that a new secret of a deleted one's name gets a new ARN). With
//! a value it gets its first version, labelled `AWSCURRENT`, encrypted under `KmsKeyId` (by
//! default the AWS-managed `aws/secretsmanager`, which KMS creates on first use). A name
//! stays taken while its secret is scheduled for deletion.

use std::collections::BTreeMap;
use std::sync::Arc;

use keyhold_proto::kms::KeyManagerType;
use keyhold_proto::secretsmanager::*;

use super::error::SecretsError;
use super::password::random_string;
use super::resolve::{check_name, parse_secret_arn};
use super::secret::{AWSCURRENT, CrossAccountLink, Meta, Secret};
use super::tags::checked_tags;
use super::value::{SecretValue, Target};
use super::{Change, SecretsService};
use crate::arn::Scope;
use crate::context::RequestContext;

const SUFFIX_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

pub async fn create_secret(
    service: &SecretsService,
    ctx: &RequestContext,
    input: CreateSecretRequest,
) -> Result<CreateSecretResponse, SecretsError> {
    check_name(&input.name)?;
    let value = SecretValue::from_request(input.secret_string, input.secret_binary)?;
    if value.is_some() && input.client_request_token.is_none() {
        return Err(SecretsError::TokenRequired);
    }
    let tags = input.tags.as_deref().map(checked_tags).transpose()?;
    let kms_key_id = input.kms_key_id.filter(|k| !k.is_empty());
    let replica_regions = input.add_replica_regions.unwrap_or_default();
    let cross_account_primary = match &input.cross_account_primary_arn {
        Some(primary) => Some(cross_account_primary(
            ctx,
            primary,
            value.is_some(),
            &replica_regions,
            &kms_key_id,
        )?),
        None => None,
    };

    let mut conditions = vec![("secretsmanager:name", input.name.clone())];
    if let Some(description) = &input.description {
        conditions.push(("secretsmanager:description", description.clone()));
    }
    if let Some(key) = &kms_key_id {
        conditions.push(("secretsmanager:kmskeyid", key.clone()));
    }

    let _guard = service.writes.lock().await;
    let scope = &ctx.scope;
    if let Some(existing) = service
        .load_name(&scope.account, &scope.region, &input.name)
        .await?
    {
        service.authorize_in_account(
            ctx,
            "secretsmanager:CreateSecret",
            &existing.arn,
            &conditions,
        )?;
        if existing.is_deleted() {
            return Err(SecretsError::NameScheduledForDeletion);
        }
        return retried_create(service, ctx, existing, input.client_request_token, value).await;
    }

    let now = service.now_ms();
    let arn = new_arn(scope, &input.name)?;
    service.authorize_in_account(ctx, "secretsmanager:CreateSecret", &arn, &conditions)?;
    let mut secret = Secret {
        arn: arn.clone(),
        account: scope.account.clone(),
        region: scope.region.clone(),
        name: input.name,
        created_ms: now,
        deletion_ms: None,
        meta: Meta {
            description: input.description.filter(|d| !d.is_empty()),
            kms_key_id,
            tags: tags.filter(|t| !t.is_empty()),
            last_changed_ms: now,
            secret_type: input.r#type.filter(|t| !t.is_empty()),
            ..Meta::default()
        },
        versions: Vec::new(),
        revision: 0,
    };
    if let Some(link) = cross_account_primary {
        // A cross-account replica is encrypted under a key the primary's owner can use: keep
        // the key's ARN, resolved now in the replica owner's account.
        let key = secret.meta.kms_key_id.as_deref().unwrap_or_default();
        let metadata = service
            .kms
            .describe_key_for(ctx, "secretsmanager", key)
            .await
            .map_err(SecretsError::from_kms_encrypt)?;
        if metadata.key_manager == Some(KeyManagerType::Aws) {
            return Err(customer_key_required());
        }
        secret.meta.kms_key_id = metadata.arn;
        secret.meta.cross_account_primary = Some(link);
    }
    let mut version_id = None;
    if let Some(value) = &value {
        let id = new_version_id(input.client_request_token);
        let target = Target {
            arn: &arn,
            kms_key_id: secret.meta.kms_key_id.as_deref(),
        };
        let version = service.seal_version(ctx, &target, &id, now, value).await?;
        secret.put_version(version);
        secret.meta.stages = BTreeMap::from([(id.clone(), vec![AWSCURRENT.to_owned()])]);
        version_id = Some(id);
    }

    let mut changes = Vec::new();
    let statuses = if replica_regions.is_empty() {
        None
    } else {
        let force = input.force_overwrite_replica_secret == Some(true);
        let (replicas, replica_changes) = service
            .new_replicas(ctx, &secret, &replica_regions, force)
            .await?;
        secret.meta.replicas = replicas;
        changes = replica_changes;
        Some(super::replication::statuses(&secret))
    };
    changes.insert(
        0,
        Change::Put {
            old: None,
            new: secret,
        },
    );
    let stored = service.commit(changes).await?;
    let secret = stored.first().ok_or(SecretsError::Internal)?;
    Ok(CreateSecretResponse {
        arn: Some(secret.arn.clone()),
        name: Some(secret.name.clone()),
        version_id,
        replication_status: statuses,
    })
}

/// A `CreateSecret` for a name already in use: the retry of a call that succeeded (same
/// token, same value) answers as the first call did; a token naming one of its versions
/// with another value is refused as PutSecretValue refuses it; anything else is refused
/// because the name exists.
async fn retried_create(
    service: &SecretsService,
    ctx: &RequestContext,
    existing: Arc<Secret>,
    token: Option<String>,
    value: Option<SecretValue>,
) -> Result<CreateSecretResponse, SecretsError> {
    let exists = || SecretsError::Exists {
        name: existing.name.clone(),
    };
    let (Some(token), Some(value)) = (token, value) else {
        return Err(exists());
    };
    let Some(version) = existing.version(&token) else {
        return Err(exists());
    };
    if existing.account != ctx.scope.account {
        return Err(exists());
    }
    // The token names a version of this secret: AWS says so, rather than that the name is
    // taken, when the value differs.
    let stored = service.open_version(ctx, version).await?;
    if !stored.same_as(&value) {
        return Err(SecretsError::VersionExists {
            token,
            arn: existing.arn.clone(),
        });
    }
    Ok(CreateSecretResponse {
        arn: Some(existing.arn.clone()),
        name: Some(existing.name.clone()),
        version_id: Some(token),
        replication_status: None,
    })
}

/// The replication link of a replica created for a primary in another account.
fn cross_account_primary(
    ctx: &RequestContext,
    primary: &str,
    has_value: bool,
    replica_regions: &[ReplicaRegionType],
    kms_key_id: &Option<String>,
) -> Result<CrossAccountLink, SecretsError> {
    let invalid = |detail| SecretsError::InvalidCrossAccountReplica { detail };
    let Some((scope, _)) = parse_secret_arn(primary) else {
        return Err(invalid(
            "CrossAccountPrimaryARN must be the ARN of a secret.",
        ));
    };
    if scope.account == ctx.scope.account || scope.region != ctx.scope.region {
        return Err(invalid(
            "CrossAccountPrimaryARN must name a secret of another account in this Region.",
        ));
    }
    if has_value {
        return Err(invalid(
            "A cross-account replica takes its value from the primary secret: don't specify \
             SecretString or SecretBinary.",
        ));
    }
    if !replica_regions.is_empty() {
        return Err(invalid(
            "A cross-account replica can't be replicated to other Regions.",
        ));
    }
    // An AWS-managed alias is refused here; a key named by id or ARN is checked once KMS
    // has described it (create_secret).
    if kms_key_id
        .as_deref()
        .is_none_or(|k| k.starts_with("alias/aws/"))
    {
        return Err(customer_key_required());
    }
    Ok(CrossAccountLink {
        arn: primary.to_owned(),
        role_arn: None,
        status: "Pending".to_owned(),
        status_message: None,
        synced_version: None,
    })
}

/// A cross-account replica's key must be one the primary's owner can be allowed to use.
fn customer_key_required() -> SecretsError {
    SecretsError::InvalidCrossAccountReplica {
        detail: "A cross-account replica must be encrypted with a customer managed KMS key: \
                 specify KmsKeyId.",
    }
}

/// A fresh ARN for a secret named `name`.
pub fn new_arn(scope: &Scope, name: &str) -> Result<String, SecretsError> {
    let suffix = random_string(SUFFIX_ALPHABET, 6)?;
    Ok(scope.arn("secretsmanager", format_args!("secret:{name}-{suffix}")))
}

/// The id of a new version: the request's token, or a fresh UUID.
pub fn new_version_id(token: Option<String>) -> String {
    token.unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}
