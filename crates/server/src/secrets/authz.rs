//! The one authorization decision of every operation on a secret, through the shared engine
//! ([`crate::authz`]): the caller's identity policies and the secret's resource policy.
//!
//! - In the secret's own account, an identity policy allow (the account root always has
//!   one) or a resource policy allow naming the caller suffices.
//! - A caller of another account needs both the resource policy and its own identity
//!   policies to allow, as on AWS.
//! - An explicit deny in either wins.
//!
//! The KMS key is a second, independent check: values are decrypted through KMS as the
//! caller, so the key policy must also let the caller decrypt.

use std::borrow::Cow;
use std::sync::Arc;

use keyhold_policy::{ConditionContext, Policy, PolicyKind};

use super::SecretsService;
use super::error::SecretsError;
use super::secret::Secret;
use crate::authz::{Access, RequestConditions, ResourceRule, decide};
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
        // A stored policy that no longer parses allows nothing (and denies nothing).
        let policy = secret
            .meta
            .policy
            .as_deref()
            .and_then(|text| self.parsed_policy(text));
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

    /// The parsed form of a resource policy, parsed once per distinct text.
    fn parsed_policy(&self, text: &str) -> Option<Arc<Policy>> {
        if let Some(policy) = self.policies.read().ok()?.get(text) {
            return Some(policy.clone());
        }
        let policy = Arc::new(Policy::parse(text, PolicyKind::Resource).ok()?);
        if let Ok(mut policies) = self.policies.write() {
            policies.insert(text.to_owned(), policy.clone());
        }
        Some(policy)
    }
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
