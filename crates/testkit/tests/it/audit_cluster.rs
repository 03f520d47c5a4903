//! One audit record for a cluster (docs/audit.md, "Several nodes"): three nodes on one
//! PostgreSQL store keep their own trails, the sweep lease's holder joins them with a
//! signed cluster digest chain in the store, and `keyhold audit verify --cluster` checks
//! the chain and every node's trail against it.
//!
//! Needs `KEYHOLD_TEST_STORAGE=postgres://...`; without it the test says why it did not run
//! and passes, like the other cluster tests.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keyhold_server::audit::anchor::Anchor;
use keyhold_server::audit::cluster::ClusterDigestDocument;
use keyhold_server::audit::cluster_verify::{ClusterRequest, ClusterVerified, verify_cluster};
use keyhold_server::audit::offline::KeyTrust;
use keyhold_server::config::{SealConfig, StorageUrl};
use keyhold_testkit::TestServer;

struct Nodes {
    storage: StorageUrl,
    seal: SealConfig,
    dir: tempfile::TempDir,
}

impl Nodes {
    fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node{i}"))
    }

    fn root_key(&self) -> PathBuf {
        self.dir.path().join("root.key")
    }

    /// Node `i`: its own data directory and `node_id`, a sweep (and so a cluster digest)
    /// every 200 ms, a trail digest at least every second.
    async fn start(&self, i: usize) -> TestServer {
        let (storage, seal) = (self.storage.clone(), self.seal.clone());
        TestServer::builder()
            .data_dir(&self.data_dir(i))
            .deletion_sweep_interval(Duration::from_millis(200))
            .audit(|a| a.digest_interval = Duration::from_secs(1))
            .configure(move |c| {
                c.storage = Some(storage);
                c.seal = Some(seal);
                c.node_id = Some(format!("node{i}"));
            })
            .start()
            .await
    }

    async fn sql(&self) -> tokio_postgres::Client {
        let (client, connection) = keyhold_store::parse_postgres_url(self.storage.as_str())
            .unwrap()
            .connect()
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }

    /// The newest cluster digest, if there is one.
    async fn newest_cluster_digest(&self) -> Option<ClusterDigestDocument> {
        let row = self
            .sql()
            .await
            .query_opt(
                "SELECT document FROM audit_cluster_digests ORDER BY seq DESC LIMIT 1",
                &[],
            )
            .await
            .unwrap()?;
        ClusterDigestDocument::parse(&row.get::<_, String>(0))
    }

    async fn anchor_row(&self, node: usize) -> Vec<u8> {
        self.sql()
            .await
            .query_one(
                "SELECT value FROM meta WHERE name = $1",
                &[&format!("audit.anchor.node{node}")],
            )
            .await
            .unwrap()
            .get(0)
    }

    /// Waits until the newest cluster digest records every node in `nodes` at a digest
    /// after `after[i]`.
    async fn wait_for_cluster_digest(&self, after: &[(usize, i64)]) -> ClusterDigestDocument {
        let start = Instant::now();
        loop {
            if let Some(doc) = self.newest_cluster_digest().await
                && after.iter().all(|(node, seq)| {
                    doc.nodes.iter().any(|e| {
                        e.node_id.as_deref() == Some(&format!("node{node}"))
                            && e.digest_sequence > *seq
                    })
                })
            {
                return doc;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no cluster digest recorded nodes {after:?} within 20 s: {:?}",
                self.newest_cluster_digest().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn verify(&self, dirs: &[PathBuf]) -> ClusterVerified {
        verify_cluster(&ClusterRequest {
            storage: self.storage.as_str(),
            data_dirs: dirs,
            key_file: Some(self.root_key()),
            public_key: None,
        })
        .await
        .unwrap()
    }
}

/// Every problem of a verification: the cluster's and each node's.
fn problems(v: &ClusterVerified) -> Vec<String> {
    let mut all = v.problems.clone();
    for node in &v.nodes {
        all.extend(
            node.verified
                .report
                .problems
                .iter()
                .map(|p| format!("{}: {p}", node.label)),
        );
    }
    all
}

fn has(v: &ClusterVerified, needle: &str) -> bool {
    problems(v).iter().any(|p| p.contains(needle))
}

async fn serve_calls(node: &TestServer, n: usize) {
    let kms = node.kms();
    for _ in 0..n {
        kms.list_keys().send().await.unwrap();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[tokio::test]
async fn the_cluster_chain_joins_three_trails_and_catches_a_cut_trail_a_missing_node_and_a_forged_digest()
 {
    let Some(url) = keyhold_testkit::test_storage() else {
        eprintln!(
            "audit_cluster: not run: the cluster tests need a PostgreSQL store (KEYHOLD_TEST_STORAGE=postgres://...)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (storage, _) = keyhold_testkit::postgres_schema_for(&url, &dir.path().join("shared")).await;
    let nodes = Nodes {
        storage,
        seal: SealConfig::KeyFile {
            path: dir.path().join("root.key"),
        },
        dir,
    };
    let mut servers = Vec::new();
    for i in 0..3 {
        servers.push(nodes.start(i).await);
    }
    for server in &servers {
        serve_calls(server, 5).await;
    }
    let first = nodes
        .wait_for_cluster_digest(&[(0, 0), (1, 0), (2, 0)])
        .await;
    assert_eq!(first.nodes.len(), 3, "{first:?}");

    // Node 1's trail and anchor as they are now: what an attacker later puts back.
    servers.remove(1).stop().await;
    let old_anchor = nodes.anchor_row(1).await;
    let old_digest = Anchor::parse(&old_anchor)
        .unwrap()
        .digest_document()
        .unwrap()
        .digest_sequence;
    let saved = nodes.dir.path().join("node1-audit-saved");
    copy_dir(&nodes.data_dir(1).join("audit"), &saved);
    servers.insert(1, nodes.start(1).await);
    serve_calls(&servers[1], 5).await;
    let recorded = nodes.wait_for_cluster_digest(&[(1, old_digest)]).await;
    for server in servers {
        server.stop().await;
    }

    // Everything given: the chain and all three trails verify.
    let all: Vec<PathBuf> = (0..3).map(|i| nodes.data_dir(i)).collect();
    let v = nodes.verify(&all).await;
    assert!(v.ok(), "{:?}", problems(&v));
    assert!(matches!(v.trust, KeyTrust::Unsealed));
    assert_eq!(v.nodes.len(), 3);
    assert!(v.chain.digests >= 2, "{}", v.chain.digests);
    assert!(
        v.chain.newest.as_ref().unwrap().cluster_digest_sequence
            >= recorded.cluster_digest_sequence
    );

    // A node left out is named.
    let v = nodes.verify(&all[..2]).await;
    assert!(!v.ok());
    assert!(
        has(&v, "node node2's trail was not given"),
        "{:?}",
        problems(&v)
    );

    // An edited cluster digest does not verify.
    let sql = nodes.sql().await;
    let newest: i64 = sql
        .query_one("SELECT MAX(seq) FROM audit_cluster_digests", &[])
        .await
        .unwrap()
        .get(0);
    let edited = sql
        .execute(
            "UPDATE audit_cluster_digests SET document = replace(document, '\"node1\"', '\"nodeX\"') WHERE seq = $1",
            &[&newest],
        )
        .await
        .unwrap();
    assert_eq!(edited, 1);
    let v = nodes.verify(&all).await;
    assert!(
        has(
            &v,
            &format!("cluster digest {newest} does not verify with the cluster signing key")
        ),
        "{:?}",
        problems(&v)
    );
    sql.execute(
        "UPDATE audit_cluster_digests SET document = replace(document, '\"nodeX\"', '\"node1\"') WHERE seq = $1",
        &[&newest],
    )
    .await
    .unwrap();
    assert!(nodes.verify(&all).await.ok());

    // Node 1's trail cut back to before what the chain recorded, its older anchor put back
    // so that its own anchor check passes: the cluster chain still knows.
    std::fs::remove_dir_all(nodes.data_dir(1).join("audit")).unwrap();
    copy_dir(&saved, &nodes.data_dir(1).join("audit"));
    sql.execute(
        "UPDATE meta SET value = $1 WHERE name = 'audit.anchor.node1'",
        &[&old_anchor],
    )
    .await
    .unwrap();
    let v = nodes.verify(&all).await;
    assert!(!v.ok());
    assert!(
        has(&v, "node node1: the trail was truncated: cluster digest"),
        "{:?}",
        problems(&v)
    );
    assert!(
        v.nodes
            .iter()
            .filter(|n| n.label != "node node1")
            .all(|n| n.verified.report.ok()),
        "only node 1 fails: {:?}",
        problems(&v)
    );

    // Node 2's data directory removed altogether.
    std::fs::remove_dir_all(nodes.data_dir(2)).unwrap();
    let v = nodes.verify(&all).await;
    assert!(has(&v, "no audit trail at"), "{:?}", problems(&v));
    assert!(
        has(&v, "node node2's trail was not given"),
        "{:?}",
        problems(&v)
    );
}
