//! Grants: CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant.
//!
//! A grant is written to the store first and then to the key's in-memory [`super::grant::KeyGrants`]
//! (under the service's write lock), so it takes effect — and a retired or revoked one
//! stops — as soon as the call returns. See [`super::authz`] for how grants allow calls and
//! [`super::grant_token`] for grant tokens.

use std::collections::BTreeMap;
use std::sync::Arc;

use keyhold_proto::kms::*;
use keyhold_store::StoreError;

use super::KmsService;
use super::authz::{Facts, Naming, is_explicit, naming};
use super::crypto_ops::dry_run;
use super::error::KmsError;
use super::grant::{Constraint, Grant, supports, takes_encryption_context};
use super::key::Key;
use super::pagination::{List, page};
use super::resolve::Aliases;
use crate::arn::{Arn, Scope, is_account_id};
use crate::authz::{Denied, DenyReason};
use crate::context::RequestContext;

/// AWS's quota of grants per KMS key (not adjustable).
pub const GRANTS_PER_KEY: usize = 50_000;
/// AWS's limits on a constraint: pairs per constraint, characters per value.
const CONSTRAINT_PAIRS: usize = 8;
const CONSTRAINT_VALUE_CHARS: usize = 384;

pub async fn create_grant(
    kms: &KmsService,
    ctx: &RequestContext,
    input: CreateGrantRequest,
) -> Result<CreateGrantResponse, KmsError> {
    if input.grantee_service_principal.is_some() || input.retiring_service_principal.is_some() {
        return Err(KmsError::Unsupported {
            what: "grants for service principals".into(),
        });
    }
    let grantee = input.grantee_principal.ok_or(KmsError::GranteeRequired)?;
    check_principal(&grantee)?;
    if let Some(retiring) = &input.retiring_principal {
        check_principal(retiring)?;
    }
    let mut operations: Vec<GrantOperation> = Vec::with_capacity(input.operations.len());
    for op in input.operations {
        if !operations.contains(&op) {
            operations.push(op);
        }
    }
    match operations.as_slice() {
        [] => return Err(KmsError::GrantOperationsEmpty),
        [GrantOperation::CreateGrant] => return Err(KmsError::GrantOnlyCreateGrant),
        _ => {}
    }
    let constraint = input.constraints.map(constraint).transpose()?.flatten();
    kms.check_grant_tokens(input.grant_tokens.as_deref())
        .await?;

    let _guard = kms.writes.lock().await;
    let key = kms.resolve(ctx, &input.key_id, Aliases::NotAllowed).await?;
    let new = Grant {
        id: new_grant_id()?,
        key_id: key.record.key_id.clone(),
        name: input.name,
        grantee,
        retiring: input.retiring_principal,
        operations,
        constraint,
        issuing_account: key.record.account.clone(),
        creation_ms: kms.clock.now().as_millis(),
    };
    let facts = Facts {
        encryption_context: new.constraint.as_ref().map(Constraint::pairs),
        new_grant: Some(&new),
        ..Facts::default()
    };
    kms.authorize(ctx, &key, "kms:CreateGrant", &facts)?;
    // Only an authorized caller learns what the key supports.
    check_against_key(&key, &new.operations, new.constraint.as_ref())?;
    key.check_usable()?;
    dry_run(input.dry_run)?;

    // With a name, the same grant asked for again is the grant already made.
    let existing = match new.name {
        Some(_) => key.grants.find_same(&new),
        None => None,
    };
    let grant = match existing {
        Some(grant) => grant,
        None => {
            if key.grants.len() >= GRANTS_PER_KEY {
                return Err(KmsError::GrantsPerKeyLimit {
                    limit: GRANTS_PER_KEY,
                });
            }
            kms.store.insert_grant(&new.to_record()).await?;
            let grant = Arc::new(new);
            if !key.grants.insert(grant.clone()) {
                return Err(KmsError::Internal);
            }
            grant
        }
    };
    let token = kms.mint_grant_token(&key, &grant.id).await?;
    Ok(CreateGrantResponse {
        grant_id: Some(grant.id.clone()),
        grant_token: Some(token),
    })
}

