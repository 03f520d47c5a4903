//! awsQuery requests (STS, IAM): form-encoded parameters with AWS's flattening rules.
//!
//! `Action=CreateUser&Version=2010-05-08&UserName=alice&Tags.member.1.Key=team` — lists are
//! `Name.member.N` (1-based), maps `Name.entry.N.key` / `Name.entry.N.value`, nested
//! structures `Name.Member`.
//!
//! The parameters are kept sorted, so that the questions decoding asks ("is there anything
//! under `Tags.member.7`?") are range lookups: a body of n parameters decodes in
//! O(n log n), however its lists are shaped.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::str::FromStr;

use super::error::ApiError;
use super::types::{Blob, SensitiveBlob, SensitiveString, Timestamp, decode_base64};

/// The decoded parameters of one awsQuery request.
#[derive(Debug, Default)]
pub struct QueryParams {
    params: BTreeMap<String, String>,
}

impl QueryParams {
    /// Parses a form-encoded body (or query string). Later duplicates win.
    pub fn parse(body: &[u8]) -> Self {
        let params = form_urlencoded::parse(body).into_owned().collect();
        Self { params }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    pub fn action(&self) -> Option<&str> {
        self.get("Action")
    }

    pub fn version(&self) -> Option<&str> {
        self.get("Version")
    }

    pub fn string(&self, key: &str) -> Option<String> {
        self.get(key).map(str::to_owned)
    }

    pub fn sensitive_string(&self, key: &str) -> Option<SensitiveString> {
        self.get(key).map(|v| SensitiveString::new(v.to_owned()))
    }

    pub fn number<T: FromStr>(&self, key: &str) -> Result<Option<T>, ApiError> {
        self.get(key)
            .map(|v| v.trim().parse::<T>().map_err(|_| malformed(key)))
            .transpose()
    }

    pub fn boolean(&self, key: &str) -> Result<Option<bool>, ApiError> {
        self.get(key)
            .map(|v| match v.trim() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(malformed(key)),
            })
            .transpose()
    }

    pub fn timestamp(&self, key: &str) -> Result<Option<Timestamp>, ApiError> {
        self.get(key)
            .map(|v| {
                Timestamp::parse_iso8601(v)
                    .or_else(|| {
                        v.parse::<f64>()
                            .ok()
                            .map(|s| Timestamp::from_millis((s * 1000.0) as i64))
                    })
                    .ok_or_else(|| malformed(key))
            })
            .transpose()
    }

    pub fn blob(&self, key: &str) -> Result<Option<Blob>, ApiError> {
        self.get(key)
            .map(|v| {
                decode_base64(v)
                    .map(Blob::new)
                    .ok_or_else(|| malformed(key))
            })
            .transpose()
    }

    pub fn sensitive_blob(&self, key: &str) -> Result<Option<SensitiveBlob>, ApiError> {
        self.get(key)
            .map(|v| {
                decode_base64(v)
                    .map(SensitiveBlob::new)
                    .ok_or_else(|| malformed(key))
            })
            .transpose()
    }

    /// The number of elements of the list at `key` (`key.member.1`, `key.member.2`, ...), or
    /// `None` when the list is absent. `key=` alone is an empty list.
    pub fn list_len(&self, key: &str) -> Option<usize> {
        let mut n = 0;
        while self.has_prefix(&format!("{key}.member.{}", n + 1)) {
            n += 1;
        }
        if n == 0 && !self.params.contains_key(key) {
            return None;
        }
        Some(n)
    }

    /// The number of entries of the map at `key` (`key.entry.N.key`), or `None`.
    pub fn map_len(&self, key: &str) -> Option<usize> {
        let mut n = 0;
        while self
            .params
            .contains_key(&format!("{key}.entry.{}.key", n + 1))
        {
            n += 1;
        }
        if n == 0 && !self.params.contains_key(key) {
            return None;
        }
        Some(n)
    }

    /// Whether any parameter is `prefix` or lies under `prefix.`: two lookups in the sorted
    /// keys, since every key under `prefix.` sorts at or after `prefix.` itself.
    pub fn has_prefix(&self, prefix: &str) -> bool {
        if self.params.contains_key(prefix) {
            return true;
        }
        let under = format!("{prefix}.");
        self.params
            .range::<str, _>((Bound::Included(under.as_str()), Bound::Unbounded))
            .next()
            .is_some_and(|(k, _)| k.starts_with(&under))
    }
}

fn malformed(key: &str) -> ApiError {
    ApiError::serialization(format!("The value of the parameter {key} is malformed."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_maps() {
        let q = QueryParams::parse(
            b"Action=X&Tags.member.1.Key=a&Tags.member.2.Key=b&M.entry.1.key=k&M.entry.1.value=v&E=",
        );
        assert_eq!(q.list_len("Tags"), Some(2));
        assert_eq!(q.map_len("M"), Some(1));
        assert_eq!(q.list_len("E"), Some(0));
        assert_eq!(q.list_len("Nope"), None);
        assert!(q.has_prefix("Tags.member.1"));
        assert!(!q.has_prefix("Tag"));
    }

    #[test]
    fn prefixes_are_whole_segments() {
        let q = QueryParams::parse(b"A.member.10=x&A.member.1-=y&B=z&B.x=w&C.member.2.K=v");
        assert!(!q.has_prefix("A.member.1"));
        assert!(q.has_prefix("A.member.10"));
        assert!(q.has_prefix("A"));
        assert!(q.has_prefix("A.member"));
        assert!(q.has_prefix("A.member.1-"));
        assert!(q.has_prefix("B"));
        assert!(q.has_prefix("B.x"));
        assert!(!q.has_prefix("B.x.y"));
        assert!(q.has_prefix("C.member.2"));
        assert_eq!(q.list_len("A"), None, "a list starts at member.1");
        assert_eq!(q.list_len("B"), Some(0));
        assert_eq!(q.list_len("C"), None);
    }

    /// A 384 KiB body of 25,000 list members once cost ~10^9 key comparisons (every
    /// `has_prefix` scanned every key, once per index); now each is a range lookup.
    #[test]
    fn a_25000_member_list_decodes_in_order() {
        let n = 25_000;
        let body = (1..=n)
            .map(|i| format!("Tags.member.{i}.Key=k{i}&Tags.member.{i}.Value=v{i}"))
            .collect::<Vec<_>>()
            .join("&");
        let q = QueryParams::parse(body.as_bytes());
        assert_eq!(q.list_len("Tags"), Some(n));
        for i in 1..=n {
            assert!(q.has_prefix(&format!("Tags.member.{i}")));
            assert_eq!(
                q.get(&format!("Tags.member.{i}.Key")),
                Some(format!("k{i}").as_str())
            );
        }
        assert!(!q.has_prefix(&format!("Tags.member.{}", n + 1)));
    }
}
