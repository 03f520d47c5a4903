//! Parameter Store's failures, and the one place they become AWS's wire errors.
//!
//! The wording is AWS's where it is known; `docs/parameter-store.md` lists each message's
//! source, and the messages whose AWS wording could not be found.

use keyhold_proto::ssm::SsmErrorCode as Code;
use keyhold_proto::{ApiError, CommonError};

use crate::kms::error::KmsError;

/// The name rules, as AWS states them when a name breaks one.
const NAME_RULES: &str = "Parameter name: can't be prefixed with \"aws\" or \"ssm\" \
     (case-insensitive). If formed as a path, it can consist of sub-paths divided by slash \
     symbol; each sub-path can be formed as a mix of letters, numbers and the following 3 \
     symbols .-_";

/// The path rules (GetParametersByPath, the `Path` filter).
const PATH_RULES: &str = "The parameter doesn't meet the parameter name requirements. The \
     parameter name must begin with a forward slash \"/\". It can't be prefixed with \"aws\" or \
     \"ssm\" (case-insensitive). It must use only letters, numbers, or the following symbols: . \
     (period), - (hyphen), _ (underscore). Special characters are not allowed. All sub-paths, \
     if specified, must use the forward slash symbol \"/\". Valid example: \
     /get/parameters2-/by1./path0_.";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SsmError {
    /// The authorization engine refused the call (its message names the layer).
    AccessDenied(crate::authz::Denied),
    // ---- names and selectors
    /// A name with characters outside `a-zA-Z0-9_.-/`, inner spaces, empty levels, or a
    /// hierarchy without its leading slash.
    InvalidName,
    /// A one-level name starting with `aws` or `ssm` (any case).
    ReservedPrefix,
    /// A hierarchical name under `/ssm...`.
    ReservedSsmPath,
    /// A hierarchical name under `/aws...`: AWS's own parameters.
    ReservedAwsPath {
        name: String,
    },
    /// The parameter's ARN would exceed 1011 characters.
    NameTooLong,
    /// More than 15 levels.
    HierarchyTooDeep,
    /// A malformed path (GetParametersByPath, the `Path` filter).
    InvalidPath,
    /// `name:a:b`, `name:` and the like.
    SelectorSyntax,

    // ---- PutParameter
    EmptyValue,
    TypeRequired,
    TagsWithOverwrite,
    KeyIdOnlyForSecureString,
    UnsupportedDataType {
        data_type: String,
    },
    ImageDataTypeNeedsString,
    InvalidAllowedPattern {
        pattern: String,
    },
    PatternMismatch {
        pattern: String,
    },
    AlreadyExists,
    StandardValueTooLong,
    AdvancedValueTooLong,
    TierDowngrade,
    PoliciesNeedAdvancedTier,
    StandardParameterLimit,
    AdvancedParameterLimit,
    MaxVersions {
        name: String,
        oldest: i64,
    },

    // ---- parameter policies
    InvalidPolicyType {
        policy_type: String,
    },
    InvalidPolicyAttribute {
        detail: &'static str,
    },
    IncompatiblePolicy,
    PoliciesLimit,

    // ---- lookups
    NotFound,
    VersionNotFound {
        name: String,
        version: i64,
    },
    LabelNotFound {
        name: String,
        label: String,
    },

    // ---- labels
    LabelLimit,

    // ---- filters and pagination
    BothFilterKinds,
    InvalidFilterKey {
        key: String,
        valid: &'static str,
    },
    DuplicateFilter {
        key: String,
    },
    InvalidFilterOption {
        option: String,
        valid: &'static str,
    },
    InvalidFilterValue {
        value: String,
        valid: &'static str,
    },
    MissingFilterValues {
        key: String,
    },
    ReservedPathFilter,
    InvalidNextToken,

    // ---- tags
    InvalidResourceId,
    TooManyTags,

    // ---- Secrets Manager references
    ReferenceNeedsDecryption,
    /// `reference` is the parameter name without its leading slash, then the selector (or
    /// `null` without one), as AWS prints it.
    ReferenceNotFound {
        reference: String,
    },
    /// The secret is scheduled for deletion (Secrets Manager's `InvalidRequestException`).
    ReferenceInvalidRequest,
    /// Any other Secrets Manager failure, as Secrets Manager answered it.
    SecretsManager(ApiError),

    // ---- KMS
    /// The `KeyId` of a SecureString names no usable key.
    InvalidKeyId(KmsError),
    /// KMS refused (disabled key, access denied, ...): its error, as KMS answered it.
    Kms(KmsError),

    /// Another node changed the parameter between this node's read and its write, again and
    /// again (each conflict is retried after reading the parameter again).
    Conflict,

    /// The store failed, or stored data is unreadable; the request may be retried.
    Internal,
}

