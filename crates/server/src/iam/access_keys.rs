//! CreateAccessKey, ListAccessKeys, UpdateAccessKey, DeleteAccessKey.
//!
//! Without `UserName` these act on the calling user (IAM determines the user from the key
//! that signed the request); the root user has no access keys in Keyhold, and a role
//! session must name the user.

use std::sync::Arc;

use keyhold_proto::iam::{
    AccessKey as WireAccessKey, AccessKeyMetadata, CreateAccessKeyRequest, CreateAccessKeyResponse,
    DeleteAccessKeyRequest, ListAccessKeysRequest, ListAccessKeysResponse, StatusType,
    UpdateAccessKeyRequest,
};
use keyhold_proto::{SensitiveString, Timestamp};
use keyhold_store::{AccessKeyRecord, IamWrite};
use zeroize::Zeroizing;

use super::IamService;
use super::credentials::{self, SECRET_PURPOSE, Secret};
use super::directory::{AccessKey, User};
use super::error::IamError;
use super::pagination::page;
use super::users::arn_of;
use crate::context::{PrincipalKind, RequestContext};

/// IAM's quota of access keys per user.
const ACCESS_KEYS_PER_USER: usize = 2;

pub(super) async fn create_access_key(
    svc: &IamService,
    ctx: &RequestContext,
    input: CreateAccessKeyRequest,
) -> Result<CreateAccessKeyResponse, IamError> {
    let user = target(svc, ctx, input.user_name, "iam:CreateAccessKey")?;
    let user = match user {
        Target::User(user) => user,
        Target::Missing(name) => return Err(IamError::NoSuchUser { name }),
        Target::Root => return Err(IamError::RootAccessKeys),
    };
    let user_id = user.record.user_id.clone();

    let _guard = svc.writes.lock().await;
    let (current, count) =
        svc.read(|d| (d.user_by_id(&user_id), d.access_keys_of(&user_id).len()))?;
    if current.is_none() {
        return Err(IamError::NoSuchUser {
            name: user.record.name.clone(),
        });
    }
    if count >= ACCESS_KEYS_PER_USER {
        return Err(IamError::AccessKeysPerUser);
    }
    let access_key_id = credentials::access_key_id()?;
    let secret = credentials::secret_access_key()?;
    let sealed_secret = svc
        .domain
        .seal_secret(SECRET_PURPOSE, &access_key_id, secret.as_bytes())
        .map_err(|_| IamError::Internal)?;
    let record = AccessKeyRecord {
        access_key_id: access_key_id.clone(),
        account: user.record.account.clone(),
        user_id,
        status: StatusType::Active.as_str().to_owned(),
        created_ms: svc.now_ms(),
        sealed_secret,
    };
    let output = WireAccessKey {
        access_key_id,
        create_date: Some(Timestamp::from_millis(record.created_ms)),
        secret_access_key: SensitiveString::new(String::from(secret.as_str())),
        status: StatusType::Active,
        user_name: user.record.name.clone(),
    };
    let key = AccessKey {
        record: record.clone(),
        secret: Arc::new(Secret::new(Zeroizing::new(secret.as_bytes().to_vec()))),
    };
    svc.commit(&[IamWrite::PutAccessKey(record)], |d| d.put_key(key))
        .await?;
    Ok(CreateAccessKeyResponse { access_key: output })
}

pub(super) async fn list_access_keys(
    svc: &IamService,
    ctx: &RequestContext,
    input: ListAccessKeysRequest,
) -> Result<ListAccessKeysResponse, IamError> {
    let user = match target(svc, ctx, input.user_name, "iam:ListAccessKeys")? {
        Target::User(user) => user,
        Target::Missing(name) => return Err(IamError::NoSuchUser { name }),
        Target::Root => {
            return Ok(ListAccessKeysResponse {
                access_key_metadata: Vec::new(),
                is_truncated: Some(false),
                marker: None,
            });
        }
    };
    let keys = svc.read(|d| d.access_keys_of(&user.record.user_id))?;
    let page = page(
        keys,
        |k| format!("{:020}{}", k.record.created_ms, k.record.access_key_id),
        input.marker.as_deref(),
        input.max_items,
    )?;
    Ok(ListAccessKeysResponse {
        is_truncated: Some(page.is_truncated()),
        access_key_metadata: page
            .items
            .iter()
            .map(|k| AccessKeyMetadata {
                access_key_id: Some(k.record.access_key_id.clone()),
                create_date: Some(Timestamp::from_millis(k.record.created_ms)),
                status: StatusType::parse(&k.record.status),
                user_name: Some(user.record.name.clone()),
            })
            .collect(),
        marker: page.marker,
    })
}

