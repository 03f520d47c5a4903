//! The same KMS crypto and Secrets Manager round trip against every seal kind this build
//! supports: a key file outside the data directory (strict mode), a Shamir seal after
//! unseal, and a PKCS#11 token (SoftHSM2). And strict mode without an explicit seal refuses to start.

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use keyhold_testkit::{Creds, TestServer};

async fn round_trip(server: &TestServer, creds: &Creds) {
    let clients = server.clients(creds);
    let kms = &clients.kms;
    let key = kms.create_key().send().await.unwrap();
    let key_id = key.key_metadata().unwrap().key_id().to_owned();
    let encrypted = kms
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new("matrix"))
        .encryption_context("purpose", "seal-matrix")
        .send()
        .await
        .unwrap();
    let decrypted = kms
        .decrypt()
        .ciphertext_blob(encrypted.ciphertext_blob().unwrap().clone())
        .encryption_context("purpose", "seal-matrix")
        .send()
        .await
        .unwrap();
    assert_eq!(decrypted.plaintext().unwrap().as_ref(), b"matrix");
    let data_key = kms
        .generate_data_key()
        .key_id(&key_id)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .unwrap();
    let reopened = kms
        .decrypt()
        .ciphertext_blob(data_key.ciphertext_blob().unwrap().clone())
        .send()
        .await
        .unwrap();
    assert_eq!(reopened.plaintext(), data_key.plaintext());
    kms.rotate_key_on_demand()
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    let after_rotation = kms
        .decrypt()
        .ciphertext_blob(encrypted.ciphertext_blob().unwrap().clone())
        .encryption_context("purpose", "seal-matrix")
        .send()
        .await
        .unwrap();
    assert_eq!(after_rotation.plaintext().unwrap().as_ref(), b"matrix");

    let secrets = &clients.secrets_manager;
    secrets
        .create_secret()
        .name("matrix/db")
        .secret_string("s3cr3t")
        .kms_key_id(&key_id)
        .send()
        .await
        .unwrap();
    secrets
        .put_secret_value()
        .secret_id("matrix/db")
        .secret_string("s3cr3t-2")
        .send()
        .await
        .unwrap();
    let value = secrets
        .get_secret_value()
        .secret_id("matrix/db")
        .send()
        .await
        .unwrap();
    assert_eq!(value.secret_string(), Some("s3cr3t-2"));
    let previous = secrets
        .get_secret_value()
        .secret_id("matrix/db")
        .version_stage("AWSPREVIOUS")
        .send()
        .await
        .unwrap();
    assert_eq!(previous.secret_string(), Some("s3cr3t"));
}

#[tokio::test]
async fn key_file_seal_outside_the_data_dir() {
    let server = TestServer::builder().strict_bootstrap().start().await;
    let (key, secret) = server.admin_credentials().unwrap();
    let creds = Creds::new(key, secret);
    // The key file is outside the data directory.
    assert!(!server.data_dir().join("root.key").exists());
    round_trip(&server, &creds).await;
}

#[tokio::test]
async fn shamir_seal_after_unseal() {
    let server = TestServer::builder()
        .strict_bootstrap()
        .shamir(3, 2)
        .start()
        .await;
    let (key, secret) = server.admin_credentials().expect("init creates the admin");
    let creds = Creds::new(key, secret);
    for share in &server.shares()[1..] {
        assert_eq!(server.unseal(share).await.status, 200);
    }
    round_trip(&server, &creds).await;
}

#[tokio::test]
async fn pkcs11_seal() {
    let token = crate::seal_pkcs11::Token::new();
    let server = TestServer::builder()
        .strict_bootstrap()
        .seal(token.seal())
        .start()
        .await;
    let (key, secret) = server.admin_credentials().unwrap();
    let creds = Creds::new(key, secret);
    round_trip(&server, &creds).await;
}

#[tokio::test]
async fn strict_mode_without_a_seal_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = keyhold_server::Config {
        mode: keyhold_server::Mode::Strict,
        data_dir: dir.path().to_path_buf(),
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        ..keyhold_server::Config::default()
    };
    let error = keyhold_server::Server::bind(config.clone())
        .await
        .err()
        .expect("no seal, no start");
    let message = format!("{error:#}");
    assert!(
        message.contains("strict mode needs an explicit root of trust"),
        "{message}"
    );
    assert!(message.contains("kind = \"shamir\""), "{message}");
    // Nothing was created: not even a root key beside the data.
    assert!(!dir.path().join("root.key").exists());
    assert!(!dir.path().join("keyhold.db").exists());

    // A key file inside the data directory is refused too.
    let inside = keyhold_server::Config {
        seal: Some(keyhold_server::config::SealConfig::KeyFile {
            path: dir.path().join("keys/root.key"),
        }),
        ..config
    };
    let error = keyhold_server::Server::bind(inside).await.err().unwrap();
    assert!(format!("{error:#}").contains("inside the data directory"));
    assert!(!dir.path().join("keys").exists());
}
