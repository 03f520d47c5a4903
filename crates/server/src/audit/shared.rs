//! Lookups across a cluster: `LookupEvents` and `GetKeyLastUsage` on a PostgreSQL store read
//! the nodes' **shared lookup index** ([`keyhold_store::audit_lookup`]) instead of the node's
//! own, so that a caller behind a load balancer sees every node's events ([`super::source`]
//! makes that choice).
//!
//! Each node keeps writing its own trail (segment log, hash chain, anchor) exactly as a
//! single node does; [`SharedLookups`] adds a **publisher**, a task that follows the node's
//! log with the public [`SegmentLog`] reader and publishes its durable events (never one a
//! crash could still take back) into the shared index in batches of up to [`PAGE`] events,
//! one transaction each, which also moves the node's stored progress: a restarted node
//! resumes after the last event it published, with no gap and no duplicate.
//!
//! - **Lag.** The publisher looks for new durable events every [`PUBLISH_INTERVAL`] and
//!   publishes until it has caught up, so while the database keeps up another node's event
//!   is found by lookups on every node within [`PUBLISH_INTERVAL`] and one transaction — the
//!   documented bound is [`LAG_BOUND`]. When the database is slower than the node's event
//!   rate (or unreachable) the lag grows and is worked off afterwards.
//! - **A caller sees its own calls.** A lookup first wakes the node's publisher and waits
//!   until every event that was durable on this node when the lookup arrived is published
//!   (at most [`CATCH_UP_BOUND`]; then it answers from what is published), as the local
//!   index's lookups do.
//! - **Retention.** Events the node's trail pruned (its oldest segments removed) are removed
//!   from the shared index too, checked every [`PRUNE_CHECK`].
//! - **A trail that is not the one published** (the node's data directory restored from an
//!   older backup or started afresh: the trail ends before its published progress, or holds
//!   another event at that sequence) is republished from its start.
//!
//! Results are newest first by event time, then node id, then sequence (a total order), and
//! a `NextToken` names the last event of a page by those three ([`super::source`] writes
//! it), so it continues the listing on any node.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use keyhold_store::audit::{AuditAttribute, AuditRow};
use keyhold_store::audit_lookup::{SharedEvent, SharedQuery};
use keyhold_store::segment::{Mode, SegmentLog};
use keyhold_store::{SharedAuditIndex, StoreError};
use tokio::sync::{Notify, watch};

use super::index::Index;
use super::{LastSuccess, LastSuccessQuery};

/// How often the publisher looks for new durable events when it is idle.
pub const PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

/// Events published per transaction at most.
pub const PAGE: usize = 2048;

/// The documented bound on how long another node's event takes to be found by lookups,
/// while the database keeps up (docs/ha.md).
pub const LAG_BOUND: Duration = Duration::from_secs(1);

/// The longest a lookup waits for this node's publisher before it answers from what is
/// published.
pub const CATCH_UP_BOUND: Duration = Duration::from_secs(2);

/// How often the publisher checks whether retention pruned the node's trail.
pub const PRUNE_CHECK: Duration = Duration::from_secs(1);

/// How long the publisher waits after a failure before it tries again.
const RETRY: Duration = Duration::from_secs(1);

/// One node's view of the shared lookup index: its publisher, and the lookups it serves.
pub struct SharedLookups {
    store: Arc<dyn SharedAuditIndex>,
    /// The node's `node_id` (empty for a node without one).
    node: String,
    /// The node's own trail index: how far the trail is durable.
    index: Arc<Index>,
    /// The newest event of this node that is published.
    published: watch::Sender<i64>,
    /// Wakes the publisher (a lookup is waiting).
    wake: Notify,
}

impl SharedLookups {
    /// Starts the publisher of the trail in `dir` (whose index is `index`) for the node
    /// `node` into `store`. It runs until the returned handle is dropped.
    pub fn start(
        store: Arc<dyn SharedAuditIndex>,
        node: Option<&str>,
        index: Arc<Index>,
        dir: &Path,
    ) -> Arc<Self> {
        let shared = Arc::new(Self {
            store,
            node: node.unwrap_or_default().to_owned(),
            index,
            published: watch::Sender::new(0),
            wake: Notify::new(),
        });
        tokio::spawn(publish(Arc::downgrade(&shared), dir.to_owned()));
        shared
    }

