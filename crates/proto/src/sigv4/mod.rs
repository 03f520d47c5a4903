//! AWS Signature Version 4 verification.
//!
//! A request is authenticated in two steps with the key lookup between them, the order in
//! which AWS reports errors:
//!
//! 1. [`parse`] reads the `Authorization` header (or, for a presigned request, the
//!    `X-Amz-*` query parameters) and checks everything that needs no secret: the format,
//!    the 15-minute clock skew, that `host` is signed, the algorithm, and that the credential
//!    scope names the service handling the request, a valid region, `aws4_request` and the
//!    request's date. It returns a [`ParsedAuth`] that borrows the request.
//! 2. The caller looks up [`ParsedAuth::access_key_id`] (and
//!    [`ParsedAuth::security_token`] for temporary credentials), answering
//!    [`AuthError::UnrecognizedClient`] or [`AuthError::ExpiredToken`] itself, then calls
//!    [`ParsedAuth::verify`] with the secret. `verify` builds the canonical request and the
//!    string to sign, derives the signing key (through a [`SigningKeyCache`]) and compares
//!    the signatures in constant time.
//!
//! ```no_run
//! # use keyhold_proto::sigv4::{self, AuthError, SignedRequest, SigningKeyCache};
//! # fn lookup(_: &str) -> Option<Vec<u8>> { None }
//! # fn handle(parts: &http::request::Parts, body: &[u8], cache: &SigningKeyCache) -> Result<(), AuthError> {
//! let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
//! let request = SignedRequest::new(parts.method.as_str(), path_and_query, &parts.headers, body);
//! let auth = sigv4::parse(&request, "kms", std::time::SystemTime::now())?;
//! let secret = lookup(auth.access_key_id()).ok_or(AuthError::UnrecognizedClient)?;
//! auth.verify(&secret, cache)?;
//! // auth.region() is the region of every resource the request touches.
//! # Ok(()) }
//! ```
//!
//! Nothing here logs, and no error carries a signature, a secret or a canonical request.
//! The module never panics on request data.
//!
//! Module map: [`error`](AuthError) (what AWS answers), `parse` (the header and the query
//! parameters), `canonical` (the canonical request and string to sign, [`percent_encode`]),
//! `key` (the signing key and its cache), `date` ([`AmzDate`]).

mod canonical;
mod date;
mod error;
mod key;
mod parse;
#[cfg(test)]
mod tests;

use std::fmt;

use http::HeaderMap;

pub use canonical::percent_encode;
pub use date::AmzDate;
pub use error::{AuthError, DateMismatch, MissingHeaderParts, MissingQueryParams, ScopeMismatch};
pub use key::{DEFAULT_CACHE_CAPACITY, SigningKeyCache};
pub use parse::parse;

use key::{CacheKey, SigningKey};

/// The only algorithm accepted.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// How far a request's date may be from the server's clock, either way. AWS documents 15
/// minutes (some services have since tightened theirs to 5).
pub const MAX_CLOCK_SKEW_MINUTES: i64 = 15;

/// The longest a presigned request may be valid for (`X-Amz-Expires`), a week.
pub const MAX_PRESIGNED_EXPIRES_SECONDS: u64 = 604_800;

/// The parts of an HTTP request a signature covers.
#[derive(Clone, Copy, Debug)]
pub struct SignedRequest<'a> {
    method: &'a str,
    path_and_query: &'a str,
    headers: &'a HeaderMap,
    body: &'a [u8],
    normalize_path: bool,
}

impl<'a> SignedRequest<'a> {
    /// `path_and_query` is the request target exactly as received (still percent-encoded,
    /// for instance `uri.path_and_query()`); `body` is the whole body. `headers` must
    /// contain `host` (for HTTP/2, copy `:authority` into it).
    pub fn new(
        method: &'a str,
        path_and_query: &'a str,
        headers: &'a HeaderMap,
        body: &'a [u8],
    ) -> Self {
        Self {
            method,
            path_and_query,
            headers,
            body,
            normalize_path: true,
        }
    }

    /// Canonicalises the path without removing `.`, `..` and empty segments, the way S3
    /// signs. Every service Keyhold serves normalises, which is the default.
    pub fn without_path_normalization(self) -> Self {
        Self {
            normalize_path: false,
            ..self
        }
    }

    fn path(&self) -> &'a str {
        self.path_and_query
            .split_once('?')
            .map_or(self.path_and_query, |(path, _)| path)
    }

    fn query(&self) -> &'a str {
        self.path_and_query
            .split_once('?')
            .map_or("", |(_, query)| query)
    }
}

