//! The checks `parse` and `verify` make and the exact messages they answer with. The AWS
//! test suite and the oracle tests live in `tests/sigv4_suite.rs`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;

use super::key::SigningKey;
use super::*;

const SECRET: &[u8] = b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const GOOD_SIGNATURE: &str = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";

/// 2015-08-30T12:36:00Z, the suite's time.
fn at(hhmmss: (u64, u64, u64)) -> SystemTime {
    let (h, m, s) = hhmmss;
    UNIX_EPOCH + Duration::from_secs(1_440_892_800 + h * 3600 + m * 60 + s)
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            HeaderValue::from_str(value).expect("value"),
        );
    }
    map
}

fn authorization(credential: &str, signed_headers: &str, signature: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed_headers}, Signature={signature}"
    )
}

/// The suite's `get-vanilla`, for service `service`.
fn vanilla() -> HeaderMap {
    headers(&[
        ("host", "example.amazonaws.com"),
        ("x-amz-date", "20150830T123600Z"),
        (
            "authorization",
            &authorization(
                "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request",
                "host;x-amz-date",
                GOOD_SIGNATURE,
            ),
        ),
    ])
}

fn parse_err(headers: &HeaderMap, target: &str, service: &str, now: SystemTime) -> AuthError {
    let request = SignedRequest::new("GET", target, headers, b"");
    match parse(&request, service, now) {
        Ok(auth) => panic!("expected an error, parsed {auth:?}"),
        Err(e) => e,
    }
}

fn with_header(mut map: HeaderMap, name: &'static str, value: &str) -> HeaderMap {
    map.insert(name, HeaderValue::from_str(value).expect("value"));
    map
}

#[test]
fn vanilla_verifies() {
    let map = vanilla();
    let request = SignedRequest::new("GET", "/", &map, b"");
    let auth = parse(&request, "service", at((12, 36, 0))).expect("parses");
    assert_eq!(auth.access_key_id(), "AKIDEXAMPLE");
    assert_eq!(auth.region(), "us-east-1");
    assert_eq!(auth.service(), "service");
    assert_eq!(auth.request_time().to_string(), "20150830T123600Z");
    assert_eq!(auth.security_token(), None);
    assert!(!auth.is_presigned());
    assert_eq!(auth.verify(SECRET, &SigningKeyCache::new(4)), Ok(()));
}

#[test]
fn unsigned_requests_miss_the_authentication_token() {
    let now = at((12, 36, 0));
    let map = headers(&[("host", "h"), ("x-amz-date", "20150830T123600Z")]);
    assert_eq!(
        parse_err(&map, "/", "kms", now),
        AuthError::MissingAuthenticationToken
    );
    let map = with_header(map, "authorization", "Bearer abc");
    let err = parse_err(&map, "/", "kms", now);
    assert_eq!(err, AuthError::MissingAuthenticationToken);
    assert_eq!(err.to_string(), "Request is missing Authentication Token");
    assert_eq!(err.code(), "MissingAuthenticationTokenException");
}

