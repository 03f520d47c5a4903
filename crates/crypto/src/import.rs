//! Imported key material (BYOK): the RSA wrapping key of `GetParametersForImport` and the
//! unwrapping of the material `ImportKeyMaterial` receives.
//!
//! The wrapping key pair is generated here and its private half never leaves this crate in
//! plaintext: the server holds a [`WrappingKey`] (not `Clone`, redacted `Debug`), hands out
//! only its public key, and stores the private key only sealed under the domain key
//! ([`crate::seal::DomainKey::seal_wrapping_key`]), so that an import token survives a
//! restart and works on every node sharing the store. Unwrapping produces a [`SymmetricKey`] directly, so imported material never
//! exists as plain bytes outside this crate either.
//!
//! Wrapping algorithms, as AWS KMS defines them:
//! - `RSAES_OAEP_SHA_1` / `RSAES_OAEP_SHA_256`: the material encrypted with RSA-OAEP (MGF1 with
//!   the same hash) under the wrapping public key.
//! - `RSA_AES_KEY_WRAP_SHA_1` / `RSA_AES_KEY_WRAP_SHA_256`: a fresh AES-256 key encrypted with
//!   RSA-OAEP, followed by the material wrapped under that AES key with AES key wrap with
//!   padding (RFC 5649, `id-aes256-wrap-pad`, what `openssl enc -id-aes256-wrap-pad` writes).
//!
//! An imported material's id is derived from the material itself
//! ([`imported_material_id`]), so re-importing "the same material" can be checked without
//! keeping the material once it was deleted or expired.

use std::fmt;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::hmac;
use aws_lc_rs::key_wrap::{AES_256, AesKek, KeyWrapPadded};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepAlgorithm, OaepPrivateDecryptingKey,
    PrivateDecryptingKey,
};
use zeroize::Zeroizing;

use crate::asymmetric::{KeySpec, KeyUse, PrivateKey};
use crate::material::{KEY_LEN, Key256};
use crate::{CryptoError, KeyId, MaterialId, SecretBytes, SymmetricKey};

/// The size of an import wrapping key (`WrappingKeySpec`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WrappingKeySpec {
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

/// How imported material is wrapped (`WrappingAlgorithm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WrappingAlgorithm {
    RsaesOaepSha1,
    RsaesOaepSha256,
    RsaAesKeyWrapSha1,
    RsaAesKeyWrapSha256,
}

impl WrappingAlgorithm {
    fn oaep(self) -> &'static OaepAlgorithm {
        match self {
            Self::RsaesOaepSha1 | Self::RsaAesKeyWrapSha1 => &OAEP_SHA1_MGF1SHA1,
            Self::RsaesOaepSha256 | Self::RsaAesKeyWrapSha256 => &OAEP_SHA256_MGF1SHA256,
        }
    }

    /// Whether the material is wrapped under an AES key that RSA-OAEP wraps (`RSA_AES_KEY_WRAP_*`).
    pub fn is_key_wrap(self) -> bool {
        matches!(self, Self::RsaAesKeyWrapSha1 | Self::RsaAesKeyWrapSha256)
    }
}

/// The private RSA key of one `GetParametersForImport` answer.
///
/// Lifecycle: generated for one import token and sealed under the domain key for the store
/// at once; unsealed again for the `ImportKeyMaterial` that uses the token, then dropped
/// (AWS-LC frees and clears the key).
pub struct WrappingKey {
    private: PrivateDecryptingKey,
    key: OaepPrivateDecryptingKey,
    public_der: Vec<u8>,
}

impl WrappingKey {
    /// Generates a fresh RSA key pair of `spec`.
    pub fn generate(spec: WrappingKeySpec) -> Result<Self, CryptoError> {
        let size = match spec {
            WrappingKeySpec::Rsa2048 => KeySize::Rsa2048,
            WrappingKeySpec::Rsa3072 => KeySize::Rsa3072,
            WrappingKeySpec::Rsa4096 => KeySize::Rsa4096,
        };
        let private = PrivateDecryptingKey::generate(size).map_err(|_| CryptoError::Random)?;
        Self::from_private(private)
    }

