//! The canonical request and the string to sign, as the SigV4 specification builds them
//! and as AWS's own signers (aws-sigv4, botocore) do for every service but S3:
//!
//! ```text
//! METHOD \n canonical URI \n canonical query \n (name:values \n)* \n signed;headers \n payload hash
//! ```
//!
//! - The canonical URI is the path as it came on the wire (still percent-encoded), with dot
//!   segments and empty segments removed (RFC 3986 §5.2.4, the way aws-sigv4 does it), then
//!   percent-encoded once more: every byte but `A-Za-z0-9-._~` and `/` becomes `%XX`. So a
//!   `%3A` on the wire is `%253A` in the canonical URI ("double encoding"), and a raw UTF-8
//!   or space byte is encoded once. S3 skips the normalisation; see
//!   [`super::SignedRequest::without_path_normalization`].
//! - The canonical query decodes each `name=value` pair (`+` is a space, as in aws-sigv4's
//!   `form_urlencoded`), re-encodes both with the unreserved set only, sorts the pairs by
//!   name then value, and joins them with `&`. A presigned request's `X-Amz-Signature` is
//!   left out.
//! - Each signed header is written lowercase with all its values, trimmed of spaces, runs of
//!   spaces collapsed to one, joined with `,` in the order they came.

use std::fmt::Write as _;

use http::HeaderMap;

use super::ALGORITHM;

/// Everything the canonical request needs besides the request itself.
pub(super) struct Inputs<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub normalize_path: bool,
    pub headers: &'a HeaderMap,
    pub signed_headers: &'a [String],
    /// Leave `X-Amz-Signature` out of the canonical query (presigned requests).
    pub skip_signature_param: bool,
    pub payload_hash: &'a str,
}

pub(super) fn canonical_request(inputs: &Inputs<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(inputs.method.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_uri(inputs.path, inputs.normalize_path).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_query(inputs.query, inputs.skip_signature_param).as_bytes());
    out.push(b'\n');
    for name in inputs.signed_headers {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        for (i, value) in inputs.headers.get_all(name.as_str()).iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_trimmed(&mut out, value.as_bytes());
        }
        out.push(b'\n');
    }
    out.push(b'\n');
    for (i, name) in inputs.signed_headers.iter().enumerate() {
        if i > 0 {
            out.push(b';');
        }
        out.extend_from_slice(name.as_bytes());
    }
    out.push(b'\n');
    out.extend_from_slice(inputs.payload_hash.as_bytes());
    out
}

/// `AWS4-HMAC-SHA256 \n time \n scope \n hex(SHA-256(canonical request))`.
pub(super) fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical_request);
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(digest.as_ref())
    )
}

/// The query's `name=value` pairs, percent-decoded (`+` as space), empty pairs skipped.
pub(super) fn query_pairs(query: &str) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
}

fn canonical_uri(path: &str, normalize: bool) -> String {
    let mut out = String::with_capacity(path.len() + 8);
    if normalize {
        percent_encode(normalize_path(path).as_bytes(), true, &mut out);
    } else if path.is_empty() {
        out.push('/');
    } else {
        percent_encode(path.as_bytes(), true, &mut out);
    }
    out
}

/// Removes `.` and `..` segments and empty segments, keeping a trailing slash; always
/// absolute. The same algorithm as aws-sigv4's `normalize_uri_path`.
fn normalize_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    let trailing_slash = ["/", "/.", "/..", "/./", "/../"]
        .iter()
        .any(|end| path.ends_with(end));
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    out
}

