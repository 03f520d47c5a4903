//! The domain key: the middle of the hierarchy.

use std::fmt;

use super::{RootKeyProvider, seal_with_key, unseal_key, unseal_with_key};
use crate::asymmetric::{KeySpec, KeyUse, PrivateKey};
use crate::context::put_len_prefixed;
use crate::import::{WrappingKey, WrappingKeySpec};
use crate::material::Key256;
use crate::{CryptoError, MaterialId, SecretBytes, SymmetricKey};

/// A random 256-bit key that seals every backing key material and other stored secrets.
///
/// Lifecycle: generated once at `keyhold init`, stored only sealed under the root key
/// ([`DomainKey::seal`]), unsealed into memory at unseal time ([`DomainKey::unseal`]) and
/// dropped (zeroized) when the server seals again or exits. Rotating it means unsealing every
/// sealed blob with the old key and sealing it with a new one.
pub struct DomainKey(Key256);

/// AAD of the domain key sealed under the root key.
const DOMAIN_KEY_AAD: &[u8] = b"keyhold-domain-key-v1";

impl DomainKey {
    /// A fresh random domain key.
    pub fn generate() -> Result<Self, CryptoError> {
        Key256::generate().map(Self)
    }

    /// Seals this key under the root key, for storage.
    pub fn seal(&self, root: &dyn RootKeyProvider) -> Result<Vec<u8>, CryptoError> {
        root.seal(self.0.expose(), DOMAIN_KEY_AAD)
    }

    /// Opens a domain key sealed by [`DomainKey::seal`] under the same root key.
    pub fn unseal(root: &dyn RootKeyProvider, sealed: &[u8]) -> Result<Self, CryptoError> {
        unseal_key(root.unseal(sealed, DOMAIN_KEY_AAD)).map(Self)
    }

    /// Seals backing key material for storage, bound to the key it belongs to and its
    /// version: AAD = `len-prefixed(key_arn) ‖ material_id`, so a sealed blob cannot be moved
    /// to another key or version.
    pub fn seal_material(
        &self,
        material: &SymmetricKey,
        key_arn: &str,
        material_id: &MaterialId,
    ) -> Result<Vec<u8>, CryptoError> {
        seal_with_key(
            &self.0,
            material.expose(),
            &material_aad(key_arn, material_id),
        )
    }

    /// Opens material sealed by [`DomainKey::seal_material`] with the same ARN and material id;
    /// [`CryptoError::Unseal`] otherwise.
    pub fn unseal_material(
        &self,
        sealed: &[u8],
        key_arn: &str,
        material_id: &MaterialId,
    ) -> Result<SymmetricKey, CryptoError> {
        let unsealed = unseal_with_key(&self.0, sealed, &material_aad(key_arn, material_id));
        unseal_key(unsealed).map(SymmetricKey::from_key)
    }

    /// Seals the material of an asymmetric, HMAC or post-quantum key for storage, bound to
    /// the key, its material id, its spec and its use: AAD = `len-prefixed("keyhold-private-key-v1")
    /// ‖ len-prefixed(key_arn) ‖ material_id ‖ len-prefixed(spec) ‖ len-prefixed(use)`. The
    /// label keeps it from ever opening as symmetric material (and the other way round).
    pub fn seal_private_key(
        &self,
        key: &PrivateKey,
        key_arn: &str,
        material_id: &MaterialId,
    ) -> Result<Vec<u8>, CryptoError> {
        let aad = private_key_aad(key_arn, material_id, key.spec(), key.key_use());
        seal_with_key(&self.0, key.document().expose_secret(), &aad)
    }

    /// Opens and parses material sealed by [`DomainKey::seal_private_key`] with the same
    /// ARN, material id, spec and use; [`CryptoError::Unseal`] otherwise. Parsing (an RSA key
    /// check, say) happens here, once: callers cache the result.
    pub fn unseal_private_key(
        &self,
        sealed: &[u8],
        key_arn: &str,
        material_id: &MaterialId,
        spec: KeySpec,
        key_use: KeyUse,
    ) -> Result<PrivateKey, CryptoError> {
        let aad = private_key_aad(key_arn, material_id, spec, key_use);
        let document = unseal_with_key(&self.0, sealed, &aad)?;
        PrivateKey::from_document(spec, key_use, document)
    }

    /// Seals another secret (an IAM secret access key, say) for storage, bound to what it is
    /// and whose it is: AAD = `len-prefixed(purpose) ‖ len-prefixed(id)`. `purpose` is a
    /// constant naming the kind of secret, e.g. `"iam-secret-access-key"`.
    pub fn seal_secret(
        &self,
        purpose: &str,
        id: &str,
        secret: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        seal_with_key(&self.0, secret, &secret_aad(purpose, id))
    }

