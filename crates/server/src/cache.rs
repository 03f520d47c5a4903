//! A bounded, thread-safe cache for the hot path: the KMS keys (with their unsealed
//! backing keys), key aliases, unknown key ids, secrets and authenticated principals.
//!
//! Eviction is CLOCK (second chance), the usual approximation of LRU: every entry has a
//! "referenced" bit that a lookup sets; when the cache is full, a hand sweeps the entries,
//! clearing set bits and evicting the first entry whose bit was already clear, i.e. one not
//! used since the hand last passed it. Lookups take only a shared lock (setting the bit is an
//! atomic store), so concurrent readers of hot entries never serialize; inserts and
//! removals take the exclusive lock.
//!
//! What the cache holds is a copy of what the store holds: an evicted entry is simply loaded
//! again on its next use. Values are usually `Arc`s, so an entry evicted while a request
//! still uses it lives (and its zeroizing material with it) until that request ends.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A cache of at most `capacity` entries (CLOCK eviction).
pub struct BoundedCache<K, V> {
    capacity: usize,
    inner: RwLock<Inner<K, V>>,
}

/// The entries are in one hash table, each with its referenced bit, so a lookup touches one
/// table entry (and its value); the clock is a ring of keys that only eviction walks.
struct Inner<K, V> {
    entries: HashMap<K, Entry<V>>,
    /// The CLOCK's ring: the key in each slot (`None`: emptied by `remove`).
    ring: Vec<Option<K>>,
    /// Slots emptied by `remove`, reused before anything is evicted.
    free: Vec<usize>,
    hand: usize,
}

struct Entry<V> {
    value: V,
    referenced: AtomicBool,
    /// This entry's slot in the ring.
    slot: usize,
}

impl<V: Clone> Entry<V> {
    /// A lookup's answer: marks the entry used and returns its value. The bit's store is
    /// skipped when it is set already, so readers of a hot entry on several cores do not
    /// keep taking its cache line from each other.
    fn hit(&self) -> V {
        if !self.referenced.load(Ordering::Relaxed) {
            self.referenced.store(true, Ordering::Relaxed);
        }
        self.value.clone()
    }
}

