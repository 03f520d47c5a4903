//! The one authorization decision of every KMS operation.
//!
//! A key's policy is the root of trust: the caller may act on a key only if the key policy
//! allows it (directly, or by naming the caller's account, which delegates to IAM — the
//! account root needs nothing more) and nothing denies it explicitly. Operations that act
//! on no key (`CreateKey`, `ListKeys`, `GenerateRandom`, ...) are governed by IAM policies
//! alone, which the account root passes.

use std::collections::BTreeMap;

use keyhold_policy::{Evaluation, PrincipalMatch};

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
        let context = condition_context(ctx, key, facts);
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

fn condition_context(
    ctx: &RequestContext,
    key: &Key,
    facts: &Facts<'_>,
) -> keyhold_policy::Context {
    let mut c = keyhold_policy::Context::default();
    c.set("kms:CallerAccount", ctx.caller.account.clone());
    if let Some(via) = &ctx.via_service {
        c.set("kms:ViaService", via.clone());
    }
    c.set("aws:PrincipalArn", ctx.caller.arn.clone());
    c.set("aws:PrincipalAccount", ctx.caller.account.clone());
    c.set("aws:SourceIp", ctx.source_ip.to_string());
    c.set(
        "aws:CurrentTime",
        keyhold_proto::Timestamp::now().to_iso8601_seconds(),
    );
    c.set("aws:SecureTransport", "false".to_owned());
    c.set("kms:KeySpec", key.spec.as_str().to_owned());
    c.set("kms:KeyUsage", key.usage.as_str().to_owned());
    c.set("kms:KeyOrigin", key.origin.as_str().to_owned());
    for tag in &key.tags {
        c.set(&format!("aws:ResourceTag/{}", tag.key), tag.value.clone());
    }
    if let Some(ec) = facts.encryption_context {
        c.set_values("kms:EncryptionContextKeys", ec.keys().cloned());
        for (k, v) in ec {
            c.add(&format!("kms:EncryptionContext:{k}"), v.clone());
        }
    }
    c
}
