//! Reading the signature's parameters and the checks that need no secret, in the order AWS
//! makes them (mhart/dynalite `index.js` records it): where the signature is, what is
//! missing, the date's format, the clock skew, `host` signed, every `content-type` and
//! `x-amz-*` header signed (Keyhold's addition), the algorithm, the
//! credential's shape, the credential scope.

use std::time::SystemTime;

use http::HeaderValue;

use super::canonical::query_pairs;
use super::date::AmzDate;
use super::error::{
    AuthError, DateMismatch, MissingHeaderParts, MissingQueryParams, ScopeMismatch,
};
use super::{
    ALGORITHM, MAX_CLOCK_SKEW_MINUTES, MAX_PRESIGNED_EXPIRES_SECONDS, ParsedAuth, Scope,
    SignedRequest,
};
use crate::region::is_region_name;

/// Parses the SigV4 authentication of `request` and checks it against `service` (the
/// signing name of the service handling the request: `kms`, `secretsmanager`, `ssm`,
/// `sts`, `iam`) and the server's clock `now`. See the [module docs](super).
pub fn parse<'a>(
    request: &'a SignedRequest<'a>,
    service: &str,
    now: SystemTime,
) -> Result<ParsedAuth<'a>, AuthError> {
    let header = request.headers.get(http::header::AUTHORIZATION);
    let query_params = PresignParams::read(request.query());
    let raw = match (header, query_params) {
        (Some(_), Some(_)) => return Err(AuthError::AmbiguousSignatureLocation),
        (Some(header), None) => RawAuth::from_header(header, request)?,
        (None, Some(params)) => RawAuth::from_query(params)?,
        (None, None) => return Err(AuthError::MissingAuthenticationToken),
    };
    raw.check(request, service, now)
}

/// The signature's parameters as sent, before any check but presence.
struct RawAuth {
    presigned: bool,
    algorithm: String,
    credential: String,
    signed_headers: String,
    signature: String,
    date: String,
    /// `X-Amz-Date` (header or query) rather than the HTTP `Date` header.
    date_is_basic: bool,
    expires: Option<String>,
    security_token: Option<String>,
}

impl RawAuth {
    fn from_header(header: &HeaderValue, request: &SignedRequest<'_>) -> Result<Self, AuthError> {
        if !header.as_bytes().trim_ascii_start().starts_with(b"AWS4-") {
            return Err(AuthError::MissingAuthenticationToken);
        }
        let text = header
            .to_str()
            .map_err(|_| AuthError::MalformedAuthorization)?
            .trim();
        let (algorithm, rest) = text
            .split_once(|c: char| c.is_ascii_whitespace())
            .unwrap_or((text, ""));

        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        // Components are separated by commas and/or spaces, as AWS reads them; no value may
        // contain either, so no value can swallow the next component (and the signature).
        for component in rest.split(|c: char| c == ',' || c.is_ascii_whitespace()) {
            if component.is_empty() {
                continue;
            }
            let Some((key, value)) = component.split_once('=') else {
                return Err(AuthError::MalformedAuthorization);
            };
            let slot = match key {
                "Credential" => &mut credential,
                "SignedHeaders" => &mut signed_headers,
                "Signature" => &mut signature,
                _ => continue,
            };
            // The first occurrence wins.
            slot.get_or_insert(value);
        }

        let headers = request.headers;
        let (date, date_is_basic) =
            match (headers.get("x-amz-date"), headers.get(http::header::DATE)) {
                (Some(amz_date), _) => (Some(amz_date), true),
                (None, date) => (date, false),
            };
        let missing = MissingHeaderParts {
            credential: credential.is_none_or(str::is_empty),
            signature: signature.is_none_or(str::is_empty),
            signed_headers: signed_headers.is_none(),
            date: date.is_none(),
        };
        let (Some(credential), Some(signed_headers), Some(signature), Some(date)) =
            (credential, signed_headers, signature, date)
        else {
            return Err(AuthError::IncompleteHeader(missing));
        };
        if missing.any() {
            return Err(AuthError::IncompleteHeader(missing));
        }

        let security_token = match headers.get("x-amz-security-token") {
            None => None,
            Some(token) => Some(
                token
                    .to_str()
                    .map_err(|_| AuthError::UnrecognizedClient)?
                    .to_owned(),
            ),
        };
        Ok(Self {
            presigned: false,
            algorithm: algorithm.to_owned(),
            credential: credential.to_owned(),
            signed_headers: signed_headers.to_owned(),
            signature: signature.to_owned(),
            date: String::from_utf8_lossy(date.as_bytes()).into_owned(),
            date_is_basic,
            expires: None,
            security_token,
        })
    }

