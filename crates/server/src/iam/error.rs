//! IAM's failures, and the one place they become AWS's wire errors.
//!
//! Wording is AWS's as it appears in IAM's answers quoted in public bug reports and SDK
//! issues (see `docs/identity.md` for each source); where AWS's wording is unknown the
//! message is Keyhold's and the reference says so.

use keyhold_proto::iam::IamErrorCode as Code;
use keyhold_proto::{ApiError, CommonError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IamError {
    NoSuchUser {
        name: String,
    },
    NoSuchRole {
        name: String,
    },
    NoSuchAccessKey {
        access_key_id: String,
    },
    NoSuchUserPolicy {
        name: String,
    },
    NoSuchRolePolicy {
        name: String,
    },
    UserExists {
        name: String,
    },
    RoleExists {
        name: String,
    },
    /// DeleteUser while the user still has access keys.
    UserHasAccessKeys,
    /// DeleteUser / DeleteRole while inline policies remain.
    HasPolicies,
    AccessKeysPerUser,
    UsersPerAccount,
    RolesPerAccount,
    /// The trust policy is longer than the default `ACLSizePerRole` quota.
    TrustPolicySize,
    /// A user's inline policies together exceed 2,048 characters.
    UserPolicySize {
        user: String,
    },
    /// A role's inline policies together exceed 10,240 characters.
    RolePolicySize {
        role: String,
    },
    /// A policy document IAM refuses; `message` is IAM's wording for the reason.
    MalformedPolicy {
        message: String,
    },
    /// A `PermissionsBoundary`: Keyhold has no managed policies to point it at.
    NoSuchBoundary {
        arn: String,
    },
    DuplicateTagKeys,
    /// An operation on "the caller's own" user by a caller that is not a user.
    UserNameRequired,
    /// The root user asked for access keys of its own.
    RootAccessKeys,
    InvalidMarker,
    AccessDenied(crate::authz::Denied),
    /// The store failed; the request may be retried.
    Internal,
}

impl From<IamError> for ApiError {
    fn from(e: IamError) -> Self {
        use IamError as E;
        match e {
            E::NoSuchUser { name } => ApiError::new(
                Code::NoSuchEntityException,
                format!("The user with name {name} cannot be found."),
            ),
            E::NoSuchRole { name } => ApiError::new(
                Code::NoSuchEntityException,
                format!("The role with name {name} cannot be found."),
            ),
            E::NoSuchAccessKey { access_key_id } => ApiError::new(
                Code::NoSuchEntityException,
                format!("The Access Key with id {access_key_id} cannot be found."),
            ),
            E::NoSuchUserPolicy { name } => ApiError::new(
                Code::NoSuchEntityException,
                format!("The user policy with name {name} cannot be found."),
            ),
            E::NoSuchRolePolicy { name } => ApiError::new(
                Code::NoSuchEntityException,
                format!("The role policy with name {name} cannot be found."),
            ),
            E::UserExists { name } => ApiError::new(
                Code::EntityAlreadyExistsException,
                format!("User with name {name} already exists."),
            ),
            E::RoleExists { name } => ApiError::new(
                Code::EntityAlreadyExistsException,
                format!("Role with name {name} already exists."),
            ),
            E::UserHasAccessKeys => ApiError::new(
                Code::DeleteConflictException,
                "Cannot delete entity, must delete access keys first.",
            ),
            E::HasPolicies => ApiError::new(
                Code::DeleteConflictException,
                "Cannot delete entity, must delete policies first.",
            ),
            E::AccessKeysPerUser => ApiError::new(
                Code::LimitExceededException,
                "Cannot exceed quota for AccessKeysPerUser: 2",
            ),
            E::UsersPerAccount => ApiError::new(
                Code::LimitExceededException,
                "Cannot exceed quota for UsersPerAccount: 5000",
            ),
            E::RolesPerAccount => ApiError::new(
                Code::LimitExceededException,
                "Cannot exceed quota for RolesPerAccount: 1000",
            ),
            E::TrustPolicySize => ApiError::new(
                Code::LimitExceededException,
                "Cannot exceed quota for ACLSizePerRole: 2048",
            ),
            E::UserPolicySize { user } => ApiError::new(
                Code::LimitExceededException,
                format!("Maximum policy size of 2048 bytes exceeded for user {user}"),
            ),
            E::RolePolicySize { role } => ApiError::new(
                Code::LimitExceededException,
                format!("Maximum policy size of 10240 bytes exceeded for role {role}"),
            ),
            E::MalformedPolicy { message } => {
                ApiError::new(Code::MalformedPolicyDocumentException, message)
            }
            E::NoSuchBoundary { arn } => ApiError::new(
                Code::NoSuchEntityException,
                format!("Scope ARN: {arn} does not exist or is not attachable."),
            ),
            E::DuplicateTagKeys => ApiError::new(
                Code::InvalidInputException,
                "Duplicate tag keys found. Please note that Tag keys are case insensitive.",
            ),
            E::UserNameRequired => {
                ApiError::validation("Must specify userName when calling with non-User credentials")
            }
            E::RootAccessKeys => ApiError::new(
                CommonError::UnsupportedOperation,
                "Keyhold does not issue access keys to the root user; create an IAM user instead.",
            ),
            E::InvalidMarker => ApiError::validation("Invalid Marker."),
            E::AccessDenied(denied) => ApiError::new(Forbidden::AccessDenied, denied.message()),
            E::Internal => ApiError::new(
                Code::ServiceFailureException,
                "The request processing has failed because of an unknown error, exception or failure.",
            ),
        }
    }
}

/// Codes IAM and STS answer with that their models do not list.
#[derive(Clone, Copy)]
pub(crate) enum Forbidden {
    /// Access denied, as IAM and STS send it: `AccessDenied`, HTTP 403.
    AccessDenied,
}

impl keyhold_proto::ErrorCode for Forbidden {
    fn code(self) -> &'static str {
        match self {
            Self::AccessDenied => "AccessDenied",
        }
    }
    fn http_status(self) -> u16 {
        403
    }
    fn sender_fault(self) -> bool {
        true
    }
}

impl From<keyhold_store::StoreError> for IamError {
    fn from(e: keyhold_store::StoreError) -> Self {
        tracing::error!(error = %e, source = ?std::error::Error::source(&e), "store failure");
        IamError::Internal
    }
}
