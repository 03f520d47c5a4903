//! The one authorization decision of every Parameter Store operation, through the shared
//! engine ([`crate::authz`]): parameters have no resource policies, so the caller's
//! identity policies decide (`ssm:GetParameter` on
//! `arn:aws:ssm:REGION:ACCOUNT:parameter/NAME`); the account root always passes. A
//! SecureString's value is additionally guarded by its KMS key's policy, which KMS applies
//! when Parameter Store decrypts as the caller.

use super::SsmService;
use super::error::SsmError;
use super::name;
use crate::authz::{Access, RequestConditions, ResourceRule, decide};
use crate::context::RequestContext;

impl SsmService {
    /// Authorizes the current operation on the parameter `key` of the caller's scope.
    pub(super) fn authorize_key(&self, ctx: &RequestContext, key: &str) -> Result<(), SsmError> {
        self.authorize_with(ctx, &name::arn_of(&ctx.scope, key), &[])
    }

    /// Authorizes the current operation on `resource` (a parameter or path ARN, or `*`).
    pub(super) fn authorize_resource(
        &self,
        ctx: &RequestContext,
        resource: &str,
    ) -> Result<(), SsmError> {
        self.authorize_with(ctx, resource, &[])
    }

    /// Like [`SsmService::authorize_resource`], with the request's own condition keys
    /// (`ssm:Overwrite` for PutParameter, `ssm:Recursive` for GetParametersByPath).
    pub(super) fn authorize_with(
        &self,
        ctx: &RequestContext,
        resource: &str,
        extra: &[(&'static str, String)],
    ) -> Result<(), SsmError> {
        let action = format!("ssm:{}", ctx.operation.name());
        let context = RequestConditions::new(ctx, self.clock.now(), extra);
        decide(
            ctx,
            &Access {
                principal: &ctx.caller,
                action: &action,
                resource,
                resource_account: &ctx.scope.account,
                rule: ResourceRule::None,
                context: &context,
            },
        )
        .map_err(SsmError::AccessDenied)
    }
}
