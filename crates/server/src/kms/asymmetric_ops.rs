//! The operations of asymmetric, HMAC and post-quantum keys: Sign, Verify, GetPublicKey,
//! GenerateMac, VerifyMac, DeriveSharedSecret, Encapsulate, Decapsulate, and the data key
//! pairs (GenerateDataKeyPair, GenerateDataKeyPairWithoutPlaintext) that a symmetric key
//! encrypts. RSAES-OAEP Encrypt and Decrypt live with the symmetric ones in `crypto_ops`.
//!
//! Every operation checks, in AWS's order: the key exists; the caller may; the key's state;
//! its usage (`InvalidKeyUsageException`, "key usage is ... which is not valid for ...");
//! the algorithm against its spec (`InvalidKeyUsageException`, "Algorithm ... is
//! incompatible with key spec ..."); the message; `DryRun`. The private key is the one
//! parsed when the key was loaded: nothing here reads the store or parses a key.

use keyhold_crypto::asymmetric::{self as crypto, Message, SigningAlgorithm};
use keyhold_proto::kms::*;
use keyhold_proto::{Blob, SensitiveBlob};

use super::KmsService;
use super::authz::Facts;
use super::crypto_ops::{check_symmetric, dry_run, seal};
use super::error::KmsError;
use super::key::Key;
use super::resolve::Aliases;
use super::specs;
use crate::context::RequestContext;

pub async fn sign(
    kms: &KmsService,
    ctx: &RequestContext,
    input: SignRequest,
) -> Result<SignResponse, KmsError> {
    kms.check_grant_tokens(input.grant_tokens.as_deref())
        .await?;
    let key = kms.resolve(ctx, &input.key_id, Aliases::Allowed).await?;
    kms.authorize(ctx, &key, "kms:Sign", &Facts::default())?;
    key.check_usable()?;
    key.check_usage(KeyUsageType::SignVerify, "Sign")?;
    let algorithm = signing_algorithm(&key, input.signing_algorithm)?;
    let message = message(
        input.signing_algorithm,
        algorithm,
        input.message_type,
        input.message.expose_secret(),
    )?;
    dry_run(input.dry_run)?;
    let signature = key
        .private()?
        .sign(algorithm, message)
        .map_err(|_| KmsError::Internal)?;
    Ok(SignResponse {
        key_id: Some(key.arn().to_owned()),
        signature: Some(Blob::new(signature)),
        signing_algorithm: Some(input.signing_algorithm),
    })
}

pub async fn verify(
    kms: &KmsService,
    ctx: &RequestContext,
    input: VerifyRequest,
) -> Result<VerifyResponse, KmsError> {
    kms.check_grant_tokens(input.grant_tokens.as_deref())
        .await?;
    let key = kms.resolve(ctx, &input.key_id, Aliases::Allowed).await?;
    kms.authorize(ctx, &key, "kms:Verify", &Facts::default())?;
    key.check_usable()?;
    key.check_usage(KeyUsageType::SignVerify, "Verify")?;
    let algorithm = signing_algorithm(&key, input.signing_algorithm)?;
    let message = message(
        input.signing_algorithm,
        algorithm,
        input.message_type,
        input.message.expose_secret(),
    )?;
    dry_run(input.dry_run)?;
    let valid = key
        .private()?
        .verify(algorithm, message, input.signature.as_bytes())
        .map_err(|_| KmsError::Internal)?;
    // AWS never answers `SignatureValid: false`: a bad signature is an error.
    if !valid {
        return Err(KmsError::InvalidSignature);
    }
    Ok(VerifyResponse {
        key_id: Some(key.arn().to_owned()),
        signature_valid: Some(true),
        signing_algorithm: Some(input.signing_algorithm),
    })
}

pub async fn get_public_key(
    kms: &KmsService,
    ctx: &RequestContext,
    input: GetPublicKeyRequest,
) -> Result<GetPublicKeyResponse, KmsError> {
    kms.check_grant_tokens(input.grant_tokens.as_deref())
        .await?;
    let key = kms.resolve(ctx, &input.key_id, Aliases::Allowed).await?;
    kms.authorize(ctx, &key, "kms:GetPublicKey", &Facts::default())?;
    key.check_usable()?;
    let public = key
        .materials
        .private
        .as_deref()
        .and_then(crypto::PrivateKey::public_key_der)
        .ok_or_else(|| KmsError::NoPublicKey {
            arn: key.arn().to_owned(),
        })?;
    let algorithms = key.algorithms();
    Ok(GetPublicKeyResponse {
        key_id: Some(key.arn().to_owned()),
        public_key: Some(Blob::new(public.to_vec())),
        customer_master_key_spec: CustomerMasterKeySpec::parse(key.spec.as_str()),
        key_spec: Some(key.spec),
        key_usage: Some(key.usage),
        encryption_algorithms: algorithms.encryption,
        signing_algorithms: algorithms.signing,
        key_agreement_algorithms: algorithms.key_agreement,
        encapsulation_algorithms: algorithms.encapsulation,
    })
}

