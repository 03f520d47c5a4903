//! Asymmetric KMS keys through the real `aws-sdk-kms` client: CreateKey for every RSA, ECC
//! and Ed25519 spec and usage, DescribeKey and GetPublicKey algorithm lists, Sign and Verify
//! (RAW and DIGEST, every algorithm), RSAES-OAEP Encrypt/Decrypt/ReEncrypt with AWS's limits,
//! DeriveSharedSecret, the data key pairs, and AWS's errors. Signatures and public-key
//! ciphertexts are also checked outside KMS, with aws-lc-rs and the DER public key (the
//! openssl CLI does the same in `scripts/scenarios/kms_asymmetric_openssl.sh`).

use aws_lc_rs::signature::{self as sig, UnparsedPublicKey};
use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    DataKeyPairSpec, EncryptionAlgorithmSpec as Enc, KeyAgreementAlgorithmSpec, KeySpec,
    KeyUsageType, MessageType, SigningAlgorithmSpec as Alg,
};
use keyhold_testkit::{TestServer, new_key};

fn code_msg<E: ProvideErrorMetadata>(e: &E) -> (String, String) {
    (
        e.code().unwrap_or_default().to_owned(),
        e.message().unwrap_or_default().to_owned(),
    )
}

async fn create(kms: &aws_sdk_kms::Client, spec: KeySpec, usage: KeyUsageType) -> (String, String) {
    let m = kms
        .create_key()
        .key_spec(spec)
        .key_usage(usage)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    (m.key_id, m.arn.unwrap())
}

fn sha(alg: &Alg, message: &[u8]) -> Vec<u8> {
    use aws_lc_rs::digest::{SHA256, SHA384, SHA512, digest};
    let hash = match alg.as_str() {
        a if a.ends_with("SHA_256") => &SHA256,
        a if a.ends_with("SHA_384") => &SHA384,
        _ => &SHA512,
    };
    digest(hash, message).as_ref().to_vec()
}

fn verifier(alg: &Alg, spec: &KeySpec) -> &'static dyn sig::VerificationAlgorithm {
    match (alg, spec) {
        (Alg::RsassaPssSha256, _) => &sig::RSA_PSS_2048_8192_SHA256,
        (Alg::RsassaPssSha384, _) => &sig::RSA_PSS_2048_8192_SHA384,
        (Alg::RsassaPssSha512, _) => &sig::RSA_PSS_2048_8192_SHA512,
        (Alg::RsassaPkcs1V15Sha256, _) => &sig::RSA_PKCS1_2048_8192_SHA256,
        (Alg::RsassaPkcs1V15Sha384, _) => &sig::RSA_PKCS1_2048_8192_SHA384,
        (Alg::RsassaPkcs1V15Sha512, _) => &sig::RSA_PKCS1_2048_8192_SHA512,
        (Alg::EcdsaSha256, KeySpec::EccSecgP256K1) => &sig::ECDSA_P256K1_SHA256_ASN1,
        (Alg::EcdsaSha256, _) => &sig::ECDSA_P256_SHA256_ASN1,
        (Alg::EcdsaSha384, _) => &sig::ECDSA_P384_SHA384_ASN1,
        (Alg::EcdsaSha512, _) => &sig::ECDSA_P521_SHA512_ASN1,
        (Alg::Ed25519Sha512, _) => &sig::ED25519,
        _ => unreachable!("{alg:?}"),
    }
}

