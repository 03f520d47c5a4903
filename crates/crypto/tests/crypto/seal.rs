//! The seal: the provider contract (run against every `RootKeyProvider`), the domain key,
//! and the dev-mode key file.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine;
use keyhold_crypto::seal::{DomainKey, KeyFileRoot, RootKeyProvider};
use keyhold_crypto::{CryptoError, MaterialId, SymmetricKey, blob};

const ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const OTHER_ARN: &str =
    "arn:aws:kms:us-east-1:111122223333:key/0987dcba-09fe-87dc-65ba-ab0987654321";

/// A provider under test, a second independent root of the same kind, and whatever must
/// outlive them (the key files' directory).
type Case = (
    Box<dyn RootKeyProvider>,
    Box<dyn RootKeyProvider>,
    tempfile::TempDir,
);

/// One case per provider kind; every provider must pass every contract test below.
fn providers() -> Vec<Case> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let key_file = |name| {
        KeyFileRoot::load_or_create(&dir.path().join(name))
            .expect("key file is created")
            .0
    };
    let (a, b) = (key_file("a.key"), key_file("b.key"));
    vec![(Box::new(a), Box::new(b), dir)]
}

fn is_unseal<T>(result: Result<T, CryptoError>) -> bool {
    matches!(result, Err(CryptoError::Unseal))
}

// ---- provider contract -------------------------------------------------------------------

#[test]
fn provider_seal_round_trips() {
    for (root, _, _dir) in providers() {
        assert!(!root.kind().is_empty());
        for plaintext in [&b""[..], b"x", &[7u8; 32], &[9u8; 5000]] {
            let sealed = root.seal(plaintext, b"aad").unwrap();
            assert_eq!(
                root.unseal(&sealed, b"aad").unwrap().expose_secret(),
                plaintext
            );
        }
    }
}

#[test]
fn provider_rejects_wrong_aad_other_root_and_damage() {
    for (root, other, _dir) in providers() {
        let sealed = root.seal(b"domain key bytes", b"aad").unwrap();
        assert!(is_unseal(root.unseal(&sealed, b"aae")));
        assert!(is_unseal(root.unseal(&sealed, b"")));
        assert!(is_unseal(other.unseal(&sealed, b"aad")));
        for len in 0..sealed.len() {
            assert!(
                is_unseal(root.unseal(&sealed[..len], b"aad")),
                "truncated to {len}"
            );
        }
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x80;
            assert!(is_unseal(root.unseal(&bad, b"aad")), "flipped byte {i}");
        }
    }
}

#[test]
fn provider_seals_are_randomized() {
    for (root, _, _dir) in providers() {
        assert_ne!(
            root.seal(b"same", b"aad").unwrap(),
            root.seal(b"same", b"aad").unwrap()
        );
    }
}

#[test]
fn sealed_domain_key_opens_only_with_its_root() {
    for (root, other, _dir) in providers() {
        let domain = DomainKey::generate().unwrap();
        let sealed = domain.seal(root.as_ref()).unwrap();
        let reopened = DomainKey::unseal(root.as_ref(), &sealed).unwrap();
        assert!(is_unseal(DomainKey::unseal(other.as_ref(), &sealed)));

        // The reopened key is the same key: it opens what the original sealed.
        let id = MaterialId::random().unwrap();
        let material = SymmetricKey::generate().unwrap();
        let sealed_material = domain.seal_material(&material, ARN, &id).unwrap();
        assert!(reopened.unseal_material(&sealed_material, ARN, &id).is_ok());
    }
}

#[test]
fn domain_key_sealed_under_another_aad_is_refused() {
    for (root, _, _dir) in providers() {
        let sealed = root.seal(&[1u8; 32], b"keyhold-something-else").unwrap();
        assert!(is_unseal(DomainKey::unseal(root.as_ref(), &sealed)));
        // Right AAD, wrong length: not a domain key either.
        let sealed = root.seal(&[1u8; 31], b"keyhold-domain-key-v1").unwrap();
        assert!(is_unseal(DomainKey::unseal(root.as_ref(), &sealed)));
        let sealed = root.seal(&[1u8; 32], b"keyhold-domain-key-v1").unwrap();
        assert!(DomainKey::unseal(root.as_ref(), &sealed).is_ok());
    }
}

// ---- domain key --------------------------------------------------------------------------

#[test]
fn sealed_material_is_bound_to_its_arn_and_material_id() {
    let domain = DomainKey::generate().unwrap();
    let other_domain = DomainKey::generate().unwrap();
    let material = SymmetricKey::generate().unwrap();
    let id = MaterialId::random().unwrap();
    let other_id = MaterialId::random().unwrap();
    let sealed = domain.seal_material(&material, ARN, &id).unwrap();

    let reopened = domain.unseal_material(&sealed, ARN, &id).unwrap();
    // Same material: a blob made with one decrypts with the other.
    let ctx = keyhold_crypto::EncryptionContext::empty();
    let key_id = keyhold_crypto::KeyId::from_bytes([1; 16]);
    let ciphertext = blob::encrypt(&material, key_id, id, &ctx, b"payload").unwrap();
    assert_eq!(
        blob::decrypt(&reopened, &ciphertext, &ctx)
            .unwrap()
            .expose_secret(),
        b"payload"
    );

    assert!(is_unseal(domain.unseal_material(&sealed, OTHER_ARN, &id)));
    assert!(is_unseal(domain.unseal_material(&sealed, ARN, &other_id)));
    assert!(is_unseal(other_domain.unseal_material(&sealed, ARN, &id)));
    assert!(is_unseal(domain.unseal_secret(ARN, &id.to_hex(), &sealed)));
}

