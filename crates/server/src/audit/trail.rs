//! The durable audit trail: a writer thread that appends events to the segment log in
//! pipelined group commits.
//!
//! Requests hand their events to one writer thread over a bounded queue. The writer takes
//! everything queued (up to a batch limit), links each event into the chain, appends the
//! batch to the newest segment and hands it to a syncer thread, which makes it durable
//! (one `fdatasync`) and releases every waiting request; meanwhile the writer links and
//! appends the next batch. A signed digest, when due, is appended once the events it
//! covers are durable, and segments rotate right after a digest. In `durable` mode (the
//! default) a response waits for its events' receipts; in `spool` mode it does not, and a
//! full queue refuses calls. An indexer ([`super::index`]) follows the log for lookups.
//!
//! Fail closed: if the trail cannot be written, the calls whose events were lost get
//! `ServiceUnavailable`, new calls are refused until a write succeeds again, and the health
//! endpoint says why.

use std::collections::VecDeque;
use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use keyhold_crypto::seal::DomainKey;
use keyhold_crypto::signing::SigningKey;
use keyhold_proto::{ApiError, Timestamp};
use keyhold_store::audit::{AuditAnchor, AuditLog, AuditRow, DigestRow, IndexEntry, PRUNE_RECORD};
use keyhold_store::segment::{self, Location, Mode, RoomAhead, SegmentLog};
use tokio::sync::oneshot;

use super::anchor::{self, Anchor, Signed};
use super::chain::{self, DigestDocument, GENESIS, PruneDocument};
use super::index::Index;
use super::record::{self, Pending};
use super::{AuditEvent, Auditor, Durability, ServiceEvent, unavailable};

/// Whether a response waits for its audit event to be durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditMode {
    /// Every response waits until its events are on disk (group commit keeps this cheap).
    Durable,
    /// Responses do not wait; events queue in memory (bounded) and a crash loses the queue.
    Spool,
}

#[derive(Clone, Debug)]
pub struct TrailConfig {
    pub mode: AuditMode,
    /// Events the queue holds.
    pub queue_capacity: usize,
    /// A digest at least every this many events...
    pub digest_every_events: i64,
    /// ... and at least this often while events arrive.
    pub digest_interval: Duration,
    /// Events older than this are pruned (whole digest periods at a time); `None` keeps all.
    pub retention: Option<Duration>,
    /// Where to write every signed digest as a file too (outside the data directory, as
    /// CloudTrail delivers digest files to another bucket); `None` writes none.
    pub digest_dir: Option<std::path::PathBuf>,
    /// How many calls rejected before dispatch are recorded.
    pub rejection_limits: super::rejection::RejectionLimits,
    /// The account rejected calls are recorded in (they have no verified caller): the
    /// server's default account.
    pub rejections_account: String,
    /// A segment is closed (at the next digest) once it holds this many bytes...
    pub segment_bytes: u64,
    /// ... or is this old.
    pub segment_age: Duration,
    /// Whether a helper thread keeps zeros written and synced ahead of the writer in the
    /// newest segment, so that a batch's sync overwrites allocated blocks instead of growing
    /// the file (docs/audit.md, "Room made ahead"). Off by default: under sustained load it
    /// cost more than it saved on the development machine (docs/performance.md).
    pub room_ahead: bool,
    /// Whether batches are written to the newest segment directly (`O_DIRECT`, past the
    /// page cache) into room made ahead the same way (docs/audit.md, "Direct appends"):
    /// one device write per batch and no page-cache copy. On by default; where the
    /// filesystem takes no direct writes, appends go through the page cache (with room
    /// ahead only if `room_ahead` asks for it).
    pub direct_appends: bool,
    /// Fault injection for tests: while set, every append fails as a full disk would.
    pub fail_writes: Option<Arc<AtomicBool>>,
}

impl Default for TrailConfig {
    fn default() -> Self {
        Self {
            mode: AuditMode::Durable,
            queue_capacity: 65_536,
            digest_every_events: 1000,
            digest_interval: Duration::from_secs(10),
            retention: None,
            digest_dir: None,
            rejection_limits: super::rejection::RejectionLimits::default(),
            rejections_account: "000000000000".to_owned(),
            segment_bytes: 64 << 20,
            segment_age: Duration::from_secs(3600),
            room_ahead: false,
            direct_appends: true,
            fail_writes: None,
        }
    }
}

enum Msg {
    /// An event and its ticket (see [`Durability`]).
    Event(Box<Pending>, u64),
    /// Writes a digest now if any event is not covered; answers when done.
    Seal(oneshot::Sender<()>),
}

/// The queue from requests to the writer. Events take their tickets under its lock, so the
/// writer meets them in ticket order and resolves tickets in order.
struct Queue {
    state: Mutex<QueueState>,
    /// Signalled when the writer waits and something arrives.
    ready: Condvar,
    capacity: usize,
}

#[derive(Default)]
struct QueueState {
    items: VecDeque<Msg>,
    /// Events in `items`.
    events: usize,
    /// The last ticket handed out.
    ticket: u64,
    /// The writer is waiting on `ready`.
    writer_waits: bool,
    /// The trail was dropped: the writer finishes what is queued and stops.
    closed: bool,
}

/// What the writer found in the queue.
enum Next {
    /// Messages were moved into the caller's buffer.
    Items,
    Timeout,
    Closed,
}

impl Queue {
    /// Queues an event; its ticket, or `None` when the queue is full or closed.
    fn push(&self, pending: Box<Pending>) -> Option<u64> {
        let mut q = self.state.lock().ok()?;
        if q.events >= self.capacity || q.closed {
            return None;
        }
        q.ticket += 1;
        let ticket = q.ticket;
        q.items.push_back(Msg::Event(pending, ticket));
        q.events += 1;
        let wake = std::mem::take(&mut q.writer_waits);
        drop(q);
        if wake {
            self.ready.notify_one();
        }
        Some(ticket)
    }

    fn push_seal(&self, done: oneshot::Sender<()>) -> bool {
        let Ok(mut q) = self.state.lock() else {
            return false;
        };
        if q.closed {
            return false;
        }
        q.items.push_back(Msg::Seal(done));
        let wake = std::mem::take(&mut q.writer_waits);
        drop(q);
        if wake {
            self.ready.notify_one();
        }
        true
    }