#[test]
fn incomplete_header_lists_everything_missing() {
    let map = headers(&[("host", "h"), ("authorization", "AWS4-HMAC-SHA256")]);
    let err = parse_err(&map, "/", "kms", at((12, 36, 0)));
    assert_eq!(
        err.to_string(),
        "Authorization header requires 'Credential' parameter. Authorization header requires \
         'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. \
         Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    );
    assert_eq!(
        (err.code(), err.query_code()),
        ("IncompleteSignatureException", "IncompleteSignature")
    );
    assert_eq!((err.http_status(), err.query_http_status()), (400, 400));

    let map = with_header(
        vanilla(),
        "authorization",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=",
    );
    let err = parse_err(&map, "/", "service", at((12, 36, 0)));
    assert_eq!(
        err.to_string(),
        "Authorization header requires 'Signature' parameter."
    );
}

#[test]
fn a_component_without_equal_sign_is_malformed_and_not_echoed() {
    let value = format!(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, {GOOD_SIGNATURE}"
    );
    let map = with_header(vanilla(), "authorization", &value);
    let err = parse_err(&map, "/", "service", at((12, 36, 0)));
    assert_eq!(err, AuthError::MalformedAuthorization);
    assert!(!err.to_string().contains(GOOD_SIGNATURE));
}

#[test]
fn malformed_dates_are_reported_as_aws_does() {
    let map = with_header(vanilla(), "x-amz-date", "201");
    let err = parse_err(&map, "/", "service", at((12, 36, 0)));
    assert_eq!(
        err.to_string(),
        "Date must be in ISO-8601 'basic format'. Got '201'. See http://en.wikipedia.org/wiki/ISO_8601"
    );
}

#[test]
fn expired_and_future_signatures_are_reported_with_the_times() {
    let map = vanilla();
    let err = parse_err(&map, "/", "service", at((12, 56, 0)));
    assert_eq!(
        err.to_string(),
        "Signature expired: 20150830T123600Z is now earlier than 20150830T124100Z (20150830T125600Z - 15 min.)"
    );
    assert_eq!(
        (err.code(), err.query_code()),
        ("InvalidSignatureException", "SignatureDoesNotMatch")
    );
    assert_eq!((err.http_status(), err.query_http_status()), (400, 403));

    let map = with_header(vanilla(), "x-amz-date", "20150830T130000Z");
    let err = parse_err(&map, "/", "service", at((12, 26, 0)));
    assert_eq!(
        err.to_string(),
        "Signature not yet current: 20150830T130000Z is still later than 20150830T124100Z (20150830T122600Z + 15 min.)"
    );
}

#[test]
fn fifteen_minutes_either_way_is_still_accepted() {
    let map = vanilla();
    let request = SignedRequest::new("GET", "/", &map, b"");
    for now in [
        at((12, 21, 0)),
        at((12, 51, 0)),
        at((12, 51, 0)) + Duration::from_millis(999),
    ] {
        assert!(parse(&request, "service", now).is_ok());
    }
    assert!(parse(&request, "service", at((12, 51, 1))).is_err());
    assert!(parse(&request, "service", at((12, 20, 59))).is_err());
}

#[test]
fn host_must_be_signed() {
    let value = authorization(
        "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request",
        "x-amz-date",
        GOOD_SIGNATURE,
    );
    let map = with_header(vanilla(), "authorization", &value);
    let err = parse_err(&map, "/", "service", at((12, 36, 0)));
    assert_eq!(err, AuthError::HostNotSigned);
    assert_eq!(
        err.to_string(),
        "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
    );

    // Signed-header names are case-insensitive.
    let value = authorization(
        "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request",
        "Host;X-Amz-Date",
        GOOD_SIGNATURE,
    );
    let map = with_header(vanilla(), "authorization", &value);
    let request = SignedRequest::new("GET", "/", &map, b"");
    let auth = parse(&request, "service", at((12, 36, 0))).expect("parses");
    assert_eq!(auth.verify(SECRET, &SigningKeyCache::new(4)), Ok(()));
}

#[test]
fn other_algorithms_are_unsupported() {
    for algorithm in ["AWS4-HMAC-SHA1", "AWS4-ECDSA-P256-SHA256"] {
        let value = format!(
            "{algorithm} Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature={GOOD_SIGNATURE}"
        );
        let map = with_header(vanilla(), "authorization", &value);
        let err = parse_err(&map, "/", "service", at((12, 36, 0)));
        assert_eq!(
            err.to_string(),
            format!("Unsupported AWS 'algorithm': '{algorithm}' (only AWS4-HMAC-SHA256 for now). ")
        );
    }
}

#[test]
fn credentials_need_five_elements() {
    let value = authorization("a/b/c/d", "host;x-amz-date", GOOD_SIGNATURE);
    let map = with_header(vanilla(), "authorization", &value);
    let err = parse_err(&map, "/", "service", at((12, 36, 0)));
    assert_eq!(
        err.to_string(),
        "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got 'a/b/c/d'"
    );
    // A trailing slash is ignored.
    let value = authorization(
        "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request/",
        "host;x-amz-date",
        GOOD_SIGNATURE,
    );
    let map = with_header(vanilla(), "authorization", &value);
    let request = SignedRequest::new("GET", "/", &map, b"");
    assert!(parse(&request, "service", at((12, 36, 0))).is_ok());
}

/// `foo` once passed as a region and went on into the request's scope (and its ARNs).
#[test]
fn scope_region_must_be_a_region_name() {
    for region in ["foo", "us-east-1a", "us-east", "local"] {
        let credential = format!("AKIDEXAMPLE/20150830/{region}/service/aws4_request");
        let value = authorization(&credential, "host;x-amz-date", GOOD_SIGNATURE);
        let map = with_header(vanilla(), "authorization", &value);
        let err = parse_err(&map, "/", "service", at((12, 36, 0)));
        assert_eq!(
            err.to_string(),
            format!("Credential should be scoped to a valid region, not '{region}'. "),
            "{region}"
        );
    }
}

#[test]
fn every_scope_mismatch_is_listed() {
    let value = authorization("AKIDEXAMPLE/b/C/d/e", "host;x-amz-date", GOOD_SIGNATURE);
    let map = with_header(vanilla(), "authorization", &value);
    let err = parse_err(&map, "/", "kms", at((12, 36, 0)));
    assert_eq!(
        err.to_string(),
        "Credential should be scoped to a valid region, not 'C'. Credential should be scoped to \
         correct service: 'kms'. Credential should be scoped with a valid terminator: \
         'aws4_request', not 'e'. Date in Credential scope does not match YYYYMMDD from ISO-8601 \
         version of date from HTTP: 'b' != '20150830', from '20150830T123600Z'."
    );
    assert_eq!(err.code(), "InvalidSignatureException");

    let err = parse_err(&vanilla(), "/", "kms", at((12, 36, 0)));
    assert_eq!(
        err.to_string(),
        "Credential should be scoped to correct service: 'kms'. "
    );
}

#[test]
fn the_date_header_stands_in_for_x_amz_date() {
    let mut map = headers(&[
        ("host", "example.amazonaws.com"),
        ("date", "Sun, 30 Aug 2015 12:36:00 GMT"),
    ]);
    let credential = "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";
    let placeholder = authorization(credential, "date;host", &"0".repeat(64));
    map.insert(
        "authorization",
        HeaderValue::from_str(&placeholder).expect("value"),
    );
    let string_to_sign = {
        let request = SignedRequest::new("GET", "/", &map, b"");
        let auth = parse(&request, "service", at((12, 36, 0))).expect("parses");
        assert_eq!(auth.request_time().to_string(), "20150830T123600Z");
        auth.string_to_sign().expect("string to sign")
    };
    assert!(string_to_sign.starts_with("AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/"));
    let signature = sign(&string_to_sign, "20150830", "us-east-1", "service");
    let map = with_header(
        map,
        "authorization",
        &authorization(credential, "date;host", &signature),
    );
    let request = SignedRequest::new("GET", "/", &map, b"");
    let auth = parse(&request, "service", at((12, 36, 0))).expect("parses");
    assert_eq!(auth.verify(SECRET, &SigningKeyCache::new(4)), Ok(()));

    let map = with_header(map, "date", "Sunday, 30-Aug-15 12:36:00 GMT");
    let err = parse_err(&map, "/", "service", at((12, 36, 0)));
    assert!(matches!(err, AuthError::MalformedDate { .. }));
}

fn sign(string_to_sign: &str, date: &str, region: &str, service: &str) -> String {
    let key = SigningKey::derive(SECRET, date, region, service);
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key.bytes()),
        string_to_sign.as_bytes(),
    );
    hex::encode(tag.as_ref())
}

