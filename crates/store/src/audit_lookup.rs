//! The **shared lookup index** of a cluster: what `LookupEvents` and `GetKeyLastUsage` read
//! when several nodes share a PostgreSQL store, so that a caller behind a load balancer sees
//! the whole cluster's trail rather than whichever node answered.
//!
//! Each node keeps its own trail (segment log) in its data directory; its publisher (in the
//! server's audit module) reads the node's durable events from its segments and publishes
//! them here in batches: per event the node, its sequence in that node's trail, the columns
//! lookups filter on (as the node's own SQLite index has them) and the record text itself
//! (another node cannot read this node's segments). How far a node has published is stored
//! with the rows, in the same transaction, so a restarted node resumes where it stopped.
//!
//! The index is derived: a node republishes its trail from its segments when its rows do not
//! match (a trail restored or started afresh), and retention's pruning removes the rows of
//! the events it removed. It is not copied by `migrate-store` (see [`crate::copy`]).
//!
//! Results are newest first across nodes: by time, then node id, then sequence — a total
//! order, so a [`LookupPosition`] (the last row of a page) continues the listing on any node.

use async_trait::async_trait;

use crate::Result;
use crate::audit::AuditRow;

/// Where a page of lookups ended: the last event returned (results continue below it in
/// the order time, node, sequence, all descending).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupPosition {
    pub time_ms: i64,
    /// The node's `node_id` (empty for a node without one).
    pub node: String,
    pub seq: i64,
}

/// A question to the shared index: a page holds the events after `page` in the listing
/// (time, node, sequence, all descending).
pub type SharedQuery = crate::audit::EventQuery<LookupPosition>;

/// One event found in the shared index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedEvent {
    pub node: String,
    pub seq: i64,
    pub time_ms: i64,
    pub event_id: String,
    pub event_name: String,
    pub event_source: String,
    pub read_only: bool,
    pub username: Option<String>,
    pub access_key_id: Option<String>,
    /// `(resource type, resource name)` pairs, in the record's order.
    pub resources: Vec<(String, String)>,
    /// The CloudTrail record (JSON text), exactly as the node's trail holds it.
    pub record: String,
}

impl SharedEvent {
    /// Where this event is in the listing (what the next page continues after).
    pub fn position(&self) -> LookupPosition {
        LookupPosition {
            time_ms: self.time_ms,
            node: self.node.clone(),
            seq: self.seq,
        }
    }
}

/// How far a node has published: its newest published event, and that event's id (to
/// check at start that the node's trail is still the one published).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    pub through: i64,
    /// `None` when the event's row is gone (retention pruned it).
    pub event_id: Option<String>,
}

/// The shared lookup index (PostgreSQL; see the module documentation).
#[async_trait]
pub trait SharedAuditIndex: Send + Sync {
    /// How far `node` has published; `None` when it never has (or was forgotten).
    async fn published(&self, node: &str) -> Result<Option<Published>>;

    /// Publishes `events` of `node` (in sequence order, following `after`, the node's
    /// progress as [`SharedAuditIndex::published`] read it) and moves its progress to the
    /// last of them, in one transaction. [`crate::StoreError::Conflict`] (nothing written)
    /// when the stored progress is not `after`: another process publishes as this node.
    async fn publish(&self, node: &str, after: i64, events: &[AuditRow]) -> Result<()>;

    /// Removes `node`'s events with a sequence below `seq` (its trail pruned them); returns
    /// how many.
    async fn forget_before(&self, node: &str, seq: i64) -> Result<u64>;

    /// Removes every event of `node` and its progress (its trail is not the one published).
    async fn forget_node(&self, node: &str) -> Result<()>;

    /// The events matching `query`, newest first (time, node, sequence, descending).
    async fn lookup(&self, query: &SharedQuery) -> Result<Vec<SharedEvent>>;
}