    /// Opens a secret sealed by [`DomainKey::seal_secret`] with the same purpose and id;
    /// [`CryptoError::Unseal`] otherwise.
    pub fn unseal_secret(
        &self,
        purpose: &str,
        id: &str,
        sealed: &[u8],
    ) -> Result<SecretBytes, CryptoError> {
        unseal_with_key(&self.0, sealed, &secret_aad(purpose, id))
    }
}

impl DomainKey {
    /// Seals the private key of an import token's wrapping key (PKCS#8) for storage, bound to
    /// the KMS key the token was issued for and to the token: AAD =
    /// `len-prefixed("keyhold-import-wrapping-key-v1") ‖ len-prefixed(key_arn) ‖
    /// len-prefixed(token_sha256)`. The label keeps it from ever opening as anything else.
    pub fn seal_wrapping_key(
        &self,
        key: &WrappingKey,
        key_arn: &str,
        token_sha256: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let der = key.pkcs8()?;
        seal_with_key(
            &self.0,
            der.as_ref(),
            &wrapping_key_aad(key_arn, token_sha256),
        )
    }

    /// Opens a wrapping key sealed by [`DomainKey::seal_wrapping_key`] with the same ARN and
    /// token hash, and checks it is an RSA key of `spec`; [`CryptoError::Unseal`] otherwise.
    pub fn unseal_wrapping_key(
        &self,
        sealed: &[u8],
        key_arn: &str,
        token_sha256: &[u8],
        spec: WrappingKeySpec,
    ) -> Result<WrappingKey, CryptoError> {
        let der = unseal_with_key(&self.0, sealed, &wrapping_key_aad(key_arn, token_sha256))?;
        WrappingKey::from_pkcs8(der.expose_secret(), spec)
    }
}

impl fmt::Debug for DomainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DomainKey([redacted])")
    }
}

/// Labels that keep a sealed material and a sealed secret from ever sharing an AAD.
const MATERIAL_LABEL: &[u8] = b"keyhold-material-v1";
const SECRET_LABEL: &[u8] = b"keyhold-secret-v1";
const PRIVATE_KEY_LABEL: &[u8] = b"keyhold-private-key-v1";
const WRAPPING_KEY_LABEL: &[u8] = b"keyhold-import-wrapping-key-v1";

fn wrapping_key_aad(key_arn: &str, token_sha256: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(12 + WRAPPING_KEY_LABEL.len() + key_arn.len() + 32);
    put_len_prefixed(&mut aad, WRAPPING_KEY_LABEL);
    put_len_prefixed(&mut aad, key_arn.as_bytes());
    put_len_prefixed(&mut aad, token_sha256);
    aad
}

fn material_aad(key_arn: &str, material_id: &MaterialId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(8 + MATERIAL_LABEL.len() + key_arn.len() + 32);
    put_len_prefixed(&mut aad, MATERIAL_LABEL);
    put_len_prefixed(&mut aad, key_arn.as_bytes());
    aad.extend_from_slice(material_id.as_bytes());
    aad
}

fn private_key_aad(
    key_arn: &str,
    material_id: &MaterialId,
    spec: KeySpec,
    key_use: KeyUse,
) -> Vec<u8> {
    let mut aad = Vec::with_capacity(96 + key_arn.len());
    put_len_prefixed(&mut aad, PRIVATE_KEY_LABEL);
    put_len_prefixed(&mut aad, key_arn.as_bytes());
    aad.extend_from_slice(material_id.as_bytes());
    put_len_prefixed(&mut aad, spec.name().as_bytes());
    put_len_prefixed(&mut aad, key_use.name().as_bytes());
    aad
}

