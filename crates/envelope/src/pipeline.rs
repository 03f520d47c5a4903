//! Frames sealed or opened on two cores while the stream's task copies: the engine behind
//! [`crate::stream`].
//!
//! A stream's task must make two copies of every byte (the reader fills a frame buffer, the
//! writer copies the finished frame out) and the cipher must pass over it once. Here those
//! three passes run at similar speeds, so a stream that did them one after the other would
//! reach about a third of raw AES-GCM. The task therefore reads frames into [`Slot`]s, groups
//! them into [`Job`]s and queues each job for a [`Helper`] on Tokio's blocking pool; every
//! frame of a job is claimed by whichever of the helper and the task takes it first. The task
//! copies while it can (writes the oldest finished job, reads the next one) and claims frames
//! itself only when it would otherwise wait, so the cipher is shared between the two cores
//! according to how fast the copies go.
//!
//! Progress never depends on the helper: a frame that no one claimed is processed by the
//! task, so a late helper (a busy machine, a runtime shutting down) only means less overlap.
//! Memory is bounded by the frames in flight (about [`INFLIGHT_BYTES`], at least two frames;
//! one frame for a decryption frame above 1 MiB). Slot buffers are allocated once per
//! stream (and kept between streams in a small pool, [`POOL`]) and read into without being
//! cleared first; whatever part of a slot may hold plaintext is zeroized when the slot is
//! dropped or pooled. Each slot's content sits at a chosen offset in its page
//! ([`Direction::content_page_offset`]), which decides how fast the copies go here.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::BufMut as _;
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::runtime::Handle;
use tokio::sync::Notify;
use zeroize::Zeroize as _;

use crate::Error;
use crate::crypto::{MessageKey, body_aad};
use crate::suite::{IV_LEN, TAG_LEN};

/// Content per job (a run of frames handed over together; at least one frame).
pub(crate) const JOB_BYTES: usize = 256 << 10;

/// Frames per job at most (small frames make small jobs rather than many slots).
pub(crate) const MAX_JOB_FRAMES: usize = 64;

/// Content read but not yet written, per stream (at least two frames; see the module doc).
pub(crate) const INFLIGHT_BYTES: usize = 1 << 20;

/// A job with less content than this is not worth a hand-off (a small message, the short
/// final frame): the task processes it alone.
pub(crate) const PARALLEL_MIN: usize = 128 << 10;

/// How long the task spins, once it has claimed every frame of the job it needs, for the
/// helper to finish the frame it holds (one frame of at most 1 MiB: ~110 µs here; a 64 KiB
/// frame, ~7 µs) before it sleeps until the helper wakes it.
const SPIN: Duration = Duration::from_micros(150);

/// Room before a frame's content for the longest frame header (the final frame's: marker,
/// sequence number, IV, content length).
pub(crate) const HEAD_ROOM: usize = 4 + 4 + IV_LEN + 4;

/// What the jobs of a stream do to their frames.
#[derive(Clone, Copy)]
pub(crate) enum Direction {
    /// Encrypt the content in place and write the frame header before it.
    Seal,
    /// Check the tag and decrypt the content in place.
    Open,
}

impl Direction {
    /// Where in a 4 KiB page a slot's content starts. Measured here (AMD EPYC, glibc's
    /// `memmove` by `rep movsb`): a 64 KiB copy whose destination lies 8–56 bytes past its
    /// source modulo 4 KiB runs at 1.4–5 GiB/s instead of 8–17 (in cache: 3.3 GiB/s instead
    /// of 54 when 8 bytes past). The buffers on the other side of a copy usually sit at
    /// offset 0 (page cache, page-aligned allocations) or 16 (glibc's large allocations) and
    /// advance by whole 64 KiB frames of plaintext, so: plaintext is copied *into* a slot at
    /// offset 0 (encryption; the source is at or after it) and copied *out of* one at offset
    /// 16 (decryption; the destination is at or before it). Copies of ciphertext, whose
    /// frames advance by 32 bytes more than 64 KiB, meet a bad offset one frame in 128.
    fn content_page_offset(self) -> usize {
        match self {
            Direction::Seal => 0,
            Direction::Open => 16,
        }
    }
}

