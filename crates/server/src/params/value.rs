//! SecureString values, sealed as an envelope through KMS on the caller's behalf.
//!
//! A new value asks KMS for a data key (`GenerateDataKey`, AES-256) under the parameter's
//! key (`KeyId`, or the AWS-managed `alias/aws/ssm`) with the encryption context
//! `{"PARAMETER_ARN": arn}` as AWS uses it, seals the value locally with that data key
//! (AES-256-GCM, `keyhold_crypto::envelope`), and keeps only the ciphertext:
//!
//! ```text
//! 0x01 ‖ u16 big-endian length n ‖ n bytes: the data key as KMS encrypted it (KMS blob v1)
//!      ‖ the sealed value (envelope v1: 0x01 ‖ nonce ‖ ciphertext ‖ tag)
//! AAD of the sealed value = len-prefixed("keyhold-ssm-value-v1", parameter ARN, version)
//! ```
//!
//! These bytes are what the store holds and, base64-encoded, what a read without
//! `WithDecryption` returns as the value (AWS likewise returns the ciphertext). Reading with
//! decryption asks KMS `Decrypt` as the caller, so a caller without `kms:Decrypt` on the key
//! cannot read the value. The store never sees a plaintext.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use keyhold_crypto::envelope::{self, DataKey};
use keyhold_proto::SensitiveString;

use super::SsmService;
use super::error::SsmError;
use crate::context::RequestContext;

/// The AWS-managed key new SecureStrings use when they name none.
pub const DEFAULT_KEY: &str = "alias/aws/ssm";
const SERVICE: &str = "ssm";
const FORMAT_V1: u8 = 0x01;
const AAD_LABEL: &[u8] = b"keyhold-ssm-value-v1";

impl SsmService {
    /// Encrypts `plaintext` as version `version` of the parameter `arn` under `key_id`.
    pub(super) async fn seal_value(
        &self,
        ctx: &RequestContext,
        key_id: &str,
        arn: &str,
        version: i64,
        plaintext: &str,
    ) -> Result<Vec<u8>, SsmError> {
        let data_key = self
            .kms
            .generate_data_key_for(ctx, SERVICE, key_id, &encryption_context(arn))
            .await
            .map_err(SsmError::from_kms)?;
        let local = DataKey::from_plaintext(&data_key.plaintext).ok_or(SsmError::Internal)?;
        let sealed = envelope::seal(&local, plaintext.as_bytes(), &aad(arn, version))
            .map_err(|_| SsmError::Internal)?;
        encode(&data_key.ciphertext, &sealed).ok_or(SsmError::Internal)
    }

    /// Decrypts a stored SecureString (KMS `Decrypt` on the caller's behalf).
    pub(super) async fn open_value(
        &self,
        ctx: &RequestContext,
        arn: &str,
        version: i64,
        stored: &[u8],
    ) -> Result<SensitiveString, SsmError> {
        let (wrapped_key, sealed) = decode(stored).ok_or_else(|| corrupt(arn))?;
        let decrypted = self
            .kms
            .decrypt_for(ctx, SERVICE, wrapped_key, &encryption_context(arn))
            .await
            .map_err(SsmError::from_kms)?;
        let local = DataKey::from_plaintext(&decrypted.plaintext).ok_or_else(|| corrupt(arn))?;
        let plaintext =
            envelope::open(&local, sealed, &aad(arn, version)).map_err(|_| corrupt(arn))?;
        let text = std::str::from_utf8(plaintext.expose_secret()).map_err(|_| corrupt(arn))?;
        Ok(SensitiveString::new(text.to_owned()))
    }
}

/// What a read without decryption returns for a SecureString: its ciphertext, in base64.
pub fn ciphertext_base64(stored: &[u8]) -> SensitiveString {
    SensitiveString::new(STANDARD.encode(stored))
}

fn encryption_context(arn: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("PARAMETER_ARN".to_owned(), arn.to_owned())])
}

fn aad(arn: &str, version: i64) -> zeroize::Zeroizing<Vec<u8>> {
    envelope::aad(&[AAD_LABEL, arn.as_bytes(), version.to_string().as_bytes()])
}

fn encode(wrapped_key: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(wrapped_key.len()).ok()?;
    let mut out = Vec::with_capacity(3 + wrapped_key.len() + sealed.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(wrapped_key);
    out.extend_from_slice(sealed);
    Some(out)
}

fn decode(stored: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&format, rest) = stored.split_first()?;
    if format != FORMAT_V1 {
        return None;
    }
    let len_bytes: [u8; 2] = rest.get(..2)?.try_into().ok()?;
    let len = usize::from(u16::from_be_bytes(len_bytes));
    let wrapped_key = rest.get(2..2 + len)?;
    let sealed = rest.get(2 + len..)?;
    (!sealed.is_empty()).then_some((wrapped_key, sealed))
}

fn corrupt(arn: &str) -> SsmError {
    tracing::error!(arn, "stored SecureString cannot be opened");
    SsmError::Internal
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn envelope_layout_round_trips() {
        let bytes = encode(&[7; 10], &[9; 5]).unwrap();
        assert_eq!(bytes[..3], [1, 0, 10]);
        assert_eq!(decode(&bytes), Some((&[7u8; 10][..], &[9u8; 5][..])));
        assert_eq!(decode(&bytes[..12]), None);
        assert_eq!(decode(&[]), None);
        let mut other = bytes.clone();
        other[0] = 2;
        assert_eq!(decode(&other), None);
        assert_eq!(
            ciphertext_base64(&[1, 2, 3]).expose_secret(),
            STANDARD.encode([1, 2, 3])
        );
    }

    #[test]
    fn aad_binds_arn_and_version() {
        assert_ne!(*aad("arn:x", 1), *aad("arn:x", 2));
        assert_ne!(*aad("arn:x", 1), *aad("arn:y", 1));
    }
}
