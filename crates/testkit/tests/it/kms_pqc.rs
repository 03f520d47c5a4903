//! Post-quantum KMS keys through the real `aws-sdk-kms` client: ML-DSA (Sign/Verify with
//! `ML_DSA_SHAKE_256`) and ML-KEM (Encapsulate/Decapsulate, the model's operations), with
//! their public keys as DER SubjectPublicKeyInfo.

use aws_lc_rs::signature::{self as sig, UnparsedPublicKey};
use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    EncapsulationAlgorithmSpec, KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec as Alg,
};
use keyhold_testkit::TestServer;
use sha3::digest::{ExtendableOutput, Update};

#[tokio::test]
async fn ml_dsa_signs_what_its_public_key_verifies() {
    let server = TestServer::start().await;
    let kms = server.kms();
    for (spec, verifier, signing) in [
        (KeySpec::MlDsa44, &sig::ML_DSA_44, &sig::ML_DSA_44_SIGNING),
        (KeySpec::MlDsa65, &sig::ML_DSA_65, &sig::ML_DSA_65_SIGNING),
        (KeySpec::MlDsa87, &sig::ML_DSA_87, &sig::ML_DSA_87_SIGNING),
    ] {
        let m = kms
            .create_key()
            .key_spec(spec.clone())
            .key_usage(KeyUsageType::SignVerify)
            .send()
            .await
            .unwrap()
            .key_metadata
            .unwrap();
        assert_eq!(m.signing_algorithms(), &[Alg::MlDsaShake256]);
        let key = m.key_id();
        let public = kms.get_public_key().key_id(key).send().await.unwrap();
        assert_eq!(public.key_spec(), Some(&spec));
        let der = public.public_key().unwrap().as_ref().to_vec();
        let signed = kms
            .sign()
            .key_id(key)
            .message(Blob::new(b"post-quantum".to_vec()))
            .message_type(MessageType::Raw)
            .signing_algorithm(Alg::MlDsaShake256)
            .send()
            .await
            .unwrap();
        let signature = signed.signature().unwrap().as_ref().to_vec();
        UnparsedPublicKey::new(verifier, &der)
            .verify(b"post-quantum", &signature)
            .unwrap();
        let ok = kms
            .verify()
            .key_id(key)
            .message(Blob::new(b"post-quantum".to_vec()))
            .signature(Blob::new(signature.clone()))
            .signing_algorithm(Alg::MlDsaShake256)
            .send()
            .await
            .unwrap();
        assert!(ok.signature_valid());
        let e = kms
            .verify()
            .key_id(key)
            .message(Blob::new(b"post-quantuM".to_vec()))
            .signature(Blob::new(signature))
            .signing_algorithm(Alg::MlDsaShake256)
            .send()
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("KMSInvalidSignatureException"));
        // DIGEST is not an ML-DSA message type; EXTERNAL_MU is, with a 64-byte μ.
        let with_type = |t: MessageType, len: usize| {
            kms.sign()
                .key_id(key)
                .message(Blob::new(vec![1u8; len]))
                .message_type(t)
                .signing_algorithm(Alg::MlDsaShake256)
                .send()
        };
        let e = with_type(MessageType::Digest, 32).await.unwrap_err();
        assert_eq!(e.code(), Some("ValidationException"));
        let e = with_type(MessageType::ExternalMu, 63).await.unwrap_err();
        assert_eq!(e.code(), Some("ValidationException"));
        external_mu_is_the_message_it_represents(
            &kms,
            key,
            &der,
            verifier,
            signing.public_key_len(),
        )
        .await;
        let e = kms
            .sign()
            .key_id(key)
            .message(Blob::new(b"m".to_vec()))
            .signing_algorithm(Alg::EcdsaSha256)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            e.message(),
            Some(
                format!(
                    "Algorithm ECDSA_SHA_256 is incompatible with key spec {}.",
                    spec.as_str()
                )
                .as_str()
            )
        );
    }
}

