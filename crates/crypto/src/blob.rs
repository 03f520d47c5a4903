//! The symmetric ciphertext blob, format version 1 — what `Encrypt` returns and `Decrypt`
//! accepts.
//!
//! A persistent format: never change it in place; add a version.
//!
//! ```text
//! offset  size
//! 0       1    format version (0x01)
//! 1       16   KMS key id (UUID bytes)
//! 17      32   key material id (which backing key version)
//! 49      32   random salt
//! 81      12   AES-GCM nonce (random)
//! 93      n    AES-256-GCM ciphertext
//! 93+n    16   tag
//!
//! derived key = HKDF-SHA256(ikm = backing key, salt = salt,
//!                           info = "keyhold-v1" ‖ header bytes 0..49), 32 bytes
//! AAD         = header bytes 0..93 ‖ canonical(encryption context)
//! ```
//!
//! A fresh derived key per ciphertext removes AES-GCM's nonce wear-out limit for a backing key
//! used billions of times. The header names the key and its version, so `Decrypt` needs no
//! `KeyId`: the server reads it with [`parse_header`], loads that material, and calls
//! [`decrypt`]. The header is authenticated twice over: it selects the derived key and is
//! part of the AAD.
//!
//! # Version 2: keys inside a PKCS#11 token
//!
//! A KMS key of a custom key store lives in a token and never leaves it, so no HKDF can run
//! over it in software. Its blobs have the same layout with format version `0x02`; the
//! AES-256-GCM key is the token key itself (the encryption runs inside the token, through
//! [`encrypt_in_token`] and [`decrypt_in_token`]), the salt field is random and
//! authenticated but derives nothing, and the AAD is the same (header ‖ canonical context).
//! With random 96-bit nonces under one key, NIST's bound of 2^32 encryptions per key
//! applies to such a key (AWS documents the same kind of limit for its HSM-backed keys).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use zeroize::Zeroizing;

use crate::material::KEY_LEN;
use crate::seal::Pkcs11Token;
use crate::{CryptoError, EncryptionContext, KeyId, MaterialId, SecretBytes, SymmetricKey, random};

/// The format version byte of this layout.
pub const VERSION: u8 = 0x01;
/// Length of the header (version, key id, material id, salt, nonce).
pub const HEADER_LEN: usize = 93;
/// Length of the AES-GCM tag.
pub const TAG_LEN: usize = 16;
/// Bytes a blob adds to its plaintext: `len(blob) = len(plaintext) + OVERHEAD`.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// The format version byte of blobs whose key lives in a PKCS#11 token (see the module docs).
pub const VERSION_TOKEN: u8 = 0x02;

/// The parts of the header the server needs to find the backing key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlobHeader {
    pub key_id: KeyId,
    pub material_id: MaterialId,
    /// Format version 2: the key is in a token ([`decrypt_in_token`]).
    pub in_token: bool,
}

/// Reads the key id and material id of a blob without decrypting it.
///
/// [`CryptoError::InvalidCiphertext`] if the blob is shorter than [`OVERHEAD`] or has another
/// version. Nothing here is authenticated yet; [`decrypt`] is what proves the blob genuine.
pub fn parse_header(blob: &[u8]) -> Result<BlobHeader, CryptoError> {
    let in_token = blob.first() == Some(&VERSION_TOKEN);
    let header = split(blob, if in_token { VERSION_TOKEN } else { VERSION })?.header;
    let key_id = header.get(KEY_ID).and_then(|b| b.try_into().ok());
    let material_id = header.get(MATERIAL_ID).and_then(|b| b.try_into().ok());
    match (key_id, material_id) {
        (Some(key_id), Some(material_id)) => Ok(BlobHeader {
            key_id: KeyId::from_bytes(key_id),
            material_id: MaterialId::from_bytes(material_id),
            in_token,
        }),
        _ => Err(CryptoError::InvalidCiphertext),
    }
}

