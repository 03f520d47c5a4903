//! The signing key, `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
//! "aws4_request")`, and a small cache of them.
//!
//! Deriving the key costs four HMACs and changes once a day per access key, region and
//! service, so [`SigningKeyCache`] keeps recent ones: a cached request costs one SHA-256 (the
//! cache key) and one HMAC (the signature) instead of five HMACs.
//!
//! The cache key is a SHA-256 over the access key id, the scope *and the secret*, so a
//! lookup with a wrong or rotated secret misses and derives afresh: the cache can never make
//! a wrong secret verify. Keys enter the cache only after a signature verified with them, so
//! unauthenticated traffic cannot fill it. Cached keys zeroize when evicted or dropped.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Mutex;

use aws_lc_rs::digest;
use aws_lc_rs::hmac;
use zeroize::{Zeroize, Zeroizing};

/// How many signing keys [`SigningKeyCache::default`] keeps.
pub const DEFAULT_CACHE_CAPACITY: usize = 1024;

/// A derived SigV4 signing key. Zeroizes on drop; never printed.
#[derive(Clone)]
pub(super) struct SigningKey([u8; 32]);

impl Drop for SigningKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl SigningKey {
    pub(super) fn derive(secret: &[u8], date: &str, region: &str, service: &str) -> Self {
        let mut k_secret = Zeroizing::new(Vec::with_capacity(secret.len() + 4));
        k_secret.extend_from_slice(b"AWS4");
        k_secret.extend_from_slice(secret);
        let k_date = Self::hmac(&k_secret, date.as_bytes());
        let k_region = Self::hmac(&k_date.0, region.as_bytes());
        let k_service = Self::hmac(&k_region.0, service.as_bytes());
        Self::hmac(&k_service.0, b"aws4_request")
    }

    #[cfg(test)]
    pub(super) fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// `HMAC-SHA256(self, string_to_sign)` compared with `signature` in constant time.
    pub(super) fn verifies(&self, string_to_sign: &[u8], signature: &[u8; 32]) -> bool {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        hmac::verify(&key, string_to_sign, signature).is_ok()
    }

    fn hmac(key: &[u8], data: &[u8]) -> Self {
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data);
        let mut out = [0u8; 32];
        // An HMAC-SHA256 tag is 32 bytes.
        for (o, t) in out.iter_mut().zip(tag.as_ref()) {
            *o = *t;
        }
        Self(out)
    }
}

/// Identifies a signing key: SHA-256 over the access key id, the scope and the secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct CacheKey([u8; 32]);

impl CacheKey {
    pub(super) fn new(
        access_key_id: &str,
        date: &str,
        region: &str,
        service: &str,
        secret: &[u8],
    ) -> Self {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"keyhold sigv4 signing key cache v1");
        for part in [
            access_key_id.as_bytes(),
            date.as_bytes(),
            region.as_bytes(),
            service.as_bytes(),
            secret,
        ] {
            // Length-prefixed, so no two different tuples hash the same bytes.
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        let digest = ctx.finish();
        let mut out = [0u8; 32];
        for (o, d) in out.iter_mut().zip(digest.as_ref()) {
            *o = *d;
        }
        Self(out)
    }
}

/// A bounded, thread-safe cache of derived signing keys, shared by all requests.
///
/// Create one per server (or per service) and pass it to every
/// [`super::ParsedAuth::verify`]. When full, the oldest entry is evicted.
pub struct SigningKeyCache {
    capacity: usize,
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    keys: HashMap<CacheKey, SigningKey>,
    order: VecDeque<CacheKey>,
}

impl SigningKeyCache {
    /// A cache holding at most `capacity` keys; `0` disables caching.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Entries::default()),
        }
    }

    /// How many keys the cache holds.
    pub fn len(&self) -> usize {
        self.lock().keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every key (for instance after an access key is deleted or rotated; not
    /// needed for correctness, since the cache key includes the secret).
    pub fn clear(&self) {
        let mut entries = self.lock();
        entries.keys.clear();
        entries.order.clear();
    }

    pub(super) fn get(&self, key: &CacheKey) -> Option<SigningKey> {
        self.lock().keys.get(key).cloned()
    }

    pub(super) fn insert(&self, key: CacheKey, signing_key: SigningKey) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.lock();
        if entries.keys.contains_key(&key) {
            return;
        }
        while entries.keys.len() >= self.capacity {
            let Some(oldest) = entries.order.pop_front() else {
                break;
            };
            entries.keys.remove(&oldest);
        }
        entries.keys.insert(key, signing_key);
        entries.order.push_back(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // The entries stay consistent even if a holder panicked: every update is a single
        // insert or remove.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for SigningKeyCache {
    fn default() -> Self {
        Self::new(DEFAULT_CACHE_CAPACITY)
    }
}

impl fmt::Debug for SigningKeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of the SigV4 documentation ("Derive a signing key"):
    /// secret wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, 20120215, us-east-1, iam.
    #[test]
    fn derives_the_documented_signing_key() {
        let key = SigningKey::derive(
            b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(key.0),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn cache_key_depends_on_the_secret() {
        let a = CacheKey::new("AKID", "20150830", "us-east-1", "kms", b"secret-a");
        let b = CacheKey::new("AKID", "20150830", "us-east-1", "kms", b"secret-b");
        assert!(a != b);
        // Moving a byte between fields changes the key.
        let c = CacheKey::new("AKI", "D20150830", "us-east-1", "kms", b"secret-a");
        assert!(a != c);
    }

    #[test]
    fn cache_is_bounded_and_evicts_the_oldest() {
        let cache = SigningKeyCache::new(2);
        let keys: Vec<CacheKey> = (0..3)
            .map(|i| CacheKey::new(&format!("AKID{i}"), "20150830", "r", "s", b"x"))
            .collect();
        for key in &keys {
            cache.insert(*key, SigningKey::derive(b"x", "20150830", "r", "s"));
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&keys[0]).is_none());
        assert!(cache.get(&keys[1]).is_some());
        assert!(cache.get(&keys[2]).is_some());
        cache.clear();
        assert!(cache.is_empty());
    }

    #[test]
    fn zero_capacity_disables_the_cache() {
        let cache = SigningKeyCache::new(0);
        let key = CacheKey::new("AKID", "20150830", "r", "s", b"x");
        cache.insert(key, SigningKey::derive(b"x", "20150830", "r", "s"));
        assert!(cache.is_empty());
    }
}
