//! The one authorization decision of every IAM operation, through the shared engine
//! ([`crate::authz`]): IAM resources have no resource policy, so an identity policy of the
//! caller's own account must allow (the account root always may), and nothing may deny.

use super::IamService;
use super::error::IamError;
use crate::authz::{Access, RequestConditions, ResourceRule, decide};
use crate::context::RequestContext;

impl IamService {
    /// Decides whether the caller may perform `action` (`iam:CreateUser`) on `resource`
    /// (an ARN of the caller's account).
    pub(super) fn authorize(
        &self,
        ctx: &RequestContext,
        action: &str,
        resource: &str,
    ) -> Result<(), IamError> {
        ctx.note_resource(resource_type(resource), resource);
        let context = RequestConditions::new(ctx, self.clock.now(), &[]);
        decide(
            ctx,
            &Access {
                principal: &ctx.caller,
                action,
                resource,
                resource_account: &ctx.scope.account,
                rule: ResourceRule::None,
                context: &context,
            },
        )
        .map_err(IamError::AccessDenied)
    }
}

fn resource_type(arn: &str) -> &'static str {
    if arn.contains(":role/") {
        "AWS::IAM::Role"
    } else {
        "AWS::IAM::User"
    }
}