#[tokio::test]
async fn every_signing_spec_signs_what_its_public_key_verifies() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let cases = [
        (KeySpec::Rsa2048, 6),
        (KeySpec::EccNistP256, 1),
        (KeySpec::EccNistP384, 1),
        (KeySpec::EccNistP521, 1),
        (KeySpec::EccSecgP256K1, 1),
        (KeySpec::EccNistEdwards25519, 2),
    ];
    let message = b"release v1.2.3 sha256:abcdef".to_vec();
    for (spec, count) in cases {
        let (key, arn) = create(&kms, spec.clone(), KeyUsageType::SignVerify).await;
        let described = kms.describe_key().key_id(&key).send().await.unwrap();
        let m = described.key_metadata.unwrap();
        assert_eq!(m.key_spec(), Some(&spec));
        assert_eq!(m.key_usage(), Some(&KeyUsageType::SignVerify));
        assert_eq!(m.signing_algorithms().len(), count, "{spec:?}");
        assert!(m.encryption_algorithms().is_empty(), "{spec:?}");
        assert!(m.mac_algorithms().is_empty());
        assert_eq!(
            m.current_key_material_id(),
            None,
            "only symmetric keys show one"
        );

        let public = kms.get_public_key().key_id(&key).send().await.unwrap();
        assert_eq!(public.key_id(), Some(arn.as_str()));
        assert_eq!(public.key_spec(), Some(&spec));
        assert_eq!(public.key_usage(), Some(&KeyUsageType::SignVerify));
        assert_eq!(public.signing_algorithms(), m.signing_algorithms());
        let der = public.public_key().unwrap().as_ref().to_vec();
        assert_eq!(der[0], 0x30, "DER SubjectPublicKeyInfo");

        for alg in m.signing_algorithms() {
            if *alg == Alg::Ed25519PhSha512 {
                continue; // ed25519ph_signs_the_digest_of_the_message
            }
            let signed = kms
                .sign()
                .key_id(&key)
                .message(Blob::new(message.clone()))
                .signing_algorithm(alg.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(signed.key_id(), Some(arn.as_str()));
            assert_eq!(signed.signing_algorithm(), Some(alg));
            let signature = signed.signature().unwrap().as_ref().to_vec();
            UnparsedPublicKey::new(verifier(alg, &spec), &der)
                .verify(&message, &signature)
                .unwrap_or_else(|_| panic!("{spec:?} {alg:?} does not verify outside KMS"));
            let verified = kms
                .verify()
                .key_id(&key)
                .message(Blob::new(message.clone()))
                .signature(Blob::new(signature.clone()))
                .signing_algorithm(alg.clone())
                .send()
                .await
                .unwrap();
            assert!(verified.signature_valid());
            assert_eq!(verified.signing_algorithm(), Some(alg));

            // A bad signature is an error, never `SignatureValid: false`.
            let mut bad = signature.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            let e = kms
                .verify()
                .key_id(&key)
                .message(Blob::new(message.clone()))
                .signature(Blob::new(bad))
                .signing_algorithm(alg.clone())
                .send()
                .await
                .unwrap_err();
            assert_eq!(
                code_msg(&e),
                ("KMSInvalidSignatureException".into(), String::new())
            );

            if *alg == Alg::Ed25519Sha512 {
                continue;
            }
            // DIGEST: a digest and its message are the same message.
            let digest = sha(alg, &message);
            let signed = kms
                .sign()
                .key_id(&key)
                .message(Blob::new(digest.clone()))
                .message_type(MessageType::Digest)
                .signing_algorithm(alg.clone())
                .send()
                .await
                .unwrap();
            UnparsedPublicKey::new(verifier(alg, &spec), &der)
                .verify(&message, signed.signature().unwrap().as_ref())
                .unwrap();
            kms.verify()
                .key_id(&key)
                .message(Blob::new(digest.clone()))
                .message_type(MessageType::Digest)
                .signature(Blob::new(signature))
                .signing_algorithm(alg.clone())
                .send()
                .await
                .unwrap();
            let e = kms
                .sign()
                .key_id(&key)
                .message(Blob::new(digest[1..].to_vec()))
                .message_type(MessageType::Digest)
                .signing_algorithm(alg.clone())
                .send()
                .await
                .unwrap_err();
            assert_eq!(
                code_msg(&e),
                (
                    "ValidationException".into(),
                    format!("Digest is invalid length for algorithm {}.", alg.as_str())
                )
            );
        }
    }
}

#[tokio::test]
async fn rsa_3072_and_4096_sign_and_encrypt() {
    let server = TestServer::start().await;
    let kms = server.kms();
    for (spec, modulus) in [(KeySpec::Rsa3072, 384), (KeySpec::Rsa4096, 512)] {
        let (key, _) = create(&kms, spec.clone(), KeyUsageType::SignVerify).await;
        let s = kms
            .sign()
            .key_id(&key)
            .message(Blob::new(b"m".to_vec()))
            .signing_algorithm(Alg::RsassaPssSha512)
            .send()
            .await
            .unwrap();
        assert_eq!(s.signature().unwrap().as_ref().len(), modulus);
        let (key, _) = create(&kms, spec, KeyUsageType::EncryptDecrypt).await;
        let ct = kms
            .encrypt()
            .key_id(&key)
            .plaintext(Blob::new(b"m".to_vec()))
            .encryption_algorithm(Enc::RsaesOaepSha256)
            .send()
            .await
            .unwrap();
        assert_eq!(ct.ciphertext_blob().unwrap().as_ref().len(), modulus);
    }
}

