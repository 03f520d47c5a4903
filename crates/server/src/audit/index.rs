//! The trail's index: the segment log's events again, in SQLite, for `LookupEvents` and
//! `GetKeyLastUsage`.
//!
//! The writer only appends to the segments; an indexer thread follows it, reading the
//! events that are durable and adding them to `audit/index.db` in large transactions that
//! do not wait for the disk. The index is derived: `keyhold audit reindex` (or a damaged
//! index at start) rebuilds it from the segments. It lags the log by the time the indexer
//! needs to catch up (milliseconds when idle; [`LAG_BOUND`] at most is waited for), and a
//! lookup first waits until every event durable when it started is indexed, so a caller
//! sees its own earlier calls.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use keyhold_store::SqliteAuditLog;
use keyhold_store::audit::{AuditQuery, AuditRow};
use keyhold_store::segment::{Mode, SegmentLog};

/// The longest a lookup waits for the index to catch up before it answers from what is
/// indexed.
pub const LAG_BOUND: Duration = Duration::from_secs(2);

/// Events indexed per transaction.
const PAGE: usize = 8192;

#[derive(Default)]
struct Progress {
    /// The newest event known durable in the log.
    durable: i64,
    /// The newest event in the index.
    indexed: i64,
    /// Events up to here were pruned: drop them from the index.
    pruned_through: i64,
    closed: bool,
}

/// The index and the indexer's progress, shared by the writer, the indexer and lookups.
pub struct Index {
    db: Mutex<SqliteAuditLog>,
    progress: Mutex<Progress>,
    changed: Condvar,
}