/// Encrypts `plaintext` under `key` (the backing key of `key_id`'s version `material_id`),
/// binding it to `ctx`, with a fresh random salt and nonce.
pub fn encrypt(
    key: &SymmetricKey,
    key_id: KeyId,
    material_id: MaterialId,
    ctx: &EncryptionContext,
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let salt = random::array()?;
    let nonce = random::array()?;
    encrypt_with(key, key_id, material_id, ctx, plaintext, &salt, &nonce)
}

/// Decrypts a blob made by [`encrypt`] with the same `key` and `ctx`.
///
/// Every failure — truncated, unknown version, other key or version, other context, any
/// altered byte — is the same [`CryptoError::InvalidCiphertext`].
pub fn decrypt(
    key: &SymmetricKey,
    blob: &[u8],
    ctx: &EncryptionContext,
) -> Result<SecretBytes, CryptoError> {
    let parts = split(blob, VERSION)?;
    let aead = derive_key(key, parts.header).map_err(|_| CryptoError::InvalidCiphertext)?;
    let nonce = parts
        .header
        .get(NONCE)
        .and_then(|n| Nonce::try_assume_unique_for_key(n).ok())
        .ok_or(CryptoError::InvalidCiphertext)?;

    let mut buf = Zeroizing::new(Vec::with_capacity(parts.sealed.len()));
    buf.extend_from_slice(parts.sealed);
    let plaintext_len = aead
        .open_in_place(nonce, Aad::from(aad(parts.header, ctx)), &mut buf)
        .map_err(|_| CryptoError::InvalidCiphertext)?
        .len();
    buf.truncate(plaintext_len);
    Ok(SecretBytes::from_zeroizing(buf))
}

/// Encrypts `plaintext` inside `token` with its key labelled `label` (the KMS key
/// `key_id`, whose one material id is `material_id`), binding it to `ctx`: a version 2 blob.
pub fn encrypt_in_token(
    token: &Pkcs11Token,
    label: &str,
    key_id: KeyId,
    material_id: MaterialId,
    ctx: &EncryptionContext,
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let salt: [u8; 32] = random::array()?;
    let nonce: [u8; 12] = random::array()?;
    let mut blob = Vec::with_capacity(plaintext.len() + OVERHEAD);
    blob.push(VERSION_TOKEN);
    blob.extend_from_slice(key_id.as_bytes());
    blob.extend_from_slice(material_id.as_bytes());
    blob.extend_from_slice(&salt);
    blob.extend_from_slice(&nonce);
    debug_assert_eq!(blob.len(), HEADER_LEN);
    let sealed = token.gcm_encrypt(label, nonce, &aad(&blob, ctx), plaintext)?;
    if sealed.len() != plaintext.len() + TAG_LEN {
        return Err(CryptoError::Encrypt);
    }
    blob.extend_from_slice(&sealed);
    Ok(blob)
}

/// Decrypts a version 2 blob inside `token` with its key labelled `label`. Every failure of
/// the blob is [`CryptoError::InvalidCiphertext`]; a token that cannot be reached is
/// [`CryptoError::Token`].
pub fn decrypt_in_token(
    token: &Pkcs11Token,
    label: &str,
    blob: &[u8],
    ctx: &EncryptionContext,
) -> Result<SecretBytes, CryptoError> {
    let parts = split(blob, VERSION_TOKEN)?;
    let nonce: [u8; 12] = parts
        .header
        .get(NONCE)
        .and_then(|n| n.try_into().ok())
        .ok_or(CryptoError::InvalidCiphertext)?;
    token.gcm_decrypt(label, nonce, &aad(parts.header, ctx), parts.sealed)
}