#[tokio::test]
async fn rsa_encryption_keys_use_oaep_with_aws_limits() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let (key, arn) = create(&kms, KeySpec::Rsa2048, KeyUsageType::EncryptDecrypt).await;
    let m = kms
        .describe_key()
        .key_id(&key)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(
        m.encryption_algorithms(),
        &[Enc::RsaesOaepSha1, Enc::RsaesOaepSha256]
    );
    assert!(m.signing_algorithms().is_empty());
    let public = kms.get_public_key().key_id(&key).send().await.unwrap();
    assert_eq!(public.encryption_algorithms(), m.encryption_algorithms());

    for (alg, limit) in [(Enc::RsaesOaepSha1, 214), (Enc::RsaesOaepSha256, 190)] {
        let plaintext = vec![0x42u8; limit];
        let enc = kms
            .encrypt()
            .key_id(&key)
            .plaintext(Blob::new(plaintext.clone()))
            .encryption_algorithm(alg.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(enc.encryption_algorithm(), Some(&alg));
        assert_eq!(enc.key_id(), Some(arn.as_str()));
        let ct = enc.ciphertext_blob.unwrap();
        let dec = kms
            .decrypt()
            .key_id(&key)
            .ciphertext_blob(ct.clone())
            .encryption_algorithm(alg.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(dec.plaintext().unwrap().as_ref(), plaintext.as_slice());
        assert_eq!(dec.encryption_algorithm(), Some(&alg));
        assert_eq!(dec.key_material_id(), None);

        let e = kms
            .encrypt()
            .key_id(&key)
            .plaintext(Blob::new(vec![0u8; limit + 1]))
            .encryption_algorithm(alg.clone())
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            code_msg(&e),
            (
                "ValidationException".into(),
                format!(
                    "Algorithm {} and key spec RSA_2048 cannot encrypt data larger than {limit} bytes.",
                    alg.as_str()
                )
            )
        );
        // Without the KeyId an RSA ciphertext names no key.
        let e = kms
            .decrypt()
            .ciphertext_blob(ct.clone())
            .encryption_algorithm(alg.clone())
            .send()
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("InvalidCiphertextException"));
        // The other OAEP hash does not open it.
        let other = if alg == Enc::RsaesOaepSha1 {
            Enc::RsaesOaepSha256
        } else {
            Enc::RsaesOaepSha1
        };
        let e = kms
            .decrypt()
            .key_id(&key)
            .ciphertext_blob(ct)
            .encryption_algorithm(other)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            code_msg(&e),
            ("InvalidCiphertextException".into(), String::new())
        );
    }

    // The default algorithm is SYMMETRIC_DEFAULT, which an RSA key does not take.
    let e = kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_msg(&e),
        (
            "InvalidKeyUsageException".into(),
            "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_2048.".into()
        )
    );
    let e = kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"x".to_vec()))
        .encryption_algorithm(Enc::RsaesOaepSha256)
        .encryption_context("a", "b")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    // A symmetric key does not take RSAES-OAEP.
    let symmetric = new_key(&kms).await.id;
    let e = kms
        .encrypt()
        .key_id(&symmetric)
        .plaintext(Blob::new(b"x".to_vec()))
        .encryption_algorithm(Enc::RsaesOaepSha1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_msg(&e),
        (
            "InvalidKeyUsageException".into(),
            "Algorithm RSAES_OAEP_SHA_1 is incompatible with key spec SYMMETRIC_DEFAULT.".into()
        )
    );
    // Data keys come from symmetric keys only.
    let e = kms
        .generate_data_key()
        .key_id(&key)
        .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_msg(&e),
        (
            "InvalidKeyUsageException".into(),
            format!("{arn} key usage is ENCRYPT_DECRYPT which is not valid for GenerateDataKey.")
        )
    );

    // ReEncrypt between an RSA key and a symmetric key, both ways.
    let ct = kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"moving".to_vec()))
        .encryption_algorithm(Enc::RsaesOaepSha256)
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    let re = kms
        .re_encrypt()
        .ciphertext_blob(ct)
        .source_key_id(&key)
        .source_encryption_algorithm(Enc::RsaesOaepSha256)
        .destination_key_id(&symmetric)
        .send()
        .await
        .unwrap();
    assert_eq!(
        re.source_encryption_algorithm(),
        Some(&Enc::RsaesOaepSha256)
    );
    assert_eq!(re.source_key_material_id(), None);
    let back = kms
        .re_encrypt()
        .ciphertext_blob(re.ciphertext_blob.unwrap())
        .destination_key_id(&key)
        .destination_encryption_algorithm(Enc::RsaesOaepSha1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        back.destination_encryption_algorithm(),
        Some(&Enc::RsaesOaepSha1)
    );
    assert_eq!(back.destination_key_material_id(), None);
    let plain = kms
        .decrypt()
        .key_id(&key)
        .ciphertext_blob(back.ciphertext_blob.unwrap())
        .encryption_algorithm(Enc::RsaesOaepSha1)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.plaintext().unwrap().as_ref(), b"moving");
}

