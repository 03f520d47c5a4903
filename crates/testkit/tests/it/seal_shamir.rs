//! The Shamir seal: a server that starts sealed, K-of-N unseal with an AEAD check of the
//! rebuilt root key, `keyhold seal`, restarts and `keyhold rekey` — through the same client
//! functions the CLI uses.

use aws_sdk_kms::error::ProvideErrorMetadata as _;
use aws_sdk_kms::primitives::Blob;
use keyhold_server::config::SealConfig;
use keyhold_testkit::TestServer;

/// A KMS client that does not retry (a sealed server's 503 is retryable).
fn kms_no_retry(server: &TestServer) -> aws_sdk_kms::Client {
    let config = aws_sdk_kms::config::Builder::from(&server.sdk_config(
        "000000000000",
        "dev-mode-secret",
        "us-east-1",
    ))
    .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())
    .build();
    aws_sdk_kms::Client::from_conf(config)
}

async fn unseal_with(server: &TestServer, shares: &[String]) {
    for share in shares {
        let answer = server.unseal(share).await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
    }
    let status = server.seal_status().await;
    assert_eq!(status.body["sealed"], false, "{:?}", status.body);
}

#[tokio::test]
async fn a_sealed_server_serves_no_cryptographic_or_secret_operation() {
    let server = TestServer::builder().shamir(5, 3).start().await;
    assert_eq!(server.shares().len(), 5);
    let status = server.seal_status().await;
    assert_eq!(status.status, 200);
    assert_eq!(
        status.body,
        serde_json::json!({"sealed": true, "kind": "shamir", "threshold": 3, "shares": 5, "progress": 0})
    );

    // Every protocol gets AWS's common ServiceUnavailable (503), which SDKs retry.
    for (target, body) in [
        (
            "TrentService.Encrypt",
            r#"{"KeyId":"alias/x","Plaintext":"AA=="}"#,
        ),
        ("TrentService.Decrypt", r#"{"CiphertextBlob":"AA=="}"#),
        ("TrentService.ListKeys", "{}"),
        ("secretsmanager.GetSecretValue", r#"{"SecretId":"s"}"#),
        ("AmazonSSM.GetParameter", r#"{"Name":"p"}"#),
    ] {
        let response = server.raw_json(target, body).await;
        assert_eq!(response.status, 503, "{target}");
        let json = response.json();
        assert_eq!(json["__type"], "ServiceUnavailable", "{target}");
        let message = json
            .get("message")
            .or_else(|| json.get("Message"))
            .and_then(|m| m.as_str())
            .unwrap_or_default();
        assert!(message.contains("Keyhold is sealed"), "{target}: {json}");
    }
    let error = kms_no_retry(&server)
        .list_keys()
        .send()
        .await
        .expect_err("sealed");
    assert_eq!(error.code(), Some("ServiceUnavailable"));
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(&server.sdk_config(
            "000000000000",
            "dev-mode-secret",
            "us-east-1",
        ))
        .retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled())
        .build(),
    );
    let error = sts.get_caller_identity().send().await.expect_err("sealed");
    assert_eq!(
        aws_sdk_sts::error::ProvideErrorMetadata::code(&error),
        Some("ServiceUnavailable")
    );
}

#[tokio::test]
async fn k_minus_one_shares_do_not_unseal_and_k_do() {
    let server = TestServer::builder().shamir(5, 3).start().await;
    let shares = server.shares().to_vec();
    for (i, share) in shares[..2].iter().enumerate() {
        let answer = server.unseal(share).await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        assert_eq!(answer.body["sealed"], true);
        assert_eq!(answer.body["progress"], i + 1);
    }
    // The same share twice does not count.
    let again = server.unseal(&shares[1]).await;
    assert_eq!(again.status, 400);
    assert!(again.error().unwrap().contains("already entered"));
    assert_eq!(again.body["progress"], 2);
    assert!(kms_no_retry(&server).list_keys().send().await.is_err());

    let answer = server.unseal(&shares[4]).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.body["sealed"], false);
    assert_eq!(answer.body["message"], "Keyhold is unsealed.");
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap();
    let key_id = key.key_metadata().unwrap().key_id();
    let encrypted = kms
        .encrypt()
        .key_id(key_id)
        .plaintext(Blob::new("after unseal"))
        .send()
        .await
        .unwrap();
    let decrypted = kms
        .decrypt()
        .ciphertext_blob(encrypted.ciphertext_blob().unwrap().clone())
        .send()
        .await
        .unwrap();
    assert_eq!(decrypted.plaintext().unwrap().as_ref(), b"after unseal");
    // Entering a share when unsealed changes nothing.
    let answer = server.unseal(&shares[0]).await;
    assert_eq!(answer.body["message"], "Keyhold is already unsealed.");
}

#[tokio::test]
async fn a_wrong_or_mixed_share_set_is_reported_and_progress_resets() {
    let server = TestServer::builder().shamir(3, 2).start().await;
    let other = TestServer::builder().shamir(3, 2).start().await;
    let shares = server.shares().to_vec();

    // Not a share at all: refused, progress kept.
    server.unseal(&shares[0]).await;
    let typo = format!("{}x", &shares[1][..shares[1].len() - 1]);
    for bad in [typo.as_str(), "hello", ""] {
        let answer = server.unseal(bad).await;
        assert_eq!(answer.status, 400, "{bad:?}");
        assert!(
            answer
                .error()
                .unwrap()
                .contains("not a Keyhold root key share")
        );
        assert_eq!(answer.body["progress"], 1);
    }
    // A share of another set (the same index as none entered) completes the threshold but
    // does not rebuild the root key: the AEAD check catches it and the progress resets.
    let answer = server.unseal(&other.shares()[1]).await;
    assert_eq!(answer.status, 400, "{:?}", answer.body);
    assert!(
        answer
            .error()
            .unwrap()
            .contains("do not rebuild the root key"),
        "{:?}",
        answer.body
    );
    assert_eq!(answer.body["sealed"], true);
    assert_eq!(answer.body["progress"], 0);
    assert!(kms_no_retry(&server).list_keys().send().await.is_err());
    // The right shares still unseal.
    unseal_with(&server, &shares[1..]).await;
    server.kms().list_keys().send().await.unwrap();
}

