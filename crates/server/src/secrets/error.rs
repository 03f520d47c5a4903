//! Secrets Manager's failures, and the one place they become AWS's wire errors.
//!
//! The wording is AWS's where it is known; `docs/secrets-manager.md` lists each message with
//! its source, and says which are Keyhold's own because AWS's could not be found.

use keyhold_proto::secretsmanager::SecretsManagerErrorCode as Code;
use keyhold_proto::{ApiError, CommonError};

use crate::kms::error::KmsError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretsError {
    /// No secret of that name or ARN (or one the caller may not see).
    NotFound,
    /// A `SecretId` / `Name` with characters a secret name cannot have.
    InvalidName,
    /// `CreateSecret` of a name already in use.
    Exists {
        name: String,
    },
    /// `CreateSecret` of a name whose previous secret is scheduled for deletion.
    NameScheduledForDeletion,
    /// The operation is refused while the secret is scheduled for deletion.
    MarkedForDeletion,
    /// A raw request without `ClientRequestToken` (the SDKs and the CLI always send one).
    TokenRequired,
    /// `RotateSecret` without `ClientRequestToken` (AWS answers this one differently).
    RotationTokenRequired,
    /// The token names a version whose value differs.
    VersionExists {
        token: String,
        arn: String,
    },
    BothValues,
    /// `PutSecretValue` with neither `SecretString` nor `SecretBinary`.
    NoValue,
    /// No version carries the staging label.
    NoValueForStage {
        stage: String,
    },
    /// No version has this id.
    NoValueForVersion {
        version_id: String,
    },
    /// `VersionId` and `VersionStage` name different versions.
    StageVersionMismatch,
    RecoveryWindow,
    ForceWithRecoveryWindow,
    /// `DeleteSecret` of a primary that still has replicas.
    HasReplicas {
        name: String,
        regions: Vec<String>,
    },
    /// `DeleteSecret` of a primary still associated with a cross-account replica.
    HasCrossAccountReplica {
        name: String,
    },
    /// An operation only the primary secret's Region accepts.
    ReplicaReadOnly,
    /// `StopReplicationToReplica` on a secret that is no replica.
    NotAReplica,
    InvalidReplicaRegion {
        region: String,
    },
    /// `UpdateSecretVersionStage`: a version id that does not exist.
    NoSuchVersion {
        version_id: String,
    },
    /// `UpdateSecretVersionStage`: the label is not on `RemoveFromVersionId`.
    StageNotOnVersion {
        stage: String,
        version_id: String,
    },
    /// `UpdateSecretVersionStage`: the label is elsewhere and `RemoveFromVersionId` does not
    /// name that version.
    RemoveFromRequired {
        stage: String,
        version_id: String,
    },
    /// `UpdateSecretVersionStage` with neither version id.
    NoVersionToChange,
    /// Removing `AWSCURRENT` without moving it to another version.
    CurrentCannotBeRemoved,
    TooManyLabels,
    TooManyVersions,
    DuplicateTagKeys,
    /// A tag without a key.
    InvalidTag,
    TooManyTags,
    ReservedTagKey,
    InvalidNextToken,
    /// `BatchGetSecretValue` with both or neither of `SecretIdList` and `Filters`.
    BatchIdsOrFilters,
    BatchMaxResultsWithoutFilters,
    InvalidFilter,
    PasswordTooShort,
    NoCharactersLeft,
    /// `RotateSecret` with no function configured or given.
    NoRotationFunction,
    /// `CancelRotateSecret` on a secret that never had rotation configured.
    RotationNotConfigured,
    RotationInProgress,
    BothRotationSchedules,
    InvalidSchedule {
        expression: String,
    },
    InvalidDuration,
    /// A rotation that would run now: Keyhold does not execute rotations yet.
    RotationExecutionUnsupported,
    /// The `RotationLambdaARN` is no configured rotation function.
    LambdaNotInvokable,
    MalformedPolicy {
        detail: String,
    },
    PublicPolicy,
    /// A resource policy other than `default`.
    NoSuchPolicy {
        name: String,
    },
    /// Only `default` can be changed.
    ReadOnlyPolicy,
    /// `CrossAccountPrimaryARN` together with a value, replicas or a key of another account.
    InvalidCrossAccountReplica {
        detail: &'static str,
    },
    /// Association target is no replica of this primary, or is in another Region.
    NotReplicaOfPrimary,
    /// A primary may have one cross-account replica.
    CrossAccountReplicaLimit,
    /// No association between these two secrets.
    NotAssociated,
    /// KMS refused the caller.
    KmsAccessDenied,
    /// A caller of another account reads or writes a value under `aws/secretsmanager`.
    DefaultKeyCrossAccount,
    /// KMS could not encrypt (key missing, disabled, wrong type, ...).
    Encryption {
        reason: String,
    },
    /// KMS could not decrypt the stored data key, or the value did not open.
    Decryption,
    /// The authorization engine refused the call (its message names the layer).
    AccessDenied(crate::authz::Denied),
    /// Another node changed the secret between this node's read and its write, again and
    /// again (each conflict is retried after reading the secret again).
    Conflict,
    /// The store failed; the request may be retried.
    Internal,
}

