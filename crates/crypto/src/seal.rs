//! The seal: root key → domain key → backing key material.
//!
//! ```text
//! root key        never stored in plaintext; held by a RootKeyProvider
//!   └ domain key  random 256-bit, stored sealed under the root key
//!      └ backing key material of every KMS key version, and other stored secrets,
//!        stored sealed under the domain key
//! ```
//!
//! The root key never leaves its [`RootKeyProvider`]: the provider seals and unseals the
//! domain key itself, so a PKCS#11 token key can stay non-extractable and a Shamir provider
//! can hold its reconstructed key for as short as it likes. Only the domain key is unsealed
//! into memory, once, at unseal time; backing keys are unsealed on cache misses.
//!
//! Sealed format, for everything sealed under a root or domain key (version 1):
//!
//! ```text
//! 0x01 ‖ nonce (12, random) ‖ AES-256-GCM ciphertext ‖ tag (16)
//! ```
//!
//! Random 96-bit nonces are safe for far more than the handful of blobs a root key seals and
//! the one blob per key version or stored secret a domain key seals (NIST's bound is 2^32
//! messages per key).

mod domain;
#[cfg(unix)]
mod key_file;
mod pkcs11;
mod shamir;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

pub use domain::DomainKey;
#[cfg(unix)]
pub use key_file::KeyFileRoot;
pub use pkcs11::{Pkcs11Root, Pkcs11Token, TokenKeyAttributes, TokenLoginError};
pub use shamir::{MAX_SHARES, RootShare, ShamirRoot};

use crate::material::{KEY_LEN, Key256};
use crate::{CryptoError, SecretBytes, random};

/// The root of the key hierarchy: seals and unseals the domain key.
///
/// Implementations: [`KeyFileRoot`] (development), [`ShamirRoot`], [`Pkcs11Root`].
/// Every implementation must pass the provider test suite in `tests/seal.rs`.
pub trait RootKeyProvider: Send + Sync {
    /// A short name for status output and logs, e.g. `"key-file"`, `"pkcs11"`, `"shamir"`.
    fn kind(&self) -> &'static str;

    /// Encrypts and authenticates `plaintext`, bound to `aad`.
    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError>;

    /// Opens what [`RootKeyProvider::seal`] produced with the same `aad`;
    /// [`CryptoError::Unseal`] for any failure, with no detail.
    fn unseal(&self, sealed: &[u8], aad: &[u8]) -> Result<SecretBytes, CryptoError>;
}

/// Version byte of the sealed format.
const SEALED_VERSION: u8 = 0x01;
const TAG_LEN: usize = 16;

/// Seals `plaintext` under a raw 256-bit key in the sealed format. For software providers
/// (key file, Shamir) and the domain key; a PKCS#11 provider does the same inside the token.
pub(crate) fn seal_with_key(
    key: &Key256,
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let aead = aead_key(key).map_err(|_| CryptoError::Encrypt)?;
    let nonce: [u8; NONCE_LEN] = random::array()?;
    let mut sealed = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + TAG_LEN);
    sealed.push(SEALED_VERSION);
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(plaintext);
    let tag = aead
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut sealed[1 + NONCE_LEN..],
        )
        .map_err(|_| CryptoError::Encrypt)?;
    sealed.extend_from_slice(tag.as_ref());
    Ok(sealed)
}

/// Opens the sealed format; [`CryptoError::Unseal`] for every failure.
pub(crate) fn unseal_with_key(
    key: &Key256,
    sealed: &[u8],
    aad: &[u8],
) -> Result<SecretBytes, CryptoError> {
    let Some((&SEALED_VERSION, rest)) = sealed.split_first() else {
        return Err(CryptoError::Unseal);
    };
    if rest.len() < NONCE_LEN + TAG_LEN {
        return Err(CryptoError::Unseal);
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Unseal)?;
    let aead = aead_key(key).map_err(|_| CryptoError::Unseal)?;

    let mut buf = Zeroizing::new(Vec::with_capacity(ciphertext.len()));
    buf.extend_from_slice(ciphertext);
    let plaintext_len = aead
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| CryptoError::Unseal)?
        .len();
    buf.truncate(plaintext_len);
    Ok(SecretBytes::from_zeroizing(buf))
}

/// Checks that an unsealed secret is exactly one 256-bit key. Provider errors (a PKCS#11
/// token that is unreachable, say) pass through unchanged.
pub(crate) fn unseal_key(
    unsealed: Result<SecretBytes, CryptoError>,
) -> Result<Key256, CryptoError> {
    let bytes = unsealed?;
    Key256::from_slice(bytes.expose_secret()).ok_or(CryptoError::Unseal)
}

fn aead_key(key: &Key256) -> Result<LessSafeKey, aws_lc_rs::error::Unspecified> {
    debug_assert_eq!(AES_256_GCM.key_len(), KEY_LEN);
    UnboundKey::new(&AES_256_GCM, key.expose()).map(LessSafeKey::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_format_layout() {
        let key = Key256::generate().unwrap();
        let sealed = seal_with_key(&key, b"abc", b"aad").unwrap();
        assert_eq!(sealed.len(), 1 + 12 + 3 + 16);
        assert_eq!(sealed[0], 0x01);
        let opened = unseal_with_key(&key, &sealed, b"aad").unwrap();
        assert_eq!(opened.expose_secret(), b"abc");
    }

    #[test]
    fn nonces_are_fresh() {
        let key = Key256::generate().unwrap();
        let a = seal_with_key(&key, b"abc", b"").unwrap();
        let b = seal_with_key(&key, b"abc", b"").unwrap();
        assert_ne!(a[1..13], b[1..13]);
        assert_ne!(a, b);
    }

    #[test]
    fn every_bit_flip_and_truncation_is_rejected() {
        let key = Key256::generate().unwrap();
        let sealed = seal_with_key(&key, b"sealed secret", b"aad").unwrap();
        for i in 0..sealed.len() {
            for bit in 0..8 {
                let mut bad = sealed.clone();
                bad[i] ^= 1 << bit;
                assert!(matches!(
                    unseal_with_key(&key, &bad, b"aad"),
                    Err(CryptoError::Unseal)
                ));
            }
        }
        for len in 0..sealed.len() {
            assert!(matches!(
                unseal_with_key(&key, &sealed[..len], b"aad"),
                Err(CryptoError::Unseal)
            ));
        }
    }

    #[test]
    fn wrong_aad_or_key_is_rejected() {
        let key = Key256::generate().unwrap();
        let other = Key256::generate().unwrap();
        let sealed = seal_with_key(&key, b"x", b"aad").unwrap();
        assert!(matches!(
            unseal_with_key(&key, &sealed, b"aae"),
            Err(CryptoError::Unseal)
        ));
        assert!(matches!(
            unseal_with_key(&other, &sealed, b"aad"),
            Err(CryptoError::Unseal)
        ));
    }

    #[test]
    fn unseal_key_requires_32_bytes() {
        assert!(unseal_key(Ok(SecretBytes::from(vec![1u8; 32]))).is_ok());
        assert!(matches!(
            unseal_key(Ok(SecretBytes::from(vec![1u8; 31]))),
            Err(CryptoError::Unseal)
        ));
        assert!(matches!(
            unseal_key(Err(CryptoError::Random)),
            Err(CryptoError::Random)
        ));
    }
}