pub(super) async fn update_access_key(
    svc: &IamService,
    ctx: &RequestContext,
    input: UpdateAccessKeyRequest,
) -> Result<(), IamError> {
    let user = target(svc, ctx, input.user_name, "iam:UpdateAccessKey")?;
    let _guard = svc.writes.lock().await;
    let key = owned_key(svc, user, &input.access_key_id)?;
    let mut record = key.record.clone();
    record.status = input.status.as_str().to_owned();
    let updated = AccessKey {
        record: record.clone(),
        secret: key.secret.clone(),
    };
    svc.commit(&[IamWrite::PutAccessKey(record)], |d| d.put_key(updated))
        .await
}

pub(super) async fn delete_access_key(
    svc: &IamService,
    ctx: &RequestContext,
    input: DeleteAccessKeyRequest,
) -> Result<(), IamError> {
    let user = target(svc, ctx, input.user_name, "iam:DeleteAccessKey")?;
    let _guard = svc.writes.lock().await;
    let key = owned_key(svc, user, &input.access_key_id)?;
    let id = key.record.access_key_id.clone();
    let writes = [
        IamWrite::DeleteAccessKey {
            access_key_id: id.clone(),
        },
        IamWrite::Retire {
            access_key_id: id.clone(),
            retired_ms: svc.now_ms(),
        },
    ];
    svc.commit(&writes, |d| d.retire_key(&id)).await
}

/// Whose access keys an operation acts on.
enum Target {
    User(Arc<User>),
    /// A `UserName` that names no user.
    Missing(String),
    /// The calling root user.
    Root,
}

/// Resolves the target user (the named one, or the caller) and authorizes `action` on it.
fn target(
    svc: &IamService,
    ctx: &RequestContext,
    user_name: Option<String>,
    action: &str,
) -> Result<Target, IamError> {
    let account = ctx.scope.account.as_str();
    match (user_name, &ctx.caller.kind) {
        (Some(name), _) => {
            let user = svc.read(|d| d.user(account, &name))?;
            svc.authorize(ctx, action, &arn_of(ctx, user.as_deref(), &name))?;
            Ok(user.map_or(Target::Missing(name), Target::User))
        }
        (None, PrincipalKind::User { user_id, name }) => {
            svc.authorize(ctx, action, &ctx.caller.arn)?;
            let user = svc.read(|d| d.user_by_id(user_id))?;
            Ok(user.map_or_else(|| Target::Missing(name.clone()), Target::User))
        }
        (None, PrincipalKind::Root) => {
            svc.authorize(ctx, action, &ctx.caller.arn)?;
            Ok(Target::Root)
        }
        (None, PrincipalKind::AssumedRole { .. }) => Err(IamError::UserNameRequired),
    }
}

/// The access key `access_key_id` of the target user, or NoSuchEntity.
fn owned_key(
    svc: &IamService,
    target: Target,
    access_key_id: &str,
) -> Result<Arc<AccessKey>, IamError> {
    let not_found = || IamError::NoSuchAccessKey {
        access_key_id: access_key_id.to_owned(),
    };
    let user = match target {
        Target::User(user) => user,
        Target::Missing(name) => return Err(IamError::NoSuchUser { name }),
        Target::Root => return Err(not_found()),
    };
    let key = svc
        .read(|d| d.access_key(access_key_id))?
        .ok_or_else(not_found)?;
    if key.record.user_id != user.record.user_id {
        return Err(not_found());
    }
    Ok(key)
}
