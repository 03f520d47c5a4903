//! CreateRole, GetRole, ListRoles, DeleteRole, UpdateAssumeRolePolicy.

use std::sync::Arc;

use keyhold_policy::{Policy, PolicyKind};
use keyhold_proto::Timestamp;
use keyhold_proto::iam::{
    CreateRoleRequest, CreateRoleResponse, DeleteRoleRequest, GetRoleRequest, GetRoleResponse,
    ListRolesRequest, ListRolesResponse, Role as WireRole, RoleLastUsed,
    UpdateAssumeRolePolicyRequest,
};
use keyhold_store::{IamRoleRecord, IamWrite};

use super::directory::{Directory, Policies, Role, RoleMeta, encode};
use super::error::IamError;
use super::names::{self, StoredTag};
use super::pagination::page;
use super::policies::malformed;
use super::{IamService, credentials};
use crate::arn::Arn;
use crate::context::RequestContext;

/// The most roles an account may have (IAM's default quota).
const ROLES_PER_ACCOUNT: usize = 1000;
/// The longest trust policy (IAM's default `ACLSizePerRole`, whitespace not counted).
const MAX_TRUST_POLICY_SIZE: usize = 2048;
/// A role's maximum session duration unless it says otherwise (seconds).
pub const DEFAULT_MAX_SESSION_DURATION: i32 = 3600;

pub(super) async fn create_role(
    svc: &IamService,
    ctx: &RequestContext,
    input: CreateRoleRequest,
) -> Result<CreateRoleResponse, IamError> {
    let (partition, account) = (ctx.scope.partition, ctx.scope.account.as_str());
    let path = input.path.unwrap_or_else(|| "/".to_owned());
    let name = input.role_name;
    svc.authorize(
        ctx,
        "iam:CreateRole",
        &names::role_arn(partition, account, &path, &name),
    )?;
    if let Some(arn) = input.permissions_boundary {
        return Err(IamError::NoSuchBoundary { arn });
    }
    let tags = input.tags.unwrap_or_default();
    names::check_tags(&tags)?;

    let _guard = svc.writes.lock().await;
    let trust = svc.read(|d| parse_trust(d, &input.assume_role_policy_document))??;
    let (exists, count) =
        svc.read(|d| (d.role(account, &name).is_some(), d.roles(account).len()))?;
    if exists {
        return Err(IamError::RoleExists { name });
    }
    if count >= ROLES_PER_ACCOUNT {
        return Err(IamError::RolesPerAccount);
    }
    let meta = RoleMeta {
        description: input.description,
        max_session_duration: input
            .max_session_duration
            .unwrap_or(DEFAULT_MAX_SESSION_DURATION),
        tags: StoredTag::from_wire(&tags),
    };
    let record = IamRoleRecord {
        role_id: credentials::role_id()?,
        account: account.to_owned(),
        name,
        path,
        created_ms: svc.now_ms(),
        trust_policy: input.assume_role_policy_document,
        meta: encode(&meta),
    };
    let role = Role {
        record: record.clone(),
        meta,
        trust,
        policies: Policies::default(),
    };
    let output = wire_role(&role, partition, true);
    svc.commit(&[IamWrite::PutRole(record)], |d| d.put_role(role))
        .await?;
    Ok(CreateRoleResponse { role: output })
}

pub(super) async fn get_role(
    svc: &IamService,
    ctx: &RequestContext,
    input: GetRoleRequest,
) -> Result<GetRoleResponse, IamError> {
    let role = authorized_role(svc, ctx, &input.role_name, "iam:GetRole")?;
    let mut output = wire_role(&role, ctx.scope.partition, true);
    output.role_last_used = Some(RoleLastUsed::default());
    Ok(GetRoleResponse { role: output })
}

pub(super) async fn list_roles(
    svc: &IamService,
    ctx: &RequestContext,
    input: ListRolesRequest,
) -> Result<ListRolesResponse, IamError> {
    let (partition, account) = (ctx.scope.partition, ctx.scope.account.as_str());
    svc.authorize(
        ctx,
        "iam:ListRoles",
        &format!("arn:{partition}:iam::{account}:role/"),
    )?;
    let prefix = input.path_prefix.unwrap_or_else(|| "/".to_owned());
    let roles: Vec<_> = svc
        .read(|d| d.roles(account))?
        .into_iter()
        .filter(|r| r.record.path.starts_with(&prefix))
        .collect();
    let page = page(
        roles,
        |r| r.record.name.to_lowercase(),
        input.marker.as_deref(),
        input.max_items,
    )?;
    Ok(ListRolesResponse {
        is_truncated: Some(page.is_truncated()),
        roles: page
            .items
            .iter()
            .map(|r| wire_role(r, partition, false))
            .collect(),
        marker: page.marker,
    })
}

