//! Encrypt, Decrypt, ReEncrypt, GenerateDataKey(WithoutPlaintext), GenerateRandom through
//! the real `aws-sdk-kms` client.

use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, EncryptionAlgorithmSpec};
use keyhold_testkit::TestServer;

#[tokio::test]
async fn encrypt_decrypt_round_trip_with_context() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let arn = key.arn().unwrap();
    kms.create_alias()
        .alias_name("alias/rt")
        .target_key_id(key.key_id())
        .send()
        .await
        .unwrap();

    let enc = kms
        .encrypt()
        .key_id("alias/rt")
        .plaintext(Blob::new(b"ssn: 123-45-6789".to_vec()))
        .encryption_context("purpose", "test")
        .encryption_context("tenant", "a")
        .send()
        .await
        .unwrap();
    assert_eq!(
        enc.key_id(),
        Some(arn),
        "Encrypt answers with the key ARN, even for an alias"
    );
    assert_eq!(
        enc.encryption_algorithm(),
        Some(&EncryptionAlgorithmSpec::SymmetricDefault)
    );
    let blob = enc.ciphertext_blob.unwrap();
    assert!(
        !blob.as_ref().windows(16).any(|w| w == b"ssn: 123-45-678"),
        "the ciphertext hides the plaintext"
    );

    let dec = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .encryption_context("tenant", "a")
        .encryption_context("purpose", "test")
        .send()
        .await
        .unwrap();
    assert_eq!(dec.plaintext().unwrap().as_ref(), b"ssn: 123-45-6789");
    assert_eq!(dec.key_id(), Some(arn));
    assert_eq!(dec.key_material_id(), key.current_key_material_id());

    for (k, v) in [("purpose", "other"), ("tenant", "b")] {
        let e = kms
            .decrypt()
            .ciphertext_blob(blob.clone())
            .encryption_context("purpose", if k == "purpose" { v } else { "test" })
            .encryption_context("tenant", if k == "tenant" { v } else { "a" })
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            keyhold_testkit::code_and_message(&e),
            ("InvalidCiphertextException".into(), String::new())
        );
    }
    let e = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Some("InvalidCiphertextException"),
        "a missing context fails too"
    );

    // Two encryptions of the same plaintext differ.
    let again = kms
        .encrypt()
        .key_id(key.key_id())
        .plaintext(Blob::new(b"ssn: 123-45-6789".to_vec()))
        .encryption_context("purpose", "test")
        .encryption_context("tenant", "a")
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    assert_ne!(again.as_ref(), blob.as_ref());
}

#[tokio::test]
async fn tampered_ciphertexts_all_fail_the_same_way() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let blob = kms
        .encrypt()
        .key_id(key.key_id())
        .plaintext(Blob::new(vec![7; 100]))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap()
        .into_inner();
    for i in [0, 1, 20, 60, 85, 100, blob.len() - 1] {
        let mut bad = blob.clone();
        bad[i] ^= 0x01;
        let e = kms
            .decrypt()
            .ciphertext_blob(Blob::new(bad))
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            keyhold_testkit::code_and_message(&e),
            ("InvalidCiphertextException".into(), String::new()),
            "byte {i}"
        );
    }
    for len in [1, 50, 108] {
        let e = kms
            .decrypt()
            .ciphertext_blob(Blob::new(blob[..len].to_vec()))
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            e.code(),
            Some("InvalidCiphertextException"),
            "truncated to {len}"
        );
    }
}

#[tokio::test]
async fn decrypt_with_the_wrong_key_id() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let a = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let b = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let blob = kms
        .encrypt()
        .key_id(a.key_id())
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await
        .unwrap();
    let blob = blob.ciphertext_blob.unwrap();
    let e = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .key_id(b.key_id())
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "IncorrectKeyException".into(),
            "The key ID in the request does not identify a CMK that can perform this operation."
                .into()
        )
    );
    let ok = kms
        .decrypt()
        .ciphertext_blob(blob)
        .key_id(a.arn().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.plaintext().unwrap().as_ref(), b"x");
}

