//! Forgetting every parameter when the state is reset (`POST /_keyhold/reset`, dev mode).

use super::SsmService;

impl SsmService {
    /// Waits for the writers of this service and keeps them out while the guard lives.
    pub(crate) async fn lock_writes(&self) -> crate::write_locks::WriteGuard<'_> {
        self.writes.lock().await
    }

    /// Forgets every loaded scope (the store has been erased): the next request of a scope
    /// loads it again, empty. The caller holds [`Self::lock_writes`].
    pub(crate) fn forget_all(&self) {
        // A write: a scope read from the store before the erasure is not cached after it.
        let _writing = self.writes.writing();
        super::write(&self.scopes).clear();
    }
}
