//! KMS's failures, and the one place they become AWS's wire errors.
//!
//! The wording is AWS's where it is known (see `docs/reference/kms-behaviour.md` for each
//! message's source); where AWS's wording is unknown the message says so in the reference.

use keyhold_proto::kms::KmsErrorCode as Code;
use keyhold_proto::{ApiError, CommonError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KmsError {
    /// A well-formed key id or key ARN that names no key.
    KeyNotFound {
        arn: String,
    },
    /// A key id that is not a UUID.
    InvalidKeyId {
        value: String,
    },
    /// A key ARN of another region.
    ArnOfOtherRegion {
        region: String,
    },
    /// A malformed ARN.
    InvalidArn,
    AliasNotFound {
        alias_arn: String,
    },
    /// An alias where the operation takes only key ids and key ARNs.
    AliasNotSupported,
    Disabled {
        arn: String,
    },
    PendingDeletion {
        arn: String,
    },
    /// A multi-Region primary key scheduled for deletion while it still has replicas.
    PendingReplicaDeletion {
        arn: String,
    },
    NotPendingDeletion {
        arn: String,
    },
    InvalidKeyUsage {
        arn: String,
        usage: &'static str,
        operation: &'static str,
    },
    AliasExists {
        alias_arn: String,
    },
    AliasPrefix,
    AliasReserved,
    AliasInvalidCharacters {
        name: String,
    },
    AliasTargetIsAlias,
    /// UpdateAlias to a key of another type or usage.
    AliasKeyTypeMismatch,
    AliasesPerKeyLimit,
    PendingWindow,
    DataKeySize,
    NumberOfBytesRequired,
    CiphertextRequired,
    InvalidCiphertext,
    IncorrectKey,
    DuplicateTagKeys,
    TooManyTags,
    ReservedTagKey,
    MalformedPolicy {
        message: Option<String>,
    },
    PolicyLockout,
    PolicyTooLarge,
    NoSuchPolicy,
    InvalidMarker,
    DryRun,
    /// The authorization engine refused the call (its message names the layer).
    AccessDenied(crate::authz::Denied),
    /// `KeySpec` and the deprecated `CustomerMasterKeySpec` disagree.
    SpecConflict,
    /// A key spec and usage AWS does not combine.
    IncompatibleUsage {
        spec: &'static str,
        usage: &'static str,
    },
    /// An encryption, signing or MAC algorithm the key's spec does not support.
    IncompatibleAlgorithm {
        algorithm: &'static str,
        spec: &'static str,
    },
    /// `CreateKey` of a spec other than `SYMMETRIC_DEFAULT` without a `KeyUsage`.
    KeyUsageRequired,
    /// A value the region's model leaves out of an enum (`SM2` outside China).
    NotOfferedInRegion {
        member: &'static str,
        value: &'static str,
        set: String,
    },
    /// `MessageType: DIGEST` with a message of the wrong length for the algorithm.
    DigestLength {
        algorithm: &'static str,
    },
    /// A `MessageType` the signing algorithm does not take.
    MessageType {
        algorithm: &'static str,
        message_type: &'static str,
    },
    /// Verify of a signature that does not verify.
    InvalidSignature,
    /// VerifyMac of a MAC that does not verify.
    InvalidMac,
    /// Encrypt with RSAES-OAEP of a plaintext over the limit of the key and algorithm.
    PlaintextTooLarge {
        algorithm: &'static str,
        spec: &'static str,
        limit: usize,
    },
    /// DeriveSharedSecret with a public key that is not DER SubjectPublicKeyInfo on the key's
    /// curve (AWS answers this without a message).
    InvalidPublicKey,
    /// An encryption context on an operation of an asymmetric key.
    EncryptionContextNotSupported,
    /// GetPublicKey of a key that has none (symmetric encryption and HMAC keys).
    NoPublicKey {
        arn: String,
    },
    /// A valid AWS request Keyhold does not implement (yet).
    Unsupported {
        what: String,
    },
    /// A grant token that this server did not mint, or that was altered.
    InvalidGrantToken,
    /// A grant id that cannot be one (not 64 hex characters).
    InvalidGrantId,
    /// A well-formed grant id that names no grant of the key.
    GrantNotFound {
        grant_id: String,
    },
    GrantsPerKeyLimit {
        limit: usize,
    },
    /// `CreateGrant` with an empty `Operations` list.
    GrantOperationsEmpty,
    /// `CreateGrant` whose only operation is `CreateGrant`.
    GrantOnlyCreateGrant,
    /// A grant operation the key's type does not support.
    GrantOperationNotSupported {
        operation: &'static str,
        spec: &'static str,
        usage: &'static str,
    },
    /// Both `EncryptionContextEquals` and `EncryptionContextSubset`.
    GrantConstraintMultiple,
    /// A constraint on a grant whose operations take no encryption context.
    GrantConstraintNotSupported {
        spec: &'static str,
    },
    /// More than 8 pairs, or a value over 384 characters.
    GrantConstraintTooLarge,
    /// `CreateGrant` without a `GranteePrincipal`.
    GranteeRequired,
    /// `ListRetirableGrants` without a `RetiringPrincipal`.
    RetiringPrincipalRequired,
    /// A grantee or retiring principal that is not the ARN of an AWS principal.
    InvalidPrincipal {
        value: String,
    },
    /// `RetireGrant` with neither a grant token nor a key id and grant id.
    RetireGrantTarget,
    /// Rotation of a key that cannot rotate (or whose rotation AWS manages).
    RotationUnsupported {
        arn: String,
    },
    /// One `RotateKeyOnDemand` more than the per-key limit.
    OnDemandRotationLimit {
        arn: String,
        limit: usize,
    },
    /// A cryptographic or key-changing operation on a key whose imported material is
    /// missing.
    PendingImport {
        arn: String,
    },
    /// An import operation on a key whose origin is not `EXTERNAL`.
    OriginNotExternal {
        arn: String,
        origin: &'static str,
    },
    /// A parameter of GetParametersForImport or ImportKeyMaterial AWS refuses (its message).
    ImportParameter {
        what: String,
    },
    InvalidImportToken,
    ExpiredImportToken,
    /// Material that is not the material the import names (or the key's current one).
    IncorrectKeyMaterial,
    /// `NEW_KEY_MATERIAL` that the key already has.
    MaterialAlreadyImported {
        arn: String,
    },
    /// `NEW_KEY_MATERIAL` while other new material waits for its rotation.
    PendingRotationExists {
        arn: String,
    },
    /// `DeleteImportedKeyMaterial` naming no material of the key.
    KeyMaterialNotFound {
        arn: String,
        material_id: String,
    },
    /// `RotateKeyOnDemand` of an imported key with no `NEW_KEY_MATERIAL` to rotate to.
    NoPendingRotationMaterial {
        arn: String,
    },
    /// ReplicateKey or UpdatePrimaryRegion of a single-Region key.
    NotMultiRegion {
        arn: String,
    },
    /// ReplicateKey, UpdatePrimaryRegion or a rotation operation of a multi-Region replica.
    NotPrimary {
        arn: String,
    },
    /// ReplicateKey into the key's own region or another partition.
    ReplicaRegion {
        region: String,
    },
    /// ReplicateKey into a region that has the key already.
    ReplicaExists {
        arn: String,
    },
    /// A custom key store's failure (`custom_key_stores`).
    CustomKeyStore(super::custom_key_stores::CksError),
    /// The store failed; the request may be retried.
    Internal,
    /// The store refused a key record written over one another node had changed since it
    /// was read (the dispatch decides the request again).
    WriteConflict,
}

impl From<KmsError> for ApiError {
    fn from(e: KmsError) -> Self {
        use KmsError as E;
        match e {
            E::KeyNotFound { arn } => ApiError::new(
                Code::NotFoundException,
                format!("Key '{arn}' does not exist"),
            ),
            E::InvalidKeyId { value } => {
                ApiError::new(Code::NotFoundException, format!("Invalid keyId '{value}'"))
            }
            E::ArnOfOtherRegion { region } => {
                ApiError::new(Code::NotFoundException, format!("Invalid arn {region}"))
            }
            E::InvalidArn => ApiError::new(Code::InvalidArnException, "Invalid arn"),
            E::AliasNotFound { alias_arn } => ApiError::new(
                Code::NotFoundException,
                format!("Alias {alias_arn} is not found."),
            ),
            E::AliasNotSupported => ApiError::new(
                Code::InvalidArnException,
                "Key Aliases are not supported for this operation.",
            ),
            E::Disabled { arn } => {
                ApiError::new(Code::DisabledException, format!("{arn} is disabled."))
            }
            E::PendingDeletion { arn } => ApiError::new(
                Code::KMSInvalidStateException,
                format!("{arn} is pending deletion."),
            ),
            E::PendingReplicaDeletion { arn } => ApiError::new(
                Code::KMSInvalidStateException,
                format!("{arn} is pending replica deletion."),
            ),
            E::NotPendingDeletion { arn } => ApiError::new(
                Code::KMSInvalidStateException,
                format!("{arn} is not pending deletion."),
            ),
            E::InvalidKeyUsage {
                arn,
                usage,
                operation,
            } => ApiError::new(
                Code::InvalidKeyUsageException,
                format!("{arn} key usage is {usage} which is not valid for {operation}."),
            ),
            E::AliasExists { alias_arn } => ApiError::new(
                Code::AlreadyExistsException,
                format!("An alias with the name {alias_arn} already exists"),
            ),
            E::AliasPrefix => ApiError::validation(
                "Alias must start with the prefix \"alias/\". Please see \
                 https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html",
            ),
            E::AliasReserved => ApiError::bare(Unmodeled::NotAuthorized),
            E::AliasInvalidCharacters { name } => {
                ApiError::validation(format!("{name} contains invalid characters for an alias"))
            }
            E::AliasTargetIsAlias => {
                ApiError::validation("Aliases must refer to keys. Not aliases")
            }
            E::AliasKeyTypeMismatch => ApiError::validation(
                "The new target key must have the same key type and key usage as the current target key.",
            ),
            E::AliasesPerKeyLimit => ApiError::new(
                Code::LimitExceededException,
                "An alias limit was exceeded: a KMS key can have at most 50 aliases.",
            ),
            E::PendingWindow => {
                ApiError::validation("PendingWindowInDays must be between 7 and 30")
            }
            E::DataKeySize => {
                ApiError::validation("Please specify either number of bytes or key spec.")
            }
            E::NumberOfBytesRequired => ApiError::validation("NumberOfBytes is required."),
            E::CiphertextRequired => ApiError::validation(
                "1 validation error detected: Value null at 'ciphertextBlob' failed to satisfy \
                 constraint: Member must not be null",
            ),
            E::InvalidCiphertext => ApiError::bare(Code::InvalidCiphertextException),
            E::IncorrectKey => ApiError::new(
                Code::IncorrectKeyException,
                "The key ID in the request does not identify a CMK that can perform this operation.",
            ),
            E::DuplicateTagKeys => ApiError::new(Code::TagException, "Duplicate tag keys"),
            E::TooManyTags => ApiError::new(Code::TagException, "Too many tags"),
            E::ReservedTagKey => {
                ApiError::new(Code::TagException, "Tags beginning with aws: are reserved")
            }
            E::MalformedPolicy { message: Some(m) } => {
                ApiError::new(Code::MalformedPolicyDocumentException, m)
            }
            E::MalformedPolicy { message: None } => {
                ApiError::bare(Code::MalformedPolicyDocumentException)
            }
            E::PolicyLockout => ApiError::new(
                Code::MalformedPolicyDocumentException,
                "The new key policy will not allow you to update the key policy in the future.",
            ),
            E::PolicyTooLarge => ApiError::new(
                Code::LimitExceededException,
                "The key policy exceeds the maximum size of 32768 bytes.",
            ),
            E::NoSuchPolicy => ApiError::new(Code::NotFoundException, "No such policy exists"),
            E::InvalidMarker => ApiError::new(Code::InvalidMarkerException, "Invalid marker"),
            E::DryRun => ApiError::new(
                Code::DryRunOperationException,
                "The request would have succeeded, but the DryRun option is set.",
            ),
            E::AccessDenied(denied) => ApiError::new(CommonError::AccessDenied, denied.message()),
            E::SpecConflict => ApiError::validation(
                "You cannot specify KeySpec and CustomerMasterKeySpec in the same request. \
                 CustomerMasterKeySpec parameter is deprecated. Use KeySpec parameter instead.",
            ),
            E::IncompatibleUsage { spec, usage } => ApiError::validation(format!(
                "KeyUsage {usage} is not compatible with KeySpec {spec}"
            )),
            E::IncompatibleAlgorithm { algorithm, spec } => ApiError::new(
                Code::InvalidKeyUsageException,
                format!("Algorithm {algorithm} is incompatible with key spec {spec}."),
            ),
            E::KeyUsageRequired => ApiError::validation(
                "You must specify a KeyUsage value for all KMS keys except for symmetric \
                 encryption keys.",
            ),
            E::NotOfferedInRegion { member, value, set } => ApiError::validation(format!(
                "1 validation error detected: Value '{value}' at '{member}' failed to satisfy \
                 constraint: Member must satisfy enum value set: [{set}]"
            )),
            E::DigestLength { algorithm } => ApiError::validation(format!(
                "Digest is invalid length for algorithm {algorithm}."
            )),
            E::MessageType {
                algorithm,
                message_type,
            } => ApiError::validation(format!(
                "MessageType {message_type} is not valid for signing algorithm {algorithm}."
            )),
            E::InvalidSignature => ApiError::bare(Code::KMSInvalidSignatureException),
            E::InvalidMac => ApiError::bare(Code::KMSInvalidMacException),
            E::PlaintextTooLarge {
                algorithm,
                spec,
                limit,
            } => ApiError::validation(format!(
                "Algorithm {algorithm} and key spec {spec} cannot encrypt data larger than {limit} bytes."
            )),
            E::InvalidPublicKey => ApiError::bare(keyhold_proto::CommonError::Validation),
            E::EncryptionContextNotSupported => {
                ApiError::validation("EncryptionContext is not supported for asymmetric KMS keys.")
            }
            E::NoPublicKey { arn } => ApiError::new(
                Code::UnsupportedOperationException,
                format!("{arn} is not an asymmetric KMS key: it has no public key."),
            ),
            E::Unsupported { what } => ApiError::new(
                Code::UnsupportedOperationException,
                format!("Keyhold does not support {what} yet."),
            ),
            E::InvalidGrantToken => {
                ApiError::new(Code::InvalidGrantTokenException, "Invalid grant token.")
            }
            E::InvalidGrantId => ApiError::new(Code::InvalidGrantIdException, "Invalid grant ID."),
            E::GrantNotFound { grant_id } => ApiError::new(
                Code::NotFoundException,
                format!("Grant ID {grant_id} not found"),
            ),
            E::GrantsPerKeyLimit { limit } => ApiError::new(
                Code::LimitExceededException,
                format!("A grant limit was exceeded: a KMS key can have at most {limit} grants."),
            ),
            E::GrantOperationsEmpty => ApiError::validation(
                "1 validation error detected: Value '[]' at 'operations' failed to satisfy \
                 constraint: Member must have length greater than or equal to 1",
            ),
            E::GrantOnlyCreateGrant => {
                ApiError::validation("Grants must not contain only the CreateGrant operation.")
            }
            E::GrantOperationNotSupported {
                operation,
                spec,
                usage,
            } => ApiError::validation(format!(
                "{operation} is not a valid grant operation for a KMS key with KeySpec {spec} \
                 and KeyUsage {usage}."
            )),
            E::GrantConstraintMultiple => ApiError::validation("More than one constraint supplied"),
            E::GrantConstraintNotSupported { spec } => ApiError::validation(format!(
                "Encryption context grant constraints are not supported for the operations of \
                 a KMS key with KeySpec {spec}."
            )),
            E::GrantConstraintTooLarge => ApiError::validation(
                "A grant constraint can have at most 8 encryption context pairs, and each value \
                 at most 384 characters.",
            ),
            E::GranteeRequired => ApiError::validation(
                "1 validation error detected: Value null at 'granteePrincipal' failed to \
                 satisfy constraint: Member must not be null",
            ),
            E::RetiringPrincipalRequired => ApiError::validation(
                "1 validation error detected: Value null at 'retiringPrincipal' failed to \
                 satisfy constraint: Member must not be null",
            ),
            E::InvalidPrincipal { value } => ApiError::new(
                Code::InvalidArnException,
                format!("ARN does not refer to a valid principal: {value}"),
            ),
            E::RetireGrantTarget => {
                ApiError::validation("Grant token OR (grant ID, key ID) must be specified")
            }
            E::NotMultiRegion { arn } => ApiError::new(
                Code::UnsupportedOperationException,
                // UNCONFIRMED: AWS's wording for a single-Region key; this follows its
                // captured wording for a replica (below).
                format!("{arn} is not a multi-region key."),
            ),
            E::NotPrimary { arn } => ApiError::new(
                Code::UnsupportedOperationException,
                // AWS's wording, captured (LocalStack's AWS-validated snapshot
                // `test_replicate_replica_key_should_fail`, 2025).
                format!("{arn} is not a multi-region primary key."),
            ),
            E::ReplicaRegion { region } => ApiError::validation(format!(
                "{region} is not a valid ReplicaRegion: it must be another region of the \
                 same partition."
            )),
            E::ReplicaExists { arn } => ApiError::new(
                Code::AlreadyExistsException,
                format!("{arn} already exists."),
            ),
            E::RotationUnsupported { arn } => ApiError::new(
                Code::UnsupportedOperationException,
                format!("{arn} does not support key rotation."),
            ),
            E::OnDemandRotationLimit { arn, limit } => ApiError::new(
                Code::LimitExceededException,
                format!(
                    "An on-demand rotation limit was exceeded: {arn} can be rotated on demand \
                     at most {limit} times."
                ),
            ),
            E::PendingImport { arn } => ApiError::new(
                Code::KMSInvalidStateException,
                format!("{arn} is pending import."),
            ),
            E::OriginNotExternal { arn, origin } => ApiError::new(
                Code::UnsupportedOperationException,
                format!("{arn} origin is {origin} which is not valid for this operation."),
            ),
            E::ImportParameter { what } => ApiError::validation(what),
            E::InvalidImportToken => ApiError::new(
                Code::InvalidImportTokenException,
                "The import token is invalid or does not belong to this KMS key.",
            ),
            E::ExpiredImportToken => ApiError::new(
                Code::ExpiredImportTokenException,
                "The import token has expired. Use GetParametersForImport to get a new one.",
            ),
            E::IncorrectKeyMaterial => ApiError::new(
                Code::IncorrectKeyMaterialException,
                "The key material in the request is not the key material that was previously \
                 imported into this KMS key.",
            ),
            E::MaterialAlreadyImported { arn } => ApiError::new(
                Code::IncorrectKeyMaterialException,
                format!("This key material is already associated with {arn}."),
            ),
            E::PendingRotationExists { arn } => ApiError::new(
                Code::KMSInvalidStateException,
                format!(
                    "{arn} already has key material pending rotation. Rotate the key or delete \
                     that key material first."
                ),
            ),
            E::KeyMaterialNotFound { arn, material_id } => ApiError::new(
                Code::NotFoundException,
                format!("Key material '{material_id}' of {arn} does not exist."),
            ),
            E::NoPendingRotationMaterial { arn } => ApiError::new(
                Code::KMSInvalidStateException,
                format!(
                    "{arn} has no key material pending rotation. Import new key material with \
                     ImportType NEW_KEY_MATERIAL first."
                ),
            ),
            E::CustomKeyStore(e) => e.into(),
            // Only once the write was decided again and refused every time (the dispatch
            // retries it): retryable, as AWS says of this exception.
            E::WriteConflict => ApiError::new(
                Code::KMSInternalException,
                "The request was rejected because an internal exception occurred. The request can be retried.",
            ),
            E::Internal => ApiError::new(
                Code::KMSInternalException,
                "The request was rejected because an internal exception occurred. The request can be retried.",
            ),
        }
    }
}

/// Codes AWS KMS answers with that its model does not list.
#[derive(Clone, Copy)]
enum Unmodeled {
    /// Changing a reserved `alias/aws/` alias (as AWS answers it: no message).
    NotAuthorized,
}

impl keyhold_proto::ErrorCode for Unmodeled {
    fn code(self) -> &'static str {
        match self {
            Self::NotAuthorized => "NotAuthorizedException",
        }
    }
    fn http_status(self) -> u16 {
        400
    }
    fn sender_fault(self) -> bool {
        true
    }
}

impl crate::write_locks::WriteConflict for KmsError {
    fn is_write_conflict(&self) -> bool {
        matches!(self, KmsError::WriteConflict)
    }
}

impl From<keyhold_store::StoreError> for KmsError {
    fn from(e: keyhold_store::StoreError) -> Self {
        if matches!(e, keyhold_store::StoreError::Conflict) {
            return KmsError::WriteConflict;
        }
        tracing::error!(error = %e, source = ?std::error::Error::source(&e), "store failure");
        KmsError::Internal
    }
}
