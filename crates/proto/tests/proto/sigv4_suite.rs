//! SigV4 verification against the AWS signing test suite (`tests/data/sigv4/`, see its
//! `PROVENANCE.md`) and against the official signer, aws-sigv4, as an oracle.
//!
//! For every vector: the signed request parses and verifies with the vector's credentials at
//! the vector's time; our canonical request and string to sign are the vector's; and any
//! change to the signature, the body, the method, the path, the query or a signed header
//! makes it fail.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_smithy_runtime_api::client::identity::Identity;
use http::{HeaderMap, HeaderName, HeaderValue};
use keyhold_proto::sigv4::{self, AuthError, SignedRequest, SigningKeyCache};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// The AWS signing test suite
// ---------------------------------------------------------------------------------------

/// Vectors, or signature locations of vectors, that are not run, and why.
const SKIPPED: &[(&str, Location, &str)] = &[(
    "post-sts-header-after",
    Location::Query,
    "the signer appends X-Amz-Security-Token to the query after signing; a verifier cannot \
     tell an appended parameter from a signed one, and the spec (like AWS) canonicalises \
     every query parameter but X-Amz-Signature",
)];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Location {
    Header,
    Query,
}

impl Location {
    fn prefix(self) -> &'static str {
        match self {
            Self::Header => "header",
            Self::Query => "query",
        }
    }
}

#[derive(serde::Deserialize)]
struct Context {
    credentials: ContextCredentials,
    normalize: bool,
    region: String,
    service: String,
    timestamp: String,
}

#[derive(serde::Deserialize)]
struct ContextCredentials {
    access_key_id: String,
    secret_access_key: String,
}

/// The two vectors aws-sigv4 added without a `context.json`; their values come from the
/// aws-sigv4 tests that use them (`test_sign_url_escape`, `test_double_url_encode`).
fn fallback_context(name: &str) -> Option<Context> {
    let (region, service, timestamp, akid, secret) = match name {
        "double-encode-path" => (
            "us-east-1",
            "service",
            "2015-08-30T12:36:00Z",
            "ANOTREAL",
            "notrealrnrELgWzOk3IfjzDKtFBhDby",
        ),
        "double-url-encode" => (
            "us-east-2",
            "lambda",
            "2021-05-11T15:40:45Z",
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        ),
        _ => return None,
    };
    Some(Context {
        credentials: ContextCredentials {
            access_key_id: akid.into(),
            secret_access_key: secret.into(),
        },
        normalize: true,
        region: region.into(),
        service: service.into(),
        timestamp: timestamp.into(),
    })
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sigv4")
}

fn vector_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data_dir())
        .expect("tests/data/sigv4 exists")
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().is_dir())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

fn read(name: &str, file: &str) -> Option<String> {
    std::fs::read_to_string(data_dir().join(name).join(file))
        .ok()
        .map(|text| text.replace("\r\n", "\n"))
}

fn context(name: &str) -> Context {
    match read(name, "context.json") {
        Some(json) => serde_json::from_str(&json).expect("context.json parses"),
        None => fallback_context(name).expect("a context for every vector"),
    }
}

fn system_time(rfc3339: &str) -> SystemTime {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .expect("RFC 3339 timestamp");
    SystemTime::from(t)
}

/// An HTTP request as the suite writes it: request line, headers (a line starting with
/// whitespace continues the previous value, obs-fold, unfolded with one space as RFC 9112
/// allows), a blank line, the body.
#[derive(Clone, Debug)]
struct RawRequest {
    method: String,
    target: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl RawRequest {
    fn parse(text: &str) -> Self {
        let (head, body) = match text.split_once("\n\n") {
            Some((head, body)) => (head, body),
            None => (text.trim_end_matches('\n'), ""),
        };
        let mut lines = head.lines();
        let request_line = lines.next().expect("request line");
        let (method, target) = request_line.split_once(' ').expect("method and target");
        let target = target.strip_suffix(" HTTP/1.1").unwrap_or(target);

        let mut fields: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                let last = fields.last_mut().expect("a continuation follows a header");
                last.1.push(' ');
                last.1.push_str(line.trim());
            } else if let Some((name, value)) = line.split_once(':') {
                fields.push((name.to_owned(), value.trim().to_owned()));
            }
        }
        let mut headers = HeaderMap::new();
        for (name, value) in fields {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_bytes(value.as_bytes()).expect("header value"),
            );
        }
        Self {
            method: method.to_owned(),
            target: target.to_owned(),
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    fn signed(&self, normalize: bool) -> SignedRequest<'_> {
        let request = SignedRequest::new(&self.method, &self.target, &self.headers, &self.body);
        match normalize {
            true => request,
            false => request.without_path_normalization(),
        }
    }
}

