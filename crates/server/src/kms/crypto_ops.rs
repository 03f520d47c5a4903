//! The cryptographic operations: Encrypt, Decrypt, ReEncrypt (with symmetric keys and with
//! RSA keys, RSAES-OAEP), GenerateDataKey, GenerateDataKeyWithoutPlaintext, GenerateRandom.
//! None reads the store in steady state.

use std::collections::BTreeMap;
use std::sync::Arc;

use keyhold_crypto::asymmetric::{OaepAlgorithm, PrivateKey};
use keyhold_crypto::{EncryptionContext, SecretBytes, blob};
use keyhold_proto::kms::*;
use keyhold_proto::{Blob, SensitiveBlob};

use super::KmsService;
use super::authz::Facts;
use super::error::KmsError;
use super::key::Key;
use super::resolve::Aliases;
use super::specs;
use crate::context::RequestContext;

pub async fn encrypt(
    kms: &KmsService,
    ctx: &RequestContext,
    input: EncryptRequest,
) -> Result<EncryptResponse, KmsError> {
    kms.check_grant_tokens(input.grant_tokens.as_deref())
        .await?;
    let key = kms.resolve(ctx, &input.key_id, Aliases::Allowed).await?;
    let context = input.encryption_context.unwrap_or_default();
    let facts = Facts {
        encryption_context: Some(&context),
        ..Facts::default()
    };
    kms.authorize(ctx, &key, "kms:Encrypt", &facts)?;
    let cipher = cipher(&key, "Encrypt", input.encryption_algorithm, &context)?;
    let plaintext = input.plaintext.expose_secret();
    cipher.check_plaintext(plaintext)?;
    kms.key_token(&key).await?;
    dry_run(input.dry_run)?;
    let ciphertext = cipher.encrypt(kms, &key, &context, plaintext).await?;
    Ok(EncryptResponse {
        ciphertext_blob: Some(Blob::new(ciphertext)),
        key_id: Some(key.arn().to_owned()),
        encryption_algorithm: Some(cipher.algorithm()),
    })
}

pub async fn decrypt(
    kms: &KmsService,
    ctx: &RequestContext,
    input: DecryptRequest,
) -> Result<DecryptResponse, KmsError> {
    if input.recipient.is_some() {
        return Err(KmsError::Unsupported {
            what: "Decrypt with a Recipient (Nitro Enclaves attestation)".into(),
        });
    }
    let ciphertext = input.ciphertext_blob.ok_or(KmsError::CiphertextRequired)?;
    kms.check_grant_tokens(input.grant_tokens.as_deref())
        .await?;
    let context = input.encryption_context.unwrap_or_default();
    let opened = open(
        kms,
        ctx,
        ciphertext.as_bytes(),
        input.key_id.as_deref(),
        &context,
        "kms:Decrypt",
        "Decrypt",
        input.encryption_algorithm,
    )
    .await?;
    dry_run(input.dry_run)?;
    Ok(DecryptResponse {
        key_id: Some(opened.key.arn().to_owned()),
        plaintext: Some(SensitiveBlob::new(
            opened.plaintext.expose_secret().to_vec(),
        )),
        encryption_algorithm: Some(opened.algorithm),
        key_material_id: opened.material_id,
        ..DecryptResponse::default()
    })
}

pub async fn re_encrypt(
    kms: &KmsService,
    ctx: &RequestContext,
    input: ReEncryptRequest,
) -> Result<ReEncryptResponse, KmsError> {
    let ciphertext = input.ciphertext_blob.ok_or(KmsError::CiphertextRequired)?;
    kms.check_grant_tokens(input.grant_tokens.as_deref())
        .await?;
    let source_context = input.source_encryption_context.unwrap_or_default();
    let opened = open(
        kms,
        ctx,
        ciphertext.as_bytes(),
        input.source_key_id.as_deref(),
        &source_context,
        "kms:ReEncryptFrom",
        "ReEncrypt",
        input.source_encryption_algorithm,
    )
    .await?;
    let destination = kms
        .resolve(ctx, &input.destination_key_id, Aliases::Allowed)
        .await?;
    let destination_context = input.destination_encryption_context.unwrap_or_default();
    let facts = Facts {
        encryption_context: Some(&destination_context),
        ..Facts::default()
    };
    kms.authorize(ctx, &destination, "kms:ReEncryptTo", &facts)?;
    let cipher = cipher(
        &destination,
        "ReEncrypt",
        input.destination_encryption_algorithm,
        &destination_context,
    )?;
    cipher.check_plaintext(opened.plaintext.expose_secret())?;
    kms.key_token(&destination).await?;
    dry_run(input.dry_run)?;
    let ciphertext = cipher
        .encrypt(
            kms,
            &destination,
            &destination_context,
            opened.plaintext.expose_secret(),
        )
        .await?;
    let destination_material = match cipher {
        Cipher::Symmetric => Some(destination.current_material.to_hex()),
        Cipher::Oaep(..) => None,
    };
    Ok(ReEncryptResponse {
        ciphertext_blob: Some(Blob::new(ciphertext)),
        source_key_id: Some(opened.key.arn().to_owned()),
        key_id: Some(destination.arn().to_owned()),
        source_encryption_algorithm: Some(opened.algorithm),
        destination_encryption_algorithm: Some(cipher.algorithm()),
        source_key_material_id: opened.material_id,
        destination_key_material_id: destination_material,
    })
}