    fn from_private(private: PrivateDecryptingKey) -> Result<Self, CryptoError> {
        let public_der = private
            .public_key()
            .as_der()
            .map_err(|_| CryptoError::Encrypt)?
            .as_ref()
            .to_vec();
        let key =
            OaepPrivateDecryptingKey::new(private.clone()).map_err(|_| CryptoError::Encrypt)?;
        Ok(Self {
            private,
            key,
            public_der,
        })
    }

    /// The private key as PKCS#8 DER (zeroized on drop), for sealing under the domain key.
    pub(crate) fn pkcs8(&self) -> Result<Pkcs8V1Der<'static>, CryptoError> {
        self.private.as_der().map_err(|_| CryptoError::Encrypt)
    }

    /// The wrapping key a PKCS#8 document holds, if it is an RSA key of `spec`'s size;
    /// [`CryptoError::Unseal`] otherwise.
    pub(crate) fn from_pkcs8(der: &[u8], spec: WrappingKeySpec) -> Result<Self, CryptoError> {
        let private = PrivateDecryptingKey::from_pkcs8(der).map_err(|_| CryptoError::Unseal)?;
        let key = Self::from_private(private).map_err(|_| CryptoError::Unseal)?;
        if key.spec() != Some(spec) {
            return Err(CryptoError::Unseal);
        }
        Ok(key)
    }

    /// The size of this key, as a `WrappingKeySpec`.
    pub fn spec(&self) -> Option<WrappingKeySpec> {
        match self.private.key_size_bits() {
            2048 => Some(WrappingKeySpec::Rsa2048),
            3072 => Some(WrappingKeySpec::Rsa3072),
            4096 => Some(WrappingKeySpec::Rsa4096),
            _ => None,
        }
    }

    /// The public key, DER-encoded X.509 `SubjectPublicKeyInfo` (what AWS returns as
    /// `PublicKey`).
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_der
    }

    /// Unwraps the material of an asymmetric or HMAC key wrapped with `algorithm` under this
    /// key: a DER PKCS#8 `PrivateKeyInfo` of `spec` (RSA, ECC), or raw HMAC key bytes of a
    /// length AWS accepts for `spec`. [`CryptoError::InvalidCiphertext`] if it does not
    /// unwrap; [`CryptoError::InvalidInput`] if it unwraps to something that is not a key of
    /// `spec` for `key_use`.
    pub fn unwrap_private(
        &self,
        algorithm: WrappingAlgorithm,
        wrapped: &[u8],
        spec: KeySpec,
        key_use: KeyUse,
    ) -> Result<PrivateKey, CryptoError> {
        let document = self.unwrap_bytes(algorithm, wrapped)?;
        PrivateKey::from_document(spec, key_use, document).map_err(|_| CryptoError::InvalidInput)
    }

    /// Unwraps material of any length.
    fn unwrap_bytes(
        &self,
        algorithm: WrappingAlgorithm,
        wrapped: &[u8],
    ) -> Result<SecretBytes, CryptoError> {
        let rsa_len = self.key.key_size_bytes();
        let (rsa_part, kwp_part) = if algorithm.is_key_wrap() {
            if wrapped.len() <= rsa_len {
                return Err(CryptoError::InvalidCiphertext);
            }
            wrapped.split_at(rsa_len)
        } else {
            (wrapped, &[][..])
        };
        let mut buf = Zeroizing::new(vec![0u8; self.key.min_output_size()]);
        let first_len = self
            .key
            .decrypt(algorithm.oaep(), rsa_part, &mut buf, None)
            .map_err(|_| CryptoError::InvalidCiphertext)?
            .len();
        if !algorithm.is_key_wrap() {
            buf.truncate(first_len);
            return Ok(SecretBytes::from_zeroizing(buf));
        }
        let kek = AesKek::new(&AES_256, buf.get(..first_len).unwrap_or_default())
            .map_err(|_| CryptoError::InvalidCiphertext)?;
        let mut out = Zeroizing::new(vec![0u8; kwp_part.len()]);
        let len = kek
            .unwrap_with_padding(kwp_part, &mut out)
            .map_err(|_| CryptoError::InvalidCiphertext)?
            .len();
        out.truncate(len);
        Ok(SecretBytes::from_zeroizing(out))
    }

    /// Unwraps 256-bit symmetric key material wrapped with `algorithm` under this key.
    ///
    /// [`CryptoError::InvalidCiphertext`] for anything that does not unwrap, or that unwraps
    /// to anything but exactly 32 bytes — no detail, as for every ciphertext.
    pub fn unwrap_symmetric(
        &self,
        algorithm: WrappingAlgorithm,
        wrapped: &[u8],
    ) -> Result<SymmetricKey, CryptoError> {
        let material = self.unwrap_bytes(algorithm, wrapped)?;
        Key256::from_slice(material.expose_secret())
            .map(SymmetricKey::from_key)
            .ok_or(CryptoError::InvalidCiphertext)
    }
}

