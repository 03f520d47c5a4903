//! One audit record for a cluster: the nodes' own trails joined by a signed **cluster
//! digest chain** in the shared store.
//!
//! Each node keeps its own hash-chained trail in its data directory and anchors its latest
//! signed digest in the store (`meta` row `audit.anchor.NODE`). At each sweep tick the node
//! holding the sweep lease reads every anchor and, when one changed since the last cluster
//! digest, appends a [`ClusterDigestDocument`] to `audit_cluster_digests`: its sequence, the
//! previous cluster digest's hash, the time, and for every node its anchored digest (signed
//! by the node's own key, carried whole). The document is signed with the **cluster
//! signing key** (Ed25519), stored only sealed under the shared domain key in the `meta`
//! row [`CLUSTER_KEY`], created once with an insert-if-absent so two nodes cannot both
//! create one.
//!
//! Why not one chain for the whole cluster: a chain in the database would make every
//! request of every node wait for one row (the chain's head) in turn, where a node's own
//! trail makes its events durable with one local fsync per batch and no cross-node lock.
//! The joined chains give the same verdict: `keyhold audit verify --cluster` checks every
//! node's trail against its anchor and against what the cluster chain recorded for it, so
//! a node's trail deleted or cut back is detected, and a node left out is named.
//!
//! - [`ClusterDigests`] appends the chain (the sweep calls [`ClusterDigests::tick`]).
//! - [`check_chain`] verifies a chain's signatures, links and node entries.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use keyhold_crypto::seal::DomainKey;
use keyhold_crypto::signing::{SigningKey, verify_signature};
use keyhold_proto::Timestamp;
use keyhold_store::audit_cluster::ANCHOR_PREFIX;
use keyhold_store::{ClusterDigestRow, Store};
use serde::{Deserialize, Serialize};

use super::anchor::{Anchor, Signed};
use super::chain::{self, DigestDocument};

/// The `meta` row holding the cluster signing key: `{"sealed": <base64 of the PKCS#8 key
/// sealed under the domain key>, "publicKey": <base64>}`.
pub const CLUSTER_KEY: &str = "audit.cluster.signing_key";
/// The purpose and id the cluster signing key is sealed under (its additional data).
const CLUSTER_KEY_AAD: (&str, &str) = ("audit-cluster-signing-key", "ed25519");

/// What a cluster digest states (field names as written in the signed document).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterDigestDocument {
    pub cluster_digest_sequence: i64,
    /// Hex SHA-256 of the previous cluster digest's document (`None` for the first).
    pub previous_cluster_digest_hash: Option<String>,
    pub cluster_digest_time: String,
    /// Hex SHA-256 of the cluster signing key's public key.
    pub public_key_fingerprint: String,
    /// Every node with an anchor, by node id.
    pub nodes: Vec<NodeEntry>,
}

/// One node in a cluster digest: its latest anchored digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeEntry {
    /// The node's `node_id` (`None`: a node without one, anchored at `audit.anchor`).
    pub node_id: Option<String>,
    pub digest_sequence: i64,
    pub last_event_sequence: i64,
    /// Hex SHA-256 of the node's digest document.
    pub digest_hash: String,
    /// The node's signed digest, as its anchor holds it: the document and its signature
    /// (base64) by the node's own trail key.
    pub digest: String,
    pub signature: String,
}

impl ClusterDigestDocument {
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

impl NodeEntry {
    /// The entry for the anchor stored in `meta` row `name`; `None` if it is not readable.
    fn from_anchor(name: &str, value: &[u8]) -> Option<Self> {
        let anchor = Anchor::parse(value).ok()?;
        let doc = anchor.digest_document()?;
        Some(Self {
            node_id: node_of_anchor(name)?,
            digest_sequence: doc.digest_sequence,
            last_event_sequence: doc.last_event_sequence,
            digest_hash: chain::digest_hash(&anchor.digest.document),
            signature: STANDARD.encode(&anchor.digest.signature),
            digest: anchor.digest.document,
        })
    }