pub async fn generate_data_key(
    kms: &KmsService,
    ctx: &RequestContext,
    input: GenerateDataKeyRequest,
) -> Result<GenerateDataKeyResponse, KmsError> {
    if input.recipient.is_some() {
        return Err(KmsError::Unsupported {
            what: "GenerateDataKey with a Recipient (Nitro Enclaves attestation)".into(),
        });
    }
    kms.check_grant_tokens(input.grant_tokens.as_deref())
        .await?;
    let context = input.encryption_context.unwrap_or_default();
    let data_key = data_key(
        kms,
        ctx,
        &input.key_id,
        input.key_spec,
        input.number_of_bytes,
        &context,
        "kms:GenerateDataKey",
        input.dry_run,
    )
    .await?;
    Ok(GenerateDataKeyResponse {
        ciphertext_blob: Some(Blob::new(data_key.ciphertext)),
        plaintext: Some(SensitiveBlob::new(
            data_key.plaintext.expose_secret().to_vec(),
        )),
        key_id: Some(data_key.key.arn().to_owned()),
        key_material_id: Some(data_key.key.current_material.to_hex()),
        ..GenerateDataKeyResponse::default()
    })
}

pub async fn generate_data_key_without_plaintext(
    kms: &KmsService,
    ctx: &RequestContext,
    input: GenerateDataKeyWithoutPlaintextRequest,
) -> Result<GenerateDataKeyWithoutPlaintextResponse, KmsError> {
    kms.check_grant_tokens(input.grant_tokens.as_deref())
        .await?;
    let context = input.encryption_context.unwrap_or_default();
    let data_key = data_key(
        kms,
        ctx,
        &input.key_id,
        input.key_spec,
        input.number_of_bytes,
        &context,
        "kms:GenerateDataKeyWithoutPlaintext",
        input.dry_run,
    )
    .await?;
    Ok(GenerateDataKeyWithoutPlaintextResponse {
        ciphertext_blob: Some(Blob::new(data_key.ciphertext)),
        key_id: Some(data_key.key.arn().to_owned()),
        key_material_id: Some(data_key.key.current_material.to_hex()),
    })
}

pub async fn generate_random(
    kms: &KmsService,
    ctx: &RequestContext,
    input: GenerateRandomRequest,
) -> Result<GenerateRandomResponse, KmsError> {
    kms.authorize_account(ctx, "kms:GenerateRandom")?;
    if input.recipient.is_some() {
        return Err(KmsError::Unsupported {
            what: "GenerateRandom with a Recipient (Nitro Enclaves attestation)".into(),
        });
    }
    let n = input
        .number_of_bytes
        .ok_or(KmsError::NumberOfBytesRequired)?;
    let n = usize::try_from(n).map_err(|_| KmsError::NumberOfBytesRequired)?;
    if let Some(store_id) = input.custom_key_store_id.as_deref() {
        let random = kms.token_random(ctx, store_id, n).await?;
        return Ok(GenerateRandomResponse {
            plaintext: Some(SensitiveBlob::new(random.expose_secret().to_vec())),
            ciphertext_for_recipient: None,
        });
    }
    let random = SecretBytes::random(n).map_err(|_| KmsError::Internal)?;
    Ok(GenerateRandomResponse {
        plaintext: Some(SensitiveBlob::new(random.expose_secret().to_vec())),
        ciphertext_for_recipient: None,
    })
}

struct Opened {
    key: Arc<Key>,
    plaintext: SecretBytes,
    /// The material id of a symmetric ciphertext (asymmetric keys have none on the wire).
    material_id: Option<String>,
    algorithm: EncryptionAlgorithmSpec,
}