#[tokio::test]
async fn ciphertexts_do_not_cross_regions() {
    let server = TestServer::start().await;
    let east = server.kms_for("000000000000", "us-east-1");
    let west = server.kms_for("000000000000", "us-west-2");
    let key = east
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let blob = east
        .encrypt()
        .key_id(key.key_id())
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await
        .unwrap();
    let e = west
        .decrypt()
        .ciphertext_blob(blob.ciphertext_blob.unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidCiphertextException"));
}

#[tokio::test]
async fn re_encrypt_moves_a_ciphertext_between_keys() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let a = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let b = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let blob = kms
        .encrypt()
        .key_id(a.key_id())
        .plaintext(Blob::new(b"moving".to_vec()))
        .encryption_context("from", "a")
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    let re = kms
        .re_encrypt()
        .ciphertext_blob(blob)
        .source_encryption_context("from", "a")
        .destination_key_id(b.key_id())
        .destination_encryption_context("to", "b")
        .send()
        .await
        .unwrap();
    assert_eq!(re.source_key_id(), a.arn());
    assert_eq!(re.key_id(), b.arn());
    assert_eq!(re.source_key_material_id(), a.current_key_material_id());
    assert_eq!(
        re.destination_key_material_id(),
        b.current_key_material_id()
    );
    let dec = kms
        .decrypt()
        .ciphertext_blob(re.ciphertext_blob.unwrap())
        .encryption_context("to", "b")
        .send()
        .await
        .unwrap();
    assert_eq!(dec.key_id(), b.arn());
    assert_eq!(dec.plaintext().unwrap().as_ref(), b"moving");
}

#[tokio::test]
async fn generate_data_key_variants() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let dk = kms
        .generate_data_key()
        .key_id(key.key_id())
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .unwrap();
    assert_eq!(dk.plaintext().unwrap().as_ref().len(), 32);
    assert_eq!(dk.key_id(), key.arn());
    let dec = kms
        .decrypt()
        .ciphertext_blob(dk.ciphertext_blob.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        dec.plaintext().unwrap().as_ref(),
        dk.plaintext().unwrap().as_ref()
    );

    let dk = kms
        .generate_data_key()
        .key_id(key.key_id())
        .key_spec(DataKeySpec::Aes128)
        .send()
        .await
        .unwrap();
    assert_eq!(dk.plaintext().unwrap().as_ref().len(), 16);
    let dk = kms
        .generate_data_key()
        .key_id(key.key_id())
        .number_of_bytes(1000)
        .send()
        .await
        .unwrap();
    assert_eq!(dk.plaintext().unwrap().as_ref().len(), 1000);

    let wp = kms
        .generate_data_key_without_plaintext()
        .key_id(key.key_id())
        .key_spec(DataKeySpec::Aes256)
        .encryption_context("a", "b")
        .send()
        .await
        .unwrap();
    let dec = kms
        .decrypt()
        .ciphertext_blob(wp.ciphertext_blob.unwrap())
        .encryption_context("a", "b")
        .send()
        .await
        .unwrap();
    assert_eq!(dec.plaintext().unwrap().as_ref().len(), 32);

    let neither = kms
        .generate_data_key()
        .key_id(key.key_id())
        .send()
        .await
        .unwrap_err();
    let both = kms
        .generate_data_key()
        .key_id(key.key_id())
        .key_spec(DataKeySpec::Aes256)
        .number_of_bytes(32)
        .send()
        .await
        .unwrap_err();
    for e in [
        keyhold_testkit::code_and_message(&neither),
        keyhold_testkit::code_and_message(&both),
    ] {
        assert_eq!(
            e,
            (
                "ValidationException".into(),
                "Please specify either number of bytes or key spec.".into()
            )
        );
    }
    let e = kms
        .generate_data_key()
        .key_id(key.key_id())
        .number_of_bytes(1025)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "ValidationException".into(),
            "1 validation error detected: Value '1025' at 'numberOfBytes' failed to satisfy constraint: Member must have value less than or equal to 1024".into()
        )
    );
}

