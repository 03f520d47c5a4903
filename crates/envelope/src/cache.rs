//! Data-key caching with the ESDK caching CMM's semantics (`framework/caching-cmm.md`):
//! an entry serves new messages while it is younger than `max_age`, has encrypted at most
//! `max_messages` messages and `max_bytes` bytes; entries are partitioned by algorithm
//! suite and encryption context (the cache id is a SHA-512 over both, as in the ESDK), so
//! messages with different contexts never share a data key. A request whose plaintext
//! length is unknown, or larger than `max_bytes`, bypasses the cache.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use zeroize::Zeroizing;

use crate::context::EncryptionContext;
use crate::crypto::DataKey;
use crate::header::EncryptedDataKey;
use crate::suite::AlgorithmSuite;

/// Limits of one cached data key.
#[derive(Clone, Copy, Debug)]
pub struct CacheLimits {
    /// How long an entry may be used after its data key was made (encrypt and decrypt).
    pub max_age: Duration,
    /// How many messages one data key may encrypt (the ESDK's default: 2^32).
    pub max_messages: u64,
    /// How many plaintext bytes one data key may encrypt (the ESDK's default: 2^63-1).
    pub max_bytes: u64,
    /// Entries kept per direction; the oldest goes first.
    pub capacity: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(300),
            max_messages: 1 << 32,
            max_bytes: i64::MAX as u64,
            capacity: 1000,
        }
    }
}

pub(crate) struct CachedEncryption {
    pub data_key: DataKey,
    pub edks: Vec<EncryptedDataKey>,
    pub context: EncryptionContext,
    /// PKCS#8 of the signing key of signed suites: the public half is in the context the
    /// data key was wrapped under, so the pair travels together.
    pub signing_key: Option<Zeroizing<Vec<u8>>>,
}

struct EncEntry {
    materials: CachedEncryption,
    created: Instant,
    messages: u64,
    bytes: u64,
}

struct DecEntry {
    data_key: DataKey,
    created: Instant,
}

/// A cache shared by the encryptions and decryptions of one [`crate::Envelope`].
pub(crate) struct DataKeyCache {
    pub limits: CacheLimits,
    encrypt: Mutex<HashMap<Vec<u8>, EncEntry>>,
    decrypt: Mutex<HashMap<Vec<u8>, DecEntry>>,
}

impl DataKeyCache {
    pub fn new(limits: CacheLimits) -> Self {
        Self {
            limits,
            encrypt: Mutex::default(),
            decrypt: Mutex::default(),
        }
    }

    pub fn encrypt_id(suite: AlgorithmSuite, context_bytes: &[u8]) -> Vec<u8> {
        let mut d = digest::Context::new(&digest::SHA512);
        d.update(b"encrypt");
        d.update(&suite.id().to_be_bytes());
        d.update(digest::digest(&digest::SHA512, context_bytes).as_ref());
        d.finish().as_ref().to_vec()
    }

    pub fn decrypt_id(
        suite: AlgorithmSuite,
        edks: &[EncryptedDataKey],
        context_bytes: &[u8],
    ) -> Vec<u8> {
        let mut entry_digests: Vec<Vec<u8>> = edks
            .iter()
            .map(|e| {
                let mut d = digest::Context::new(&digest::SHA512);
                for part in [e.provider_id.as_bytes(), &e.provider_info, &e.ciphertext] {
                    d.update(&(part.len() as u64).to_be_bytes());
                    d.update(part);
                }
                d.finish().as_ref().to_vec()
            })
            .collect();
        entry_digests.sort();
        let mut d = digest::Context::new(&digest::SHA512);
        d.update(b"decrypt");
        d.update(&suite.id().to_be_bytes());
        for e in &entry_digests {
            d.update(e);
        }
        d.update(digest::digest(&digest::SHA512, context_bytes).as_ref());
        d.finish().as_ref().to_vec()
    }

    /// Whether a message of `len` bytes may use the cache at all.
    pub fn admits(&self, len: Option<u64>) -> bool {
        matches!(len, Some(n) if n <= self.limits.max_bytes)
    }

    /// Takes one use of the entry for `id`, if it is within every limit after this use;
    /// an entry that would exceed one is evicted and `None` returned.
    pub fn use_encryption(&self, id: &[u8], len: u64) -> Option<CachedEncryption> {
        let mut map = self.encrypt.lock().ok()?;
        let entry = map.get_mut(id)?;
        let fresh = entry.created.elapsed() < self.limits.max_age;
        entry.messages += 1;
        entry.bytes = entry.bytes.saturating_add(len);
        if !fresh
            || entry.messages > self.limits.max_messages
            || entry.bytes > self.limits.max_bytes
        {
            map.remove(id);
            return None;
        }
        let m = &entry.materials;
        Some(CachedEncryption {
            data_key: m.data_key.duplicate(),
            edks: m.edks.clone(),
            context: m.context.clone(),
            signing_key: m.signing_key.clone(),
        })
    }

    /// Stores new materials that were just used for one message of `len` bytes.
    pub fn put_encryption(&self, id: Vec<u8>, materials: CachedEncryption, len: u64) {
        if 1 > self.limits.max_messages || len > self.limits.max_bytes {
            return;
        }
        let Ok(mut map) = self.encrypt.lock() else {
            return;
        };
        evict_oldest(&mut map, self.limits.capacity, |e| e.created);
        map.insert(
            id,
            EncEntry {
                materials,
                created: Instant::now(),
                messages: 1,
                bytes: len,
            },
        );
    }

    pub fn get_decryption(&self, id: &[u8]) -> Option<DataKey> {
        let mut map = self.decrypt.lock().ok()?;
        let entry = map.get(id)?;
        if entry.created.elapsed() >= self.limits.max_age {
            map.remove(id);
            return None;
        }
        Some(entry.data_key.duplicate())
    }

    pub fn put_decryption(&self, id: Vec<u8>, data_key: &DataKey) {
        let Ok(mut map) = self.decrypt.lock() else {
            return;
        };
        evict_oldest(&mut map, self.limits.capacity, |e| e.created);
        map.insert(
            id,
            DecEntry {
                data_key: data_key.duplicate(),
                created: Instant::now(),
            },
        );
    }
}

pub(crate) fn evict_oldest<V>(
    map: &mut HashMap<Vec<u8>, V>,
    capacity: usize,
    created: impl Fn(&V) -> Instant,
) {
    while map.len() >= capacity.max(1) {
        let Some(oldest) = map
            .iter()
            .min_by_key(|(_, v)| created(v))
            .map(|(k, _)| k.clone())
        else {
            return;
        };
        map.remove(&oldest);
    }
}