#[tokio::test]
async fn data_encrypted_outside_kms_with_the_public_key_decrypts_inside() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let (key, _) = create(&kms, KeySpec::Rsa2048, KeyUsageType::EncryptDecrypt).await;
    let der = kms
        .get_public_key()
        .key_id(&key)
        .send()
        .await
        .unwrap()
        .public_key
        .unwrap();
    let public = aws_lc_rs::rsa::PublicEncryptingKey::from_der(der.as_ref()).unwrap();
    let public = aws_lc_rs::rsa::OaepPublicEncryptingKey::new(public).unwrap();
    for (alg, oaep) in [
        (Enc::RsaesOaepSha1, &aws_lc_rs::rsa::OAEP_SHA1_MGF1SHA1),
        (
            Enc::RsaesOaepSha256,
            &aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256,
        ),
    ] {
        let mut ct = vec![0u8; public.ciphertext_size()];
        let ct = public
            .encrypt(oaep, b"from outside", &mut ct, None)
            .unwrap();
        let dec = kms
            .decrypt()
            .key_id(&key)
            .ciphertext_blob(Blob::new(ct.to_vec()))
            .encryption_algorithm(alg)
            .send()
            .await
            .unwrap();
        assert_eq!(dec.plaintext().unwrap().as_ref(), b"from outside");
    }
}

#[tokio::test]
async fn sign_verify_errors_are_aws_errors() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let (key, arn) = create(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let sign = |alg: Alg, message: &[u8]| {
        kms.sign()
            .key_id(&key)
            .message(Blob::new(message.to_vec()))
            .signing_algorithm(alg)
    };
    let e = sign(Alg::EcdsaSha384, b"m").send().await.unwrap_err();
    assert_eq!(
        code_msg(&e),
        (
            "InvalidKeyUsageException".into(),
            "Algorithm ECDSA_SHA_384 is incompatible with key spec ECC_NIST_P256.".into()
        )
    );
    let e = sign(Alg::RsassaPssSha256, b"m").send().await.unwrap_err();
    assert_eq!(e.code(), Some("InvalidKeyUsageException"));
    let e = sign(Alg::EcdsaSha256, b"m")
        .message_type(MessageType::ExternalMu)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    let e = sign(Alg::EcdsaSha256, &[0u8; 4097])
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_msg(&e),
        (
            "ValidationException".into(),
            "1 validation error detected: Value at 'message' failed to satisfy constraint: Member must have length less than or equal to 4096".into()
        )
    );
    let e = sign(Alg::EcdsaSha256, b"m")
        .dry_run(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("DryRunOperationException"));
    sign(Alg::EcdsaSha256, &[7u8; 4096]).send().await.unwrap();

    // A signing key does not encrypt, and a symmetric key does not sign.
    let e = kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_msg(&e),
        (
            "InvalidKeyUsageException".into(),
            format!("{arn} key usage is SIGN_VERIFY which is not valid for Encrypt.")
        )
    );
    let symmetric = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let e = kms
        .sign()
        .key_id(symmetric.key_id())
        .message(Blob::new(b"m".to_vec()))
        .signing_algorithm(Alg::EcdsaSha256)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_msg(&e),
        (
            "InvalidKeyUsageException".into(),
            format!(
                "{} key usage is ENCRYPT_DECRYPT which is not valid for Sign.",
                symmetric.arn().unwrap()
            )
        )
    );
    let e = kms
        .get_public_key()
        .key_id(symmetric.key_id())
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("UnsupportedOperationException"));

    // Disabled and pending-deletion keys neither sign nor verify.
    kms.disable_key().key_id(&key).send().await.unwrap();
    let e = sign(Alg::EcdsaSha256, b"m").send().await.unwrap_err();
    assert_eq!(
        code_msg(&e),
        ("DisabledException".into(), format!("{arn} is disabled."))
    );
    let e = kms.get_public_key().key_id(&key).send().await.unwrap_err();
    assert_eq!(e.code(), Some("DisabledException"));
    kms.schedule_key_deletion()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    let e = sign(Alg::EcdsaSha256, b"m").send().await.unwrap_err();
    assert_eq!(e.code(), Some("KMSInvalidStateException"));

    // Ed25519: RAW only for ED25519_SHA_512, DIGEST only for ED25519_PH_SHA_512.
    let (ed, _) = create(&kms, KeySpec::EccNistEdwards25519, KeyUsageType::SignVerify).await;
    let ed_sign = |alg: Alg, message: Vec<u8>, message_type: MessageType| {
        kms.sign()
            .key_id(&ed)
            .message(Blob::new(message))
            .message_type(message_type)
            .signing_algorithm(alg)
            .send()
    };
    let e = ed_sign(Alg::Ed25519Sha512, vec![0u8; 64], MessageType::Digest)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    let e = ed_sign(Alg::Ed25519PhSha512, b"m".to_vec(), MessageType::Raw)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    let e = ed_sign(Alg::Ed25519PhSha512, vec![0u8; 63], MessageType::Digest)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
}