pub async fn generate_mac(
    kms: &KmsService,
    ctx: &RequestContext,
    input: GenerateMacRequest,
) -> Result<GenerateMacResponse, KmsError> {
    kms.check_grant_tokens(input.grant_tokens.as_deref())
        .await?;
    let key = kms.resolve(ctx, &input.key_id, Aliases::Allowed).await?;
    kms.authorize(ctx, &key, "kms:GenerateMac", &Facts::default())?;
    key.check_usable()?;
    key.check_usage(KeyUsageType::GenerateVerifyMac, "GenerateMac")?;
    let algorithm = mac_algorithm(&key, input.mac_algorithm)?;
    dry_run(input.dry_run)?;
    let mac = key
        .private()?
        .generate_mac(algorithm, input.message.expose_secret())
        .map_err(|_| KmsError::Internal)?;
    Ok(GenerateMacResponse {
        key_id: Some(key.arn().to_owned()),
        mac: Some(Blob::new(mac)),
        mac_algorithm: Some(input.mac_algorithm),
    })
}

pub async fn verify_mac(
    kms: &KmsService,
    ctx: &RequestContext,
    input: VerifyMacRequest,
) -> Result<VerifyMacResponse, KmsError> {
    kms.check_grant_tokens(input.grant_tokens.as_deref())
        .await?;
    let key = kms.resolve(ctx, &input.key_id, Aliases::Allowed).await?;
    kms.authorize(ctx, &key, "kms:VerifyMac", &Facts::default())?;
    key.check_usable()?;
    key.check_usage(KeyUsageType::GenerateVerifyMac, "VerifyMac")?;
    let algorithm = mac_algorithm(&key, input.mac_algorithm)?;
    dry_run(input.dry_run)?;
    let valid = key
        .private()?
        .verify_mac(
            algorithm,
            input.message.expose_secret(),
            input.mac.as_bytes(),
        )
        .map_err(|_| KmsError::Internal)?;
    // Like Verify: never `MacValid: false`.
    if !valid {
        return Err(KmsError::InvalidMac);
    }
    Ok(VerifyMacResponse {
        key_id: Some(key.arn().to_owned()),
        mac_algorithm: Some(input.mac_algorithm),
        mac_valid: Some(true),
    })
}

pub async fn derive_shared_secret(
    kms: &KmsService,
    ctx: &RequestContext,
    input: DeriveSharedSecretRequest,
) -> Result<DeriveSharedSecretResponse, KmsError> {
    if input.recipient.is_some() {
        return Err(KmsError::Unsupported {
            what: "DeriveSharedSecret with a Recipient (Nitro Enclaves attestation)".into(),
        });
    }
    kms.check_grant_tokens(input.grant_tokens.as_deref())
        .await?;
    let key = kms.resolve(ctx, &input.key_id, Aliases::Allowed).await?;
    kms.authorize(ctx, &key, "kms:DeriveSharedSecret", &Facts::default())?;
    key.check_usable()?;
    key.check_usage(KeyUsageType::KeyAgreement, "DeriveSharedSecret")?;
    dry_run(input.dry_run)?;
    let secret = key
        .private()?
        .derive_shared_secret(input.public_key.as_bytes())
        .map_err(|_| KmsError::InvalidPublicKey)?;
    Ok(DeriveSharedSecretResponse {
        key_id: Some(key.arn().to_owned()),
        shared_secret: Some(SensitiveBlob::new(secret.expose_secret().to_vec())),
        key_agreement_algorithm: Some(input.key_agreement_algorithm),
        key_origin: Some(key.origin),
        ciphertext_for_recipient: None,
    })
}

