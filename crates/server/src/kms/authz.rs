//! The one authorization decision of every KMS operation, through the shared engine
//! ([`crate::authz`]): a key's policy is the root of trust — it must allow the caller,
//! directly or by naming the caller's account (delegating to IAM, so an identity policy
//! must allow too; the account root needs none) — and nothing may deny explicitly.
//! Operations that act on no key (`CreateKey`, `ListKeys`, `GenerateRandom`, ...) are
//! governed by identity policies alone.
//!
//! **Grants.** When the policies refuse a call for want of an allow (never when one denies
//! explicitly), the key's grants are consulted, from memory: a grant whose grantee is the
//! caller (its ARN, the role of an assumed-role session, or its account, which delegates to
//! IAM like a key policy naming the account) allows its operations, within its
//! encryption-context constraint. A caller of another account than the key's needs its own
//! identity policies to allow the action too (the account root always has that).

use std::borrow::Cow;
use std::collections::BTreeMap;

use keyhold_policy::ConditionContext;
use keyhold_proto::kms::{GrantOperation, KeySpec};

use super::KmsService;
use super::error::KmsError;
use super::grant::{Constraint, Grant, takes_encryption_context};
use super::key::Key;
use crate::authz::{Access, Denied, DenyReason, RequestConditions, ResourceRule, decide};
use crate::context::{Principal, PrincipalKind, RequestContext};

/// The only actions a principal of another account can perform on a key, whatever the
/// policies say (KMS Developer Guide, "Allowing users in other accounts to use a KMS key").
const CROSS_ACCOUNT_ACTIONS: &[&str] = &[
    "kms:CreateGrant",
    "kms:Decapsulate",
    "kms:Decrypt",
    "kms:DeriveSharedSecret",
    "kms:DescribeKey",
    "kms:Encapsulate",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyPair",
    "kms:GenerateDataKeyPairWithoutPlaintext",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:GenerateMac",
    "kms:GetKeyRotationStatus",
    "kms:GetPublicKey",
    "kms:ListGrants",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:Sign",
    "kms:Verify",
    "kms:VerifyMac",
];

/// Request facts some KMS conditions test.
#[derive(Default)]
pub struct Facts<'a> {
    pub encryption_context: Option<&'a BTreeMap<String, String>>,
    /// `CreateGrant`: the grant asked for (its operations, principals and constraint).
    pub new_grant: Option<&'a Grant>,
    /// `CreateAlias`, `UpdateAlias`, `DeleteAlias`: the alias named (`kms:AliasName`).
    pub alias_name: Option<&'a str>,
    /// `EnableKeyRotation`: the `RotationPeriodInDays` asked for (`kms:RotationPeriodInDays`).
    pub rotation_period_in_days: Option<i32>,
    /// `GetParametersForImport`: `kms:WrappingAlgorithm` and `kms:WrappingKeySpec`.
    pub wrapping_algorithm: Option<&'static str>,
    pub wrapping_key_spec: Option<&'static str>,
    /// `ImportKeyMaterial`: `kms:ExpirationModel` and `kms:ValidTo` (epoch seconds).
    pub expiration_model: Option<&'static str>,
    pub valid_to_ms: Option<i64>,
    /// `ReplicateKey`: the `ReplicaRegion` asked for (`kms:ReplicaRegion`).
    pub replica_region: Option<&'a str>,
    /// The region a decision is made for when it is not the request's (`ReplicateKey`'s
    /// checks in the replica region): `aws:RequestedRegion`.
    pub requested_region: Option<&'a str>,
    /// `CreateKey`, `PutKeyPolicy`: the `BypassPolicyLockoutSafetyCheck` given
    /// (`kms:BypassPolicyLockoutSafetyCheck`; absent when the request has none).
    pub bypass_policy_lockout_safety_check: Option<bool>,
    /// `CreateKey`: whether the key asked for is multi-Region (`kms:MultiRegion`, and
    /// `kms:MultiRegionKeyType` `PRIMARY` when it is).
    pub multi_region: Option<bool>,
}

impl KmsService {
    /// Decides whether the caller may perform `action` (`kms:Encrypt`) on `key`.
    pub(super) fn authorize(
        &self,
        ctx: &RequestContext,
        key: &Key,
        action: &'static str,
        facts: &Facts<'_>,
    ) -> Result<(), KmsError> {
        ctx.note_resource("AWS::KMS::Key", key.arn());
        if ctx.caller.account != key.record.account && !CROSS_ACCOUNT_ACTIONS.contains(&action) {
            // No policy can open the key's management to another account.
            return Err(KmsError::AccessDenied(Denied {
                principal: ctx.caller.arn.clone(),
                action: action.to_owned(),
                resource: key.arn().to_owned(),
                reason: DenyReason::NoResourcePolicyAllows,
            }));
        }
        let context = self.conditions(ctx, Some(key), action, facts);
        let denied = match decide(
            ctx,
            &Access {
                principal: &ctx.caller,
                action,
                resource: key.arn(),
                resource_account: &key.record.account,
                rule: ResourceRule::KeyPolicy(key.policy.as_deref()),
                context: &context,
            },
        ) {
            Ok(()) => return Ok(()),
            Err(denied) => denied,
        };
        if is_explicit(&denied) || !self.grants_allow(ctx, key, action, facts, &context) {
            return Err(KmsError::AccessDenied(denied));
        }
        Ok(())
    }