    /// Events waiting.
    fn queued(&self) -> usize {
        self.state.lock().map_or(0, |q| q.events)
    }

    fn close(&self) {
        if let Ok(mut q) = self.state.lock() {
            q.closed = true;
        }
        self.ready.notify_one();
    }

    /// Moves up to [`BATCH`] events (and stops after a seal) into `into`, which is empty,
    /// waiting at most `wait`. When it takes everything queued, the two buffers swap: the
    /// queue keeps the capacity `into` had, so requests do not grow a fresh buffer (from
    /// their threads, to be freed by the writer's) after every batch.
    fn take(&self, wait: Duration, into: &mut VecDeque<Msg>) -> Next {
        debug_assert!(into.is_empty());
        let Ok(mut q) = self.state.lock() else {
            return Next::Closed;
        };
        let deadline = Instant::now() + wait;
        while q.items.is_empty() {
            if q.closed {
                return Next::Closed;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Next::Timeout;
            }
            q.writer_waits = true;
            q = match self.ready.wait_timeout(q, left) {
                Ok((q, _)) => q,
                Err(_) => return Next::Closed,
            };
            q.writer_waits = false;
        }
        let mut n = 0;
        let mut events = 0;
        for item in &q.items {
            n += 1;
            match item {
                Msg::Event(..) => {
                    events += 1;
                    if events >= BATCH {
                        break;
                    }
                }
                Msg::Seal(_) => break,
            }
        }
        q.events -= events;
        if n == q.items.len() {
            std::mem::swap(&mut q.items, into);
        } else {
            into.extend(q.items.drain(..n));
        }
        Next::Items
    }
}

/// Whether the trail can be written.
#[derive(Default)]
pub struct Health {
    failing: AtomicBool,
    last_error: Mutex<Option<String>>,
    /// Told the size and the commit (fsync) time of every batch written (metrics).
    observer: std::sync::OnceLock<BatchObserver>,
}

/// What [`Health::observe_batches`] calls: events in the batch, time its commit took.
pub type BatchObserver = Box<dyn Fn(usize, Duration) + Send + Sync>;

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("failing", &self.failing)
            .finish_non_exhaustive()
    }
}

impl Health {
    /// Calls `observer` after every batch written (once set, for the trail's life).
    pub fn observe_batches(&self, observer: BatchObserver) {
        let _ = self.observer.set(observer);
    }

    pub fn error(&self) -> Option<String> {
        if !self.failing.load(Ordering::Relaxed) {
            return None;
        }
        self.last_error
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .or(Some("failing".into()))
    }

    fn set(&self, error: Option<String>) {
        self.failing.store(error.is_some(), Ordering::Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            *last = error;
        }
    }
}

/// The audit trail of a data directory.
pub struct AuditTrail {
    queue: Arc<Queue>,
    durability: Arc<Durability>,
    rejections: super::rejection::Limiter,
    rejections_account: String,
    mode: AuditMode,
    health: Arc<Health>,
    index: Arc<Index>,
}

/// The trail's meta entry holding its signing key, sealed under the domain key.
pub(crate) const SIGNING_KEY: &str = "signing_key.sealed";
/// The trail's meta entry holding the signing key's public half.
pub(crate) const PUBLIC_KEY: &str = "signing_key.public";
/// The purpose and id the signing key is sealed under (its additional data).
const SIGNING_KEY_AAD: (&str, &str) = ("audit-signing-key", "ed25519");

impl AuditTrail {
    /// Opens (creating if needed) the trail in the directory `dir` and starts its writer,
    /// syncer and indexer. A trail still in the first format (`legacy`, the SQLite
    /// `audit.db`) is converted first. `anchor` is where the trail is anchored outside its
    /// own files (the key store's database); a trail that ends before its anchor is refused.
    pub fn open(
        dir: &std::path::Path,
        legacy: &std::path::Path,
        anchor: Box<dyn AuditAnchor>,
        domain: &DomainKey,
        config: TrailConfig,
    ) -> anyhow::Result<Self> {
        super::legacy::convert_if_needed(legacy, dir)?;
        let mut log = SegmentLog::open(dir, Mode::Write)
            .with_context(|| format!("opening the audit trail in {}", dir.display()))?;
        let key = signing_key(&mut log, domain)?;
        let index = Index::start(dir, log.tail().map_or(0, |(seq, _)| seq))?;
        let health = Arc::new(Health::default());
        let durability = Arc::new(Durability::default());
        let queue = Arc::new(Queue {
            state: Mutex::default(),
            ready: Condvar::new(),
            capacity: config.queue_capacity.max(1),
        });
        let mut writer = Writer::new(
            log,
            key,
            config.clone(),
            health.clone(),
            Some(anchor),
            index.clone(),
            durability.clone(),
        )
        .with_context(|| format!("opening the audit trail in {}", dir.display()))?;
        let writer_queue = queue.clone();
        std::thread::Builder::new()
            .name("keyhold-audit".into())
            .spawn(move || writer.run(&writer_queue))
            .context("starting the audit writer")?;
        Ok(Self {
            queue,
            durability,
            rejections: super::rejection::Limiter::new(config.rejection_limits),
            rejections_account: config.rejections_account.clone(),
            mode: config.mode,
            health,
            index,
        })
    }

    pub fn health(&self) -> &Health {
        &self.health
    }

    /// The trail's index (lookups).
    pub(crate) fn index(&self) -> Arc<Index> {
        self.index.clone()
    }

    /// Writes a digest covering every event so far (returns once it is durable).
    pub async fn seal(&self) {
        let (tx, rx) = oneshot::channel();
        if self.queue.push_seal(tx) {
            let _ = rx.await;
        }
    }

    /// Seals the trail at shutdown: every event queued before this call is written and
    /// covered by a digest when it returns. (The writer thread ends with the last handle.)
    pub async fn shutdown(&self) {
        self.seal().await;
    }
}

impl Drop for AuditTrail {
    /// The writer writes what is queued, seals it with a digest and stops.
    fn drop(&mut self) {
        self.queue.close();
    }
}

impl Auditor for AuditTrail {
    fn admit(&self) -> Result<(), ApiError> {
        match self.health.error() {
            Some(_) => Err(unavailable()),
            None => Ok(()),
        }
    }

