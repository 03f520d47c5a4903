//! Why a request failed authentication, worded the way AWS words it.
//!
//! Every variant maps, in [`AuthError::code`] / [`AuthError::query_code`] and the status
//! functions below, to the wire in exactly one place. The messages are AWS's, as recorded
//! from live responses; where AWS's message would echo the `Authorization` header (which
//! carries the signature) Keyhold says the same thing without the echo.
//!
//! Sources for the wording and the codes:
//! - mhart/dynalite `index.js`, which records the JSON protocol's live answers in the order
//!   AWS checks: `MissingAuthenticationTokenException` "Request is missing Authentication
//!   Token"; `IncompleteSignatureException` "Authorization header requires 'Credential'
//!   parameter. ...", "Date must be in ISO-8601 'basic format'. ...", "Unsupported AWS
//!   'algorithm': ...", "Credential must have exactly 5 slash-delimited elements, ...";
//!   `InvalidSignatureException` "Signature expired: ...", the credential-scope messages, the
//!   signature mismatch, "Found both 'X-Amz-Algorithm' ..."; `UnrecognizedClientException`
//!   "The security token included in the request is invalid." — all with HTTP 400.
//! - The newer host wording "'Host' or ':authority' must be a 'SignedHeader' in the AWS
//!   Authorization." (dacut/scratchstack-aws-signature, a Rust reimplementation of AWS's
//!   checks) and "Signature not yet current: ... is still later than ... (... + 15 min.)"
//!   (live responses quoted in aws/aws-sdk-js#254, s12v/awsbeats#48).
//! - awsQuery codes and statuses: "Common Errors" of the AWS API references
//!   (`IncompleteSignature` 400, `InvalidClientTokenId` 403, `MissingAuthenticationToken`
//!   403); "Troubleshoot signed requests for AWS APIs" in the IAM user guide (HTTP 403
//!   `SignatureDoesNotMatch`, also for expired and mis-scoped signatures, as STS answers:
//!   devsecops/bootcamp#101 "SignatureDoesNotMatch ... Signature expired: ...").

use std::fmt;

use super::MAX_CLOCK_SKEW_MINUTES;
use super::date::AmzDate;