/// [`encrypt`] with a chosen salt and nonce, so the golden vector can pin the format.
/// Never call it with a salt/nonce pair that was used before.
pub(crate) fn encrypt_with(
    key: &SymmetricKey,
    key_id: KeyId,
    material_id: MaterialId,
    ctx: &EncryptionContext,
    plaintext: &[u8],
    salt: &[u8; 32],
    nonce: &[u8; 12],
) -> Result<Vec<u8>, CryptoError> {
    let mut blob = Vec::with_capacity(plaintext.len() + OVERHEAD);
    blob.push(VERSION);
    blob.extend_from_slice(key_id.as_bytes());
    blob.extend_from_slice(material_id.as_bytes());
    blob.extend_from_slice(salt);
    blob.extend_from_slice(nonce);
    debug_assert_eq!(blob.len(), HEADER_LEN);

    let aead = derive_key(key, &blob)?;
    let aad = aad(&blob, ctx);
    blob.extend_from_slice(plaintext);
    let tag = aead
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(*nonce),
            Aad::from(aad),
            &mut blob[HEADER_LEN..],
        )
        .map_err(|_| CryptoError::Encrypt)?;
    blob.extend_from_slice(tag.as_ref());
    Ok(blob)
}

// Header fields, as byte ranges.
const KEY_ID: std::ops::Range<usize> = 1..17;
const MATERIAL_ID: std::ops::Range<usize> = 17..49;
const SALT: std::ops::Range<usize> = 49..81;
const NONCE: std::ops::Range<usize> = 81..93;
/// The header prefix that goes into the HKDF info: version, key id, material id.
const INFO_HEADER: std::ops::RangeTo<usize> = ..49;
const INFO_LABEL: &[u8] = b"keyhold-v1";

/// A blob split into its header and its ciphertext-and-tag.
struct Parts<'a> {
    header: &'a [u8],
    sealed: &'a [u8],
}

fn split(blob: &[u8], version: u8) -> Result<Parts<'_>, CryptoError> {
    if blob.len() < OVERHEAD || blob.first() != Some(&version) {
        return Err(CryptoError::InvalidCiphertext);
    }
    let (header, sealed) = blob.split_at(HEADER_LEN);
    Ok(Parts { header, sealed })
}

/// The per-blob AES-256-GCM key: HKDF-SHA256(backing key, salt, "keyhold-v1" ‖ header[..49]).
/// `header` must be the full 93-byte header.
fn derive_key(key: &SymmetricKey, header: &[u8]) -> Result<LessSafeKey, CryptoError> {
    let (Some(salt), Some(info_header)) = (header.get(SALT), header.get(INFO_HEADER)) else {
        return Err(CryptoError::InvalidCiphertext);
    };
    let info = [INFO_LABEL, info_header];
    let mut derived = Zeroizing::new([0u8; KEY_LEN]);
    Salt::new(HKDF_SHA256, salt)
        .extract(key.expose())
        .expand(&info, &AES_256_GCM)
        .and_then(|okm| okm.fill(derived.as_mut_slice()))
        .and_then(|()| UnboundKey::new(&AES_256_GCM, derived.as_slice()))
        .map(LessSafeKey::new)
        .map_err(|_| CryptoError::Encrypt)
}

