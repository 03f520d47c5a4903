//! The write locks of a service, and the generation its readers check before they cache.
//!
//! A write either locks the resources it changes ([`WriteLocks::lock_resource`]: one of a
//! fixed set of stripes, chosen by hashing the resource's name) or the whole service
//! ([`WriteLocks::lock`]: every stripe, in order). Writes to different resources therefore
//! run side by side, and their store transactions reach the store's group commit together
//! instead of queueing behind one process-wide mutex across each `fsync`.
//!
//! Readers that fill a cache from the store read [`WriteLocks::generation`] first and cache
//! what they read only if [`WriteLocks::quiet_since`] that generation: no write was under
//! way when they started and none started since. The generation is derived from two
//! counters, writes started and writes finished, so it stays correct with any number of
//! concurrent writers.
//!
//! What counts as "a write under way" is either every hold of a lock ([`WriteLocks::new`]:
//! KMS, whose writers change the store at several points while they hold it) or only the
//! windows a writer opens around its store write and cache update
//! ([`WriteLocks::counting_windows`] and [`WriteLocks::writing`]: Secrets Manager and
//! Parameter Store, which write in one place). In the second mode a writer's own reads under
//! its lock, before it writes, are cached — a Parameter Store writer loads its whole
//! (account, Region) scope, and must not load it again for every write.

use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Mutex, MutexGuard};

/// How many stripes: enough that 32–64 concurrent writers to different resources rarely
/// share one, few enough that a whole-service lock stays cheap.
const STRIPES: usize = 64;

pub(crate) struct WriteLocks {
    stripes: Box<[Mutex<()>]>,
    hasher: std::hash::RandomState,
    started: AtomicU64,
    finished: AtomicU64,
    /// Whether holding a lock counts as a write (else only [`WriteLocks::writing`] does).
    holds_count: bool,
}

/// A write under way ([`WriteLocks::writing`]); dropping it ends the write.
pub(crate) struct Writing<'a>(&'a WriteLocks);

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Ordering::SeqCst);
    }
}

/// Held stripes of [`WriteLocks`]; dropping it ends the write.
pub(crate) struct WriteGuard<'a> {
    locks: &'a WriteLocks,
    _held: Vec<MutexGuard<'a, ()>>,
}

impl Default for WriteLocks {
    fn default() -> Self {
        Self::new()
    }
}

impl WriteLocks {
    /// Locks whose every hold counts as a write.
    pub(crate) fn new() -> Self {
        Self::with(true)
    }

    /// Locks whose holds do not count as writes: writers mark their store writes with
    /// [`WriteLocks::writing`].
    pub(crate) fn counting_windows() -> Self {
        Self::with(false)
    }

    fn with(holds_count: bool) -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            hasher: std::hash::RandomState::new(),
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            holds_count,
        }
    }

    /// Marks a write under way until the returned guard drops: open it before the store
    /// write and drop it after the cache is updated. Callers hold the lock of what they
    /// write.
    pub(crate) fn writing(&self) -> Writing<'_> {
        self.started.fetch_add(1, Ordering::SeqCst);
        Writing(self)
    }

    /// Locks the whole service: no other write runs until the guard drops.
    pub(crate) async fn lock(&self) -> WriteGuard<'_> {
        let mut held = Vec::with_capacity(STRIPES);
        for stripe in self.stripes.iter() {
            held.push(stripe.lock().await);
        }
        self.begin(held)
    }

    /// Locks the writes of one resource (and of the others that share its stripe, and of
    /// whole-service writes). The caller must change nothing but `resource` under it.
    pub(crate) async fn lock_resource(&self, resource: &str) -> WriteGuard<'_> {
        let stripe = &self.stripes[self.stripe_of(resource)];
        let held = vec![stripe.lock().await];
        self.begin(held)
    }

    /// [`WriteLocks::lock`] if that needs no waiting, `None` otherwise.
    pub(crate) fn try_lock(&self) -> Option<WriteGuard<'_>> {
        let held = self
            .stripes
            .iter()
            .map(|stripe| stripe.try_lock().ok())
            .collect::<Option<Vec<_>>>()?;
        Some(self.begin(held))
    }

    fn stripe_of(&self, resource: &str) -> usize {
        let mut hasher = self.hasher.build_hasher();
        resource.hash(&mut hasher);
        // Only the remainder matters; the truncation on 32-bit targets is fine.
        #[allow(clippy::cast_possible_truncation)]
        let index = std::hash::Hasher::finish(&hasher) as usize % STRIPES;
        index
    }

    fn begin<'a>(&'a self, held: Vec<MutexGuard<'a, ()>>) -> WriteGuard<'a> {
        if self.holds_count {
            self.started.fetch_add(1, Ordering::SeqCst);
        }
        WriteGuard {
            locks: self,
            _held: held,
        }
    }

    /// The generation now: read it before reading the store, then pass it to
    /// [`WriteLocks::quiet_since`]. Odd while a write is under way.
    pub(crate) fn generation(&self) -> u64 {
        // Finished first: a write that ends between the two loads still counts as running.
        let finished = self.finished.load(Ordering::SeqCst);
        let started = self.started.load(Ordering::SeqCst);
        started * 2 + u64::from(started != finished)
    }

    /// Whether no write was under way at `generation` and none has started since.
    pub(crate) fn quiet_since(&self, generation: u64) -> bool {
        generation.is_multiple_of(2) && self.generation() == generation
    }

    /// Records a write made without any lock: the creation of a resource under a fresh
    /// random id, which no other writer can know yet, or a change another node made (heard
    /// on the change feed). Call it after the store write; readers that read the store
    /// around it do not cache what they read.
    pub(crate) fn note_write(&self) {
        self.started.fetch_add(1, Ordering::SeqCst);
        self.finished.fetch_add(1, Ordering::SeqCst);
    }
}