impl From<SecretsError> for ApiError {
    fn from(e: SecretsError) -> Self {
        use SecretsError as E;
        let invalid_parameter = |m: String| ApiError::new(Code::InvalidParameterException, m);
        let invalid_request = |m: String| ApiError::new(Code::InvalidRequestException, m);
        match e {
            E::NotFound => ApiError::new(
                Code::ResourceNotFoundException,
                "Secrets Manager can't find the specified secret.",
            ),
            E::InvalidName => ApiError::validation(
                "Invalid name. Must be a valid name containing alphanumeric characters, or any \
                 of the following: -/_+=.@!",
            ),
            E::Exists { name } => ApiError::new(
                Code::ResourceExistsException,
                format!("The operation failed because the secret {name} already exists."),
            ),
            E::NameScheduledForDeletion => invalid_request(
                "You can't create this secret because a secret with this name is already \
                 scheduled for deletion."
                    .into(),
            ),
            E::MarkedForDeletion => invalid_request(
                "You can't perform this operation on the secret because it was marked for \
                 deletion."
                    .into(),
            ),
            E::TokenRequired => invalid_request(TOKEN_REQUIRED.into()),
            E::RotationTokenRequired => invalid_parameter(TOKEN_REQUIRED.into()),
            E::VersionExists { token, arn } => ApiError::new(
                Code::ResourceExistsException,
                format!(
                    "You can't use ClientRequestToken {token} because that value is already in \
                     use for a version of secret {arn}."
                ),
            ),
            E::BothValues => invalid_parameter(
                "You can't specify both a binary secret value and a string secret value in the \
                 same secret."
                    .into(),
            ),
            E::NoValue => {
                invalid_request("You must provide either SecretString or SecretBinary.".into())
            }
            E::NoValueForStage { stage } => ApiError::new(
                Code::ResourceNotFoundException,
                format!(
                    "Secrets Manager can't find the specified secret value for staging label: \
                     {stage}"
                ),
            ),
            E::NoValueForVersion { version_id } => ApiError::new(
                Code::ResourceNotFoundException,
                format!(
                    "Secrets Manager can't find the specified secret value for VersionId: \
                     {version_id}"
                ),
            ),
            E::StageVersionMismatch => invalid_request(
                "You provided a VersionStage that is not associated to the provided VersionId."
                    .into(),
            ),
            E::RecoveryWindow => invalid_parameter(
                "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).".into(),
            ),
            E::ForceWithRecoveryWindow => invalid_parameter(
                "You can't use ForceDeleteWithoutRecovery in conjunction with \
                 RecoveryWindowInDays."
                    .into(),
            ),
            E::HasReplicas { name, regions } => invalid_parameter(format!(
                "You can't delete secret {name} that still has replica regions [{}]",
                regions.join(",")
            )),
            E::HasCrossAccountReplica { name } => invalid_parameter(format!(
                "You can't delete secret {name} while it has a cross-account replica: call \
                 DisassociateCrossAccountReplica first."
            )),
            E::ReplicaReadOnly => invalid_request(
                "Operation not permitted on a replica secret. Call must be made in primary \
                 secret's region."
                    .into(),
            ),
            E::NotAReplica => {
                invalid_request("The secret is not a replica. It is already a primary.".into())
            }
            E::InvalidReplicaRegion { region } => {
                invalid_parameter(format!("Invalid replica region: {region}."))
            }
            E::NoSuchVersion { version_id } => invalid_parameter(format!(
                "Secrets Manager can't find the version {version_id}."
            )),
            E::StageNotOnVersion { stage, version_id } => invalid_parameter(format!(
                "The staging label {stage} is not attached to the version {version_id}."
            )),
            E::RemoveFromRequired { stage, version_id } => invalid_parameter(format!(
                "The parameter RemoveFromVersionId can't be empty. Staging label {stage} is \
                 currently attached to version {version_id}, so you must explicitly reference \
                 that version in RemoveFromVersionId."
            )),
            E::NoVersionToChange => invalid_parameter(
                "You must specify MoveToVersionId, RemoveFromVersionId, or both.".into(),
            ),
            E::CurrentCannotBeRemoved => invalid_parameter(
                "You can't remove the staging label AWSCURRENT from a version without moving \
                 it to another version (MoveToVersionId)."
                    .into(),
            ),
            E::TooManyLabels => ApiError::new(
                Code::LimitExceededException,
                "A secret can have at most 20 staging labels attached across all of its \
                 versions.",
            ),
            E::TooManyVersions => ApiError::new(
                Code::LimitExceededException,
                "A secret can have at most 100 versions, and versions younger than 24 hours are \
                 never removed. Remove staging labels from old versions or wait.",
            ),
            E::DuplicateTagKeys => {
                invalid_parameter("Duplicate tag keys in the same request.".into())
            }
            E::InvalidTag => invalid_parameter("Every tag needs a Key.".into()),
            E::TooManyTags => {
                invalid_parameter("A secret can have at most 50 tags (user-defined).".into())
            }
            E::ReservedTagKey => invalid_parameter(
                "Tag keys and values that begin with aws: are reserved for AWS use.".into(),
            ),
            E::InvalidNextToken => ApiError::new(
                Code::InvalidNextTokenException,
                "The NextToken value is invalid.",
            ),
            E::BatchIdsOrFilters => invalid_parameter(
                "Either 'SecretIdList' or 'Filters' must be provided, but not both.".into(),
            ),
            E::BatchMaxResultsWithoutFilters => invalid_parameter(
                "'Filters' not specified. 'Filters' must also be specified when 'MaxResults' is \
                 provided."
                    .into(),
            ),
            E::InvalidFilter => invalid_parameter(
                "Each filter needs a Key and at least one value in Values.".into(),
            ),
            E::PasswordTooShort => invalid_parameter(
                "Password length is too short based on the required types.".into(),
            ),
            E::NoCharactersLeft => invalid_parameter(
                "The password can't be generated: every character is excluded.".into(),
            ),
            E::NoRotationFunction => invalid_request(
                "No Lambda rotation function ARN is associated with this secret.".into(),
            ),
            E::RotationNotConfigured => invalid_request(
                "You tried to enable rotation on a secret that doesn't already have a Lambda \
                 function ARN configured and you didn't include such an ARN as a parameter in \
                 this call."
                    .into(),
            ),
            E::RotationInProgress => invalid_request(
                "A previous rotation isn't complete. That rotation will be reattempted.".into(),
            ),
            E::BothRotationSchedules => invalid_parameter(
                "You cannot specify both rotation frequency and schedule expression together."
                    .into(),
            ),
            E::InvalidSchedule { expression } => invalid_parameter(format!(
                "The schedule expression {expression} is not valid: use rate(N hours), \
                 rate(N days) or a six-field cron() expression with 0 minutes and * for the \
                 year, at most every four hours."
            )),
            E::InvalidDuration => invalid_parameter(
                "The rotation window (Duration) must be at least 1 hour, must not extend into \
                 the next UTC day and must not exceed the interval between rotations."
                    .into(),
            ),
            E::RotationExecutionUnsupported => invalid_request(
                "Keyhold does not run managed external secret rotations: configure a \
                 RotationLambdaARN that names one of the server's rotation_functions."
                    .into(),
            ),
            E::LambdaNotInvokable => ApiError::new(
                CommonError::AccessDenied,
                "Secrets Manager cannot invoke the specified Lambda function. Ensure that the \
                 function policy grants access to the principal secretsmanager.amazonaws.com.",
            ),
            E::MalformedPolicy { detail } => ApiError::new(
                Code::MalformedPolicyDocumentException,
                format!("This resource policy contains a syntax error: {detail}"),
            ),
            E::PublicPolicy => ApiError::new(
                Code::PublicPolicyException,
                "This resource policy grants broad access to the secret (a principal outside \
                 the account, such as \"*\", without a limiting condition), and \
                 BlockPublicPolicy is set.",
            ),
            E::NoSuchPolicy { name } => ApiError::new(
                Code::ResourceNotFoundException,
                format!("Secrets Manager can't find the resource policy {name}."),
            ),
            E::ReadOnlyPolicy => {
                invalid_parameter("You can modify only the default resource policy.".into())
            }
            E::InvalidCrossAccountReplica { detail } => invalid_parameter(detail.into()),
            E::NotReplicaOfPrimary => invalid_request(
                "The replica secret was not created as a cross-account replica of this primary \
                 secret (its CrossAccountPrimaryARN names another secret), or it is in another \
                 Region."
                    .into(),
            ),
            E::CrossAccountReplicaLimit => ApiError::new(
                Code::LimitExceededException,
                "A primary secret can have at most one cross-account replica.",
            ),
            E::NotAssociated => invalid_request(
                "The replica secret is not associated with this primary secret.".into(),
            ),
            E::KmsAccessDenied => {
                ApiError::new(CommonError::AccessDenied, "Access to KMS is not allowed")
            }
            E::DefaultKeyCrossAccount => invalid_request(
                "You can't access a secret from a different AWS account if you encrypt the \
                 secret with the default KMS service key."
                    .into(),
            ),
            E::Encryption { reason } => ApiError::new(
                Code::EncryptionFailure,
                format!(
                    "Secrets Manager can't encrypt the secret value with the KMS key: {reason}"
                ),
            ),
            E::Decryption => ApiError::new(
                Code::DecryptionFailure,
                "Secrets Manager can't decrypt the protected secret text using the provided KMS \
                 key.",
            ),
            E::AccessDenied(denied) => ApiError::new(CommonError::AccessDenied, denied.message()),
            // Secrets Manager names no error for concurrent changes: a server-side error,
            // which the SDKs retry.
            E::Conflict | E::Internal => ApiError::new(
                Code::InternalServiceError,
                "An error occurred on the server side.",
            ),
        }
    }
}

