//! GetSessionToken: temporary credentials of an IAM user (or the account root) acting as
//! itself. Needs no permission (AWS: it is an authentication operation). Its credentials
//! cannot call IAM (authentication refuses them) nor STS other than AssumeRole and
//! GetCallerIdentity.

use keyhold_proto::sts::{GetSessionTokenRequest, GetSessionTokenResponse};

use super::error::StsError;
use super::{StsService, wire_credentials};
use crate::context::{PrincipalKind, RequestContext};
use crate::iam::directory::SessionKind;

/// A user's session length unless it asks for another (seconds).
const DEFAULT_USER_DURATION: i32 = 43_200;
/// The root's sessions last an hour at most; longer requests get an hour.
const MAX_ROOT_DURATION: i32 = 3600;

pub(super) async fn get_session_token(
    svc: &StsService,
    ctx: &RequestContext,
    input: GetSessionTokenRequest,
) -> Result<GetSessionTokenResponse, StsError> {
    let caller = &ctx.caller;
    if caller.temporary_credentials {
        return Err(StsError::SessionCredentials);
    }
    if input.serial_number.is_some() || input.token_code.is_some() {
        return Err(StsError::Unsupported { what: "MFA" });
    }
    let (owner, kind, duration) = match &caller.kind {
        PrincipalKind::Root => (
            caller.account.clone(),
            SessionKind::Root,
            input
                .duration_seconds
                .unwrap_or(MAX_ROOT_DURATION)
                .min(MAX_ROOT_DURATION),
        ),
        PrincipalKind::User { user_id, .. } => (
            user_id.clone(),
            SessionKind::User,
            input.duration_seconds.unwrap_or(DEFAULT_USER_DURATION),
        ),
        PrincipalKind::AssumedRole { .. } => return Err(StsError::SessionCredentials),
    };
    let issued = svc
        .iam
        .issue_session(&caller.account, &owner, kind, i64::from(duration))
        .await?;
    Ok(GetSessionTokenResponse {
        credentials: Some(wire_credentials(issued)),
        ..GetSessionTokenResponse::default()
    })
}