struct Case {
    name: String,
    location: Location,
    context: Context,
    now: SystemTime,
    request: RawRequest,
}

impl Case {
    fn load(name: &str, location: Location) -> Option<Self> {
        let signed = read(name, &format!("{}-signed-request.txt", location.prefix()))?;
        let context = context(name);
        let now = system_time(&context.timestamp);
        Some(Self {
            name: name.to_owned(),
            location,
            context,
            now,
            request: RawRequest::parse(&signed),
        })
    }

    fn check(&self, request: &RawRequest) -> Result<(), AuthError> {
        self.check_with(request, &self.context.service, self.now, self.secret())
    }

    fn check_with(
        &self,
        request: &RawRequest,
        service: &str,
        now: SystemTime,
        secret: &[u8],
    ) -> Result<(), AuthError> {
        let signed = request.signed(self.context.normalize);
        let auth = sigv4::parse(&signed, service, now)?;
        assert_eq!(auth.access_key_id(), self.context.credentials.access_key_id);
        assert_eq!(auth.region(), self.context.region);
        assert_eq!(auth.is_presigned(), self.location == Location::Query);
        auth.verify(secret, &CACHE)
    }

    fn secret(&self) -> &[u8] {
        self.context.credentials.secret_access_key.as_bytes()
    }
}

static CACHE: LazyLock<SigningKeyCache> = LazyLock::new(SigningKeyCache::default);

fn all_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for name in vector_names() {
        for location in [Location::Header, Location::Query] {
            if SKIPPED.iter().any(|(n, l, _)| *n == name && *l == location) {
                continue;
            }
            cases.extend(Case::load(&name, location));
        }
    }
    cases
}

#[test]
fn every_vector_is_run_or_skipped_with_a_reason() {
    let names = vector_names();
    assert!(names.len() >= 40, "found only {} vectors", names.len());
    let run: BTreeSet<(String, &str)> = all_cases()
        .into_iter()
        .map(|c| (c.name, c.location.prefix()))
        .collect();
    // Every vector has a header variant; all but the two old-format ones a query variant.
    assert_eq!(run.len(), names.len() * 2 - 2 - SKIPPED.len());
    for name in &names {
        assert!(
            run.contains(&(name.clone(), "header")),
            "{name}: header vector not run"
        );
    }
    for (name, location, reason) in SKIPPED {
        assert!(
            names.iter().any(|n| n == name),
            "skip list names a missing vector {name}"
        );
        assert!(!reason.is_empty());
        assert!(!run.contains(&((*name).to_owned(), location.prefix())));
    }
}

#[test]
fn vectors_verify() {
    for case in all_cases() {
        let result = case.check(&case.request);
        assert_eq!(result, Ok(()), "{} ({:?})", case.name, case.location);
    }
}

#[test]
fn vectors_canonical_request_and_string_to_sign_match() {
    for case in all_cases() {
        let signed = case.request.signed(case.context.normalize);
        let auth = sigv4::parse(&signed, &case.context.service, case.now)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let prefix = case.location.prefix();
        let canonical = String::from_utf8(auth.canonical_request().expect("canonical request"))
            .expect("the suite's canonical requests are UTF-8");
        let expected = read(&case.name, &format!("{prefix}-canonical-request.txt"))
            .expect("canonical request file");
        if case.name == "double-encode-path" {
            // The file's x-amz-date line is from another request (20210511T154045Z, while
            // the signed request says 20150830T123600Z); the rest must match.
            let ours: Vec<&str> = canonical
                .lines()
                .filter(|l| !l.starts_with("x-amz-date:"))
                .collect();
            let theirs: Vec<&str> = expected
                .lines()
                .filter(|l| !l.starts_with("x-amz-date:"))
                .collect();
            assert_eq!(ours, theirs, "{}", case.name);
        } else {
            assert_eq!(canonical, expected.trim_end(), "{} ({prefix})", case.name);
        }
        if let Some(expected) = read(&case.name, &format!("{prefix}-string-to-sign.txt")) {
            let string_to_sign = auth.string_to_sign().expect("string to sign");
            assert_eq!(
                string_to_sign,
                expected.trim_end(),
                "{} ({prefix})",
                case.name
            );
        }
        if let Some(expected) = read(&case.name, &format!("{prefix}-signature.txt")) {
            let sent = signature_of(&case.request, case.location).expect("a signature");
            assert_eq!(
                sent,
                expected.trim(),
                "{} ({prefix}): the vector is consistent",
                case.name
            );
        }
    }
}

