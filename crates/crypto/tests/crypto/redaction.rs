//! `Debug` (and `Display` of errors) of every secret-holding type must not reveal the secret
//! in any spelling: hex, base64, or Rust's own byte-list `Debug`.

use base64::Engine;
use keyhold_crypto::seal::{DomainKey, KeyFileRoot, RootKeyProvider};
use keyhold_crypto::{CryptoError, EncryptionContext, SecretBytes, SymmetricKey, blob};

fn assert_no_leak(printed: &str, secret: &[u8]) {
    assert!(
        secret.len() >= 8,
        "use a secret long enough to be recognizable"
    );
    let spellings = [
        hex::encode(secret),
        hex::encode_upper(secret),
        base64::engine::general_purpose::STANDARD.encode(secret),
        format!("{:?}", secret),
        // Any 8-byte window in byte-list form, in case a type prints a prefix.
        format!("{:?}", &secret[..8])
            .trim_matches(['[', ']'])
            .to_owned(),
        hex::encode(&secret[..8]),
    ];
    for spelling in spellings {
        assert!(
            !printed.contains(&spelling),
            "{printed:?} contains {spelling:?}"
        );
    }
    if let Ok(text) = std::str::from_utf8(secret) {
        assert!(
            !printed.contains(text),
            "{printed:?} contains the secret text"
        );
    }
}

fn both(value: &impl std::fmt::Debug) -> String {
    format!("{value:?}\n{value:#?}")
}

#[test]
fn symmetric_key_debug_is_redacted() {
    let bytes: [u8; 32] = std::array::from_fn(|i| 0xa0 + u8::try_from(i).unwrap());
    let key = SymmetricKey::dangerous_from_bytes(bytes);
    assert_eq!(format!("{key:?}"), "SymmetricKey([redacted])");
    assert_no_leak(&both(&key), &bytes);
}

#[test]
fn secret_bytes_debug_is_redacted() {
    let secret = b"correct horse battery staple".to_vec();
    let s = SecretBytes::from(secret.clone());
    assert_no_leak(&both(&s), &secret);
    let random = SecretBytes::random(32).unwrap();
    assert_no_leak(&both(&random), random.expose_secret());
}

#[test]
fn decrypted_plaintext_debug_is_redacted() {
    let key = SymmetricKey::generate().unwrap();
    let ctx = EncryptionContext::empty();
    let id = keyhold_crypto::MaterialId::random().unwrap();
    let kid = keyhold_crypto::KeyId::from_bytes([0; 16]);
    let ciphertext = blob::encrypt(&key, kid, id, &ctx, b"plaintext secret").unwrap();
    let plain = blob::decrypt(&key, &ciphertext, &ctx).unwrap();
    assert_no_leak(&both(&plain), b"plaintext secret");
}

#[test]
fn key_file_root_and_domain_key_debug_are_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("root.key");
    let (root, _) = KeyFileRoot::load_or_create(&path).unwrap();
    let contents = std::fs::read_to_string(&path).unwrap();
    let encoded = contents.lines().nth(1).unwrap();
    let root_bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    assert_no_leak(&both(&root), &root_bytes);

    let domain = DomainKey::generate().unwrap();
    let sealed = domain.seal(&root).unwrap();
    // The only way to see a domain key's bytes: unseal it with the root provider directly.
    let domain_bytes = root.unseal(&sealed, b"keyhold-domain-key-v1").unwrap();
    assert_eq!(format!("{domain:?}"), "DomainKey([redacted])");
    assert_no_leak(&both(&domain), domain_bytes.expose_secret());
}

#[test]
fn errors_carry_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("root.key");
    std::fs::write(
        &path,
        "keyhold-root-key-v1\nc2VjcmV0IHNlY3JldCBzZWNyZXQgc2VjcmV0IHM=\n",
    )
    .unwrap();
    // Permissions are checked first; make the file private so the format check runs.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = KeyFileRoot::load(&path).unwrap_err();
    assert!(matches!(err, CryptoError::KeyFileFormat { .. }));
    let printed = format!("{err}\n{err:?}");
    assert!(!printed.contains("c2VjcmV0"), "{printed}");
    assert_eq!(
        CryptoError::InvalidCiphertext.to_string(),
        "invalid ciphertext"
    );
}
