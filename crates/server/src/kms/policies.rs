//! Key policies: GetKeyPolicy, PutKeyPolicy, ListKeyPolicies, and the checks CreateKey
//! shares (size, syntax, the lockout safety check).

use keyhold_policy::{Evaluation, Policy, PolicyKind};
use keyhold_proto::Timestamp;
use keyhold_proto::kms::*;

use super::KmsService;
use super::authz::Facts;
use super::error::KmsError;
use super::resolve::Aliases;
use crate::authz::RequestConditions;
use crate::context::RequestContext;

/// AWS's limit on a key policy document.
const MAX_POLICY_BYTES: usize = 32 * 1024;
/// A key has one policy, and this is its name.
const POLICY_NAME: &str = "default";

pub async fn get_key_policy(
    kms: &KmsService,
    ctx: &RequestContext,
    input: GetKeyPolicyRequest,
) -> Result<GetKeyPolicyResponse, KmsError> {
    let key = kms.resolve(ctx, &input.key_id, Aliases::NotAllowed).await?;
    kms.authorize(ctx, &key, "kms:GetKeyPolicy", &Facts::default())?;
    check_policy_name(input.policy_name.as_deref())?;
    Ok(GetKeyPolicyResponse {
        policy: Some(key.record.policy.clone()),
        policy_name: Some(POLICY_NAME.to_owned()),
    })
}

pub async fn put_key_policy(
    kms: &KmsService,
    ctx: &RequestContext,
    input: PutKeyPolicyRequest,
) -> Result<(), KmsError> {
    let _guard = kms.writes.lock().await;
    let key = kms.resolve(ctx, &input.key_id, Aliases::NotAllowed).await?;
    let facts = Facts {
        bypass_policy_lockout_safety_check: input.bypass_policy_lockout_safety_check,
        ..Facts::default()
    };
    kms.authorize(ctx, &key, "kms:PutKeyPolicy", &facts)?;
    check_policy_name(input.policy_name.as_deref())?;
    let bypass = input.bypass_policy_lockout_safety_check == Some(true);
    validate_new_policy(ctx, kms.clock.now(), &input.policy, bypass, key.arn())?;
    let mut record = key.record.clone();
    record.policy = input.policy;
    kms.update_key(&key, record, None).await?;
    Ok(())
}

pub async fn list_key_policies(
    kms: &KmsService,
    ctx: &RequestContext,
    input: ListKeyPoliciesRequest,
) -> Result<ListKeyPoliciesResponse, KmsError> {
    let key = kms.resolve(ctx, &input.key_id, Aliases::NotAllowed).await?;
    kms.authorize(ctx, &key, "kms:ListKeyPolicies", &Facts::default())?;
    let page = super::pagination::page(
        super::pagination::List::Policies,
        vec![POLICY_NAME.to_owned()],
        |s| s,
        input.marker.as_deref(),
        input.limit,
    )?;
    Ok(ListKeyPoliciesResponse {
        truncated: Some(page.truncated()),
        next_marker: page.next_marker,
        policy_names: Some(page.items),
    })
}

fn check_policy_name(name: Option<&str>) -> Result<(), KmsError> {
    match name {
        None | Some(POLICY_NAME) => Ok(()),
        Some(_) => Err(KmsError::NoSuchPolicy),
    }
}

/// Checks a key policy about to be set: size, syntax, and (unless bypassed) that the
/// caller could still change the policy afterwards.
pub fn validate_new_policy(
    ctx: &RequestContext,
    now: Timestamp,
    text: &str,
    bypass_lockout_check: bool,
    key_arn: &str,
) -> Result<Policy, KmsError> {
    if text.len() > MAX_POLICY_BYTES {
        return Err(KmsError::PolicyTooLarge);
    }
    let malformed = |e: keyhold_policy::PolicyError| KmsError::MalformedPolicy {
        message: e.aws_message().map(str::to_owned),
    };
    let policy = Policy::parse(text, PolicyKind::Resource).map_err(malformed)?;
    policy.check_kms_key_policy().map_err(malformed)?;
    if !bypass_lockout_check && !lets_caller_put_policy(ctx, now, &policy, key_arn) {
        return Err(KmsError::PolicyLockout);
    }
    Ok(policy)
}

/// The lockout safety check: would the caller still be allowed `kms:PutKeyPolicy`?
fn lets_caller_put_policy(
    ctx: &RequestContext,
    now: Timestamp,
    policy: &Policy,
    key_arn: &str,
) -> bool {
    let principal = ctx.caller.policy_principal();
    // The request's global condition keys, as the real decision would see them.
    let context = RequestConditions::new(ctx, now, &[]);
    let request = keyhold_policy::Request {
        principal: &principal,
        action: "kms:PutKeyPolicy",
        resource: key_arn,
        context: &context,
    };
    matches!(policy.evaluate(&request), Evaluation::Allow { .. })
}
