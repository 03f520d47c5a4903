use super::*;

fn reload(key: &PrivateKey) -> PrivateKey {
    let document = SecretBytes::from(key.document().expose_secret().to_vec());
    PrivateKey::from_document(key.spec(), key.key_use(), document).unwrap()
}

#[test]
fn every_spec_and_use_generates_and_reloads() {
    for spec in KeySpec::ALL {
        for key_use in spec.uses() {
            let key = PrivateKey::generate(*spec, *key_use).unwrap();
            let again = reload(&key);
            assert_eq!(again.public_key_der(), key.public_key_der(), "{spec:?}");
            assert_eq!(
                key.public_key_der().is_none(),
                spec.mac_algorithm().is_some(),
                "{spec:?}"
            );
            let printed = format!("{key:?}");
            assert_eq!(printed, format!("PrivateKey({}, [redacted])", spec.name()));
        }
    }
}

#[test]
fn pairs_aws_does_not_allow_are_refused() {
    assert!(matches!(
        PrivateKey::generate(KeySpec::EccSecgP256k1, KeyUse::KeyAgreement),
        Err(CryptoError::Unsupported)
    ));
    assert!(matches!(
        PrivateKey::generate(KeySpec::Hmac256, KeyUse::SignVerify),
        Err(CryptoError::Unsupported)
    ));
    assert!(matches!(
        PrivateKey::generate(KeySpec::EccNistEdwards25519, KeyUse::KeyAgreement),
        Err(CryptoError::Unsupported)
    ));
}

#[test]
fn a_document_of_another_spec_does_not_parse() {
    let p256 = PrivateKey::generate(KeySpec::EccNistP256, KeyUse::SignVerify).unwrap();
    let doc = SecretBytes::from(p256.document().expose_secret().to_vec());
    assert!(PrivateKey::from_document(KeySpec::EccNistP384, KeyUse::SignVerify, doc).is_err());
    let doc = SecretBytes::from(vec![7u8; 32]);
    assert!(PrivateKey::from_document(KeySpec::Hmac384, KeyUse::GenerateVerifyMac, doc).is_err());
}

#[test]
fn every_signing_algorithm_signs_and_verifies_raw_and_digest() {
    for spec in KeySpec::ALL
        .iter()
        .filter(|s| s.uses().contains(&KeyUse::SignVerify))
    {
        let key = PrivateKey::generate(*spec, KeyUse::SignVerify).unwrap();
        for algorithm in spec.signing_algorithms() {
            let message = b"keyhold signs this";
            let raw = match key.sign(*algorithm, Message::Raw(message)) {
                Ok(sig) => sig,
                Err(CryptoError::InvalidInput)
                    if *algorithm == SigningAlgorithm::Ed25519PhSha512 =>
                {
                    continue;
                }
                Err(e) => panic!("{spec:?} {algorithm:?}: {e}"),
            };
            assert!(key.verify(*algorithm, Message::Raw(message), &raw).unwrap());
            assert!(
                !key.verify(*algorithm, Message::Raw(b"other"), &raw)
                    .unwrap()
            );
            if let Some(hash) = algorithm.digest() {
                let digest = digest::digest(hash, message);
                // A digest and its message are the same message.
                assert!(
                    key.verify(*algorithm, Message::Digest(digest.as_ref()), &raw)
                        .unwrap()
                );
                let sig = key
                    .sign(*algorithm, Message::Digest(digest.as_ref()))
                    .unwrap();
                assert!(key.verify(*algorithm, Message::Raw(message), &sig).unwrap());
                let short = &digest.as_ref()[1..];
                assert!(matches!(
                    key.sign(*algorithm, Message::Digest(short)),
                    Err(CryptoError::InvalidInput)
                ));
            }
        }
    }
}