const TOKEN_REQUIRED: &str =
    "You must provide a ClientRequestToken value. We recommend a UUID-type value.";

impl From<keyhold_store::StoreError> for SecretsError {
    fn from(e: keyhold_store::StoreError) -> Self {
        if matches!(e, keyhold_store::StoreError::Conflict) {
            return SecretsError::Conflict;
        }
        tracing::error!(error = %e, source = ?std::error::Error::source(&e), "store failure");
        SecretsError::Internal
    }
}

impl SecretsError {
    /// A KMS failure while encrypting a new version.
    pub fn from_kms_encrypt(e: KmsError) -> Self {
        match e {
            KmsError::AccessDenied { .. } => SecretsError::KmsAccessDenied,
            KmsError::Internal => SecretsError::Internal,
            other => {
                let api = ApiError::from(other);
                SecretsError::Encryption {
                    reason: api.message().unwrap_or(api.code()).to_owned(),
                }
            }
        }
    }

    /// A KMS failure while decrypting a stored version.
    pub fn from_kms_decrypt(e: KmsError) -> Self {
        match e {
            KmsError::AccessDenied { .. } => SecretsError::KmsAccessDenied,
            KmsError::Internal => SecretsError::Internal,
            _ => SecretsError::Decryption,
        }
    }
}
