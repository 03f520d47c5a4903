//! The one authorization decision of every operation on a secret, through the shared engine
//! ([`crate::authz`]): the caller's identity policies and the secret's resource policy.
//!
//! - In the secret's own account, an identity policy allow (the account root always has
//!   one) or a resource policy allow naming the caller suffices.
//! - A caller of another account needs both the resource policy and its own identity
//!   policies to allow, as on AWS.
//! - An explicit deny in either wins.
//! - A stored policy that no longer parses fails closed: every call is refused but the
//!   policy's own repair by the secret's account (see `authorize_unreadable_policy`).
//!
//! The KMS key is a second, independent check: values are decrypted through KMS as the
//! caller, so the key policy must also let the caller decrypt.

use std::borrow::Cow;
use std::sync::Arc;

use keyhold_policy::{ConditionContext, Policy, PolicyKind};

use super::SecretsService;
use super::error::SecretsError;
use super::secret::Secret;
use crate::authz::{Access, Denied, DenyReason, RequestConditions, ResourceRule, decide};
use crate::context::RequestContext;

impl SecretsService {
    /// Authorizes the current operation on `secret` (for `BatchGetSecretValue`,
    /// `secretsmanager:GetSecretValue` on each secret, as AWS requires).
    pub(super) fn authorize(
        &self,
        ctx: &RequestContext,
        secret: &Secret,
    ) -> Result<(), SecretsError> {
        let action = match ctx.operation.name() {
            "BatchGetSecretValue" => "secretsmanager:GetSecretValue".to_owned(),
            name => format!("secretsmanager:{name}"),
        };
        let policy = match secret.meta.policy.as_deref() {
            None => None,
            Some(text) => match self.parsed_policy(&secret.arn, text) {
                Some(policy) => Some(policy),
                None => return self.authorize_unreadable_policy(ctx, secret, &action),
            },
        };
        let context = Conditions {
            secret,
            global: RequestConditions::new(ctx, self.clock.now(), &[]),
        };
        decide(
            ctx,
            &Access {
                principal: &ctx.caller,
                action: &action,
                resource: &secret.arn,
                resource_account: &secret.account,
                rule: ResourceRule::Optional(policy.as_deref()),
                context: &context,
            },
        )
        .map_err(SecretsError::AccessDenied)
    }