#[tokio::test]
async fn generate_random_bounds() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let a = kms
        .generate_random()
        .number_of_bytes(32)
        .send()
        .await
        .unwrap();
    let b = kms
        .generate_random()
        .number_of_bytes(32)
        .send()
        .await
        .unwrap();
    assert_eq!(a.plaintext().unwrap().as_ref().len(), 32);
    assert_ne!(
        a.plaintext().unwrap().as_ref(),
        b.plaintext().unwrap().as_ref()
    );
    assert_eq!(
        kms.generate_random()
            .number_of_bytes(1024)
            .send()
            .await
            .unwrap()
            .plaintext()
            .unwrap()
            .as_ref()
            .len(),
        1024
    );
    let e = kms
        .generate_random()
        .number_of_bytes(0)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        Some(
            "1 validation error detected: Value '0' at 'numberOfBytes' failed to satisfy constraint: Member must have value greater than or equal to 1"
        )
    );
    let e = kms.generate_random().send().await.unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "ValidationException".into(),
            "NumberOfBytes is required.".into()
        )
    );
}

#[tokio::test]
async fn plaintext_size_limit() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    kms.encrypt()
        .key_id(key.key_id())
        .plaintext(Blob::new(vec![1; 4096]))
        .send()
        .await
        .unwrap();
    let e = kms
        .encrypt()
        .key_id(key.key_id())
        .plaintext(Blob::new(vec![1; 4097]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "ValidationException".into(),
            "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length less than or equal to 4096".into()
        )
    );
}

#[tokio::test]
async fn dry_run_checks_everything_then_refuses() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let e = kms
        .encrypt()
        .key_id(key.key_id())
        .plaintext(Blob::new(b"x".to_vec()))
        .dry_run(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "DryRunOperationException".into(),
            "The request would have succeeded, but the DryRun option is set.".into()
        )
    );
    kms.disable_key().key_id(key.key_id()).send().await.unwrap();
    let e = kms
        .encrypt()
        .key_id(key.key_id())
        .plaintext(Blob::new(b"x".to_vec()))
        .dry_run(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Some("DisabledException"),
        "a dry run that would fail says why"
    );
}

#[tokio::test]
async fn aws_managed_keys_are_created_on_first_use() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let listed = kms.list_aliases().send().await.unwrap();
    let ssm = listed
        .aliases()
        .iter()
        .find(|a| a.alias_name() == Some("alias/aws/ssm"))
        .unwrap();
    assert!(
        ssm.target_key_id().is_none(),
        "listed before the key exists, without a target"
    );
    let d = kms
        .describe_key()
        .key_id("alias/aws/ssm")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(
        d.key_manager(),
        Some(&aws_sdk_kms::types::KeyManagerType::Aws)
    );
    assert_eq!(
        d.description(),
        Some("Default key that protects my SSM parameters when no other key is defined")
    );
    let again = kms
        .describe_key()
        .key_id("alias/aws/ssm")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(again.key_id(), d.key_id(), "created once");
    let listed = kms.list_aliases().send().await.unwrap();
    let ssm = listed
        .aliases()
        .iter()
        .find(|a| a.alias_name() == Some("alias/aws/ssm"))
        .unwrap();
    assert_eq!(ssm.target_key_id(), Some(d.key_id()));

    // Its policy allows use only through the service: a direct Encrypt is denied.
    let e = kms
        .encrypt()
        .key_id("alias/aws/ssm")
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));
    let policy = kms
        .get_key_policy()
        .key_id(d.key_id())
        .send()
        .await
        .unwrap();
    assert!(
        policy
            .policy()
            .unwrap()
            .contains("\"kms:ViaService\" : \"ssm.us-east-1.amazonaws.com\"")
    );
    let e = kms
        .schedule_key_deletion()
        .key_id(d.key_id())
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Some("AccessDeniedException"),
        "AWS-managed keys cannot be deleted"
    );
}
