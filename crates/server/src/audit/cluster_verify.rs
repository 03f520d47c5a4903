//! `keyhold audit verify --cluster`: every node's trail against its anchor, the cluster
//! digest chain (signatures, links, node entries), and every node the chain or the store's
//! anchors name against what the chain recorded for it.
//!
//! A node's trail is matched to its node by its signing key: the fingerprint its digests
//! (and so its anchor and its cluster chain entries) name. So a trail deleted and started
//! afresh under the node's name (a new key) is not taken for the node's trail, and a node
//! whose trail is not given is named.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use keyhold_crypto::seal::{DomainKey, KeyFileRoot};
use keyhold_store::{AuditClusterStore, MetaStore, PgStore};

use super::anchor::Anchor;
use super::chain;
use super::cluster::{self, ChainReport, NodeEntry, node_label, node_of_anchor};
use super::offline::{self, KeyStore, KeyTrust, Pin, RootSource, Verified};
use super::trail;
use crate::seal::DOMAIN_KEY;

/// What to verify.
pub struct ClusterRequest<'a> {
    /// The shared store (a postgres:// URL).
    pub storage: &'a str,
    /// The nodes' data directories.
    pub data_dirs: &'a [PathBuf],
    /// The root key file (default: the first `<data-dir>/root.key` there is); it proves the
    /// cluster signing key and each trail's signing key genuine.
    pub key_file: Option<PathBuf>,
    /// The expected cluster signing key (hex public key or its fingerprint), without a root
    /// key.
    pub public_key: Option<&'a str>,
}

/// One node's trail, verified.
pub struct NodeVerified {
    pub label: String,
    pub data_dir: PathBuf,
    pub verified: Verified,
}

/// What `verify_cluster` found.
pub struct ClusterVerified {
    /// The cluster signing key's fingerprint, if the store has one.
    pub fingerprint: Option<String>,
    pub trust: KeyTrust,
    pub chain: ChainReport,
    pub nodes: Vec<NodeVerified>,
    /// Failures of the cluster as a whole (the chain's included), beyond each node's own.
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

impl ClusterVerified {
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.nodes.iter().all(|n| n.verified.report.ok())
    }
}

/// A node the cluster chain or the store's anchors name.
#[derive(Default)]
struct Expected {
    /// The fingerprint of its trail's signing key.
    fingerprints: Vec<String>,
    /// The newest entry of the chain: (cluster digest, entry).
    recorded: Option<(i64, NodeEntry)>,
    /// Its anchor's digest (sequence, last event), if it has one.
    anchored: Option<(i64, i64)>,
    data_dir: Option<PathBuf>,
}

/// Verifies the cluster whose store is `request.storage`.
pub async fn verify_cluster(request: &ClusterRequest<'_>) -> anyhow::Result<ClusterVerified> {
    let store = PgStore::connect_without_migrating(request.storage)?;
    let describe = KeyStore::Postgres {
        url: request.storage.to_owned(),
        node_id: None,
    };
    let mut problems = Vec::new();
    let mut warnings = Vec::new();

    let domain = open_domain(&store, request).await?;
    let key = cluster::read_cluster_key(&store, domain.as_ref())
        .await
        .context("reading the cluster signing key")?;
    let mut rows = Vec::new();
    loop {
        let after = rows
            .last()
            .map_or(0, |r: &keyhold_store::ClusterDigestRow| r.seq);
        let page = store.cluster_digests(after, 1000).await.context(
            "reading the cluster digest chain (a store older than this Keyhold: run keyhold migrate)",
        )?;
        if page.is_empty() {
            break;
        }
        rows.extend(page);
    }
    let (public_key, trust) = match &key {
        None => {
            if !rows.is_empty() {
                problems.push(
                    "the store holds cluster digests but no cluster signing key: the key was removed"
                        .to_owned(),
                );
            }
            (Vec::new(), KeyTrust::SelfDeclared)
        }
        Some(key) => cluster_key_trust(key, request.public_key, &mut problems)?,
    };
    let chain = cluster::check_chain(&rows, &public_key);
    problems.extend(chain.problems.iter().cloned());

    // Every node: what the chain recorded, what the store anchors now.
    let mut expected: BTreeMap<Option<String>, Expected> = BTreeMap::new();
    for (node, (at, entry)) in &chain.nodes {
        let e = expected.entry(node.clone()).or_default();
        e.fingerprints.extend(entry.trail_key_fingerprint());
        e.recorded = Some((*at, entry.clone()));
    }
    let anchors = store.audit_anchors().await?;
    if rows.is_empty() && !anchors.is_empty() {
        problems.push(format!(
            "{} holds the nodes' audit anchors but no cluster digest: the cluster chain was removed, or no sweep has run since the nodes first anchored their trails (verify again after one sweep interval)",
            describe_store(&describe)
        ));
    }
    for (name, value) in &anchors {
        let Some(node) = node_of_anchor(name) else {
            continue;
        };
        let Some(doc) = Anchor::parse(value).ok().and_then(|a| a.digest_document()) else {
            problems.push(format!("the audit anchor {name} is not readable"));
            continue;
        };
        let e = expected.entry(node.clone()).or_default();
        if !e.fingerprints.contains(&doc.public_key_fingerprint) {
            e.fingerprints.push(doc.public_key_fingerprint.clone());
        }
        e.anchored = Some((doc.digest_sequence, doc.last_event_sequence));
        if e.recorded.is_none() {
            warnings.push(format!(
                "{}'s anchor (digest {}, signed {}) is in no cluster digest yet: the next sweep records it",
                node_label(node.as_deref()),
                doc.digest_sequence,
                doc.digest_time
            ));
        }
    }

    // Which data directory holds which node's trail: by the trail's signing key.
    for dir in request.data_dirs {
        let fingerprint = match trail_fingerprint(dir) {
            Ok(f) => f,
            Err(e) => {
                problems.push(format!("{}: {e:#}", dir.display()));
                continue;
            }
        };
        let Some((node, e)) = expected
            .iter_mut()
            .find(|(_, e)| e.fingerprints.contains(&fingerprint))
        else {
            problems.push(format!(
                "the trail in {} (signing key {fingerprint}) is no node's: neither the cluster chain nor the store's anchors name its key",
                dir.display()
            ));
            continue;
        };
        if let Some(other) = &e.data_dir {
            problems.push(format!(
                "{} and {} both hold the trail of {}",
                other.display(),
                dir.display(),
                node_label(node.as_deref())
            ));
            continue;
        }
        e.data_dir = Some(dir.clone());
    }

    let mut nodes = Vec::new();
    for (node, e) in expected {
        let label = node_label(node.as_deref());
        let Some(dir) = e.data_dir else {
            let what = match (&e.recorded, e.anchored) {
                (Some((at, entry)), _) => format!(
                    "cluster digest {at} records its digest {} over events up to {}",
                    entry.digest_sequence, entry.last_event_sequence
                ),
                (None, Some((digest, last))) => {
                    format!("its anchor records digest {digest} over events up to {last}")
                }
                (None, None) => "it is named".to_owned(),
            };
            problems.push(format!(
                "{label}'s trail was not given (no --data-dir holds a trail signed with its key {}): {what}, so its events cannot be checked; a node whose data directory was removed loses them",
                e.fingerprints.first().map_or("?", String::as_str)
            ));
            continue;
        };
        let extra = e
            .recorded
            .iter()
            .filter_map(|(at, entry)| {
                Some((
                    format!("cluster digest {at}'s record of {label}"),
                    entry.signed()?,
                ))
            })
            .collect();
        let key_store = KeyStore::Postgres {
            url: request.storage.to_owned(),
            node_id: node.clone(),
        };
        let root = RootSource::KeyFile(request.key_file.clone());
        match offline::verify_trail_against(&dir, &key_store, root, None, &[], extra).await {
            Ok(verified) => nodes.push(NodeVerified {
                label,
                data_dir: dir,
                verified,
            }),
            Err(e) => problems.push(format!("{label} ({}): {e:#}", dir.display())),
        }
    }
    Ok(ClusterVerified {
        fingerprint: key.as_ref().map(|k| chain::fingerprint(&k.stored)),
        trust,
        chain,
        nodes,
        problems,
        warnings,
    })
}

