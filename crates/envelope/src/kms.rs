//! The AWS KMS keyring: `GenerateDataKey` under the first key, `Encrypt` under the others,
//! `Decrypt` of the first entry whose key the caller allows. Provider id `aws-kms`, provider
//! info the key ARN KMS answered with — what every ESDK writes and reads.

use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;

use crate::Error;
use crate::context::EncryptionContext;
use crate::crypto::DataKey;
use crate::header::EncryptedDataKey;
use crate::suite::KEY_LEN;

pub const KMS_PROVIDER_ID: &str = "aws-kms";

/// Which wrapping keys a decryption may use.
#[derive(Clone, Debug)]
pub(crate) struct KmsKeyring {
    pub client: aws_sdk_kms::Client,
    /// Key ids, ARNs or aliases for encryption; on decryption, an entry is tried only if
    /// its ARN is listed here or ends in `key/<listed id>` (aliases cannot be matched and
    /// are skipped), unless `discovery` is on.
    pub key_ids: Vec<String>,
    pub discovery: bool,
}

impl KmsKeyring {
    /// Makes a data key and one encrypted copy per configured key.
    pub async fn generate(
        &self,
        ec: &EncryptionContext,
    ) -> Result<(DataKey, Vec<EncryptedDataKey>), Error> {
        let (first, rest) = self
            .key_ids
            .split_first()
            .ok_or(Error::InvalidInput("no KMS key to encrypt under"))?;
        let out = self
            .client
            .generate_data_key()
            .key_id(first)
            .number_of_bytes(KEY_LEN as i32)
            .set_encryption_context(non_empty(ec))
            .send()
            .await
            .map_err(|e| kms_error("GenerateDataKey", e))?;
        let plaintext = out.plaintext.ok_or(Error::KmsResponse("GenerateDataKey"))?;
        let data_key = DataKey::from_slice(plaintext.as_ref())
            .map_err(|_| Error::KmsResponse("GenerateDataKey"))?;
        drop(zeroize_blob(plaintext));
        let arn = out.key_id.ok_or(Error::KmsResponse("GenerateDataKey"))?;
        let blob = out
            .ciphertext_blob
            .ok_or(Error::KmsResponse("GenerateDataKey"))?;
        let mut edks = vec![edk(arn, blob.into_inner())];
        for key_id in rest {
            let (arn, blob) = self.wrap(key_id, data_key.expose(), ec).await?;
            edks.push(edk(arn, blob));
        }
        Ok((data_key, edks))
    }

    /// Encrypts `plaintext` (a data key or bucket key) under `key_id`; returns (ARN, blob).
    pub async fn wrap(
        &self,
        key_id: &str,
        plaintext: &[u8],
        ec: &EncryptionContext,
    ) -> Result<(String, Vec<u8>), Error> {
        let out = self
            .client
            .encrypt()
            .key_id(key_id)
            .plaintext(Blob::new(plaintext.to_vec()))
            .set_encryption_context(non_empty(ec))
            .send()
            .await
            .map_err(|e| kms_error("Encrypt", e))?;
        let arn = out.key_id.ok_or(Error::KmsResponse("Encrypt"))?;
        let blob = out.ciphertext_blob.ok_or(Error::KmsResponse("Encrypt"))?;
        Ok((arn, blob.into_inner()))
    }

    /// Whether an entry naming `arn` may be sent to KMS.
    pub fn allows(&self, arn: &str) -> bool {
        self.discovery
            || self.key_ids.iter().any(|id| {
                id == arn
                    || (!id.starts_with("arn:")
                        && !id.starts_with("alias/")
                        && arn.ends_with(&format!(":key/{id}")))
            })
    }

    /// Unwraps one KMS ciphertext blob that names `arn`, checking KMS used that key.
    pub async fn unwrap(
        &self,
        arn: &str,
        blob: &[u8],
        ec: &EncryptionContext,
    ) -> Result<DataKey, Error> {
        let out = self
            .client
            .decrypt()
            .key_id(arn)
            .ciphertext_blob(Blob::new(blob.to_vec()))
            .set_encryption_context(non_empty(ec))
            .send()
            .await
            .map_err(|e| kms_error("Decrypt", e))?;
        if out.key_id.as_deref() != Some(arn) {
            return Err(Error::KmsResponse("Decrypt"));
        }
        let plaintext = out.plaintext.ok_or(Error::KmsResponse("Decrypt"))?;
        let key =
            DataKey::from_slice(plaintext.as_ref()).map_err(|_| Error::KmsResponse("Decrypt"));
        drop(zeroize_blob(plaintext));
        key
    }

    /// Tries each allowed `aws-kms` entry in order; the first that KMS unwraps wins.
    pub async fn decrypt(
        &self,
        edks: &[EncryptedDataKey],
        ec: &EncryptionContext,
    ) -> Result<DataKey, Error> {
        let mut last = None;
        for e in edks.iter().filter(|e| e.provider_id == KMS_PROVIDER_ID) {
            let Ok(arn) = std::str::from_utf8(&e.provider_info) else {
                continue;
            };
            if !self.allows(arn) {
                continue;
            }
            match self.unwrap(arn, &e.ciphertext, ec).await {
                Ok(key) => return Ok(key),
                Err(err) => last = Some(err),
            }
        }
        Err(Error::NoDecryptableKey {
            last_kms_error: last.map(Box::new),
        })
    }
}

fn edk(arn: String, blob: Vec<u8>) -> EncryptedDataKey {
    EncryptedDataKey {
        provider_id: KMS_PROVIDER_ID.to_owned(),
        provider_info: arn.into_bytes(),
        ciphertext: blob,
    }
}

fn non_empty(ec: &EncryptionContext) -> Option<std::collections::HashMap<String, String>> {
    (!ec.is_empty()).then(|| ec.to_map())
}

fn zeroize_blob(blob: Blob) -> zeroize::Zeroizing<Vec<u8>> {
    zeroize::Zeroizing::new(blob.into_inner())
}

fn kms_error<E: ProvideErrorMetadata + std::error::Error + 'static>(
    operation: &'static str,
    err: aws_sdk_kms::error::SdkError<E>,
) -> Error {
    let code = err.code().map(str::to_owned);
    let message = match err.message() {
        Some(m) => m.to_owned(),
        None => aws_sdk_kms::error::DisplayErrorContext(&err).to_string(),
    };
    Error::Kms {
        operation,
        code,
        message,
    }
}