pub async fn list_grants(
    kms: &KmsService,
    ctx: &RequestContext,
    input: ListGrantsRequest,
) -> Result<ListGrantsResponse, KmsError> {
    if input.grant_id.as_deref().is_some_and(|id| !is_grant_id(id)) {
        return Err(KmsError::InvalidGrantId);
    }
    let key = kms.resolve(ctx, &input.key_id, Aliases::NotAllowed).await?;
    kms.authorize(ctx, &key, "kms:ListGrants", &Facts::default())?;
    let grants: Vec<Arc<Grant>> = key
        .grants
        .all()
        .into_iter()
        .filter(|g| input.grant_id.as_ref().is_none_or(|id| *id == g.id))
        .filter(|g| {
            input
                .grantee_principal
                .as_ref()
                .is_none_or(|p| *p == g.grantee)
        })
        // Keyhold has no grants for service principals.
        .filter(|_| input.grantee_service_principal.is_none())
        .collect();
    let page = page(
        List::Grants,
        grants,
        |g| &g.id,
        input.marker.as_deref(),
        input.limit,
    )?;
    let partition = crate::arn::partition_of(&key.record.region);
    Ok(ListGrantsResponse {
        truncated: Some(page.truncated()),
        next_marker: page.next_marker,
        grants: Some(
            page.items
                .iter()
                .map(|g| g.to_entry(key.arn(), partition))
                .collect(),
        ),
    })
}

pub async fn list_retirable_grants(
    kms: &KmsService,
    ctx: &RequestContext,
    input: ListRetirableGrantsRequest,
) -> Result<ListGrantsResponse, KmsError> {
    let Some(principal) = input.retiring_principal else {
        return Err(match input.retiring_service_principal {
            Some(_) => KmsError::Unsupported {
                what: "grants for service principals".into(),
            },
            None => KmsError::RetiringPrincipalRequired,
        });
    };
    let account = check_principal(&principal)?;
    kms.authorize_retiring_principal(ctx, &principal, &account)?;
    let region = &ctx.scope.region;
    let mut grants = Vec::new();
    for record in kms.store.retirable_grants(&principal, region).await? {
        let grant_id = record.grant_id.clone();
        let grant = Grant::from_record(record).ok_or_else(|| {
            tracing::error!(grant_id, "stored grant cannot be read");
            KmsError::Internal
        })?;
        grants.push(grant);
    }
    let page = page(
        List::RetirableGrants,
        grants,
        |g| &g.id,
        input.marker.as_deref(),
        input.limit,
    )?;
    let entries = page
        .items
        .iter()
        .map(|g| {
            // A grant's issuing account is its key's account.
            let scope = Scope::new(g.issuing_account.as_str(), region.as_str());
            let key_arn = scope.arn(
                "kms",
                format_args!("key/{}", super::multi_region::wire_id(&g.key_id)),
            );
            g.to_entry(&key_arn, scope.partition)
        })
        .collect();
    Ok(ListGrantsResponse {
        truncated: Some(page.truncated()),
        next_marker: page.next_marker,
        grants: Some(entries),
    })
}

pub async fn retire_grant(
    kms: &KmsService,
    ctx: &RequestContext,
    input: RetireGrantRequest,
) -> Result<(), KmsError> {
    let named = match &input.grant_token {
        Some(token) => Some(kms.open_grant_token(token).await?),
        None => None,
    };
    let grant_id = match (&named, &input.grant_id, &input.key_id) {
        (Some(named), Some(id), _) if *id != named.grant_id => {
            return Err(KmsError::GrantNotFound {
                grant_id: id.clone(),
            });
        }
        (Some(named), _, _) => named.grant_id.clone(),
        (None, Some(id), Some(_)) if is_grant_id(id) => id.clone(),
        (None, Some(_), Some(_)) => return Err(KmsError::InvalidGrantId),
        (None, _, _) => return Err(KmsError::RetireGrantTarget),
    };
    let not_found = || KmsError::GrantNotFound {
        grant_id: grant_id.clone(),
    };

    let _guard = kms.writes.lock().await;
    let key = match (&input.key_id, &named) {
        (Some(key_id), _) => kms.resolve(ctx, key_id, Aliases::NotAllowed).await?,
        // A token names its key by the 16-byte id: a single-Region key, or the multi-Region
        // key's row in the caller's region.
        (None, Some(named)) => match super::key::parse_key_uuid(&named.key_id) {
            Some(id) => kms.load_for_ciphertext(id, &ctx.scope.region).await?,
            None => None,
        }
        .filter(|k| k.record.region == ctx.scope.region)
        .ok_or_else(not_found)?,
        (None, None) => return Err(KmsError::RetireGrantTarget),
    };
    if named
        .as_ref()
        .is_some_and(|n| super::key::parse_key_uuid(&n.key_id) != Some(key.id))
    {
        return Err(not_found());
    }
    ctx.note_resource("AWS::KMS::Key", key.arn());
    let grant = key.grants.get(&grant_id).ok_or_else(not_found)?;
    may_retire(kms, ctx, &key, &grant)?;
    dry_run(input.dry_run)?;
    delete(kms, &key, &grant_id).await
}

