//! Keyed tags for tokens Keyhold hands out and later accepts back (KMS grant tokens): a
//! token carries an HMAC-SHA256 tag over its contents, so it cannot be forged or altered
//! without the key, and the server needs to remember nothing per token.
//!
//! Lifecycle of a [`TokenKey`]: generated once ([`TokenKey::generate`]), stored only sealed
//! under the domain key, opened into memory when first needed ([`TokenKey::from_bytes`]).

use std::fmt;

use aws_lc_rs::hmac;

use crate::material::Key256;
use crate::{CryptoError, SecretBytes};

/// Length of a tag.
pub const TAG_LEN: usize = 32;

/// An HMAC-SHA256 key. Not `Clone`; prints redacted.
pub struct TokenKey {
    key: hmac::Key,
}

impl TokenKey {
    /// A fresh random key and its bytes (to be sealed before they are stored).
    pub fn generate() -> Result<(Self, SecretBytes), CryptoError> {
        let raw = Key256::generate()?;
        let bytes = SecretBytes::from(raw.expose().to_vec());
        Ok((Self::from_key(&raw), bytes))
    }

    /// Loads a key from the bytes [`TokenKey::generate`] returned; [`CryptoError::Unseal`]
    /// if they are not 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let raw = Key256::from_slice(bytes).ok_or(CryptoError::Unseal)?;
        Ok(Self::from_key(&raw))
    }

    fn from_key(raw: &Key256) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, raw.expose()),
        }
    }

    /// The tag of `message`.
    pub fn tag(&self, message: &[u8]) -> [u8; TAG_LEN] {
        let tag = hmac::sign(&self.key, message);
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Whether `tag` is the tag of `message`, compared in constant time.
    pub fn verify(&self, message: &[u8], tag: &[u8]) -> bool {
        hmac::verify(&self.key, message, tag).is_ok()
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_verify_only_with_the_same_key_and_message() {
        let (key, bytes) = TokenKey::generate().unwrap();
        let again = TokenKey::from_bytes(bytes.expose_secret()).unwrap();
        let tag = key.tag(b"grant");
        assert!(again.verify(b"grant", &tag));
        assert!(!again.verify(b"grant!", &tag));
        assert!(!again.verify(b"grant", &tag[..31]));
        let (other, _) = TokenKey::generate().unwrap();
        assert!(!other.verify(b"grant", &tag));
        assert!(TokenKey::from_bytes(&[0; 31]).is_err());
    }

    #[test]
    fn known_answer() {
        // Computed independently: Python's hmac.new(bytes(range(32)), b"abc", sha256).
        let key = TokenKey::from_bytes(&(0u8..32).collect::<Vec<_>>()).unwrap();
        assert_eq!(
            hex::encode(key.tag(b"abc")),
            "f0133729c4163dede81e21cd47839256da58171238c8a0d874397c73b14e1e47"
        );
    }

    #[test]
    fn debug_is_redacted() {
        let (key, _) = TokenKey::generate().unwrap();
        assert_eq!(format!("{key:?}"), "TokenKey([redacted])");
    }
}
