//! Inline policies of users and roles: Put/Get/Delete/List{User,Role}Policies.
//!
//! Documents are validated as identity policies and kept as written; Get*Policy returns
//! them URL-encoded, as IAM does. A change recompiles the owner's policies in memory, so
//! the next request of the owner (or of a session of the role) is decided by them.

use std::sync::Arc;

use keyhold_policy::{Policy, PolicyError, PolicyKind};
use keyhold_proto::iam::{
    DeleteRolePolicyRequest, DeleteUserPolicyRequest, GetRolePolicyRequest, GetRolePolicyResponse,
    GetUserPolicyRequest, GetUserPolicyResponse, ListRolePoliciesRequest, ListRolePoliciesResponse,
    ListUserPoliciesRequest, ListUserPoliciesResponse, PutRolePolicyRequest, PutUserPolicyRequest,
};
use keyhold_store::{IamWrite, InlinePolicyRecord};

use super::IamService;
use super::directory::{Policies, Role, User};
use super::error::IamError;
use super::names;
use super::pagination::page;
use super::roles::{authorized_role, current_role};
use super::users::arn_of;
use crate::context::RequestContext;

/// The most characters (whitespace not counted) of all of a user's inline policies.
const MAX_USER_POLICY_SIZE: usize = 2048;
/// The same for a role.
const MAX_ROLE_POLICY_SIZE: usize = 10240;

/// IAM's `MalformedPolicyDocument` for a refused document: IAM's wording where it is known,
/// its generic one otherwise.
pub(super) fn malformed(e: &PolicyError) -> IamError {
    IamError::MalformedPolicy {
        message: e
            .iam_message()
            .unwrap_or("Syntax errors in policy.")
            .to_owned(),
    }
}

fn parse_identity(document: &str) -> Result<Arc<Policy>, IamError> {
    Policy::parse(document, PolicyKind::Identity)
        .map(Arc::new)
        .map_err(|e| malformed(&e))
}

pub(super) async fn put_user_policy(
    svc: &IamService,
    ctx: &RequestContext,
    input: PutUserPolicyRequest,
) -> Result<(), IamError> {
    authorized_user(svc, ctx, &input.user_name, "iam:PutUserPolicy")?;
    let parsed = parse_identity(&input.policy_document)?;
    let _guard = svc.writes.lock().await;
    let user = current_user(svc, ctx, &input.user_name)?;
    let size = user
        .policies
        .size_with(&input.policy_name, &input.policy_document);
    if size > MAX_USER_POLICY_SIZE {
        return Err(IamError::UserPolicySize {
            user: user.record.name.clone(),
        });
    }
    let record = InlinePolicyRecord {
        owner_id: user.record.user_id.clone(),
        account: user.record.account.clone(),
        name: input.policy_name.clone(),
        document: input.policy_document.clone(),
    };
    let policies = user
        .policies
        .with(&input.policy_name, input.policy_document, parsed);
    let updated = with_user_policies(&user, policies);
    svc.commit(&[IamWrite::PutPolicy(record)], |d| d.put_user(updated))
        .await
}

pub(super) async fn get_user_policy(
    svc: &IamService,
    ctx: &RequestContext,
    input: GetUserPolicyRequest,
) -> Result<GetUserPolicyResponse, IamError> {
    let user = authorized_user(svc, ctx, &input.user_name, "iam:GetUserPolicy")?;
    let document =
        user.policies
            .document(&input.policy_name)
            .ok_or_else(|| IamError::NoSuchUserPolicy {
                name: input.policy_name.clone(),
            })?;
    Ok(GetUserPolicyResponse {
        policy_document: names::url_encode(document),
        policy_name: input.policy_name,
        user_name: user.record.name.clone(),
    })
}

pub(super) async fn delete_user_policy(
    svc: &IamService,
    ctx: &RequestContext,
    input: DeleteUserPolicyRequest,
) -> Result<(), IamError> {
    authorized_user(svc, ctx, &input.user_name, "iam:DeleteUserPolicy")?;
    let _guard = svc.writes.lock().await;
    let user = current_user(svc, ctx, &input.user_name)?;
    if user.policies.document(&input.policy_name).is_none() {
        return Err(IamError::NoSuchUserPolicy {
            name: input.policy_name,
        });
    }
    let updated = with_user_policies(&user, user.policies.without(&input.policy_name));
    let write = IamWrite::DeletePolicy {
        owner_id: user.record.user_id.clone(),
        name: input.policy_name,
    };
    svc.commit(&[write], |d| d.put_user(updated)).await
}

