//! Lookups across three Keyhold nodes on one PostgreSQL store (docs/ha.md, docs/audit.md):
//! `LookupEvents` and `GetKeyLastUsage` on any node find the events every node recorded —
//! another node's within the documented lag (one second), the caller's own at once — and
//! a `NextToken` from one node continues on another. A node that stops and starts again
//! resumes publishing its trail with no gap and no duplicate.
//!
//! Needs `KEYHOLD_TEST_STORAGE=postgres://...` (as `.ci/run` sets for its PostgreSQL pass);
//! without it each test says why it did not run and passes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_kms::operation::RequestId as _;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::KeyLastUsageTrackingOperation as Op;
use keyhold_server::config::{SealConfig, StorageUrl};
use keyhold_testkit::{TestServer, audit_files};
use serde_json::{Value, json};

/// How soon another node's event must be found (docs/ha.md), with room for a loaded
/// test machine.
const LAG: Duration = Duration::from_secs(3);

const LOOKUP_EVENTS: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents";

struct Cluster {
    nodes: Vec<TestServer>,
    storage: StorageUrl,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// `n` nodes sharing a fresh schema and one root key file, each with its own data
    /// directory and `node_id` (`node0`, ...); `None` (saying why) without PostgreSQL.
    async fn start(test: &str, n: usize) -> Option<Self> {
        let Some(url) = keyhold_testkit::test_storage() else {
            eprintln!(
                "{test}: not run: the cluster tests need a PostgreSQL store (KEYHOLD_TEST_STORAGE=postgres://...)"
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let (storage, _) =
            keyhold_testkit::postgres_schema_for(&url, &dir.path().join("shared")).await;
        let mut cluster = Self {
            nodes: Vec::new(),
            storage,
            dir,
        };
        for i in 0..n {
            let node = cluster.node(i).await;
            cluster.nodes.push(node);
        }
        Some(cluster)
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node{i}"))
    }

    /// Starts node `i` (again: on its data directory as it was left).
    async fn node(&self, i: usize) -> TestServer {
        self.node_with(i, |_| {}).await
    }

    /// Starts node `i` with its trail configured by `audit`.
    async fn node_with(
        &self,
        i: usize,
        audit: impl FnOnce(&mut keyhold_server::audit::trail::TrailConfig),
    ) -> TestServer {
        let storage = self.storage.clone();
        let seal = SealConfig::KeyFile {
            path: self.dir.path().join("root.key"),
        };
        TestServer::builder()
            .data_dir(&self.data_dir(i))
            .deletion_sweep_interval(Duration::from_secs(60))
            .audit(audit)
            .configure(move |c| {
                c.storage = Some(storage);
                c.seal = Some(seal);
                c.node_id = Some(format!("node{i}"));
            })
            .start()
            .await
    }

    /// A connection to the shared schema.
    async fn db(&self) -> tokio_postgres::Client {
        let config = keyhold_store::parse_postgres_url(self.storage.as_str()).unwrap();
        let (client, connection) = config.connect().await.unwrap();
        tokio::spawn(connection);
        client
    }
}

async fn lookup(node: &TestServer, body: Value) -> Value {
    let r = node.raw_json(LOOKUP_EVENTS, &body.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    r.json()
}

fn by(key: &str, value: &str) -> Value {
    json!({"LookupAttributes": [{"AttributeKey": key, "AttributeValue": value}]})
}

fn events(answer: &Value) -> Vec<Value> {
    answer["Events"].as_array().cloned().unwrap_or_default()
}

fn ids(answer: &Value) -> Vec<String> {
    events(answer)
        .iter()
        .map(|e| e["EventId"].as_str().unwrap().to_owned())
        .collect()
}

/// Asks `node` until `check` holds on its answer to `body`; fails after [`LAG`].
async fn eventually(
    node: &TestServer,
    body: Value,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let answer = lookup(node, body.clone()).await;
        if check(&answer) {
            eprintln!("{what}: after {:?}", start.elapsed());
            return answer;
        }
        assert!(
            start.elapsed() <= LAG,
            "{what}: not within {LAG:?}: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn encrypt(kms: &aws_sdk_kms::Client, key: &str) -> Vec<u8> {
    kms.encrypt()
        .key_id(key)
        .plaintext(Blob::new(b"cluster".to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap()
        .into_inner()
}

/// Waits until the wall clock is past the next whole second (plus a little); returns that
/// second (epoch seconds).
async fn next_second() -> i64 {
    let now = keyhold_testkit::unix_now();
    let boundary = now + 1;
    while keyhold_testkit::unix_now() < boundary {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    boundary
}

#[tokio::test]
async fn events_made_on_one_node_are_looked_up_on_another_by_name_resource_id_time_and_pages() {
    let Some(c) = Cluster::start("cluster_lookups::events", 3).await else {
        return;
    };
    let (a, b, cc) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    let (kms_a, kms_b) = (a.kms(), b.kms());

    // The caller's own call is found at once, on the node it made it through.
    let key = kms_a
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let arn = key.arn.clone().unwrap();
    let own = lookup(a, by("ResourceName", &arn)).await;
    assert_eq!(events(&own).len(), 1, "{own}");
    assert_eq!(own["Events"][0]["EventName"], "CreateKey");
    let create_id = own["Events"][0]["EventId"].as_str().unwrap().to_owned();

    // On another node: by event id, by event name, by resource name.
    eventually(
        b,
        by("EventId", &create_id),
        "CreateKey by EventId on B",
        |x| ids(x) == [create_id.clone()],
    )
    .await;
    let created = lookup(b, by("EventName", "CreateKey")).await;
    assert_eq!(ids(&created), [create_id.as_str()]);
    assert_eq!(created["Events"][0]["Resources"][0]["ResourceName"], arn);
    let record: Value =
        serde_json::from_str(created["Events"][0]["CloudTrailEvent"].as_str().unwrap()).unwrap();
    assert_eq!(
        record["eventID"],
        create_id.as_str(),
        "the record travels whole"
    );

    // Phase 1 on A, phase 2 (after a whole-second boundary) on B, with the same key.
    let mut blobs = Vec::new();
    for _ in 0..3 {
        blobs.push(encrypt(&kms_a, &arn).await);
    }
    let boundary = next_second().await;
    for blob in &blobs {
        kms_b
            .decrypt()
            .ciphertext_blob(Blob::new(blob.clone()))
            .send()
            .await
            .unwrap();
    }
    // Own calls on B at once; A's within the lag: 1 CreateKey + 3 Encrypt + 3 Decrypt.
    let decrypts = lookup(b, by("EventName", "Decrypt")).await;
    assert_eq!(
        events(&decrypts).len(),
        3,
        "B sees its own Decrypts at once"
    );
    let on_c = eventually(
        cc,
        by("ResourceName", &arn),
        "the key's 7 events on C",
        |x| events(x).len() == 7,
    )
    .await;
    let times: Vec<f64> = events(&on_c)
        .iter()
        .map(|e| e["EventTime"].as_f64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first across nodes: {times:?}"
    );
    let names: Vec<String> = events(&on_c)
        .iter()
        .map(|e| e["EventName"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "Decrypt",
            "Decrypt",
            "Decrypt",
            "Encrypt",
            "Encrypt",
            "Encrypt",
            "CreateKey"
        ]
    );

    // The time range splits at the boundary: A's events before it, B's after.
    let before = lookup(
        cc,
        json!({"LookupAttributes": [{"AttributeKey": "ResourceName", "AttributeValue": arn}],
               "EndTime": boundary}),
    )
    .await;
    let after = lookup(
        cc,
        json!({"LookupAttributes": [{"AttributeKey": "ResourceName", "AttributeValue": arn}],
               "StartTime": boundary}),
    )
    .await;
    assert_eq!(events(&before).len(), 4, "{before}");
    assert_eq!(events(&after).len(), 3, "{after}");
    assert!(events(&after).iter().all(|e| e["EventName"] == "Decrypt"));

    // Pages of 2, each asked of the next node: the same events, once each, in order.
    let mut paged = Vec::new();
    let mut token: Option<String> = None;
    for round in 0.. {
        let node = &c.nodes[round % 3];
        let mut body = by("ResourceName", &arn);
        body["MaxResults"] = json!(2);
        if let Some(t) = &token {
            body["NextToken"] = json!(t);
        }
        let page = lookup(node, body).await;
        assert!(events(&page).len() <= 2);
        paged.extend(ids(&page));
        match page["NextToken"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
        assert!(round < 10, "pages never end");
    }
    assert_eq!(paged, ids(&on_c));

    // A token this service did not issue is refused on every node, and so is a single
    // node's (`ct:5`, which names a sequence of one node's trail, not a shared position).
    for node in &c.nodes {
        for token in ["bm90LWEtdG9rZW4", "Y3Q6NQ"] {
            let r = node
                .raw_json(LOOKUP_EVENTS, &format!(r#"{{"NextToken":"{token}"}}"#))
                .await;
            assert_eq!(r.json()["__type"], "InvalidNextTokenException", "{token}");
        }
    }
}

#[tokio::test]
async fn get_key_last_usage_on_one_node_reports_a_decrypt_made_on_another() {
    let Some(c) = Cluster::start("cluster_lookups::last_usage", 3).await else {
        return;
    };
    let (kms_a, kms_c) = (c.nodes[0].kms(), c.nodes[2].kms());
    let key = kms_a
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let blob = encrypt(&kms_a, &key.key_id).await;
    let out = kms_a
        .decrypt()
        .ciphertext_blob(Blob::new(blob))
        .send()
        .await
        .unwrap();
    let decrypt_request = out.request_id().unwrap().to_owned();
    let start = Instant::now();
    loop {
        let usage = kms_c
            .get_key_last_usage()
            .key_id(&key.key_id)
            .send()
            .await
            .unwrap()
            .key_last_usage;
        let seen = usage.as_ref().map(|u| {
            (
                u.operation.clone().unwrap(),
                u.kms_request_id.clone().unwrap(),
            )
        });
        if seen == Some((Op::Decrypt, decrypt_request.clone())) {
            eprintln!("the Decrypt on A reported on C after {:?}", start.elapsed());
            break;
        }
        assert!(
            start.elapsed() <= LAG,
            "the Decrypt on A is not reported on C: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// (seq, event id) of `node`'s rows in the shared index, in order.
async fn published_rows(db: &tokio_postgres::Client, node: &str) -> Vec<(i64, String)> {
    db.query(
        "SELECT seq, event_id FROM audit_lookup_events WHERE node = $1 ORDER BY seq",
        &[&node],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// (seq, event id) of every event in the trail of the data directory `dir`.
fn trail_rows(dir: &Path) -> Vec<(i64, String)> {
    audit_files::rows(dir)
        .into_iter()
        .map(|r| (r.seq, r.event_id))
        .collect()
}

async fn published_through(db: &tokio_postgres::Client, node: &str) -> i64 {
    db.query_opt(
        "SELECT published_through FROM audit_lookup_nodes WHERE node = $1",
        &[&node],
    )
    .await
    .unwrap()
    .map_or(0, |r| r.get(0))
}

/// Waits until `node`'s whole trail (in `dir`) is published and returns it.
async fn wait_published(db: &tokio_postgres::Client, node: &str, dir: &Path) -> Vec<(i64, String)> {
    let start = Instant::now();
    loop {
        let trail = trail_rows(dir);
        let tail = trail.last().map_or(0, |r| r.0);
        if published_through(db, node).await >= tail && tail > 0 {
            return trail;
        }
        assert!(start.elapsed() <= LAG, "{node} never published its trail");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_restarted_node_resumes_publishing_with_no_gap_and_no_duplicate() {
    let Some(mut c) = Cluster::start("cluster_lookups::restart", 2).await else {
        return;
    };
    let db = c.db().await;
    let kms = c.nodes[0].kms();
    for _ in 0..5 {
        kms.create_key().send().await.unwrap();
    }
    let trail = wait_published(&db, "node0", &c.data_dir(0)).await;
    assert_eq!(published_rows(&db, "node0").await, trail);

    // Stopped, then set back as a crash before its last batches were published leaves it.
    let node0 = c.nodes.remove(0);
    node0.stop().await;
    let stopped = trail_rows(&c.data_dir(0));
    let keep = 3;
    assert!(stopped.len() > keep, "{stopped:?}");
    db.batch_execute(&format!(
        "DELETE FROM audit_lookup_resources WHERE node = 'node0' AND seq > {keep};
         DELETE FROM audit_lookup_events WHERE node = 'node0' AND seq > {keep};
         UPDATE audit_lookup_nodes SET published_through = {keep} WHERE node = 'node0';"
    ))
    .await
    .unwrap();

    // Started again, it publishes the rest, and what it records from now on.
    let node0 = c.node(0).await;
    let key = node0
        .kms()
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let trail = wait_published(&db, "node0", &c.data_dir(0)).await;
    assert!(trail.len() > stopped.len());
    let published = published_rows(&db, "node0").await;
    assert_eq!(
        published, trail,
        "every event of the trail once, under its own sequence"
    );
    let seqs: Vec<i64> = published.iter().map(|r| r.0).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());

    // And the other node finds the new event.
    eventually(
        &c.nodes[0],
        by("ResourceName", key.arn.as_deref().unwrap()),
        "node0's event after its restart, on node1",
        |x| events(x).len() == 1,
    )
    .await;
    node0.stop().await;
}

#[tokio::test]
async fn retention_pruning_a_node_s_trail_removes_its_events_from_the_shared_index() {
    let Some(mut c) = Cluster::start("cluster_lookups::retention", 1).await else {
        return;
    };
    let db = c.db().await;
    let dir = c.data_dir(0);
    // Two sessions 3 s apart: the first one's digest period (and segment) ages past a
    // 1.5 s retention, the second's does not.
    for _ in 0..3 {
        c.nodes[0].kms().list_keys().send().await.unwrap();
    }
    wait_published(&db, "node0", &dir).await;
    c.nodes.remove(0).stop().await;
    let first_end = audit_files::digests(&dir)[0].last_seq;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let second = c.node(0).await;
    for _ in 0..3 {
        second.kms().list_keys().send().await.unwrap();
    }
    wait_published(&db, "node0", &dir).await;
    second.stop().await;
    assert_eq!(
        published_rows(&db, "node0").await.first().map(|r| r.0),
        Some(1)
    );

    let node = c
        .node_with(0, |a| a.retention = Some(Duration::from_millis(1500)))
        .await;
    let start = Instant::now();
    while audit_files::digests(&dir).first().map(|d| d.seq) == Some(1) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "retention never pruned"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Within the publisher's check (a second), the shared index holds what the trail holds.
    let start = Instant::now();
    loop {
        let published = published_rows(&db, "node0").await;
        if published.first().is_some_and(|r| r.0 > first_end) {
            let trail = trail_rows(&dir);
            assert_eq!(
                published[..],
                trail[..published.len()],
                "the trail's events, once each"
            );
            break;
        }
        assert!(
            start.elapsed() <= LAG,
            "the pruned events (through {first_end}) are still published: {:?}",
            published.first()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    node.stop().await;
}