    fn from_query(params: PresignParams) -> Result<Self, AuthError> {
        let missing = MissingQueryParams {
            credential: params.credential.is_none(),
            signature: params.signature.is_none(),
            signed_headers: params.signed_headers.is_none(),
            date: params.date.is_none(),
        };
        let (Some(credential), Some(signed_headers), Some(signature), Some(date)) = (
            params.credential,
            params.signed_headers,
            params.signature,
            params.date,
        ) else {
            return Err(AuthError::IncompleteQuery(missing));
        };
        Ok(Self {
            presigned: true,
            algorithm: params.algorithm,
            credential,
            signed_headers,
            signature,
            date,
            date_is_basic: true,
            expires: params.expires,
            security_token: params.security_token,
        })
    }

    fn check<'a>(
        self,
        request: &'a SignedRequest<'a>,
        service: &str,
        now: SystemTime,
    ) -> Result<ParsedAuth<'a>, AuthError> {
        let time = match self.date_is_basic {
            true => AmzDate::parse_basic(&self.date),
            false => AmzDate::parse_http_date(&self.date),
        }
        .ok_or_else(|| AuthError::MalformedDate {
            got: self.date.clone(),
        })?;

        check_clock_skew(time, now)?;

        let signed_headers: Vec<String> = self
            .signed_headers
            .split(';')
            .map(str::to_ascii_lowercase)
            .collect();
        if !signed_headers.iter().any(|name| name == "host") {
            return Err(AuthError::HostNotSigned);
        }
        check_headers_signed(request, &signed_headers, self.presigned)?;

        if self.algorithm != ALGORITHM {
            return Err(AuthError::UnsupportedAlgorithm {
                algorithm: self.algorithm,
            });
        }

        let parts: Vec<&str> = self.credential.trim_end_matches('/').split('/').collect();
        let [access_key_id, date, region, scope_service, terminator] = parts.as_slice() else {
            return Err(AuthError::MalformedCredential {
                credential: self.credential,
            });
        };
        let mismatch = ScopeMismatch {
            invalid_region: (!is_region_name(region)).then(|| region.to_string()),
            expected_service: (*scope_service != service).then(|| service.to_owned()),
            invalid_terminator: (*terminator != "aws4_request").then(|| terminator.to_string()),
            date: (*date != time.date_stamp()).then(|| DateMismatch {
                scope_date: date.to_string(),
                request_time: time,
            }),
        };
        if mismatch.any() {
            return Err(AuthError::CredentialScope(mismatch));
        }

        if let Some(expires) = &self.expires {
            check_presigned_expiry(expires, time, now)?;
        }

        Ok(ParsedAuth {
            request,
            presigned: self.presigned,
            access_key_id: access_key_id.to_string(),
            scope: Scope {
                date: date.to_string(),
                region: region.to_string(),
                service: scope_service.to_string(),
            },
            signed_headers,
            signature: decode_signature(&self.signature),
            time,
            security_token: self.security_token,
        })
    }
}

/// The `X-Amz-*` parameters of a presigned request; `None` from [`Self::read`] when the
/// query has no `X-Amz-Algorithm` (the request is not presigned).
struct PresignParams {
    algorithm: String,
    credential: Option<String>,
    signed_headers: Option<String>,
    signature: Option<String>,
    date: Option<String>,
    expires: Option<String>,
    security_token: Option<String>,
}

