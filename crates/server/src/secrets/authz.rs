//! The one authorization decision of every operation on a secret, until IAM identity
//! policies arrive: the secret's resource policy.
//!
//! - A caller of the secret's own account is allowed (the account root passes IAM) unless
//!   the resource policy denies it explicitly.
//! - A caller of another account needs the resource policy to allow it, as on AWS (its own
//!   IAM policies, which the root passes, must allow too).
//!
//! The KMS key is a second, independent check: values are decrypted through KMS as the
//! caller, so the key policy must also let the caller decrypt.

use std::sync::Arc;

use keyhold_policy::{Evaluation, Policy, PolicyKind};

use super::SecretsService;
use super::error::SecretsError;
use super::secret::Secret;
use crate::context::RequestContext;

impl SecretsService {
    pub(super) fn authorize(
        &self,
        ctx: &RequestContext,
        secret: &Secret,
    ) -> Result<(), SecretsError> {
        let action = format!("secretsmanager:{}", ctx.operation.name());
        let same_account = ctx.caller.account == secret.account;
        let evaluation = secret
            .meta
            .policy
            .as_deref()
            .map(|text| match self.parsed_policy(text) {
                Some(policy) => evaluate(ctx, secret, &policy, &action),
                // A stored policy that no longer parses allows nothing (and denies nothing).
                None => Evaluation::NotApplicable,
            });
        let denied = |explicit| SecretsError::AccessDenied {
            principal: ctx.caller.arn.clone(),
            action: action.clone(),
            resource: secret.arn.clone(),
            explicit,
        };
        match evaluation {
            Some(Evaluation::ExplicitDeny) => Err(denied(true)),
            Some(Evaluation::Allow { .. }) => Ok(()),
            _ if same_account => Ok(()),
            _ => Err(denied(false)),
        }
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

fn evaluate(ctx: &RequestContext, secret: &Secret, policy: &Policy, action: &str) -> Evaluation {
    let mut context = keyhold_policy::Context::default();
    context.set("aws:PrincipalArn", ctx.caller.arn.clone());
    context.set("aws:PrincipalAccount", ctx.caller.account.clone());
    context.set("aws:SourceIp", ctx.source_ip.to_string());
    context.set(
        "aws:CurrentTime",
        keyhold_proto::Timestamp::now().to_iso8601_seconds(),
    );
    context.set("aws:SecureTransport", "false".to_owned());
    context.set("secretsmanager:SecretId", secret.arn.clone());
    for (key, value) in secret.meta.tags.iter().flatten() {
        context.set(&format!("aws:ResourceTag/{key}"), value.clone());
        context.set(&format!("secretsmanager:ResourceTag/{key}"), value.clone());
    }
    let principal = ctx.caller.policy_principal();
    policy.evaluate(&keyhold_policy::Request {
        principal: &principal,
        action,
        resource: &secret.arn,
        context: &context,
    })
}
