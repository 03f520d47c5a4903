//! Ed25519 signing keys for statements Keyhold makes about itself (the audit trail's
//! digests). The private key is stored only sealed under the domain key; the public key is
//! published beside what it signs, so anyone can verify without unsealing anything.

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};

use crate::{CryptoError, SecretBytes};

/// An Ed25519 key pair. Not `Clone`; prints redacted.
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl SigningKey {
    /// A new key pair and its PKCS#8 encoding (to be sealed before it is stored).
    pub fn generate() -> Result<(Self, SecretBytes), CryptoError> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| CryptoError::Random)?;
        let secret = SecretBytes::from(pkcs8.as_ref().to_vec());
        let key = Self::from_pkcs8(secret.expose_secret())?;
        Ok((key, secret))
    }

    /// Loads a key pair from its PKCS#8 encoding; [`CryptoError::Unseal`] if it is not one.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, CryptoError> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| CryptoError::Unseal)?;
        Ok(Self { pair })
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    /// The 64-byte signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

/// Whether `signature` is `public_key`'s Ed25519 signature of `message`.
pub fn verify_signature(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&signature::ED25519, public_key)
        .verify(message, signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies() {
        let (key, pkcs8) = SigningKey::generate().unwrap();
        let sig = key.sign(b"digest");
        assert!(verify_signature(&key.public_key(), b"digest", &sig));
        assert!(!verify_signature(&key.public_key(), b"digesT", &sig));
        let reloaded = SigningKey::from_pkcs8(pkcs8.expose_secret()).unwrap();
        assert_eq!(reloaded.public_key(), key.public_key());
        let (other, _) = SigningKey::generate().unwrap();
        assert!(!verify_signature(&other.public_key(), b"digest", &sig));
        assert!(!format!("{key:?}").contains(&hex::encode(pkcs8.expose_secret())));
        assert!(SigningKey::from_pkcs8(b"not a key").is_err());
    }
}