    fn record(&self, event: AuditEvent<'_>) {
        let receipts = event.ctx.receipts();
        let pending = Box::new(record::build(event));
        match self.queue.push(pending) {
            Some(ticket) if self.mode == AuditMode::Durable => {
                receipts.expect(&self.durability, ticket);
            }
            Some(_) => {}
            None => receipts.fail(),
        }
    }

    fn record_service_event(&self, event: ServiceEvent<'_>) {
        let receipts = event.receipts;
        let pending = Box::new(record::build_service_event(event));
        match (self.queue.push(pending), receipts) {
            (Some(ticket), Some(receipts)) if self.mode == AuditMode::Durable => {
                receipts.expect(&self.durability, ticket);
            }
            (Some(_), _) => {}
            (None, Some(receipts)) => receipts.fail(),
            (None, None) => tracing::error!("the audit trail could not take a service event"),
        }
    }

    fn last_success(&self, query: &super::LastSuccessQuery<'_>) -> Option<super::LastSuccess> {
        /// How many of the resource's newest events to look through before giving up.
        const SCAN_LIMIT: usize = 10_000;
        const PAGE: usize = 500;
        let mut before_seq = None;
        let mut scanned = 0;
        while scanned < SCAN_LIMIT {
            let rows = self
                .index
                .lookup(&keyhold_store::audit::AuditQuery {
                    account: query.account.to_owned(),
                    region: query.region.to_owned(),
                    attribute: Some((
                        keyhold_store::audit::AuditAttribute::ResourceName,
                        query.resource.to_owned(),
                    )),
                    page: before_seq,
                    limit: PAGE,
                    ..Default::default()
                })
                .ok()?;
            let found = rows.iter().find_map(|row| {
                query.answer(
                    &row.event_id,
                    &row.event_source,
                    &row.event_name,
                    row.time_ms,
                    &row.record,
                )
            });
            if found.is_some() {
                return found;
            }
            if rows.len() < PAGE {
                return None;
            }
            scanned += rows.len();
            before_seq = rows.last().map(|r| r.seq);
        }
        None
    }

    fn record_rejection(&self, rejection: super::rejection::Rejection<'_>) {
        let Some(suppressed) = self.rejections.admit(rejection.source_ip) else {
            return;
        };
        let pending = super::rejection::build(&rejection, &self.rejections_account, suppressed);
        // Nothing waits for it: a full queue drops it (the trail is then failing anyway).
        let _ = self.queue.push(Box::new(pending));
    }
}

fn signing_key(log: &mut SegmentLog, domain: &DomainKey) -> anyhow::Result<SigningKey> {
    if let Some(key) = stored_signing_key(log, domain)? {
        return Ok(key);
    }
    let (key, pkcs8) = SigningKey::generate()?;
    let (purpose, id) = SIGNING_KEY_AAD;
    let sealed = domain.seal_secret(purpose, id, pkcs8.expose_secret())?;
    log.put_meta(SIGNING_KEY, &sealed)?;
    log.put_meta(PUBLIC_KEY, &key.public_key())?;
    tracing::info!(fingerprint = %chain::fingerprint(&key.public_key()), "generated the audit trail's signing key");
    Ok(key)
}

/// The trail's signing key, unsealed with `domain`; `None` if the trail has none yet, an
/// error if it does not unseal (another data directory's trail, or a damaged one).
pub(crate) fn stored_signing_key(
    log: &mut dyn AuditLog,
    domain: &DomainKey,
) -> anyhow::Result<Option<SigningKey>> {
    let Some(sealed) = log.get_meta(SIGNING_KEY)? else {
        return Ok(None);
    };
    let (purpose, id) = SIGNING_KEY_AAD;
    let pkcs8 = domain.unseal_secret(purpose, id, &sealed).map_err(|_| {
        anyhow::anyhow!(
            "the audit signing key does not unseal under this data directory's domain key"
        )
    })?;
    Ok(Some(SigningKey::from_pkcs8(pkcs8.expose_secret())?))
}

/// The stored public key of a trail (for verification).
pub fn stored_public_key(log: &mut dyn AuditLog) -> anyhow::Result<Option<Vec<u8>>> {
    Ok(log.get_meta(PUBLIC_KEY)?)
}

/// The writer thread's state.
struct Writer {
    log: SegmentLog,
    key: SigningKey,
    config: TrailConfig,
    health: Arc<Health>,
    index: Arc<Index>,
    /// The last durable event.
    tail_seq: i64,
    tail_hash: [u8; 32],
    /// The last written digest.
    digest_seq: i64,
    digest_last_event: i64,
    digest_hash: Option<String>,
    last_digest_at: Instant,
    last_prune_at: Option<Instant>,
    /// When the segment being appended to was started.
    segment_started: Instant,
    /// The last written digest and the latest prune record, signed: what the anchor holds.
    last_digest: Option<Signed>,
    prune: Option<Signed>,
    /// Where the trail is anchored outside its own files.
    anchor: Option<Box<dyn AuditAnchor>>,
    /// Events linked after the tail whose append failed: retried, in order, before (and
    /// with) anything newer, so an event is never lost to a passing failure.
    unwritten: Vec<AuditRow>,
    /// The batch appended and handed to the syncer, not yet known durable.
    inflight: Option<Inflight>,
    syncer: SyncSender<SyncJob>,
    synced: Receiver<Synced>,
    /// What of the segment the writer's own syncs keep in the page cache (small batches are
    /// synced on the writer's thread; the syncer keeps its own).
    cached: Arc<Cached>,
    /// Where the tickets of events are resolved.
    durability: Arc<Durability>,
    /// While the trail cannot be written: when to try again, and the backoff.
    retry_at: Option<Instant>,
    backoff: Duration,
}

/// A batch appended to the newest segment and handed to the syncer.
struct Inflight {
    /// Where the segment ended, and its tail, before the batch: what a failed sync
    /// rewinds to.
    start_len: u64,
    prev_tail: Option<(i64, [u8; 32])>,
    /// The batch's events, and its newest event's sequence and hash.
    events: usize,
    last: (i64, [u8; 32]),
    /// The digest covering the batch, appended once the batch is durable.
    digest: Option<(DigestRow, String)>,
}

