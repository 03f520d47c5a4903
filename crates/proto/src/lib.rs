//! The AWS wire protocol of Keyhold, and nothing else: it knows no keys and no storage.
//!
//! - [`generated`] holds, per service model in `models/`, the request/response shapes with
//!   their constraint validation, the error-code enum, one async trait with a method per
//!   operation (each defaulting to "unsupported"), and the dispatch that decodes a request,
//!   validates it, calls the trait and encodes the answer. It is written by
//!   `keyhold-codegen`; fix the generator, never its output.
//! - [`runtime`] is the hand-written support the generated code calls: blobs and sensitive
//!   values, timestamps, AWS's `ValidationException` wording, the wire error ([`ApiError`]),
//!   JSON 1.1 and awsQuery (form in, XML out) encoding.
//! - [`route`] maps an HTTP request (`X-Amz-Target` or `Action=`) to a service and operation.
//! - [`sigv4`] verifies AWS Signature Version 4.
//! - [`region`] says what a region name looks like, for SigV4 scopes and ARNs alike.

pub mod generated;
pub mod region;
pub mod route;
pub mod runtime;
pub mod sigv4;

pub use generated::{cloudtrail, iam, kms, secretsmanager, ssm, sts};
pub use route::{Protocol, Service};
pub use runtime::error::{ApiError, CommonError, ErrorCode};
pub use runtime::types::{Blob, SensitiveBlob, SensitiveString, Timestamp};
