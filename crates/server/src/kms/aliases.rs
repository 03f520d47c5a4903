//! Aliases: CreateAlias, UpdateAlias, DeleteAlias, ListAliases.

use std::sync::Arc;

use keyhold_proto::Timestamp;
use keyhold_proto::kms::*;
use keyhold_store::{AliasRecord, StoreError};

use super::authz::Facts;
use super::error::KmsError;
use super::key::Key;
use super::managed::ManagedKey;
use super::pagination::{List, page};
use super::resolve::Aliases;
use super::{AliasId, KmsService};
use crate::context::RequestContext;

/// The predefined aliases of AWS services Keyhold does not serve, which a new AWS account
/// lists (as recorded from ListAliases on AWS) before anything uses them. The managed keys
/// of Secrets Manager and Parameter Store come from [`ManagedKey`].
const PREDEFINED_ALIASES: &[&str] = &[
    "alias/aws/dynamodb",
    "alias/aws/ebs",
    "alias/aws/elasticfilesystem",
    "alias/aws/es",
    "alias/aws/glue",
    "alias/aws/kinesisvideo",
    "alias/aws/rds",
    "alias/aws/redshift",
    "alias/aws/s3",
    "alias/aws/xray",
];

/// A key can have at most this many aliases.
const ALIASES_PER_KEY: usize = 50;

/// `CreateAlias`: `kms:CreateAlias` on the alias (identity policies) and on the key (its
/// key policy), as on AWS.
pub async fn create_alias(
    kms: &KmsService,
    ctx: &RequestContext,
    input: CreateAliasRequest,
) -> Result<(), KmsError> {
    const ACTION: &str = "kms:CreateAlias";
    let name = &input.alias_name;
    check_alias_name(name)?;
    if input.target_key_id.starts_with("alias/") {
        return Err(KmsError::AliasTargetIsAlias);
    }
    let scope = &ctx.scope;
    let alias_arn = scope.arn("kms", name);
    let facts = alias_facts(name);
    kms.authorize_alias(ctx, ACTION, &alias_arn, &facts)?;
    let _guard = kms.writes.lock().await;
    let key = kms
        .resolve(ctx, &input.target_key_id, Aliases::NotAllowed)
        .await?;
    kms.authorize(ctx, &key, ACTION, &facts)?;
    key.check_not_pending_deletion()?;
    if key.record.account != scope.account {
        return Err(KmsError::KeyNotFound {
            arn: scope.arn("kms", format_args!("key/{}", key.wire_key_id())),
        });
    }
    let existing = kms
        .store
        .list_aliases(&scope.account, &scope.region, Some(&key.record.key_id))
        .await?;
    if existing.len() >= ALIASES_PER_KEY {
        return Err(KmsError::AliasesPerKeyLimit);
    }
    let now = kms.clock.now().as_millis();
    let record = AliasRecord {
        account: scope.account.clone(),
        region: scope.region.clone(),
        name: name.clone(),
        target_key_id: key.record.key_id.clone(),
        creation_ms: now,
        updated_ms: now,
    };
    match kms.store.insert_alias(&record).await {
        Ok(()) => {}
        Err(StoreError::AlreadyExists) => return Err(KmsError::AliasExists { alias_arn }),
        Err(e) => return Err(e.into()),
    }
    key.aliases.add(name);
    kms.alias_cache_put(alias_id(ctx, name), record.target_key_id);
    Ok(())
}

