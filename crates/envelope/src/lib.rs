//! Envelope encryption for your own data, in the AWS Encryption SDK message format, with
//! data keys from AWS KMS or Keyhold.
//!
//! - [`Envelope`] encrypts and decrypts byte slices and async streams. Build it with
//!   [`Envelope::builder`] from an `aws_sdk_kms::Client` and the wrapping key ids.
//! - Messages are ESDK version 2 with a committing suite ([`AlgorithmSuite`]), framed,
//!   the [`EncryptionContext`] in the header, one encrypted data key per KMS key
//!   (provider `aws-kms`, info = key ARN). Version 1 framed messages decrypt too.
//! - Optional data-key caching ([`CacheLimits`]) follows the ESDK caching CMM; bucket-key
//!   mode ([`ObjectId`]) derives per-object keys from one KMS data key per bucket.
//! - Errors ([`Error`]) never carry key material or plaintext; every malformed, truncated,
//!   reordered or tampered message is the same [`Error::InvalidCiphertext`].
//! - Streams seal and open their frames on two cores: the caller's task and a helper on
//!   Tokio's blocking pool (`pipeline`), in constant memory.
//!
//! The format, the bucket-key entry and the threat model: `docs/envelope.md`.

mod bucket;
mod cache;
mod context;
mod crypto;
mod header;
mod kms;
mod pipeline;
mod stream;
mod suite;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

pub use bucket::{BUCKET_CONTEXT_KEY, BUCKET_PROVIDER_ID, OBJECT_CONTEXT_KEY};
pub use cache::CacheLimits;
pub use context::{EncryptionContext, PUBLIC_KEY_KEY, RESERVED_PREFIX};
pub use header::{EncryptedDataKey, Header};
pub use kms::KMS_PROVIDER_ID;
pub use suite::AlgorithmSuite;

use crate::bucket::BucketKeys;
use crate::cache::{CachedEncryption, DataKeyCache};
use crate::crypto::Signer;
use crate::header::ReadLimits;
use crate::kms::KmsKeyring;
use crate::stream::EncryptionMaterials;

