//! The blob v1 golden vector (`tests/data/blob_v1.json`), checked in the decrypt direction
//! through the public API and re-derived by a test-only computation that shares no code with
//! `blob.rs`: HKDF written out from HMAC-SHA256 (RFC 5869), AES-GCM written out from the raw
//! AES block cipher and GHASH (NIST SP 800-38D). The encrypt direction is the unit test
//! `blob::tests::golden_vector_v1_encrypts_to_the_recorded_blob`.

use aws_lc_rs::cipher::{AES_256, EncryptingKey, UnboundCipherKey};
use aws_lc_rs::hmac;
use keyhold_crypto::blob::{self, BlobHeader};
use keyhold_crypto::{CryptoError, EncryptionContext, KeyId, MaterialId, SymmetricKey};

struct Vector {
    key: [u8; 32],
    key_id: [u8; 16],
    material_id: [u8; 32],
    salt: Vec<u8>,
    nonce: Vec<u8>,
    context: Vec<(String, String)>,
    canonical_context: Vec<u8>,
    plaintext: Vec<u8>,
    derived_key: Vec<u8>,
    blob: Vec<u8>,
}

fn vector() -> Vector {
    let v: serde_json::Value =
        serde_json::from_str(include_str!("../data/blob_v1.json")).expect("vector is JSON");
    let field = |name: &str| hex::decode(v[name].as_str().expect(name)).expect(name);
    Vector {
        key: field("key").try_into().expect("key is 32 bytes"),
        key_id: field("key_id").try_into().expect("key_id is 16 bytes"),
        material_id: field("material_id")
            .try_into()
            .expect("material_id is 32 bytes"),
        salt: field("salt"),
        nonce: field("nonce"),
        context: v["context"]
            .as_object()
            .expect("context is an object")
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().expect("context values are strings").to_owned(),
                )
            })
            .collect(),
        canonical_context: field("canonical_context"),
        plaintext: field("plaintext"),
        derived_key: field("derived_key"),
        blob: field("blob"),
    }
}

fn context(v: &Vector) -> EncryptionContext {
    EncryptionContext::new(v.context.iter().map(|(k, s)| (k.as_str(), s.as_str())))
}

#[test]
fn golden_vector_decrypts_through_the_public_api() {
    let v = vector();
    let key = SymmetricKey::dangerous_from_bytes(v.key);
    assert_eq!(
        blob::parse_header(&v.blob).unwrap(),
        BlobHeader {
            key_id: KeyId::from_bytes(v.key_id),
            material_id: MaterialId::from_bytes(v.material_id),
            in_token: false,
        }
    );
    let plaintext = blob::decrypt(&key, &v.blob, &context(&v)).unwrap();
    assert_eq!(plaintext.expose_secret(), v.plaintext);
    assert_eq!(v.blob.len(), v.plaintext.len() + blob::OVERHEAD);
}

#[test]
fn golden_vector_does_not_decrypt_without_its_context() {
    let v = vector();
    let key = SymmetricKey::dangerous_from_bytes(v.key);
    assert!(matches!(
        blob::decrypt(&key, &v.blob, &EncryptionContext::empty()),
        Err(CryptoError::InvalidCiphertext)
    ));
}

#[test]
fn golden_vector_matches_an_independent_computation() {
    let v = vector();
    assert_eq!(context(&v).canonical_bytes(), v.canonical_context);

    let mut header = vec![0x01];
    header.extend_from_slice(&v.key_id);
    header.extend_from_slice(&v.material_id);
    header.extend_from_slice(&v.salt);
    header.extend_from_slice(&v.nonce);
    assert_eq!(header.len(), 93);

    let info = [b"keyhold-v1".as_slice(), &header[..49]].concat();
    let derived = hkdf_sha256_32(&v.key, &v.salt, &info);
    assert_eq!(derived.as_slice(), v.derived_key);

    let aad = [header.as_slice(), &v.canonical_context].concat();
    let nonce: [u8; 12] = v.nonce.as_slice().try_into().unwrap();
    let (ciphertext, tag) = aes256_gcm_seal(&derived, &nonce, &aad, &v.plaintext);
    let expected = [header.as_slice(), &ciphertext, &tag].concat();
    assert_eq!(hex::encode(expected), hex::encode(&v.blob));
}