#[tokio::test]
async fn keyhold_seal_then_decrypt_is_refused_and_unseal_restores_service() {
    let server = TestServer::builder().shamir(3, 2).start().await;
    let shares = server.shares().to_vec();
    unseal_with(&server, &shares[..2]).await;
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap();
    let encrypted = kms
        .encrypt()
        .key_id(key.key_metadata().unwrap().key_id())
        .plaintext(Blob::new("sealed soon"))
        .send()
        .await
        .unwrap();
    let blob = encrypted.ciphertext_blob().unwrap().clone();
    let secrets = server.secrets_manager();
    secrets
        .create_secret()
        .name("db")
        .secret_string("hunter2")
        .send()
        .await
        .unwrap();

    // Sealing needs the admin token.
    let denied = keyhold_server::seal::client::seal(server.addr(), "not-the-token")
        .await
        .unwrap();
    assert_eq!(denied.status, 403);
    assert!(denied.error().unwrap().contains("admin token"));
    let denied = keyhold_server::seal::client::unseal(server.addr(), "", &shares[0])
        .await
        .unwrap();
    assert_eq!(denied.status, 403);
    assert_eq!(server.seal_status().await.body["sealed"], false);

    let answer = server.seal().await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["sealed"], true);
    assert_eq!(answer.body["message"], "Keyhold is sealed.");
    let error = kms_no_retry(&server)
        .decrypt()
        .ciphertext_blob(blob.clone())
        .send()
        .await
        .expect_err("sealed");
    assert_eq!(error.code(), Some("ServiceUnavailable"));
    let response = server
        .raw_json("secretsmanager.GetSecretValue", r#"{"SecretId":"db"}"#)
        .await;
    assert_eq!(response.status, 503);
    assert_eq!(
        server.seal().await.body["message"],
        "Keyhold was already sealed."
    );

    unseal_with(&server, &shares[1..]).await;
    let decrypted = kms.decrypt().ciphertext_blob(blob).send().await.unwrap();
    assert_eq!(decrypted.plaintext().unwrap().as_ref(), b"sealed soon");
    let value = secrets
        .get_secret_value()
        .secret_id("db")
        .send()
        .await
        .unwrap();
    assert_eq!(value.secret_string(), Some("hunter2"));
}

#[tokio::test]
async fn a_restart_is_sealed_and_rekey_replaces_the_share_set() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::builder()
        .shamir(3, 2)
        .data_dir(dir.path())
        .start()
        .await;
    let old = server.shares().to_vec();
    unseal_with(&server, &old[..2]).await;
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap();
    let blob = kms
        .encrypt()
        .key_id(key.key_metadata().unwrap().key_id())
        .plaintext(Blob::new("kept"))
        .send()
        .await
        .unwrap()
        .ciphertext_blob()
        .unwrap()
        .clone();
    server.stop().await;

    let config = keyhold_server::Config {
        data_dir: dir.path().to_path_buf(),
        storage: keyhold_testkit::test_storage_for(dir.path()).await,
        seal: Some(SealConfig::Shamir),
        ..keyhold_server::Config::default()
    };
    // `keyhold init` again is refused; rekey needs the threshold of the current set.
    let again = keyhold_server::initialize_shamir(&config, 3, 2).await;
    assert!(format!("{:#}", again.err().unwrap()).contains("already has a root key"));
    let parse = |s: &String| keyhold_crypto::seal::RootShare::parse(s).unwrap();
    let one: Vec<_> = old[..1].iter().map(parse).collect();
    assert!(
        keyhold_server::rekey_shamir(&config, &one, 4, 3)
            .await
            .is_err()
    );
    let current: Vec<_> = old[1..].iter().map(parse).collect();
    let new = keyhold_server::rekey_shamir(&config, &current, 4, 3)
        .await
        .unwrap();
    assert_eq!(new.len(), 4);
    let new: Vec<String> = new.iter().map(|s| s.to_text().to_string()).collect();

    let server = TestServer::builder()
        .shamir(3, 2)
        .data_dir(dir.path())
        .start()
        .await;
    let status = server.seal_status().await;
    assert_eq!(status.body["sealed"], true);
    assert_eq!(status.body["threshold"], 3);
    assert_eq!(status.body["shares"], 4);
    // The old shares no longer rebuild the root key.
    server.unseal(&old[0]).await;
    server.unseal(&old[1]).await;
    let answer = server.unseal(&old[2]).await;
    assert_eq!(answer.status, 400, "{:?}", answer.body);
    assert_eq!(answer.body["sealed"], true);
    unseal_with(&server, &new[1..]).await;
    let decrypted = server
        .kms()
        .decrypt()
        .ciphertext_blob(blob)
        .send()
        .await
        .unwrap();
    assert_eq!(decrypted.plaintext().unwrap().as_ref(), b"kept");
}