#[test]
fn inputs_a_key_does_not_take_are_refused() {
    let p256 = PrivateKey::generate(KeySpec::EccNistP256, KeyUse::SignVerify).unwrap();
    assert!(matches!(
        p256.sign(SigningAlgorithm::EcdsaSha384, Message::Raw(b"m")),
        Err(CryptoError::InvalidInput)
    ));
    assert!(matches!(
        p256.sign(SigningAlgorithm::EcdsaSha256, Message::ExternalMu(&[0; 64])),
        Err(CryptoError::InvalidInput)
    ));
    let ed = PrivateKey::generate(KeySpec::EccNistEdwards25519, KeyUse::SignVerify).unwrap();
    assert!(matches!(
        ed.sign(SigningAlgorithm::Ed25519PhSha512, Message::Raw(b"m")),
        Err(CryptoError::InvalidInput)
    ));
    assert!(matches!(
        ed.sign(SigningAlgorithm::Ed25519PhSha512, Message::Digest(&[0; 32])),
        Err(CryptoError::InvalidInput)
    ));
    assert!(matches!(
        ed.sign(SigningAlgorithm::Ed25519Sha512, Message::Digest(&[0; 64])),
        Err(CryptoError::InvalidInput)
    ));
    let ml = PrivateKey::generate(KeySpec::MlDsa44, KeyUse::SignVerify).unwrap();
    assert!(matches!(
        ml.sign(
            SigningAlgorithm::MlDsaShake256,
            Message::ExternalMu(&[0; 63])
        ),
        Err(CryptoError::InvalidInput)
    ));
    assert!(matches!(
        ml.sign(SigningAlgorithm::MlDsaShake256, Message::Digest(&[0; 32])),
        Err(CryptoError::InvalidInput)
    ));
    let hmac = PrivateKey::generate(KeySpec::Hmac256, KeyUse::GenerateVerifyMac).unwrap();
    assert!(
        hmac.sign(SigningAlgorithm::EcdsaSha256, Message::Raw(b"m"))
            .is_err()
    );
    assert!(matches!(
        hmac.generate_mac(MacAlgorithm::HmacSha512, b"m"),
        Err(CryptoError::InvalidInput)
    ));
}

#[test]
fn oaep_round_trips_at_the_limits() {
    let key = PrivateKey::generate(KeySpec::Rsa2048, KeyUse::EncryptDecrypt).unwrap();
    for (algorithm, limit) in [(OaepAlgorithm::Sha1, 214), (OaepAlgorithm::Sha256, 190)] {
        assert_eq!(key.max_plaintext_len(algorithm), Some(limit));
        let plaintext = vec![0x5a; limit];
        let ciphertext = key.encrypt(algorithm, &plaintext).unwrap();
        assert_eq!(ciphertext.len(), 256);
        let opened = key.decrypt(algorithm, &ciphertext).unwrap();
        assert_eq!(opened.expose_secret(), plaintext.as_slice());
        assert!(matches!(
            key.encrypt(algorithm, &vec![0; limit + 1]),
            Err(CryptoError::InvalidInput)
        ));
        let other = match algorithm {
            OaepAlgorithm::Sha1 => OaepAlgorithm::Sha256,
            OaepAlgorithm::Sha256 => OaepAlgorithm::Sha1,
        };
        assert!(matches!(
            key.decrypt(other, &ciphertext),
            Err(CryptoError::InvalidCiphertext)
        ));
        let mut bad = ciphertext.clone();
        bad[17] ^= 1;
        assert!(matches!(
            key.decrypt(algorithm, &bad),
            Err(CryptoError::InvalidCiphertext)
        ));
    }
}

#[test]
fn ecdh_agrees_with_a_peer_and_takes_only_spki() {
    let a = PrivateKey::generate(KeySpec::EccNistP384, KeyUse::KeyAgreement).unwrap();
    let b = PrivateKey::generate(KeySpec::EccNistP384, KeyUse::KeyAgreement).unwrap();
    let ab = a.derive_shared_secret(b.public_key_der().unwrap()).unwrap();
    let ba = b.derive_shared_secret(a.public_key_der().unwrap()).unwrap();
    assert_eq!(ab.expose_secret(), ba.expose_secret());
    assert_eq!(ab.len(), 48);
    let p256 = PrivateKey::generate(KeySpec::EccNistP256, KeyUse::KeyAgreement).unwrap();
    assert!(matches!(
        a.derive_shared_secret(p256.public_key_der().unwrap()),
        Err(CryptoError::InvalidInput)
    ));
    // The bare point (X9.62) is not SubjectPublicKeyInfo.
    let spki = b.public_key_der().unwrap();
    let point = &spki[spki.len() - 97..];
    assert_eq!(point[0], 0x04);
    assert!(matches!(
        a.derive_shared_secret(point),
        Err(CryptoError::InvalidInput)
    ));
    assert!(a.derive_shared_secret(b"junk").is_err());
}