/// `UpdateAlias`: `kms:UpdateAlias` on the alias (identity policies), on the key it points
/// to now and on the new target key (their key policies), as on AWS. Without the first
/// two, any principal allowed on a key of its own could repoint every alias of the account
/// at that key.
pub async fn update_alias(
    kms: &KmsService,
    ctx: &RequestContext,
    input: UpdateAliasRequest,
) -> Result<(), KmsError> {
    const ACTION: &str = "kms:UpdateAlias";
    let name = &input.alias_name;
    check_alias_name(name)?;
    if input.target_key_id.starts_with("alias/") {
        return Err(KmsError::AliasTargetIsAlias);
    }
    let scope = &ctx.scope;
    let alias_arn = scope.arn("kms", name);
    let facts = alias_facts(name);
    kms.authorize_alias(ctx, ACTION, &alias_arn, &facts)?;
    let _guard = kms.writes.lock().await;
    let current = kms
        .store
        .get_alias(&scope.account, &scope.region, name)
        .await?
        .ok_or_else(|| KmsError::AliasNotFound {
            alias_arn: alias_arn.clone(),
        })?;
    let old = target_of(kms, &current).await?;
    kms.authorize(ctx, &old, ACTION, &facts)?;
    let key = kms
        .resolve(ctx, &input.target_key_id, Aliases::NotAllowed)
        .await?;
    kms.authorize(ctx, &key, ACTION, &facts)?;
    key.check_not_pending_deletion()?;
    // Same type (symmetric, asymmetric or HMAC) and usage; RSA ↔ ECC is allowed.
    if old.usage != key.usage || key_type(old.spec) != key_type(key.spec) {
        return Err(KmsError::AliasKeyTypeMismatch);
    }
    let existing = kms
        .store
        .list_aliases(&scope.account, &scope.region, Some(&key.record.key_id))
        .await?;
    if existing.len() >= ALIASES_PER_KEY {
        return Err(KmsError::AliasesPerKeyLimit);
    }
    let now = kms.clock.now().as_millis();
    match kms
        .store
        .update_alias(
            &scope.account,
            &scope.region,
            name,
            &current.target_key_id,
            &key.record.key_id,
            now,
        )
        .await
    {
        Ok(()) => {}
        Err(StoreError::NotFound) => return Err(KmsError::AliasNotFound { alias_arn }),
        Err(e) => return Err(e.into()),
    }
    old.aliases.remove(name);
    key.aliases.add(name);
    kms.alias_cache_put(alias_id(ctx, name), key.record.key_id.clone());
    Ok(())
}

/// `DeleteAlias`: `kms:DeleteAlias` on the alias (identity policies) and on its key (the
/// key policy); neither is ever skipped.
pub async fn delete_alias(
    kms: &KmsService,
    ctx: &RequestContext,
    input: DeleteAliasRequest,
) -> Result<(), KmsError> {
    const ACTION: &str = "kms:DeleteAlias";
    let name = match input.alias_name.strip_prefix("arn:") {
        Some(_) => alias_name_of_arn(ctx, &input.alias_name)?,
        None => input.alias_name.clone(),
    };
    if !name.starts_with("alias/") {
        return Err(KmsError::AliasPrefix);
    }
    if name.starts_with("alias/aws/") {
        return Err(KmsError::AliasReserved);
    }
    let scope = &ctx.scope;
    let alias_arn = scope.arn("kms", &name);
    let facts = alias_facts(&name);
    kms.authorize_alias(ctx, ACTION, &alias_arn, &facts)?;
    let _guard = kms.writes.lock().await;
    let alias = kms
        .store
        .get_alias(&scope.account, &scope.region, &name)
        .await?
        .ok_or_else(|| KmsError::AliasNotFound {
            alias_arn: alias_arn.clone(),
        })?;
    let key = target_of(kms, &alias).await?;
    kms.authorize(ctx, &key, ACTION, &facts)?;
    match kms
        .store
        .delete_alias(&scope.account, &scope.region, &name, &alias.target_key_id)
        .await
    {
        Ok(()) | Err(StoreError::NotFound) => {}
        Err(e) => return Err(e.into()),
    }
    key.aliases.remove(&name);
    kms.alias_cache_remove(&alias_id(ctx, &name));
    Ok(())
}

/// The key an existing alias points at. Aliases are deleted with their key in one
/// transaction, so a missing target is a broken store: refused (fail closed), never
/// treated as "nothing to authorize".
async fn target_of(kms: &KmsService, alias: &AliasRecord) -> Result<Arc<Key>, KmsError> {
    kms.load(&alias.target_key_id).await?.ok_or_else(|| {
        tracing::error!(alias = %alias.name, key_id = %alias.target_key_id, "alias points at a key that does not exist");
        KmsError::Internal
    })
}

fn alias_facts(name: &str) -> Facts<'_> {
    Facts {
        alias_name: Some(name),
        ..Facts::default()
    }
}

