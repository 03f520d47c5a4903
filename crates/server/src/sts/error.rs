//! STS's failures, and the one place they become AWS's wire errors (sources in
//! `docs/identity.md`).

use keyhold_proto::{ApiError, CommonError};

use crate::iam::error::{Forbidden, IamError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StsError {
    /// The trust policy (or the caller's identity policy) does not let the caller assume
    /// the role, or the role does not exist.
    AccessDenied(crate::authz::Denied),
    /// The account root called AssumeRole.
    RootCannotAssumeRole,
    /// GetSessionToken with temporary credentials.
    SessionCredentials,
    /// A `RoleArn` that is not an IAM role ARN.
    InvalidRoleArn,
    /// `DurationSeconds` beyond the role's `MaxSessionDuration`.
    DurationExceedsRoleMax,
    /// `DurationSeconds` above an hour when a role session assumes a role (role chaining).
    DurationExceedsChaining,
    /// A valid AWS parameter Keyhold does not implement.
    Unsupported {
        what: &'static str,
    },
    Internal,
}

impl From<StsError> for ApiError {
    fn from(e: StsError) -> Self {
        use StsError as E;
        match e {
            E::AccessDenied(denied) => ApiError::new(Forbidden::AccessDenied, denied.message()),
            E::RootCannotAssumeRole => ApiError::new(
                Forbidden::AccessDenied,
                "Roles may not be assumed by root accounts.",
            ),
            E::SessionCredentials => ApiError::new(
                Forbidden::AccessDenied,
                "Cannot call GetSessionToken with session credentials",
            ),
            E::InvalidRoleArn => ApiError::validation("Request ARN is invalid"),
            E::DurationExceedsRoleMax => ApiError::validation(
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            ),
            E::DurationExceedsChaining => ApiError::validation(
                "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
            ),
            E::Unsupported { what } => ApiError::new(
                CommonError::UnsupportedOperation,
                format!("Keyhold does not support {what} yet."),
            ),
            E::Internal => ApiError::internal(),
        }
    }
}

impl From<IamError> for StsError {
    fn from(e: IamError) -> Self {
        match e {
            IamError::AccessDenied(denied) => StsError::AccessDenied(denied),
            _ => StsError::Internal,
        }
    }
}