pub async fn revoke_grant(
    kms: &KmsService,
    ctx: &RequestContext,
    input: RevokeGrantRequest,
) -> Result<(), KmsError> {
    if !is_grant_id(&input.grant_id) {
        return Err(KmsError::InvalidGrantId);
    }
    let _guard = kms.writes.lock().await;
    let key = kms.resolve(ctx, &input.key_id, Aliases::NotAllowed).await?;
    kms.authorize(ctx, &key, "kms:RevokeGrant", &Facts::default())?;
    if key.grants.get(&input.grant_id).is_none() {
        return Err(KmsError::GrantNotFound {
            grant_id: input.grant_id,
        });
    }
    dry_run(input.dry_run)?;
    delete(kms, &key, &input.grant_id).await
}

/// Deletes a grant from the store, then from memory (so it stops working at once).
async fn delete(kms: &KmsService, key: &Key, grant_id: &str) -> Result<(), KmsError> {
    match kms.store.delete_grant(&key.record.key_id, grant_id).await {
        Ok(()) | Err(StoreError::NotFound) => {}
        Err(e) => return Err(e.into()),
    }
    key.grants.remove(grant_id);
    Ok(())
}

/// Who may retire a grant (AWS: "Retiring and revoking grants"): its retiring principal;
/// its grantee if the grant allows `RetireGrant`; and the account in which it was created
/// (its root, and principals its identity policies allow `kms:RetireGrant`). A principal
/// written as an account root names the account's principals as a key policy does, through
/// their identity policies. An explicit deny in the caller's identity policies wins.
fn may_retire(
    kms: &KmsService,
    ctx: &RequestContext,
    key: &Key,
    grant: &Grant,
) -> Result<(), KmsError> {
    let identity = kms.identity_allows(ctx, key, "kms:RetireGrant");
    if let Err(denied) = &identity
        && is_explicit(denied)
    {
        return Err(KmsError::AccessDenied(denied.clone()));
    }
    let named = |arn: &str| match naming(ctx, arn) {
        Some(Naming::Direct) => true,
        Some(Naming::Account) => identity.is_ok(),
        None => false,
    };
    let retiring = grant.retiring.as_deref().is_some_and(named);
    let grantee = grant.allows(GrantOperation::RetireGrant) && named(&grant.grantee);
    let issuer = ctx.caller.account == grant.issuing_account && identity.is_ok();
    if retiring || grantee || issuer {
        return Ok(());
    }
    Err(KmsError::AccessDenied(Denied {
        principal: ctx.caller.arn.clone(),
        action: "kms:RetireGrant".to_owned(),
        resource: key.arn().to_owned(),
        reason: DenyReason::NoResourcePolicyAllows,
    }))
}

/// The constraint of a request; both kinds at once is AWS's "More than one constraint
/// supplied" (even if one is empty).
fn constraint(c: GrantConstraints) -> Result<Option<Constraint>, KmsError> {
    if c.source_arn.is_some() {
        return Err(KmsError::Unsupported {
            what: "the SourceArn grant constraint".into(),
        });
    }
    let constraint = match (c.encryption_context_equals, c.encryption_context_subset) {
        (Some(_), Some(_)) => return Err(KmsError::GrantConstraintMultiple),
        (Some(pairs), None) => Constraint::Equals(pairs),
        (None, Some(pairs)) => Constraint::Subset(pairs),
        (None, None) => return Ok(None),
    };
    let pairs: &BTreeMap<String, String> = constraint.pairs();
    if pairs.len() > CONSTRAINT_PAIRS
        || pairs
            .values()
            .any(|v| v.chars().count() > CONSTRAINT_VALUE_CHARS)
    {
        return Err(KmsError::GrantConstraintTooLarge);
    }
    Ok(Some(constraint))
}

