//! The canonical form of a KMS encryption context.
//!
//! The context is authenticated (as AAD) but not stored in the ciphertext, so decrypt must
//! rebuild exactly the same bytes from whatever map the caller sends. The canonical form is:
//!
//! ```text
//! for each entry, sorted by key bytes:  len(k) ‖ k ‖ len(v) ‖ v     (len = u32 big-endian)
//! ```
//!
//! - **Order-independent:** a JSON object has no order; sorting by key bytes gives every map
//!   one encoding.
//! - **Unambiguous:** length prefixes mean no two different maps share an encoding (with plain
//!   concatenation `{"ab": "c"}` and `{"a": "bc"}` would collide).
//! - The empty context encodes to no bytes at all.

use std::collections::BTreeMap;

/// An encryption context in canonical form, ready to be used as AAD.
///
/// Built from `(key, value)` pairs in any order; if a key repeats, the last value wins (a
/// JSON map cannot repeat keys, so the server never hits this).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EncryptionContext {
    canonical: Vec<u8>,
}

impl EncryptionContext {
    /// The empty context (encrypt/decrypt without `EncryptionContext`).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Canonicalizes `pairs`, for example `ctx.iter().map(|(k, v)| (k.as_str(), v.as_str()))`.
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        // `str`'s `Ord` is lexicographic on bytes, which is the order the format requires.
        let sorted: BTreeMap<&str, &str> = pairs.into_iter().collect();
        let mut canonical = Vec::new();
        for (key, value) in sorted {
            put_len_prefixed(&mut canonical, key.as_bytes());
            put_len_prefixed(&mut canonical, value.as_bytes());
        }
        Self { canonical }
    }

    /// The canonical bytes (empty for the empty context).
    pub fn canonical_bytes(&self) -> &[u8] {
        &self.canonical
    }

    pub fn is_empty(&self) -> bool {
        self.canonical.is_empty()
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for EncryptionContext {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(pairs: I) -> Self {
        Self::new(pairs)
    }
}

/// The context is not secret, but it can be sensitive metadata; print it as the canonical
/// length only and let the server decide what to log.
impl std::fmt::Debug for EncryptionContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "EncryptionContext({} canonical bytes)",
            self.canonical.len()
        )
    }
}

/// Appends `u32-be(len(bytes)) ‖ bytes`. Shared by the context and the seal's AAD.
pub(crate) fn put_len_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len())
        .expect("length-prefixed fields are < 4 GiB: request bodies are capped far below that");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_context_is_empty_bytes() {
        assert_eq!(EncryptionContext::empty().canonical_bytes(), b"");
        assert_eq!(EncryptionContext::new([]).canonical_bytes(), b"");
        assert!(EncryptionContext::empty().is_empty());
    }

    #[test]
    fn canonical_bytes_match_the_documented_layout() {
        let ctx = EncryptionContext::new([("purpose", "test"), ("a", "")]);
        let expected: &[u8] = b"\0\0\0\x01a\0\0\0\0\0\0\0\x07purpose\0\0\0\x04test";
        assert_eq!(ctx.canonical_bytes(), expected);
    }

    #[test]
    fn order_of_pairs_does_not_matter() {
        let a = EncryptionContext::new([("x", "1"), ("y", "2"), ("z", "3")]);
        let b = EncryptionContext::new([("z", "3"), ("x", "1"), ("y", "2")]);
        assert_eq!(a, b);
    }

    #[test]
    fn sorts_by_bytes_not_by_chars_or_case() {
        // 'B' (0x42) < 'a' (0x61) < 'é' (0xc3 0xa9).
        let ctx = EncryptionContext::new([("é", ""), ("a", ""), ("B", "")]);
        let expected: &[u8] = b"\0\0\0\x01B\0\0\0\0\0\0\0\x01a\0\0\0\0\0\0\0\x02\xc3\xa9\0\0\0\0";
        assert_eq!(ctx.canonical_bytes(), expected);
    }

    #[test]
    fn length_prefixes_prevent_concatenation_collisions() {
        let a = EncryptionContext::new([("ab", "c")]);
        let b = EncryptionContext::new([("a", "bc")]);
        assert_ne!(a, b);
        let c = EncryptionContext::new([("a", "b"), ("c", "d")]);
        let d = EncryptionContext::new([("a", "b\0\0\0\x01c\0\0\0\x01d")]);
        assert_ne!(c, d);
    }

    #[test]
    fn last_duplicate_key_wins() {
        let a = EncryptionContext::new([("k", "1"), ("k", "2")]);
        assert_eq!(a, EncryptionContext::new([("k", "2")]));
    }

    #[test]
    fn collects_from_a_map() {
        let map: std::collections::HashMap<String, String> =
            [("k".to_owned(), "v".to_owned())].into();
        let ctx: EncryptionContext = map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(ctx, EncryptionContext::new([("k", "v")]));
    }
}
