//! SigV4 verification (`keyhold_proto::sigv4`): the `Authorization` header and the presigned
//! query parameters through `parse`, then the canonical request, the string to sign and
//! `verify`, and the wire error of every refusal.
//!
//! The input is an HTTP request as AWS's signing test suite writes it
//! (`crates/proto/tests/data/sigv4/*/*-signed-request.txt`): request line, headers, blank
//! line, body. The clock and secret are the suite's, so the seeds verify.

#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue};
use keyhold_proto::Protocol;
use keyhold_proto::sigv4::{self, AmzDate, SignedRequest, SigningKeyCache};
use libfuzzer_sys::fuzz_target;

/// 2015-08-30T12:36:00Z, the suite's clock.
const SUITE_TIME: u64 = 1_440_938_160;
const SECRET: &[u8] = b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

static CACHE: LazyLock<SigningKeyCache> = LazyLock::new(|| SigningKeyCache::new(16));

struct Raw {
    method: String,
    target: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// The suite's request format, read leniently: what is not a header is skipped.
fn parse_raw(data: &[u8]) -> Option<Raw> {
    let text = std::str::from_utf8(data).ok()?;
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let (method, target) = lines.next()?.split_once(' ')?;
    let target = target.strip_suffix(" HTTP/1.1").unwrap_or(target);
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.to_owned(), value.trim().to_owned()));
        }
    }
    let mut headers = HeaderMap::new();
    for (name, value) in fields {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(name, value);
        }
    }
    Some(Raw {
        method: method.to_owned(),
        target: target.to_owned(),
        headers,
        body: body.as_bytes().to_vec(),
    })
}

fn check(request: &SignedRequest<'_>, now: SystemTime) {
    match sigv4::parse(request, "service", now) {
        Ok(auth) => {
            let _ = auth.canonical_request();
            let _ = auth.string_to_sign();
            let _ = (
                auth.region(),
                auth.service(),
                auth.request_time().date_stamp(),
            );
            assert_eq!(auth.service(), "service");
            if let Err(e) = auth.verify(SECRET, &CACHE) {
                wire(&e);
            }
            // A wrong secret never verifies.
            assert!(auth.verify(b"not the secret", &CACHE).is_err());
        }
        Err(e) => wire(&e),
    }
}

fn wire(e: &sigv4::AuthError) {
    let _ = (
        e.code(),
        e.query_code(),
        e.http_status(),
        e.query_http_status(),
    );
    let json = e.to_api_error(Protocol::Json).to_json("message");
    assert!(serde_json::from_slice::<serde_json::Value>(&json).is_ok());
    let _ = e
        .to_api_error(Protocol::Query)
        .to_xml("https://sts.amazonaws.com/doc/2011-06-15/", "req");
}

fuzz_target!(|data: &[u8]| {
    let Some(raw) = parse_raw(data) else {
        return;
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(SUITE_TIME);
    let request = SignedRequest::new(&raw.method, &raw.target, &raw.headers, &raw.body);
    check(&request, now);
    check(&request.without_path_normalization(), now);

    for name in ["x-amz-date", "date"] {
        if let Some(value) = raw.headers.get(name).and_then(|v| v.to_str().ok()) {
            let _ = AmzDate::parse_basic(value).map(|d| d.date_stamp());
            let _ = AmzDate::parse_http_date(value).map(|d| d.to_system_time());
        }
    }
    let mut encoded = String::new();
    sigv4::percent_encode(raw.target.as_bytes(), true, &mut encoded);
});
