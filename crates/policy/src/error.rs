//! Why a policy document was refused.
//!
//! Every variant is a reason AWS also refuses a document for (or, where AWS's behaviour is not
//! documented, a reason we refuse to guess). The wire mapping lives here too, in exactly two
//! functions: [`PolicyError::aws_message`] gives the message KMS (and Secrets Manager) put in
//! `MalformedPolicyDocumentException`, [`PolicyError::iam_message`] the one IAM puts in
//! `MalformedPolicyDocument`. Both return `None` where the real service's wording is not
//! known; the caller then sends the exception without a message, as KMS does for
//! unparseable JSON.

/// Which JSON element of a statement or document an error is about.
pub type Element = &'static str;

/// A policy document that [`crate::Policy::parse`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The text is not one well-formed JSON document.
    #[error("the policy is not valid JSON")]
    NotJson,

    /// An object names the same member twice; AWS and a naive parser could disagree on
    /// which one counts, so the document is refused.
    #[error("the policy names member {key:?} twice in one object")]
    DuplicateKey {
        /// The repeated member name.
        key: String,
    },

    /// The document is valid JSON but not an object.
    #[error("the policy document is not a JSON object")]
    NotAnObject,

    /// A member that the policy grammar does not define (for example `"Effects"`).
    #[error("the policy contains the unsupported element {element:?}")]
    UnsupportedElement {
        /// The unknown member name.
        element: String,
    },

    /// A known element has the wrong JSON type (for example a numeric `Sid`).
    #[error("the {element} element has the wrong type")]
    InvalidType {
        /// The element name.
        element: Element,
    },

    /// `Version` is neither `2012-10-17` nor `2008-10-17`.
    #[error("the policy Version is not 2012-10-17 or 2008-10-17")]
    InvalidVersion,

    /// No `Statement`, or an empty one.
    #[error("the policy has no statement")]
    MissingStatement,

    /// Two statements share one `Sid` (refused by IAM for identity and trust policies).
    #[error("statement id {sid:?} is used twice")]
    DuplicateSid {
        /// The repeated statement id.
        sid: String,
    },

    /// `Effect` is missing or is not exactly `Allow` or `Deny`.
    #[error("a statement has no valid Effect (Allow or Deny)")]
    InvalidEffect,

    /// A statement carries both an element and its `Not` form, e.g. `Action` and `NotAction`.
    #[error("a statement contains both {element} and Not{element}")]
    ConflictingElements {
        /// The positive element name (`Action`, `Resource` or `Principal`).
        element: Element,
    },

    /// A resource-based or trust policy statement has neither `Principal` nor `NotPrincipal`.
    #[error("a statement has no Principal")]
    MissingPrincipal,

    /// An identity policy statement names a principal.
    #[error("an identity policy must not specify a principal")]
    PrincipalNotAllowed,

    /// A principal value that is not `*`, an account, or a principal ARN without wildcards.
    #[error("a statement contains an invalid principal")]
    InvalidPrincipal,

    /// A statement has neither `Action` nor `NotAction`, or an empty list.
    #[error("a statement has no Action")]
    MissingAction,

    /// An action that is not `*` or `service:name`.
    #[error("invalid action {action:?}")]
    InvalidAction {
        /// The refused action text.
        action: String,
        /// What is wrong with it.
        problem: ActionProblem,
    },

    /// An identity policy statement has neither `Resource` nor `NotResource`.
    #[error("a statement has no Resource")]
    MissingResource,

    /// A trust policy statement names a resource.
    #[error("a trust policy must not specify a resource")]
    ResourceNotAllowed,

    /// An empty resource string.
    #[error("a statement contains an empty resource")]
    InvalidResource,

    /// An unknown condition operator, or `IfExists` on `Null`.
    #[error("unknown condition operator {operator:?}")]
    InvalidCondition {
        /// The operator as written.
        operator: String,
    },

    /// A condition value that the operator cannot read (a bad number, date, CIDR, boolean,
    /// base64 value), or a value that is not a string, number or boolean.
    #[error("invalid value for condition {operator:?} on key {key:?}")]
    InvalidConditionValue {
        /// The operator as written.
        operator: String,
        /// The condition key as written.
        key: String,
    },

    /// An empty condition key.
    #[error("a condition under {operator:?} has an empty key")]
    InvalidConditionKey {
        /// The operator as written.
        operator: String,
    },

    /// KMS refuses `ForAllValues:` on the single-valued `kms:EncryptionContext:<key>` and
    /// `aws:RequestTag/<key>` condition keys (see [`crate::Policy::check_kms_key_policy`]).
    #[error("ForAllValues on the single-valued condition key {key:?} is overly permissive")]
    OverlyPermissiveCondition {
        /// The condition key as written.
        key: String,
        /// Which family the key belongs to.
        family: OverlyPermissiveKey,
    },
}

