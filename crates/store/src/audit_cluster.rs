//! What joins the nodes' audit trails into one verifiable record of a cluster: the
//! **cluster digest chain**. Each node keeps its own hash-chained trail in its data
//! directory and anchors its latest signed digest in the store (`meta` row
//! `audit.anchor.NODE`); the node that holds the sweep lease periodically appends a
//! signed cluster digest naming every node's anchored digest, chained to the previous
//! cluster digest. The documents are written and checked by the server's audit module;
//! here they are opaque rows.

use std::sync::Arc;

use async_trait::async_trait;

use crate::Result;
use crate::audit_lookup::SharedAuditIndex;

/// The `meta` row of a node's audit anchor: `audit.anchor` for a node without `node_id`,
/// `audit.anchor.NODE` for the node named NODE.
pub const ANCHOR_PREFIX: &str = "audit.anchor";

/// One signed cluster digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterDigestRow {
    /// Position in the chain, from 1; the primary key, so two nodes cannot both append the
    /// same one.
    pub seq: i64,
    pub time_ms: i64,
    /// The document exactly as signed (JSON text).
    pub document: String,
    pub signature: Vec<u8>,
}

/// The cluster digest chain, and the node anchors it joins.
#[async_trait]
pub trait AuditClusterStore: Send + Sync {
    /// Every node's audit anchor: (the `meta` row's name, its value), by name.
    async fn audit_anchors(&self) -> Result<Vec<(String, Vec<u8>)>>;
    /// The newest cluster digest, if any.
    async fn last_cluster_digest(&self) -> Result<Option<ClusterDigestRow>>;
    /// Appends `row` unless a cluster digest with its sequence exists; returns whether it
    /// did (false: another node appended that sequence first). Durable on return.
    async fn append_cluster_digest(&self, row: &ClusterDigestRow) -> Result<bool>;
    /// Up to `limit` cluster digests with a sequence above `after`, in order.
    async fn cluster_digests(&self, after: i64, limit: usize) -> Result<Vec<ClusterDigestRow>>;

    /// The nodes' shared lookup index ([`crate::audit_lookup`]), or `None` for a store only
    /// one node opens (SQLite: that node's own index answers its lookups).
    fn shared_audit_index(&self) -> Option<Arc<dyn SharedAuditIndex>> {
        None
    }
}

/// Whether a `meta` row's name is a node's audit anchor.
pub fn is_anchor_name(name: &str) -> bool {
    name == ANCHOR_PREFIX
        || name
            .strip_prefix(ANCHOR_PREFIX)
            .is_some_and(|rest| rest.starts_with('.') && rest.len() > 1)
}