/// ED25519_PH_SHA_512 (Ed25519ph, RFC 8032 §5.1): KMS signs the SHA-512 digest the caller
/// sends, and the signature is the RFC's Ed25519ph signature of the message, as
/// `ed25519-dalek` checks it from the message itself with the public key from GetPublicKey.
#[tokio::test]
async fn ed25519ph_signs_the_digest_of_the_message() {
    use ed25519_dalek::{Digest as _, Sha512};
    let server = TestServer::start().await;
    let kms = server.kms();
    let (key, arn) = create(&kms, KeySpec::EccNistEdwards25519, KeyUsageType::SignVerify).await;
    let message = b"prehashed by the caller".to_vec();
    let digest = Sha512::digest(&message).to_vec();
    let signed = kms
        .sign()
        .key_id(&key)
        .message(Blob::new(digest.clone()))
        .message_type(MessageType::Digest)
        .signing_algorithm(Alg::Ed25519PhSha512)
        .send()
        .await
        .unwrap();
    assert_eq!(signed.key_id(), Some(arn.as_str()));
    assert_eq!(signed.signing_algorithm(), Some(&Alg::Ed25519PhSha512));
    let signature = signed.signature().unwrap().as_ref().to_vec();
    assert_eq!(signature.len(), 64);

    let spki = kms.get_public_key().key_id(&key).send().await.unwrap();
    let spki = spki.public_key().unwrap().as_ref();
    let public: [u8; 32] = spki[spki.len() - 32..].try_into().unwrap();
    let public = ed25519_dalek::VerifyingKey::from_bytes(&public).unwrap();
    let parsed = ed25519_dalek::Signature::from_slice(&signature).unwrap();
    public
        .verify_prehashed_strict(Sha512::new().chain_update(&message), None, &parsed)
        .expect("an Ed25519ph signature of the message");
    // Not a plain Ed25519 signature of the message or of its digest.
    for signed in [&message, &digest] {
        assert!(
            UnparsedPublicKey::new(&sig::ED25519, spki)
                .verify(signed, &signature)
                .is_err()
        );
    }

    let verify = |digest: Vec<u8>, signature: Vec<u8>| {
        kms.verify()
            .key_id(&key)
            .message(Blob::new(digest))
            .message_type(MessageType::Digest)
            .signature(Blob::new(signature))
            .signing_algorithm(Alg::Ed25519PhSha512)
            .send()
    };
    let verified = verify(digest.clone(), signature.clone()).await.unwrap();
    assert!(verified.signature_valid());
    assert_eq!(verified.signing_algorithm(), Some(&Alg::Ed25519PhSha512));
    let other = Sha512::digest(b"another message").to_vec();
    let e = verify(other, signature.clone()).await.unwrap_err();
    assert_eq!(e.code(), Some("KMSInvalidSignatureException"));
    let mut bad = signature;
    bad[10] ^= 1;
    let e = verify(digest, bad).await.unwrap_err();
    assert_eq!(e.code(), Some("KMSInvalidSignatureException"));
}

