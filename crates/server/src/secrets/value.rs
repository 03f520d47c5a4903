//! A secret value, and how a version of it is sealed and opened — as AWS does it: a data key
//! from KMS `GenerateDataKey` (on the caller's behalf, under the secret's key, encryption
//! context `SecretARN` + `SecretVersionId`), the value AES-256-GCM-sealed locally with it, and
//! only the data key's KMS ciphertext and the sealed value stored. Reading asks KMS `Decrypt`
//! (again as the caller), so a caller without `kms:Decrypt` on the key cannot read.

use std::collections::BTreeMap;

use keyhold_crypto::SecretBytes;
use keyhold_crypto::envelope::{self, DataKey};
use keyhold_proto::{SensitiveBlob, SensitiveString};
use keyhold_store::SecretVersionRecord;

use super::SecretsService;
use super::error::SecretsError;
use crate::context::RequestContext;

/// The AWS-managed key new values use when the secret names none.
pub const DEFAULT_KEY: &str = "alias/aws/secretsmanager";
/// What `ListSecretVersionIds` reports as the key of a version under the default key.
pub const DEFAULT_KEY_LABEL: &str = "DefaultEncryptionKey";
const SERVICE: &str = "secretsmanager";
const AAD_LABEL: &[u8] = b"keyhold-secretsmanager-value-v1";
const KIND_STRING: u8 = b'S';
const KIND_BINARY: u8 = b'B';

/// A decrypted secret value: zeroized on drop, never printed.
pub enum SecretValue {
    String(SensitiveString),
    Binary(SecretBytes),
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue([redacted])")
    }
}

impl SecretValue {
    /// The value of a request: one of the two members, never both.
    pub fn from_request(
        string: Option<SensitiveString>,
        binary: Option<SensitiveBlob>,
    ) -> Result<Option<Self>, SecretsError> {
        match (string, binary) {
            (Some(_), Some(_)) => Err(SecretsError::BothValues),
            (Some(s), None) => Ok(Some(SecretValue::String(s))),
            (None, Some(b)) => Ok(Some(SecretValue::Binary(SecretBytes::from(
                b.expose_secret().to_vec(),
            )))),
            (None, None) => Ok(None),
        }
    }

    /// The wire members (`SecretString`, `SecretBinary`) of this value.
    pub fn into_members(self) -> (Option<SensitiveString>, Option<SensitiveBlob>) {
        match self {
            SecretValue::String(s) => (Some(s), None),
            SecretValue::Binary(b) => (None, Some(SensitiveBlob::new(b.expose_secret().to_vec()))),
        }
    }

    /// Same kind and same bytes (compared without an early exit).
    pub fn same_as(&self, other: &SecretValue) -> bool {
        let (a, b) = (self.encoded(), other.encoded());
        let (a, b) = (a.expose_secret(), b.expose_secret());
        a.len() == b.len()
            && a.iter()
                .zip(b.iter())
                .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                == 0
    }

    fn encoded(&self) -> SecretBytes {
        let (kind, bytes) = match self {
            SecretValue::String(s) => (KIND_STRING, s.expose_secret().as_bytes()),
            SecretValue::Binary(b) => (KIND_BINARY, b.expose_secret()),
        };
        let mut out = Vec::with_capacity(bytes.len() + 1);
        out.push(kind);
        out.extend_from_slice(bytes);
        SecretBytes::from(out)
    }

    fn decoded(plaintext: &SecretBytes) -> Option<Self> {
        let (kind, rest) = plaintext.expose_secret().split_first()?;
        match *kind {
            KIND_STRING => {
                let text = std::str::from_utf8(rest).ok()?;
                Some(SecretValue::String(SensitiveString::new(text.to_owned())))
            }
            KIND_BINARY => Some(SecretValue::Binary(SecretBytes::from(rest.to_vec()))),
            _ => None,
        }
    }
}

/// Where a new version's value is encrypted: the secret (its ARN) and the key it names, in
/// the context of a caller in the secret's Region.
pub struct Target<'a> {
    pub arn: &'a str,
    pub kms_key_id: Option<&'a str>,
}

impl SecretsService {
    /// Encrypts `value` as version `version_id` of the secret `target.arn`.
    pub(super) async fn seal_version(
        &self,
        ctx: &RequestContext,
        target: &Target<'_>,
        version_id: &str,
        created_ms: i64,
        value: &SecretValue,
    ) -> Result<SecretVersionRecord, SecretsError> {
        refuse_default_key_across_accounts(ctx, target.arn, target.kms_key_id)?;
        let key = target.kms_key_id.unwrap_or(DEFAULT_KEY);
        let context = encryption_context(target.arn, version_id);
        let data_key = self
            .kms
            .generate_data_key_for(ctx, SERVICE, key, &context)
            .await
            .map_err(SecretsError::from_kms_encrypt)?;
        let local = DataKey::from_plaintext(&data_key.plaintext).ok_or(SecretsError::Internal)?;
        let aad = envelope::aad(&[AAD_LABEL, target.arn.as_bytes(), version_id.as_bytes()]);
        let sealed = envelope::seal(&local, value.encoded().expose_secret(), &aad)
            .map_err(|_| SecretsError::Internal)?;
        Ok(SecretVersionRecord {
            secret_arn: target.arn.to_owned(),
            version_id: version_id.to_owned(),
            created_ms,
            last_accessed_ms: None,
            kms_key_id: target.kms_key_id.map(str::to_owned),
            kms_key_arn: data_key.key_arn,
            data_key: data_key.ciphertext,
            sealed_value: sealed,
        })
    }