#[test]
fn ml_kem_encapsulates_and_rejects_implicitly() {
    for spec in [KeySpec::MlKem512, KeySpec::MlKem768, KeySpec::MlKem1024] {
        let key = PrivateKey::generate(spec, KeyUse::EncapsulateDecapsulate).unwrap();
        let (ciphertext, secret) = key.encapsulate().unwrap();
        assert_eq!(Some(ciphertext.len()), spec.ml_kem_ciphertext_len());
        assert_eq!(secret.len(), 32);
        let opened = key.decapsulate(&ciphertext).unwrap();
        assert_eq!(opened.expose_secret(), secret.expose_secret());
        let mut altered = ciphertext.clone();
        altered[0] ^= 1;
        let other = key.decapsulate(&altered).unwrap();
        assert_ne!(other.expose_secret(), secret.expose_secret());
        assert!(matches!(
            key.decapsulate(&ciphertext[1..]),
            Err(CryptoError::InvalidCiphertext)
        ));
    }
}

#[test]
fn hmac_known_answer_and_verify() {
    // RFC 4231 test case 2 has a 4-byte key; with our fixed-size keys use a self-check
    // against aws-lc-rs's one-shot HMAC instead.
    let key = PrivateKey::generate(KeySpec::Hmac384, KeyUse::GenerateVerifyMac).unwrap();
    let mac = key.generate_mac(MacAlgorithm::HmacSha384, b"msg").unwrap();
    let expected = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA384, key.document().expose_secret()),
        b"msg",
    );
    assert_eq!(mac, expected.as_ref());
    assert_eq!(mac.len(), 48);
    assert!(
        key.verify_mac(MacAlgorithm::HmacSha384, b"msg", &mac)
            .unwrap()
    );
    assert!(
        !key.verify_mac(MacAlgorithm::HmacSha384, b"msh", &mac)
            .unwrap()
    );
    assert!(
        !key.verify_mac(MacAlgorithm::HmacSha384, b"msg", &mac[1..])
            .unwrap()
    );
}

#[test]
fn data_key_pairs_are_pkcs8_and_spki() {
    for spec in [
        KeySpec::Rsa2048,
        KeySpec::EccNistP256,
        KeySpec::EccNistP521,
        KeySpec::EccSecgP256k1,
        KeySpec::EccNistEdwards25519,
        KeySpec::MlKem768,
    ] {
        let (private, public) = generate_data_key_pair(spec).unwrap();
        assert_eq!(private.expose_secret()[0], 0x30, "{spec:?}");
        assert_eq!(public[0], 0x30, "{spec:?}");
        match spec {
            KeySpec::Rsa2048 => {
                let pair = RsaKeyPair::from_pkcs8(private.expose_secret()).unwrap();
                assert_eq!(
                    pair.public_key().as_der().unwrap().as_ref(),
                    public.as_slice()
                );
            }
            KeySpec::EccNistEdwards25519 => {
                let pair = Ed25519KeyPair::from_pkcs8(private.expose_secret()).unwrap();
                let sig = pair.sign(b"m");
                signature::UnparsedPublicKey::new(&signature::ED25519, &public)
                    .verify(b"m", sig.as_ref())
                    .unwrap();
            }
            KeySpec::MlKem768 => {
                // SEQUENCE { SEQUENCE { OID }, BIT STRING } with the 1184-byte key.
                assert_eq!(public.len(), 4 + 2 + 11 + 5 + 1184);
            }
            _ => {
                let pair =
                    EcdsaKeyPair::from_pkcs8(ecdsa_signing(spec).unwrap(), private.expose_secret())
                        .unwrap();
                assert_eq!(
                    pair.public_key().as_der().unwrap().as_ref(),
                    public.as_slice()
                );
            }
        }
    }
    assert!(matches!(
        generate_data_key_pair(KeySpec::Hmac256),
        Err(CryptoError::Unsupported)
    ));
    assert!(matches!(
        generate_data_key_pair(KeySpec::MlDsa44),
        Err(CryptoError::Unsupported)
    ));
}

#[test]
fn ml_kem_public_key_is_the_one_inside_the_private_key() {
    let key = kem::DecapsulationKey::generate(&kem::ML_KEM_768).unwrap();
    let expected = key.encapsulation_key().unwrap().key_bytes().unwrap();
    let document = SecretBytes::from(key.key_bytes().unwrap().as_ref().to_vec());
    let ours =
        PrivateKey::from_document(KeySpec::MlKem768, KeyUse::EncapsulateDecapsulate, document)
            .unwrap();
    let spki = ours.public_key_der().unwrap();
    assert!(spki.ends_with(expected.as_ref()));
    // What we encapsulate to, the original key opens.
    let (ciphertext, secret) = ours.encapsulate().unwrap();
    let opened = key
        .decapsulate(kem::Ciphertext::from(ciphertext.as_slice()))
        .unwrap();
    assert_eq!(opened.as_ref(), secret.expose_secret());
}