/// A request whose SigV4 authentication parsed and passed every check that needs no
/// secret. Only [`parse`] makes one; [`ParsedAuth::verify`] finishes the job.
pub struct ParsedAuth<'a> {
    request: &'a SignedRequest<'a>,
    presigned: bool,
    access_key_id: String,
    scope: Scope,
    /// Lowercase, in the order the client listed them.
    signed_headers: Vec<String>,
    /// `None` when the client sent something that is not 64 lowercase hex digits: it can
    /// only fail to verify, which `verify` reports after the key lookup, as AWS does.
    signature: Option<[u8; 32]>,
    time: AmzDate,
    security_token: Option<String>,
}

/// The credential scope `date/region/service/aws4_request`, checked.
#[derive(Clone, Debug)]
struct Scope {
    date: String,
    region: String,
    service: String,
}

impl Scope {
    fn to_scope_string(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

impl ParsedAuth<'_> {
    /// The access key id from the credential, for the caller to look up.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The region of the credential scope: the region the request acts in.
    pub fn region(&self) -> &str {
        &self.scope.region
    }

    /// The service of the credential scope (equal to the one passed to [`parse`]).
    pub fn service(&self) -> &str {
        &self.scope.service
    }

    /// The session token of temporary credentials (`X-Amz-Security-Token`), if any. The
    /// caller must check it belongs to the access key; the signature may not cover it.
    pub fn security_token(&self) -> Option<&str> {
        self.security_token.as_deref()
    }

    /// The request's date (`X-Amz-Date`, `Date` or the query's `X-Amz-Date`).
    pub fn request_time(&self) -> AmzDate {
        self.time
    }

    /// The headers the signature covers, lowercase.
    pub fn signed_headers(&self) -> &[String] {
        &self.signed_headers
    }

    /// Whether the signature came in the query string rather than `Authorization`.
    pub fn is_presigned(&self) -> bool {
        self.presigned
    }

    /// Checks the signature with the secret access key of [`Self::access_key_id`].
    ///
    /// A body that does not match a present `x-amz-content-sha256` header fails as a
    /// signature mismatch: the signature covers the header, not the body.
    pub fn verify(
        &self,
        secret_access_key: &[u8],
        cache: &SigningKeyCache,
    ) -> Result<(), AuthError> {
        let Some(signature) = &self.signature else {
            return Err(AuthError::SignatureDoesNotMatch);
        };
        let string_to_sign = self.string_to_sign()?;
        let scope = &self.scope;
        let cache_key = CacheKey::new(
            &self.access_key_id,
            &scope.date,
            &scope.region,
            &scope.service,
            secret_access_key,
        );
        if let Some(key) = cache.get(&cache_key) {
            return match key.verifies(string_to_sign.as_bytes(), signature) {
                true => Ok(()),
                false => Err(AuthError::SignatureDoesNotMatch),
            };
        }
        let key = SigningKey::derive(
            secret_access_key,
            &scope.date,
            &scope.region,
            &scope.service,
        );
        if !key.verifies(string_to_sign.as_bytes(), signature) {
            return Err(AuthError::SignatureDoesNotMatch);
        }
        cache.insert(cache_key, key);
        Ok(())
    }

    /// The canonical request Keyhold computes for this request. For tests and debugging
    /// only: it holds the signed header values, session token included, so never log it.
    #[doc(hidden)]
    pub fn canonical_request(&self) -> Result<Vec<u8>, AuthError> {
        let payload_hash = self.payload_hash()?;
        let request = self.request;
        Ok(canonical::canonical_request(&canonical::Inputs {
            method: request.method,
            path: request.path(),
            query: request.query(),
            normalize_path: request.normalize_path,
            headers: request.headers,
            signed_headers: &self.signed_headers,
            skip_signature_param: self.presigned,
            payload_hash: &payload_hash,
        }))
    }

    /// The string to sign Keyhold computes for this request. For tests and debugging.
    #[doc(hidden)]
    pub fn string_to_sign(&self) -> Result<String, AuthError> {
        let canonical_request = self.canonical_request()?;
        Ok(canonical::string_to_sign(
            &self.time.to_string(),
            &self.scope.to_scope_string(),
            &canonical_request,
        ))
    }

    /// The body's SHA-256, or the `x-amz-content-sha256` value the client signed, which
    /// must then be the body's SHA-256 (not `UNSIGNED-PAYLOAD` or a streaming mode).
    fn payload_hash(&self) -> Result<String, AuthError> {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.request.body);
        let body_hash = hex::encode(digest.as_ref());
        match self.request.headers.get("x-amz-content-sha256") {
            None => Ok(body_hash),
            Some(claimed) if claimed.as_bytes() == body_hash.as_bytes() => Ok(body_hash),
            Some(_) => Err(AuthError::SignatureDoesNotMatch),
        }
    }
}

impl fmt::Debug for ParsedAuth<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedAuth")
            .field("presigned", &self.presigned)
            .field("access_key_id", &self.access_key_id)
            .field("scope", &self.scope)
            .field("signed_headers", &self.signed_headers)
            .field("time", &self.time.to_string())
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}
