//! The STS service: GetCallerIdentity, AssumeRole, GetSessionToken.
//!
//! Sessions are issued and kept by IAM ([`crate::iam::IamService::issue_session`]): their
//! secret sealed, their token hashed, their expiry checked by authentication on every
//! request (`ExpiredToken`). A session acts with the identity policies of its role (or
//! user) as they are at the time of each request.

mod assume_role;
pub mod error;
mod identity;
mod session_token;

use std::sync::Arc;

use keyhold_proto::ApiError;
use keyhold_proto::sts::*;

use crate::clock::Clock;
use crate::context::RequestContext;
use crate::iam::IamService;

/// The STS service of one Keyhold server.
pub struct StsService {
    iam: Arc<IamService>,
    clock: Clock,
}

impl StsService {
    pub fn new(iam: Arc<IamService>, clock: Clock) -> Self {
        Self { iam, clock }
    }
}

macro_rules! delegate {
    ($($method:ident($input:ty) -> $output:ty => $path:path;)*) => {
        #[async_trait::async_trait]
        impl StsApi for StsService {
            type Context = RequestContext;
            $(
                async fn $method(&self, ctx: &RequestContext, input: $input) -> Result<$output, ApiError> {
                    Ok($path(self, ctx, input).await?)
                }
            )*
        }
    };
}

delegate! {
    get_caller_identity(GetCallerIdentityRequest) -> GetCallerIdentityResponse => identity::get_caller_identity;
    assume_role(AssumeRoleRequest) -> AssumeRoleResponse => assume_role::assume_role;
    get_session_token(GetSessionTokenRequest) -> GetSessionTokenResponse => session_token::get_session_token;
}

/// The operations this service implements: all of its model's.
pub const SUPPORTED: &[StsOperation] = StsOperation::ALL;

/// Credentials as STS answers them.
fn wire_credentials(issued: crate::iam::IssuedSession) -> Credentials {
    Credentials {
        access_key_id: issued.access_key_id,
        expiration: keyhold_proto::Timestamp::from_millis(issued.expires_ms),
        secret_access_key: keyhold_proto::SensitiveString::new(String::from(
            issued.secret_access_key.as_str(),
        )),
        session_token: String::from(issued.session_token.as_str()),
    }
}