/// What is wrong with an action string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionProblem {
    /// No `service:` prefix (and not `*`), or an empty prefix or name.
    NoVendor,
    /// More than one colon.
    ExtraColon,
}

/// The single-valued key families that KMS refuses `ForAllValues` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlyPermissiveKey {
    /// `kms:EncryptionContext:<key>`.
    EncryptionContext,
    /// `aws:RequestTag/<key>`.
    RequestTag,
}

impl PolicyError {
    /// The message AWS KMS puts in `MalformedPolicyDocumentException` for this error, where it
    /// is known. Sources: the invalid-principal wording is what KMS returns from
    /// `PutKeyPolicy`/`CreateKey` (seen in many public bug reports); the overly-permissive
    /// wording is quoted in the KMS developer guide, "AWS KMS condition keys".
    pub fn aws_message(&self) -> Option<&'static str> {
        match self {
            PolicyError::InvalidPrincipal => {
                Some("Policy contains a statement with one or more invalid principals.")
            }
            PolicyError::OverlyPermissiveCondition {
                family: OverlyPermissiveKey::EncryptionContext,
                ..
            } => Some(
                "OverlyPermissiveCondition:EncryptionContext: Using the ForAllValues set operator \
                 with a single-valued condition key matches requests without the specified \
                 encryption context or with an unspecified encryption context. To fix, remove \
                 ForAllValues.",
            ),
            PolicyError::OverlyPermissiveCondition {
                family: OverlyPermissiveKey::RequestTag,
                ..
            } => Some(
                "OverlyPermissiveCondition: Using the ForAllValues set operator with a \
                 single-valued condition key matches requests without the specified tag or with \
                 an unspecified tag. To fix, remove ForAllValues.",
            ),
            _ => None,
        }
    }

    /// The message IAM puts in `MalformedPolicyDocument` for this error (identity and trust
    /// policies), where it is known from IAM's responses quoted in public bug reports.
    pub fn iam_message(&self) -> Option<&'static str> {
        match self {
            PolicyError::NotJson => Some("This policy contains invalid Json"),
            PolicyError::DuplicateSid { .. } => {
                Some("Statement IDs (SID) in a single policy must be unique.")
            }
            PolicyError::PrincipalNotAllowed => {
                Some("Policy document should not specify a principal.")
            }
            PolicyError::ResourceNotAllowed => Some("Has prohibited field Resource"),
            PolicyError::MissingResource => Some("Policy statement must contain resources."),
            PolicyError::MissingAction => Some("Policy statement must contain actions."),
            PolicyError::InvalidAction {
                problem: ActionProblem::ExtraColon,
                ..
            } => Some("Actions/Condition can contain only one colon."),
            PolicyError::InvalidAction {
                problem: ActionProblem::NoVendor,
                ..
            } => Some("Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kms_sends_no_message_for_unparseable_json() {
        assert_eq!(PolicyError::NotJson.aws_message(), None);
        assert_eq!(
            PolicyError::InvalidPrincipal.aws_message(),
            Some("Policy contains a statement with one or more invalid principals.")
        );
    }
}