pub(super) async fn list_user_policies(
    svc: &IamService,
    ctx: &RequestContext,
    input: ListUserPoliciesRequest,
) -> Result<ListUserPoliciesResponse, IamError> {
    let user = authorized_user(svc, ctx, &input.user_name, "iam:ListUserPolicies")?;
    let names: Vec<String> = user.policies.names().cloned().collect();
    let page = page(
        names,
        Clone::clone,
        input.marker.as_deref(),
        input.max_items,
    )?;
    Ok(ListUserPoliciesResponse {
        is_truncated: Some(page.is_truncated()),
        policy_names: page.items,
        marker: page.marker,
    })
}

pub(super) async fn put_role_policy(
    svc: &IamService,
    ctx: &RequestContext,
    input: PutRolePolicyRequest,
) -> Result<(), IamError> {
    authorized_role(svc, ctx, &input.role_name, "iam:PutRolePolicy")?;
    let parsed = parse_identity(&input.policy_document)?;
    let _guard = svc.writes.lock().await;
    let role = current_role(svc, ctx, &input.role_name)?;
    let size = role
        .policies
        .size_with(&input.policy_name, &input.policy_document);
    if size > MAX_ROLE_POLICY_SIZE {
        return Err(IamError::RolePolicySize {
            role: role.record.name.clone(),
        });
    }
    let record = InlinePolicyRecord {
        owner_id: role.record.role_id.clone(),
        account: role.record.account.clone(),
        name: input.policy_name.clone(),
        document: input.policy_document.clone(),
    };
    let policies = role
        .policies
        .with(&input.policy_name, input.policy_document, parsed);
    let updated = with_role_policies(&role, policies);
    svc.commit(&[IamWrite::PutPolicy(record)], |d| d.put_role(updated))
        .await
}

pub(super) async fn get_role_policy(
    svc: &IamService,
    ctx: &RequestContext,
    input: GetRolePolicyRequest,
) -> Result<GetRolePolicyResponse, IamError> {
    let role = authorized_role(svc, ctx, &input.role_name, "iam:GetRolePolicy")?;
    let document =
        role.policies
            .document(&input.policy_name)
            .ok_or_else(|| IamError::NoSuchRolePolicy {
                name: input.policy_name.clone(),
            })?;
    Ok(GetRolePolicyResponse {
        policy_document: names::url_encode(document),
        policy_name: input.policy_name,
        role_name: role.record.name.clone(),
    })
}

pub(super) async fn delete_role_policy(
    svc: &IamService,
    ctx: &RequestContext,
    input: DeleteRolePolicyRequest,
) -> Result<(), IamError> {
    authorized_role(svc, ctx, &input.role_name, "iam:DeleteRolePolicy")?;
    let _guard = svc.writes.lock().await;
    let role = current_role(svc, ctx, &input.role_name)?;
    if role.policies.document(&input.policy_name).is_none() {
        return Err(IamError::NoSuchRolePolicy {
            name: input.policy_name,
        });
    }
    let updated = with_role_policies(&role, role.policies.without(&input.policy_name));
    let write = IamWrite::DeletePolicy {
        owner_id: role.record.role_id.clone(),
        name: input.policy_name,
    };
    svc.commit(&[write], |d| d.put_role(updated)).await
}

pub(super) async fn list_role_policies(
    svc: &IamService,
    ctx: &RequestContext,
    input: ListRolePoliciesRequest,
) -> Result<ListRolePoliciesResponse, IamError> {
    let role = authorized_role(svc, ctx, &input.role_name, "iam:ListRolePolicies")?;
    let names: Vec<String> = role.policies.names().cloned().collect();
    let page = page(
        names,
        Clone::clone,
        input.marker.as_deref(),
        input.max_items,
    )?;
    Ok(ListRolePoliciesResponse {
        is_truncated: Some(page.is_truncated()),
        policy_names: page.items,
        marker: page.marker,
    })
}

/// Looks a user up by name and authorizes `action` on it, then answers NoSuchEntity for a
/// missing user.
fn authorized_user(
    svc: &IamService,
    ctx: &RequestContext,
    name: &str,
    action: &str,
) -> Result<Arc<User>, IamError> {
    let user = svc.read(|d| d.user(&ctx.scope.account, name))?;
    svc.authorize(ctx, action, &arn_of(ctx, user.as_deref(), name))?;
    user.ok_or_else(|| IamError::NoSuchUser {
        name: name.to_owned(),
    })
}

/// The user as it is now (callers hold the write lock).
fn current_user(svc: &IamService, ctx: &RequestContext, name: &str) -> Result<Arc<User>, IamError> {
    svc.read(|d| d.user(&ctx.scope.account, name))?
        .ok_or_else(|| IamError::NoSuchUser {
            name: name.to_owned(),
        })
}

fn with_user_policies(user: &User, policies: Policies) -> User {
    User {
        record: user.record.clone(),
        meta: user.meta.clone(),
        policies,
    }
}

fn with_role_policies(role: &Role, policies: Policies) -> Role {
    Role {
        record: role.record.clone(),
        meta: role.meta.clone(),
        trust: role.trust.clone(),
        policies,
    }
}