impl Index {
    /// Opens the index of the log in `dir` (rebuilding it when it is ahead of the log or
    /// does not open) and starts its indexer thread, which follows the log from its tail.
    pub fn start(dir: &Path, log_tail: i64) -> anyhow::Result<Arc<Self>> {
        let path = dir.join("index.db");
        crate::data_dir::create_private_file(&path)?;
        let mut db = match SqliteAuditLog::open_index(&path) {
            Ok(db) => db,
            Err(e) => {
                tracing::warn!(error = %e, "the audit index does not open; rebuilding it from the segments");
                remove_index(&path)?;
                crate::data_dir::create_private_file(&path)?;
                SqliteAuditLog::open_index(&path)?
            }
        };
        let mut indexed = db.indexed_through()?;
        if indexed > log_tail {
            tracing::warn!(
                indexed,
                log_tail,
                "the audit index is ahead of the log; rebuilding it"
            );
            db.forget_through(i64::MAX)?;
            indexed = 0;
        }
        let index = Arc::new(Self {
            db: Mutex::new(db),
            progress: Mutex::new(Progress {
                durable: log_tail,
                indexed,
                ..Progress::default()
            }),
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

    /// Tells the indexer that events up to `seq` are durable.
    pub fn durable(&self, seq: i64) {
        if let Ok(mut p) = self.progress.lock() {
            p.durable = p.durable.max(seq);
        }
        self.changed.notify_all();
    }

    /// Tells the indexer that events up to `seq` were pruned from the log.
    pub fn pruned(&self, seq: i64) {
        if let Ok(mut p) = self.progress.lock() {
            p.pruned_through = p.pruned_through.max(seq);
        }
        self.changed.notify_all();
    }

    /// Stops the indexer (it finishes the page it is on).
    pub fn close(&self) {
        if let Ok(mut p) = self.progress.lock() {
            p.closed = true;
        }
        self.changed.notify_all();
    }

    /// Waits (blocking, at most [`LAG_BOUND`]) until every event durable now is indexed.
    pub fn catch_up(&self) {
        let deadline = Instant::now() + LAG_BOUND;
        let Ok(mut p) = self.progress.lock() else {
            return;
        };
        let target = p.durable;
        while p.indexed < target && !p.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(
                    indexed = p.indexed,
                    target,
                    "the audit index is behind; answering a lookup from what it holds"
                );
                return;
            }
            p = match self.changed.wait_timeout(p, left) {
                Ok((p, _)) => p,
                Err(_) => return,
            };
        }
    }

    /// Looks events up (blocking): after [`Index::catch_up`], newest first.
    pub fn lookup(&self, query: &AuditQuery) -> keyhold_store::Result<Vec<AuditRow>> {
        self.catch_up();
        let mut db = self
            .db
            .lock()
            .map_err(|_| keyhold_store::StoreError::Corrupt("the audit index lock is poisoned"))?;
        db.lookup(query)
    }
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

/// The indexer: waits for durable events the index lacks, reads them from the log, adds
/// them; ends when the index is closed or dropped.
fn run(index: &std::sync::Weak<Index>, mut log: SegmentLog) {
    lower_priority();
    loop {
        let Some(index) = index.upgrade() else {
            return;
        };
        let (from, to, prune) = {
            let Ok(mut p) = index.progress.lock() else {
                return;
            };
            if p.indexed >= p.durable && p.pruned_through == 0 && !p.closed {
                // Wait (and let go of the index, so that dropping it ends this thread).
                p = match index.changed.wait_timeout(p, Duration::from_secs(1)) {
                    Ok((p, _)) => p,
                    Err(_) => return,
                };
            }
            if p.closed {
                return;
            }
            if p.indexed >= p.durable && p.pruned_through == 0 {
                continue;
            }
            let prune = std::mem::take(&mut p.pruned_through);
            (p.indexed, p.durable, prune)
        };
        if prune > 0 {
            if let Ok(mut db) = index.db.lock()
                && let Err(e) = db.forget_through(prune)
            {
                tracing::warn!(error = %e, "the audit index could not drop pruned events");
            }
            let _ = log.refresh();
        }
        if from >= to {
            continue;
        }
        match index_page(&index, &mut log, from, to) {
            Ok(Some(last)) => {
                if let Ok(mut p) = index.progress.lock() {
                    p.indexed = last;
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

/// The index is derived and may lag: its thread yields the CPU to requests (nice 10) when
/// the machine is busy, and catches up when it is not.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 10) {
        tracing::debug!(error = %e, "cannot lower the audit indexer's priority");
    }
}

/// Indexes up to [`PAGE`] events after `from` (not beyond `to`); the newest indexed.
fn index_page(
    index: &Index,
    log: &mut SegmentLog,
    from: i64,
    to: i64,
) -> anyhow::Result<Option<i64>> {
    let mut rows = Vec::with_capacity(PAGE.min(usize::try_from(to - from).unwrap_or(PAGE)));
    log.scan(from + 1, |row| {
        if row.seq > to {
            return false;
        }
        rows.push(row);
        rows.len() < PAGE
    })?;
    let Some(last) = rows.last().map(|r| r.seq) else {
        return Ok(None);
    };
    let mut db = index
        .db
        .lock()
        .map_err(|_| anyhow::anyhow!("the audit index lock is poisoned"))?;
    db.index(&rows)?;
    Ok(Some(last))
}

/// Rebuilds the index of the trail in `dir` from its segments (`keyhold audit reindex`,
/// server stopped); returns how many events it indexed.
pub fn rebuild(dir: &Path) -> anyhow::Result<usize> {
    let path = dir.join("index.db");
    remove_index(&path)?;
    crate::data_dir::create_private_file(&path)?;
    let mut db = SqliteAuditLog::open_index(&path)?;
    let mut log = SegmentLog::open(dir, Mode::Read)
        .with_context(|| format!("opening the audit log in {}", dir.display()))?;
    let mut total = 0;
    let mut after = 0;
    loop {
        let rows = keyhold_store::audit::AuditLog::events_after(&mut log, after, PAGE)?;
        let Some(last) = rows.last().map(|r| r.seq) else {
            return Ok(total);
        };
        db.index(&rows)?;
        total += rows.len();
        after = last;
    }
}