/// A page, for placing slot contents (see [`Direction::content_page_offset`]).
const PAGE: usize = 4096;

/// The key and message id every frame of the stream is processed under.
pub(crate) struct Cipher {
    pub key: MessageKey,
    pub message_id: Vec<u8>,
    pub direction: Direction,
}

/// What happened to a slot's frame.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Read, not yet sealed or opened.
    Pending,
    Done,
    /// Sealing failed, or (opening) the tag did not verify: the content was zeroed.
    Failed,
}

/// One frame's buffer, laid out as `[head room | content | tag]`. On encryption the
/// plaintext is read into the content, sealed in place, and the frame header written just
/// before it, so the frame leaves in one write. On decryption the IV, content and tag of a
/// regular frame are read in one go (the IV into the end of the head room).
pub(crate) struct Slot {
    /// Initialized up to its length, which only grows: reads go into the spare capacity
    /// without clearing it first. Never reallocated (its content's address is chosen).
    buf: Vec<u8>,
    /// Where the content starts: after `HEAD_ROOM` bytes, at a chosen offset in a page.
    content: usize,
    pub seq: u32,
    /// Content length.
    pub len: usize,
    pub is_final: bool,
    pub iv: [u8; IV_LEN],
    /// Where the frame header starts once sealed.
    head: usize,
    pub outcome: Outcome,
    /// Every byte of `buf` (initialized or spare) before this may hold plaintext.
    secret_end: usize,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.wipe();
    }
}

impl Slot {
    /// A slot for frames of `frame_len`: one from the pool, or a new one.
    fn get(frame_len: usize, direction: Direction) -> Self {
        let capacity = Self::capacity(frame_len);
        let pooled = POOL.lock().ok().and_then(|mut pool| {
            let i = pool.iter().position(|s| s.buf.capacity() == capacity)?;
            Some(pool.swap_remove(i))
        });
        let buf = match pooled {
            Some(mut slot) => std::mem::take(&mut slot.buf),
            None => Vec::with_capacity(capacity),
        };
        Self::place(buf, direction)
    }

    fn capacity(frame_len: usize) -> usize {
        PAGE + HEAD_ROOM + frame_len + TAG_LEN
    }

    /// A slot over `buf` (no plaintext in it), its content at the direction's page offset.
    fn place(mut buf: Vec<u8>, direction: Direction) -> Self {
        let at = buf.as_ptr().addr() + HEAD_ROOM;
        let pad = (PAGE + direction.content_page_offset() - at % PAGE) % PAGE;
        let content = HEAD_ROOM + pad;
        if buf.len() < content {
            buf.resize(content, 0);
        }
        Self {
            buf,
            content,
            seq: 0,
            len: 0,
            is_final: false,
            iv: [0; IV_LEN],
            head: 0,
            outcome: Outcome::Pending,
            secret_end: 0,
        }
    }

    /// Zeroizes whatever part of the buffer may hold plaintext.
    fn wipe(&mut self) {
        let end = self.secret_end.min(self.buf.capacity());
        let initialized = end.min(self.buf.len());
        self.buf[..initialized].zeroize();
        let spare = end - initialized;
        self.buf.spare_capacity_mut()[..spare].zeroize();
        self.secret_end = 0;
    }