impl fmt::Debug for WrappingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "WrappingKey(RSA-{} [redacted])",
            self.key.key_size_bits()
        )
    }
}

/// The material id of imported symmetric material: HMAC-SHA256 keyed with the material over
/// a label and the KMS key's id. The same material imported into the same key always gets
/// the same id (that is how a re-import is recognised), and the id reveals nothing about the
/// material.
pub fn imported_material_id(material: &SymmetricKey, key_id: &KeyId) -> MaterialId {
    let key = hmac::Key::new(hmac::HMAC_SHA256, material.expose());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(b"keyhold imported key material id v1");
    ctx.update(key_id.as_bytes());
    let tag = ctx.sign();
    let mut id = [0u8; 32];
    id.copy_from_slice(tag.as_ref());
    MaterialId::from_bytes(id)
}

/// The material id of imported asymmetric or HMAC material: derived from the public key
/// (SHA-256 over a label, the KMS key's id and the DER SubjectPublicKeyInfo) for a key pair,
/// and like [`imported_material_id`] (HMAC-SHA256 keyed with the material) for an HMAC key.
/// The same material imported into the same key always gets the same id.
pub fn imported_private_material_id(key: &PrivateKey, key_id: &KeyId) -> MaterialId {
    let mut id = [0u8; 32];
    match key.public_key_der() {
        Some(public) => {
            let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
            ctx.update(b"keyhold imported key pair id v1");
            ctx.update(key_id.as_bytes());
            ctx.update(public);
            id.copy_from_slice(ctx.finish().as_ref());
        }
        None => {
            let mac = hmac::Key::new(hmac::HMAC_SHA256, key.document().expose_secret());
            let mut ctx = hmac::Context::with_key(&mac);
            ctx.update(b"keyhold imported hmac key id v1");
            ctx.update(key_id.as_bytes());
            id.copy_from_slice(ctx.sign().as_ref());
        }
    }
    MaterialId::from_bytes(id)
}

/// Wraps `material` for import as a client does (the other half of
/// [`WrappingKey::unwrap_symmetric`]). For tests and tooling: the server never wraps.
pub fn wrap_for_import(
    public_key_der: &[u8],
    algorithm: WrappingAlgorithm,
    material: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    use aws_lc_rs::rsa::{OaepPublicEncryptingKey, PublicEncryptingKey};
    let public = PublicEncryptingKey::from_der(public_key_der).map_err(|_| CryptoError::Encrypt)?;
    let public = OaepPublicEncryptingKey::new(public).map_err(|_| CryptoError::Encrypt)?;
    let mut rsa_out = vec![0u8; public.ciphertext_size()];
    if !algorithm.is_key_wrap() {
        let out = public
            .encrypt(algorithm.oaep(), material, &mut rsa_out, None)
            .map_err(|_| CryptoError::Encrypt)?;
        return Ok(out.to_vec());
    }
    let aes = Key256::generate()?;
    let mut wrapped = public
        .encrypt(algorithm.oaep(), aes.expose(), &mut rsa_out, None)
        .map_err(|_| CryptoError::Encrypt)?
        .to_vec();
    let kek = AesKek::new(&AES_256, aes.expose()).map_err(|_| CryptoError::Encrypt)?;
    let mut out = vec![0u8; material.len() + 16];
    let kwp = kek
        .wrap_with_padding(material, &mut out)
        .map_err(|_| CryptoError::Encrypt)?;
    wrapped.extend_from_slice(kwp);
    Ok(wrapped)
}