fn secret_aad(purpose: &str, id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(12 + SECRET_LABEL.len() + purpose.len() + id.len());
    put_len_prefixed(&mut aad, SECRET_LABEL);
    put_len_prefixed(&mut aad, purpose.as_bytes());
    put_len_prefixed(&mut aad, id.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn material_aad_layout() {
        let id = MaterialId::from_bytes([9; 32]);
        let aad = material_aad("arn", &id);
        assert_eq!(&aad[..23], b"\0\0\0\x13keyhold-material-v1");
        assert_eq!(&aad[23..30], b"\0\0\0\x03arn");
        assert_eq!(&aad[30..], &[9; 32]);
    }

    #[test]
    fn secret_aad_is_unambiguous() {
        assert_ne!(secret_aad("ab", "c"), secret_aad("a", "bc"));
        assert_eq!(
            secret_aad("p", "i"),
            b"\0\0\0\x11keyhold-secret-v1\0\0\0\x01p\0\0\0\x01i"
        );
        assert_ne!(
            &secret_aad("arn", "i")[..23],
            &material_aad("arn", &MaterialId::from_bytes([0; 32]))[..23]
        );
    }

    #[test]
    fn material_round_trips_through_the_domain_key() {
        let domain = DomainKey::generate().unwrap();
        let material = SymmetricKey::generate().unwrap();
        let id = MaterialId::random().unwrap();
        let sealed = domain.seal_material(&material, "arn:k", &id).unwrap();
        let opened = domain.unseal_material(&sealed, "arn:k", &id).unwrap();
        assert_eq!(opened.expose(), material.expose());
        assert!(!sealed.windows(32).any(|w| w == material.expose()));
    }

    #[test]
    fn private_keys_round_trip_and_are_bound_to_their_key() {
        let domain = DomainKey::generate().unwrap();
        let id = MaterialId::random().unwrap();
        let key = PrivateKey::generate(KeySpec::EccNistP256, KeyUse::SignVerify).unwrap();
        let sealed = domain.seal_private_key(&key, "arn:k", &id).unwrap();
        let opened = domain
            .unseal_private_key(
                &sealed,
                "arn:k",
                &id,
                KeySpec::EccNistP256,
                KeyUse::SignVerify,
            )
            .unwrap();
        assert_eq!(opened.public_key_der(), key.public_key_der());
        let other = MaterialId::random().unwrap();
        for (arn, id, spec, key_use) in [
            ("arn:j", id, KeySpec::EccNistP256, KeyUse::SignVerify),
            ("arn:k", other, KeySpec::EccNistP256, KeyUse::SignVerify),
            ("arn:k", id, KeySpec::EccNistP384, KeyUse::SignVerify),
            ("arn:k", id, KeySpec::EccNistP256, KeyUse::KeyAgreement),
        ] {
            assert!(matches!(
                domain.unseal_private_key(&sealed, arn, &id, spec, key_use),
                Err(CryptoError::Unseal)
            ));
        }
        // Nor does it open as symmetric material, or symmetric material as a private key.
        assert!(domain.unseal_material(&sealed, "arn:k", &id).is_err());
        let hmac = PrivateKey::generate(KeySpec::Hmac256, KeyUse::GenerateVerifyMac).unwrap();
        let sealed = domain.seal_private_key(&hmac, "arn:k", &id).unwrap();
        assert!(domain.unseal_material(&sealed, "arn:k", &id).is_err());
        let material = SymmetricKey::generate().unwrap();
        let sealed = domain.seal_material(&material, "arn:k", &id).unwrap();
        assert!(
            domain
                .unseal_private_key(
                    &sealed,
                    "arn:k",
                    &id,
                    KeySpec::Hmac256,
                    KeyUse::GenerateVerifyMac
                )
                .is_err()
        );
    }

    #[test]
    fn wrapping_keys_round_trip_bound_to_their_key_and_token() {
        use crate::import::{WrappingAlgorithm, wrap_for_import};
        let domain = DomainKey::generate().unwrap();
        let key = WrappingKey::generate(WrappingKeySpec::Rsa2048).unwrap();
        let token = [5u8; 32];
        let sealed = domain.seal_wrapping_key(&key, "arn:k", &token).unwrap();
        let der = key.pkcs8().unwrap();
        assert!(
            !sealed
                .windows(der.as_ref().len())
                .any(|w| w == der.as_ref())
        );
        let opened = domain
            .unseal_wrapping_key(&sealed, "arn:k", &token, WrappingKeySpec::Rsa2048)
            .unwrap();
        assert_eq!(opened.public_key_der(), key.public_key_der());
        let wrapped = wrap_for_import(
            key.public_key_der(),
            WrappingAlgorithm::RsaAesKeyWrapSha256,
            &[3; 32],
        )
        .unwrap();
        let material = opened
            .unwrap_symmetric(WrappingAlgorithm::RsaAesKeyWrapSha256, &wrapped)
            .unwrap();
        assert_eq!(material.expose(), &[3; 32]);
        for (arn, token, spec) in [
            ("arn:j", [5u8; 32], WrappingKeySpec::Rsa2048),
            ("arn:k", [6u8; 32], WrappingKeySpec::Rsa2048),
            ("arn:k", [5u8; 32], WrappingKeySpec::Rsa3072),
        ] {
            assert!(matches!(
                domain.unseal_wrapping_key(&sealed, arn, &token, spec),
                Err(CryptoError::Unseal)
            ));
        }
        // Nor does a sealed wrapping key open as anything else.
        let id = MaterialId::from_bytes([5; 32]);
        assert!(domain.unseal_material(&sealed, "arn:k", &id).is_err());
        assert!(domain.unseal_secret("arn:k", "token", &sealed).is_err());
    }

    #[test]
    fn debug_is_redacted() {
        let domain = DomainKey::generate().unwrap();
        let printed = format!("{domain:?} {domain:#?}");
        assert!(!printed.contains(&hex::encode(domain.0.expose())));
        assert_eq!(format!("{domain:?}"), "DomainKey([redacted])");
    }
}