    /// Reads plaintext into the content until `want` bytes or the end of the input; returns
    /// how many bytes were read.
    pub async fn read_plaintext<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        want: usize,
    ) -> Result<usize, Error> {
        // Until the content is sealed all of it may hold plaintext, even if a read fails.
        let c = self.content;
        self.secret_end = self.secret_end.max(c + want);
        let n = self.read_into(r, c, c + want).await?;
        self.outcome = Outcome::Pending;
        Ok(n)
    }

    /// Reads a frame's ciphertext: a regular frame's IV, content and tag (contiguous in the
    /// message; the IV goes to the end of the head room), or the final frame's content and
    /// tag when its IV came with its header. Returns the bytes read, to be authenticated.
    pub async fn read_ciphertext<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        header_iv: Option<[u8; IV_LEN]>,
        len: usize,
    ) -> Result<&[u8], Error> {
        let c = self.content;
        let from = match header_iv {
            Some(_) => c,
            None => c - IV_LEN,
        };
        let to = c + len + TAG_LEN;
        if self.read_into(r, from, to).await? < to - from {
            return Err(Error::InvalidCiphertext);
        }
        // Plaintext of an earlier frame that this one covered is gone.
        if to >= self.secret_end {
            self.secret_end = 0;
        }
        self.iv = match header_iv {
            Some(iv) => iv,
            None => {
                let mut iv = [0u8; IV_LEN];
                iv.copy_from_slice(&self.buf[c - IV_LEN..c]);
                iv
            }
        };
        self.outcome = Outcome::Pending;
        Ok(&self.buf[from..to])
    }

    /// Reads into `buf[from..to]` until full or the end of the input; returns the count.
    async fn read_into<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        from: usize,
        to: usize,
    ) -> Result<usize, Error> {
        let mut at = from;
        while at < to {
            // The initialized part is read into as a slice, the rest as spare capacity.
            let got = if at < self.buf.len() {
                let end = to.min(self.buf.len());
                r.read(&mut self.buf[at..end]).await
            } else {
                let mut spare = (&mut self.buf).limit(to - at);
                r.read_buf(&mut spare).await
            };
            let got = got.map_err(Error::Io)?;
            if got == 0 {
                break;
            }
            at += got;
        }
        Ok(at - from)
    }

    /// The frame as it goes into the message: header, ciphertext, tag.
    pub fn sealed(&self) -> &[u8] {
        &self.buf[self.head..self.content + self.len + TAG_LEN]
    }

    /// The opened frame's plaintext.
    pub fn plaintext(&self) -> &[u8] {
        &self.buf[self.content..self.content + self.len]
    }

    fn process(&mut self, cipher: &Cipher) {
        let ok = match cipher.direction {
            Direction::Seal => self.seal(cipher),
            Direction::Open => self.open(cipher),
        };
        self.outcome = match ok {
            Ok(()) => Outcome::Done,
            Err(_) => Outcome::Failed,
        };
    }

    fn seal(&mut self, cipher: &Cipher) -> Result<(), Error> {
        let c = self.content;
        let end = c + self.len + TAG_LEN;
        if self.buf.len() < end {
            self.buf.resize(end, 0);
        }
        let aad = body_aad(&cipher.message_id, self.is_final, self.seq, self.len as u64);
        let (before, rest) = self.buf.split_at_mut(c);
        let (content, tail) = rest.split_at_mut(self.len);
        let tag = cipher.key.seal(self.iv, aad.as_ref(), content)?;
        tail[..TAG_LEN].copy_from_slice(&tag);
        let head = &mut before[c - HEAD_ROOM..];
        self.head = c - HEAD_ROOM + frame_head(head, self.is_final, self.seq, self.iv, self.len);
        // The content is ciphertext now; the bytes after it were never read into.
        self.secret_end = 0;
        Ok(())
    }

    fn open(&mut self, cipher: &Cipher) -> Result<(), Error> {
        let aad = body_aad(&cipher.message_id, self.is_final, self.seq, self.len as u64);
        let c = self.content;
        let frame = &mut self.buf[c..c + self.len + TAG_LEN];
        // On failure `open` zeroes the frame: no unauthenticated plaintext stays behind.
        cipher.key.open(self.iv, aad.as_ref(), frame)?;
        self.secret_end = self.secret_end.max(c + self.len);
        Ok(())
    }
}

/// Writes frame `seq`'s header right-aligned into `head` (`HEAD_ROOM` bytes) and returns
/// where it starts: regular frames are `seq || iv`, the final frame
/// `0xFFFFFFFF || seq || iv || len`.
pub(crate) fn frame_head(
    head: &mut [u8],
    is_final: bool,
    seq: u32,
    iv: [u8; IV_LEN],
    len: usize,
) -> usize {
    if is_final {
        head[..4].copy_from_slice(&FINAL_MARKER);
        head[4..8].copy_from_slice(&seq.to_be_bytes());
        head[8..8 + IV_LEN].copy_from_slice(&iv);
        // `len` is at most the frame length, itself a u32.
        head[HEAD_ROOM - 4..].copy_from_slice(&(len as u32).to_be_bytes());
        0
    } else {
        head[HEAD_ROOM - 16..HEAD_ROOM - 12].copy_from_slice(&seq.to_be_bytes());
        head[HEAD_ROOM - 12..].copy_from_slice(&iv);
        HEAD_ROOM - 16
    }
}

