//! Room made ahead of the writer in the newest segment.
//!
//! An append that grows a file makes its `fdatasync` commit the filesystem's journal too
//! (the new size, the newly allocated blocks); a write into blocks that were already
//! written and made durable does not. On this project's development machine (ext4 on a
//! virtio disk) a sync after such an overwrite took 121–131 µs and 35–37 µs of CPU, after
//! an append 296–304 µs and 82–87 µs. So a helper thread keeps zeros written and synced
//! ahead of the writer in the segment it appends to, a chunk at a time: as far ahead as
//! the segment has been written so far (between [`MIN_AHEAD`] and [`MAX_AHEAD`], so that a
//! quiet trail reserves little and a busy one never waits), never beyond the segment's
//! size limit.
//!
//! Readers need nothing new: a frame header of zeros already reads as the end of the data
//! written so far. A segment is cut back to its data when it is sealed (see
//! [`super::SegmentLog::rotate`]), so only the newest segment ever has a zeroed tail.
//!
//! The writer and the helper never write the same bytes: the helper writes zeros only at
//! the file's end, a chunk it claims under the lock, and the writer waits for a claimed
//! chunk to be written before it writes into it.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Zeros are written this much at a time.
const CHUNK: usize = 1 << 20;
/// The least room kept ahead of the writer...
const MIN_AHEAD: u64 = 1 << 20;
/// ... and the most.
const MAX_AHEAD: u64 = 16 << 20;

/// Block-aligned, so that they can be written directly (see [`super::direct`]).
#[repr(C, align(4096))]
struct Zeros([u8; CHUNK]);

static ZEROS: Zeros = Zeros([0; CHUNK]);

/// The helper that keeps room ahead of the writer (write mode, once asked for).
pub(super) struct Space {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    /// The segment being appended to (`None` while it is being replaced).
    file: Option<Arc<File>>,
    /// The file's length: every byte before it is written (data or zeros).
    len: u64,
    /// The helper is writing zeros from `len` on (`len` moves when it is done).
    filling: bool,
    /// Where the writer's data ends.
    data_end: u64,
    /// Zeros go up to here at most.
    limit: u64,
    /// Whether `file` was opened for direct writes (see [`super::direct`]): zeros then go
    /// in whole blocks, and are durable when written.
    direct: bool,
    closed: bool,
}

impl State {
    /// How far zeros should reach: as far ahead of the data as the segment holds data
    /// (within bounds), and not beyond the limit.
    fn target(&self) -> u64 {
        // Room ahead grows with the data the segment holds after its header.
        let held = self.data_end.saturating_sub(super::HEADER_LEN);
        let ahead = held.clamp(MIN_AHEAD, MAX_AHEAD);
        (self.data_end + ahead).min(self.limit)
    }

    /// Zeros are written from a multiple of this on, in multiples of it.
    fn align(&self) -> u64 {
        if self.direct { super::direct::BLOCK } else { 1 }
    }

    /// Where the next chunk of zeros starts.
    fn next_at(&self) -> u64 {
        self.len.next_multiple_of(self.align())
    }

    /// Whether the room ahead fell below half of what it should be.
    fn short(&self) -> bool {
        let target = self.target();
        let len = self.next_at();
        self.file.is_some()
            && len < target
            && target - len > (target - self.data_end.min(target)) / 2
    }
}