/// Signs `map` (which must hold a placeholder Authorization) for `body`, as the caller
/// would, by computing the string to sign and replacing the signature.
fn signed_for(
    map: HeaderMap,
    target: &str,
    body: &[u8],
    credential: &str,
    signed: &str,
) -> HeaderMap {
    let string_to_sign = {
        let request = SignedRequest::new("POST", target, &map, body);
        let auth = parse(&request, "service", at((12, 36, 0))).expect("parses");
        auth.string_to_sign().expect("string to sign")
    };
    let signature = sign(&string_to_sign, "20150830", "us-east-1", "service");
    with_header(
        map,
        "authorization",
        &authorization(credential, signed, &signature),
    )
}

#[test]
fn x_amz_content_sha256_must_be_the_body_hash() {
    let body = b"Param1=value1";
    let hash = "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e";
    let credential = "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";
    let signed = "host;x-amz-content-sha256;x-amz-date";
    let base = headers(&[
        ("host", "example.amazonaws.com"),
        ("x-amz-date", "20150830T123600Z"),
        ("x-amz-content-sha256", hash),
        (
            "authorization",
            &authorization(credential, signed, &"0".repeat(64)),
        ),
    ]);
    let map = signed_for(base.clone(), "/", body, credential, signed);
    let cache = SigningKeyCache::new(4);
    let request = SignedRequest::new("POST", "/", &map, body);
    let auth = parse(&request, "service", at((12, 36, 0))).expect("parses");
    assert_eq!(auth.verify(SECRET, &cache), Ok(()));

    // Another body under the same, correctly signed header.
    let request = SignedRequest::new("POST", "/", &map, b"Param1=value2");
    let auth = parse(&request, "service", at((12, 36, 0))).expect("parses");
    assert_eq!(
        auth.verify(SECRET, &cache),
        Err(AuthError::SignatureDoesNotMatch)
    );

    // A correctly signed UNSIGNED-PAYLOAD is still refused: the body would be unsigned.
    let base = with_header(base, "x-amz-content-sha256", "UNSIGNED-PAYLOAD");
    let signed_headers: Vec<String> = signed.split(';').map(str::to_owned).collect();
    let canonical_request = super::canonical::canonical_request(&super::canonical::Inputs {
        method: "POST",
        path: "/",
        query: "",
        normalize_path: true,
        headers: &base,
        signed_headers: &signed_headers,
        skip_signature_param: false,
        payload_hash: "UNSIGNED-PAYLOAD",
    });
    let string_to_sign = super::canonical::string_to_sign(
        "20150830T123600Z",
        "20150830/us-east-1/service/aws4_request",
        &canonical_request,
    );
    let signature = sign(&string_to_sign, "20150830", "us-east-1", "service");
    let map = with_header(
        base,
        "authorization",
        &authorization(credential, signed, &signature),
    );
    let request = SignedRequest::new("POST", "/", &map, body);
    let auth = parse(&request, "service", at((12, 36, 0))).expect("parses");
    assert_eq!(
        auth.verify(SECRET, &cache),
        Err(AuthError::SignatureDoesNotMatch)
    );
}