pub(crate) const FINAL_MARKER: [u8; 4] = [0xFF; 4];

/// Frames handed over together. Each frame is claimed once (`next`) by the task or the
/// helper, and counted in `done` when processed, by whoever processed it.
struct Job {
    cipher: Arc<Cipher>,
    /// `None` once taken back by the task.
    slots: Box<[Mutex<Option<Slot>>]>,
    next: AtomicUsize,
    done: AtomicUsize,
    /// Wakes the task that sleeps on this job once its last frame is processed.
    finished: Notify,
}

impl Job {
    /// Claims and processes frames until none is left to claim.
    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = self.slots.get(i) else {
                return;
            };
            let _counted = Counted(self);
            // A poisoned slot (a panic while processing it) stays `Pending`: the task
            // reports it as failed.
            if let Ok(mut slot) = slot.lock()
                && let Some(slot) = slot.as_mut()
            {
                slot.process(&self.cipher);
            }
        }
    }

    fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire) >= self.slots.len()
    }
}

/// Counts a claimed frame as done when dropped, even by a panic, so no one waits for it.
struct Counted<'a>(&'a Job);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        let job = self.0;
        if job.done.fetch_add(1, Ordering::AcqRel) + 1 == job.slots.len() {
            job.finished.notify_one();
        }
    }
}

/// The blocking-pool side: runs queued jobs and returns its thread to the pool when the
/// queue is empty (a stream holds no thread while it waits on its reader or writer).
struct Helper {
    queue: Mutex<HelperQueue>,
}

struct HelperQueue {
    jobs: VecDeque<Arc<Job>>,
    running: bool,
    /// The stream is gone: drop the queued jobs unprocessed.
    abandoned: bool,
}

impl Helper {
    fn submit(self: &Arc<Self>, runtime: &Handle, job: Arc<Job>) {
        let start = match self.queue.lock() {
            Ok(mut q) => {
                q.jobs.push_back(job);
                !std::mem::replace(&mut q.running, true)
            }
            // The helper panicked: the task does the work.
            Err(_) => false,
        };
        if start {
            let helper = self.clone();
            drop(runtime.spawn_blocking(move || helper.run()));
        }
    }

    fn run(&self) {
        while let Some(job) = self.next_job() {
            job.work();
        }
    }

    /// The next queued job; `None` (and the helper marked stopped) when there is none.
    fn next_job(&self) -> Option<Arc<Job>> {
        // A poisoned queue: stop, and stay marked running so no helper starts again.
        let mut q = self.queue.lock().ok()?;
        let job = match q.abandoned {
            true => None,
            false => q.jobs.pop_front(),
        };
        if job.is_none() {
            q.jobs.clear();
            q.running = false;
        }
        job
    }

    fn abandon(&self) {
        if let Ok(mut q) = self.queue.lock() {
            q.abandoned = true;
            q.jobs.clear();
        }
    }
}

/// The task's side: the jobs in flight, oldest first, and the slots not in use.
pub(crate) struct Pipeline {
    cipher: Arc<Cipher>,
    helper: Option<(Arc<Helper>, Handle)>,
    inflight: VecDeque<Arc<Job>>,
    free: Vec<Slot>,
    frame_len: usize,
    frames_per_job: usize,
    max_jobs: usize,
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if let Some((helper, _)) = &self.helper {
            helper.abandon();
        }
        // Slots of frames in flight (an error) are dropped, which zeroizes them; the free
        // ones go back to the pool, wiped.
        let Ok(mut pool) = POOL.lock() else {
            return;
        };
        let mut held: usize = pool.iter().map(|s| s.buf.capacity()).sum();
        for mut slot in self.free.drain(..) {
            if held + slot.buf.capacity() > POOL_BYTES {
                break;
            }
            slot.wipe();
            held += slot.buf.capacity();
            pool.push(slot);
        }
    }
}