    /// What the caller's identity policies alone say about `action` on `key` (the
    /// delegated half of a grant naming an account, and `RetireGrant` by the account).
    pub(super) fn identity_allows(
        &self,
        ctx: &RequestContext,
        key: &Key,
        action: &'static str,
    ) -> Result<(), Denied> {
        let facts = Facts::default();
        let context = self.conditions(ctx, Some(key), action, &facts);
        identity_only(ctx, action, key.arn(), &context)
    }

    /// Decides an alias operation on the alias itself (`arn:...:alias/NAME`): aliases have
    /// no policy of their own, so the caller's identity policies decide (the account root
    /// always may), with `kms:AliasName` set. The alias operations also authorize on every
    /// key they affect, through [`KmsService::authorize`]: both halves are needed, as on
    /// AWS ("Controlling access to aliases").
    pub(super) fn authorize_alias(
        &self,
        ctx: &RequestContext,
        action: &'static str,
        alias_arn: &str,
        facts: &Facts<'_>,
    ) -> Result<(), KmsError> {
        ctx.note_resource("AWS::KMS::Alias", alias_arn);
        self.authorize_identity(ctx, action, alias_arn, &ctx.scope.account, facts)
    }

    /// Decides an action on no particular key: identity policies alone.
    pub(super) fn authorize_account(
        &self,
        ctx: &RequestContext,
        action: &'static str,
    ) -> Result<(), KmsError> {
        self.authorize_account_with(ctx, action, &Facts::default())
    }

    /// [`KmsService::authorize_account`] with request facts (another requested region).
    pub(super) fn authorize_account_with(
        &self,
        ctx: &RequestContext,
        action: &'static str,
        facts: &Facts<'_>,
    ) -> Result<(), KmsError> {
        self.authorize_identity(ctx, action, "*", &ctx.scope.account, facts)
    }

    /// Decides `action` on a key that does not exist yet (`ReplicateKey`'s replica, named
    /// by its ARN-to-be) by the caller's identity policies alone, as AWS requires
    /// `kms:TagResource` "in an IAM policy" for a new key's tags.
    pub(super) fn authorize_identity_on(
        &self,
        ctx: &RequestContext,
        action: &'static str,
        key_arn: &str,
        facts: &Facts<'_>,
    ) -> Result<(), KmsError> {
        self.authorize_identity(ctx, action, key_arn, &ctx.scope.account, facts)
    }

    /// `ListRetirableGrants`: identity policies alone, on the retiring principal named
    /// (which must be of the caller's own account: the engine refuses any other).
    pub(super) fn authorize_retiring_principal(
        &self,
        ctx: &RequestContext,
        principal_arn: &str,
        principal_account: &str,
    ) -> Result<(), KmsError> {
        self.authorize_identity(
            ctx,
            "kms:ListRetirableGrants",
            principal_arn,
            principal_account,
            &Facts::default(),
        )
    }

    /// `action` on a resource that has no policy of its own: identity policies decide.
    fn authorize_identity(
        &self,
        ctx: &RequestContext,
        action: &'static str,
        resource: &str,
        resource_account: &str,
        facts: &Facts<'_>,
    ) -> Result<(), KmsError> {
        let context = self.conditions(ctx, None, action, facts);
        decide(
            ctx,
            &Access {
                principal: &ctx.caller,
                action,
                resource,
                resource_account,
                rule: ResourceRule::None,
                context: &context,
            },
        )
        .map_err(KmsError::AccessDenied)
    }

    /// Whether one of `key`'s grants lets the caller perform `action`.
    fn grants_allow(
        &self,
        ctx: &RequestContext,
        key: &Key,
        action: &'static str,
        facts: &Facts<'_>,
        context: &Conditions<'_>,
    ) -> bool {
        let Some(operation) = action.strip_prefix("kms:").and_then(GrantOperation::parse) else {
            return false;
        };
        let caller = &ctx.caller;
        let account_root = ctx.scope.root_arn();
        let mut grantees = vec![caller.arn.as_str()];
        if let PrincipalKind::AssumedRole { role_arn, .. } = &caller.kind {
            grantees.push(role_arn);
        }
        if caller.arn != account_root {
            grantees.push(&account_root);
        }
        let grants = key.grants.for_grantees(&grantees);
        grants_allow(
            &GrantRequest {
                caller,
                caller_root_arn: &account_root,
                key_account: &key.record.account,
                key_spec: key.spec,
                operation,
                facts,
            },
            grants.iter().map(|g| &**g),
            || identity_only(ctx, action, key.arn(), context).is_ok(),
        )
    }
}