impl Space {
    /// Starts keeping room ahead in `file` (of length `len`, data up to `data_end`),
    /// never beyond `limit`; `direct` if `file` was opened for direct writes.
    pub(super) fn start(
        file: Arc<File>,
        direct: bool,
        len: u64,
        data_end: u64,
        limit: u64,
    ) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                file: Some(file),
                len,
                filling: false,
                data_end,
                limit,
                direct,
                closed: false,
            }),
            changed: Condvar::new(),
        });
        let helper = shared.clone();
        let thread = std::thread::Builder::new()
            .name("keyhold-audit-space".into())
            .spawn(move || helper.run())
            .map_err(|e| tracing::warn!(error = %e, "cannot start the audit log's space helper; appending without room ahead"))
            .ok();
        Self { shared, thread }
    }

    /// Makes the writer's append, `write`, which writes up to `end` (never before the data
    /// ends): once the helper is not writing there.
    pub(super) fn write(
        &self,
        end: u64,
        write: impl FnOnce() -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let wake = {
            let mut s = self.shared.idle_filler(|s| end > s.len);
            // Past the room made: the writer grows the file itself, and the helper goes on
            // from the new end.
            s.len = s.len.max(end);
            s.data_end = end;
            // Wake the helper only when it has work: not on every append.
            s.short() && !s.filling
        };
        if wake {
            self.shared.changed.notify_all();
        }
        write()
    }

    /// The segment's data ends at `len` again (a failed append forgotten): cuts the file
    /// there. The helper makes room again from there.
    pub(super) fn truncate(&self, file: &File, len: u64) -> std::io::Result<()> {
        let result = {
            let mut s = self.shared.idle_filler(|_| true);
            let result = file.set_len(len);
            s.len = len;
            s.data_end = len;
            result
        };
        self.shared.changed.notify_all();
        result
    }

    /// Stops making room in the segment being appended to (it is about to be sealed and
    /// cut back to its data, see [`super::SegmentLog::rotate`]): once this returns, the
    /// helper writes nothing more into it and waits for [`Space::switch`].
    pub(super) fn pause(&self) {
        let mut s = self.shared.idle_filler(|_| true);
        s.file = None;
    }

    /// Makes room ahead in `file`, a new segment (its header only), opened for direct
    /// writes if `direct`.
    pub(super) fn switch(&self, file: Arc<File>, direct: bool) {
        {
            let mut s = self.shared.idle_filler(|_| true);
            s.file = Some(file);
            s.direct = direct;
            s.len = super::HEADER_LEN;
            s.data_end = super::HEADER_LEN;
        }
        self.shared.changed.notify_all();
    }
}

impl Drop for Space {
    fn drop(&mut self) {
        if let Ok(mut s) = self.shared.state.lock() {
            s.closed = true;
        }
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The state, once the helper is not writing zeros where `conflicts` says the caller
    /// is about to work.
    fn idle_filler(&self, conflicts: impl Fn(&State) -> bool) -> MutexGuard<'_, State> {
        let mut s = self.lock();
        while s.filling && conflicts(&s) {
            s = self
                .changed
                .wait(s)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        s
    }

    /// The helper: writes a chunk of zeros at the end whenever the room ahead of the data
    /// is short, then makes it durable.
    fn run(&self) {
        let mut s = self.lock();
        // Filling from the low watermark (half the room) up to the high one.
        let mut filling_up = false;
        loop {
            if s.closed {
                return;
            }
            filling_up = filling_up || s.short();
            let file = match &s.file {
                Some(file) if filling_up && s.next_at() < s.target() => file.clone(),
                _ => {
                    filling_up = false;
                    s = self
                        .changed
                        .wait(s)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    continue;
                }
            };
            let (from, at, direct) = (s.len, s.next_at(), s.direct);
            let n = usize::try_from((s.target() - at).next_multiple_of(s.align()))
                .unwrap_or(CHUNK)
                .min(CHUNK);
            s.filling = true;
            drop(s);
            let written = file.write_all_at(&ZEROS.0[..n], at);
            {
                let mut s = self.lock();
                s.filling = false;
                if written.is_ok() && s.len == from {
                    s.len = at + n as u64;
                }
            }
            self.changed.notify_all();
            // The zeros save the writer's syncs their journal commit only once durable
            // (their blocks allocated, the size committed): that sync is made here, unless
            // the write was direct (`O_DSYNC`: durable when it returned).
            let synced = written.and_then(|()| if direct { Ok(()) } else { file.sync_data() });
            s = self.lock();
            if let Err(e) = synced {
                // A full disk, say: the writer appends as before and meets the error itself.
                tracing::warn!(error = %e, "cannot make room ahead in the audit log; appending without it");
                s.limit = 0;
            }
        }
    }
}
