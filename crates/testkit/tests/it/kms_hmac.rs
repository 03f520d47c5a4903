//! HMAC KMS keys through the real `aws-sdk-kms` client: CreateKey for every HMAC spec,
//! GenerateMac and VerifyMac, and AWS's errors (`KMSInvalidMacException`, never
//! `MacValid: false`).

use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, MacAlgorithmSpec as Mac};
use keyhold_testkit::TestServer;

fn code_msg<E: ProvideErrorMetadata>(e: &E) -> (String, String) {
    (
        e.code().unwrap_or_default().to_owned(),
        e.message().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn every_hmac_spec_generates_and_verifies() {
    let server = TestServer::start().await;
    let kms = server.kms();
    for (spec, alg, len) in [
        (KeySpec::Hmac224, Mac::HmacSha224, 28),
        (KeySpec::Hmac256, Mac::HmacSha256, 32),
        (KeySpec::Hmac384, Mac::HmacSha384, 48),
        (KeySpec::Hmac512, Mac::HmacSha512, 64),
    ] {
        let m = kms
            .create_key()
            .key_spec(spec.clone())
            .key_usage(KeyUsageType::GenerateVerifyMac)
            .send()
            .await
            .unwrap()
            .key_metadata
            .unwrap();
        assert_eq!(m.mac_algorithms(), std::slice::from_ref(&alg));
        assert!(m.encryption_algorithms().is_empty());
        assert!(m.signing_algorithms().is_empty());
        let key = m.key_id();
        let arn = m.arn().unwrap();
        let mac = kms
            .generate_mac()
            .key_id(key)
            .message(Blob::new(b"token-payload".to_vec()))
            .mac_algorithm(alg.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(mac.key_id(), Some(arn));
        assert_eq!(mac.mac_algorithm(), Some(&alg));
        let tag = mac.mac.unwrap();
        assert_eq!(tag.as_ref().len(), len);
        // Deterministic: the same message gives the same MAC.
        let again = kms
            .generate_mac()
            .key_id(key)
            .message(Blob::new(b"token-payload".to_vec()))
            .mac_algorithm(alg.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(again.mac(), Some(&tag));
        let ok = kms
            .verify_mac()
            .key_id(key)
            .message(Blob::new(b"token-payload".to_vec()))
            .mac(tag.clone())
            .mac_algorithm(alg.clone())
            .send()
            .await
            .unwrap();
        assert!(ok.mac_valid());
        assert_eq!(ok.mac_algorithm(), Some(&alg));
        let e = kms
            .verify_mac()
            .key_id(key)
            .message(Blob::new(b"token-payloaD".to_vec()))
            .mac(tag.clone())
            .mac_algorithm(alg.clone())
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            code_msg(&e),
            ("KMSInvalidMacException".into(), String::new())
        );
        // HMAC keys have no public key and do not encrypt or sign.
        let e = kms.get_public_key().key_id(key).send().await.unwrap_err();
        assert_eq!(e.code(), Some("UnsupportedOperationException"));
        let e = kms
            .encrypt()
            .key_id(key)
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            code_msg(&e),
            (
                "InvalidKeyUsageException".into(),
                format!("{arn} key usage is GENERATE_VERIFY_MAC which is not valid for Encrypt.")
            )
        );
        let e = kms
            .sign()
            .key_id(key)
            .message(Blob::new(b"x".to_vec()))
            .signing_algorithm(aws_sdk_kms::types::SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            code_msg(&e),
            (
                "InvalidKeyUsageException".into(),
                format!("{arn} key usage is GENERATE_VERIFY_MAC which is not valid for Sign.")
            )
        );
    }
}

#[tokio::test]
async fn mac_errors_are_aws_errors() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let e = kms
        .create_key()
        .key_spec(KeySpec::Hmac256)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_msg(&e),
        (
            "ValidationException".into(),
            "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys.".into()
        )
    );
    let key = kms
        .create_key()
        .key_spec(KeySpec::Hmac224)
        .key_usage(KeyUsageType::GenerateVerifyMac)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let e = kms
        .generate_mac()
        .key_id(&key)
        .message(Blob::new(b"m".to_vec()))
        .mac_algorithm(Mac::HmacSha256)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_msg(&e),
        (
            "InvalidKeyUsageException".into(),
            "Algorithm HMAC_SHA_256 is incompatible with key spec HMAC_224.".into()
        )
    );
    let e = kms
        .verify_mac()
        .key_id(&key)
        .message(Blob::new(b"m".to_vec()))
        .mac(Blob::new(vec![0; 28]))
        .mac_algorithm(Mac::HmacSha512)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_msg(&e),
        (
            "InvalidKeyUsageException".into(),
            "Algorithm HMAC_SHA_512 is incompatible with key spec HMAC_224.".into()
        )
    );
    let e = kms
        .generate_mac()
        .key_id("key_id")
        .message(Blob::new(b"m".to_vec()))
        .mac_algorithm(Mac::HmacSha256)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_msg(&e),
        ("NotFoundException".into(), "Invalid keyId 'key_id'".into())
    );
    let symmetric = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let e = kms
        .generate_mac()
        .key_id(symmetric.key_id())
        .message(Blob::new(b"m".to_vec()))
        .mac_algorithm(Mac::HmacSha256)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_msg(&e),
        (
            "InvalidKeyUsageException".into(),
            format!(
                "{} key usage is ENCRYPT_DECRYPT which is not valid for GenerateMac.",
                symmetric.arn().unwrap()
            )
        )
    );
    let e = kms
        .generate_mac()
        .key_id(&key)
        .message(Blob::new(b"m".to_vec()))
        .mac_algorithm(Mac::HmacSha224)
        .dry_run(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("DryRunOperationException"));
    kms.disable_key().key_id(&key).send().await.unwrap();
    let e = kms
        .generate_mac()
        .key_id(&key)
        .message(Blob::new(b"m".to_vec()))
        .mac_algorithm(Mac::HmacSha224)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("DisabledException"));
    let e = kms
        .enable_key_rotation()
        .key_id(&key)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("DisabledException"));
}

#[tokio::test]
async fn hmac_keys_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::builder().data_dir(dir.path()).start().await;
    let kms = server.kms();
    let key = kms
        .create_key()
        .key_spec(KeySpec::Hmac512)
        .key_usage(KeyUsageType::GenerateVerifyMac)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let mac = kms
        .generate_mac()
        .key_id(&key)
        .message(Blob::new(b"m".to_vec()))
        .mac_algorithm(Mac::HmacSha512)
        .send()
        .await
        .unwrap()
        .mac
        .unwrap();
    drop(kms);
    server.stop().await;
    let server = TestServer::builder().data_dir(dir.path()).start().await;
    let ok = server
        .kms()
        .verify_mac()
        .key_id(&key)
        .message(Blob::new(b"m".to_vec()))
        .mac(mac)
        .mac_algorithm(Mac::HmacSha512)
        .send()
        .await
        .unwrap();
    assert!(ok.mac_valid());
}
