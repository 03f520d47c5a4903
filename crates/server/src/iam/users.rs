//! CreateUser, GetUser, ListUsers, DeleteUser.

use keyhold_proto::Timestamp;
use keyhold_proto::iam::{
    CreateUserRequest, CreateUserResponse, DeleteUserRequest, GetUserRequest, GetUserResponse,
    ListUsersRequest, ListUsersResponse, User as WireUser,
};
use keyhold_store::{IamUserRecord, IamWrite};

use super::directory::{Policies, User, UserMeta, encode};
use super::error::IamError;
use super::names::{self, StoredTag};
use super::pagination::page;
use super::{IamService, credentials};
use crate::context::{PrincipalKind, RequestContext};

/// The most users an account may have (IAM's default quota).
const USERS_PER_ACCOUNT: usize = 5000;

pub(super) async fn create_user(
    svc: &IamService,
    ctx: &RequestContext,
    input: CreateUserRequest,
) -> Result<CreateUserResponse, IamError> {
    let (partition, account) = (ctx.scope.partition, ctx.scope.account.as_str());
    let path = input.path.unwrap_or_else(|| "/".to_owned());
    let name = input.user_name;
    svc.authorize(
        ctx,
        "iam:CreateUser",
        &names::user_arn(partition, account, &path, &name),
    )?;
    if let Some(arn) = input.permissions_boundary {
        return Err(IamError::NoSuchBoundary { arn });
    }
    let tags = input.tags.unwrap_or_default();
    names::check_tags(&tags)?;

    let _guard = svc.writes.lock().await;
    let (exists, count) =
        svc.read(|d| (d.user(account, &name).is_some(), d.users(account).len()))?;
    if exists {
        return Err(IamError::UserExists { name });
    }
    if count >= USERS_PER_ACCOUNT {
        return Err(IamError::UsersPerAccount);
    }
    let meta = UserMeta {
        tags: StoredTag::from_wire(&tags),
    };
    let record = IamUserRecord {
        user_id: credentials::user_id()?,
        account: account.to_owned(),
        name,
        path,
        created_ms: svc.now_ms(),
        meta: encode(&meta),
    };
    let user = User {
        record: record.clone(),
        meta,
        policies: Policies::default(),
    };
    let output = wire_user(&user, partition, true);
    svc.commit(&[IamWrite::PutUser(record)], |d| d.put_user(user))
        .await?;
    Ok(CreateUserResponse { user: Some(output) })
}

pub(super) async fn get_user(
    svc: &IamService,
    ctx: &RequestContext,
    input: GetUserRequest,
) -> Result<GetUserResponse, IamError> {
    let (partition, account) = (ctx.scope.partition, ctx.scope.account.as_str());
    let user = match (input.user_name, &ctx.caller.kind) {
        (Some(name), _) => {
            let user = svc.read(|d| d.user(account, &name))?;
            svc.authorize(ctx, "iam:GetUser", &arn_of(ctx, user.as_deref(), &name))?;
            user.ok_or(IamError::NoSuchUser { name })?
        }
        (None, PrincipalKind::User { user_id, name }) => {
            svc.authorize(ctx, "iam:GetUser", &ctx.caller.arn)?;
            let user = svc.read(|d| d.user_by_id(user_id))?;
            user.ok_or_else(|| IamError::NoSuchUser { name: name.clone() })?
        }
        (None, PrincipalKind::Root) => {
            svc.authorize(ctx, "iam:GetUser", &ctx.caller.arn)?;
            return Ok(GetUserResponse {
                user: root_user(ctx),
            });
        }
        (None, PrincipalKind::AssumedRole { .. }) => return Err(IamError::UserNameRequired),
    };
    Ok(GetUserResponse {
        user: wire_user(&user, partition, true),
    })
}

pub(super) async fn list_users(
    svc: &IamService,
    ctx: &RequestContext,
    input: ListUsersRequest,
) -> Result<ListUsersResponse, IamError> {
    let (partition, account) = (ctx.scope.partition, ctx.scope.account.as_str());
    svc.authorize(
        ctx,
        "iam:ListUsers",
        &format!("arn:{partition}:iam::{account}:user/"),
    )?;
    let prefix = input.path_prefix.unwrap_or_else(|| "/".to_owned());
    let users: Vec<_> = svc
        .read(|d| d.users(account))?
        .into_iter()
        .filter(|u| u.record.path.starts_with(&prefix))
        .collect();
    let page = page(
        users,
        |u| u.record.name.to_lowercase(),
        input.marker.as_deref(),
        input.max_items,
    )?;
    Ok(ListUsersResponse {
        is_truncated: Some(page.is_truncated()),
        users: page
            .items
            .iter()
            .map(|u| wire_user(u, partition, false))
            .collect(),
        marker: page.marker,
    })
}

pub(super) async fn delete_user(
    svc: &IamService,
    ctx: &RequestContext,
    input: DeleteUserRequest,
) -> Result<(), IamError> {
    let account = ctx.scope.account.as_str();
    let name = input.user_name;
    let user = svc.read(|d| d.user(account, &name))?;
    svc.authorize(ctx, "iam:DeleteUser", &arn_of(ctx, user.as_deref(), &name))?;
    let _guard = svc.writes.lock().await;
    let Some(user) = svc.read(|d| d.user(account, &name))? else {
        return Err(IamError::NoSuchUser { name });
    };
    let user_id = user.record.user_id.clone();
    if !svc.read(|d| d.access_keys_of(&user_id).is_empty())? {
        return Err(IamError::UserHasAccessKeys);
    }
    if !user.policies.is_empty() {
        return Err(IamError::HasPolicies);
    }
    svc.commit(
        &[IamWrite::DeleteUser {
            user_id: user_id.clone(),
        }],
        |d| d.remove_user(&user_id),
    )
    .await
}

/// The ARN of a user for authorization: its own, or (for a user that does not exist) the
/// one it would have at the root path, as IAM names it in access-denied messages.
pub(super) fn arn_of(ctx: &RequestContext, user: Option<&User>, name: &str) -> String {
    let (partition, account) = (ctx.scope.partition, ctx.scope.account.as_str());
    match user {
        Some(u) => names::user_arn(partition, account, &u.record.path, &u.record.name),
        None => names::user_arn(partition, account, "/", name),
    }
}

/// A user as IAM answers it; `with_tags` for GetUser and CreateUser (ListUsers omits them).
pub(super) fn wire_user(user: &User, partition: &str, with_tags: bool) -> WireUser {
    let r = &user.record;
    WireUser {
        arn: names::user_arn(partition, &r.account, &r.path, &r.name),
        create_date: Timestamp::from_millis(r.created_ms),
        path: r.path.clone(),
        user_id: r.user_id.clone(),
        user_name: r.name.clone(),
        tags: if with_tags {
            StoredTag::to_wire(&user.meta.tags)
        } else {
            None
        },
        ..WireUser::default()
    }
}

/// GetUser of the root user: its account id as the user id, the root ARN, no name.
fn root_user(ctx: &RequestContext) -> WireUser {
    WireUser {
        arn: ctx.caller.arn.clone(),
        user_id: ctx.caller.account.clone(),
        create_date: Timestamp::from_millis(0),
        ..WireUser::default()
    }
}
