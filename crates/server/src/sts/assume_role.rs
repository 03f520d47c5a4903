//! AssumeRole: the role's trust policy decides, as a required resource policy — naming the
//! caller lets it in; naming the caller's account (its root) delegates to the caller's
//! identity policies, which must then allow `sts:AssumeRole` too; across accounts both
//! must allow ([`crate::authz`], `ResourceRule::KeyPolicy`).
//!
//! A role that does not exist is refused exactly like one whose trust policy says no, so
//! the answer tells nothing of which roles exist.

use keyhold_proto::sts::{AssumeRoleRequest, AssumeRoleResponse, AssumedRoleUser};

use super::error::StsError;
use super::{StsService, wire_credentials};
use crate::arn::Arn;
use crate::authz::RequestConditions;
use crate::authz::{Access, Denied, DenyReason, ResourceRule, decide};
use crate::context::{PrincipalKind, RequestContext};
use crate::iam::directory::SessionKind;
use crate::iam::names;

/// The session length unless the caller asks for another (seconds).
const DEFAULT_DURATION: i32 = 3600;
/// The longest session a caller with temporary credentials may ask for (role chaining).
const MAX_CHAINED_DURATION: i32 = 3600;

pub(super) async fn assume_role(
    svc: &StsService,
    ctx: &RequestContext,
    input: AssumeRoleRequest,
) -> Result<AssumeRoleResponse, StsError> {
    reject_unsupported(&input)?;
    let caller = &ctx.caller;
    if caller.kind == PrincipalKind::Root {
        return Err(StsError::RootCannotAssumeRole);
    }
    let arn = Arn::parse(&input.role_arn).ok_or(StsError::InvalidRoleArn)?;
    let Some(("role", _)) = arn.resource.split_once('/') else {
        return Err(StsError::InvalidRoleArn);
    };
    // A role is a global IAM resource of the caller's partition: no region in its ARN.
    if arn.service != "iam" || !arn.region.is_empty() || arn.partition != ctx.scope.partition {
        return Err(StsError::InvalidRoleArn);
    }
    let name = arn.resource.rsplit('/').next().unwrap_or_default();
    let role = svc
        .iam
        .role(arn.account, name)?
        .filter(|r| format!("role{}{}", r.record.path, r.record.name) == arn.resource);
    let Some(role) = role else {
        return Err(StsError::AccessDenied(Denied {
            principal: caller.arn.clone(),
            action: "sts:AssumeRole".to_owned(),
            resource: input.role_arn,
            reason: DenyReason::NoResourcePolicyAllows,
        }));
    };
    let r = &role.record;
    let role_arn = names::role_arn(ctx.scope.partition, &r.account, &r.path, &r.name);
    ctx.note_resource("AWS::IAM::Role", &role_arn);
    let mut extra = vec![("sts:rolesessionname", input.role_session_name.clone())];
    if let Some(external_id) = &input.external_id {
        extra.push(("sts:externalid", external_id.clone()));
    }
    decide(
        ctx,
        &Access {
            principal: caller,
            action: "sts:AssumeRole",
            resource: &role_arn,
            resource_account: &r.account,
            rule: ResourceRule::KeyPolicy(Some(&role.trust)),
            context: &RequestConditions::new(ctx, svc.clock.now(), &extra),
        },
    )
    .map_err(StsError::AccessDenied)?;

    let duration = input.duration_seconds.unwrap_or(DEFAULT_DURATION);
    if duration > role.meta.max_session_duration {
        return Err(StsError::DurationExceedsRoleMax);
    }
    // Role chaining (a role session assuming a role) is capped at an hour; a user's
    // GetSessionToken credentials are not a role session.
    let chained = matches!(caller.kind, PrincipalKind::AssumedRole { .. });
    if chained && duration > MAX_CHAINED_DURATION {
        return Err(StsError::DurationExceedsChaining);
    }
    let session_name = input.role_session_name;
    let issued = svc
        .iam
        .issue_session(
            &r.account,
            &r.role_id,
            SessionKind::AssumedRole {
                session_name: session_name.clone(),
            },
            i64::from(duration),
        )
        .await?;
    Ok(AssumeRoleResponse {
        assumed_role_user: Some(AssumedRoleUser {
            arn: names::assumed_role_arn(ctx.scope.partition, &r.account, &r.name, &session_name),
            assumed_role_id: format!("{}:{session_name}", r.role_id),
        }),
        credentials: Some(wire_credentials(issued)),
        ..AssumeRoleResponse::default()
    })
}

/// Session policies, session tags, MFA, source identity and provided contexts change what
/// a session may do; Keyhold refuses them rather than ignore them.
fn reject_unsupported(input: &AssumeRoleRequest) -> Result<(), StsError> {
    let unsupported = [
        (input.policy.is_some(), "session policies (Policy)"),
        (
            input.policy_arns.is_some(),
            "managed session policies (PolicyArns)",
        ),
        (
            input.tags.is_some() || input.transitive_tag_keys.is_some(),
            "session tags",
        ),
        (
            input.serial_number.is_some() || input.token_code.is_some(),
            "MFA",
        ),
        (input.source_identity.is_some(), "SourceIdentity"),
        (input.provided_contexts.is_some(), "ProvidedContexts"),
    ];
    match unsupported.into_iter().find(|(present, _)| *present) {
        Some((_, what)) => Err(StsError::Unsupported { what }),
        None => Ok(()),
    }
}