/// What the syncer makes durable: a segment up to what was written to it. Once it is, the
/// syncer hands the events' index entries to the index and resolves the batch's tickets.
struct SyncJob {
    /// `None` when the append was durable when written (direct appends).
    file: Option<Arc<File>>,
    /// How long writing the batch took (all of its commit, for a direct append).
    written_in: Duration,
    /// The events (given back to the writer if the sync fails) and where each is.
    rows: Vec<AuditRow>,
    segment: i64,
    offsets: Vec<u64>,
    /// Where the segment ends after the batch.
    end: u64,
    /// The last ticket of the batch's events (none when it holds only retried events,
    /// whose tickets were resolved when they failed).
    through: Option<u64>,
}

/// How a sync went.
enum Synced {
    Durable(Duration),
    /// The reason, and the events, which the writer retries.
    Failed(String, Vec<AuditRow>),
}

/// The syncer: one `fdatasync` per job; then the index learns the events are durable, then
/// the batch's tickets are resolved (so a caller's lookup right after its answer finds its
/// call), then the writer hears how it went.
fn sync_loop(
    jobs: &Receiver<SyncJob>,
    done: &SyncSender<Synced>,
    cached: &Cached,
    index: &Index,
    durability: &Durability,
) {
    for job in jobs {
        let outcome = sync_job(job, cached, index, durability);
        if done.send(outcome).is_err() {
            return;
        }
    }
}

/// Makes one job durable (one `fdatasync`), hands its events' index entries to the index and
/// resolves its tickets — on the syncer thread, or on the writer's for a small batch.
fn sync_job(job: SyncJob, cached: &Cached, index: &Index, durability: &Durability) -> Synced {
    let started = Instant::now();
    match job.file.as_deref().map_or(Ok(()), segment::sync) {
        Ok(()) => {
            let elapsed = job.written_in + started.elapsed();
            if let Some(file) = &job.file {
                cached.drop_synced(file, job.segment, job.end);
            }
            let entries = job
                .rows
                .into_iter()
                .zip(job.offsets)
                .map(|(row, offset)| {
                    let location = Location {
                        segment: job.segment,
                        offset,
                    };
                    IndexEntry::new(row, location)
                })
                .collect();
            index.durable(entries);
            if let Some(through) = job.through {
                durability.resolve(through, true);
            }
            Synced::Durable(elapsed)
        }
        Err(e) => {
            if let Some(through) = job.through {
                durability.resolve(through, false);
            }
            let reason = format!(
                "{e}: {}",
                std::error::Error::source(&e)
                    .map(ToString::to_string)
                    .unwrap_or_default()
            );
            Synced::Failed(reason, job.rows)
        }
    }
}

/// The part of the segment being appended to that may still be in the page cache (buffered
/// appends only: direct ones never put it there).
///
/// Segments are written once and read rarely (lookups read single records, mostly recent
/// ones; `verify` and `export` read them whole), so the syncer drops a segment's durable
/// pages from the page cache (`POSIX_FADV_DONTNEED`, as PostgreSQL does with WAL files it
/// will not read again) once they are [`KEEP_CACHED`] behind its end. The writer's appends
/// then reuse freed pages instead of taking fresh ones (which was most of what an append
/// cost where touching fresh memory is slow, as in virtual machines), and the trail does
/// not push more useful pages (the key store, the index) out of the cache.
///
/// One for the trail, used by whichever thread syncs a batch (the writer for a small one,
/// the syncer for a large one; never both at once, so the lock is not contended).
#[derive(Default)]
struct Cached(Mutex<CachedFrom>);

#[derive(Default)]
struct CachedFrom {
    segment: i64,
    /// Pages before this offset are dropped already.
    from: u64,
}

/// How much of the newest events stays in the page cache (about 12,000 events of 1.3 KiB):
/// lookups and `GetKeyLastUsage` read recent records without going to the disk.
const KEEP_CACHED: u64 = 16 << 20;

impl Cached {
    /// Drops the whole pages of `segment` (durable up to `end`) that lie more than
    /// [`KEEP_CACHED`] before `end`.
    fn drop_synced(&self, file: &File, segment: i64, end: u64) {
        const PAGE: u64 = 4096;
        let mut cached = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if segment != cached.segment {
            *cached = CachedFrom { segment, from: 0 };
        }
        let to = end.saturating_sub(KEEP_CACHED);
        let to = to - to % PAGE;
        let Some(len) = std::num::NonZeroU64::new(to.saturating_sub(cached.from)) else {
            return;
        };
        // Advice only: if it fails, the pages stay cached, which is merely slower.
        let _ = rustix::fs::fadvise(file, cached.from, Some(len), rustix::fs::Advice::DontNeed);
        cached.from = to;
    }
}

/// The first retry after a failed write, and the longest wait between retries.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(1);

const BATCH: usize = 4096;

/// Events waiting that the writer links and appends while the batch before is still being
/// synced (fewer wait for that sync to end and go into the next one whole).
const PIPELINE_MIN: usize = 256;

/// Events taken from the queue, with their tickets.
type Batch = Vec<(Box<Pending>, u64)>;