#[tokio::test]
async fn ml_kem_encapsulates_and_decapsulates() {
    let server = TestServer::start().await;
    let kms = server.kms();
    for (spec, ciphertext_len) in [
        (KeySpec::MlKem512, 768),
        (KeySpec::MlKem768, 1088),
        (KeySpec::MlKem1024, 1568),
    ] {
        let m = kms
            .create_key()
            .key_spec(spec.clone())
            .key_usage(KeyUsageType::EncapsulateDecapsulate)
            .send()
            .await
            .unwrap()
            .key_metadata
            .unwrap();
        assert_eq!(
            m.encapsulation_algorithms(),
            &[EncapsulationAlgorithmSpec::MlKem]
        );
        let key = m.key_id();
        let arn = m.arn().unwrap();
        let public = kms.get_public_key().key_id(key).send().await.unwrap();
        assert_eq!(
            public.encapsulation_algorithms(),
            &[EncapsulationAlgorithmSpec::MlKem]
        );
        assert_eq!(
            public.key_usage(),
            Some(&KeyUsageType::EncapsulateDecapsulate)
        );
        let enc = kms
            .encapsulate()
            .key_id(key)
            .encapsulation_algorithm(EncapsulationAlgorithmSpec::MlKem)
            .send()
            .await
            .unwrap();
        assert_eq!(enc.key_id(), Some(arn));
        let secret = enc.shared_secret().unwrap().as_ref().to_vec();
        assert_eq!(secret.len(), 32);
        let ct = enc.shared_secret_ciphertext_blob.unwrap();
        assert_eq!(ct.as_ref().len(), ciphertext_len);
        let dec = kms
            .decapsulate()
            .key_id(key)
            .shared_secret_ciphertext_blob(ct.clone())
            .encapsulation_algorithm(EncapsulationAlgorithmSpec::MlKem)
            .send()
            .await
            .unwrap();
        assert_eq!(dec.shared_secret().unwrap().as_ref(), secret.as_slice());
        assert_eq!(
            dec.encapsulation_algorithm(),
            Some(&EncapsulationAlgorithmSpec::MlKem)
        );

        // Implicit rejection: an altered ciphertext gives another secret, not an error.
        let mut altered = ct.as_ref().to_vec();
        altered[10] ^= 0x80;
        let other = kms
            .decapsulate()
            .key_id(key)
            .shared_secret_ciphertext_blob(Blob::new(altered))
            .encapsulation_algorithm(EncapsulationAlgorithmSpec::MlKem)
            .send()
            .await
            .unwrap();
        assert_ne!(other.shared_secret().unwrap().as_ref(), secret.as_slice());
        // Only the wrong length is InvalidCiphertextException.
        let e = kms
            .decapsulate()
            .key_id(key)
            .shared_secret_ciphertext_blob(Blob::new(ct.as_ref()[1..].to_vec()))
            .encapsulation_algorithm(EncapsulationAlgorithmSpec::MlKem)
            .send()
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("InvalidCiphertextException"));
        // An ML-KEM key does nothing else.
        let e = kms
            .sign()
            .key_id(key)
            .message(Blob::new(b"m".to_vec()))
            .signing_algorithm(Alg::MlDsaShake256)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            e.message(),
            Some(
                format!("{arn} key usage is ENCAPSULATE_DECAPSULATE which is not valid for Sign.")
                    .as_str()
            )
        );
    }
    let symmetric = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let e = kms
        .encapsulate()
        .key_id(symmetric.key_id())
        .encapsulation_algorithm(EncapsulationAlgorithmSpec::MlKem)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        Some(
            format!(
                "{} key usage is ENCRYPT_DECRYPT which is not valid for Encapsulate.",
                symmetric.arn().unwrap()
            )
            .as_str()
        )
    );
}

/// `EXTERNAL_MU`: the client computes μ = SHAKE256(tr ‖ 0 ‖ 0 ‖ M, 64) with tr =
/// SHAKE256(pk, 64) (FIPS 204 Algorithm 2, empty context) from the public key alone. A
/// signature over μ is then a signature over M, for KMS and for AWS-LC; and KMS verifies a
/// RAW signature given only μ.
async fn external_mu_is_the_message_it_represents(
    kms: &aws_sdk_kms::Client,
    key: &str,
    spki: &[u8],
    verifier: &'static sig::PqdsaVerificationAlgorithm,
    public_key_len: usize,
) {
    let message = b"signed by its representative";
    // The raw public key ends the SubjectPublicKeyInfo (its BIT STRING).
    let public = &spki[spki.len() - public_key_len..];
    let shake = |parts: &[&[u8]]| {
        let mut h = sha3::Shake256::default();
        parts.iter().for_each(|p| h.update(p));
        let mut out = vec![0u8; 64];
        h.finalize_xof_into(&mut out);
        out
    };
    let mu = shake(&[&shake(&[public]), &[0, 0], message]);
    let over_mu = kms
        .sign()
        .key_id(key)
        .message(Blob::new(mu.clone()))
        .message_type(MessageType::ExternalMu)
        .signing_algorithm(Alg::MlDsaShake256)
        .send()
        .await
        .unwrap()
        .signature
        .unwrap()
        .into_inner();
    UnparsedPublicKey::new(verifier, spki)
        .verify(message, &over_mu)
        .unwrap();
    let verify = |message_type: MessageType, message: Vec<u8>, signature: Vec<u8>| {
        kms.verify()
            .key_id(key)
            .message(Blob::new(message))
            .message_type(message_type)
            .signature(Blob::new(signature))
            .signing_algorithm(Alg::MlDsaShake256)
            .send()
    };
    let raw = verify(MessageType::Raw, message.to_vec(), over_mu.clone());
    assert!(raw.await.unwrap().signature_valid());
    let over_message = kms
        .sign()
        .key_id(key)
        .message(Blob::new(message.to_vec()))
        .signing_algorithm(Alg::MlDsaShake256)
        .send()
        .await
        .unwrap()
        .signature
        .unwrap()
        .into_inner();
    let by_mu = verify(MessageType::ExternalMu, mu.clone(), over_message);
    assert!(by_mu.await.unwrap().signature_valid());
    let mut other = mu;
    other[5] ^= 0x40;
    let e = verify(MessageType::ExternalMu, other, over_mu)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("KMSInvalidSignatureException"));
}