    /// Authorizes `action` where no existing secret's policy takes part (`CreateSecret` on
    /// the new secret's ARN, `ListSecrets` and `GetRandomPassword` on `*`): the caller's
    /// identity policies decide, in the caller's account. `extra` are the request's
    /// condition keys (canonical names, e.g. `secretsmanager:name`).
    pub(super) fn authorize_in_account(
        &self,
        ctx: &RequestContext,
        action: &str,
        resource: &str,
        extra: &[(&'static str, String)],
    ) -> Result<(), SecretsError> {
        decide(
            ctx,
            &Access {
                principal: &ctx.caller,
                action,
                resource,
                resource_account: &ctx.scope.account,
                rule: ResourceRule::None,
                context: &RequestConditions::new(ctx, self.clock.now(), extra),
            },
        )
        .map_err(SecretsError::AccessDenied)
    }

    /// A secret whose stored resource policy no longer parses fails closed: whatever the
    /// policy said (an explicit deny, perhaps) cannot be known, so every call is refused as
    /// if it denied it — except the three that repair it (`GetResourcePolicy` to see it,
    /// `PutResourcePolicy` to replace it, `DeleteResourcePolicy` to drop it), and those
    /// only for a caller of the secret's own account whose identity policies allow them
    /// (the account root always). That is who could grant themselves access anyway by
    /// replacing the policy, so nobody gains access the broken policy might have denied;
    /// callers of other accounts depended on the policy's allow and get nothing.
    fn authorize_unreadable_policy(
        &self,
        ctx: &RequestContext,
        secret: &Secret,
        action: &str,
    ) -> Result<(), SecretsError> {
        tracing::error!(
            arn = %secret.arn,
            "the secret's stored resource policy does not parse: refusing all but its repair"
        );
        if REPAIR_ACTIONS.contains(&action) && ctx.caller.account == secret.account {
            let context = Conditions {
                secret,
                global: RequestConditions::new(ctx, self.clock.now(), &[]),
            };
            return decide(
                ctx,
                &Access {
                    principal: &ctx.caller,
                    action,
                    resource: &secret.arn,
                    resource_account: &secret.account,
                    rule: ResourceRule::None,
                    context: &context,
                },
            )
            .map_err(SecretsError::AccessDenied);
        }
        Err(SecretsError::AccessDenied(Denied {
            principal: ctx.caller.arn.clone(),
            action: action.to_owned(),
            resource: secret.arn.clone(),
            reason: DenyReason::ExplicitDenyInResourcePolicy,
        }))
    }

    /// The parsed form of `arn`'s resource policy `text`, or `None` if it does not parse.
    /// Cached by secret: an entry is used only while the text is the same, replaced when
    /// it changes, dropped with the secret ([`SecretsService::forget_policy`]); the cache
    /// holds at most [`MAX_CACHED_POLICIES`] entries.
    fn parsed_policy(&self, arn: &str, text: &str) -> Option<Arc<Policy>> {
        if let Ok(policies) = self.policies.read()
            && let Some(cached) = policies.get(arn)
            && *cached.text == *text
        {
            return cached.policy.clone();
        }
        let policy = Policy::parse(text, PolicyKind::Resource).ok().map(Arc::new);
        if let Ok(mut policies) = self.policies.write() {
            if policies.len() >= MAX_CACHED_POLICIES && !policies.contains_key(arn) {
                // Any entry will do: a dropped one is parsed again on its next use.
                if let Some(victim) = policies.keys().next().cloned() {
                    policies.remove(&victim);
                }
            }
            policies.insert(
                arn.to_owned(),
                CachedPolicy {
                    text: text.into(),
                    policy: policy.clone(),
                },
            );
        }
        policy
    }

    /// Drops the cached policy of a secret that changed or is gone.
    pub(super) fn forget_policy(&self, arn: &str) {
        if let Ok(mut policies) = self.policies.write() {
            policies.remove(arn);
        }
    }
}

/// Parsed resource policies kept at most (one per secret); beyond, an entry is dropped.
pub(super) const MAX_CACHED_POLICIES: usize = 10_000;

/// The actions allowed on a secret whose stored policy does not parse (see
/// [`SecretsService::authorize_unreadable_policy`]).
const REPAIR_ACTIONS: &[&str] = &[
    "secretsmanager:GetResourcePolicy",
    "secretsmanager:PutResourcePolicy",
    "secretsmanager:DeleteResourcePolicy",
];

/// One secret's resource policy: the text it was parsed from, and the result (`None`: the
/// text does not parse).
pub(super) struct CachedPolicy {
    text: Box<str>,
    policy: Option<Arc<Policy>>,
}

/// The condition keys of a request on `secret`: its own (`secretsmanager:SecretId`,
/// `secretsmanager:ResourceTag/<key>`, `aws:ResourceTag/<key>`), then the global ones.
struct Conditions<'a> {
    secret: &'a Secret,
    global: RequestConditions<'a>,
}

impl ConditionContext for Conditions<'_> {
    fn values(&self, name: &str) -> Option<Cow<'_, [String]>> {
        if name == "secretsmanager:secretid" {
            return Some(Cow::Owned(vec![self.secret.arn.clone()]));
        }
        let tag = name
            .strip_prefix("aws:resourcetag/")
            .or_else(|| name.strip_prefix("secretsmanager:resourcetag/"));
        if let Some(tag) = tag {
            let (_, value) = self
                .secret
                .meta
                .tags
                .iter()
                .flatten()
                .find(|(key, _)| key.eq_ignore_ascii_case(tag))?;
            return Some(Cow::Owned(vec![value.clone()]));
        }
        self.global.values(name)
    }
}