impl PresignParams {
    fn read(query: &str) -> Option<Self> {
        let mut algorithm = None;
        let mut params = Self {
            algorithm: String::new(),
            credential: None,
            signed_headers: None,
            signature: None,
            date: None,
            expires: None,
            security_token: None,
        };
        for (name, value) in query_pairs(query) {
            let slot = match name.as_slice() {
                b"X-Amz-Algorithm" => &mut algorithm,
                b"X-Amz-Credential" => &mut params.credential,
                b"X-Amz-SignedHeaders" => &mut params.signed_headers,
                b"X-Amz-Signature" => &mut params.signature,
                b"X-Amz-Date" => &mut params.date,
                b"X-Amz-Expires" => &mut params.expires,
                b"X-Amz-Security-Token" => &mut params.security_token,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(String::from_utf8_lossy(&value).into_owned());
            }
        }
        params.algorithm = algorithm?;
        Some(params)
    }
}

/// Every `content-type` and `x-amz-*` header present must be signed: they choose the
/// operation (`x-amz-target`, `content-type`) or carry what the signature vouches for
/// (`x-amz-date`). The AWS SDKs, the CLI and boto3 sign them all; a header added after
/// signing would let a captured request be replayed as another call.
///
/// `x-amz-security-token` is the exception: the SigV4 specification lets a signer add it
/// after signing (the AWS suite's `post-sts-header-after`), and it selects nothing, since
/// it must belong to the signing key anyway. So is `x-amz-user-agent` of a presigned
/// request: the SDKs leave it out of a presigned URL's signature, the client that later
/// sends the URL adds its own.
fn check_headers_signed(
    request: &SignedRequest<'_>,
    signed: &[String],
    presigned: bool,
) -> Result<(), AuthError> {
    let mut unsigned: Vec<&str> = Vec::new();
    for name in request.headers.keys() {
        let name = name.as_str(); // `http` keeps header names lowercase
        let exempt = name == "x-amz-security-token" || (presigned && name == "x-amz-user-agent");
        let covered = !exempt && (name == "content-type" || name.starts_with("x-amz-"));
        if covered && !signed.iter().any(|s| s == name) && !unsigned.contains(&name) {
            unsigned.push(name);
        }
    }
    if unsigned.is_empty() {
        return Ok(());
    }
    unsigned.sort_unstable();
    Err(AuthError::HeadersNotSigned {
        headers: unsigned.join(", "),
    })
}

fn check_clock_skew(time: AmzDate, now: SystemTime) -> Result<(), AuthError> {
    // A server clock outside years 0-9999 accepts nothing.
    let Some(now) = AmzDate::from_system_time(now) else {
        return Err(AuthError::SignatureDoesNotMatch);
    };
    let skew = MAX_CLOCK_SKEW_MINUTES * 60;
    match now.checked_sub(skew) {
        Some(earliest) if time < earliest => {
            return Err(AuthError::SignatureExpired {
                request: time,
                earliest,
                now,
            });
        }
        _ => {}
    }
    match now.checked_add(skew) {
        Some(latest) if time > latest => Err(AuthError::SignatureNotYetCurrent {
            request: time,
            latest,
            now,
        }),
        _ => Ok(()),
    }
}

/// `X-Amz-Expires` must be 0..=604800 seconds, and the request used before it runs out.
fn check_presigned_expiry(expires: &str, time: AmzDate, now: SystemTime) -> Result<(), AuthError> {
    let seconds = expires
        .parse::<u64>()
        .ok()
        .filter(|s| *s <= MAX_PRESIGNED_EXPIRES_SECONDS)
        .and_then(|s| i64::try_from(s).ok())
        .ok_or_else(|| AuthError::MalformedExpires {
            got: expires.to_owned(),
        })?;
    let expired = match (time.checked_add(seconds), AmzDate::from_system_time(now)) {
        (Some(end), Some(now)) => now > end,
        _ => true,
    };
    match expired {
        true => Err(AuthError::PresignedRequestExpired),
        false => Ok(()),
    }
}

/// 64 lowercase hex digits, as AWS's signers write them.
fn decode_signature(signature: &str) -> Option<[u8; 32]> {
    if signature.len() != 64
        || !signature
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(signature, &mut out).ok()?;
    Some(out)
}