/// The key's type must support every operation, and a constraint needs operations that
/// take an encryption context (DescribeKey, RetireGrant and CreateGrant may come along).
fn check_against_key(
    key: &Key,
    operations: &[GrantOperation],
    constraint: Option<&Constraint>,
) -> Result<(), KmsError> {
    for op in operations {
        if !supports(*op, key.spec, key.usage) {
            return Err(KmsError::GrantOperationNotSupported {
                operation: op.as_str(),
                spec: key.spec.as_str(),
                usage: key.usage.as_str(),
            });
        }
    }
    let exempt = |op: &GrantOperation| {
        matches!(
            op,
            GrantOperation::DescribeKey | GrantOperation::RetireGrant | GrantOperation::CreateGrant
        )
    };
    if constraint.is_some()
        && operations
            .iter()
            .any(|op| !exempt(op) && !takes_encryption_context(*op, key.spec))
    {
        return Err(KmsError::GrantConstraintNotSupported {
            spec: key.spec.as_str(),
        });
    }
    Ok(())
}

/// A grantee or retiring principal must be the ARN of an AWS principal: an account root,
/// an IAM user or role, an assumed-role session or a federated user. Returns its account.
fn check_principal(value: &str) -> Result<String, KmsError> {
    let invalid = || KmsError::InvalidPrincipal {
        value: value.to_owned(),
    };
    let arn = Arn::parse(value).ok_or_else(invalid)?;
    let resource = arn.resource;
    let valid = arn.region.is_empty()
        && is_account_id(arn.account)
        && match arn.service {
            "iam" => {
                resource == "root"
                    || ["user/", "role/"]
                        .iter()
                        .any(|p| resource.strip_prefix(p).is_some_and(|r| !r.is_empty()))
            }
            "sts" => ["assumed-role/", "federated-user/"]
                .iter()
                .any(|p| resource.strip_prefix(p).is_some_and(|r| !r.is_empty())),
            _ => false,
        };
    if !valid {
        return Err(invalid());
    }
    Ok(arn.account.to_owned())
}

/// A grant id as this server makes them: 64 lowercase hex characters.
fn is_grant_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn new_grant_id() -> Result<String, KmsError> {
    let mut bytes = [0u8; 32];
    keyhold_crypto::random::fill(&mut bytes).map_err(|_| KmsError::Internal)?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals() {
        for ok in [
            "arn:aws:iam::111122223333:root",
            "arn:aws:iam::111122223333:user/app",
            "arn:aws:iam::111122223333:role/path/r",
            "arn:aws:sts::111122223333:assumed-role/r/session",
            "arn:aws-cn:iam::111122223333:root",
        ] {
            assert_eq!(
                check_principal(ok).ok().as_deref(),
                Some("111122223333"),
                "{ok}"
            );
        }
        for bad in [
            "",
            "111122223333",
            "arn:aws:iam::1111:root",
            "arn:aws:iam::111122223333:group/g",
            "arn:aws:iam::111122223333:user/",
            "arn:aws:kms:us-east-1:111122223333:key/x",
            "arn:aws:iam:us-east-1:111122223333:root",
        ] {
            assert!(check_principal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn grant_ids() {
        assert!(is_grant_id(&"0a".repeat(32)));
        assert!(!is_grant_id(&"0A".repeat(32)));
        assert!(!is_grant_id("abc"));
        let id = new_grant_id().unwrap_or_default();
        assert!(is_grant_id(&id));
    }

    #[test]
    fn constraints() {
        let map = |n: usize| (0..n).map(|i| (i.to_string(), "v".to_owned())).collect();
        let both = GrantConstraints {
            encryption_context_equals: Some(BTreeMap::new()),
            encryption_context_subset: Some(map(1)),
            ..GrantConstraints::default()
        };
        assert_eq!(constraint(both), Err(KmsError::GrantConstraintMultiple));
        let nine = GrantConstraints {
            encryption_context_subset: Some(map(9)),
            ..GrantConstraints::default()
        };
        assert_eq!(constraint(nine), Err(KmsError::GrantConstraintTooLarge));
        assert_eq!(constraint(GrantConstraints::default()), Ok(None));
        let eight = GrantConstraints {
            encryption_context_equals: Some(map(8)),
            ..GrantConstraints::default()
        };
        assert_eq!(constraint(eight), Ok(Some(Constraint::Equals(map(8)))));
    }
}