/// What the store keeps of an import token: its SHA-256 (the token itself is a bearer secret
/// for one import and is never stored).
pub fn import_token_sha256(token: &[u8]) -> [u8; 32] {
    crate::digest::sha256(token)
}

/// Length of symmetric material an import accepts.
pub const MATERIAL_LEN: usize = KEY_LEN;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const ALL: [WrappingAlgorithm; 4] = [
        WrappingAlgorithm::RsaesOaepSha1,
        WrappingAlgorithm::RsaesOaepSha256,
        WrappingAlgorithm::RsaAesKeyWrapSha1,
        WrappingAlgorithm::RsaAesKeyWrapSha256,
    ];

    #[test]
    fn every_algorithm_round_trips_and_ids_follow_the_material() {
        let wrapping = WrappingKey::generate(WrappingKeySpec::Rsa2048).unwrap();
        let key_id = KeyId::from_bytes([7; 16]);
        let material = [42u8; 32];
        let expected = imported_material_id(&SymmetricKey::dangerous_from_bytes(material), &key_id);
        for algorithm in ALL {
            let wrapped = wrap_for_import(wrapping.public_key_der(), algorithm, &material).unwrap();
            let key = wrapping.unwrap_symmetric(algorithm, &wrapped).unwrap();
            assert_eq!(key.expose(), &material, "{algorithm:?}");
            assert_eq!(imported_material_id(&key, &key_id), expected);
        }
        let other = imported_material_id(&SymmetricKey::dangerous_from_bytes([43; 32]), &key_id);
        assert_ne!(other, expected);
        let other_key = imported_material_id(
            &SymmetricKey::dangerous_from_bytes(material),
            &KeyId::from_bytes([8; 16]),
        );
        assert_ne!(other_key, expected);
    }

    #[test]
    fn wrong_algorithm_length_or_key_is_invalid_ciphertext() {
        let wrapping = WrappingKey::generate(WrappingKeySpec::Rsa2048).unwrap();
        let other = WrappingKey::generate(WrappingKeySpec::Rsa2048).unwrap();
        let sha1 = wrap_for_import(
            wrapping.public_key_der(),
            WrappingAlgorithm::RsaesOaepSha1,
            &[1; 32],
        )
        .unwrap();
        let cases = [
            (&wrapping, WrappingAlgorithm::RsaesOaepSha256, sha1.clone()),
            (&other, WrappingAlgorithm::RsaesOaepSha1, sha1.clone()),
            (&wrapping, WrappingAlgorithm::RsaAesKeyWrapSha1, sha1),
            (
                &wrapping,
                WrappingAlgorithm::RsaesOaepSha256,
                wrap_for_import(
                    wrapping.public_key_der(),
                    WrappingAlgorithm::RsaesOaepSha256,
                    &[1; 16],
                )
                .unwrap(),
            ),
            (&wrapping, WrappingAlgorithm::RsaAesKeyWrapSha256, vec![]),
        ];
        for (key, algorithm, wrapped) in cases {
            assert!(matches!(
                key.unwrap_symmetric(algorithm, &wrapped),
                Err(CryptoError::InvalidCiphertext)
            ));
        }
    }

    #[test]
    fn debug_is_redacted() {
        let wrapping = WrappingKey::generate(WrappingKeySpec::Rsa2048).unwrap();
        assert_eq!(format!("{wrapping:?}"), "WrappingKey(RSA-2048 [redacted])");
    }
}