fn aad(header: &[u8], ctx: &EncryptionContext) -> Vec<u8> {
    let ctx = ctx.canonical_bytes();
    let mut aad = Vec::with_capacity(header.len() + ctx.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(ctx);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> (SymmetricKey, KeyId, MaterialId, EncryptionContext) {
        (
            SymmetricKey::generate().unwrap(),
            KeyId::from_bytes([0x11; 16]),
            MaterialId::from_bytes([0x22; 32]),
            EncryptionContext::new([("purpose", "unit-test")]),
        )
    }

    #[test]
    fn layout_matches_the_format() {
        let (key, key_id, material_id, ctx) = fixture();
        let salt = [0x33; 32];
        let nonce = [0x44; 12];
        let blob = encrypt_with(&key, key_id, material_id, &ctx, b"hello", &salt, &nonce).unwrap();
        assert_eq!(blob.len(), 5 + OVERHEAD);
        assert_eq!(blob[0], 0x01);
        assert_eq!(&blob[1..17], &[0x11; 16]);
        assert_eq!(&blob[17..49], &[0x22; 32]);
        assert_eq!(&blob[49..81], &salt);
        assert_eq!(&blob[81..93], &nonce);
        assert_ne!(&blob[93..98], b"hello");
    }

    #[test]
    fn round_trip_and_header() {
        let (key, key_id, material_id, ctx) = fixture();
        let blob = encrypt(&key, key_id, material_id, &ctx, b"secret").unwrap();
        let header = parse_header(&blob).unwrap();
        assert_eq!(
            header,
            BlobHeader {
                key_id,
                material_id,
                in_token: false,
            }
        );
        let plain = decrypt(&key, &blob, &ctx).unwrap();
        assert_eq!(plain.expose_secret(), b"secret");
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let (key, key_id, material_id, ctx) = fixture();
        let blob = encrypt(&key, key_id, material_id, &ctx, b"").unwrap();
        assert_eq!(blob.len(), OVERHEAD);
        assert!(decrypt(&key, &blob, &ctx).unwrap().is_empty());
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let (key, key_id, material_id, ctx) = fixture();
        let blob = encrypt(&key, key_id, material_id, &ctx, b"bit flips").unwrap();
        for i in 0..blob.len() {
            for bit in 0..8 {
                let mut bad = blob.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    matches!(
                        decrypt(&key, &bad, &ctx),
                        Err(CryptoError::InvalidCiphertext)
                    ),
                    "flip of byte {i} bit {bit} was accepted"
                );
            }
        }
    }

    #[test]
    fn other_version_is_rejected_by_parse_header() {
        let (key, key_id, material_id, ctx) = fixture();
        let mut blob = encrypt(&key, key_id, material_id, &ctx, b"").unwrap();
        // Version 2 (a token key's) parses, says so, and never opens in software.
        blob[0] = VERSION_TOKEN;
        assert!(parse_header(&blob).unwrap().in_token);
        assert!(matches!(
            decrypt(&key, &blob, &ctx),
            Err(CryptoError::InvalidCiphertext)
        ));
        blob[0] = 0x03;
        assert!(matches!(
            parse_header(&blob),
            Err(CryptoError::InvalidCiphertext)
        ));
        blob[0] = 0x00;
        assert!(matches!(
            parse_header(&blob),
            Err(CryptoError::InvalidCiphertext)
        ));
    }

    #[test]
    fn short_input_is_rejected_by_parse_header() {
        let mut blob = vec![VERSION; OVERHEAD - 1];
        assert!(matches!(
            parse_header(&blob),
            Err(CryptoError::InvalidCiphertext)
        ));
        blob.push(0);
        assert!(parse_header(&blob).is_ok());
        assert!(matches!(
            parse_header(&[]),
            Err(CryptoError::InvalidCiphertext)
        ));
    }

    #[test]
    fn error_message_carries_no_detail() {
        let (key, ..) = fixture();
        let err = decrypt(&key, b"short", &EncryptionContext::empty()).unwrap_err();
        assert_eq!(err.to_string(), "invalid ciphertext");
    }

    /// Pins the format: `tests/data/blob_v1.json` was produced by this implementation when the
    /// format was created and must never change. `tests/blob_vector.rs` checks the same vector
    /// against an independent HKDF/AES-GCM computation and through the public `decrypt`.
    #[test]
    fn golden_vector_v1_encrypts_to_the_recorded_blob() {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../tests/data/blob_v1.json")).unwrap();
        let field = |name: &str| hex::decode(v[name].as_str().unwrap()).unwrap();
        let key = SymmetricKey::dangerous_from_bytes(field("key").try_into().unwrap());
        let key_id = KeyId::from_bytes(field("key_id").try_into().unwrap());
        let material_id = MaterialId::from_bytes(field("material_id").try_into().unwrap());
        let salt: [u8; 32] = field("salt").try_into().unwrap();
        let nonce: [u8; 12] = field("nonce").try_into().unwrap();
        let pairs: Vec<(&str, &str)> = v["context"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
            .collect();
        let ctx = EncryptionContext::new(pairs);
        assert_eq!(ctx.canonical_bytes(), field("canonical_context"));

        let blob = encrypt_with(
            &key,
            key_id,
            material_id,
            &ctx,
            &field("plaintext"),
            &salt,
            &nonce,
        )
        .unwrap();
        assert_eq!(hex::encode(blob), v["blob"].as_str().unwrap());
    }
}