#[test]
fn vectors_reject_a_changed_signature() {
    for case in all_cases() {
        for position in [0, 31, 63] {
            let tampered = with_signature_nibble_flipped(&case.request, case.location, position);
            assert_eq!(
                case.check(&tampered),
                Err(AuthError::SignatureDoesNotMatch),
                "{} ({:?}) digit {position}",
                case.name,
                case.location
            );
        }
    }
}

#[test]
fn vectors_reject_a_changed_body_method_path_or_query() {
    for case in all_cases() {
        let mut body = case.request.clone();
        body.body.push(b'x');
        assert!(case.check(&body).is_err(), "{}: body", case.name);

        let mut method = case.request.clone();
        method.method = if method.method == "GET" {
            "POST".into()
        } else {
            "GET".into()
        };
        assert!(case.check(&method).is_err(), "{}: method", case.name);

        let mut path = case.request.clone();
        path.target = match path.target.split_once('?') {
            Some((p, q)) => format!("{p}x?{q}"),
            None => format!("{}x", path.target),
        };
        assert!(case.check(&path).is_err(), "{}: path", case.name);

        let mut query = case.request.clone();
        query.target.push_str(if query.target.contains('?') {
            "&extra=1"
        } else {
            "?extra=1"
        });
        assert!(case.check(&query).is_err(), "{}: query", case.name);
    }
}

#[test]
fn vectors_reject_a_changed_signed_header() {
    for case in all_cases() {
        let signed = case.request.signed(case.context.normalize);
        let auth = sigv4::parse(&signed, &case.context.service, case.now).expect("parses");
        for name in auth.signed_headers() {
            let mut tampered = case.request.clone();
            let header = HeaderName::from_bytes(name.as_bytes()).expect("signed header name");
            let mut values: Vec<Vec<u8>> = tampered
                .headers
                .get_all(&header)
                .iter()
                .map(|v| v.as_bytes().to_vec())
                .collect();
            match values.first_mut() {
                Some(first) => first.push(b'x'),
                None => values.push(b"added".to_vec()),
            }
            tampered.headers.remove(&header);
            for value in values {
                tampered.headers.append(
                    &header,
                    HeaderValue::from_bytes(&value).expect("header value"),
                );
            }
            assert!(
                case.check(&tampered).is_err(),
                "{}: header {name}",
                case.name
            );
        }
    }
}

#[test]
fn vectors_reject_a_wrong_secret_even_when_the_right_one_is_cached() {
    for case in all_cases() {
        assert_eq!(case.check(&case.request), Ok(()));
        let mut wrong = case.secret().to_vec();
        wrong.push(b'x');
        let result = case.check_with(&case.request, &case.context.service, case.now, &wrong);
        assert_eq!(
            result,
            Err(AuthError::SignatureDoesNotMatch),
            "{}",
            case.name
        );
    }
}

#[test]
fn vectors_reject_another_service_and_a_skewed_clock() {
    for case in all_cases() {
        let result = case.check_with(&case.request, "kms", case.now, case.secret());
        assert!(
            matches!(result, Err(AuthError::CredentialScope(ref m)) if m.expected_service.as_deref() == Some("kms")),
            "{}: {result:?}",
            case.name
        );
        let late = case.now + Duration::from_secs(16 * 60);
        let result = case.check_with(&case.request, &case.context.service, late, case.secret());
        assert!(
            matches!(result, Err(AuthError::SignatureExpired { .. })),
            "{}: {result:?}",
            case.name
        );
        let early = case.now - Duration::from_secs(16 * 60);
        let result = case.check_with(&case.request, &case.context.service, early, case.secret());
        assert!(
            matches!(result, Err(AuthError::SignatureNotYetCurrent { .. })),
            "{}: {result:?}",
            case.name
        );
    }
}

fn signature_of(request: &RawRequest, location: Location) -> Option<String> {
    match location {
        Location::Header => {
            let auth = request.headers.get("authorization")?.to_str().ok()?;
            let (_, signature) = auth.split_once("Signature=")?;
            Some(signature.trim().to_owned())
        }
        Location::Query => {
            let (_, query) = request.target.split_once('?')?;
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix("X-Amz-Signature="))
                .map(str::to_owned)
        }
    }
}

