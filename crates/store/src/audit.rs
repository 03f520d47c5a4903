//! The audit trail's storage: an append-only, hash-chained sequence of CloudTrail records
//! and the signed digests that seal it.
//!
//! The trail lives apart from the rest of the store, in segment files of its own
//! ([`crate::segment`]), so that its group commits never queue behind key writes, and its API
//! is synchronous: one dedicated writer thread owns it (see `keyhold-server`'s audit trail).
//! Lookups read an index derived from the segments (SQLite, [`crate::SqliteAuditIndex`]):
//! the columns they filter on and where each record is ([`IndexEntry`]), rebuilt from the
//! segments when needed.

use crate::Result;

/// One stored event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    pub event_id: String,
    /// The caller's account and the account that owns the resource (they differ for
    /// cross-account calls); lookups in either account find the event.
    pub account: String,
    pub recipient_account: String,
    pub region: String,
    pub time_ms: i64,
    pub event_name: String,
    pub event_source: String,
    pub read_only: bool,
    pub username: Option<String>,
    pub access_key_id: Option<String>,
    /// `(resource type, resource name)` pairs, for lookups.
    pub resources: Vec<(String, String)>,
    /// The CloudTrail record exactly as hashed (JSON text).
    pub record: String,
    /// SHA-256 of `record`.
    pub hash: [u8; 32],
}

/// What the lookup index keeps of one event: where its record is in the segment log, and
/// the columns lookups filter on (not the record itself, which is read from the segment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub seq: i64,
    pub location: crate::segment::Location,
    pub time_ms: i64,
    pub account: String,
    pub recipient_account: String,
    pub region: String,
    pub event_id: String,
    pub event_name: String,
    pub event_source: String,
    pub read_only: bool,
    pub username: Option<String>,
    pub access_key_id: Option<String>,
    pub resources: Vec<(String, String)>,
}

impl IndexEntry {
    /// The entry of `row`, stored at `location` (the record itself is dropped).
    pub fn new(row: AuditRow, location: crate::segment::Location) -> Self {
        Self {
            seq: row.seq,
            location,
            time_ms: row.time_ms,
            account: row.account,
            recipient_account: row.recipient_account,
            region: row.region,
            event_id: row.event_id,
            event_name: row.event_name,
            event_source: row.event_source,
            read_only: row.read_only,
            username: row.username,
            access_key_id: row.access_key_id,
            resources: row.resources,
        }
    }
}

/// A signed statement that events `first_seq..=last_seq` end in `last_hash`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestRow {
    pub seq: i64,
    pub first_seq: i64,
    pub last_seq: i64,
    pub time_ms: i64,
    /// The digest document exactly as signed (JSON text).
    pub document: String,
    pub signature: Vec<u8>,
}

/// What to look up (one attribute at most, as CloudTrail allows), newest first: one page
/// of events. `P` is how the index asked names where a page starts: a node's own index by
/// sequence ([`AuditQuery`]), the nodes' shared index by a position in its listing
/// ([`crate::audit_lookup::SharedQuery`]).
#[derive(Clone, Debug)]
pub struct EventQuery<P> {
    /// Events of this account (as caller or recipient) in this region only.
    pub account: String,
    pub region: String,
    pub attribute: Option<(AuditAttribute, String)>,
    /// Inclusive bounds on the event time.
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// Where the page starts (where the page before ended); `None` for the first page.
    pub page: Option<P>,
    pub limit: usize,
}

impl<P> Default for EventQuery<P> {
    fn default() -> Self {
        Self {
            account: String::new(),
            region: String::new(),
            attribute: None,
            start_ms: None,
            end_ms: None,
            page: None,
            limit: 0,
        }
    }
}

impl<P> EventQuery<P> {
    /// The same question of another index: its own page start, and `limit` events.
    pub fn with_page<Q>(self, page: Option<Q>, limit: usize) -> EventQuery<Q> {
        EventQuery {
            account: self.account,
            region: self.region,
            attribute: self.attribute,
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            page,
            limit,
        }
    }
}

/// A question to a node's own index: a page holds events with a sequence below `page`.
pub type AuditQuery = EventQuery<i64>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditAttribute {
    EventId,
    EventName,
    ReadOnly,
    Username,
    ResourceType,
    ResourceName,
    EventSource,
    AccessKeyId,
}

/// The audit trail's storage.
pub trait AuditLog: Send {
    /// The last stored event, if any.
    fn last_event(&mut self) -> Result<Option<AuditRow>>;
    /// The last stored digest, if any.
    fn last_digest(&mut self) -> Result<Option<DigestRow>>;
    /// Appends events (and possibly a digest) in one durable transaction.
    fn append(&mut self, events: &[AuditRow], digest: Option<&DigestRow>) -> Result<()>;
    /// Events with `first <= seq <= last`, in order.
    fn events(&mut self, first: i64, last: i64) -> Result<Vec<AuditRow>>;
    /// Up to `limit` events with `seq > after`, in order.
    fn events_after(&mut self, after: i64, limit: usize) -> Result<Vec<AuditRow>>;
    /// All digests, in order.
    fn digests(&mut self) -> Result<Vec<DigestRow>>;
    /// The digest with sequence `seq`, if stored.
    fn digest(&mut self, seq: i64) -> Result<Option<DigestRow>>;
    fn get_meta(&mut self, name: &str) -> Result<Option<Vec<u8>>>;
    fn put_meta(&mut self, name: &str, value: &[u8]) -> Result<()>;
    /// Deletes the events and digests older than digest `keep_from_digest` (its events stay),
    /// for retention, and stores `prune_record` (the signed statement of what was pruned,
    /// which verification needs to tell a prune from a deletion) under the meta entry
    /// [`PRUNE_RECORD`], in the same transaction.
    fn prune_before_digest(&mut self, keep_from_digest: i64, prune_record: &[u8]) -> Result<()>;
}

/// The trail's meta entry holding the latest signed prune record.
pub const PRUNE_RECORD: &str = "prune.record";

/// Where the trail's anchor lives: outside the trail, in the key store's own database, so
/// that deleting the trail's last events (with the digests that cover them) is detected.
/// The anchor is an opaque value (the trail writes its latest signed digest and prune
/// record into it).
pub trait AuditAnchor: Send {
    fn load(&mut self) -> Result<Option<Vec<u8>>>;
    fn store(&mut self, value: &[u8]) -> Result<()>;
    /// Removes the anchor (the operator accepts a trail that has no digests any more).
    fn clear(&mut self) -> Result<()>;
}
