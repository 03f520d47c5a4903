//! AWS's IAM policy language for Keyhold: parse, validate and evaluate key policies, IAM
//! identity policies, role trust policies and Secrets Manager resource policies.
//!
//! The crate knows nothing of keys, storage or HTTP. It answers one question — *what does
//! this one policy say about this one request?* — exactly as AWS documents it; combining the
//! answers of several policies (key policy, the caller's IAM policies, grants) is the
//! server's job.
//!
//! # Types
//!
//! - [`Policy`] — a parsed, validated document: [`Policy::parse`] (text + [`PolicyKind`]) →
//!   [`Policy::evaluate`]. Its [`Statement`]s (with [`Effect`] and [`Condition`]s) are readable
//!   for diagnostics. Parse once, cache, evaluate many times.
//! - [`PolicyError`] — why a document was refused, with the wording KMS
//!   ([`PolicyError::aws_message`]) or IAM ([`PolicyError::iam_message`]) sends.
//! - [`Request`] — who ([`Principal`], [`PrincipalKind`]) does what (action) to what
//!   (resource ARN), with which condition keys ([`ConditionContext`], or the map
//!   [`Context`]).
//! - [`Evaluation`] — `ExplicitDeny`, `Allow { principal_match }` or `NotApplicable`;
//!   [`PrincipalMatch`] tells a direct grant from a delegation to the account's IAM policies.
//!   [`Policy::decide`] also names the deciding statement.
//!
//! # Evaluation order
//!
//! For each statement, in document order, the statement *applies* when all of these hold
//! (cheapest first):
//! 1. **principal** — `Principal` names the caller (`*`, its account, its ARN, or for an
//!    assumed-role session its role's ARN), or `NotPrincipal` does not exclude it; identity
//!    policies skip this step;
//! 2. **action** — matches an `Action` pattern, or none of the `NotAction` patterns
//!    (case-insensitive, `*` and `?` wildcards);
//! 3. **resource** — matches a `Resource` pattern, or none of the `NotResource` patterns
//!    (case-sensitive, ARN component by component, policy variables substituted);
//! 4. **conditions** — every condition holds (see [`Condition`] for the operator rules).
//!
//! Then: any applicable `Deny` → [`Evaluation::ExplicitDeny`]; else any applicable `Allow` →
//! [`Evaluation::Allow`] with the strongest principal match (`Direct` over `Account`); else
//! [`Evaluation::NotApplicable`].
//!
//! The caller then combines policies the way AWS does (IAM User Guide, "Policy evaluation
//! logic"; KMS developer guide, "Determining access"): an explicit deny anywhere wins; a key
//! policy `Allow` with [`PrincipalMatch::Direct`] suffices for a caller of the key's account;
//! [`PrincipalMatch::Account`] requires an identity policy `Allow` too (the account root user
//! excepted); a caller from another account always needs both.
//!
//! # Condition keys
//!
//! Key names are case-insensitive everywhere, including the part after
//! `kms:EncryptionContext:` (KMS developer guide, "Case sensitivity of the encryption context
//! condition"); values are compared as the operator says. The caller fills the context: this
//! crate derives no key (`aws:PrincipalArn`, `aws:CurrentTime`, ...) by itself.
//!
//! # Deliberate choices where AWS documents nothing
//!
//! - Condition values that the operator cannot read (`NumericLessThan: "ten"`, a bad CIDR or
//!   date) refuse the document rather than silently never matching: a typo in a `Deny` must
//!   not open access.
//! - Duplicate JSON member names refuse the document (two `Effect`s must not be read two ways).
//! - `Federated` and `CanonicalUser` principals are accepted but never match.
//! - `NotPrincipal` resolves AWS's "might" towards refusing: a `Deny` spares a caller only if
//!   its account, role and session are all listed; an `Allow` excludes it if any is listed.
//! - A multi-valued key under an operator without `ForAnyValue:`/`ForAllValues:` matches if
//!   any value matches (a negated operator: if no value matches).
//! - A `Resource` pattern with fewer than six ARN components matches its last component
//!   against the rest of the ARN; policy variables are substituted anywhere in a string.

mod condition;
mod context;
mod error;
mod evaluate;
mod json;
mod pattern;
mod policy;
mod principal;
mod values;
mod variables;

pub use condition::{Condition, Operator, Qualifier};
pub use context::{ConditionContext, Context, canonical_key};
pub use error::{ActionProblem, Element, OverlyPermissiveKey, PolicyError};
pub use evaluate::{Decision, Evaluation, PrincipalMatch, Request};
pub use policy::{Effect, Policy, PolicyKind, Statement, Version};
pub use principal::{Principal, PrincipalKind};