fn with_signature_nibble_flipped(
    request: &RawRequest,
    location: Location,
    position: usize,
) -> RawRequest {
    let signature = signature_of(request, location).expect("a signature");
    let mut flipped = signature.clone().into_bytes();
    if let Some(digit) = flipped.get_mut(position) {
        *digit = if *digit == b'0' { b'1' } else { b'0' };
    }
    let flipped = String::from_utf8(flipped).expect("hex");
    let mut tampered = request.clone();
    match location {
        Location::Header => {
            let auth = request
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .expect("auth");
            let value = auth.replace(&signature, &flipped);
            tampered.headers.insert(
                "authorization",
                HeaderValue::from_str(&value).expect("header value"),
            );
        }
        Location::Query => tampered.target = request.target.replace(&signature, &flipped),
    }
    tampered
}

// ---------------------------------------------------------------------------------------
// The official signer as an oracle
// ---------------------------------------------------------------------------------------

const HOST: &str = "kms.us-east-1.amazonaws.com";
const AKID: &str = "AKIDORACLE";
const SECRET: &str = "oracle/secret+key/0123456789abcdefghijklmn";

#[derive(Clone, Debug)]
struct Signed {
    method: String,
    target: String,
    headers: HeaderMap,
    body: Vec<u8>,
    now: SystemTime,
    region: String,
}

impl Signed {
    fn check(&self) -> Result<(), AuthError> {
        self.check_with("kms", self.now, SECRET.as_bytes())
    }

    fn check_with(&self, service: &str, now: SystemTime, secret: &[u8]) -> Result<(), AuthError> {
        let request = SignedRequest::new(&self.method, &self.target, &self.headers, &self.body);
        let auth = sigv4::parse(&request, service, now)?;
        assert_eq!(auth.access_key_id(), AKID);
        assert_eq!(auth.region(), self.region);
        auth.verify(secret, &CACHE)
    }
}

#[allow(clippy::too_many_arguments)]
fn sign_with_oracle(
    method: &str,
    path: &str,
    query: &[(String, String)],
    headers: &[(String, String)],
    body: &[u8],
    signing_time: SystemTime,
    region: &str,
    session_token: Option<&str>,
    presign_for: Option<Duration>,
) -> Signed {
    let mut target = path.to_owned();
    if !query.is_empty() {
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        for (name, value) in query {
            serializer.append_pair(name, value);
        }
        target.push('?');
        target.push_str(&serializer.finish());
    }
    let uri = format!("https://{HOST}{target}");
    let identity: Identity = Credentials::new(
        AKID,
        SECRET,
        session_token.map(str::to_owned),
        None,
        "oracle",
    )
    .into();
    let mut settings = SigningSettings::default();
    if let Some(expires) = presign_for {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(expires);
    }
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("kms")
        .time(signing_time)
        .settings(settings)
        .build()
        .expect("signing params")
        .into();
    let signable = SignableRequest::new(
        method,
        uri.clone(),
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .expect("signable request");
    let (instructions, _signature) = sign(signable, &params).expect("signs").into_parts();

    let mut request = http::Request::builder().method(method).uri(&uri);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let mut request = request.body(()).expect("request");
    instructions.apply_to_request_http1x(&mut request);
    // The HTTP client adds Host; the signer signed it.
    request
        .headers_mut()
        .insert(http::header::HOST, HeaderValue::from_static(HOST));
    let target = request
        .uri()
        .path_and_query()
        .map_or("/".to_owned(), |pq| pq.as_str().to_owned());
    Signed {
        method: method.to_owned(),
        target,
        headers: request.headers().clone(),
        body: body.to_vec(),
        now: signing_time,
        region: region.to_owned(),
    }
}

fn path_strategy() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        "[a-zA-Z0-9._~!$'()*+,;=:@-]{0,8}",
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just(String::new()),
        "[a-z]{1,3}%[0-9A-F]{2}[a-z]{0,3}",
    ];
    prop::collection::vec(segment, 0..5).prop_map(|segments| format!("/{}", segments.join("/")))
}

fn header_strategy() -> impl Strategy<Value = (String, String)> {
    let name = "(x-[a-z0-9-]{1,10}|content-type|accept|x-amz-target|x-amz-user-agent|user-agent)";
    (name, "[ -~]{0,24}").prop_map(|(n, v)| (n, v))
}