fn canonical_query(query: &str, skip_signature_param: bool) -> String {
    let mut pairs: Vec<(String, String)> = query_pairs(query)
        .filter(|(name, _)| !(skip_signature_param && name == b"X-Amz-Signature"))
        .map(|(name, value)| {
            let mut encoded_name = String::with_capacity(name.len());
            percent_encode(&name, false, &mut encoded_name);
            let mut encoded_value = String::with_capacity(value.len());
            percent_encode(&value, false, &mut encoded_value);
            (encoded_name, encoded_value)
        })
        .collect();
    pairs.sort_unstable();
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// Appends `value` without leading or trailing spaces and with runs of spaces collapsed.
/// Only spaces, as AWS's signers do: a tab inside a value is kept.
fn push_trimmed(out: &mut Vec<u8>, value: &[u8]) {
    let start = value.iter().position(|&b| b != b' ').unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|&b| b != b' ')
        .map_or(start, |i| i + 1);
    let mut previous_space = false;
    for &byte in value.get(start..end).unwrap_or_default() {
        let space = byte == b' ';
        if !(space && previous_space) {
            out.push(byte);
        }
        previous_space = space;
    }
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// Appends `bytes` to `out` with every byte but `A-Za-z0-9-._~` (and `/` when `keep_slash`)
/// written as `%XX`, uppercase: RFC 3986's unreserved set, as SigV4 encodes. A space is
/// `%20`, never `+`.
pub fn percent_encode(bytes: &[u8], keep_slash: bool, out: &mut String) {
    for &byte in bytes {
        if is_unreserved(byte) || (keep_slash && byte == b'/') {
            out.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{byte:02X}");
        }
    }
}

/// Decodes `%XX` and `+`; a `%` not followed by two hex digits stays as it is. Bytes, not
/// text: `form_urlencoded::parse` would turn an escape that is not UTF-8 (`%FF`) into
/// U+FFFD and so change the canonical query.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match (
                bytes.get(i + 1).and_then(hex_value),
                bytes.get(i + 2).and_then(hex_value),
            ) {
                (Some(high), Some(low)) => {
                    out.push((high << 4) | low);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    out
}

fn hex_value(digit: &u8) -> Option<u8> {
    char::from(*digit)
        .to_digit(16)
        .and_then(|v| u8::try_from(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_aws_sigv4() {
        for (path, expected) in [
            ("", "/"),
            ("/", "/"),
            ("//", "/"),
            ("/./", "/"),
            ("/example/..", "/"),
            ("/example1/example2/../..", "/"),
            ("/./example", "/example"),
            ("//example//", "/example/"),
            ("/a/b/.", "/a/b/"),
            ("/a/b/..", "/a/"),
            ("/../a", "/a"),
            ("a/b", "/a/b"),
            ("/a/%2E%2E/b", "/a/%2E%2E/b"),
        ] {
            assert_eq!(normalize_path(path), expected, "{path:?}");
        }
    }

    #[test]
    fn path_is_encoded_once_more() {
        assert_eq!(
            canonical_uri("/a%3Ab/c d/\u{1234}", true),
            "/a%253Ab/c%20d/%E1%88%B4"
        );
        assert_eq!(canonical_uri("/-._~AZaz09", true), "/-._~AZaz09");
        assert_eq!(canonical_uri("//a/./b", false), "//a/./b");
        assert_eq!(canonical_uri("", false), "/");
    }

    #[test]
    fn query_is_decoded_sorted_and_reencoded() {
        assert_eq!(canonical_query("b=2&a=1&a=0", false), "a=0&a=1&b=2");
        assert_eq!(
            canonical_query("key&empty=&&x+y=%7e%2F", false),
            "empty=&key=&x%20y=~%2F"
        );
        assert_eq!(canonical_query("a=%zz&b=%4", false), "a=%25zz&b=%254");
        assert_eq!(canonical_query("%E1%88%B4=1", false), "%E1%88%B4=1");
        assert_eq!(canonical_query("a=%FF%fe", false), "a=%FF%FE");
        assert_eq!(
            canonical_query("X-Amz-Signature=abc&X-Amz-Date=1", true),
            "X-Amz-Date=1"
        );
    }

    #[test]
    fn header_values_are_trimmed_and_collapsed() {
        let mut out = Vec::new();
        push_trimmed(&mut out, b"  a   b \t c  ");
        assert_eq!(out, b"a b \t c");
        let mut out = Vec::new();
        push_trimmed(&mut out, b"    ");
        assert!(out.is_empty());
    }
}