pub async fn encapsulate(
    kms: &KmsService,
    ctx: &RequestContext,
    input: EncapsulateRequest,
) -> Result<EncapsulateResponse, KmsError> {
    kms.check_grant_tokens(input.grant_tokens.as_deref())
        .await?;
    let key = kms.resolve(ctx, &input.key_id, Aliases::Allowed).await?;
    kms.authorize(ctx, &key, "kms:Encapsulate", &Facts::default())?;
    key.check_usable()?;
    key.check_usage(KeyUsageType::EncapsulateDecapsulate, "Encapsulate")?;
    dry_run(input.dry_run)?;
    let (ciphertext, secret) = key
        .private()?
        .encapsulate()
        .map_err(|_| KmsError::Internal)?;
    Ok(EncapsulateResponse {
        key_id: Some(key.arn().to_owned()),
        shared_secret: Some(SensitiveBlob::new(secret.expose_secret().to_vec())),
        shared_secret_ciphertext_blob: Some(Blob::new(ciphertext)),
        encapsulation_algorithm: Some(input.encapsulation_algorithm),
    })
}

pub async fn decapsulate(
    kms: &KmsService,
    ctx: &RequestContext,
    input: DecapsulateRequest,
) -> Result<DecapsulateResponse, KmsError> {
    kms.check_grant_tokens(input.grant_tokens.as_deref())
        .await?;
    let key = kms.resolve(ctx, &input.key_id, Aliases::Allowed).await?;
    kms.authorize(ctx, &key, "kms:Decapsulate", &Facts::default())?;
    key.check_usable()?;
    key.check_usage(KeyUsageType::EncapsulateDecapsulate, "Decapsulate")?;
    dry_run(input.dry_run)?;
    // Implicit rejection: only a ciphertext of the wrong length fails.
    let secret = key
        .private()?
        .decapsulate(input.shared_secret_ciphertext_blob.as_bytes())
        .map_err(|_| KmsError::InvalidCiphertext)?;
    Ok(DecapsulateResponse {
        key_id: Some(key.arn().to_owned()),
        shared_secret: Some(SensitiveBlob::new(secret.expose_secret().to_vec())),
        encapsulation_algorithm: Some(input.encapsulation_algorithm),
    })
}

pub async fn generate_data_key_pair(
    kms: &KmsService,
    ctx: &RequestContext,
    input: GenerateDataKeyPairRequest,
) -> Result<GenerateDataKeyPairResponse, KmsError> {
    if input.recipient.is_some() {
        return Err(KmsError::Unsupported {
            what: "GenerateDataKeyPair with a Recipient (Nitro Enclaves attestation)".into(),
        });
    }
    let pair = data_key_pair(
        kms,
        ctx,
        DataKeyPairArgs {
            key_id: &input.key_id,
            spec: input.key_pair_spec,
            context: input.encryption_context.unwrap_or_default(),
            grant_tokens: input.grant_tokens.as_deref(),
            action: "kms:GenerateDataKeyPair",
            operation: "GenerateDataKeyPair",
            dry: input.dry_run,
        },
    )
    .await?;
    Ok(GenerateDataKeyPairResponse {
        key_id: Some(pair.key.arn().to_owned()),
        key_material_id: Some(pair.key.current_material.to_hex()),
        key_pair_spec: Some(input.key_pair_spec),
        private_key_ciphertext_blob: Some(Blob::new(pair.ciphertext)),
        private_key_plaintext: Some(SensitiveBlob::new(pair.private.expose_secret().to_vec())),
        public_key: Some(Blob::new(pair.public)),
        ciphertext_for_recipient: None,
    })
}

pub async fn generate_data_key_pair_without_plaintext(
    kms: &KmsService,
    ctx: &RequestContext,
    input: GenerateDataKeyPairWithoutPlaintextRequest,
) -> Result<GenerateDataKeyPairWithoutPlaintextResponse, KmsError> {
    let pair = data_key_pair(
        kms,
        ctx,
        DataKeyPairArgs {
            key_id: &input.key_id,
            spec: input.key_pair_spec,
            context: input.encryption_context.unwrap_or_default(),
            grant_tokens: input.grant_tokens.as_deref(),
            action: "kms:GenerateDataKeyPairWithoutPlaintext",
            operation: "GenerateDataKeyPairWithoutPlaintext",
            dry: input.dry_run,
        },
    )
    .await?;
    Ok(GenerateDataKeyPairWithoutPlaintextResponse {
        key_id: Some(pair.key.arn().to_owned()),
        key_material_id: Some(pair.key.current_material.to_hex()),
        key_pair_spec: Some(input.key_pair_spec),
        private_key_ciphertext_blob: Some(Blob::new(pair.ciphertext)),
        public_key: Some(Blob::new(pair.public)),
    })
}