/// RFC 8032 §7.3, "TEST abc": Ed25519ph is deterministic, so KMS's signature over the
/// SHA-512 digest of "abc" must be the RFC's, byte for byte.
#[test]
fn ed25519ph_signs_the_rfc_8032_vector() {
    let seed =
        hex::decode("833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42").unwrap();
    let pair = Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
    let document = SecretBytes::from(pair.to_pkcs8v1().unwrap().as_ref().to_vec());
    let key = PrivateKey::from_document(KeySpec::EccNistEdwards25519, KeyUse::SignVerify, document)
        .unwrap();
    let expected = hex::decode(
        "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41\
         31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406",
    )
    .unwrap();
    let prehash = digest::digest(&digest::SHA512, b"abc");
    let algorithm = SigningAlgorithm::Ed25519PhSha512;
    let signature = key
        .sign(algorithm, Message::Digest(prehash.as_ref()))
        .unwrap();
    assert_eq!(signature, expected);
    assert!(
        key.verify(algorithm, Message::Digest(prehash.as_ref()), &signature)
            .unwrap()
    );
    let other = digest::digest(&digest::SHA512, b"abd");
    assert!(
        !key.verify(algorithm, Message::Digest(other.as_ref()), &signature)
            .unwrap()
    );
    // Ed25519ph is not Ed25519: neither verifies the other's signature.
    let pure = key
        .sign(
            SigningAlgorithm::Ed25519Sha512,
            Message::Raw(prehash.as_ref()),
        )
        .unwrap();
    assert!(
        !key.verify(algorithm, Message::Digest(prehash.as_ref()), &pure)
            .unwrap()
    );
    assert!(
        !key.verify(algorithm, Message::Digest(prehash.as_ref()), &[0; 3])
            .unwrap()
    );
}

/// μ = SHAKE256(tr ‖ 0 ‖ 0 ‖ M, 64) with tr = SHAKE256(pk, 64) (FIPS 204 Algorithm 2, empty
/// context): a signature over μ is a signature over M, for AWS-LC as for `ml-dsa`.
#[test]
fn ml_dsa_over_external_mu_is_ml_dsa_over_the_message() {
    let message = b"keyhold signs the representative";
    for spec in [KeySpec::MlDsa44, KeySpec::MlDsa65, KeySpec::MlDsa87] {
        let key = PrivateKey::generate(spec, KeyUse::SignVerify).unwrap();
        let Inner::MlDsa { pair, .. } = &key.inner else {
            panic!("{spec:?}")
        };
        let public = pair.public_key().as_ref().to_vec();
        let mu = external_mu(&public, message);
        let algorithm = SigningAlgorithm::MlDsaShake256;
        let over_mu = key.sign(algorithm, Message::ExternalMu(&mu)).unwrap();
        assert!(
            key.verify(algorithm, Message::Raw(message), &over_mu)
                .unwrap(),
            "{spec:?}"
        );
        let over_message = key.sign(algorithm, Message::Raw(message)).unwrap();
        assert!(
            key.verify(algorithm, Message::ExternalMu(&mu), &over_message)
                .unwrap()
        );
        let mut other = mu.clone();
        other[0] ^= 1;
        assert!(
            !key.verify(algorithm, Message::ExternalMu(&other), &over_mu)
                .unwrap()
        );
        assert!(
            !key.verify(algorithm, Message::ExternalMu(&mu), &over_mu[1..])
                .unwrap()
        );
        // Hedged: two signatures over one μ differ.
        assert_ne!(
            over_mu,
            key.sign(algorithm, Message::ExternalMu(&mu)).unwrap()
        );
    }
}

fn external_mu(public: &[u8], message: &[u8]) -> Vec<u8> {
    use sha3::digest::{ExtendableOutput, Update};
    let shake = |parts: &[&[u8]]| {
        let mut h = sha3::Shake256::default();
        parts.iter().for_each(|p| h.update(p));
        let mut out = vec![0u8; 64];
        h.finalize_xof_into(&mut out);
        out
    };
    let tr = shake(&[public]);
    shake(&[&tr, &[0, 0], message])
}