/// One request as the grant layer sees it.
pub struct GrantRequest<'a> {
    pub caller: &'a Principal,
    /// The root of the caller's account, in the request's partition.
    pub caller_root_arn: &'a str,
    pub key_account: &'a str,
    pub key_spec: KeySpec,
    pub operation: GrantOperation,
    pub facts: &'a Facts<'a>,
}

/// The grant layer, consulted only when the policies refuse for want of an allow (never
/// over an explicit deny): whether one of `grants` (a key's) lets the caller perform the
/// operation. A grant names the caller directly (its ARN, or the role of its session) or
/// through its account's root, which delegates to IAM like a key policy naming the account;
/// a grant of the key's own account naming the caller directly needs nothing more, any
/// other needs `identity_allows` (the caller's identity policies, asked at most once).
/// `RetireGrant` is decided by the grant being retired, never by another grant.
pub fn grants_allow<'g>(
    request: &GrantRequest<'_>,
    grants: impl IntoIterator<Item = &'g Grant>,
    identity_allows: impl FnOnce() -> bool,
) -> bool {
    let operation = request.operation;
    if operation == GrantOperation::RetireGrant {
        return false;
    }
    let caller = request.caller;
    let session_role = match &caller.kind {
        PrincipalKind::AssumedRole { role_arn, .. } => Some(role_arn.as_str()),
        _ => None,
    };
    let same_account = caller.account == request.key_account;
    let mut needs_identity = false;
    for grant in grants {
        let direct = grant.grantee == caller.arn || Some(grant.grantee.as_str()) == session_role;
        let through_account = grant.grantee == request.caller_root_arn;
        if !(direct || through_account)
            || !grant.allows(operation)
            || !fits(grant, operation, request.key_spec, request.facts)
        {
            continue;
        }
        if direct && same_account {
            return true;
        }
        needs_identity = true;
    }
    needs_identity && identity_allows()
}

/// How a principal ARN written in a grant (grantee, retiring principal) names the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Naming {
    /// The caller's own ARN, or the role of the caller's assumed-role session.
    Direct,
    /// The root of the caller's account: its principals, through their identity policies.
    Account,
}

pub(super) fn naming(ctx: &RequestContext, arn: &str) -> Option<Naming> {
    let caller = &ctx.caller;
    if arn == caller.arn {
        return Some(Naming::Direct);
    }
    if let PrincipalKind::AssumedRole { role_arn, .. } = &caller.kind
        && arn == role_arn
    {
        return Some(Naming::Direct);
    }
    (arn == ctx.scope.root_arn()).then_some(Naming::Account)
}

/// Whether a grant's conditions hold for this request: its encryption-context constraint
/// for operations that take a context; for `CreateGrant`, that the new grant asks for no
/// more operations and is constrained at least as strictly.
fn fits(grant: &Grant, operation: GrantOperation, spec: KeySpec, facts: &Facts<'_>) -> bool {
    if operation == GrantOperation::CreateGrant {
        let Some(new) = facts.new_grant else {
            return false;
        };
        return new.operations.iter().all(|op| grant.allows(*op))
            && Constraint::at_least_as_strict(new.constraint.as_ref(), grant.constraint.as_ref());
    }
    match &grant.constraint {
        Some(constraint) if takes_encryption_context(operation, spec) => {
            let empty = BTreeMap::new();
            constraint.admits(facts.encryption_context.unwrap_or(&empty))
        }
        _ => true,
    }
}

pub(super) fn is_explicit(denied: &Denied) -> bool {
    matches!(
        denied.reason,
        DenyReason::ExplicitDenyInIdentityPolicy | DenyReason::ExplicitDenyInResourcePolicy
    )
}

/// The engine on identity policies alone, in the caller's own account.
fn identity_only(
    ctx: &RequestContext,
    action: &str,
    resource: &str,
    context: &Conditions<'_>,
) -> Result<(), Denied> {
    decide(
        ctx,
        &Access {
            principal: &ctx.caller,
            action,
            resource,
            resource_account: &ctx.caller.account,
            rule: ResourceRule::None,
            context,
        },
    )
}

/// The condition keys of a KMS request, computed only when a policy asks for one (most
/// policies ask for none, so the hot path builds nothing); the global keys come from
/// [`RequestConditions`].
struct Conditions<'a> {
    ctx: &'a RequestContext,
    key: Option<&'a Key>,
    action: &'a str,
    facts: &'a Facts<'a>,
    global: RequestConditions<'a>,
}

