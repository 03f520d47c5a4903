//! Bucket keys (S3's pattern): one KMS data key per bucket per lifetime, and per-object data
//! keys derived from it locally, so a million objects cost one KMS call per lifetime.
//!
//! Object data key = HKDF-SHA256(salt = 32 zero bytes, ikm = bucket key,
//! info = `"keyhold bucket key v1"` ‖ u16 len ‖ bucket ‖ u16 len ‖ object id), 32 bytes.
//! The bucket name and object id are in the message's encryption context
//! (`keyhold:bucket`, `keyhold:object`), so the header tag binds them; the wrapped bucket key
//! travels as an encrypted data key entry with provider id `keyhold-bucket-key`, provider
//! info the KMS key ARN, ciphertext `0x01` ‖ the KMS ciphertext blob (wrapped under the
//! encryption context `{"keyhold:bucket": <bucket>}`). docs/envelope.md has the bytes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::Error;
use crate::cache::evict_oldest;
use crate::context::EncryptionContext;
use crate::crypto::{DataKey, hkdf};
use crate::header::EncryptedDataKey;
use crate::kms::KmsKeyring;
use crate::suite::{KEY_LEN, KdfHash};

pub const BUCKET_PROVIDER_ID: &str = "keyhold-bucket-key";
pub const BUCKET_CONTEXT_KEY: &str = "keyhold:bucket";
pub const OBJECT_CONTEXT_KEY: &str = "keyhold:object";
const ENTRY_VERSION: u8 = 1;
const INFO_LABEL: &[u8] = b"keyhold bucket key v1";
const UNWRAPPED_CAPACITY: usize = 1024;

struct Active {
    key: DataKey,
    edks: Vec<EncryptedDataKey>,
    created: Instant,
}

struct Unwrapped {
    key: DataKey,
    created: Instant,
}

pub(crate) struct BucketKeys {
    pub lifetime: Duration,
    active: Mutex<HashMap<String, Active>>,
    unwrapped: Mutex<HashMap<Vec<u8>, Unwrapped>>,
}

impl BucketKeys {
    pub fn new(lifetime: Duration) -> Self {
        Self {
            lifetime,
            active: Mutex::default(),
            unwrapped: Mutex::default(),
        }
    }

    /// The object's data key and the bucket-key entries for its header; makes (one KMS
    /// call per wrapping key) a new bucket key when there is none younger than the lifetime.
    pub async fn for_encrypt(
        &self,
        kms: &KmsKeyring,
        bucket: &str,
        object: &str,
    ) -> Result<(DataKey, Vec<EncryptedDataKey>), Error> {
        let mut active = self.active.lock().await;
        let stale = active
            .get(bucket)
            .is_none_or(|a| a.created.elapsed() >= self.lifetime);
        if stale {
            let (key, kms_edks) = kms.generate(&bucket_context(bucket)).await?;
            let edks = kms_edks
                .into_iter()
                .map(|e| {
                    let mut ciphertext = Vec::with_capacity(1 + e.ciphertext.len());
                    ciphertext.push(ENTRY_VERSION);
                    ciphertext.extend_from_slice(&e.ciphertext);
                    EncryptedDataKey {
                        provider_id: BUCKET_PROVIDER_ID.to_owned(),
                        provider_info: e.provider_info,
                        ciphertext,
                    }
                })
                .collect();
            active.insert(
                bucket.to_owned(),
                Active {
                    key,
                    edks,
                    created: Instant::now(),
                },
            );
        }
        let a = active.get(bucket).ok_or(Error::Crypto)?;
        Ok((derive_object_key(&a.key, bucket, object)?, a.edks.clone()))
    }

    /// Unwraps (or finds cached) the bucket key of a message and derives its object key.
    pub async fn for_decrypt(
        &self,
        kms: &KmsKeyring,
        edks: &[EncryptedDataKey],
        ec: &EncryptionContext,
    ) -> Result<DataKey, Error> {
        let bucket = ec.get(BUCKET_CONTEXT_KEY).ok_or(Error::InvalidCiphertext)?;
        let object = ec.get(OBJECT_CONTEXT_KEY).ok_or(Error::InvalidCiphertext)?;
        let mut last = None;
        for e in edks.iter().filter(|e| e.provider_id == BUCKET_PROVIDER_ID) {
            let Ok(arn) = std::str::from_utf8(&e.provider_info) else {
                continue;
            };
            let Some((&ENTRY_VERSION, blob)) = e.ciphertext.split_first() else {
                continue;
            };
            if !kms.allows(arn) {
                continue;
            }
            let mut cache_id = Vec::with_capacity(arn.len() + blob.len() + 2);
            cache_id.extend_from_slice(&(arn.len() as u16).to_be_bytes());
            cache_id.extend_from_slice(arn.as_bytes());
            cache_id.extend_from_slice(blob);
            {
                let map = self.unwrapped.lock().await;
                if let Some(u) = map
                    .get(&cache_id)
                    .filter(|u| u.created.elapsed() < self.lifetime)
                {
                    return derive_object_key(&u.key, bucket, object);
                }
            }
            match kms.unwrap(arn, blob, &bucket_context(bucket)).await {
                Ok(key) => {
                    let derived = derive_object_key(&key, bucket, object)?;
                    let mut map = self.unwrapped.lock().await;
                    evict_oldest(&mut map, UNWRAPPED_CAPACITY, |u| u.created);
                    map.insert(
                        cache_id,
                        Unwrapped {
                            key,
                            created: Instant::now(),
                        },
                    );
                    return Ok(derived);
                }
                Err(err) => last = Some(err),
            }
        }
        Err(Error::NoDecryptableKey {
            last_kms_error: last.map(Box::new),
        })
    }
}

fn bucket_context(bucket: &str) -> EncryptionContext {
    let mut ec = EncryptionContext::new();
    ec.insert_reserved(BUCKET_CONTEXT_KEY, bucket.to_owned());
    ec
}

/// The per-object key; see the module documentation for the derivation.
pub(crate) fn derive_object_key(
    bucket_key: &DataKey,
    bucket: &str,
    object: &str,
) -> Result<DataKey, Error> {
    let b = u16::try_from(bucket.len())
        .map_err(|_| Error::InvalidInput("bucket name longer than 65535 bytes"))?;
    let o = u16::try_from(object.len())
        .map_err(|_| Error::InvalidInput("object id longer than 65535 bytes"))?;
    let mut out = zeroize::Zeroizing::new([0u8; KEY_LEN]);
    hkdf(
        KdfHash::Sha256,
        &[0u8; 32],
        bucket_key.expose(),
        &[
            INFO_LABEL,
            &b.to_be_bytes(),
            bucket.as_bytes(),
            &o.to_be_bytes(),
            object.as_bytes(),
        ],
        out.as_mut_slice(),
    )?;
    DataKey::from_slice(out.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_differ_per_object_and_bucket() {
        let bk = DataKey::random().unwrap();
        let a = derive_object_key(&bk, "b", "o1").unwrap();
        let b = derive_object_key(&bk, "b", "o2").unwrap();
        let c = derive_object_key(&bk, "c", "o1").unwrap();
        let a2 = derive_object_key(&bk, "b", "o1").unwrap();
        assert_ne!(a.expose(), b.expose());
        assert_ne!(a.expose(), c.expose());
        assert_eq!(a.expose(), a2.expose());
        // Length prefixes keep ("ab","c") and ("a","bc") apart.
        let x = derive_object_key(&bk, "ab", "c").unwrap();
        let y = derive_object_key(&bk, "a", "bc").unwrap();
        assert_ne!(x.expose(), y.expose());
    }
}