    /// The node's signed digest.
    pub fn signed(&self) -> Option<Signed> {
        Some(Signed {
            document: self.digest.clone(),
            signature: STANDARD.decode(&self.signature).ok()?,
        })
    }

    /// The fingerprint of the node's trail key, as its digest names it.
    pub fn trail_key_fingerprint(&self) -> Option<String> {
        DigestDocument::parse(&self.digest).map(|d| d.public_key_fingerprint)
    }
}

/// How the verifier names a node.
pub fn node_label(node: Option<&str>) -> String {
    match node {
        Some(node) => format!("node {node}"),
        None => "the node without node_id".to_owned(),
    }
}

/// The node of an anchor row: `Some(None)` for `audit.anchor`, `Some(Some(NODE))` for
/// `audit.anchor.NODE`, `None` for another name.
pub fn node_of_anchor(name: &str) -> Option<Option<String>> {
    match name.strip_prefix(ANCHOR_PREFIX)? {
        "" => Some(None),
        rest => rest
            .strip_prefix('.')
            .filter(|n| !n.is_empty())
            .map(|n| Some(n.to_owned())),
    }
}

/// Appends the cluster digest chain: owned by the sweep, which calls [`Self::tick`] while
/// it holds the sweep lease.
pub struct ClusterDigests {
    store: Arc<dyn Store>,
    domain: Arc<DomainKey>,
    key: tokio::sync::OnceCell<SigningKey>,
}

/// What one tick did.
#[derive(Debug, PartialEq, Eq)]
pub enum Tick {
    /// Appended the cluster digest with this sequence.
    Appended(i64),
    /// No anchor changed since the last cluster digest (or there is no anchor yet).
    Unchanged,
    /// Another node appended this sequence first (two nodes swept at once).
    Lost,
}

impl ClusterDigests {
    pub fn new(store: Arc<dyn Store>, domain: Arc<DomainKey>) -> Self {
        Self {
            store,
            domain,
            key: tokio::sync::OnceCell::new(),
        }
    }

    /// Appends a cluster digest if a node's anchor changed since the last one. A node named
    /// by the last cluster digest whose anchor is gone keeps its last entry (and a warning
    /// is logged): the chain never forgets a node, so the verifier asks for its trail.
    pub async fn tick(&self) -> anyhow::Result<Tick> {
        let mut nodes: BTreeMap<Option<String>, NodeEntry> = BTreeMap::new();
        for (name, value) in self.store.audit_anchors().await? {
            match NodeEntry::from_anchor(&name, &value) {
                Some(entry) => {
                    nodes.insert(entry.node_id.clone(), entry);
                }
                None => {
                    tracing::warn!(row = %name, "an audit anchor is not readable: the cluster digest leaves it out")
                }
            }
        }
        let last = self.store.last_cluster_digest().await?;
        let previous = last
            .as_ref()
            .and_then(|row| ClusterDigestDocument::parse(&row.document));
        if let Some(previous) = &previous {
            for entry in &previous.nodes {
                if !nodes.contains_key(&entry.node_id) {
                    tracing::warn!(
                        node = %node_label(entry.node_id.as_deref()),
                        "a node's audit anchor is gone from the store: the cluster digest keeps its last entry"
                    );
                    nodes.insert(entry.node_id.clone(), entry.clone());
                }
            }
            if previous.nodes.len() == nodes.len()
                && previous.nodes.iter().all(|e| {
                    nodes
                        .get(&e.node_id)
                        .is_some_and(|n| n.digest_hash == e.digest_hash)
                })
            {
                return Ok(Tick::Unchanged);
            }
        }
        if nodes.is_empty() {
            return Ok(Tick::Unchanged);
        }
        let key = self.signing_key().await?;
        let sequence = last.as_ref().map_or(1, |row| row.seq.saturating_add(1));
        let document = ClusterDigestDocument {
            cluster_digest_sequence: sequence,
            previous_cluster_digest_hash: last
                .as_ref()
                .map(|row| chain::digest_hash(&row.document)),
            cluster_digest_time: Timestamp::now().to_iso8601_seconds(),
            public_key_fingerprint: chain::fingerprint(&key.public_key()),
            nodes: nodes.into_values().collect(),
        };
        let text = document.to_text();
        let row = ClusterDigestRow {
            seq: sequence,
            time_ms: Timestamp::now().as_millis(),
            signature: key.sign(text.as_bytes()),
            document: text,
        };
        Ok(if self.store.append_cluster_digest(&row).await? {
            Tick::Appended(sequence)
        } else {
            Tick::Lost
        })
    }

