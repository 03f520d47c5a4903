//! The trail's lookup index, for `LookupEvents` and `GetKeyLastUsage`: where each event's
//! record is in the segment log, and the columns lookups filter on, in SQLite
//! ([`SqliteAuditIndex`], `audit/index.db`).
//!
//! The writer only appends to the segments. Once a batch is durable, the syncer hands its
//! index entries to the indexer in memory ([`Index::durable`]): no event is read back from
//! disk in steady state. The indexer adds whatever is waiting in one transaction that does
//! not wait for the disk. The memory it uses is bounded ([`PENDING_MAX`] entries): when
//! lookups' indexer falls further behind (it runs at nice 10, so under load it yields to
//! requests), new entries are not kept, and the indexer reads those events from the
//! segments once it gets to them — as it does at start for whatever the index lacks.
//!
//! The indexer gathers: woken by the first durable batch after a quiet spell, it waits
//! [`LINGER`] for more (less when [`LINGER_EVENTS`] are waiting, a lookup is waiting, or
//! the index is closing) and adds them in one transaction. Under load that is one
//! transaction and one wake-up per `LINGER` instead of one per group commit: a commit of
//! the index costs about as much as a thousand rows.
//!
//! The index is derived: `keyhold audit reindex` (or an index that does not open, is ahead
//! of the log or does not match it at start) rebuilds it from the segments. It lags the log
//! by the time the indexer needs to catch up ([`LINGER`] and one transaction when the
//! machine keeps up; [`LAG_BOUND`] at most is waited for), and a lookup first wakes the
//! indexer and waits until every event durable when it started is indexed, so a caller
//! sees its own earlier calls. Lookups read the records from the segments by their
//! location.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use keyhold_store::audit::{AuditQuery, AuditRow, IndexEntry};
use keyhold_store::segment::{EventReader, Mode, SegmentLog};
use keyhold_store::{SqliteAuditIndex, StoreError};

/// The longest a lookup waits for the index to catch up before it answers from what is
/// indexed.
pub const LAG_BOUND: Duration = Duration::from_secs(2);

/// Events indexed per transaction at most.
const PAGE: usize = 8192;

/// Entries waiting in memory at most; beyond, the indexer reads events from the segments.
pub const PENDING_MAX: usize = 65_536;

/// How long the indexer waits for more events before it indexes what it has.
pub const LINGER: Duration = Duration::from_millis(50);

/// Events that end the indexer's wait at once.
const LINGER_EVENTS: i64 = 4096;

#[derive(Default)]
struct Progress {
    /// The newest event known durable in the log.
    durable: i64,
    /// The newest event in the index.
    indexed: i64,
    /// Entries of durable events, in sequence order, contiguous; the first may come after
    /// `indexed + 1` (the events between are read from the segments).
    pending: VecDeque<IndexEntry>,
    /// Events up to here were pruned: drop them from the index.
    pruned_through: i64,
    closed: bool,
    /// Lookups waiting for the index to catch up: the indexer does not linger for them.
    lookups_waiting: usize,
}

impl Progress {
    /// Whether the indexer should stop waiting for more and index now.
    fn urgent(&self) -> bool {
        self.closed
            || self.pruned_through > 0
            || self.lookups_waiting > 0
            || self.durable - self.indexed >= LINGER_EVENTS
    }
}

/// The index and the indexer's progress, shared by the syncer, the indexer and lookups.
pub struct Index {
    dir: PathBuf,
    db: Mutex<SqliteAuditIndex>,
    progress: Mutex<Progress>,
    /// The indexer waits on this for work.
    work: Condvar,
    /// Lookups wait on this for the indexer's progress.
    changed: Condvar,
}

impl Index {
    /// Opens the index of the log in `dir` (rebuilding it when it does not open, is ahead of
    /// the log or does not match it) and starts its indexer thread, which follows the log
    /// from its tail.
    pub fn start(dir: &Path, log_tail: i64) -> anyhow::Result<Arc<Self>> {
        let path = dir.join("index.db");
        crate::data_dir::create_private_file(&path)?;
        let mut db = match SqliteAuditIndex::open(&path) {
            Ok(db) => db,
            Err(e) => {
                if matches!(e, StoreError::OtherLayout(_)) {
                    tracing::info!(
                        "the audit index has the layout of another version; rebuilding it from the segments"
                    );
                } else {
                    tracing::warn!(error = %e, "the audit index does not open; rebuilding it from the segments");
                }
                remove_index(&path)?;
                crate::data_dir::create_private_file(&path)?;
                SqliteAuditIndex::open(&path)?
            }
        };
        let mut indexed = db.indexed_through()?;
        if indexed > log_tail || !matches_log(&mut db, dir, indexed)? {
            tracing::warn!(
                indexed,
                log_tail,
                "the audit index does not match the log; rebuilding it"
            );
            drop(db);
            remove_index(&path)?;
            crate::data_dir::create_private_file(&path)?;
            db = SqliteAuditIndex::open(&path)?;
            indexed = 0;
        }
        let index = Arc::new(Self {
            dir: dir.to_owned(),
            db: Mutex::new(db),
            progress: Mutex::new(Progress {
                durable: log_tail,
                indexed,
                ..Progress::default()
            }),
            work: Condvar::new(),
            changed: Condvar::new(),
        });
        let log = SegmentLog::open(dir, Mode::Read).context("opening the audit log to index it")?;
        let worker = Arc::downgrade(&index);
        std::thread::Builder::new()
            .name("keyhold-audit-index".into())
            .spawn(move || run(&worker, log))
            .context("starting the audit indexer")?;
        Ok(index)
    }