impl Writer {
    fn new(
        mut log: SegmentLog,
        key: SigningKey,
        config: TrailConfig,
        health: Arc<Health>,
        mut anchor: Option<Box<dyn AuditAnchor>>,
        index: Arc<Index>,
        durability: Arc<Durability>,
    ) -> anyhow::Result<Self> {
        // The tail's hash is recomputed from its record, not taken from the stored hash.
        let (tail_seq, tail_hash) = match log.last_event()? {
            Some(row) => (
                row.seq,
                keyhold_crypto::digest::sha256(row.record.as_bytes()),
            ),
            None => (0, GENESIS),
        };
        let last = log.last_digest()?;
        let (digest_seq, digest_last_event, digest_hash) = match &last {
            Some(d) => (d.seq, d.last_seq, Some(chain::digest_hash(&d.document))),
            None => (0, 0, None),
        };
        if digest_last_event > tail_seq {
            anyhow::bail!(
                "the audit trail ends at event {tail_seq} but its digest {digest_seq} covers events up to {digest_last_event}: events were removed from the end of the trail. Keyhold does not continue a truncated audit trail. Preserve the trail for investigation and accept the loss with `keyhold audit reanchor --data-dir DIR` (docs/audit.md, \"Recovery\")"
            );
        }
        // Only a prune record this trail's key signed may excuse a missing head: the trail
        // is what is being checked, so an unsigned (or forged) record there proves nothing.
        let public_key = key.public_key();
        let prune = log
            .get_meta(PRUNE_RECORD)?
            .map(|bytes| super::export::parse_prune_record(&bytes))
            .transpose()?
            .filter(|p| {
                keyhold_crypto::signing::verify_signature(
                    &public_key,
                    p.document.as_bytes(),
                    &p.signature,
                )
            });
        if let Some(anchor) = anchor.as_mut() {
            check_anchor(anchor.as_mut(), &mut log, tail_seq, prune.as_ref())?;
        }
        // A trail whose every event is sealed by a digest continues in a new segment, so
        // that retention can drop what came before it as a whole.
        if tail_seq > 0 && digest_last_event == tail_seq {
            log.rotate()
                .context("starting a new segment of the audit trail")?;
        }
        // Syncs into room made ahead commit no journal (docs/audit.md): room up to
        // the size at which a segment closes, and a little more for the digest after it.
        let room = match (config.direct_appends, config.room_ahead) {
            (true, or_buffered) => Some(RoomAhead::Direct { or_buffered }),
            (false, true) => Some(RoomAhead::Buffered),
            (false, false) => None,
        };
        if let Some(room) = room {
            let limit = config
                .segment_bytes
                .saturating_add(config.segment_bytes / 16);
            log.make_room_ahead(limit, room)
                .context("making room in the audit trail's newest segment")?;
        }
        let (syncer, jobs) = sync_channel::<SyncJob>(1);
        let (done, synced) = sync_channel(1);
        let cached = Arc::new(Cached::default());
        let sync_cached = cached.clone();
        let sync_index = index.clone();
        let sync_durability = durability.clone();
        std::thread::Builder::new()
            .name("keyhold-audit-sync".into())
            .spawn(move || sync_loop(&jobs, &done, &sync_cached, &sync_index, &sync_durability))
            .context("starting the audit syncer")?;
        Ok(Self {
            log,
            key,
            config,
            health,
            index,
            tail_seq,
            tail_hash,
            digest_seq,
            digest_last_event,
            digest_hash,
            last_digest_at: Instant::now(),
            last_prune_at: None,
            segment_started: Instant::now(),
            last_digest: last.map(|d| Signed {
                document: d.document,
                signature: d.signature,
            }),
            prune,
            anchor,
            unwritten: Vec::new(),
            inflight: None,
            syncer,
            synced,
            cached,
            durability,
            retry_at: None,
            backoff: RETRY_FIRST,
        })
    }

