//! `keyhold backup` / `keyhold restore`: a backup taken under a write load restores into
//! a server that decrypts every ciphertext made before it, and its audit trail verifies;
//! a backup that does not hold (wrong seal, damaged) replaces nothing. Restore checks the
//! backup with the seal it was taken under: a key file, a PKCS#11 token, Shamir shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_kms::primitives::Blob;
use keyhold_crypto::seal::RootShare;
use keyhold_server::audit::offline::{KeyTrust, verify_data_dir_with};
use keyhold_server::config::SealConfig;
use keyhold_server::ops::backup;
use keyhold_testkit::TestServer;

use crate::seal_pkcs11::Token;

fn config_for(dir: &std::path::Path) -> keyhold_server::Config {
    keyhold_server::Config {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_load_restores_and_verifies() {
    let source = tempfile::tempdir().unwrap();
    let server = TestServer::builder().data_dir(source.path()).start().await;
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap();
    let key_id = key.key_metadata().unwrap().key_id().to_owned();
    let mut before = Vec::new();
    for i in 0..20 {
        let plaintext = format!("before the backup {i}");
        let ct = kms
            .encrypt()
            .key_id(&key_id)
            .plaintext(Blob::new(plaintext.clone().into_bytes()))
            .send()
            .await
            .unwrap();
        before.push((plaintext, ct.ciphertext_blob().unwrap().clone()));
    }

    // A write load (new keys, secrets, encryptions) runs while the backup is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (stop, kms, sm) = (stop.clone(), server.kms(), server.secrets_manager());
        let key_id = key_id.clone();
        tokio::spawn(async move {
            let mut writes = 0u32;
            while !stop.load(Ordering::Relaxed) && writes < 2_000 {
                kms.create_key().send().await.unwrap();
                sm.create_secret()
                    .name(format!("load/{writes}"))
                    .secret_string("v")
                    .send()
                    .await
                    .unwrap();
                kms.encrypt()
                    .key_id(&key_id)
                    .plaintext(Blob::new(b"load".to_vec()))
                    .send()
                    .await
                    .unwrap();
                writes += 1;
            }
            writes
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let files = tempfile::tempdir().unwrap();
    let out = files.path().join("keyhold.backup");
    let summary = backup::backup(source.path(), &out).await.unwrap();
    let names: Vec<&str> = summary.members.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[0], "keyhold.db", "the key store first: {names:?}");
    let digests = names
        .iter()
        .position(|n| *n == "audit/digests.log")
        .unwrap();
    assert!(
        names[digests + 1..]
            .iter()
            .all(|n| n.starts_with("audit/segments/")),
        "the digests before the segments: {names:?}"
    );
    assert!(!names.iter().any(|n| n.contains("index")), "{names:?}");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let writes = load.await.unwrap();
    assert!(writes > 0, "the load ran");
    server.stop().await;

    // Restore into a fresh data directory that has the same seal (the root key file).
    let target = tempfile::tempdir().unwrap();
    std::fs::copy(
        source.path().join("root.key"),
        target.path().join("root.key"),
    )
    .unwrap();
    let restored = backup::restore(&config_for(target.path()), &out, &[])
        .await
        .unwrap();
    assert!(restored.audit_events > 20);

    // `keyhold audit verify` on the restored data directory.
    let verified = verify_data_dir_with(target.path(), None, None, &[])
        .await
        .unwrap();
    assert!(verified.report.ok(), "{:?}", verified.report.problems);
    assert!(matches!(verified.trust, KeyTrust::Unsealed));

    let server = TestServer::builder().data_dir(target.path()).start().await;
    for (plaintext, blob) in before {
        let answer = server
            .kms()
            .decrypt()
            .ciphertext_blob(blob)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.plaintext().unwrap().as_ref(), plaintext.as_bytes());
    }
    server.stop().await;
    // The restored server went on with the trail: it still verifies.
    let verified = verify_data_dir_with(target.path(), None, None, &[])
        .await
        .unwrap();
    assert!(verified.report.ok(), "{:?}", verified.report.problems);
}

#[tokio::test]
async fn a_backup_that_does_not_hold_replaces_nothing() {
    let source = tempfile::tempdir().unwrap();
    let server = TestServer::builder().data_dir(source.path()).start().await;
    server.kms().create_key().send().await.unwrap();
    let files = tempfile::tempdir().unwrap();
    let out = files.path().join("keyhold.backup");
    backup::backup(source.path(), &out).await.unwrap();
    server.stop().await;
    assert!(
        backup::backup(source.path(), &out).await.is_err(),
        "an existing file is not overwritten"
    );

    // Another seal: a data directory with its own root key and state.
    let other = tempfile::tempdir().unwrap();
    let server = TestServer::builder().data_dir(other.path()).start().await;
    let kept = server.kms().create_key().send().await.unwrap();
    server.stop().await;
    let err = backup::restore(&config_for(other.path()), &out, &[])
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("root key"), "{err:#}");
    // (The directory's bytes are not compared: the stopped server's last SQLite
    // connection may still be checkpointing its WAL. That the key is still served, below,
    // is what "replaces nothing" means.)

    // A damaged backup.
    let mut bytes = std::fs::read(&out).unwrap();
    let last = bytes.len() - 100;
    bytes[last] ^= 1;
    let damaged = files.path().join("damaged.backup");
    std::fs::write(&damaged, bytes).unwrap();
    let target = tempfile::tempdir().unwrap();
    std::fs::copy(
        source.path().join("root.key"),
        target.path().join("root.key"),
    )
    .unwrap();
    let err = backup::restore(&config_for(target.path()), &damaged, &[])
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("does not match its hash"),
        "{err:#}"
    );
    assert!(!target.path().join("keyhold.db").exists());

    // The untouched data directory still serves its key.
    let server = TestServer::builder().data_dir(other.path()).start().await;
    server
        .kms()
        .describe_key()
        .key_id(kept.key_metadata().unwrap().key_id())
        .send()
        .await
        .unwrap();
}