    /// The newest event of this node that is published (0 before the publisher resumed).
    pub fn published_through(&self) -> i64 {
        *self.published.borrow()
    }

    /// Waits (at most [`CATCH_UP_BOUND`]) until every event durable on this node now is
    /// published.
    pub async fn catch_up(&self) {
        let target = self.index.durable_through();
        let mut published = self.published.subscribe();
        if *published.borrow() >= target {
            return;
        }
        self.wake.notify_one();
        let caught_up = tokio::time::timeout(
            CATCH_UP_BOUND,
            published.wait_for(|&through| through >= target),
        )
        .await;
        if !matches!(caught_up, Ok(Ok(_))) {
            tracing::warn!(
                published = *self.published.borrow(),
                target,
                "the shared audit index is behind this node's trail; answering a lookup from what is published"
            );
        }
    }

    /// Looks events up across the nodes, after [`SharedLookups::catch_up`].
    pub async fn lookup(&self, query: &SharedQuery) -> keyhold_store::Result<Vec<SharedEvent>> {
        self.catch_up().await;
        self.store.lookup(query).await
    }

    /// The newest successful call matching `query` on any node (what `GetKeyLastUsage`
    /// reports), after [`SharedLookups::catch_up`]; the shared counterpart of
    /// [`super::Auditor::last_success`].
    pub async fn last_success(&self, query: &LastSuccessQuery<'_>) -> Option<LastSuccess> {
        /// How many of the resource's newest events to look through before giving up.
        const SCAN_LIMIT: usize = 10_000;
        const BATCH: usize = 500;
        self.catch_up().await;
        let mut after = None;
        let mut scanned = 0;
        while scanned < SCAN_LIMIT {
            let events = self
                .store
                .lookup(&SharedQuery {
                    account: query.account.to_owned(),
                    region: query.region.to_owned(),
                    attribute: Some((AuditAttribute::ResourceName, query.resource.to_owned())),
                    page: after,
                    limit: BATCH,
                    ..SharedQuery::default()
                })
                .await
                .ok()?;
            let found = events.iter().find_map(|e| {
                query.answer(
                    &e.event_id,
                    &e.event_source,
                    &e.event_name,
                    e.time_ms,
                    &e.record,
                )
            });
            if found.is_some() {
                return found;
            }
            if events.len() < BATCH {
                return None;
            }
            scanned += events.len();
            after = events.last().map(SharedEvent::position);
        }
        None
    }
}

/// What the publisher keeps between rounds.
struct Publisher {
    dir: PathBuf,
    /// The log, read only (`None` until opened, or after a read failed).
    log: Option<SegmentLog>,
    /// The newest published event (`None` until read from the store).
    published: Option<i64>,
    /// Events below this sequence were removed from the shared index (retention).
    forgotten_before: i64,
    last_prune_check: Option<Instant>,
}