    /// Decrypts a stored version (KMS `Decrypt` on the caller's behalf).
    pub(super) async fn open_version(
        &self,
        ctx: &RequestContext,
        version: &SecretVersionRecord,
    ) -> Result<SecretValue, SecretsError> {
        if super::secret::Secret::is_empty_version(version) {
            return Err(SecretsError::NoValueForVersion {
                version_id: version.version_id.clone(),
            });
        }
        refuse_default_key_across_accounts(
            ctx,
            &version.secret_arn,
            version.kms_key_id.as_deref(),
        )?;
        let context = encryption_context(&version.secret_arn, &version.version_id);
        let decrypted = self
            .kms
            .decrypt_for(ctx, SERVICE, &version.data_key, &context)
            .await
            .map_err(SecretsError::from_kms_decrypt)?;
        let local =
            DataKey::from_plaintext(&decrypted.plaintext).ok_or(SecretsError::Decryption)?;
        let aad = envelope::aad(&[
            AAD_LABEL,
            version.secret_arn.as_bytes(),
            version.version_id.as_bytes(),
        ]);
        let plaintext = envelope::open(&local, &version.sealed_value, &aad)
            .map_err(|_| SecretsError::Decryption)?;
        SecretValue::decoded(&plaintext).ok_or(SecretsError::Decryption)
    }
}

/// AWS's rule for the AWS-managed key: its key policy serves only its own account, so a
/// caller of another account (whom the resource policy let this far) can neither read nor
/// write a value under it, and Secrets Manager says so before asking KMS.
fn refuse_default_key_across_accounts(
    ctx: &RequestContext,
    secret_arn: &str,
    kms_key_id: Option<&str>,
) -> Result<(), SecretsError> {
    // Every GetSecretValue passes here: the cheap key test first, no allocation.
    if is_default_key(kms_key_id)
        && secret_arn.split(':').nth(4) != Some(ctx.caller.account.as_str())
    {
        return Err(SecretsError::DefaultKeyCrossAccount);
    }
    Ok(())
}

/// Whether a secret's or version's `KmsKeyId` names the AWS-managed `aws/secretsmanager`
/// (absent, or its alias by name or ARN).
fn is_default_key(kms_key_id: Option<&str>) -> bool {
    kms_key_id.is_none_or(|k| {
        k == DEFAULT_KEY
            || k.strip_prefix("arn:")
                .and_then(|rest| rest.strip_suffix(DEFAULT_KEY))
                .is_some_and(|rest| rest.ends_with(':'))
    })
}

/// The encryption context of a version's data key, as AWS uses it.
fn encryption_context(arn: &str, version_id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("SecretARN".to_owned(), arn.to_owned()),
        ("SecretVersionId".to_owned(), version_id.to_owned()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_compare_by_kind_and_bytes() {
        let s = |t: &str| SecretValue::String(SensitiveString::new(t.into()));
        let b = |t: &[u8]| SecretValue::Binary(SecretBytes::from(t.to_vec()));
        assert!(s("abc").same_as(&s("abc")));
        assert!(!s("abc").same_as(&s("abd")));
        assert!(!s("abc").same_as(&b(b"abc")));
        assert!(!s("abc").same_as(&s("abcd")));
        assert_eq!(format!("{:?}", s("hunter2")), "SecretValue([redacted])");
    }

    #[test]
    fn default_key_names() {
        assert!(is_default_key(None));
        assert!(is_default_key(Some("alias/aws/secretsmanager")));
        assert!(is_default_key(Some(
            "arn:aws:kms:us-east-1:111122223333:alias/aws/secretsmanager"
        )));
        assert!(!is_default_key(Some("alias/mine")));
        assert!(!is_default_key(Some(
            "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        )));
    }

    #[test]
    fn encoding_round_trips() {
        let v = SecretValue::String(SensitiveString::new("héllo".into()));
        let back = SecretValue::decoded(&v.encoded()).unwrap();
        assert!(back.same_as(&v));
        let v = SecretValue::Binary(SecretBytes::from(vec![0, 1, 2]));
        assert!(SecretValue::decoded(&v.encoded()).unwrap().same_as(&v));
        assert!(SecretValue::decoded(&SecretBytes::from(vec![b'X', 1])).is_none());
    }
}