#[tokio::test]
#[allow(deprecated)] // CustomerMasterKeySpec, which clients still send
async fn create_key_checks_spec_and_usage_as_aws() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let e = kms
        .create_key()
        .key_spec(KeySpec::Rsa2048)
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
    for (spec, usage) in [
        (KeySpec::Rsa2048, KeyUsageType::KeyAgreement),
        (KeySpec::Rsa2048, KeyUsageType::GenerateVerifyMac),
        (KeySpec::EccNistP256, KeyUsageType::EncryptDecrypt),
        (KeySpec::EccSecgP256K1, KeyUsageType::KeyAgreement),
        (KeySpec::EccNistEdwards25519, KeyUsageType::KeyAgreement),
        (KeySpec::SymmetricDefault, KeyUsageType::SignVerify),
        (KeySpec::Hmac256, KeyUsageType::SignVerify),
        (KeySpec::MlDsa44, KeyUsageType::EncryptDecrypt),
        (KeySpec::MlKem512, KeyUsageType::KeyAgreement),
    ] {
        let e = kms
            .create_key()
            .key_spec(spec.clone())
            .key_usage(usage.clone())
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            code_msg(&e),
            (
                "ValidationException".into(),
                format!(
                    "KeyUsage {} is not compatible with KeySpec {}",
                    usage.as_str(),
                    spec.as_str()
                )
            )
        );
    }
    // SM2 is China-only: outside China it is not in the enum at all.
    let e = kms
        .create_key()
        .key_spec(KeySpec::Sm2)
        .key_usage(KeyUsageType::SignVerify)
        .send()
        .await
        .unwrap_err();
    let (code, message) = code_msg(&e);
    assert_eq!(code, "ValidationException");
    assert!(
        message.starts_with(
            "1 validation error detected: Value 'SM2' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [RSA_2048, "
        ),
        "{message}"
    );
    assert!(!message.contains(", SM2"), "{message}");
    // The deprecated CustomerMasterKeySpec works too.
    let m = kms
        .create_key()
        .customer_master_key_spec(aws_sdk_kms::types::CustomerMasterKeySpec::EccNistP384)
        .key_usage(KeyUsageType::SignVerify)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(m.key_spec(), Some(&KeySpec::EccNistP384));
    assert_eq!(
        m.customer_master_key_spec(),
        Some(&aws_sdk_kms::types::CustomerMasterKeySpec::EccNistP384)
    );
}

#[tokio::test]
async fn asymmetric_keys_do_not_rotate() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let (key, _) = create(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    for e in [
        kms.enable_key_rotation()
            .key_id(&key)
            .send()
            .await
            .unwrap_err()
            .code()
            .map(str::to_owned),
        kms.rotate_key_on_demand()
            .key_id(&key)
            .send()
            .await
            .unwrap_err()
            .code()
            .map(str::to_owned),
        kms.disable_key_rotation()
            .key_id(&key)
            .send()
            .await
            .unwrap_err()
            .code()
            .map(str::to_owned),
        kms.list_key_rotations()
            .key_id(&key)
            .send()
            .await
            .unwrap_err()
            .code()
            .map(str::to_owned),
    ] {
        assert_eq!(e.as_deref(), Some("UnsupportedOperationException"));
    }
    let status = kms
        .get_key_rotation_status()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    assert!(!status.key_rotation_enabled());
}

