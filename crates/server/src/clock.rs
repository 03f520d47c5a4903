//! The server's notion of now. Production reads the system clock; tests may move it forward
//! (in-process only, never over the API) to see scheduled deletions happen.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use keyhold_proto::Timestamp;

#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    pub fn now(&self) -> Timestamp {
        Timestamp::now().plus_millis(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves this clock forward (tests only: scheduled deletion, expiry).
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}