/// Slot buffers kept between streams (at most [`POOL_BYTES`], wiped). Without it every
/// stream would fault its buffers' pages in afresh: glibc gives freed memory of this size
/// back to the kernel. Measured on a 1 MiB stream: ~10% of its time in page faults.
static POOL: Mutex<Vec<Slot>> = Mutex::new(Vec::new());

/// What [`POOL`] holds at most: the slots of about one stream.
const POOL_BYTES: usize = 2 * INFLIGHT_BYTES;

impl Pipeline {
    /// `parallel`: whether to use a helper on the current Tokio runtime (none outside one).
    pub fn new(cipher: Cipher, frame_len: usize, parallel: bool) -> Self {
        let helper = match parallel {
            true => Handle::try_current().ok().map(|rt| {
                let helper = Helper {
                    queue: Mutex::new(HelperQueue {
                        jobs: VecDeque::new(),
                        running: false,
                        abandoned: false,
                    }),
                };
                (Arc::new(helper), rt)
            }),
            false => None,
        };
        let frames_per_job = (JOB_BYTES / frame_len.max(1)).clamp(1, MAX_JOB_FRAMES);
        let job_bytes = frames_per_job * frame_len;
        let max_jobs = match &helper {
            // Alone, the task finishes each job before it reads the next.
            None => 1,
            Some(_) if frame_len > 1 << 20 => 1,
            Some(_) => (INFLIGHT_BYTES / job_bytes.max(1)).max(2),
        };
        Self {
            cipher: Arc::new(cipher),
            helper,
            inflight: VecDeque::new(),
            free: Vec::new(),
            frame_len,
            frames_per_job,
            max_jobs,
        }
    }

    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    pub fn frames_per_job(&self) -> usize {
        self.frames_per_job
    }

    /// Whether another job may be read before the oldest is written.
    pub fn has_room(&self) -> bool {
        self.inflight.len() < self.max_jobs
    }

    pub fn is_empty(&self) -> bool {
        self.inflight.is_empty()
    }

    /// A slot to read a frame into.
    pub fn slot(&mut self) -> Slot {
        self.free
            .pop()
            .unwrap_or_else(|| Slot::get(self.frame_len, self.cipher.direction))
    }

    /// Queues frames read into `slots`, in order.
    pub fn submit(&mut self, slots: Vec<Slot>) {
        let content: usize = slots.iter().map(|s| s.len).sum();
        let job = Arc::new(Job {
            cipher: self.cipher.clone(),
            slots: slots.into_iter().map(|s| Mutex::new(Some(s))).collect(),
            next: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            finished: Notify::new(),
        });
        if let Some((helper, runtime)) = &self.helper
            && content >= PARALLEL_MIN
        {
            helper.submit(runtime, job.clone());
        }
        self.inflight.push_back(job);
    }

    /// The oldest job's slots, in order, if all its frames are processed (check each
    /// slot's outcome). Give them back with [`Self::recycle`].
    pub fn take_finished(&mut self) -> Result<Option<Vec<Slot>>, Error> {
        match self.inflight.front() {
            Some(job) if job.is_done() => {}
            _ => return Ok(None),
        }
        let Some(job) = self.inflight.pop_front() else {
            return Ok(None);
        };
        let slots = job
            .slots
            .iter()
            .map(|s| lock(s).and_then(|mut s| s.take().ok_or(Error::Crypto)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(slots))
    }

    /// Processes what is left of the oldest job, then waits for the frame the helper may
    /// still hold.
    pub async fn finish_oldest(&mut self) {
        let Some(job) = self.inflight.front().cloned() else {
            return;
        };
        job.work();
        let spin_until = Instant::now() + SPIN;
        while !job.is_done() {
            if Instant::now() < spin_until {
                std::hint::spin_loop();
            } else {
                job.finished.notified().await;
            }
        }
    }

    pub fn recycle(&mut self, slots: Vec<Slot>) {
        self.free.extend(slots);
    }
}

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, Error> {
    m.lock().map_err(|_| Error::Crypto)
}
