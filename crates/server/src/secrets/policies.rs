//! Resource policies: PutResourcePolicy, GetResourcePolicy, DeleteResourcePolicy,
//! ValidateResourcePolicy, ListResourcePolicies.
//!
//! A secret has one policy that callers can change, named `default`. Policies are parsed by
//! the same engine as key policies (`keyhold-policy`) and enforced for every call on the
//! secret ([`super::authz`]). The "broad access" check (`BlockPublicPolicy`, and the check
//! `ValidateResourcePolicy` runs) asks the engine whether the policy would allow an
//! anonymous caller, or a caller of an unrelated account, to use the secret — the question
//! AWS puts to Zelkova, answered by evaluation rather than proof.

use keyhold_policy::{Evaluation, Policy, PolicyKind, Principal, PrincipalKind};
use keyhold_proto::Timestamp;
use keyhold_proto::secretsmanager::*;

use super::SecretsService;
use super::error::SecretsError;
use super::pagination::{List, page};
use crate::authz::RequestConditions;
use crate::context::RequestContext;

/// The one policy name callers can use.
const DEFAULT_POLICY: &str = "default";
/// Keyhold's names for the checks `ValidateResourcePolicy` reports (AWS's are unpublished).
const BROAD_ACCESS_CHECK: &str = "BROAD_ACCESS_CHECK";
const LOCKOUT_CHECK: &str = "LOCKOUT_CHECK";

/// What a stranger would try: reading and changing the secret, and its policy.
const PROBED_ACTIONS: &[&str] = &[
    "secretsmanager:GetSecretValue",
    "secretsmanager:DescribeSecret",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecret",
    "secretsmanager:DeleteSecret",
    "secretsmanager:PutResourcePolicy",
    "secretsmanager:ListSecretVersionIds",
];

pub async fn put_resource_policy(
    service: &SecretsService,
    ctx: &RequestContext,
    input: PutResourcePolicyRequest,
) -> Result<PutResourcePolicyResponse, SecretsError> {
    writable_name(input.policy_name.as_deref())?;
    let policy = parse(&input.resource_policy)?;
    let _guard = service.writes.lock().await;
    let secret = service.resolve_writable(ctx, &input.secret_id).await?;
    if input.block_public_policy == Some(true) && grants_broad_access(&policy, &secret.arn) {
        return Err(SecretsError::PublicPolicy);
    }
    let mut next = (*secret).clone();
    next.meta.policy = Some(input.resource_policy);
    next.meta.last_changed_ms = service.now_ms();
    let stored = service.save(ctx, secret, next).await?;
    Ok(PutResourcePolicyResponse {
        arn: Some(stored.arn.clone()),
        name: Some(stored.name.clone()),
        policy_name: input.policy_name,
    })
}

pub async fn get_resource_policy(
    service: &SecretsService,
    ctx: &RequestContext,
    input: GetResourcePolicyRequest,
) -> Result<GetResourcePolicyResponse, SecretsError> {
    let secret = service.resolve(ctx, &input.secret_id).await?;
    if let Some(name) = input.policy_name.as_deref()
        && (name != DEFAULT_POLICY || secret.meta.policy.is_none())
    {
        return Err(SecretsError::NoSuchPolicy {
            name: name.to_owned(),
        });
    }
    Ok(GetResourcePolicyResponse {
        arn: Some(secret.arn.clone()),
        name: Some(secret.name.clone()),
        resource_policy: secret.meta.policy.clone(),
        policy_name: input.policy_name,
    })
}

pub async fn delete_resource_policy(
    service: &SecretsService,
    ctx: &RequestContext,
    input: DeleteResourcePolicyRequest,
) -> Result<DeleteResourcePolicyResponse, SecretsError> {
    writable_name(input.policy_name.as_deref())?;
    let _guard = service.writes.lock().await;
    let secret = service.resolve_writable(ctx, &input.secret_id).await?;
    let mut next = (*secret).clone();
    next.meta.policy = None;
    next.meta.last_changed_ms = service.now_ms();
    let stored = service.save(ctx, secret, next).await?;
    Ok(DeleteResourcePolicyResponse {
        arn: Some(stored.arn.clone()),
        name: Some(stored.name.clone()),
        policy_name: input.policy_name,
    })
}