pub(super) async fn delete_role(
    svc: &IamService,
    ctx: &RequestContext,
    input: DeleteRoleRequest,
) -> Result<(), IamError> {
    authorized_role(svc, ctx, &input.role_name, "iam:DeleteRole")?;
    let _guard = svc.writes.lock().await;
    let role = current_role(svc, ctx, &input.role_name)?;
    if !role.policies.is_empty() {
        return Err(IamError::HasPolicies);
    }
    let role_id = role.record.role_id.clone();
    svc.commit(
        &[IamWrite::DeleteRole {
            role_id: role_id.clone(),
        }],
        |d| d.remove_role(&role_id),
    )
    .await
}

pub(super) async fn update_assume_role_policy(
    svc: &IamService,
    ctx: &RequestContext,
    input: UpdateAssumeRolePolicyRequest,
) -> Result<(), IamError> {
    authorized_role(svc, ctx, &input.role_name, "iam:UpdateAssumeRolePolicy")?;
    let _guard = svc.writes.lock().await;
    let role = current_role(svc, ctx, &input.role_name)?;
    let trust = svc.read(|d| parse_trust(d, &input.policy_document))??;
    let mut record = role.record.clone();
    record.trust_policy = input.policy_document;
    let updated = Role {
        record: record.clone(),
        meta: role.meta.clone(),
        trust,
        policies: role.policies.clone(),
    };
    svc.commit(&[IamWrite::PutRole(record)], |d| d.put_role(updated))
        .await
}

/// Looks a role up by name and authorizes `action` on it (on the ARN it would have, when
/// it does not exist), then answers NoSuchEntity for a missing role.
pub(super) fn authorized_role(
    svc: &IamService,
    ctx: &RequestContext,
    name: &str,
    action: &str,
) -> Result<Arc<Role>, IamError> {
    let (partition, account) = (ctx.scope.partition, ctx.scope.account.as_str());
    let role = svc.read(|d| d.role(account, name))?;
    let arn = match &role {
        Some(r) => names::role_arn(partition, account, &r.record.path, &r.record.name),
        None => names::role_arn(partition, account, "/", name),
    };
    svc.authorize(ctx, action, &arn)?;
    role.ok_or_else(|| IamError::NoSuchRole {
        name: name.to_owned(),
    })
}

/// The role as it is now (callers hold the write lock).
pub(super) fn current_role(
    svc: &IamService,
    ctx: &RequestContext,
    name: &str,
) -> Result<Arc<Role>, IamError> {
    svc.read(|d| d.role(&ctx.scope.account, name))?
        .ok_or_else(|| IamError::NoSuchRole {
            name: name.to_owned(),
        })
}

/// Validates a trust policy as IAM does: its size, its grammar, and that every IAM user
/// and role it names exists.
fn parse_trust(directory: &Directory, document: &str) -> Result<Arc<Policy>, IamError> {
    if names::policy_size(document) > MAX_TRUST_POLICY_SIZE {
        return Err(IamError::TrustPolicySize);
    }
    let policy = Policy::parse(document, PolicyKind::Trust).map_err(|e| malformed(&e))?;
    for principal in policy.aws_principals() {
        if !principal_exists(directory, &principal) {
            return Err(IamError::MalformedPolicy {
                message: format!("Invalid principal in policy: \"AWS\":\"{principal}\""),
            });
        }
    }
    Ok(Arc::new(policy))
}

/// Whether an `AWS` principal names something that exists: accounts and `*` always do;
/// users, roles and role sessions must.
fn principal_exists(directory: &Directory, principal: &str) -> bool {
    let Some(arn) = Arn::parse(principal) else {
        return true;
    };
    let last = |resource: &str| resource.rsplit('/').next().map(str::to_owned);
    match (arn.service, arn.resource.split_once('/')) {
        ("iam", Some(("user", _))) => last(arn.resource).is_some_and(|name| {
            directory
                .user(arn.account, &name)
                .is_some_and(|u| format!("user{}{}", u.record.path, u.record.name) == arn.resource)
        }),
        ("iam", Some(("role", _))) => last(arn.resource).is_some_and(|name| {
            directory
                .role(arn.account, &name)
                .is_some_and(|r| format!("role{}{}", r.record.path, r.record.name) == arn.resource)
        }),
        ("sts", Some(("assumed-role", rest))) => rest
            .split('/')
            .next()
            .is_some_and(|role| directory.role(arn.account, role).is_some()),
        _ => true,
    }
}

/// A role as IAM answers it, its trust policy URL-encoded; `full` adds the tags (GetRole,
/// CreateRole), which ListRoles omits.
fn wire_role(role: &Role, partition: &str, full: bool) -> WireRole {
    let r = &role.record;
    WireRole {
        arn: names::role_arn(partition, &r.account, &r.path, &r.name),
        assume_role_policy_document: Some(names::url_encode(&r.trust_policy)),
        create_date: Timestamp::from_millis(r.created_ms),
        description: role.meta.description.clone(),
        max_session_duration: Some(role.meta.max_session_duration),
        path: r.path.clone(),
        role_id: r.role_id.clone(),
        role_name: r.name.clone(),
        tags: if full {
            StoredTag::to_wire(&role.meta.tags)
        } else {
            None
        },
        ..WireRole::default()
    }
}
