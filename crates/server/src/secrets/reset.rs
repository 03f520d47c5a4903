//! Forgetting every secret when the state is reset (`POST /_keyhold/reset`, dev mode).

use super::SecretsService;

impl SecretsService {
    /// Counts cache lookups in `metrics` from now on.
    pub fn attach_metrics(&self, metrics: std::sync::Arc<crate::ops::metrics::Metrics>) {
        let _ = self.metrics.set(metrics);
    }

    pub(super) fn note_rotation(&self, outcome: &'static str) {
        if let Some(m) = self.metrics.get() {
            m.secret_rotation(outcome);
        }
    }

    pub(super) fn note_cache(&self, hit: bool) {
        if let Some(m) = self.metrics.get() {
            m.cache_lookup("secrets", hit);
        }
    }

    /// Waits for the writers of this service and keeps them out while the guard lives.
    pub(crate) async fn lock_writes(&self) -> crate::write_locks::WriteGuard<'_> {
        self.writes.lock().await
    }

    /// Forgets every cached secret (the store has been erased). The caller holds
    /// [`Self::lock_writes`]. Counts as a write: a reader that loaded a secret before the
    /// erasure does not cache it.
    pub(crate) fn forget_all(&self) {
        let _writing = self.writes.writing();
        self.secrets.clear();
        self.names.clear();
        if let Ok(mut policies) = self.policies.write() {
            policies.clear();
        }
    }
}