/// Why SigV4 authentication failed.
///
/// `Display` is the message AWS sends. No variant carries a signature (received or
/// expected), a secret or a canonical request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header that starts with `AWS4-`, and no `X-Amz-Algorithm` query
    /// parameter: the request is not signed at all.
    #[error("Request is missing Authentication Token")]
    MissingAuthenticationToken,

    /// The `Authorization` header lacks parameters, or the request lacks a date.
    #[error("{0}")]
    IncompleteHeader(MissingHeaderParts),

    /// A presigned request lacks some of its `X-Amz-*` query parameters.
    #[error("{0}")]
    IncompleteQuery(MissingQueryParams),

    /// A component of the `Authorization` header is not `key=value` (or the header is not
    /// visible ASCII). AWS echoes the whole header here; Keyhold does not, because the
    /// header carries the signature.
    #[error(
        "Authorization header contains a component that is not a valid key=value pair (missing equal-sign)."
    )]
    MalformedAuthorization,

    /// The date (`X-Amz-Date`, `Date` or the `X-Amz-Date` query parameter) is not in the
    /// expected format.
    #[error(
        "Date must be in ISO-8601 'basic format'. Got '{got}'. See http://en.wikipedia.org/wiki/ISO_8601"
    )]
    MalformedDate { got: String },

    /// The algorithm is not `AWS4-HMAC-SHA256` (SigV4a, for instance, is not supported).
    #[error("Unsupported AWS 'algorithm': '{algorithm}' (only AWS4-HMAC-SHA256 for now). ")]
    UnsupportedAlgorithm { algorithm: String },

    /// The `Credential` is not `keyid/date/region/service/aws4_request`.
    #[error(
        "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{credential}'"
    )]
    MalformedCredential { credential: String },

    /// `X-Amz-Expires` of a presigned request is not a number of seconds up to a week.
    #[error("X-Amz-Expires must be a number of seconds between 0 and 604800, got '{got}'.")]
    MalformedExpires { got: String },

    /// The request is older than the allowed clock skew.
    #[error(
        "Signature expired: {request} is now earlier than {earliest} ({now} - {MAX_CLOCK_SKEW_MINUTES} min.)"
    )]
    SignatureExpired {
        request: AmzDate,
        earliest: AmzDate,
        now: AmzDate,
    },

    /// The request is dated further in the future than the allowed clock skew.
    #[error(
        "Signature not yet current: {request} is still later than {latest} ({now} + {MAX_CLOCK_SKEW_MINUTES} min.)"
    )]
    SignatureNotYetCurrent {
        request: AmzDate,
        latest: AmzDate,
        now: AmzDate,
    },

    /// A presigned request used after `X-Amz-Date + X-Amz-Expires`.
    #[error("Request has expired")]
    PresignedRequestExpired,

    /// `host` is not among the signed headers.
    #[error("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")]
    HostNotSigned,

    /// A header that selects or shapes the operation (`content-type`, any `x-amz-*`, which
    /// includes `x-amz-target` and `x-amz-date`) is present but not covered by the
    /// signature: a captured request could otherwise be replayed as another operation. The
    /// wording is S3's, the one AWS front end that documents this check; the names are
    /// lowercase, as S3 lists them in `HeadersNotSigned`.
    #[error("There were headers present in the request which were not signed: {headers}")]
    HeadersNotSigned { headers: String },

    /// The credential scope names another region format, service, terminator or date.
    #[error("{0}")]
    CredentialScope(ScopeMismatch),

    /// Both an `Authorization` header and an `X-Amz-Algorithm` query parameter.
    #[error(
        "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header."
    )]
    AmbiguousSignatureLocation,

    /// The signature is wrong: wrong secret, wrong canonicalisation, or a request changed
    /// in transit (including a body that does not match `x-amz-content-sha256`).
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
    )]
    SignatureDoesNotMatch,

    /// The access key id (or session token) is unknown. Decided by the caller, which looks
    /// the key up between [`super::parse`] and [`super::ParsedAuth::verify`].
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient,

    /// The session token of temporary credentials has expired. Decided by the caller.
    #[error("The security token included in the request is expired")]
    ExpiredToken,
}

impl AuthError {
    /// The JSON 1.1 `__type` (KMS, Secrets Manager, SSM).
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            Self::IncompleteHeader(_)
            | Self::IncompleteQuery(_)
            | Self::MalformedAuthorization
            | Self::MalformedDate { .. }
            | Self::UnsupportedAlgorithm { .. }
            | Self::MalformedCredential { .. }
            | Self::MalformedExpires { .. } => "IncompleteSignatureException",
            Self::SignatureExpired { .. }
            | Self::SignatureNotYetCurrent { .. }
            | Self::PresignedRequestExpired
            | Self::HostNotSigned
            | Self::HeadersNotSigned { .. }
            | Self::CredentialScope(_)
            | Self::AmbiguousSignatureLocation
            | Self::SignatureDoesNotMatch => "InvalidSignatureException",
            Self::UnrecognizedClient => "UnrecognizedClientException",
            Self::ExpiredToken => "ExpiredTokenException",
        }
    }

    /// The awsQuery `<Code>` (STS, IAM).
    pub fn query_code(&self) -> &'static str {
        match self.code() {
            "MissingAuthenticationTokenException" => "MissingAuthenticationToken",
            "IncompleteSignatureException" => "IncompleteSignature",
            "UnrecognizedClientException" => "InvalidClientTokenId",
            "ExpiredTokenException" => "ExpiredToken",
            _ => "SignatureDoesNotMatch",
        }
    }

    /// The HTTP status of a JSON 1.1 answer: AWS's JSON services answer every
    /// authentication failure with 400 (dynalite's recordings; "status code: 400" in the
    /// SDK errors quoted by aws/aws-sdk-js#254 and aws-azure-login#37).
    pub fn http_status(&self) -> u16 {
        400
    }

    /// The HTTP status of an awsQuery answer: 400 for a malformed signature, 403 for the
    /// rest (AWS "Common Errors"; IAM's SigV4 troubleshooting page).
    pub fn query_http_status(&self) -> u16 {
        match self.query_code() {
            "IncompleteSignature" => 400,
            _ => 403,
        }
    }
}