fn time_strategy() -> impl Strategy<Value = SystemTime> {
    // 2001 .. 2100, whole seconds.
    (1_000_000_000u64..4_100_000_000).prop_map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn oracle_signed_requests_verify_and_any_change_fails(
        method in prop::sample::select(vec!["GET", "POST", "PUT", "DELETE"]),
        path in path_strategy(),
        query in prop::collection::vec(("[^&=]{0,6}", "\\PC{0,8}"), 0..4),
        headers in prop::collection::vec(header_strategy(), 0..5),
        body in prop::collection::vec(any::<u8>(), 0..200),
        signing_time in time_strategy(),
        region in prop::sample::select(vec!["us-east-1", "eu-central-2", "ap-southeast-3"]),
        session_token in prop::option::of("[A-Za-z0-9/+=]{16,64}"),
        presign in prop::option::of(60u64..3600),
        skew in -890i64..890,
    ) {
        let signed = sign_with_oracle(
            method,
            &path,
            &query,
            &headers,
            &body,
            signing_time,
            region,
            session_token.as_deref(),
            presign.map(Duration::from_secs),
        );
        // The server's clock, within the skew (and a presigned request's lifetime).
        let skew = match presign {
            Some(expires) => skew.clamp(0, i64::try_from(expires).unwrap_or(0)),
            None => skew,
        };
        let now = if skew >= 0 {
            signing_time + Duration::from_secs(skew.unsigned_abs())
        } else {
            signing_time - Duration::from_secs(skew.unsigned_abs())
        };
        prop_assert_eq!(signed.check_with("kms", now, SECRET.as_bytes()), Ok(()));
        // Again, through the cache.
        prop_assert_eq!(signed.check(), Ok(()));

        let location = if presign.is_some() { Location::Query } else { Location::Header };
        let raw = RawRequest {
            method: signed.method.clone(),
            target: signed.target.clone(),
            headers: signed.headers.clone(),
            body: signed.body.clone(),
        };
        let flipped = with_signature_nibble_flipped(&raw, location, 7);
        let tampered = Signed { target: flipped.target, headers: flipped.headers, ..signed.clone() };
        prop_assert_eq!(tampered.check(), Err(AuthError::SignatureDoesNotMatch));

        let mut tampered = signed.clone();
        tampered.body.push(0);
        prop_assert!(tampered.check().is_err());

        let mut tampered = signed.clone();
        tampered.method = if method == "PATCH" { "GET".into() } else { "PATCH".into() };
        prop_assert!(tampered.check().is_err());

        let mut tampered = signed.clone();
        tampered.target = match tampered.target.split_once('?') {
            Some((p, q)) => format!("{p}x?{q}"),
            None => format!("{}x", tampered.target),
        };
        prop_assert!(tampered.check().is_err());

        let mut tampered = signed.clone();
        tampered.target.push_str(if tampered.target.contains('?') { "&zz=1" } else { "?zz=1" });
        prop_assert!(tampered.check().is_err());

        let request = SignedRequest::new(&signed.method, &signed.target, &signed.headers, &signed.body);
        let auth = sigv4::parse(&request, "kms", now).expect("parses");
        for name in auth.signed_headers() {
            let mut tampered = signed.clone();
            let header = HeaderName::from_bytes(name.as_bytes()).expect("header name");
            let first = tampered.headers.get(&header).map(|v| v.as_bytes().to_vec()).unwrap_or_default();
            let mut changed = first.clone();
            changed.push(b'x');
            let mut rest: Vec<HeaderValue> = tampered.headers.get_all(&header).iter().skip(1).cloned().collect();
            tampered.headers.remove(&header);
            tampered.headers.append(&header, HeaderValue::from_bytes(&changed).expect("value"));
            for value in rest.drain(..) {
                tampered.headers.append(&header, value);
            }
            prop_assert!(tampered.check().is_err(), "header {}", name);
        }

        let wrong = format!("{SECRET}x");
        prop_assert_eq!(
            signed.check_with("kms", now, wrong.as_bytes()),
            Err(AuthError::SignatureDoesNotMatch)
        );
        let result = signed.check_with("secretsmanager", now, SECRET.as_bytes());
        prop_assert!(matches!(result, Err(AuthError::CredentialScope(_))), "{:?}", result);
        let late = signing_time + Duration::from_secs(16 * 60);
        let result = signed.check_with("kms", late, SECRET.as_bytes());
        prop_assert!(matches!(result, Err(AuthError::SignatureExpired { .. })), "{:?}", result);
    }
}