/// How often a write is decided again after another node changed what it read.
const CONFLICT_ATTEMPTS: u64 = 10;

/// A service's error that can say the store refused a write because another node changed
/// what it was decided on (and the service has read that again).
pub(crate) trait WriteConflict {
    fn is_write_conflict(&self) -> bool;
}

/// Runs `write` until it ends other than in a write conflict, at most
/// [`CONFLICT_ATTEMPTS`] times. Between attempts it waits a few milliseconds, more each
/// time and at random, so that nodes writing one resource in turn do not keep colliding
/// (the node that wrote last knows the current state at once).
pub(crate) async fn retry_conflicts<T, E, F, Fut>(mut write: F) -> Result<T, E>
where
    E: WriteConflict,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match write().await {
            Err(e) if e.is_write_conflict() && attempt < CONFLICT_ATTEMPTS => {
                let jitter = std::hash::RandomState::new().hash_one(attempt) % (4 * attempt);
                tokio::time::sleep(std::time::Duration::from_millis(attempt + jitter)).await;
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        // Before the stripes are released (fields drop after this).
        if self.locks.holds_count {
            self.locks.finished.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_of_different_resources_overlap_and_readers_see_them() {
        let locks = WriteLocks::new();
        let quiet = locks.generation();
        assert!(locks.quiet_since(quiet));
        // Two resources on different stripes lock side by side.
        let (a, b) = (0..1000)
            .map(|i| format!("resource-{i}"))
            .find_map(|b| (locks.stripe_of("resource-a") != locks.stripe_of(&b)).then_some(b))
            .map(|b| ("resource-a".to_owned(), b))
            .unwrap();
        let first = locks.lock_resource(&a).await;
        let during = locks.generation();
        assert!(!during.is_multiple_of(2), "odd while a write runs");
        let second =
            tokio::time::timeout(std::time::Duration::from_secs(5), locks.lock_resource(&b))
                .await
                .expect("a different stripe does not wait");
        drop(first);
        assert!(!locks.quiet_since(quiet));
        assert!(!locks.quiet_since(during));
        drop(second);
        let after = locks.generation();
        assert!(after.is_multiple_of(2));
        assert!(locks.quiet_since(after));
        locks.note_write();
        assert!(!locks.quiet_since(after));
    }

    #[tokio::test]
    async fn with_counted_windows_only_the_window_is_a_write() {
        let locks = WriteLocks::counting_windows();
        let guard = locks.lock().await;
        let under_lock = locks.generation();
        assert!(
            locks.quiet_since(under_lock),
            "holding the lock is not a write"
        );
        let writing = locks.writing();
        assert!(!locks.quiet_since(under_lock));
        assert!(!locks.generation().is_multiple_of(2));
        drop(writing);
        drop(guard);
        assert!(locks.quiet_since(locks.generation()));
    }

    #[tokio::test]
    async fn the_whole_service_lock_waits_for_resource_writes() {
        let locks = std::sync::Arc::new(WriteLocks::new());
        let one = locks.lock_resource("x").await;
        let waiting = {
            let locks = locks.clone();
            tokio::spawn(async move {
                let _all = locks.lock().await;
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        drop(one);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("the whole-service lock follows")
            .unwrap();
    }
}
