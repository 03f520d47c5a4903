//! The one authorization decision of every KMS operation.
//!
//! A key's policy is the root of trust: the caller may act on a key only if the key policy
//! allows it (directly, or by naming the caller's account, which delegates to IAM — the
//! account root needs nothing more) and nothing denies it explicitly. Operations that act
//! on no key (`CreateKey`, `ListKeys`, `GenerateRandom`, ...) are governed by IAM policies
//! alone, which the account root passes.

use std::collections::BTreeMap;

use std::borrow::Cow;

use keyhold_policy::{ConditionContext, Evaluation, PrincipalMatch};
use keyhold_proto::Timestamp;

use super::KmsService;
use super::error::KmsError;
use super::key::Key;
use crate::context::{PrincipalKind, RequestContext};

/// Request facts some KMS conditions test.
#[derive(Default)]
pub struct Facts<'a> {
    pub encryption_context: Option<&'a BTreeMap<String, String>>,
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
        let context = Conditions { ctx, key, facts };
        let principal = ctx.caller.policy_principal();
        let request = keyhold_policy::Request {
            principal: &principal,
            action,
            resource: key.arn(),
            context: &context,
        };
        let denied = |explicit| KmsError::AccessDenied {
            principal: ctx.caller.arn.clone(),
            action,
            resource: key.arn().to_owned(),
            explicit,
        };
        let Some(policy) = &key.policy else {
            return Err(denied(false));
        };
        match policy.evaluate(&request) {
            Evaluation::ExplicitDeny => Err(denied(true)),
            Evaluation::Allow {
                principal_match: PrincipalMatch::Account,
            } if ctx.caller.kind != PrincipalKind::Root => {
                // Delegation to IAM: identity policies arrive with IAM users.
                Err(denied(false))
            }
            Evaluation::Allow { .. } => Ok(()),
            Evaluation::NotApplicable => Err(denied(false)),
        }
    }

    /// Decides an action on no particular key: IAM alone, which the account root passes.
    pub(super) fn authorize_account(
        &self,
        ctx: &RequestContext,
        action: &'static str,
    ) -> Result<(), KmsError> {
        match ctx.caller.kind {
            PrincipalKind::Root => Ok(()),
            #[allow(unreachable_patterns)]
            _ => Err(KmsError::AccessDenied {
                principal: ctx.caller.arn.clone(),
                action,
                resource: ctx.scope.arn("kms", "*"),
                explicit: false,
            }),
        }
    }
}

/// The condition keys of a KMS request, computed only when a policy asks for one (most
/// policies ask for none, so the hot path builds nothing).
struct Conditions<'a> {
    ctx: &'a RequestContext,
    key: &'a Key,
    facts: &'a Facts<'a>,
}

impl ConditionContext for Conditions<'_> {
    fn values(&self, name: &str) -> Option<Cow<'_, [String]>> {
        let one = |value: String| Some(Cow::Owned(vec![value]));
        let (ctx, key) = (self.ctx, self.key);
        match name {
            "kms:calleraccount" | "aws:principalaccount" => one(ctx.caller.account.clone()),
            "aws:principalarn" => one(ctx.caller.arn.clone()),
            "kms:viaservice" => ctx.via_service.clone().and_then(one),
            "aws:sourceip" => one(ctx.source_ip.to_string()),
            "aws:currenttime" => one(Timestamp::now().to_iso8601_seconds()),
            "aws:epochtime" => one(Timestamp::now().as_secs().to_string()),
            "aws:securetransport" => one("false".to_owned()),
            "kms:keyspec" => one(key.spec.as_str().to_owned()),
            "kms:keyusage" => one(key.usage.as_str().to_owned()),
            "kms:keyorigin" => one(key.origin.as_str().to_owned()),
            "kms:encryptioncontextkeys" => {
                let ec = self.facts.encryption_context?;
                Some(Cow::Owned(ec.keys().cloned().collect()))
            }
            _ => {
                if let Some(tag) = name.strip_prefix("aws:resourcetag/") {
                    let value = key.tags.iter().find(|t| t.key.to_lowercase() == tag)?;
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
                None
            }
        }
    }
}
