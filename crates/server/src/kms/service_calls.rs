//! What other Keyhold services ask of KMS on their caller's behalf.
//!
//! Secrets Manager and Parameter Store call KMS *as the caller*, exactly as on AWS: the
//! request runs through the same operation code with the caller's identity, the key policy
//! sees `kms:ViaService` (`secretsmanager.REGION.amazonaws.com`), and the call is audited
//! as its own KMS event. So a caller without `kms:Decrypt` on a secret's key cannot read
//! the secret, and an AWS-managed key is usable only through its service.

use std::collections::BTreeMap;

use keyhold_crypto::SecretBytes;
use keyhold_proto::ApiError;
use keyhold_proto::kms::*;
use keyhold_proto::route::Operation;
use keyhold_proto::{Blob, SensitiveBlob};

use super::KmsService;
use super::crypto_ops;
use super::error::KmsError;
use crate::audit::AuditEvent;
use crate::context::RequestContext;

/// A data key: its plaintext (use it, then drop it) and its KMS ciphertext (store that).
pub struct DataKey {
    pub plaintext: SecretBytes,
    pub ciphertext: Vec<u8>,
    /// The ARN of the KMS key that encrypted it.
    pub key_arn: String,
}

/// The plaintext of a KMS ciphertext, and the key that decrypted it.
pub struct Decrypted {
    pub plaintext: SecretBytes,
    pub key_arn: String,
}

impl KmsService {
    /// `GenerateDataKey` (AES-256) with `key_id` under `context`, for `service`
    /// (`secretsmanager`, `ssm`) on the caller's behalf.
    pub async fn generate_data_key_for(
        &self,
        ctx: &RequestContext,
        service: &str,
        key_id: &str,
        context: &BTreeMap<String, String>,
    ) -> Result<DataKey, KmsError> {
        let inner = ctx.on_behalf(Operation::Kms(KmsOperation::GenerateDataKey), service);
        let input = GenerateDataKeyRequest {
            key_id: key_id.to_owned(),
            key_spec: Some(DataKeySpec::Aes256),
            encryption_context: Some(context.clone()),
            ..GenerateDataKeyRequest::default()
        };
        inner.note_request(&input);
        let result = crypto_ops::generate_data_key(self, &inner, input).await;
        self.audit_inner(&inner, result.as_ref().err());
        let out = result?;
        Ok(DataKey {
            plaintext: secret(out.plaintext),
            ciphertext: out
                .ciphertext_blob
                .map(Blob::into_inner)
                .unwrap_or_default(),
            key_arn: out.key_id.unwrap_or_default(),
        })
    }

    /// `Decrypt` of `ciphertext` under `context`, for `service` on the caller's behalf.
    pub async fn decrypt_for(
        &self,
        ctx: &RequestContext,
        service: &str,
        ciphertext: &[u8],
        context: &BTreeMap<String, String>,
    ) -> Result<Decrypted, KmsError> {
        let inner = ctx.on_behalf(Operation::Kms(KmsOperation::Decrypt), service);
        let input = DecryptRequest {
            ciphertext_blob: Some(Blob::new(ciphertext.to_vec())),
            encryption_context: Some(context.clone()),
            ..DecryptRequest::default()
        };
        inner.note_request(&input);
        let result = crypto_ops::decrypt(self, &inner, input).await;
        self.audit_inner(&inner, result.as_ref().err());
        let out = result?;
        Ok(Decrypted {
            plaintext: secret(out.plaintext),
            key_arn: out.key_id.unwrap_or_default(),
        })
    }

    /// `DescribeKey` for `service` on the caller's behalf (to resolve a `KmsKeyId`).
    pub async fn describe_key_for(
        &self,
        ctx: &RequestContext,
        service: &str,
        key_id: &str,
    ) -> Result<KeyMetadata, KmsError> {
        let inner = ctx.on_behalf(Operation::Kms(KmsOperation::DescribeKey), service);
        let input = DescribeKeyRequest {
            key_id: key_id.to_owned(),
            grant_tokens: None,
        };
        inner.note_request(&input);
        let result = super::keys::describe_key(self, &inner, input).await;
        self.audit_inner(&inner, result.as_ref().err());
        result?.key_metadata.ok_or(KmsError::Internal)
    }

    fn audit_inner(&self, inner: &RequestContext, error: Option<&KmsError>) {
        let error = error.cloned().map(ApiError::from);
        self.audit.record(AuditEvent {
            ctx: inner,
            notes: inner.take_notes(),
            error: error.as_ref(),
        });
    }
}

fn secret(blob: Option<SensitiveBlob>) -> SecretBytes {
    SecretBytes::from(blob.map(|b| b.expose_secret().to_vec()).unwrap_or_default())
}