    fn run(&mut self, queue: &Queue) {
        // However the writer ends (even by a panic), tickets it will never resolve are
        // failed, so no request waits forever.
        struct CloseOnExit(Arc<Durability>);
        impl Drop for CloseOnExit {
            fn drop(&mut self) {
                self.0.close();
            }
        }
        let _close = CloseOnExit(self.durability.clone());
        // What each `take` moves out of the queue (its capacity goes back and forth).
        let mut taken = VecDeque::new();
        loop {
            // A batch is formed when the disk is free, not while it syncs the one before:
            // an event that arrives during a sync then goes into the very next sync (it
            // waits 1.5 syncs on average) instead of into a batch written at once but
            // synced only after the next one (2.5 syncs). Only a batch big enough that
            // linking and appending it takes a while is written while the disk works.
            if self.inflight.is_some() && queue.queued() < PIPELINE_MIN {
                self.settle();
            }
            // While a batch is being synced, look for more work only briefly: the next batch
            // is linked and appended while the disk works, and an idle writer settles the
            // batch in flight. While failing, wake up for the next retry: the writer
            // recovers by itself, not only when a call comes (calls are refused meanwhile).
            let wait = if self.inflight.is_some() {
                Duration::from_micros(200)
            } else {
                self.retry_at.map_or(Duration::from_millis(500), |at| {
                    at.saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(500))
                })
            };
            match queue.take(wait, &mut taken) {
                Next::Items => {
                    let mut batch = Vec::with_capacity(taken.len());
                    let mut seals = Vec::new();
                    for item in taken.drain(..) {
                        match item {
                            Msg::Event(pending, ticket) => batch.push((pending, ticket)),
                            Msg::Seal(done) => seals.push(done),
                        }
                    }
                    if !batch.is_empty() {
                        self.write(batch);
                    }
                    if !seals.is_empty() {
                        self.digest_now();
                        for done in seals {
                            let _ = done.send(());
                        }
                    }
                    // Under steady load the queue is never idle: retention runs here too.
                    self.prune();
                }
                Next::Timeout if self.inflight.is_some() => {
                    self.settle();
                }
                Next::Timeout if self.retry_at.is_some() => {
                    if self.retry_at.is_some_and(|at| Instant::now() >= at) {
                        self.retry();
                    }
                }
                Next::Timeout => {
                    if self.tail_seq > self.digest_last_event
                        && self.last_digest_at.elapsed() >= self.config.digest_interval
                    {
                        self.digest_now();
                    }
                    self.prune();
                }
                Next::Closed => {
                    self.settle();
                    if !self.unwritten.is_empty() {
                        self.write(Vec::new());
                    }
                    self.digest_now();
                    self.index.close();
                    return;
                }
            }
        }
    }

    /// Links and appends a batch (after any events still unwritten from a failed attempt),
    /// hands it to the syncer, and settles the batch before it; with a digest when one is
    /// due (then the batch is settled at once, its digest appended, and a full segment
    /// rotated).
    fn write(&mut self, batch: Batch) {
        let mut rows = std::mem::take(&mut self.unwritten);
        rows.reserve(batch.len());
        let through = batch.last().map(|(_, ticket)| *ticket);
        let (mut seq, mut prev) = match rows.last() {
            Some(r) => (r.seq, r.hash),
            None => self.log.tail().unwrap_or((0, GENESIS)),
        };
        for (pending, _) in batch {
            seq += 1;
            let Pending {
                text,
                account,
                recipient_account,
                region,
                event_id,
                time_ms,
                event_name,
                event_source,
                read_only,
                username,
                access_key_id,
                resources,
            } = *pending;
            let (text, hash) = chain::link_owned(text, seq, &prev);
            rows.push(AuditRow {
                seq,
                event_id,
                account,
                recipient_account,
                region,
                time_ms,
                event_name,
                event_source,
                read_only,
                username,
                access_key_id,
                resources,
                record: text,
                hash,
            });
            prev = hash;
        }
        if rows.is_empty() {
            return;
        }
        let start_len = self.log.active_len();
        let prev_tail = self.log.tail();
        let writing = Instant::now();
        let written = if self
            .config
            .fail_writes
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
        {
            Err(anyhow::anyhow!("injected write failure"))
        } else {
            self.log.write_events(&rows).map_err(anyhow::Error::new)
        };
        let appended = match written {
            Ok(appended) => appended,
            Err(e) => {
                let _ = self.log.rewind(start_len, prev_tail);
                return self.write_failed(&e, rows, through);
            }
        };
        let written_in = writing.elapsed();
        // The batch before this one must be durable before this one can count.
        if !self.settle() {
            // That batch failed, and the segment was cut back to before it (this batch
            // went with it): retry both, in order. (The syncer resolved that batch's
            // tickets; this one's follow.)
            self.unwritten.extend(rows);
            if let Some(through) = through {
                self.durability.resolve(through, false);
            }
            return;
        }
        let full = self.segment_full();
        // Due by count, or by time (a trail that is never idle is still sealed as often as
        // `digest_interval` says), or because the segment is full and closes at a digest.
        let due = seq - self.digest_last_event >= self.config.digest_every_events
            || self.last_digest_at.elapsed() >= self.config.digest_interval
            || full;
        let digest = due.then(|| self.make_digest(seq, &prev));
        let has_digest = digest.is_some();
        let events_in_batch = rows.len();
        self.inflight = Some(Inflight {
            start_len,
            prev_tail,
            events: rows.len(),
            last: (seq, prev),
            digest,
        });
        let job = SyncJob {
            file: appended.file,
            written_in,
            rows,
            segment: appended.segment,
            offsets: appended.offsets,
            end: appended.end,
            through,
        };
        if events_in_batch < PIPELINE_MIN {
            // A small batch is synced here: the next one waits for this sync anyway (see
            // `run`), and handing it to the syncer and back would cost two wake-ups.
            let outcome = sync_job(job, &self.cached, &self.index, &self.durability);
            self.settle_with(Some(outcome));
            return;
        }
        if let Err(std::sync::mpsc::SendError(job)) = self.syncer.send(job) {
            // No syncer: nothing can be made durable.
            self.inflight = None;
            let _ = self.log.rewind(start_len, prev_tail);
            self.failed("the audit syncer stopped".into());
            self.unwritten = job.rows;
            if let Some(through) = through {
                self.durability.resolve(through, false);
            }
            return;
        }
        if has_digest {
            self.settle();
        }
    }

    /// An append failed: the calls waiting on these events are answered now (refused),
    /// once the batch before is settled (tickets resolve in order); their events stay
    /// queued for the retry (a call refused after it ran may have taken effect, and its
    /// event is still worth recording).
    fn write_failed(&mut self, e: &anyhow::Error, rows: Vec<AuditRow>, through: Option<u64>) {
        tracing::error!(error = %format!("{e:#}"), events = rows.len(), "the audit trail cannot be written: refusing calls until it can; retrying");
        // The batch in flight goes first: if it fails too, its events come back before
        // these.
        self.settle();
        self.failed(format!("the audit trail cannot be written: {e:#}"));
        self.unwritten.extend(rows);
        if let Some(through) = through {
            self.durability.resolve(through, false);
        }
    }

    /// Waits for the batch in flight (if any) to be durable; then appends its digest and
    /// rotates a full segment. `false` when it could not be made durable: the segment is
    /// cut back to before it and its events wait in `unwritten`.
    fn settle(&mut self) -> bool {
        self.settle_with(None)
    }

    /// [`Writer::settle`], with the batch's outcome when it was synced here (`None`: the
    /// syncer's, waited for).
    fn settle_with(&mut self, outcome: Option<Synced>) -> bool {
        let Some(inflight) = self.inflight.take() else {
            return true;
        };
        let Some(outcome) = outcome.or_else(|| self.synced.recv().ok()) else {
            // The batch is in the segment, but nothing will make it durable now.
            tracing::error!("the audit syncer stopped: refusing calls");
            self.failed("the audit syncer stopped".into());
            return false;
        };
        let elapsed = match outcome {
            Synced::Durable(elapsed) => elapsed,
            Synced::Failed(reason, mut rows) => {
                tracing::error!(error = %reason, events = inflight.events, "the audit trail cannot be synced: refusing calls until it can; retrying");
                if let Err(e) = self.log.rewind(inflight.start_len, inflight.prev_tail) {
                    tracing::error!(error = %e, "the audit trail cannot cut back a failed append");
                }
                self.failed(format!("the audit trail cannot be written: {reason}"));
                rows.append(&mut self.unwritten);
                self.unwritten = rows;
                return false;
            }
        };
        if let Some(observe) = self.health.observer.get() {
            observe(inflight.events, elapsed);
        }
        (self.tail_seq, self.tail_hash) = inflight.last;
        self.recovered();
        if let Some((row, hash)) = inflight.digest {
            self.append_digest(row, hash);
        }
        true
    }

    /// Appends a digest over durable events, anchors it, and rotates a full segment.
    fn append_digest(&mut self, row: DigestRow, hash: String) {
        if let Err(e) = self.log.append_digest(&row) {
            tracing::error!(error = %e, "the audit trail cannot write a digest; retrying");
            self.failed(format!("the audit trail cannot write a digest: {e}"));
            return;
        }
        self.digest_written(row, hash);
        self.recovered();
        if self.segment_full() {
            match self.log.rotate() {
                Ok(()) => self.segment_started = Instant::now(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start a new audit segment; appending to the current one");
                }
            }
        }
    }

    /// Whether the segment being appended to has reached its size or age limit (it is
    /// closed at the next digest).
    fn segment_full(&self) -> bool {
        self.log.active_len() >= self.config.segment_bytes
            || self.segment_started.elapsed() >= self.config.segment_age
    }

    /// Tries the failed write again (or the failed digest, if no event is pending).
    fn retry(&mut self) {
        if self.unwritten.is_empty() {
            self.digest_now();
        } else {
            self.write(Vec::new());
        }
    }

    /// A write failed: calls are refused until one succeeds; retry with backoff.
    fn failed(&mut self, reason: String) {
        self.health.set(Some(reason));
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(RETRY_MAX);
    }

    /// A write succeeded: calls are admitted again.
    fn recovered(&mut self) {
        if self.retry_at.take().is_some() {
            tracing::info!("the audit trail can be written again: admitting calls");
        }
        self.backoff = RETRY_FIRST;
        self.health.set(None);
    }

    fn make_digest(&self, last_seq: i64, last_hash: &[u8; 32]) -> (DigestRow, String) {
        let document = DigestDocument {
            digest_sequence: self.digest_seq + 1,
            first_event_sequence: self.digest_last_event + 1,
            last_event_sequence: last_seq,
            last_event_hash: hex::encode(last_hash),
            previous_digest_hash: self.digest_hash.clone(),
            digest_time: Timestamp::now().to_iso8601_seconds(),
            public_key_fingerprint: chain::fingerprint(&self.key.public_key()),
        };
        let text = document.to_text();
        let signature = self.key.sign(text.as_bytes());
        let hash = chain::digest_hash(&text);
        let row = DigestRow {
            seq: document.digest_sequence,
            first_seq: document.first_event_sequence,
            last_seq,
            time_ms: Timestamp::now().as_millis(),
            document: text,
            signature,
        };
        (row, hash)
    }

    fn digest_written(&mut self, row: DigestRow, hash: String) {
        self.digest_seq = row.seq;
        self.digest_last_event = row.last_seq;
        self.digest_hash = Some(hash);
        self.last_digest_at = Instant::now();
        let signed = Signed {
            document: row.document,
            signature: row.signature,
        };
        if let Some(dir) = &self.config.digest_dir
            && let Err(e) = anchor::write_digest_file(dir, &signed, &self.key.public_key())
        {
            tracing::warn!(error = %format!("{e:#}"), "cannot write the audit digest file");
        }
        self.last_digest = Some(signed);
        self.write_anchor();
    }

    /// Records the latest digest and prune record in the key store's database. A failure
    /// is logged and repaired by the next digest: the anchor only ever lags the trail.
    fn write_anchor(&mut self) {
        let (Some(store), Some(digest)) = (self.anchor.as_mut(), &self.last_digest) else {
            return;
        };
        let anchor = Anchor {
            digest: digest.clone(),
            prune: self.prune.clone(),
        };
        if let Err(e) = store.store(&anchor.to_bytes()) {
            tracing::warn!(error = %e, "cannot anchor the audit trail in the key store");
        }
    }

    /// Seals every event not yet covered by a digest.
    fn digest_now(&mut self) {
        if !self.unwritten.is_empty() {
            // Events waiting for a retry go first; a digest never skips them.
            self.write(Vec::new());
        }
        if !self.settle() || !self.unwritten.is_empty() {
            return;
        }
        if self.tail_seq <= self.digest_last_event {
            return;
        }
        let (row, hash) = self.make_digest(self.tail_seq, &self.tail_hash);
        self.append_digest(row, hash);
    }

    /// Drops whole digest periods older than the retention period (hourly).
    fn prune(&mut self) {
        let Some(retention) = self.config.retention else {
            return;
        };
        if self.retry_at.is_some() {
            return; // not while the trail cannot be written
        }
        if self
            .last_prune_at
            .is_some_and(|t| t.elapsed() < Duration::from_secs(3600))
        {
            return;
        }
        self.last_prune_at = Some(Instant::now());
        if !self.settle() {
            return;
        }
        let cutoff =
            Timestamp::now().as_millis() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let digests = match self.log.digests() {
            Ok(d) => d,
            Err(e) => return tracing::warn!(error = %e, "audit retention: cannot list digests"),
        };
        // Keep from the first digest that is not entirely older than the cutoff, moved back
        // to the start of its segment: whole segments go.
        let Some(keep) = digests.iter().position(|d| d.time_ms >= cutoff) else {
            return;
        };
        let starts = self.log.segment_starts();
        let Some(keep) = (0..=keep)
            .rev()
            .find(|&i| starts.contains(&digests[i].first_seq))
        else {
            return;
        };
        let Some(last_pruned) = keep.checked_sub(1).map(|i| &digests[i]) else {
            return; // nothing before it
        };
        let Some(last_event_hash) =
            DigestDocument::parse(&last_pruned.document).map(|d| d.last_event_hash)
        else {
            return tracing::warn!("audit retention: a digest is unreadable; not pruning");
        };
        let record = PruneDocument {
            pruned_through_event_sequence: last_pruned.last_seq,
            last_pruned_event_hash: last_event_hash,
            pruned_through_digest_sequence: last_pruned.seq,
            last_pruned_digest_hash: chain::digest_hash(&last_pruned.document),
            prune_time: Timestamp::now().to_iso8601_seconds(),
            public_key_fingerprint: chain::fingerprint(&self.key.public_key()),
        };
        let text = record.to_text();
        let signed = Signed {
            signature: self.key.sign(text.as_bytes()),
            document: text,
        };
        let stored = super::export::prune_record_json(&signed);
        match self.log.prune_before_digest(digests[keep].seq, &stored) {
            Ok(()) => {
                tracing::info!(
                    through_event = record.pruned_through_event_sequence,
                    "audit retention pruned the trail's head"
                );
                self.index.pruned(record.pruned_through_event_sequence);
                self.prune = Some(signed);
                self.write_anchor();
            }
            Err(e) => tracing::warn!(error = %e, "audit retention: pruning failed"),
        }
    }
}

