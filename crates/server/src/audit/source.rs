//! Which index answers the trail's lookups, chosen once where the server wires the trail: on
//! a single node the trail's own index ([`super::index`]); on a PostgreSQL store the nodes'
//! shared lookup index ([`super::shared`]), so that a caller behind a load balancer sees
//! every node's events. CloudTrail's `LookupEvents` ([`super::lookup`]) and KMS's
//! `GetKeyLastUsage` ask a [`LookupSource`] their two questions — a page of events, the last
//! successful use of a resource — without knowing which index answers.
//!
//! The two indexes list events in different orders, so their `NextToken`s differ, each the
//! base64url of where the page ended: `ct:SEQ` on a single node (the listing continues below
//! that sequence of the node's trail), `ctc:TIME:SEQ:NODE` on the shared index (it continues
//! after that event in the order time, node, sequence, on any node). A source refuses the
//! other's tokens.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyhold_store::SharedAuditIndex;
use keyhold_store::audit::{AuditRow, EventQuery};
use keyhold_store::audit_lookup::{LookupPosition, SharedEvent};

use super::shared::SharedLookups;
use super::trail::AuditTrail;
use super::{Auditor as _, LastSuccess, LastSuccessQuery};

/// The index this node's lookups read (see the module docs).
pub struct LookupSource(Answering);

enum Answering {
    /// A single node: the trail's own index, newest first by sequence.
    Node(Arc<AuditTrail>),
    /// Nodes sharing a PostgreSQL store: their shared index, newest first by time (then node
    /// and sequence), which this node's publisher keeps up to date with its trail.
    Cluster(Arc<SharedLookups>),
}

/// A `LookupEvents` question: one page of events, newest first, from where a previous
/// page's `NextToken` said (read by [`LookupSource::page_start`]).
pub type EventsQuery = EventQuery<PageStart>;

/// Where a page starts, read from a `NextToken` by [`LookupSource::page_start`].
pub struct PageStart(Cursor);

enum Cursor {
    /// Below this sequence of the node's trail.
    Below(i64),
    /// After this event of the shared listing.
    After(LookupPosition),
}

/// One page of `LookupEvents`.
pub struct EventsPage {
    pub events: Vec<FoundEvent>,
    /// Where the next page starts, when there may be one.
    pub next_token: Option<String>,
}

/// An event a lookup found, whichever index holds it.
pub struct FoundEvent {
    pub event_id: String,
    pub event_name: String,
    pub event_source: String,
    pub read_only: bool,
    pub username: Option<String>,
    pub access_key_id: Option<String>,
    pub time_ms: i64,
    /// `(resource type, resource name)` pairs.
    pub resources: Vec<(String, String)>,
    /// The CloudTrail record exactly as the trail holds it (JSON text).
    pub record: String,
}

/// Why a lookup has no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// The page starts at a token of the other index's kind.
    #[error("the NextToken was issued by another lookup index")]
    ForeignToken,
    /// The index could not be read.
    #[error("the lookup index could not be read")]
    Unreadable,
}

impl LookupSource {
    /// The source of the trail `trail`, whose log is in `dir`: its own index, unless the store
    /// offers a `shared` index (a PostgreSQL store). Then the publisher of the trail into the
    /// shared index, as the node `node`, starts now and runs until the source is dropped.
    pub fn start(
        trail: Arc<AuditTrail>,
        shared: Option<Arc<dyn SharedAuditIndex>>,
        node: Option<&str>,
        dir: &Path,
    ) -> Self {
        Self(match shared {
            Some(shared) => {
                Answering::Cluster(SharedLookups::start(shared, node, trail.index(), dir))
            }
            None => Answering::Node(trail),
        })
    }

    /// Where the page a `NextToken` continues starts; `None` for a token this source's index
    /// did not issue.
    pub fn page_start(&self, next_token: &str) -> Option<PageStart> {
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(next_token).ok()?).ok()?;
        let cursor = match self.0 {
            Answering::Node(_) => Cursor::Below(parse_seq(&text)?),
            Answering::Cluster(_) => Cursor::After(parse_position(&text)?),
        };
        Some(PageStart(cursor))
    }

    /// One page of events. The shared index answers once this node's events durable now are
    /// published (at most [`super::shared::CATCH_UP_BOUND`] later).
    pub async fn events(&self, query: EventsQuery) -> Result<EventsPage, LookupError> {
        match &self.0 {
            Answering::Node(trail) => node_events(trail, query).await,
            Answering::Cluster(shared) => cluster_events(shared, query).await,
        }
    }

    /// The newest recorded call matching `query` that succeeded (what `GetKeyLastUsage`
    /// reports): on a single node [`super::Auditor::last_success`] of the trail, run on a
    /// blocking thread; on the shared index [`SharedLookups::last_success`], the last one
    /// through any node.
    pub async fn last_success(
        &self,
        query: &LastSuccessQuery<'_>,
    ) -> Result<Option<LastSuccess>, LookupError> {
        let trail = match &self.0 {
            Answering::Cluster(shared) => return Ok(shared.last_success(query).await),
            Answering::Node(trail) => trail.clone(),
        };
        // The blocking thread needs the question's text for its own.
        let [account, region, source, resource] =
            [query.account, query.region, query.source, query.resource].map(str::to_owned);
        let names = query.names;
        tokio::task::spawn_blocking(move || {
            trail.last_success(&LastSuccessQuery {
                account: &account,
                region: &region,
                source: &source,
                resource: &resource,
                names,
            })
        })
        .await
        .map_err(|_| LookupError::Unreadable)
    }
}