/// Finds the key a ciphertext names, checks it against `key_id` if given, authorizes
/// `action` and decrypts. Every failure to open is the same `InvalidCiphertextException`.
#[allow(clippy::too_many_arguments)]
async fn open(
    kms: &KmsService,
    ctx: &RequestContext,
    ciphertext: &[u8],
    key_id: Option<&str>,
    context: &BTreeMap<String, String>,
    action: &'static str,
    operation: &'static str,
    algorithm: Option<EncryptionAlgorithmSpec>,
) -> Result<Opened, KmsError> {
    let header = blob::parse_header(ciphertext);
    if header.is_err() && key_id.is_none() {
        return Err(KmsError::InvalidCiphertext);
    }
    let named = match key_id {
        Some(id) => Some(kms.resolve(ctx, id, Aliases::Allowed).await?),
        None => None,
    };
    // A ciphertext of an asymmetric key carries no header: the key named decrypts it.
    if let Some(named) = named
        .as_ref()
        .filter(|k| k.spec != KeySpec::SymmetricDefault)
    {
        let facts = Facts {
            encryption_context: Some(context),
            ..Facts::default()
        };
        kms.authorize(ctx, named, action, &facts)?;
        let cipher = cipher(named, operation, algorithm, context)?;
        let Cipher::Oaep(private, oaep, wire) = cipher else {
            return Err(KmsError::Internal);
        };
        let plaintext = private
            .decrypt(oaep, ciphertext)
            .map_err(|_| KmsError::InvalidCiphertext)?;
        return Ok(Opened {
            key: named.clone(),
            plaintext,
            material_id: None,
            algorithm: wire,
        });
    }
    let header = header.map_err(|_| KmsError::InvalidCiphertext)?;
    let key = match named {
        Some(named) if named.id != header.key_id => return Err(KmsError::IncorrectKey),
        Some(named) => named,
        None => kms
            .load_for_ciphertext(header.key_id, &ctx.scope.region)
            .await?
            .ok_or(KmsError::InvalidCiphertext)?,
    };
    if key.record.region != ctx.scope.region {
        return Err(KmsError::InvalidCiphertext);
    }
    let facts = Facts {
        encryption_context: Some(context),
        ..Facts::default()
    };
    kms.authorize(ctx, &key, action, &facts)?;
    check_symmetric(&key, operation, algorithm)?;
    if let Some(token) = kms.key_token(&key).await? {
        let plaintext = kms
            .token_decrypt(&key, token, encryption_context(context), ciphertext)
            .await?;
        let material_id = Some(header.material_id.to_hex());
        return Ok(Opened {
            key,
            plaintext,
            material_id,
            algorithm: EncryptionAlgorithmSpec::SymmetricDefault,
        });
    }
    let material = key
        .symmetric_material(&header.material_id)
        .ok_or(KmsError::InvalidCiphertext)?;
    let ec = encryption_context(context);
    let plaintext =
        blob::decrypt(material, ciphertext, &ec).map_err(|_| KmsError::InvalidCiphertext)?;
    let material_id = header.material_id.to_hex();
    Ok(Opened {
        key,
        plaintext,
        material_id: Some(material_id),
        algorithm: EncryptionAlgorithmSpec::SymmetricDefault,
    })
}

struct DataKey {
    key: Arc<Key>,
    plaintext: SecretBytes,
    ciphertext: Vec<u8>,
}

#[allow(clippy::too_many_arguments)]
async fn data_key(
    kms: &KmsService,
    ctx: &RequestContext,
    key_id: &str,
    spec: Option<DataKeySpec>,
    number_of_bytes: Option<i32>,
    context: &BTreeMap<String, String>,
    action: &'static str,
    dry: Option<bool>,
) -> Result<DataKey, KmsError> {
    let len = match (spec, number_of_bytes) {
        (Some(DataKeySpec::Aes256), None) => 32,
        (Some(DataKeySpec::Aes128), None) => 16,
        (None, Some(n)) => usize::try_from(n).map_err(|_| KmsError::DataKeySize)?,
        _ => return Err(KmsError::DataKeySize),
    };
    let key = kms.resolve(ctx, key_id, Aliases::Allowed).await?;
    let facts = Facts {
        encryption_context: Some(context),
        ..Facts::default()
    };
    kms.authorize(ctx, &key, action, &facts)?;
    let operation = if action == "kms:GenerateDataKey" {
        "GenerateDataKey"
    } else {
        "GenerateDataKeyWithoutPlaintext"
    };
    check_symmetric(&key, operation, None)?;
    kms.key_token(&key).await?;
    dry_run(dry)?;
    let plaintext = SecretBytes::random(len).map_err(|_| KmsError::Internal)?;
    let ciphertext = seal(kms, &key, context, plaintext.expose_secret()).await?;
    Ok(DataKey {
        key,
        plaintext,
        ciphertext,
    })
}