#[tokio::test]
async fn ecdh_shared_secrets_agree() {
    let server = TestServer::start().await;
    let kms = server.kms();
    for (spec, len) in [
        (KeySpec::EccNistP256, 32),
        (KeySpec::EccNistP384, 48),
        (KeySpec::EccNistP521, 66),
    ] {
        let (alice, alice_arn) = create(&kms, spec.clone(), KeyUsageType::KeyAgreement).await;
        let (bob, _) = create(&kms, spec.clone(), KeyUsageType::KeyAgreement).await;
        let m = kms
            .describe_key()
            .key_id(&alice)
            .send()
            .await
            .unwrap()
            .key_metadata
            .unwrap();
        assert_eq!(
            m.key_agreement_algorithms(),
            &[KeyAgreementAlgorithmSpec::Ecdh]
        );
        assert!(m.signing_algorithms().is_empty());
        let public = |k: &str| {
            let kms = kms.clone();
            let k = k.to_owned();
            async move {
                let p = kms.get_public_key().key_id(k).send().await.unwrap();
                assert_eq!(
                    p.key_agreement_algorithms(),
                    &[KeyAgreementAlgorithmSpec::Ecdh]
                );
                p.public_key.unwrap()
            }
        };
        let (alice_pub, bob_pub) = (public(&alice).await, public(&bob).await);
        let ab = kms
            .derive_shared_secret()
            .key_id(&alice)
            .key_agreement_algorithm(KeyAgreementAlgorithmSpec::Ecdh)
            .public_key(bob_pub.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(ab.key_id(), Some(alice_arn.as_str()));
        assert_eq!(
            ab.key_origin(),
            Some(&aws_sdk_kms::types::OriginType::AwsKms)
        );
        let ba = kms
            .derive_shared_secret()
            .key_id(&bob)
            .key_agreement_algorithm(KeyAgreementAlgorithmSpec::Ecdh)
            .public_key(alice_pub)
            .send()
            .await
            .unwrap();
        let secret = ab.shared_secret().unwrap().as_ref();
        assert_eq!(secret, ba.shared_secret().unwrap().as_ref());
        assert_eq!(secret.len(), len);

        // A bare point is not SubjectPublicKeyInfo; AWS answers without a message.
        let e = kms
            .derive_shared_secret()
            .key_id(&alice)
            .key_agreement_algorithm(KeyAgreementAlgorithmSpec::Ecdh)
            .public_key(Blob::new(
                bob_pub.as_ref()[bob_pub.as_ref().len() - 2 * len - 1..].to_vec(),
            ))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code_msg(&e), ("ValidationException".into(), String::new()));
    }
    let (p256, _) = create(&kms, KeySpec::EccNistP256, KeyUsageType::KeyAgreement).await;
    let (p384, _) = create(&kms, KeySpec::EccNistP384, KeyUsageType::KeyAgreement).await;
    let p384_pub = kms
        .get_public_key()
        .key_id(&p384)
        .send()
        .await
        .unwrap()
        .public_key
        .unwrap();
    let e = kms
        .derive_shared_secret()
        .key_id(&p256)
        .key_agreement_algorithm(KeyAgreementAlgorithmSpec::Ecdh)
        .public_key(p384_pub.clone())
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    let (signer, signer_arn) = create(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let e = kms
        .derive_shared_secret()
        .key_id(&signer)
        .key_agreement_algorithm(KeyAgreementAlgorithmSpec::Ecdh)
        .public_key(p384_pub)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_msg(&e),
        (
            "InvalidKeyUsageException".into(),
            format!(
                "{signer_arn} key usage is SIGN_VERIFY which is not valid for DeriveSharedSecret."
            )
        )
    );
}