/// Refuses to continue a trail that ends before its anchor (events removed from its end, or
/// the trail put back from an older copy), or that has digests but no anchor (the anchor
/// was removed). A digest the anchor names that retention pruned is fine.
fn check_anchor(
    store: &mut dyn AuditAnchor,
    log: &mut dyn AuditLog,
    tail_seq: i64,
    prune: Option<&Signed>,
) -> anyhow::Result<()> {
    const RECOVERY: &str = "Keyhold does not continue a truncated audit trail. Restore the trail (<data-dir>/audit/) from a copy that reaches the anchor, or preserve it for investigation and accept the loss with `keyhold audit reanchor --data-dir DIR` (docs/audit.md, \"Recovery\")";
    let last_digest = log.last_digest()?;
    let Some(bytes) = store.load()? else {
        return match last_digest {
            None => Ok(()),
            Some(d) => anyhow::bail!(
                "the audit trail has digests (up to digest {}) but the key store holds no anchor for it: the anchor was removed, so a truncated tail cannot be ruled out. {RECOVERY}",
                d.seq
            ),
        };
    };
    let anchor = Anchor::parse(&bytes)?;
    let doc = anchor
        .digest_document()
        .context("the key store's audit anchor holds no readable digest")?;
    let pruned_through = prune
        .and_then(|p| PruneDocument::parse(&p.document))
        .map_or(0, |p| p.pruned_through_digest_sequence);
    if doc.digest_sequence <= pruned_through {
        return Ok(());
    }
    let (trail_digest, trail_events) = last_digest.map_or((0, 0), |d| (d.seq, d.last_seq));
    let truncated = || {
        anyhow::anyhow!(
            "the audit trail ends at event {tail_seq} (digest {trail_digest} over events up to {trail_events}) but the key store's anchor records digest {} over events up to {}: events were removed from the end of the trail, or the trail was restored from an older copy. {RECOVERY}",
            doc.digest_sequence,
            doc.last_event_sequence
        )
    };
    match log.digest(doc.digest_sequence)? {
        None => return Err(truncated()),
        Some(held) if held.document != anchor.digest.document => anyhow::bail!(
            "the audit trail's digest {} is not the one the key store's anchor records: the trail was replaced. {RECOVERY}",
            doc.digest_sequence
        ),
        Some(_) if tail_seq < doc.last_event_sequence => return Err(truncated()),
        Some(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(n: usize) -> Batch {
        (0..n)
            .map(|i| {
                let pending = Pending {
                    text: "{}".into(),
                    account: "000000000000".into(),
                    recipient_account: "000000000000".into(),
                    region: "us-east-1".into(),
                    event_id: format!("event-{i}"),
                    time_ms: 0,
                    event_name: "ListKeys".into(),
                    event_source: "kms.amazonaws.com".into(),
                    read_only: true,
                    username: None,
                    access_key_id: None,
                    resources: Vec::new(),
                };
                (Box::new(pending), 0)
            })
            .collect()
    }

    fn writer(dir: &std::path::Path, config: TrailConfig) -> Writer {
        let log = SegmentLog::open(dir, Mode::Write).unwrap();
        let index = Index::start(dir, 0).unwrap();
        let (key, _) = SigningKey::generate().unwrap();
        Writer::new(
            log,
            key,
            config,
            Arc::default(),
            None,
            index,
            Arc::default(),
        )
        .unwrap()
    }

    #[test]
    fn a_trail_that_is_never_idle_is_still_digested_on_time() {
        let dir = tempfile::tempdir().unwrap();
        let config = TrailConfig {
            digest_every_events: i64::MAX,
            digest_interval: Duration::ZERO,
            ..TrailConfig::default()
        };
        let mut writer = writer(dir.path(), config);
        // Back-to-back batches: the writer never waits long enough to time out.
        writer.write(events(3));
        writer.write(events(2));
        writer.settle();
        let digests = writer.log.digests().unwrap();
        let covered: Vec<(i64, i64)> = digests.iter().map(|d| (d.first_seq, d.last_seq)).collect();
        assert_eq!(covered, [(1, 3), (4, 5)]);
    }

    #[test]
    fn full_segments_close_at_a_digest_and_the_next_starts_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = TrailConfig {
            digest_every_events: i64::MAX,
            digest_interval: Duration::from_secs(3600),
            segment_bytes: 1,
            ..TrailConfig::default()
        };
        let mut writer = writer(dir.path(), config);
        writer.write(events(3));
        writer.write(events(2));
        writer.settle();
        assert_eq!(writer.log.segment_starts(), [1, 4, 6]);
        let covered: Vec<(i64, i64)> = writer
            .log
            .digests()
            .unwrap()
            .iter()
            .map(|d| (d.first_seq, d.last_seq))
            .collect();
        assert_eq!(covered, [(1, 3), (4, 5)]);
    }

    #[test]
    fn small_batches_are_synced_by_the_writer_and_large_ones_by_the_syncer_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let config = TrailConfig {
            digest_every_events: i64::MAX,
            digest_interval: Duration::from_secs(3600),
            ..TrailConfig::default()
        };
        let mut writer = writer(dir.path(), config);
        writer.write(events(2));
        assert!(
            writer.inflight.is_none(),
            "a small batch is settled when written"
        );
        writer.write(events(PIPELINE_MIN));
        assert!(
            writer.inflight.is_some(),
            "a large one is in the syncer's hands"
        );
        writer.write(events(PIPELINE_MIN + 1));
        writer.write(events(3));
        assert!(writer.inflight.is_none());
        writer.digest_now();
        let seqs: Vec<i64> = writer
            .log
            .events_after(0, 10_000)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        let total = i64::try_from(2 * PIPELINE_MIN + 6).unwrap();
        assert_eq!(seqs, (1..=total).collect::<Vec<_>>());
        assert_eq!(writer.log.last_digest().unwrap().unwrap().last_seq, total);
    }

    #[test]
    fn a_failed_append_is_retried_in_order_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let fail = Arc::new(AtomicBool::new(false));
        let config = TrailConfig {
            fail_writes: Some(fail.clone()),
            digest_interval: Duration::from_secs(3600),
            ..TrailConfig::default()
        };
        let mut writer = writer(dir.path(), config);
        writer.write(events(2));
        fail.store(true, Ordering::Relaxed);
        writer.write(events(3));
        assert!(writer.health.error().is_some());
        fail.store(false, Ordering::Relaxed);
        writer.retry();
        writer.digest_now();
        assert!(writer.health.error().is_none());
        let seqs: Vec<i64> = writer
            .log
            .events_after(0, 100)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
        assert_eq!(writer.log.last_digest().unwrap().unwrap().last_seq, 5);
    }
}
