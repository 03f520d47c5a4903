//! GetCallerIdentity: who signed the request. Needs no permission (AWS: even an explicit
//! deny does not stop it).

use keyhold_proto::sts::{GetCallerIdentityRequest, GetCallerIdentityResponse};

use super::StsService;
use super::error::StsError;
use crate::context::{PrincipalKind, RequestContext};

pub(super) async fn get_caller_identity(
    _svc: &StsService,
    ctx: &RequestContext,
    _input: GetCallerIdentityRequest,
) -> Result<GetCallerIdentityResponse, StsError> {
    let caller = &ctx.caller;
    let user_id = match &caller.kind {
        PrincipalKind::Root => caller.account.clone(),
        PrincipalKind::User { user_id, .. } => user_id.clone(),
        PrincipalKind::AssumedRole {
            role_id,
            session_name,
            ..
        } => format!("{role_id}:{session_name}"),
    };
    Ok(GetCallerIdentityResponse {
        account: Some(caller.account.clone()),
        arn: Some(caller.arn.clone()),
        user_id: Some(user_id),
    })
}