#[tokio::test]
async fn data_key_pairs_for_every_spec() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let arn = key.arn().unwrap();
    for spec in [
        DataKeyPairSpec::Rsa2048,
        DataKeyPairSpec::Rsa3072,
        DataKeyPairSpec::Rsa4096,
        DataKeyPairSpec::EccNistP256,
        DataKeyPairSpec::EccNistP384,
        DataKeyPairSpec::EccNistP521,
        DataKeyPairSpec::EccSecgP256K1,
        DataKeyPairSpec::EccNistEdwards25519,
        DataKeyPairSpec::MlKem512,
        DataKeyPairSpec::MlKem768,
        DataKeyPairSpec::MlKem1024,
    ] {
        let pair = kms
            .generate_data_key_pair()
            .key_id(key.key_id())
            .key_pair_spec(spec.clone())
            .encryption_context("use", "pair")
            .send()
            .await
            .unwrap();
        assert_eq!(pair.key_id(), Some(arn));
        assert_eq!(pair.key_pair_spec(), Some(&spec));
        assert_eq!(pair.key_material_id(), key.current_key_material_id());
        let private = pair.private_key_plaintext().unwrap().as_ref().to_vec();
        let public = pair.public_key().unwrap().as_ref().to_vec();
        // The encrypted private key is an ordinary symmetric ciphertext.
        let opened = kms
            .decrypt()
            .ciphertext_blob(pair.private_key_ciphertext_blob.unwrap())
            .encryption_context("use", "pair")
            .send()
            .await
            .unwrap();
        assert_eq!(opened.plaintext().unwrap().as_ref(), private.as_slice());
        // The private key signs what the public key verifies.
        let check = |alg: &'static dyn sig::VerificationAlgorithm, signature: &[u8]| {
            UnparsedPublicKey::new(alg, &public)
                .verify(b"pair", signature)
                .unwrap_or_else(|_| panic!("{spec:?}"));
        };
        let rng = aws_lc_rs::rand::SystemRandom::new();
        match spec {
            DataKeyPairSpec::Rsa2048 | DataKeyPairSpec::Rsa3072 | DataKeyPairSpec::Rsa4096 => {
                let kp = sig::RsaKeyPair::from_pkcs8(&private).unwrap();
                let mut s = vec![0; kp.public_modulus_len()];
                kp.sign(&sig::RSA_PSS_SHA256, &rng, b"pair", &mut s)
                    .unwrap();
                check(&sig::RSA_PSS_2048_8192_SHA256, &s);
            }
            DataKeyPairSpec::EccNistEdwards25519 => {
                let kp = sig::Ed25519KeyPair::from_pkcs8(&private).unwrap();
                check(&sig::ED25519, kp.sign(b"pair").as_ref());
            }
            DataKeyPairSpec::MlKem512 | DataKeyPairSpec::MlKem768 | DataKeyPairSpec::MlKem1024 => {
                assert_eq!(private[0], 0x30);
                assert_eq!(public[0], 0x30);
            }
            _ => {
                let (signing, verifying): (_, &'static dyn sig::VerificationAlgorithm) = match spec
                {
                    DataKeyPairSpec::EccNistP256 => (
                        &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
                        &sig::ECDSA_P256_SHA256_ASN1,
                    ),
                    DataKeyPairSpec::EccNistP384 => (
                        &sig::ECDSA_P384_SHA384_ASN1_SIGNING,
                        &sig::ECDSA_P384_SHA384_ASN1,
                    ),
                    DataKeyPairSpec::EccNistP521 => (
                        &sig::ECDSA_P521_SHA512_ASN1_SIGNING,
                        &sig::ECDSA_P521_SHA512_ASN1,
                    ),
                    _ => (
                        &sig::ECDSA_P256K1_SHA256_ASN1_SIGNING,
                        &sig::ECDSA_P256K1_SHA256_ASN1,
                    ),
                };
                let kp = sig::EcdsaKeyPair::from_pkcs8(signing, &private).unwrap();
                check(verifying, kp.sign(&rng, b"pair").unwrap().as_ref());
            }
        }
    }
    let without = kms
        .generate_data_key_pair_without_plaintext()
        .key_id(key.key_id())
        .key_pair_spec(DataKeyPairSpec::EccNistP256)
        .send()
        .await
        .unwrap();
    assert_eq!(without.public_key().unwrap().as_ref()[0], 0x30);
    assert!(without.private_key_ciphertext_blob().is_some());

    // SM2 is not offered; an asymmetric key does not encrypt data key pairs.
    let e = kms
        .generate_data_key_pair()
        .key_id(key.key_id())
        .key_pair_spec(DataKeyPairSpec::Sm2)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    assert!(e.message().unwrap().contains("'keyPairSpec'"));
    let (rsa, rsa_arn) = create(&kms, KeySpec::Rsa2048, KeyUsageType::EncryptDecrypt).await;
    let e = kms
        .generate_data_key_pair()
        .key_id(&rsa)
        .key_pair_spec(DataKeyPairSpec::EccNistP256)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_msg(&e),
        (
            "InvalidKeyUsageException".into(),
            format!(
                "{rsa_arn} key usage is ENCRYPT_DECRYPT which is not valid for GenerateDataKeyPair."
            )
        )
    );
    let e = kms
        .generate_data_key_pair_without_plaintext()
        .key_id(key.key_id())
        .key_pair_spec(DataKeyPairSpec::EccNistP256)
        .dry_run(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("DryRunOperationException"));
}

#[tokio::test]
async fn asymmetric_keys_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::builder().data_dir(dir.path()).start().await;
    let kms = server.kms();
    let (key, _) = create(&kms, KeySpec::Rsa2048, KeyUsageType::SignVerify).await;
    let public = kms
        .get_public_key()
        .key_id(&key)
        .send()
        .await
        .unwrap()
        .public_key
        .unwrap();
    drop(kms);
    server.stop().await;
    let server = TestServer::builder().data_dir(dir.path()).start().await;
    let kms = server.kms();
    let again = kms
        .get_public_key()
        .key_id(&key)
        .send()
        .await
        .unwrap()
        .public_key
        .unwrap();
    assert_eq!(public, again);
    let s = kms
        .sign()
        .key_id(&key)
        .message(Blob::new(b"after".to_vec()))
        .signing_algorithm(Alg::RsassaPkcs1V15Sha256)
        .send()
        .await
        .unwrap();
    UnparsedPublicKey::new(&sig::RSA_PKCS1_2048_8192_SHA256, again.as_ref())
        .verify(b"after", s.signature().unwrap().as_ref())
        .unwrap();
}
