//! Envelope encryption with a data key that KMS handed out: the local half of what Secrets
//! Manager and Parameter Store do with every value they store.
//!
//! The caller asks KMS for a data key (`GenerateDataKey`), seals the value locally with
//! [`seal`], stores only the sealed bytes and the KMS ciphertext of the data key, and drops the
//! plaintext key. To read the value it asks KMS to decrypt the data key and calls [`open`].
//!
//! Sealed format (version 1), the same layout as the seal's:
//!
//! ```text
//! 0x01 ‖ nonce (12, random) ‖ AES-256-GCM ciphertext ‖ tag (16)
//! ```
//!
//! Each data key is meant to seal one value (a fresh `GenerateDataKey` per value), so a random
//! nonce is far from any wear-out bound. The `aad` binds the sealed bytes to what they are
//! (a secret's ARN and version, say): moved anywhere else, they do not open.

use zeroize::Zeroizing;

use crate::material::Key256;
use crate::seal::{seal_with_key, unseal_with_key};
use crate::{CryptoError, SecretBytes};

/// A 256-bit data key in memory: not `Clone`, zeroized on drop, printed as `[redacted]`.
pub struct DataKey(Key256);

impl DataKey {
    /// Length of a data key in bytes (`AES_256`).
    pub const LEN: usize = 32;

    /// Takes the plaintext of a KMS data key; `None` unless it is exactly 32 bytes.
    pub fn from_plaintext(plaintext: &SecretBytes) -> Option<Self> {
        Key256::from_slice(plaintext.expose_secret()).map(Self)
    }

    /// A fresh random data key, for tests and for callers that wrap keys themselves.
    pub fn generate() -> Result<Self, CryptoError> {
        Key256::generate().map(Self)
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

/// Encrypts and authenticates `plaintext` under `key`, bound to `aad`.
pub fn seal(key: &DataKey, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    seal_with_key(&key.0, plaintext, aad)
}

/// Opens what [`seal`] produced with the same key and `aad`. Every failure (other key, other
/// `aad`, any changed or missing byte) is the same [`CryptoError::InvalidCiphertext`].
pub fn open(key: &DataKey, sealed: &[u8], aad: &[u8]) -> Result<SecretBytes, CryptoError> {
    unseal_with_key(&key.0, sealed, aad).map_err(|_| CryptoError::InvalidCiphertext)
}

/// `len-prefixed(part)…`: an unambiguous AAD from several strings (a 4-byte big-endian
/// length before each), so that `("ab", "c")` and `("a", "bc")` differ.
pub fn aad(parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(parts.iter().map(|p| p.len() + 4).sum()));
    for part in parts {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> DataKey {
        DataKey::generate().unwrap()
    }

    #[test]
    fn round_trip() {
        let k = key();
        let sealed = seal(&k, b"hunter2", b"aad").unwrap();
        assert_eq!(sealed.len(), 1 + 12 + 7 + 16);
        assert_eq!(
            open(&k, &sealed, b"aad").unwrap().expose_secret(),
            b"hunter2"
        );
        let empty = seal(&k, b"", b"").unwrap();
        assert!(open(&k, &empty, b"").unwrap().is_empty());
    }

    #[test]
    fn plaintext_is_not_in_the_sealed_bytes() {
        let k = key();
        let sealed = seal(&k, b"a very recognizable secret", b"").unwrap();
        assert!(
            !sealed
                .windows(8)
                .any(|w| b"a very recognizable secret".windows(8).any(|p| p == w))
        );
    }

    #[test]
    fn other_key_other_aad_and_tampering_fail_alike() {
        let k = key();
        let sealed = seal(&k, b"value", b"arn|v1").unwrap();
        assert!(matches!(
            open(&key(), &sealed, b"arn|v1"),
            Err(CryptoError::InvalidCiphertext)
        ));
        assert!(matches!(
            open(&k, &sealed, b"arn|v2"),
            Err(CryptoError::InvalidCiphertext)
        ));
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x40;
            assert!(matches!(
                open(&k, &bad, b"arn|v1"),
                Err(CryptoError::InvalidCiphertext)
            ));
        }
        for len in 0..sealed.len() {
            assert!(open(&k, &sealed[..len], b"arn|v1").is_err());
        }
    }

    #[test]
    fn data_key_needs_32_bytes_and_does_not_print() {
        assert!(DataKey::from_plaintext(&SecretBytes::from(vec![7u8; 32])).is_some());
        assert!(DataKey::from_plaintext(&SecretBytes::from(vec![7u8; 16])).is_none());
        let k = DataKey::from_plaintext(&SecretBytes::from(vec![0xAB; 32])).unwrap();
        assert_eq!(format!("{k:?}"), "DataKey([redacted])");
    }

    #[test]
    fn aad_is_unambiguous() {
        assert_ne!(*aad(&[b"ab", b"c"]), *aad(&[b"a", b"bc"]));
        assert_eq!(*aad(&[b"x"]), vec![0, 0, 0, 1, b'x']);
    }
}