pub async fn list_aliases(
    kms: &KmsService,
    ctx: &RequestContext,
    input: ListAliasesRequest,
) -> Result<ListAliasesResponse, KmsError> {
    let scope = &ctx.scope;
    let key_filter = match &input.key_id {
        Some(id) => {
            let key = kms.resolve(ctx, id, Aliases::NotAllowed).await?;
            kms.authorize(ctx, &key, "kms:ListAliases", &Facts::default())?;
            Some(key.record.key_id.clone())
        }
        None => {
            kms.authorize_account(ctx, "kms:ListAliases")?;
            None
        }
    };
    let records = kms
        .store
        .list_aliases(&scope.account, &scope.region, key_filter.as_deref())
        .await?;
    let mut entries: Vec<AliasListEntry> = records
        .into_iter()
        .map(|r| AliasListEntry {
            alias_arn: Some(scope.arn("kms", &r.name)),
            alias_name: Some(r.name),
            target_key_id: Some(super::multi_region::wire_id(&r.target_key_id).to_owned()),
            creation_date: Some(Timestamp::from_millis(r.creation_ms)),
            last_updated_date: Some(Timestamp::from_millis(r.updated_ms)),
        })
        .collect();
    if key_filter.is_none() {
        // AWS lists the predefined aliases of AWS-managed keys before the keys exist,
        // without a TargetKeyId.
        let predefined = ManagedKey::ALL
            .iter()
            .map(|m| m.alias())
            .chain(PREDEFINED_ALIASES.iter().copied());
        for name in predefined {
            if !entries
                .iter()
                .any(|e| e.alias_name.as_deref() == Some(name))
            {
                entries.push(AliasListEntry {
                    alias_name: Some(name.to_owned()),
                    alias_arn: Some(scope.arn("kms", name)),
                    ..AliasListEntry::default()
                });
            }
        }
        entries.sort_by(|a, b| a.alias_name.cmp(&b.alias_name));
    }
    let page = page(
        List::Aliases,
        entries,
        |e| e.alias_name.as_deref().unwrap_or_default(),
        input.marker.as_deref(),
        input.limit,
    )?;
    Ok(ListAliasesResponse {
        truncated: Some(page.truncated()),
        next_marker: page.next_marker,
        aliases: Some(page.items),
    })
}

/// AWS's rules for a new alias name, beyond the model's pattern.
fn check_alias_name(name: &str) -> Result<(), KmsError> {
    if !name.starts_with("alias/") {
        return Err(KmsError::AliasPrefix);
    }
    if name.starts_with("alias/aws/") {
        return Err(KmsError::AliasReserved);
    }
    if name.contains(':') || name.len() <= "alias/".len() {
        return Err(KmsError::AliasInvalidCharacters {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// `arn:aws:kms:REGION:ACCOUNT:alias/NAME` → `alias/NAME` (of the caller's account and region).
fn alias_name_of_arn(ctx: &RequestContext, arn: &str) -> Result<String, KmsError> {
    let parsed = crate::arn::Arn::parse(arn).ok_or(KmsError::InvalidArn)?;
    if parsed.service != "kms" || !parsed.resource.starts_with("alias/") {
        return Err(KmsError::InvalidArn);
    }
    if parsed.region != ctx.scope.region {
        return Err(KmsError::ArnOfOtherRegion {
            region: parsed.region.to_owned(),
        });
    }
    if parsed.account != ctx.scope.account {
        return Err(KmsError::AliasNotFound {
            alias_arn: arn.to_owned(),
        });
    }
    Ok(parsed.resource.to_owned())
}

fn alias_id(ctx: &RequestContext, name: &str) -> AliasId {
    AliasId {
        account: ctx.scope.account.clone(),
        region: ctx.scope.region.clone(),
        name: name.to_owned(),
    }
}

/// A key's type for `UpdateAlias`: symmetric encryption, HMAC, or asymmetric.
fn key_type(spec: KeySpec) -> u8 {
    match spec {
        KeySpec::SymmetricDefault => 0,
        KeySpec::Hmac224 | KeySpec::Hmac256 | KeySpec::Hmac384 | KeySpec::Hmac512 => 1,
        _ => 2,
    }
}