    /// Tells the indexer that the events of `entries` (in sequence order, the newest
    /// durable events) are durable, handing it their entries.
    pub fn durable(&self, entries: Vec<IndexEntry>) {
        let Some(last) = entries.last().map(|e| e.seq) else {
            return;
        };
        if let Ok(mut p) = self.progress.lock() {
            let was_idle = p.indexed >= p.durable;
            let was_urgent = p.urgent();
            p.durable = p.durable.max(last);
            // Wake the indexer for the first events after a quiet spell (it then lingers
            // for more) and when enough are waiting; not for every batch.
            if was_idle || (!was_urgent && p.urgent()) {
                self.work.notify_one();
            }
            let follows = match p.pending.back() {
                Some(back) => entries.first().is_some_and(|e| e.seq == back.seq + 1),
                None => true,
            };
            // Beyond the bound, or after a gap, the indexer reads these from the segments.
            if follows && p.pending.len() + entries.len() <= PENDING_MAX {
                p.pending.extend(entries);
            }
        }
    }

    /// The newest event known durable in the log (what the shared index's publisher may
    /// publish, [`super::shared`]).
    pub fn durable_through(&self) -> i64 {
        self.progress.lock().map_or(0, |p| p.durable)
    }

    /// Tells the indexer that events up to `seq` were pruned from the log.
    pub fn pruned(&self, seq: i64) {
        if let Ok(mut p) = self.progress.lock() {
            p.pruned_through = p.pruned_through.max(seq);
        }
        self.work.notify_one();
    }

    /// Stops the indexer (it finishes the page it is on).
    pub fn close(&self) {
        if let Ok(mut p) = self.progress.lock() {
            p.closed = true;
        }
        self.work.notify_one();
        self.changed.notify_all();
    }

    /// Waits (blocking, at most [`LAG_BOUND`]) until every event durable now is indexed.
    pub fn catch_up(&self) {
        let deadline = Instant::now() + LAG_BOUND;
        let Ok(mut p) = self.progress.lock() else {
            return;
        };
        let target = p.durable;
        if p.indexed >= target {
            return;
        }
        p.lookups_waiting += 1;
        self.work.notify_one();
        while p.indexed < target && !p.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(
                    indexed = p.indexed,
                    target,
                    "the audit index is behind; answering a lookup from what it holds"
                );
                break;
            }
            p = match self.changed.wait_timeout(p, left) {
                Ok((p, _)) => p,
                Err(_) => return,
            };
        }
        p.lookups_waiting -= 1;
    }

    /// Looks events up (blocking): after [`Index::catch_up`], newest first, each read from
    /// its segment. An event whose segment retention removed meanwhile is left out.
    pub fn lookup(&self, query: &AuditQuery) -> keyhold_store::Result<Vec<AuditRow>> {
        self.catch_up();
        let hits = self
            .db
            .lock()
            .map_err(|_| StoreError::Corrupt("the audit index lock is poisoned"))?
            .lookup(query)?;
        let mut reader = EventReader::new(&self.dir);
        let mut rows = Vec::with_capacity(hits.len());
        for hit in hits {
            let Some(row) = reader.read(hit.location)? else {
                continue;
            };
            if row.seq != hit.seq {
                return Err(StoreError::Corrupt(
                    "the audit index does not match the log (rebuild it with `keyhold audit reindex`)",
                ));
            }
            rows.push(row);
        }
        Ok(rows)
    }
}