/// A page from the trail's own index (a blocking read).
async fn node_events(trail: &AuditTrail, query: EventsQuery) -> Result<EventsPage, LookupError> {
    let below = match query.page.as_ref().map(|start| &start.0) {
        None => None,
        Some(Cursor::Below(seq)) => Some(*seq),
        Some(Cursor::After(_)) => return Err(LookupError::ForeignToken),
    };
    let limit = query.limit;
    // One more than the page: whether there is a next one.
    let query = query.with_page(below, limit + 1);
    let index = trail.index();
    let mut rows = tokio::task::spawn_blocking(move || index.lookup(&query))
        .await
        .map_err(|_| LookupError::Unreadable)?
        .map_err(|_| LookupError::Unreadable)?;
    let next_token = (rows.len() > limit)
        .then(|| {
            rows.truncate(limit);
            rows.last().map(|r| encode_token(&seq_text(r.seq)))
        })
        .flatten();
    Ok(EventsPage {
        events: rows.into_iter().map(FoundEvent::from).collect(),
        next_token,
    })
}

/// A page from the nodes' shared index.
async fn cluster_events(
    shared: &SharedLookups,
    query: EventsQuery,
) -> Result<EventsPage, LookupError> {
    let after = match query.page.as_ref().map(|start| &start.0) {
        None => None,
        Some(Cursor::After(position)) => Some(position.clone()),
        Some(Cursor::Below(_)) => return Err(LookupError::ForeignToken),
    };
    let limit = query.limit;
    // One more than the page: whether there is a next one.
    let query = query.with_page(after, limit + 1);
    let mut found = shared
        .lookup(&query)
        .await
        .map_err(|_| LookupError::Unreadable)?;
    let next_token = (found.len() > limit)
        .then(|| {
            found.truncate(limit);
            found
                .last()
                .map(|e| encode_token(&position_text(&e.position())))
        })
        .flatten();
    Ok(EventsPage {
        events: found.into_iter().map(FoundEvent::from).collect(),
        next_token,
    })
}

impl From<AuditRow> for FoundEvent {
    fn from(r: AuditRow) -> Self {
        Self {
            event_id: r.event_id,
            event_name: r.event_name,
            event_source: r.event_source,
            read_only: r.read_only,
            username: r.username,
            access_key_id: r.access_key_id,
            time_ms: r.time_ms,
            resources: r.resources,
            record: r.record,
        }
    }
}

impl From<SharedEvent> for FoundEvent {
    fn from(e: SharedEvent) -> Self {
        Self {
            event_id: e.event_id,
            event_name: e.event_name,
            event_source: e.event_source,
            read_only: e.read_only,
            username: e.username,
            access_key_id: e.access_key_id,
            time_ms: e.time_ms,
            resources: e.resources,
            record: e.record,
        }
    }
}

/// A `NextToken`: the text of where the page ended, base64url.
fn encode_token(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

/// Where a page of the trail's own index ended, as a token's text (`ct:SEQ`).
fn seq_text(seq: i64) -> String {
    format!("ct:{seq}")
}

/// The sequence a token's text names; `None` for any other text.
fn parse_seq(text: &str) -> Option<i64> {
    text.strip_prefix("ct:")?.parse().ok()
}

/// Where a page of the shared index ended, as a token's text (`ctc:TIME:SEQ:NODE`).
fn position_text(p: &LookupPosition) -> String {
    format!("ctc:{}:{}:{}", p.time_ms, p.seq, p.node)
}

/// The position a token's text names; `None` for any other text.
fn parse_position(text: &str) -> Option<LookupPosition> {
    let mut parts = text.strip_prefix("ctc:")?.splitn(3, ':');
    let time_ms = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    let node = parts.next()?.to_owned();
    Some(LookupPosition { time_ms, node, seq })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_survives_its_token_text_and_other_text_is_refused() {
        let p = LookupPosition {
            time_ms: 1_765_000_000_123,
            node: "kh-1_a".into(),
            seq: 42,
        };
        assert_eq!(parse_position(&position_text(&p)), Some(p));
        let unnamed = LookupPosition {
            time_ms: 5,
            node: String::new(),
            seq: 1,
        };
        assert_eq!(parse_position(&position_text(&unnamed)), Some(unnamed));
        for other in ["ct:42", "ctc:x:1:n", "ctc:1", "ctc:1:2", ""] {
            assert_eq!(parse_position(other), None, "{other}");
        }
    }

    #[test]
    fn a_sequence_survives_its_token_text_and_other_text_is_refused() {
        assert_eq!(parse_seq(&seq_text(42)), Some(42));
        for other in ["ctc:5:1:n", "ct:", "ct:x", "42", ""] {
            assert_eq!(parse_seq(other), None, "{other}");
        }
    }
}