#[test]
fn independent_aes_gcm_matches_nist_test_case_16() {
    // NIST GCM spec (McGrew & Viega), test case 16: AES-256, 96-bit IV, with AAD.
    let key: [u8; 32] =
        hex::decode("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
            .unwrap()
            .try_into()
            .unwrap();
    let iv: [u8; 12] = hex::decode("cafebabefacedbaddecaf888")
        .unwrap()
        .try_into()
        .unwrap();
    let plaintext = hex::decode(
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
    )
    .unwrap();
    let aad = hex::decode("feedfacedeadbeeffeedfacedeadbeefabaddad2").unwrap();
    let (ciphertext, tag) = aes256_gcm_seal(&key, &iv, &aad, &plaintext);
    assert_eq!(
        hex::encode(ciphertext),
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
    );
    assert_eq!(hex::encode(tag), "76fc6ece0f4e1768cddf8853bb2d551b");
}

#[test]
fn independent_hkdf_matches_rfc5869_test_case_1() {
    let ikm = [0x0b; 22];
    let salt = hex::decode("000102030405060708090a0b0c").unwrap();
    let info = hex::decode("f0f1f2f3f4f5f6f7f8f9").unwrap();
    // RFC 5869 A.1 asks for 42 bytes; the first 32 are the first HMAC block.
    assert_eq!(
        hex::encode(hkdf_sha256_32(&ikm, &salt, &info)),
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
    );
}

/// HKDF-SHA256 with 32 bytes of output (one expand block), per RFC 5869.
fn hkdf_sha256_32(ikm: &[u8], salt: &[u8], info: &[u8]) -> [u8; 32] {
    let prk = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, salt), ikm);
    let t1 = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, prk.as_ref()),
        &[info, &[1u8]].concat(),
    );
    t1.as_ref()
        .try_into()
        .expect("HMAC-SHA256 output is 32 bytes")
}

/// AES-256-GCM with a 96-bit IV, per NIST SP 800-38D, from the raw block cipher.
fn aes256_gcm_seal(
    key: &[u8; 32],
    iv: &[u8; 12],
    aad: &[u8],
    plaintext: &[u8],
) -> (Vec<u8>, [u8; 16]) {
    let key = UnboundCipherKey::new(&AES_256, key).expect("a 32-byte key is an AES-256 key");
    let aes = EncryptingKey::ecb(key).expect("AES supports ECB");
    let encrypt_block = |block: [u8; 16]| {
        let mut b = block;
        aes.encrypt(&mut b).expect("one whole block encrypts");
        b
    };
    let h = u128::from_be_bytes(encrypt_block([0; 16]));
    let counter_block = |counter: u32| {
        let mut block = [0u8; 16];
        block[..12].copy_from_slice(iv);
        block[12..].copy_from_slice(&counter.to_be_bytes());
        block
    };

    let mut ciphertext = Vec::with_capacity(plaintext.len());
    for (i, chunk) in plaintext.chunks(16).enumerate() {
        let keystream = encrypt_block(counter_block(
            2 + u32::try_from(i).expect("test inputs are short"),
        ));
        ciphertext.extend(chunk.iter().zip(keystream).map(|(p, k)| p ^ k));
    }

    let mut s = 0u128;
    for data in [aad, &ciphertext] {
        for chunk in data.chunks(16) {
            let mut block = [0u8; 16];
            block[..chunk.len()].copy_from_slice(chunk);
            s = gf128_mul(s ^ u128::from_be_bytes(block), h);
        }
    }
    let bits = |data: &[u8]| u128::try_from(data.len() * 8).expect("usize fits in u128");
    let lengths = (bits(aad) << 64) | bits(&ciphertext);
    s = gf128_mul(s ^ lengths, h);
    let tag = s ^ u128::from_be_bytes(encrypt_block(counter_block(1)));
    (ciphertext, tag.to_be_bytes())
}

/// Multiplication in GF(2^128) with GCM's bit order (SP 800-38D, algorithm 1).
fn gf128_mul(x: u128, y: u128) -> u128 {
    const R: u128 = 0xe1 << 120;
    let mut z = 0u128;
    let mut v = y;
    for i in 0..128 {
        if (x >> (127 - i)) & 1 == 1 {
            z ^= v;
        }
        v = if v & 1 == 1 { (v >> 1) ^ R } else { v >> 1 };
    }
    z
}