/// One key and one ciphertext under it, then a backup of the data directory into `out`.
async fn encrypt_and_back_up(server: &TestServer, out: &std::path::Path) -> Blob {
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap();
    let blob = kms
        .encrypt()
        .key_id(key.key_metadata().unwrap().key_id())
        .plaintext(Blob::new(b"sealed before the backup".to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    backup::backup(server.data_dir(), out).await.unwrap();
    blob
}

async fn decrypts(server: &TestServer, blob: Blob) {
    let answer = server
        .kms()
        .decrypt()
        .ciphertext_blob(blob)
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.plaintext().unwrap().as_ref(),
        b"sealed before the backup"
    );
}

fn sealed(dir: &std::path::Path, seal: SealConfig) -> keyhold_server::Config {
    keyhold_server::Config {
        seal: Some(seal),
        ..config_for(dir)
    }
}

/// Under a PKCS#11 seal the token's key opens the backup: the restore checks it with the
/// token, another token's key refuses it, and the restored server unseals itself from the
/// token and decrypts what was encrypted before the backup.
#[tokio::test]
async fn a_backup_restores_under_its_pkcs11_token_only() {
    let token = Token::new();
    let source = tempfile::tempdir().unwrap();
    let server = TestServer::builder()
        .seal(token.seal())
        .data_dir(source.path())
        .start()
        .await;
    let files = tempfile::tempdir().unwrap();
    let out = files.path().join("keyhold.backup");
    let blob = encrypt_and_back_up(&server, &out).await;
    server.stop().await;

    let target = tempfile::tempdir().unwrap();
    let other = Token::new();
    let err = backup::restore(&sealed(target.path(), other.seal()), &out, &[])
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("seal"), "{err:#}");
    assert!(!target.path().join("keyhold.db").exists());

    let restored = backup::restore(&sealed(target.path(), token.seal()), &out, &[])
        .await
        .unwrap();
    assert!(restored.audit_events > 0);
    let server = TestServer::builder()
        .seal(token.seal())
        .data_dir(target.path())
        .start()
        .await;
    decrypts(&server, blob).await;
}

/// Under a Shamir seal the operator gives the shares: fewer than the threshold, or shares
/// of another set, are refused before anything is replaced; the threshold's worth restores,
/// and the restored server unseals with the backup's shares.
#[tokio::test]
async fn a_backup_restores_under_a_shamir_seal_with_its_shares() {
    let source = tempfile::tempdir().unwrap();
    let server = TestServer::builder()
        .shamir(3, 2)
        .data_dir(source.path())
        .start()
        .await;
    let shares = server.shares().to_vec();
    for share in &shares[..2] {
        assert_eq!(server.unseal(share).await.status, 200);
    }
    let files = tempfile::tempdir().unwrap();
    let out = files.path().join("keyhold.backup");
    let blob = encrypt_and_back_up(&server, &out).await;
    server.stop().await;
    let parse = |texts: &[String]| -> Vec<RootShare> {
        texts.iter().map(|t| RootShare::parse(t).unwrap()).collect()
    };

    let elsewhere = tempfile::tempdir().unwrap();
    let other = TestServer::builder()
        .shamir(3, 2)
        .data_dir(elsewhere.path())
        .start()
        .await;
    let other_shares = other.shares().to_vec();
    for share in &other_shares[..2] {
        assert_eq!(other.unseal(share).await.status, 200);
    }
    other.stop().await;

    let target = tempfile::tempdir().unwrap();
    let config = sealed(target.path(), SealConfig::Shamir);
    let err = backup::restore(&config, &out, &parse(&shares[..1]))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("2 of 3"), "{err:#}");
    let err = backup::restore(&config, &out, &parse(&other_shares[..2]))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("does not open"), "{err:#}");
    assert!(!target.path().join("keyhold.db").exists());

    backup::restore(&config, &out, &parse(&shares[1..]))
        .await
        .unwrap();
    let server = TestServer::builder()
        .shamir(3, 2)
        .data_dir(target.path())
        .start()
        .await;
    for share in &shares[1..] {
        assert_eq!(server.unseal(share).await.status, 200);
    }
    decrypts(&server, blob).await;
    server.stop().await;

    // The target is Shamir-sealed now: a backup of another set, with that set's shares,
    // does not replace it (its shares do not open the target's seal).
    let other_out = files.path().join("other.backup");
    backup::backup(elsewhere.path(), &other_out).await.unwrap();
    let err = backup::restore(&config, &other_out, &parse(&other_shares[..2]))
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("do not open this data directory's seal"),
        "{err:#}"
    );
    let server = TestServer::builder()
        .shamir(3, 2)
        .data_dir(target.path())
        .start()
        .await;
    for share in &shares[..2] {
        assert_eq!(server.unseal(share).await.status, 200);
    }
    server.kms().list_keys().send().await.unwrap();
}