/// What an `Authorization` header (or the request) lacks; each `true` adds AWS's sentence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MissingHeaderParts {
    pub credential: bool,
    pub signature: bool,
    pub signed_headers: bool,
    pub date: bool,
}

impl MissingHeaderParts {
    pub(super) fn any(&self) -> bool {
        self.credential || self.signature || self.signed_headers || self.date
    }
}

impl fmt::Display for MissingHeaderParts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // AWS appends "Authorization=<the header>" here; the header holds the signature.
        let sentences = [
            (
                self.credential,
                "Authorization header requires 'Credential' parameter.",
            ),
            (
                self.signature,
                "Authorization header requires 'Signature' parameter.",
            ),
            (
                self.signed_headers,
                "Authorization header requires 'SignedHeaders' parameter.",
            ),
            (
                self.date,
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
            ),
        ];
        let mut first = true;
        for (missing, sentence) in sentences {
            if missing {
                if !first {
                    f.write_str(" ")?;
                }
                f.write_str(sentence)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// Which `X-Amz-*` query parameters a presigned request lacks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MissingQueryParams {
    pub credential: bool,
    pub signature: bool,
    pub signed_headers: bool,
    pub date: bool,
}

impl fmt::Display for MissingQueryParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.credential, "X-Amz-Credential"),
            (self.signature, "X-Amz-Signature"),
            (self.signed_headers, "X-Amz-SignedHeaders"),
            (self.date, "X-Amz-Date"),
        ];
        for (missing, name) in names {
            if missing {
                write!(f, "AWS query-string parameters must include '{name}'. ")?;
            }
        }
        f.write_str("Re-examine the query-string parameters.")
    }
}

/// Everything wrong with a credential scope; AWS lists every failed check in one message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeMismatch {
    /// The scope's region, when it is not a region name.
    pub invalid_region: Option<String>,
    /// The service handling the request, when the scope names another.
    pub expected_service: Option<String>,
    /// The scope's terminator, when it is not `aws4_request`.
    pub invalid_terminator: Option<String>,
    /// The scope's date, when it is not the request's date.
    pub date: Option<DateMismatch>,
}

impl ScopeMismatch {
    pub(super) fn any(&self) -> bool {
        self.invalid_region.is_some()
            || self.expected_service.is_some()
            || self.invalid_terminator.is_some()
            || self.date.is_some()
    }
}

/// The credential scope's date against the request's date.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DateMismatch {
    pub scope_date: String,
    pub request_time: AmzDate,
}

impl fmt::Display for ScopeMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(region) = &self.invalid_region {
            write!(
                f,
                "Credential should be scoped to a valid region, not '{region}'. "
            )?;
        }
        if let Some(service) = &self.expected_service {
            write!(
                f,
                "Credential should be scoped to correct service: '{service}'. "
            )?;
        }
        if let Some(terminator) = &self.invalid_terminator {
            write!(
                f,
                "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'. "
            )?;
        }
        if let Some(date) = &self.date {
            write!(
                f,
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{}'.",
                date.scope_date,
                date.request_time.date_stamp(),
                date.request_time,
            )?;
        }
        Ok(())
    }
}

impl AuthError {
    /// The wire error for a service of `protocol`: the one place authentication failures
    /// become AWS answers.
    pub fn to_api_error(&self, protocol: crate::route::Protocol) -> crate::ApiError {
        let status = match protocol {
            crate::route::Protocol::Json => self.http_status(),
            crate::route::Protocol::Query => self.query_http_status(),
        };
        crate::ApiError::from_raw(self.code(), self.query_code(), status, self.to_string())
    }
}