impl From<SsmError> for ApiError {
    fn from(e: SsmError) -> Self {
        use SsmError as E;
        match e {
            E::AccessDenied(denied) => ApiError::new(CommonError::AccessDenied, denied.message()),
            E::InvalidName => ApiError::validation(NAME_RULES),
            E::ReservedPrefix => ApiError::validation(
                "Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive).",
            ),
            E::ReservedSsmPath => ApiError::validation(
                "Parameter name: can't be prefixed with \"ssm\" (case-insensitive). If formed as \
                 a path, it can consist of sub-paths divided by slash symbol; each sub-path can \
                 be formed as a mix of letters, numbers and the following 3 symbols .-_",
            ),
            E::ReservedAwsPath { name } => ApiError::new(
                CommonError::AccessDenied,
                format!("No access to reserved parameter name: {name}."),
            ),
            E::NameTooLong => ApiError::validation(
                "Parameter name: the fully qualified parameter name, with the ARN that precedes \
                 it, can have at most 1011 characters.",
            ),
            E::HierarchyTooDeep => ApiError::new(
                Code::HierarchyLevelLimitExceededException,
                "A hierarchy can have a maximum of 15 levels. For more information, see \
                 Requirements and constraints for parameter names in the Amazon Web Services \
                 Systems Manager User Guide.",
            ),
            E::InvalidPath => ApiError::validation(PATH_RULES),
            E::SelectorSyntax => ApiError::validation(
                "Invalid parameter name. Please use correct syntax for referencing a \
                 version/label  <name>:<version/label>",
            ),

            E::EmptyValue => ApiError::validation(
                "1 validation error detected: Value at 'value' failed to satisfy constraint: \
                 Member must have length greater than or equal to 1",
            ),
            E::TypeRequired => {
                ApiError::validation("A parameter type is required when you create a parameter.")
            }
            E::TagsWithOverwrite => ApiError::validation(
                "Invalid request: tags and overwrite can't be used together. To create a \
                 parameter with tags, please remove overwrite flag. To update tags for an \
                 existing parameter, please use AddTagsToResource or RemoveTagsFromResource.",
            ),
            E::KeyIdOnlyForSecureString => {
                ApiError::validation("KeyId is required for SecureString type parameter only.")
            }
            E::UnsupportedDataType { data_type } => ApiError::validation(format!(
                "The following data type is not supported: {data_type} (Data type names are all \
                 lowercase.)"
            )),
            E::ImageDataTypeNeedsString => ApiError::validation(
                "The data type aws:ec2:image can only be used with String parameters.",
            ),
            E::InvalidAllowedPattern { pattern } => ApiError::new(
                Code::InvalidAllowedPatternException,
                format!("The allowed pattern {pattern} is not a valid regular expression."),
            ),
            E::PatternMismatch { pattern } => ApiError::new(
                Code::ParameterPatternMismatchException,
                format!("Parameter value, cannot be validated against allowedPattern: {pattern}"),
            ),
            E::AlreadyExists => ApiError::new(
                Code::ParameterAlreadyExists,
                "The parameter already exists. To overwrite this value, set the overwrite option \
                 in the request to true.",
            ),
            E::StandardValueTooLong => ApiError::validation(
                "Standard tier parameters support a maximum parameter value of 4096 characters. \
                 To create a larger parameter value, upgrade the parameter to use the \
                 advanced-parameter tier. For more information, see \
                 https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html",
            ),
            E::AdvancedValueTooLong => ApiError::validation(
                "Advanced tier parameters support a maximum parameter value of 8192 characters.",
            ),
            E::TierDowngrade => ApiError::validation(
                "This parameter uses the advanced-parameter tier. You can't downgrade a \
                 parameter from the advanced-parameter tier to the standard-parameter tier. If \
                 necessary, you can delete the advanced parameter and recreate it as a standard \
                 parameter. Be aware that standard parameters have a value limit of 4096 \
                 characters.",
            ),
            E::PoliciesNeedAdvancedTier => ApiError::validation(
                "Parameter policies are supported only for parameters in the advanced-parameter \
                 tier.",
            ),
            E::StandardParameterLimit => ApiError::new(
                Code::ParameterLimitExceeded,
                "You have reached the maximum number of standard parameters for this AWS account \
                 and Region (10000). To add more parameters, either delete existing parameters \
                 or upgrade to the advanced-parameter tier (charges apply).",
            ),
            E::AdvancedParameterLimit => ApiError::new(
                Code::ParameterLimitExceeded,
                "You have reached the maximum number of advanced parameters for this AWS account \
                 and Region (100000). To add more parameters, delete existing parameters.",
            ),
            E::MaxVersions { name, oldest } => ApiError::new(
                Code::ParameterMaxVersionLimitExceeded,
                format!(
                    "You attempted to create a new version of {name} by calling the PutParameter \
                     API with the overwrite flag. Version {oldest}, the oldest version, can't be \
                     deleted because it has a label associated with it. Move the label to \
                     another version of the parameter, and try again."
                ),
            ),

            E::InvalidPolicyType { policy_type } => ApiError::new(
                Code::InvalidPolicyTypeException,
                format!(
                    "The policy type {policy_type} is not supported. Parameter Store supports the \
                     following policy types: Expiration, ExpirationNotification, and \
                     NoChangeNotification."
                ),
            ),
            E::InvalidPolicyAttribute { detail } => ApiError::new(
                Code::InvalidPolicyAttributeException,
                format!("A policy attribute or its value is invalid: {detail}"),
            ),
            E::IncompatiblePolicy => ApiError::new(
                Code::IncompatiblePolicyException,
                "There is a conflict in the policies specified for this parameter. You can't, for \
                 example, specify two Expiration policies for a parameter. Review your policies, \
                 and try again.",
            ),
            E::PoliciesLimit => ApiError::new(
                Code::PoliciesLimitExceededException,
                "You specified more than the maximum number of allowed policies for the \
                 parameter. The maximum is 10.",
            ),

            E::NotFound => ApiError::bare(Code::ParameterNotFound),
            E::VersionNotFound { name, version } => ApiError::new(
                Code::ParameterVersionNotFound,
                format!(
                    "Systems Manager could not find version {version} of {name}. Verify the \
                     version and try again."
                ),
            ),
            E::LabelNotFound { name, label } => ApiError::new(
                Code::ParameterVersionNotFound,
                format!(
                    "Systems Manager could not find version or label {label} of {name}. Verify \
                     the version and try again."
                ),
            ),

            E::LabelLimit => ApiError::new(
                Code::ParameterVersionLabelLimitExceeded,
                "A parameter version can have maximum 10 labels.Move one or more labels to \
                 another version and try again.",
            ),

            E::BothFilterKinds => ApiError::validation(
                "You can use either Filters or ParameterFilters in a single request.",
            ),
            E::InvalidFilterKey { key, valid } => ApiError::new(
                Code::InvalidFilterKey,
                format!(
                    "The following filter key is not valid: {key}. Valid filter keys include: \
                     {valid}."
                ),
            ),
            E::DuplicateFilter { key } => ApiError::new(
                Code::InvalidFilterKey,
                format!(
                    "The following filter is duplicated in the request: {key}. A request can \
                     contain only one occurrence of a specific filter."
                ),
            ),
            E::InvalidFilterOption { option, valid } => ApiError::new(
                Code::InvalidFilterOption,
                format!(
                    "The following filter option is not valid: {option}. Valid options include: \
                     {valid}."
                ),
            ),
            E::InvalidFilterValue { value, valid } => ApiError::new(
                Code::InvalidFilterOption,
                format!(
                    "The following filter value is not valid: {value}. Valid values include: \
                     {valid}."
                ),
            ),
            E::MissingFilterValues { key } => ApiError::new(
                Code::InvalidFilterValue,
                format!("The following filter values are missing : null for filter key {key}."),
            ),
            E::ReservedPathFilter => ApiError::validation(
                "Filters for common parameters can't be prefixed with \"aws\" or \"ssm\" \
                 (case-insensitive). When using global parameters, please specify within a \
                 global namespace.",
            ),
            E::InvalidNextToken => {
                ApiError::new(Code::InvalidNextToken, "The specified token is not valid.")
            }

            E::InvalidResourceId => ApiError::bare(Code::InvalidResourceId),
            E::TooManyTags => ApiError::bare(Code::TooManyTagsError),

            E::ReferenceNeedsDecryption => ApiError::validation(
                "WithDecryption flag must be True for retrieving a Secret Manager secret.",
            ),
            E::ReferenceNotFound { reference } => ApiError::new(
                Code::ParameterNotFound,
                format!(
                    "An error occurred (ParameterNotFound) when referencing Secrets Manager: \
                     Secret {reference} not found."
                ),
            ),
            E::ReferenceInvalidRequest => {
                ApiError::validation("Invalid Request to Secrets Manager")
            }
            E::SecretsManager(e) => e,

            E::InvalidKeyId(kms) => {
                let kms = ApiError::from(kms);
                match kms.message() {
                    Some(m) => ApiError::new(Code::InvalidKeyId, m.to_owned()),
                    None => ApiError::bare(Code::InvalidKeyId),
                }
            }
            E::Kms(kms) => ApiError::from(kms),

            // The exception's description in the API reference.
            E::Conflict => ApiError::new(
                Code::TooManyUpdates,
                "There are concurrent updates for a resource that supports one update at a time.",
            ),
            E::Internal => ApiError::new(
                Code::InternalServerError,
                "An error occurred on the server side.",
            ),
        }
    }
}

impl From<keyhold_store::StoreError> for SsmError {
    fn from(e: keyhold_store::StoreError) -> Self {
        if matches!(e, keyhold_store::StoreError::Conflict) {
            return SsmError::Conflict;
        }
        tracing::error!(error = %e, source = ?std::error::Error::source(&e), "store failure");
        SsmError::Internal
    }
}

impl SsmError {
    /// A KMS failure while encrypting or decrypting a value. Parameter Store answers KMS's
    /// refusals as the parameter's `InvalidKeyId` with KMS's message (its model lists no
    /// other key error: e.g. a disabled key or one pending deletion); access denied and
    /// internal failures keep their own codes.
    pub fn from_kms(e: KmsError) -> Self {
        match e {
            KmsError::AccessDenied(_) | KmsError::Internal => SsmError::Kms(e),
            other => SsmError::InvalidKeyId(other),
        }
    }
}