#[test]
fn a_malformed_signature_fails_only_at_verify() {
    for signature in [&GOOD_SIGNATURE.to_uppercase(), &GOOD_SIGNATURE[..63], "zz"] {
        let value = authorization(
            "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request",
            "host;x-amz-date",
            signature,
        );
        let map = with_header(vanilla(), "authorization", &value);
        let request = SignedRequest::new("GET", "/", &map, b"");
        let auth = parse(&request, "service", at((12, 36, 0))).expect("parses");
        assert_eq!(
            auth.verify(SECRET, &SigningKeyCache::new(4)),
            Err(AuthError::SignatureDoesNotMatch)
        );
    }
}

#[test]
fn the_cache_serves_the_right_secret_only() {
    let map = vanilla();
    let request = SignedRequest::new("GET", "/", &map, b"");
    let auth = parse(&request, "service", at((12, 36, 0))).expect("parses");
    let cache = SigningKeyCache::new(4);
    assert_eq!(
        auth.verify(b"wrong", &cache),
        Err(AuthError::SignatureDoesNotMatch)
    );
    assert!(cache.is_empty(), "a failed verification caches nothing");
    assert_eq!(auth.verify(SECRET, &cache), Ok(()));
    assert_eq!(cache.len(), 1);
    assert_eq!(auth.verify(SECRET, &cache), Ok(()));
    assert_eq!(
        auth.verify(b"wrong", &cache),
        Err(AuthError::SignatureDoesNotMatch)
    );
    assert_eq!(cache.len(), 1);
}