impl KmsService {
    fn conditions<'a>(
        &self,
        ctx: &'a RequestContext,
        key: Option<&'a Key>,
        action: &'a str,
        facts: &'a Facts<'a>,
    ) -> Conditions<'a> {
        Conditions {
            ctx,
            key,
            action,
            facts,
            global: RequestConditions::new(ctx, self.clock.now(), &[]),
        }
    }
}

impl ConditionContext for Conditions<'_> {
    fn values(&self, name: &str) -> Option<Cow<'_, [String]>> {
        let one = |value: String| Some(Cow::Owned(vec![value]));
        let (ctx, key) = (self.ctx, self.key);
        match name {
            "kms:calleraccount" => one(ctx.caller.account.clone()),
            "kms:viaservice" => ctx.via_service.clone().and_then(one),
            "kms:keyspec" => one(key?.spec.as_str().to_owned()),
            "kms:keyusage" => one(key?.usage.as_str().to_owned()),
            "kms:keyorigin" => one(key?.origin.as_str().to_owned()),
            "kms:multiregion" => match key {
                Some(key) => one(key.record.multi_region_primary.is_some().to_string()),
                None => one(self.facts.multi_region?.to_string()),
            },
            "kms:multiregionkeytype" => match key {
                Some(key) => {
                    key.record.multi_region_primary.as_ref()?;
                    one(if key.is_replica() {
                        "REPLICA"
                    } else {
                        "PRIMARY"
                    }
                    .to_owned())
                }
                None => self
                    .facts
                    .multi_region
                    .filter(|multi| *multi)
                    .and_then(|_| one("PRIMARY".to_owned())),
            },
            "kms:bypasspolicylockoutsafetycheck" => {
                one(self.facts.bypass_policy_lockout_safety_check?.to_string())
            }
            "kms:replicaregion" => self.facts.replica_region.map(str::to_owned).and_then(one),
            "aws:requestedregion" if self.facts.requested_region.is_some() => {
                self.facts.requested_region.map(str::to_owned).and_then(one)
            }
            "kms:aliasname" => self.facts.alias_name.map(str::to_owned).and_then(one),
            "kms:rotationperiodindays" => one(self.facts.rotation_period_in_days?.to_string()),
            "kms:wrappingalgorithm" => self
                .facts
                .wrapping_algorithm
                .map(str::to_owned)
                .and_then(one),
            "kms:wrappingkeyspec" => self
                .facts
                .wrapping_key_spec
                .map(str::to_owned)
                .and_then(one),
            "kms:expirationmodel" => self.facts.expiration_model.map(str::to_owned).and_then(one),
            "kms:validto" => one((self.facts.valid_to_ms? / 1000).to_string()),
            "kms:resourcealiases" => {
                let names = key?.aliases.names();
                (!names.is_empty()).then_some(Cow::Owned(names))
            }
            "kms:encryptioncontextkeys" => {
                let ec = self.facts.encryption_context?;
                Some(Cow::Owned(ec.keys().cloned().collect()))
            }
            "kms:grantisforawsresource"
                if matches!(
                    self.action,
                    "kms:CreateGrant" | "kms:ListGrants" | "kms:RevokeGrant"
                ) =>
            {
                one(ctx.via_service.is_some().to_string())
            }
            "kms:grantoperations" => {
                let grant = self.facts.new_grant?;
                let ops = grant
                    .operations
                    .iter()
                    .map(|o| o.as_str().to_owned())
                    .collect();
                Some(Cow::Owned(ops))
            }
            "kms:granteeprincipal" => one(self.facts.new_grant?.grantee.clone()),
            "kms:retiringprincipal" => self.facts.new_grant?.retiring.clone().and_then(one),
            "kms:grantconstrainttype" => {
                let constraint = self.facts.new_grant?.constraint.as_ref()?;
                one(constraint.type_name().to_owned())
            }
            _ => {
                if let Some(tag) = name.strip_prefix("aws:resourcetag/") {
                    let value = key?.tags.iter().find(|t| t.key.to_lowercase() == tag)?;
                    return one(value.value.clone());
                }
                if let Some(entry) = name.strip_prefix("kms:encryptioncontext:") {
                    // Condition keys are case-insensitive, so entries whose keys differ only
                    // in case land in the same condition key, as on AWS.
                    let ec = self.facts.encryption_context?;
                    let values: Vec<String> = ec
                        .iter()
                        .filter(|(k, _)| k.to_lowercase() == entry)
                        .map(|(_, v)| v.clone())
                        .collect();
                    return (!values.is_empty()).then_some(Cow::Owned(values));
                }
                self.global.values(name)
            }
        }
    }
}