/// State, usage and algorithm checks shared by the symmetric operations.
pub(super) fn check_symmetric(
    key: &Key,
    operation: &'static str,
    algorithm: Option<EncryptionAlgorithmSpec>,
) -> Result<(), KmsError> {
    key.check_usable()?;
    key.check_encrypt_decrypt(operation)?;
    match algorithm {
        None | Some(EncryptionAlgorithmSpec::SymmetricDefault) => Ok(()),
        Some(other) => Err(KmsError::IncompatibleAlgorithm {
            algorithm: other.as_str(),
            spec: key.spec.as_str(),
        }),
    }
}

/// How a key encrypts and decrypts, its checks passed: the symmetric blob, or RSAES-OAEP
/// with the key's (cached, parsed) RSA key.
enum Cipher<'k> {
    Symmetric,
    Oaep(&'k PrivateKey, OaepAlgorithm, EncryptionAlgorithmSpec),
}

/// The state, usage and algorithm checks of Encrypt, Decrypt and ReEncrypt, for either kind
/// of key. An RSA key takes only the RSAES-OAEP algorithms (the default, `SYMMETRIC_DEFAULT`,
/// is "incompatible with key spec RSA_2048", as AWS answers) and no encryption context.
fn cipher<'k>(
    key: &'k Key,
    operation: &'static str,
    algorithm: Option<EncryptionAlgorithmSpec>,
    context: &BTreeMap<String, String>,
) -> Result<Cipher<'k>, KmsError> {
    if key.spec == KeySpec::SymmetricDefault {
        check_symmetric(key, operation, algorithm)?;
        return Ok(Cipher::Symmetric);
    }
    key.check_usable()?;
    key.check_usage(KeyUsageType::EncryptDecrypt, operation)?;
    let wire = algorithm.unwrap_or(EncryptionAlgorithmSpec::SymmetricDefault);
    let oaep = specs::oaep(wire).ok_or(KmsError::IncompatibleAlgorithm {
        algorithm: wire.as_str(),
        spec: key.spec.as_str(),
    })?;
    if !context.is_empty() {
        return Err(KmsError::EncryptionContextNotSupported);
    }
    Ok(Cipher::Oaep(key.private()?, oaep, wire))
}

impl Cipher<'_> {
    fn algorithm(&self) -> EncryptionAlgorithmSpec {
        match self {
            Self::Symmetric => EncryptionAlgorithmSpec::SymmetricDefault,
            Self::Oaep(_, _, wire) => *wire,
        }
    }

    /// AWS's RSAES-OAEP plaintext limit (`k - 2·hLen - 2` bytes).
    fn check_plaintext(&self, plaintext: &[u8]) -> Result<(), KmsError> {
        let Self::Oaep(private, oaep, wire) = self else {
            return Ok(());
        };
        let limit = private.max_plaintext_len(*oaep).ok_or(KmsError::Internal)?;
        if plaintext.len() > limit {
            return Err(KmsError::PlaintextTooLarge {
                algorithm: wire.as_str(),
                spec: private.spec().name(),
                limit,
            });
        }
        Ok(())
    }

    async fn encrypt(
        &self,
        kms: &KmsService,
        key: &Key,
        context: &BTreeMap<String, String>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        match self {
            Self::Symmetric => seal(kms, key, context, plaintext).await,
            Self::Oaep(private, oaep, _) => private
                .encrypt(*oaep, plaintext)
                .map_err(|_| KmsError::Internal),
        }
    }
}

/// Encrypts under a symmetric key's current material: in software, or inside the token of
/// a key of a custom key store.
pub(super) async fn seal(
    kms: &KmsService,
    key: &Key,
    context: &BTreeMap<String, String>,
    plaintext: &[u8],
) -> Result<Vec<u8>, KmsError> {
    if let Some(token) = kms.key_token(key).await? {
        return kms
            .token_encrypt(key, token, encryption_context(context), plaintext)
            .await;
    }
    let material = key
        .symmetric_material(&key.current_material)
        .ok_or(KmsError::Internal)?;
    blob::encrypt(
        material,
        key.id,
        key.current_material,
        &encryption_context(context),
        plaintext,
    )
    .map_err(|_| KmsError::Internal)
}

fn encryption_context(context: &BTreeMap<String, String>) -> EncryptionContext {
    EncryptionContext::new(context.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

pub(super) fn dry_run(dry: Option<bool>) -> Result<(), KmsError> {
    if dry == Some(true) {
        Err(KmsError::DryRun)
    } else {
        Ok(())
    }
}