#[test]
fn session_tokens_are_exposed_and_must_be_ascii() {
    let map = with_header(vanilla(), "x-amz-security-token", "FwoGZXIvYXdzEXAMPLE");
    let request = SignedRequest::new("GET", "/", &map, b"");
    let auth = parse(&request, "service", at((12, 36, 0))).expect("parses");
    assert_eq!(auth.security_token(), Some("FwoGZXIvYXdzEXAMPLE"));
    assert!(!format!("{auth:?}").contains("FwoGZXIvYXdzEXAMPLE"));
    assert!(!format!("{auth:?}").contains(GOOD_SIGNATURE));

    let mut map = vanilla();
    map.insert(
        "x-amz-security-token",
        HeaderValue::from_bytes(b"tok\xffen").expect("obs-text"),
    );
    assert_eq!(
        parse_err(&map, "/", "service", at((12, 36, 0))),
        AuthError::UnrecognizedClient
    );
}

#[test]
fn presigned_requests_need_their_parameters() {
    let map = headers(&[("host", "example.amazonaws.com")]);
    let err = parse_err(
        &map,
        "/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20150830T123600Z",
        "service",
        at((12, 36, 0)),
    );
    assert_eq!(
        err.to_string(),
        "AWS query-string parameters must include 'X-Amz-Credential'. AWS query-string parameters \
         must include 'X-Amz-Signature'. AWS query-string parameters must include \
         'X-Amz-SignedHeaders'. Re-examine the query-string parameters."
    );

    let both = with_header(vanilla(), "host", "example.amazonaws.com");
    let err = parse_err(
        &both,
        "/?X-Amz-Algorithm=AWS4-HMAC-SHA256",
        "service",
        at((12, 36, 0)),
    );
    assert_eq!(err, AuthError::AmbiguousSignatureLocation);
}

#[test]
fn presigned_requests_expire() {
    let map = headers(&[("host", "example.amazonaws.com")]);
    let target = |expires: &str| {
        format!(
            "/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host&X-Amz-Signature={GOOD_SIGNATURE}"
        )
    };
    let ok = target("60");
    let request = SignedRequest::new("GET", &ok, &map, b"");
    assert!(parse(&request, "service", at((12, 37, 0))).is_ok());
    assert_eq!(
        parse_err(&map, &ok, "service", at((12, 37, 1))),
        AuthError::PresignedRequestExpired
    );
    let err = parse_err(&map, &target("604801"), "service", at((12, 36, 0)));
    assert!(matches!(err, AuthError::MalformedExpires { .. }), "{err:?}");
    let err = parse_err(&map, &target("-1"), "service", at((12, 36, 0)));
    assert!(matches!(err, AuthError::MalformedExpires { .. }), "{err:?}");
}