/// The domain key, unsealed with the root key file (given, or the first
/// `<data-dir>/root.key`); `None` without one.
async fn open_domain(
    store: &PgStore,
    request: &ClusterRequest<'_>,
) -> anyhow::Result<Option<DomainKey>> {
    let key_file = match &request.key_file {
        Some(file) => file.clone(),
        None => match request
            .data_dirs
            .iter()
            .map(|d| d.join("root.key"))
            .find(|f| f.exists())
        {
            Some(file) => file,
            None => return Ok(None),
        },
    };
    let root = KeyFileRoot::load(&key_file)
        .with_context(|| format!("opening the root key file {}", key_file.display()))?;
    let sealed = store
        .get_meta(DOMAIN_KEY)
        .await?
        .context("the store holds no domain key")?;
    let domain = DomainKey::unseal(&root, &sealed).map_err(|_| {
        anyhow::anyhow!(
            "the root key ({}) does not open the store's domain key: wrong root key or a damaged database",
            key_file.display()
        )
    })?;
    Ok(Some(domain))
}

/// The key the cluster digests are checked with, and why it is trusted.
fn cluster_key_trust(
    key: &cluster::ClusterKey,
    pinned: Option<&str>,
    problems: &mut Vec<String>,
) -> anyhow::Result<(Vec<u8>, KeyTrust)> {
    if let Some(pinned) = pinned {
        let pin = Pin::parse(pinned)?;
        if !pin.matches(&key.stored) {
            problems.push(
                "the store's cluster signing key is not the pinned one: the cluster chain was re-signed"
                    .to_owned(),
            );
        }
    }
    Ok(match &key.unsealed {
        Some(unsealed) => {
            if unsealed != &key.stored {
                problems.push(
                    "the stored public cluster signing key is not the sealed key's: the cluster chain was re-signed"
                        .to_owned(),
                );
            }
            (unsealed.clone(), KeyTrust::Unsealed)
        }
        None if pinned.is_some() => (key.stored.clone(), KeyTrust::Pinned),
        None => (key.stored.clone(), KeyTrust::SelfDeclared),
    })
}

/// The fingerprint of the signing key of the trail in `data_dir`.
fn trail_fingerprint(data_dir: &Path) -> anyhow::Result<String> {
    let mut log = offline::open_trail(data_dir)?;
    let key = trail::stored_public_key(&mut log)?.context("the trail has no signing key")?;
    Ok(chain::fingerprint(&key))
}

fn describe_store(store: &KeyStore) -> String {
    match store {
        KeyStore::Postgres { url, .. } => {
            keyhold_store::copy::Location::Postgres(url.clone()).describe()
        }
        KeyStore::Sqlite(db) => db.display().to_string(),
    }
}