/// Smallest, default and largest frame this crate writes.
pub const MIN_FRAME_LEN: u32 = 4 * 1024;
pub const DEFAULT_FRAME_LEN: u32 = 64 * 1024;
pub const MAX_FRAME_LEN: u32 = 1024 * 1024;
/// Largest frame accepted on decryption by default (memory per stream is about this).
pub const DEFAULT_MAX_DECRYPT_FRAME_LEN: u32 = 16 * 1024 * 1024;
/// Default bucket-key lifetime.
pub const DEFAULT_BUCKET_KEY_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// Everything that can go wrong. Messages name the failure, never a key or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed, truncated, reordered, tampered with, or not committed to this data key.
    #[error("the message is malformed or has been tampered with")]
    InvalidCiphertext,
    /// The message's encryption context lacks a pair the caller required.
    #[error("the message's encryption context does not match the expected context")]
    ContextMismatch,
    /// More encrypted data keys than `max_encrypted_data_keys` allows.
    #[error("the message has {found} encrypted data keys, more than the maximum of {max}")]
    TooManyEncryptedDataKeys { found: u16, max: u16 },
    /// No entry was for an allowed key, or KMS refused every one.
    #[error("no encrypted data key in the message could be decrypted with the allowed KMS keys{}", match .last_kms_error { Some(e) => format!(" (last error: {e})"), None => String::new() })]
    NoDecryptableKey { last_kms_error: Option<Box<Error>> },
    /// KMS answered with an error.
    #[error("KMS {operation} failed: {}{message}", match .code { Some(c) => format!("{c}: "), None => String::new() })]
    Kms {
        operation: &'static str,
        code: Option<String>,
        message: String,
    },
    /// KMS answered without a field it must return, or with the wrong key.
    #[error("KMS {0} returned an unexpected response")]
    KmsResponse(&'static str),
    /// A well-formed message using something this crate does not implement.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// A caller's argument is out of range.
    #[error("invalid input: {0}")]
    InvalidInput(&'static str),
    /// Reading the input or writing the output failed.
    #[error("I/O error: {0}")]
    Io(#[source] std::io::Error),
    /// The cryptographic library failed (should not happen).
    #[error("internal cryptographic failure")]
    Crypto,
}

/// The identity of an object in bucket-key mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectId {
    pub bucket: String,
    pub object: String,
}

/// Options of one encryption.
#[derive(Clone, Debug, Default)]
pub struct EncryptOptions {
    /// Pairs bound to the message; the same are needed (or shown) at decryption.
    pub context: EncryptionContext,
    /// The plaintext length if known: required for the data-key cache to be used, and
    /// enforced (more bytes fail the message).
    pub plaintext_len: Option<u64>,
    /// Bucket-key mode: derive this object's data key from its bucket's key.
    pub object: Option<ObjectId>,
}

/// The result of a decryption: the header (suite, context, entries).
#[derive(Clone, Debug)]
pub struct Decrypted {
    pub header: Header,
    pub plaintext_len: u64,
}

/// Builds an [`Envelope`].
pub struct EnvelopeBuilder {
    kms: KmsKeyring,
    suite: AlgorithmSuite,
    frame_len: u32,
    max_encrypted_data_keys: Option<u16>,
    max_decrypt_frame_len: u32,
    cache: Option<CacheLimits>,
    bucket_key_lifetime: Duration,
}

impl EnvelopeBuilder {
    /// Adds a wrapping key (id, ARN or alias). Encryption needs one; the first makes the
    /// data key. Decryption tries only entries whose ARN matches one (ids match the ARN's
    /// `key/<id>` suffix), unless [`Self::discovery`].
    pub fn key_id(mut self, key_id: impl Into<String>) -> Self {
        self.kms.key_ids.push(key_id.into());
        self
    }

    /// Decrypt with any `aws-kms` entry KMS will unwrap for the caller (the ESDK's discovery).
    pub fn discovery(mut self, on: bool) -> Self {
        self.kms.discovery = on;
        self
    }

    pub fn algorithm_suite(mut self, suite: AlgorithmSuite) -> Self {
        self.suite = suite;
        self
    }

    /// Frame length for new messages, 4 KiB to 1 MiB (default 64 KiB).
    pub fn frame_len(mut self, len: u32) -> Self {
        self.frame_len = len;
        self
    }

    /// Refuse messages with more encrypted data keys (the ESDK's `max_encrypted_data_keys`).
    pub fn max_encrypted_data_keys(mut self, max: u16) -> Self {
        self.max_encrypted_data_keys = Some(max);
        self
    }

    /// Refuse messages whose frames are larger (bounds memory per decryption).
    pub fn max_decrypt_frame_len(mut self, max: u32) -> Self {
        self.max_decrypt_frame_len = max;
        self
    }

    /// Cache data keys within these limits.
    pub fn cache(mut self, limits: CacheLimits) -> Self {
        self.cache = Some(limits);
        self
    }

    /// How long one bucket key serves new objects (default 7 days).
    pub fn bucket_key_lifetime(mut self, lifetime: Duration) -> Self {
        self.bucket_key_lifetime = lifetime;
        self
    }

    pub fn build(self) -> Result<Envelope, Error> {
        if !(MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&self.frame_len) {
            return Err(Error::InvalidInput(
                "frame length must be between 4 KiB and 1 MiB",
            ));
        }
        if !self.suite.is_committing() {
            return Err(Error::InvalidInput(
                "new messages use a committing algorithm suite",
            ));
        }
        if self.max_encrypted_data_keys == Some(0) {
            return Err(Error::InvalidInput(
                "max_encrypted_data_keys must be at least 1",
            ));
        }
        Ok(Envelope {
            inner: Arc::new(Inner {
                kms: self.kms,
                suite: self.suite,
                frame_len: self.frame_len,
                limits: ReadLimits {
                    max_edks: self.max_encrypted_data_keys,
                    max_frame_len: self.max_decrypt_frame_len,
                },
                cache: self.cache.map(DataKeyCache::new),
                buckets: BucketKeys::new(self.bucket_key_lifetime),
            }),
        })
    }
}

struct Inner {
    kms: KmsKeyring,
    suite: AlgorithmSuite,
    frame_len: u32,
    limits: ReadLimits,
    cache: Option<DataKeyCache>,
    buckets: BucketKeys,
}

/// Encrypts and decrypts ESDK messages. Cheap to clone; clones share the caches.
#[derive(Clone)]
pub struct Envelope {
    inner: Arc<Inner>,
}

impl Envelope {
    pub fn builder(kms: aws_sdk_kms::Client) -> EnvelopeBuilder {
        EnvelopeBuilder {
            kms: KmsKeyring {
                client: kms,
                key_ids: Vec::new(),
                discovery: false,
            },
            suite: AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
            frame_len: DEFAULT_FRAME_LEN,
            max_encrypted_data_keys: None,
            max_decrypt_frame_len: DEFAULT_MAX_DECRYPT_FRAME_LEN,
            cache: None,
            bucket_key_lifetime: DEFAULT_BUCKET_KEY_LIFETIME,
        }
    }

    /// Encrypts a byte slice into one message.
    pub async fn encrypt(
        &self,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.encrypt_into(plaintext, context, &mut out).await?;
        Ok(out)
    }

    /// Encrypts a byte slice into one message in `out`, replacing its contents. The
    /// allocation is reused when large enough, so encrypting many objects through one
    /// buffer allocates (and page-faults) once. Each frame is sealed straight from
    /// `plaintext` into its place in `out`: one pass over the data. After an error `out`
    /// holds no usable message.
    pub async fn encrypt_into(
        &self,
        plaintext: &[u8],
        context: &EncryptionContext,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let options = EncryptOptions {
            context: context.clone(),
            plaintext_len: Some(plaintext.len() as u64),
            object: None,
        };
        let materials = self.encryption_materials(&options).await?;
        stream::encrypt_slice(materials, self.inner.frame_len, plaintext, out)
    }

    /// Decrypts a whole message held in memory; see [`Self::decrypt_stream`].
    pub async fn decrypt(
        &self,
        message: &[u8],
        expected: &EncryptionContext,
    ) -> Result<(Vec<u8>, Decrypted), Error> {
        let mut out = Vec::with_capacity(message.len());
        let mut input = message;
        let d = self.decrypt_stream(&mut input, &mut out, expected).await?;
        Ok((out, d))
    }

    /// Encrypts everything `input` yields into one message written to `output`; returns the
    /// number of plaintext bytes. Memory use is constant whatever the size (about 1 MiB of
    /// frames in flight); inside a Tokio runtime, frames are sealed on the calling task and
    /// on one blocking-pool thread while the task reads and writes.
    pub async fn encrypt_stream<R, W>(
        &self,
        input: &mut R,
        output: &mut W,
        options: &EncryptOptions,
    ) -> Result<u64, Error>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let materials = self.encryption_materials(options).await?;
        stream::encrypt(
            materials,
            self.inner.frame_len,
            input,
            output,
            options.plaintext_len,
        )
        .await
    }

    /// Decrypts one message from `input` to `output`. Plaintext is written frame by frame
    /// once each frame's tag verified (signed suites hold back the final frame until the
    /// signature verified); only `Ok` means the whole message was authentic, so on `Err`
    /// discard what was written. Every pair of `expected` must be in the message's context.
    pub async fn decrypt_stream<R, W>(
        &self,
        input: &mut R,
        output: &mut W,
        expected: &EncryptionContext,
    ) -> Result<Decrypted, Error>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let raw = header::read_header(input, self.inner.limits).await?;
        if !raw.header.context.contains_all(expected) {
            return Err(Error::ContextMismatch);
        }
        let h = &raw.header;
        let data_key = if h.edks.iter().any(|e| e.provider_id == BUCKET_PROVIDER_ID) {
            self.inner
                .buckets
                .for_decrypt(&self.inner.kms, &h.edks, &h.context)
                .await?
        } else {
            let id = match &self.inner.cache {
                Some(_) => Some(DataKeyCache::decrypt_id(
                    h.suite,
                    &h.edks,
                    &h.context.serialize()?,
                )),
                None => None,
            };
            let cached = match (&self.inner.cache, &id) {
                (Some(c), Some(id)) => c.get_decryption(id),
                _ => None,
            };
            match cached {
                Some(k) => k,
                None => {
                    let k = self.inner.kms.decrypt(&h.edks, &h.context).await?;
                    if let (Some(c), Some(id)) = (&self.inner.cache, id) {
                        c.put_decryption(id, &k);
                    }
                    k
                }
            }
        };
        let plaintext_len = stream::decrypt(&raw, data_key, input, output).await?;
        Ok(Decrypted {
            header: raw.header,
            plaintext_len,
        })
    }

    async fn encryption_materials(
        &self,
        options: &EncryptOptions,
    ) -> Result<EncryptionMaterials, Error> {
        let suite = self.inner.suite;
        let mut context = options.context.clone();
        if let Some(obj) = &options.object {
            for k in [BUCKET_CONTEXT_KEY, OBJECT_CONTEXT_KEY] {
                if context.get(k).is_some() {
                    return Err(Error::InvalidInput(
                        "the encryption context may not set keyhold:bucket or keyhold:object itself",
                    ));
                }
            }
            context.insert_reserved(BUCKET_CONTEXT_KEY, obj.bucket.clone());
            context.insert_reserved(OBJECT_CONTEXT_KEY, obj.object.clone());
            let (data_key, edks) = self
                .inner
                .buckets
                .for_encrypt(&self.inner.kms, &obj.bucket, &obj.object)
                .await?;
            let signer = self.signer_into(&mut context)?;
            return Ok(EncryptionMaterials {
                suite,
                data_key,
                edks,
                context,
                signer,
            });
        }
        let cache = self
            .inner
            .cache
            .as_ref()
            .filter(|c| c.admits(options.plaintext_len));
        let Some(cache) = cache else {
            let signer = self.signer_into(&mut context)?;
            let (data_key, edks) = self.inner.kms.generate(&context).await?;
            return Ok(EncryptionMaterials {
                suite,
                data_key,
                edks,
                context,
                signer,
            });
        };
        let len = options.plaintext_len.unwrap_or(0);
        let id = DataKeyCache::encrypt_id(suite, &context.serialize()?);
        if let Some(c) = cache.use_encryption(&id, len) {
            let signer = c
                .signing_key
                .as_deref()
                .map(|k| Signer::from_pkcs8(k))
                .transpose()?;
            return Ok(EncryptionMaterials {
                suite,
                data_key: c.data_key,
                edks: c.edks,
                context: c.context,
                signer,
            });
        }
        let mut signing_key = None;
        if suite.is_signed() {
            let (pkcs8, public) = Signer::generate_pkcs8()?;
            context.insert_reserved(PUBLIC_KEY_KEY, public);
            signing_key = Some(pkcs8);
        }
        let (data_key, edks) = self.inner.kms.generate(&context).await?;
        let signer = signing_key
            .as_deref()
            .map(|k| Signer::from_pkcs8(k))
            .transpose()?;
        cache.put_encryption(
            id,
            CachedEncryption {
                data_key: data_key.duplicate(),
                edks: edks.clone(),
                context: context.clone(),
                signing_key,
            },
            len,
        );
        Ok(EncryptionMaterials {
            suite,
            data_key,
            edks,
            context,
            signer,
        })
    }

    /// Encrypts under a caller-supplied data key with no KMS entry: the message cannot be
    /// decrypted by anyone. Only for measuring the format's own cost (benches/).
    #[doc(hidden)]
    pub async fn encrypt_with_raw_data_key_for_benchmarks_only<R, W>(
        data_key: &[u8; 32],
        suite: AlgorithmSuite,
        frame_len: u32,
        input: &mut R,
        output: &mut W,
    ) -> Result<u64, Error>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        stream::encrypt(
            benchmark_materials(data_key, suite)?,
            frame_len,
            input,
            output,
            None,
        )
        .await
    }

    /// As [`Self::encrypt_with_raw_data_key_for_benchmarks_only`] for a plaintext in memory,
    /// the path [`Self::encrypt_into`] takes. Only for measuring the format's own cost.
    #[doc(hidden)]
    pub fn encrypt_slice_with_raw_data_key_for_benchmarks_only(
        data_key: &[u8; 32],
        suite: AlgorithmSuite,
        frame_len: u32,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        stream::encrypt_slice(
            benchmark_materials(data_key, suite)?,
            frame_len,
            plaintext,
            out,
        )
    }

    /// Decrypts a message made by [`Self::encrypt_with_raw_data_key_for_benchmarks_only`]
    /// with the same caller-supplied data key (no KMS call). Only for measuring the
    /// format's own cost (benches/).
    #[doc(hidden)]
    pub async fn decrypt_with_raw_data_key_for_benchmarks_only<R, W>(
        data_key: &[u8; 32],
        input: &mut R,
        output: &mut W,
    ) -> Result<u64, Error>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let raw = header::read_header(
            input,
            ReadLimits {
                max_edks: None,
                max_frame_len: DEFAULT_MAX_DECRYPT_FRAME_LEN,
            },
        )
        .await?;
        stream::decrypt(&raw, crypto::DataKey::from_slice(data_key)?, input, output).await
    }

    fn signer_into(&self, context: &mut EncryptionContext) -> Result<Option<Signer>, Error> {
        if !self.inner.suite.is_signed() {
            return Ok(None);
        }
        let (signer, public) = Signer::generate()?;
        context.insert_reserved(PUBLIC_KEY_KEY, public);
        Ok(Some(signer))
    }
}

/// Materials with a caller-supplied data key and a placeholder entry nobody can unwrap.
fn benchmark_materials(
    data_key: &[u8; 32],
    suite: AlgorithmSuite,
) -> Result<EncryptionMaterials, Error> {
    let mut context = EncryptionContext::new();
    let signer = if suite.is_signed() {
        let (signer, public) = Signer::generate()?;
        context.insert_reserved(PUBLIC_KEY_KEY, public);
        Some(signer)
    } else {
        None
    };
    let edks = vec![EncryptedDataKey {
        provider_id: "benchmark".into(),
        provider_info: Vec::new(),
        ciphertext: vec![0],
    }];
    Ok(EncryptionMaterials {
        suite,
        data_key: crypto::DataKey::from_slice(data_key)?,
        edks,
        context,
        signer,
    })
}