#[test]
fn caller_decided_errors_have_aws_codes() {
    let err = AuthError::UnrecognizedClient;
    assert_eq!(
        err.to_string(),
        "The security token included in the request is invalid."
    );
    assert_eq!(
        (err.code(), err.query_code()),
        ("UnrecognizedClientException", "InvalidClientTokenId")
    );
    assert_eq!((err.http_status(), err.query_http_status()), (400, 403));
    let err = AuthError::ExpiredToken;
    assert_eq!(
        (err.code(), err.query_code()),
        ("ExpiredTokenException", "ExpiredToken")
    );
    let err = AuthError::SignatureDoesNotMatch;
    assert_eq!(
        err.to_string(),
        "The request signature we calculated does not match the signature you provided. Check \
         your AWS Secret Access Key and signing method. Consult the service documentation for \
         details."
    );
    assert_eq!(
        AuthError::MissingAuthenticationToken.query_http_status(),
        403
    );
}

proptest! {
    /// Nothing a client sends panics, and no error repeats the signature it was sent.
    #[test]
    fn arbitrary_requests_never_panic_nor_echo_the_signature(
        auth in prop::collection::vec(any::<u8>(), 0..200),
        auth_text in "(AWS4-HMAC-SHA256 )?((Credential|SignedHeaders|Signature|X)=?[ -~]{0,40}, ?){0,5}",
        date in prop::option::of("[0-9TZ]{0,18}|[ -~]{0,30}"),
        target in "[ -~]{0,60}",
        use_text in any::<bool>(),
        body in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        let mut map = HeaderMap::new();
        map.insert("host", HeaderValue::from_static("example.amazonaws.com"));
        let value = if use_text {
            HeaderValue::from_str(&format!("{auth_text}Signature={GOOD_SIGNATURE}")).ok()
        } else {
            HeaderValue::from_bytes(&auth).ok()
        };
        if let Some(value) = value {
            map.insert("authorization", value);
        }
        if let Some(date) = date.and_then(|d| HeaderValue::from_str(&d).ok()) {
            map.insert("x-amz-date", date);
        }
        let request = SignedRequest::new("POST", &target, &map, &body);
        let result = parse(&request, "service", at((12, 36, 0)))
            .and_then(|auth| auth.verify(SECRET, &SigningKeyCache::new(2)));
        if let Err(err) = result {
            prop_assert!(!err.to_string().contains(GOOD_SIGNATURE), "{}", err);
            prop_assert!(!format!("{err:?}").contains(GOOD_SIGNATURE), "{:?}", err);
        }
    }
}

#[test]
fn content_type_and_amz_headers_must_be_signed() {
    let at_time = at((12, 36, 0));
    for (name, value) in [
        ("x-amz-target", "TrentService.CreateKey"),
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-foo", "bar"),
    ] {
        let map = with_header(vanilla(), name, value);
        let err = parse_err(&map, "/", "service", at_time);
        assert_eq!(
            err,
            AuthError::HeadersNotSigned {
                headers: name.to_owned()
            }
        );
        assert_eq!(err.code(), "InvalidSignatureException");
        assert_eq!(err.query_code(), "SignatureDoesNotMatch");
        assert_eq!(
            err.to_string(),
            format!("There were headers present in the request which were not signed: {name}")
        );
    }
    let map = with_header(
        with_header(vanilla(), "x-amz-target", "T.X"),
        "content-type",
        "a/b",
    );
    assert_eq!(
        parse_err(&map, "/", "service", at_time).to_string(),
        "There were headers present in the request which were not signed: content-type, \
         x-amz-target"
    );
    // Headers outside the rule (and a session token, which a signer may add after
    // signing) stay allowed unsigned.
    let map = with_header(
        with_header(
            with_header(vanilla(), "user-agent", "ua"),
            "x-amzn-trace-id",
            "Root=1",
        ),
        "x-amz-security-token",
        "token",
    );
    let request = SignedRequest::new("GET", "/", &map, b"");
    assert!(parse(&request, "service", at_time).is_ok());
}