    async fn signing_key(&self) -> anyhow::Result<&SigningKey> {
        self.key
            .get_or_try_init(|| cluster_signing_key(self.store.as_ref(), &self.domain))
            .await
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredKey {
    sealed: String,
    public_key: String,
}

/// The cluster signing key: the stored one, unsealed with `domain`, or a new one stored if
/// there is none (insert-if-absent: of two nodes creating one at once, both use the one
/// that was stored first).
async fn cluster_signing_key(store: &dyn Store, domain: &DomainKey) -> anyhow::Result<SigningKey> {
    if let Some(key) = stored_cluster_key(store, domain).await? {
        return Ok(key);
    }
    let (key, pkcs8) = SigningKey::generate()?;
    let (purpose, id) = CLUSTER_KEY_AAD;
    let stored = StoredKey {
        sealed: STANDARD.encode(domain.seal_secret(purpose, id, pkcs8.expose_secret())?),
        public_key: STANDARD.encode(key.public_key()),
    };
    if store
        .insert_meta_if_absent(CLUSTER_KEY, &serde_json::to_vec(&stored)?)
        .await?
    {
        tracing::info!(fingerprint = %chain::fingerprint(&key.public_key()), "generated the cluster audit signing key");
        return Ok(key);
    }
    stored_cluster_key(store, domain)
        .await?
        .context("the cluster audit signing key vanished while it was created")
}

/// The stored cluster signing key, unsealed; `None` if there is none.
async fn stored_cluster_key(
    store: &dyn Store,
    domain: &DomainKey,
) -> anyhow::Result<Option<SigningKey>> {
    let Some(bytes) = store.get_meta(CLUSTER_KEY).await? else {
        return Ok(None);
    };
    let stored: StoredKey =
        serde_json::from_slice(&bytes).context("the cluster audit signing key is not readable")?;
    let sealed = STANDARD
        .decode(&stored.sealed)
        .context("the cluster audit signing key is not readable")?;
    let (purpose, id) = CLUSTER_KEY_AAD;
    let pkcs8 = domain.unseal_secret(purpose, id, &sealed).map_err(|_| {
        anyhow::anyhow!("the cluster audit signing key does not unseal under the domain key")
    })?;
    let key = SigningKey::from_pkcs8(pkcs8.expose_secret())?;
    if STANDARD.decode(&stored.public_key).ok() != Some(key.public_key()) {
        anyhow::bail!("the cluster audit signing key's stored public key is not its own");
    }
    Ok(Some(key))
}

/// The cluster signing key's public key as stored (unverified), and, given the domain key,
/// the public key of the sealed private key (which proves the stored one genuine).
pub(crate) struct ClusterKey {
    pub stored: Vec<u8>,
    pub unsealed: Option<Vec<u8>>,
}

/// Reads the cluster signing key of `store` (for verification).
pub(crate) async fn read_cluster_key(
    store: &dyn Store,
    domain: Option<&DomainKey>,
) -> anyhow::Result<Option<ClusterKey>> {
    let Some(bytes) = store.get_meta(CLUSTER_KEY).await? else {
        return Ok(None);
    };
    let stored: StoredKey =
        serde_json::from_slice(&bytes).context("the cluster audit signing key is not readable")?;
    let public = STANDARD
        .decode(&stored.public_key)
        .context("the cluster audit signing key is not readable")?;
    let unsealed = match domain {
        Some(domain) => stored_cluster_key(store, domain)
            .await?
            .map(|k| k.public_key()),
        None => None,
    };
    Ok(Some(ClusterKey {
        stored: public,
        unsealed,
    }))
}

/// What a walk of the cluster chain found.
#[derive(Debug, Default)]
pub struct ChainReport {
    pub digests: u64,
    /// The newest cluster digest that verified.
    pub newest: Option<ClusterDigestDocument>,
    /// Per node, the newest entry any verified cluster digest holds: what its trail must
    /// reach, and in which cluster digest it was recorded.
    pub nodes: BTreeMap<Option<String>, (i64, NodeEntry)>,
    pub problems: Vec<String>,
}

/// Verifies the cluster chain `rows` (in stored order) against `public_key`: every
/// signature, the sequence from 1 without a gap, each link to the previous document, each
/// node entry's consistency with the digest it carries, and that no node goes back to an
/// older digest or drops out of the chain.
pub fn check_chain(rows: &[ClusterDigestRow], public_key: &[u8]) -> ChainReport {
    let fingerprint = chain::fingerprint(public_key);
    let mut report = ChainReport::default();
    let mut previous: Option<(i64, String)> = None;
    for row in rows {
        report.digests += 1;
        let valid = verify_signature(public_key, row.document.as_bytes(), &row.signature);
        let doc = ClusterDigestDocument::parse(&row.document);
        let Some(doc) = doc.filter(|d| valid && d.public_key_fingerprint == fingerprint) else {
            report.problems.push(format!(
                "cluster digest {} does not verify with the cluster signing key: it was forged or changed",
                row.seq
            ));
            previous = Some((row.seq, chain::digest_hash(&row.document)));
            continue;
        };
        if doc.cluster_digest_sequence != row.seq {
            report.problems.push(format!(
                "the row stored as cluster digest {} holds cluster digest {}: cluster digests were moved",
                row.seq, doc.cluster_digest_sequence
            ));
        }
        match &previous {
            None if doc.cluster_digest_sequence != 1 => report.problems.push(format!(
                "cluster digests 1..{} are missing: they were deleted",
                doc.cluster_digest_sequence.saturating_sub(1)
            )),
            None if doc.previous_cluster_digest_hash.is_some() => report
                .problems
                .push("cluster digest 1 names a previous cluster digest".to_owned()),
            Some((seq, _)) if Some(doc.cluster_digest_sequence) != seq.checked_add(1) => {
                report.problems.push(format!(
                    "cluster digests {}..{} are missing: they were deleted",
                    seq.saturating_add(1),
                    doc.cluster_digest_sequence.saturating_sub(1)
                ));
            }
            Some((seq, hash)) if doc.previous_cluster_digest_hash.as_ref() != Some(hash) => {
                report.problems.push(format!(
                    "cluster digest {} does not follow cluster digest {seq}: one of them was replaced",
                    doc.cluster_digest_sequence
                ));
            }
            _ => {}
        }
        previous = Some((
            doc.cluster_digest_sequence,
            chain::digest_hash(&row.document),
        ));
        check_nodes(&doc, &mut report);
        report.newest = Some(doc);
    }
    report
}

/// Checks the node entries of one verified cluster digest and records them.
fn check_nodes(doc: &ClusterDigestDocument, report: &mut ChainReport) {
    let at = doc.cluster_digest_sequence;
    for entry in &doc.nodes {
        let label = node_label(entry.node_id.as_deref());
        let consistent = DigestDocument::parse(&entry.digest).is_some_and(|d| {
            d.digest_sequence == entry.digest_sequence
                && d.last_event_sequence == entry.last_event_sequence
        }) && chain::digest_hash(&entry.digest) == entry.digest_hash
            && entry.signed().is_some();
        if !consistent {
            report.problems.push(format!(
                "cluster digest {at}'s entry for {label} does not match the digest it carries"
            ));
            continue;
        }
        if let Some((recorded_at, before)) = report.nodes.get(&entry.node_id)
            && before.digest_sequence > entry.digest_sequence
        {
            report.problems.push(format!(
                "{label}'s anchor went back from digest {} (cluster digest {recorded_at}) to digest {} (cluster digest {at}): an older anchor was put back",
                before.digest_sequence, entry.digest_sequence
            ));
            continue;
        }
        report
            .nodes
            .insert(entry.node_id.clone(), (at, entry.clone()));
    }
    for node in report.nodes.keys() {
        if !doc.nodes.iter().any(|e| &e.node_id == node) {
            report.problems.push(format!(
                "{} is missing from cluster digest {at}: its entry was removed",
                node_label(node.as_deref())
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_digest(key: &SigningKey, sequence: i64, last: i64) -> (String, Vec<u8>) {
        let doc = DigestDocument {
            digest_sequence: sequence,
            first_event_sequence: 1,
            last_event_sequence: last,
            last_event_hash: "00".repeat(32),
            previous_digest_hash: None,
            digest_time: "2026-12-05T00:00:00Z".into(),
            public_key_fingerprint: chain::fingerprint(&key.public_key()),
        }
        .to_text();
        let signature = key.sign(doc.as_bytes());
        (doc, signature)
    }

    fn entry(node: &str, key: &SigningKey, sequence: i64, last: i64) -> NodeEntry {
        let (digest, signature) = node_digest(key, sequence, last);
        NodeEntry {
            node_id: Some(node.to_owned()),
            digest_sequence: sequence,
            last_event_sequence: last,
            digest_hash: chain::digest_hash(&digest),
            digest,
            signature: STANDARD.encode(signature),
        }
    }

    fn chain_of(key: &SigningKey, nodes: &[Vec<NodeEntry>]) -> Vec<ClusterDigestRow> {
        let mut rows: Vec<ClusterDigestRow> = Vec::new();
        for (i, nodes) in nodes.iter().enumerate() {
            let seq = i64::try_from(i).unwrap() + 1;
            let doc = ClusterDigestDocument {
                cluster_digest_sequence: seq,
                previous_cluster_digest_hash: rows.last().map(|r| chain::digest_hash(&r.document)),
                cluster_digest_time: "2026-12-05T00:00:00Z".into(),
                public_key_fingerprint: chain::fingerprint(&key.public_key()),
                nodes: nodes.clone(),
            }
            .to_text();
            rows.push(ClusterDigestRow {
                seq,
                time_ms: 0,
                signature: key.sign(doc.as_bytes()),
                document: doc,
            });
        }
        rows
    }

    #[test]
    fn a_genuine_chain_verifies_and_names_each_nodes_newest_digest() {
        let (cluster, _) = SigningKey::generate().unwrap();
        let (a, _) = SigningKey::generate().unwrap();
        let (b, _) = SigningKey::generate().unwrap();
        let rows = chain_of(
            &cluster,
            &[
                vec![entry("a", &a, 1, 10)],
                vec![entry("a", &a, 2, 20), entry("b", &b, 1, 5)],
            ],
        );
        let report = check_chain(&rows, &cluster.public_key());
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.nodes.len(), 2);
        assert_eq!(report.nodes[&Some("a".to_owned())].1.digest_sequence, 2);
        assert_eq!(report.newest.unwrap().cluster_digest_sequence, 2);
    }

    #[test]
    fn an_edited_a_removed_and_a_regressing_cluster_digest_are_reported() {
        let (cluster, _) = SigningKey::generate().unwrap();
        let (a, _) = SigningKey::generate().unwrap();
        let rows = chain_of(
            &cluster,
            &[
                vec![entry("a", &a, 1, 10)],
                vec![entry("a", &a, 2, 20)],
                vec![entry("a", &a, 3, 30)],
            ],
        );
        let mut edited = rows.clone();
        edited[1].document = edited[1]
            .document
            .replace("\"lastEventSequence\":20", "\"lastEventSequence\":21");
        let report = check_chain(&edited, &cluster.public_key());
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains("cluster digest 2 does not verify")),
            "{:?}",
            report.problems
        );

        let removed = [rows[0].clone(), rows[2].clone()];
        let report = check_chain(&removed, &cluster.public_key());
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains("cluster digests 2..2 are missing")),
            "{:?}",
            report.problems
        );

        let (other, _) = SigningKey::generate().unwrap();
        let report = check_chain(&rows, &other.public_key());
        assert_eq!(report.problems.len(), 3, "{:?}", report.problems);

        let back = chain_of(
            &cluster,
            &[
                vec![entry("a", &a, 2, 20)],
                vec![entry("a", &a, 1, 10)],
                vec![],
            ],
        );
        let report = check_chain(&back, &cluster.public_key());
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains("went back from digest 2")),
            "{:?}",
            report.problems
        );
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains("node a is missing from cluster digest 3")),
            "{:?}",
            report.problems
        );
    }

    fn anchor(key: &SigningKey, sequence: i64, last: i64) -> Vec<u8> {
        let (document, signature) = node_digest(key, sequence, last);
        Anchor {
            digest: Signed {
                document,
                signature,
            },
            prune: None,
        }
        .to_bytes()
    }

    #[tokio::test]
    async fn the_chain_grows_only_when_an_anchor_changes_and_two_writers_share_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(keyhold_store::SqliteStore::open(&dir.path().join("keyhold.db")).unwrap());
        let domain = Arc::new(DomainKey::generate().unwrap());
        // Two nodes' writers, each with a key cache of its own.
        let one = ClusterDigests::new(store.clone(), domain.clone());
        let two = ClusterDigests::new(store.clone(), domain.clone());
        assert_eq!(one.tick().await.unwrap(), Tick::Unchanged, "no anchor yet");

        let (a, _) = SigningKey::generate().unwrap();
        let (b, _) = SigningKey::generate().unwrap();
        let first_a = anchor(&a, 1, 10);
        store
            .insert_meta_if_absent("audit.anchor.a", &first_a)
            .await
            .unwrap();
        store
            .insert_meta_if_absent("audit.anchor.b", &anchor(&b, 1, 4))
            .await
            .unwrap();
        let (x, y) = tokio::join!(one.tick(), two.tick());
        let mut ticks = [x.unwrap(), y.unwrap()];
        ticks.sort_by_key(|t| matches!(t, Tick::Appended(_)));
        assert!(
            matches!(ticks, [Tick::Lost | Tick::Unchanged, Tick::Appended(1)]),
            "{ticks:?}"
        );
        assert_eq!(two.tick().await.unwrap(), Tick::Unchanged);

        assert!(
            store
                .replace_meta("audit.anchor.a", &first_a, &anchor(&a, 2, 20))
                .await
                .unwrap()
        );
        assert_eq!(two.tick().await.unwrap(), Tick::Appended(2));

        let key = read_cluster_key(store.as_ref(), Some(&domain))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            key.unsealed.as_ref(),
            Some(&key.stored),
            "one key, stored once"
        );
        let rows = store.cluster_digests(0, 10).await.unwrap();
        let report = check_chain(&rows, &key.stored);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.nodes[&Some("a".to_owned())].1.digest_sequence, 2);
        assert_eq!(report.nodes[&Some("b".to_owned())].1.last_event_sequence, 4);
    }

    #[test]
    fn anchor_rows_name_their_node() {
        assert_eq!(node_of_anchor("audit.anchor"), Some(None));
        assert_eq!(
            node_of_anchor("audit.anchor.n1"),
            Some(Some("n1".to_owned()))
        );
        assert_eq!(node_of_anchor("audit.anchor."), None);
        assert_eq!(node_of_anchor("audit.anchorx"), None);
        assert_eq!(node_of_anchor("domain_key"), None);
    }
}