/// Whether the index's oldest and newest entries point at those events in the log (a trail
/// put back from a copy, or rewritten, leaves an index that points elsewhere).
fn matches_log(db: &mut SqliteAuditIndex, dir: &Path, indexed: i64) -> anyhow::Result<bool> {
    if indexed == 0 {
        return Ok(true);
    }
    let mut reader = EventReader::new(dir);
    for seq in [db.indexed_from()?, indexed] {
        let Some(location) = db.location(seq)? else {
            return Ok(false);
        };
        match reader.read(location) {
            Ok(Some(row)) if row.seq == seq => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

fn remove_index(path: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let p = PathBuf::from(p);
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    Ok(())
}

/// What the indexer does next.
enum Work {
    /// Add these entries (handed over in memory).
    Add(Vec<IndexEntry>),
    /// Read events after `from`, up to `to`, from the segments and add them.
    Read { from: i64, to: i64 },
}

/// The indexer: waits for durable events the index lacks, adds them (from memory, or read
/// from the log); ends when the index is closed or dropped.
fn run(index: &std::sync::Weak<Index>, mut log: SegmentLog) {
    lower_priority();
    loop {
        let Some(index) = index.upgrade() else {
            return;
        };
        let (work, prune) = {
            let Ok(mut p) = index.progress.lock() else {
                return;
            };
            // Wait for work (and let go of the index, so that dropping it ends this
            // thread), then for more of it, unless it is urgent.
            if p.indexed >= p.durable && !p.urgent() {
                p = match index.work.wait_timeout(p, Duration::from_secs(1)) {
                    Ok((p, _)) => p,
                    Err(_) => return,
                };
            }
            if p.indexed < p.durable && !p.urgent() {
                p = match index.work.wait_timeout(p, LINGER) {
                    Ok((p, _)) => p,
                    Err(_) => return,
                };
            }
            if p.closed {
                return;
            }
            let prune = std::mem::take(&mut p.pruned_through);
            (next_work(&mut p), prune)
        };
        if prune > 0 {
            if let Ok(mut db) = index.db.lock()
                && let Err(e) = db.forget_through(prune)
            {
                tracing::warn!(error = %e, "the audit index could not drop pruned events");
            }
            let _ = log.refresh();
        }
        let result = match work {
            None => continue,
            Some(Work::Add(entries)) => {
                add(&index, &entries).map(|()| entries.last().map(|e| e.seq))
            }
            Some(Work::Read { from, to }) => read_and_add(&index, &mut log, from, to),
        };
        match result {
            Ok(Some(last)) => {
                if let Ok(mut p) = index.progress.lock() {
                    p.indexed = p.indexed.max(last);
                }
                index.changed.notify_all();
            }
            Ok(None) => {
                // Not visible yet to this reader (a new segment): look again.
                if let Err(e) = log.refresh() {
                    tracing::warn!(error = %e, "the audit indexer cannot re-read the log");
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) if !log.dir().exists() => return, // the data directory went away
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "the audit indexer failed; retrying");
                std::thread::sleep(Duration::from_millis(500));
                let _ = log.refresh();
            }
        }
    }
}

/// The next page to index: the entries waiting in memory when they follow the index,
/// else the events up to them (or up to the durable tail) read from the log.
fn next_work(p: &mut Progress) -> Option<Work> {
    while p.pending.front().is_some_and(|e| e.seq <= p.indexed) {
        p.pending.pop_front();
    }
    match p.pending.front().map(|e| e.seq) {
        Some(first) if first == p.indexed + 1 => {
            let n = p.pending.len().min(PAGE);
            Some(Work::Add(p.pending.drain(..n).collect()))
        }
        Some(first) => Some(Work::Read {
            from: p.indexed,
            to: first - 1,
        }),
        None if p.durable > p.indexed => Some(Work::Read {
            from: p.indexed,
            to: p.durable,
        }),
        None => None,
    }
}

/// The index is derived and may lag: its thread yields the CPU to requests (nice 10) when
/// the machine is busy, and catches up when it is not.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 10) {
        tracing::debug!(error = %e, "cannot lower the audit indexer's priority");
    }
}

fn add(index: &Index, entries: &[IndexEntry]) -> anyhow::Result<()> {
    let mut db = index
        .db
        .lock()
        .map_err(|_| anyhow::anyhow!("the audit index lock is poisoned"))?;
    db.add(entries)?;
    Ok(())
}

/// Reads up to [`PAGE`] events after `from` (not beyond `to`) from the log and indexes
/// them; the newest indexed.
fn read_and_add(
    index: &Index,
    log: &mut SegmentLog,
    from: i64,
    to: i64,
) -> anyhow::Result<Option<i64>> {
    let entries = read_entries(log, from, to, PAGE)?;
    let Some(last) = entries.last().map(|e| e.seq) else {
        return Ok(None);
    };
    add(index, &entries)?;
    Ok(Some(last))
}

/// The entries of up to `limit` events after `from`, not beyond `to`, read from the log.
fn read_entries(
    log: &mut SegmentLog,
    from: i64,
    to: i64,
    limit: usize,
) -> anyhow::Result<Vec<IndexEntry>> {
    let mut entries =
        Vec::with_capacity(limit.min(usize::try_from(to.saturating_sub(from)).unwrap_or(limit)));
    log.scan_without_records(from + 1, |row, location| {
        if row.seq > to {
            return false;
        }
        entries.push(IndexEntry::new(row, location));
        entries.len() < limit
    })?;
    Ok(entries)
}

/// Rebuilds the index of the trail in `dir` from its segments (`keyhold audit reindex`,
/// server stopped); returns how many events it indexed.
pub fn rebuild(dir: &Path) -> anyhow::Result<usize> {
    let path = dir.join("index.db");
    remove_index(&path)?;
    crate::data_dir::create_private_file(&path)?;
    let mut db = SqliteAuditIndex::open(&path)?;
    let mut log = SegmentLog::open(dir, Mode::Read)
        .with_context(|| format!("opening the audit log in {}", dir.display()))?;
    let mut total = 0;
    let mut after = 0;
    loop {
        let entries = read_entries(&mut log, after, i64::MAX, PAGE)?;
        let Some(last) = entries.last().map(|e| e.seq) else {
            return Ok(total);
        };
        db.add(&entries)?;
        total += entries.len();
        after = last;
    }
}