impl<K: Hash + Eq + Clone, V: Clone> BoundedCache<K, V> {
    /// A cache holding at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: RwLock::new(Inner {
                entries: HashMap::new(),
                ring: Vec::new(),
                free: Vec::new(),
                hand: 0,
            }),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.read().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of `key`, marking it used.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let inner = self.read();
        inner.entries.get(key).map(Entry::hit)
    }

    /// Inserts or replaces `key`'s value.
    pub fn insert(&self, key: K, value: V) {
        let mut inner = self.write();
        inner.put(self.capacity, key, value);
    }

    /// The cached value of `key` if there is one; otherwise caches `value` if `allowed()`
    /// (decided under the exclusive lock, so no writer interleaves) and returns it.
    pub fn get_or_insert_if(&self, key: K, value: V, allowed: impl FnOnce() -> bool) -> V {
        let mut inner = self.write();
        if let Some(entry) = inner.entries.get(&key) {
            return entry.hit();
        }
        if allowed() {
            inner.put(self.capacity, key, value.clone());
        }
        value
    }

    /// Replaces `key`'s value with `value` only if `is_current` accepts the value cached
    /// now (nothing is inserted when the key is not cached). Returns whether it replaced.
    pub fn replace_if(&self, key: &K, value: V, is_current: impl FnOnce(&V) -> bool) -> bool {
        let mut inner = self.write();
        match inner.entries.get_mut(key) {
            Some(entry) if is_current(&entry.value) => {
                entry.value = value;
                true
            }
            _ => false,
        }
    }

    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut inner = self.write();
        let inner = &mut *inner;
        let entry = inner.entries.remove(key)?;
        vacate(&mut inner.ring, &mut inner.free, entry.slot);
        Some(entry.value)
    }

    /// Keeps only the entries for which `keep` is true.
    pub fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        let mut inner = self.write();
        let Inner {
            entries,
            ring,
            free,
            ..
        } = &mut *inner;
        entries.retain(|k, entry| {
            let kept = keep(k, &entry.value);
            if !kept {
                vacate(ring, free, entry.slot);
            }
            kept
        });
    }

    pub fn clear(&self) {
        let mut inner = self.write();
        inner.entries.clear();
        inner.ring.clear();
        inner.free.clear();
        inner.hand = 0;
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner<K, V>> {
        // Every update leaves the table and the ring consistent before it can panic.
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner<K, V>> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Empties the ring's `slot` (its entry left the table) and lists it free for reuse.
fn vacate<K>(ring: &mut [Option<K>], free: &mut Vec<usize>, slot: usize) {
    if let Some(held) = ring.get_mut(slot) {
        *held = None;
    }
    free.push(slot);
}

impl<K: Hash + Eq + Clone, V> Inner<K, V> {
    fn put(&mut self, capacity: usize, key: K, value: V) {
        if let Some(entry) = self.entries.get_mut(&key) {
            entry.value = value;
            entry.referenced.store(true, Ordering::Relaxed);
            return;
        }
        let slot = match self.free.pop() {
            Some(i) => i,
            None if self.ring.len() < capacity => {
                self.ring.push(None);
                self.ring.len() - 1
            }
            None => self.evict(),
        };
        if let Some(ring_slot) = self.ring.get_mut(slot) {
            *ring_slot = Some(key.clone());
        }
        // A new entry starts unreferenced: it must be used again to earn a second chance.
        self.entries.insert(
            key,
            Entry {
                value,
                referenced: AtomicBool::new(false),
                slot,
            },
        );
    }

    /// Empties the slot the CLOCK hand stops at and returns it. Called only when every slot
    /// is occupied (the free list is empty and the cache is at capacity).
    fn evict(&mut self) -> usize {
        let n = self.ring.len();
        // Two sweeps at most: the first clears every bit it passes.
        for _ in 0..=2 * n {
            let i = self.hand % n;
            self.hand = (i + 1) % n;
            // An empty slot (there is none while the free list is empty) is taken as it is.
            let Some(Some(key)) = self.ring.get(i) else {
                return i;
            };
            if self
                .entries
                .get(key)
                .is_some_and(|e| e.referenced.swap(false, Ordering::Relaxed))
            {
                continue;
            }
            if let Some(Some(old)) = self.ring.get_mut(i).map(Option::take) {
                self.entries.remove(&old);
            }
            return i;
        }
        // Unreachable with n > 0; stay correct anyway by evicting the slot under the hand.
        let i = self.hand % n;
        if let Some(Some(old)) = self.ring.get_mut(i).map(Option::take) {
            self.entries.remove(&old);
        }
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_at_most_its_capacity() {
        let cache = BoundedCache::new(3);
        for i in 0..100 {
            cache.insert(i, i * 10);
            assert!(cache.len() <= 3);
            assert_eq!(cache.get(&i), Some(i * 10));
        }
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn a_used_entry_gets_a_second_chance() {
        let cache = BoundedCache::new(2);
        cache.insert("hot", 1);
        cache.insert("cold", 2);
        assert_eq!(cache.get("hot"), Some(1));
        cache.insert("new", 3);
        assert_eq!(cache.get("hot"), Some(1), "the used entry stays");
        assert_eq!(cache.get("cold"), None, "the unused one is evicted");
        assert_eq!(cache.get("new"), Some(3));
    }

    #[test]
    fn remove_frees_a_slot_and_retain_filters() {
        let cache = BoundedCache::new(2);
        cache.insert(1, "a");
        cache.insert(2, "b");
        assert_eq!(cache.remove(&1), Some("a"));
        cache.insert(3, "c");
        assert_eq!(cache.get(&2), Some("b"), "a freed slot is reused first");
        cache.retain(|k, _| *k != 2);
        assert_eq!(cache.get(&2), None);
        assert_eq!(cache.len(), 1);
        cache.clear();
        assert!(cache.is_empty());
    }

    /// Every entry's ring slot holds its key, no slot is both free and held, and the
    /// table holds at most `capacity` entries.
    fn assert_consistent<K: Hash + Eq + Clone + std::fmt::Debug, V: Clone>(
        cache: &BoundedCache<K, V>,
    ) {
        let inner = cache.read();
        assert!(inner.entries.len() <= cache.capacity());
        for (key, entry) in &inner.entries {
            assert_eq!(inner.ring.get(entry.slot), Some(&Some(key.clone())));
            assert!(
                !inner.free.contains(&entry.slot),
                "{key:?}'s slot is also free"
            );
        }
        let held = inner.ring.iter().filter(|k| k.is_some()).count();
        assert_eq!(held, inner.entries.len());
    }

    #[test]
    fn removals_and_evictions_keep_the_table_and_the_ring_in_step() {
        let cache = BoundedCache::new(8);
        for round in 0u32..200 {
            cache.insert(round, round);
            assert_eq!(cache.get(&round), Some(round), "the newest entry is cached");
            if round % 3 == 0 {
                cache.remove(&(round / 2));
            }
            if round % 5 == 0 {
                let _ = cache.get(&round.saturating_sub(1));
            }
            if round % 17 == 0 {
                cache.retain(|k, _| k % 2 == 0);
            }
            assert_consistent(&cache);
        }
    }

    #[test]
    fn conditional_inserts() {
        let cache = BoundedCache::new(4);
        assert_eq!(cache.get_or_insert_if(1, "a", || false), "a");
        assert_eq!(cache.get(&1), None, "not allowed: not cached");
        assert_eq!(cache.get_or_insert_if(1, "b", || true), "b");
        assert_eq!(
            cache.get_or_insert_if(1, "c", || true),
            "b",
            "the cached one wins"
        );
        assert!(!cache.replace_if(&1, "d", |v| *v == "x"));
        assert!(cache.replace_if(&1, "d", |v| *v == "b"));
        assert_eq!(cache.get(&1), Some("d"));
        assert!(
            !cache.replace_if(&2, "e", |_| true),
            "absent keys are not inserted"
        );
    }
}