#[test]
fn sealed_secrets_are_bound_to_purpose_and_id() {
    let domain = DomainKey::generate().unwrap();
    let sealed = domain
        .seal_secret("iam-secret-access-key", "AKIAEXAMPLE", b"wJalr")
        .unwrap();
    let opened = domain
        .unseal_secret("iam-secret-access-key", "AKIAEXAMPLE", &sealed)
        .unwrap();
    assert_eq!(opened.expose_secret(), b"wJalr");
    assert!(is_unseal(domain.unseal_secret(
        "iam-secret-access-key",
        "AKIAOTHER",
        &sealed
    )));
    assert!(is_unseal(domain.unseal_secret(
        "other-purpose",
        "AKIAEXAMPLE",
        &sealed
    )));
    // Moving bytes between purpose and id is not the same AAD.
    assert!(is_unseal(domain.unseal_secret(
        "iam-secret-access-keyAKIA",
        "EXAMPLE",
        &sealed
    )));
    assert!(is_unseal(DomainKey::generate().unwrap().unseal_secret(
        "iam-secret-access-key",
        "AKIAEXAMPLE",
        &sealed
    )));
}

#[test]
fn sealed_material_does_not_contain_the_material() {
    let domain = DomainKey::generate().unwrap();
    let root_dir = tempfile::tempdir().unwrap();
    let (root, _) = KeyFileRoot::load_or_create(&root_dir.path().join("root.key")).unwrap();
    let sealed_domain = domain.seal(&root).unwrap();
    let domain_bytes = root
        .unseal(&sealed_domain, b"keyhold-domain-key-v1")
        .unwrap();
    assert_eq!(domain_bytes.len(), 32);
    assert!(
        !sealed_domain
            .windows(32)
            .any(|w| w == domain_bytes.expose_secret())
    );
}

// ---- key file ----------------------------------------------------------------------------

#[test]
fn key_file_is_created_with_mode_0600_and_the_documented_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("root.key");
    let (_, created) = KeyFileRoot::load_or_create(&path).unwrap();
    assert!(created);
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");

    let contents = fs::read_to_string(&path).unwrap();
    let encoded = contents.strip_prefix("keyhold-root-key-v1\n").unwrap();
    let encoded = encoded.strip_suffix('\n').unwrap();
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    assert_eq!(key.len(), 32);

    // Nothing but the key file is left in the directory.
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["root.key"]);
}

#[test]
fn key_file_is_loaded_not_replaced_on_the_second_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("root.key");
    let (first, created) = KeyFileRoot::load_or_create(&path).unwrap();
    assert!(created);
    let before = fs::read(&path).unwrap();
    let (second, created) = KeyFileRoot::load_or_create(&path).unwrap();
    assert!(!created);
    assert_eq!(fs::read(&path).unwrap(), before);
    assert_eq!(second.path(), path);

    let sealed = first.seal(b"secret", b"aad").unwrap();
    assert_eq!(
        second.unseal(&sealed, b"aad").unwrap().expose_secret(),
        b"secret"
    );
    let loaded = KeyFileRoot::load(&path).unwrap();
    assert_eq!(
        loaded.unseal(&sealed, b"aad").unwrap().expose_secret(),
        b"secret"
    );
}

#[test]
fn concurrent_creators_agree_on_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("root.key");
    let roots: Vec<(KeyFileRoot, bool)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| KeyFileRoot::load_or_create(&path).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(roots.iter().filter(|(_, created)| *created).count(), 1);
    let sealed = roots[0].0.seal(b"s", b"").unwrap();
    for (root, _) in &roots {
        assert!(root.unseal(&sealed, b"").is_ok());
    }
}

#[test]
fn corrupted_key_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("root.key");
    KeyFileRoot::load_or_create(&path).unwrap();
    let good = fs::read(&path).unwrap();

    let mut flipped_magic = good.clone();
    flipped_magic[0] ^= 0x20;
    let mut bad_base64 = good.clone();
    bad_base64[25] = b'!';
    let corruptions: [&[u8]; 5] = [
        b"",
        &good[..good.len() - 2],
        &flipped_magic,
        &bad_base64,
        &[good.as_slice(), b"x"].concat(),
    ];
    for corrupt in corruptions {
        write_0600(&path, corrupt);
        assert!(
            matches!(
                KeyFileRoot::load_or_create(&path),
                Err(CryptoError::KeyFileFormat { path: p }) if p == path
            ),
            "accepted {:?}",
            String::from_utf8_lossy(corrupt)
        );
        // Refused, not replaced.
        assert_eq!(fs::read(&path).unwrap(), corrupt);
    }
}

#[test]
fn key_file_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("root.key");
    KeyFileRoot::load_or_create(&path).unwrap();
    for mode in [0o644, 0o640, 0o604, 0o660, 0o602] {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        let err = KeyFileRoot::load_or_create(&path).unwrap_err();
        assert!(
            matches!(err, CryptoError::KeyFilePermissions { mode: m, .. } if m == mode),
            "mode {mode:o}: {err:?}"
        );
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
    assert!(KeyFileRoot::load(&path).is_ok());
}

#[test]
fn key_file_in_a_missing_directory_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("root.key");
    let err = KeyFileRoot::load_or_create(&path).unwrap_err();
    assert!(matches!(err, CryptoError::KeyFile { .. }), "{err:?}");
    assert!(err.to_string().contains("root.key"));
}

#[test]
fn load_requires_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("root.key");
    assert!(matches!(
        KeyFileRoot::load(&path),
        Err(CryptoError::KeyFile { .. })
    ));
    assert!(!path.exists());
}

#[test]
fn a_directory_is_not_a_key_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
    assert!(KeyFileRoot::load(dir.path()).is_err());
}

fn write_0600(path: &Path, contents: &[u8]) {
    fs::write(path, contents).expect("write key file");
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).expect("chmod key file");
}