pub async fn validate_resource_policy(
    service: &SecretsService,
    ctx: &RequestContext,
    input: ValidateResourcePolicyRequest,
) -> Result<ValidateResourcePolicyResponse, SecretsError> {
    let policy = parse(&input.resource_policy)?;
    let resource = match &input.secret_id {
        Some(id) => service.resolve(ctx, id).await?.arn.clone(),
        None => {
            // Regression (every-operation authorization test): without a SecretId this
            // was answered to any caller.
            service.authorize_in_account(ctx, "secretsmanager:ValidateResourcePolicy", "*", &[])?;
            ctx.scope.arn("secretsmanager", "secret:*")
        }
    };
    let mut errors = Vec::new();
    if grants_broad_access(&policy, &resource) {
        errors.push(ValidationErrorsEntry {
            check_name: Some(BROAD_ACCESS_CHECK.to_owned()),
            error_message: Some(
                "This resource policy grants access to principals outside your account (for \
                 example \"*\") without a condition that limits it."
                    .to_owned(),
            ),
        });
    }
    if locks_out(ctx, service.clock.now(), &policy, &resource) {
        errors.push(ValidationErrorsEntry {
            check_name: Some(LOCKOUT_CHECK.to_owned()),
            error_message: Some(
                "This resource policy denies you secretsmanager:PutResourcePolicy: you could \
                 not change it afterwards."
                    .to_owned(),
            ),
        });
    }
    Ok(ValidateResourcePolicyResponse {
        policy_validation_passed: Some(errors.is_empty()),
        validation_errors: Some(errors),
    })
}

pub async fn list_resource_policies(
    service: &SecretsService,
    ctx: &RequestContext,
    input: ListResourcePoliciesRequest,
) -> Result<ListResourcePoliciesResponse, SecretsError> {
    let secret = service.resolve(ctx, &input.secret_id).await?;
    let names: Vec<ResourcePolicySummary> = secret
        .meta
        .policy
        .iter()
        .map(|_| ResourcePolicySummary {
            policy_name: Some(DEFAULT_POLICY.to_owned()),
        })
        .collect();
    let size = input
        .max_results
        .and_then(|m| usize::try_from(m).ok())
        .unwrap_or(100);
    let (names, next_token) = page(List::Policies, names, input.next_token.as_deref(), size)?;
    Ok(ListResourcePoliciesResponse {
        resource_policies: names,
        next_token,
    })
}

fn writable_name(name: Option<&str>) -> Result<(), SecretsError> {
    match name {
        None | Some(DEFAULT_POLICY) => Ok(()),
        Some(_) => Err(SecretsError::ReadOnlyPolicy),
    }
}

/// Syntax, as a resource policy (the model's 20,480-character limit is checked before the
/// operation runs).
fn parse(text: &str) -> Result<Policy, SecretsError> {
    Policy::parse(text, PolicyKind::Resource).map_err(|e| SecretsError::MalformedPolicy {
        detail: e.to_string(),
    })
}

/// Whether the policy allows an anonymous caller, or the root of an unrelated account, any
/// of the probed actions on `resource`.
fn grants_broad_access(policy: &Policy, resource: &str) -> bool {
    let strangers = [
        Principal {
            arn: "",
            account: "",
            kind: PrincipalKind::Anonymous,
            role_arn: None,
            service: None,
        },
        Principal {
            arn: "arn:aws:iam::999999999991:root",
            account: "999999999991",
            kind: PrincipalKind::Root,
            role_arn: None,
            service: None,
        },
    ];
    let context = keyhold_policy::Context::default();
    strangers.iter().any(|principal| {
        PROBED_ACTIONS.iter().any(|action| {
            matches!(
                policy.evaluate(&keyhold_policy::Request {
                    principal,
                    action,
                    resource,
                    context: &context,
                }),
                Evaluation::Allow { .. }
            )
        })
    })
}

/// Whether the policy denies the caller `PutResourcePolicy` outright.
fn locks_out(ctx: &RequestContext, now: Timestamp, policy: &Policy, resource: &str) -> bool {
    let principal = ctx.caller.policy_principal();
    // The request's global condition keys, as the real decision would see them.
    let context = RequestConditions::new(ctx, now, &[]);
    policy.evaluate(&keyhold_policy::Request {
        principal: &principal,
        action: "secretsmanager:PutResourcePolicy",
        resource,
        context: &context,
    }) == Evaluation::ExplicitDeny
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:111122223333:secret:s-AbCdEf";

    fn policy(principal: &str, condition: &str) -> Policy {
        parse(&format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{principal},
            "Action":"secretsmanager:GetSecretValue","Resource":"*"{condition}}}]}}"#
        ))
        .unwrap()
    }

    #[test]
    fn broad_access() {
        assert!(grants_broad_access(&policy(r#""*""#, ""), ARN));
        assert!(grants_broad_access(&policy(r#"{"AWS":"*"}"#, ""), ARN));
        assert!(!grants_broad_access(
            &policy(r#"{"AWS":"arn:aws:iam::111122223333:root"}"#, ""),
            ARN
        ));
        assert!(!grants_broad_access(
            &policy(
                r#""*""#,
                r#","Condition":{"StringEquals":{"aws:PrincipalAccount":"111122223333"}}"#
            ),
            ARN
        ));
    }

    #[test]
    fn malformed() {
        assert!(matches!(
            parse("not json"),
            Err(SecretsError::MalformedPolicy { .. })
        ));
        assert!(matches!(
            parse(r#"{"Statement":[]}"#),
            Err(SecretsError::MalformedPolicy { .. })
        ));
    }
}