/// The publisher: publishes the node's durable events until the [`SharedLookups`] is
/// dropped.
async fn publish(shared: Weak<SharedLookups>, dir: PathBuf) {
    let mut publisher = Publisher {
        dir,
        log: None,
        published: None,
        forgotten_before: 0,
        last_prune_check: None,
    };
    loop {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let wait = match publisher.round(&shared).await {
            Ok(true) => continue, // more to publish
            Ok(false) => PUBLISH_INTERVAL,
            Err(e) => {
                if !publisher.dir.exists() {
                    return; // the data directory went away
                }
                tracing::warn!(error = %format!("{e:#}"), "publishing audit events to the shared index failed; retrying");
                RETRY
            }
        };
        // Holds the handle no longer than one wait.
        tokio::select! {
            () = shared.wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

impl Publisher {
    /// One round: resume if needed, drop what retention pruned, publish one page. Whether
    /// more is waiting.
    async fn round(&mut self, shared: &SharedLookups) -> anyhow::Result<bool> {
        let published = match self.published {
            Some(p) => p,
            None => {
                let p = self.resume(shared).await?;
                self.published = Some(p);
                shared.published.send_replace(p);
                p
            }
        };
        if self
            .last_prune_check
            .is_none_or(|at| at.elapsed() >= PRUNE_CHECK)
        {
            self.forget_pruned(shared).await?;
            self.last_prune_check = Some(Instant::now());
        }
        let durable = shared.index.durable_through();
        if published >= durable {
            return Ok(false);
        }
        let events = self
            .with_log(move |log| read_events(log, published, durable, PAGE))
            .await??;
        let Some(last) = events.last().map(|e| e.seq) else {
            // Not visible to this reader yet (a new segment): look again.
            self.with_log(SegmentLog::refresh).await??;
            return Ok(false);
        };
        match shared.store.publish(&shared.node, published, &events).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => {
                // Another process publishes as this node (two nodes with one node_id, or a
                // previous run not stopped yet): read the progress again.
                self.published = None;
                anyhow::bail!("another process publishes this node's events (is node_id unique?)");
            }
            Err(e) => return Err(e).context("publishing to the shared audit index"),
        }
        self.published = Some(last);
        shared.published.send_replace(last);
        Ok(last < durable)
    }

    /// How far this node's trail is published: the stored progress, if the trail still
    /// holds the event it names (else the shared index's rows of this node are forgotten
    /// and the trail republished from its start).
    async fn resume(&mut self, shared: &SharedLookups) -> anyhow::Result<i64> {
        let Some(stored) = shared
            .store
            .published(&shared.node)
            .await
            .context("reading the shared audit index's progress")?
        else {
            return Ok(0);
        };
        let durable = shared.index.durable_through();
        let same_trail = stored.through <= durable
            && match stored.event_id {
                None => true,
                Some(id) => {
                    let seq = stored.through;
                    let at = self
                        .with_log(move |log| read_events(log, seq - 1, seq, 1))
                        .await??;
                    // An event the trail no longer holds (pruned) cannot be compared.
                    at.first().is_none_or(|e| e.seq != seq || e.event_id == id)
                }
            };
        if same_trail {
            return Ok(stored.through);
        }
        tracing::warn!(
            node = %shared.node,
            published = stored.through,
            durable,
            "this node's trail is not the one it published to the shared audit index; republishing it"
        );
        shared
            .store
            .forget_node(&shared.node)
            .await
            .context("forgetting this node's events in the shared audit index")?;
        self.forgotten_before = 0;
        Ok(0)
    }

    /// Removes from the shared index the events whose segments retention removed.
    async fn forget_pruned(&mut self, shared: &SharedLookups) -> anyhow::Result<()> {
        let oldest = self
            .with_log(|log| {
                log.refresh()
                    .map(|()| log.segment_starts().first().copied())
            })
            .await??;
        let Some(oldest) = oldest else {
            return Ok(());
        };
        if oldest > self.forgotten_before {
            let removed = shared
                .store
                .forget_before(&shared.node, oldest)
                .await
                .context("removing pruned events from the shared audit index")?;
            if removed > 0 {
                tracing::info!(
                    removed,
                    before = oldest,
                    "removed pruned audit events from the shared index"
                );
            }
            self.forgotten_before = oldest;
        }
        Ok(())
    }

    /// Runs `f` on the log (opened if needed) on a blocking thread.
    async fn with_log<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut SegmentLog) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let log = match self.log.take() {
            Some(log) => log,
            None => {
                let dir = self.dir.clone();
                tokio::task::spawn_blocking(move || SegmentLog::open(&dir, Mode::Read))
                    .await?
                    .context("opening the audit log to publish it")?
            }
        };
        let (log, out) = tokio::task::spawn_blocking(move || {
            let mut log = log;
            let out = f(&mut log);
            (log, out)
        })
        .await?;
        self.log = Some(log);
        Ok(out)
    }
}

/// Up to `limit` events after `from`, not beyond `to`, read from the log.
fn read_events(
    log: &mut SegmentLog,
    from: i64,
    to: i64,
    limit: usize,
) -> keyhold_store::Result<Vec<AuditRow>> {
    let mut events =
        Vec::with_capacity(limit.min(usize::try_from(to.saturating_sub(from)).unwrap_or(limit)));
    log.scan(from + 1, |row| {
        if row.seq > to {
            return false;
        }
        events.push(row);
        events.len() < limit
    })?;
    Ok(events)
}