struct DataKeyPairArgs<'a> {
    key_id: &'a str,
    spec: DataKeyPairSpec,
    context: std::collections::BTreeMap<String, String>,
    grant_tokens: Option<&'a [String]>,
    action: &'static str,
    operation: &'static str,
    dry: Option<bool>,
}

struct DataKeyPair {
    key: std::sync::Arc<Key>,
    private: keyhold_crypto::SecretBytes,
    public: Vec<u8>,
    ciphertext: Vec<u8>,
}

async fn data_key_pair(
    kms: &KmsService,
    ctx: &RequestContext,
    args: DataKeyPairArgs<'_>,
) -> Result<DataKeyPair, KmsError> {
    let spec = specs::data_key_pair_spec(args.spec)?;
    kms.check_grant_tokens(args.grant_tokens).await?;
    let key = kms.resolve(ctx, args.key_id, Aliases::Allowed).await?;
    let facts = Facts {
        encryption_context: Some(&args.context),
        ..Facts::default()
    };
    kms.authorize(ctx, &key, args.action, &facts)?;
    check_symmetric(&key, args.operation, None)?;
    kms.key_token(&key).await?;
    dry_run(args.dry)?;
    // RSA key generation takes up to a second: off the async workers.
    let (private, public) =
        tokio::task::spawn_blocking(move || crypto::generate_data_key_pair(spec))
            .await
            .map_err(|_| KmsError::Internal)?
            .map_err(|_| KmsError::Internal)?;
    let ciphertext = seal(kms, &key, &args.context, private.expose_secret()).await?;
    Ok(DataKeyPair {
        key,
        private,
        public,
        ciphertext,
    })
}

/// The key's signing algorithm for `wire`, or AWS's refusal of an algorithm its spec does not
/// support.
fn signing_algorithm(key: &Key, wire: SigningAlgorithmSpec) -> Result<SigningAlgorithm, KmsError> {
    let supported = specs::crypto_spec(key.spec)
        .map(crypto::KeySpec::signing_algorithms)
        .unwrap_or_default();
    specs::signing_from_wire(wire)
        .filter(|a| supported.contains(a))
        .ok_or(KmsError::IncompatibleAlgorithm {
            algorithm: wire.as_str(),
            spec: key.spec.as_str(),
        })
}

fn mac_algorithm(key: &Key, wire: MacAlgorithmSpec) -> Result<crypto::MacAlgorithm, KmsError> {
    let algorithm = specs::mac_from_wire(wire);
    let supported = specs::crypto_spec(key.spec).and_then(crypto::KeySpec::mac_algorithm);
    if supported != Some(algorithm) {
        return Err(KmsError::IncompatibleAlgorithm {
            algorithm: wire.as_str(),
            spec: key.spec.as_str(),
        });
    }
    Ok(algorithm)
}

/// The message as the algorithm takes it, after AWS's checks of `MessageType`: `DIGEST` only
/// for the hash-then-sign algorithms (and Ed25519ph, which requires it), of the hash's
/// length; `EXTERNAL_MU` only for ML-DSA, 64 bytes.
fn message<'a>(
    wire: SigningAlgorithmSpec,
    algorithm: SigningAlgorithm,
    message_type: Option<MessageType>,
    bytes: &'a [u8],
) -> Result<Message<'a>, KmsError> {
    let message_type = message_type.unwrap_or(MessageType::Raw);
    let wrong_type = || KmsError::MessageType {
        algorithm: wire.as_str(),
        message_type: message_type.as_str(),
    };
    let length = |expected: usize| {
        if bytes.len() == expected {
            Ok(())
        } else {
            Err(KmsError::DigestLength {
                algorithm: wire.as_str(),
            })
        }
    };
    match (message_type, algorithm) {
        (MessageType::Raw, SigningAlgorithm::Ed25519PhSha512) => Err(wrong_type()),
        (MessageType::Raw, _) => Ok(Message::Raw(bytes)),
        (MessageType::Digest, SigningAlgorithm::Ed25519PhSha512) => {
            length(64)?;
            Ok(Message::Digest(bytes))
        }
        (MessageType::Digest, _) => {
            let expected = algorithm.digest_len().ok_or_else(wrong_type)?;
            length(expected)?;
            Ok(Message::Digest(bytes))
        }
        (MessageType::ExternalMu, SigningAlgorithm::MlDsaShake256) => {
            length(64)?;
            Ok(Message::ExternalMu(bytes))
        }
        (MessageType::ExternalMu, _) => Err(wrong_type()),
    }
}
