//! Crash test of a cluster (docs/ha.md): three real `keyhold serve` processes on one
//! PostgreSQL store take a load of writes — CreateKey, CreateSecret and PutSecretValue,
//! PutParameter — on every node; one node is killed with SIGKILL in the middle of it. Every
//! write that was answered is then found through the surviving nodes (each key id, each
//! secret version id, each parameter version), the killed node starts again on its data
//! directory and serves what the others wrote, and each node's audit trail verifies
//! against its anchor in the shared store (`keyhold audit verify --storage --node-id`).
//!
//! Needs `KEYHOLD_TEST_STORAGE=postgres://...` (the database `.ci/run`'s PostgreSQL pass
//! creates; the test works in a fresh schema of it); without it the test says why it did
//! not run and passes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Writes each worker makes to one secret or parameter before it starts another (a secret
/// holds at most 100 versions younger than a day, a parameter keeps its last 100).
const PER_RESOURCE: usize = 40;
/// Workers per node.
const WORKERS: usize = 6;

/// What the surviving nodes must hold: every write that was answered.
#[derive(Default)]
struct Acknowledged {
    keys: Vec<String>,
    /// (secret ARN, version id).
    secret_versions: Vec<(String, String)>,
    /// (parameter name, version).
    param_versions: Vec<(String, i64)>,
}

struct Node {
    config: PathBuf,
    data_dir: PathBuf,
    addr: SocketAddr,
    child: Option<Child>,
}

impl Node {
    fn start(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_keyhold"))
            .args(["serve", "--config"])
            .arg(&self.config)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen", &self.addr.to_string()])
            .env("KEYHOLD_LOG", "warn")
            .env_remove("KEYHOLD_STORAGE")
            .env_remove("KEYHOLD_NODE_ID")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn kill_9(&mut self) {
        let mut child = self.child.take().expect("a running node");
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_a_node_under_a_write_load_loses_no_acknowledged_write() {
    let Some(url) = keyhold_testkit::test_storage() else {
        eprintln!(
            "cluster_crash: not run: it needs a PostgreSQL store (KEYHOLD_TEST_STORAGE=postgres://...)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (storage, _) = keyhold_testkit::postgres_schema_for(&url, &dir.path().join("shared")).await;
    let root_key = dir.path().join("root.key");
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| {
            let data_dir = dir.path().join(format!("node{i}"));
            let config = dir.path().join(format!("node{i}.toml"));
            std::fs::write(
                &config,
                format!(
                    "mode = \"dev\"\nstorage = {storage}\nnode_id = \"node{i}\"\n\n[seal]\nkind = \"key_file\"\npath = {root}\n",
                    storage = toml_string(storage.as_str()),
                    root = toml_string(&root_key.to_string_lossy()),
                ),
            )
            .unwrap();
            Node {
                config,
                data_dir,
                addr: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
                child: None,
            }
        })
        .collect();
    // The first node makes the root key file and initializes the store; then the others.
    for node in &mut nodes {
        node.start();
        wait_up(node.addr).await;
    }

    let acknowledged = Arc::new(Mutex::new(Acknowledged::default()));
    let mut workers = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for w in 0..WORKERS {
            let (addr, acknowledged) = (node.addr, acknowledged.clone());
            workers.push(tokio::spawn(async move {
                load(addr, &format!("n{n}w{w}"), w % 3, &acknowledged).await;
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let killed_at = {
        let a = acknowledged.lock().unwrap();
        a.keys.len() + a.secret_versions.len() + a.param_versions.len()
    };
    nodes[1].kill_9();
    // The workers of the other nodes keep writing a while after the kill.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    for w in workers {
        w.abort();
        let _ = w.await;
    }
    let acknowledged = std::mem::take(&mut *acknowledged.lock().unwrap());
    eprintln!(
        "cluster_crash: {killed_at} writes answered before the kill; in all {} keys, {} secret \
         versions, {} parameter versions",
        acknowledged.keys.len(),
        acknowledged.secret_versions.len(),
        acknowledged.param_versions.len(),
    );
    assert!(
        killed_at > 30 && !acknowledged.keys.is_empty(),
        "the load reached the nodes ({killed_at} writes)"
    );
    assert!(!acknowledged.secret_versions.is_empty() && !acknowledged.param_versions.is_empty());

    // Every answered write, through the survivors (alternately).
    let survivors = [nodes[0].addr, nodes[2].addr];
    let missing = find_all(&survivors, &acknowledged).await;
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");

    // The killed node starts again on its data directory and serves what all wrote.
    nodes[1].start();
    wait_up(nodes[1].addr).await;
    let missing = find_all(&[nodes[1].addr], &acknowledged).await;
    assert!(
        missing.is_empty(),
        "the restarted node misses acknowledged writes: {missing:?}"
    );
    let (status, body) = call(nodes[1].addr, "TrentService.CreateKey", &json!({}))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");

    // Each node's trail verifies against its anchor in the shared store.
    for node in &mut nodes {
        node.stop();
    }
    for (i, node) in nodes.iter().enumerate() {
        let out = Command::new(env!("CARGO_BIN_EXE_keyhold"))
            .args(["audit", "verify", "--data-dir"])
            .arg(&node.data_dir)
            .arg("--key-file")
            .arg(&root_key)
            .args([
                "--storage",
                storage.as_str(),
                "--node-id",
                &format!("node{i}"),
            ])
            .env("KEYHOLD_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "node{i}'s trail: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// One worker's writes on `addr` until it is aborted or the node stops answering: keys,
/// secrets or parameters (`kind` 0, 1, 2), each answered write recorded.
async fn load(addr: SocketAddr, name: &str, kind: usize, acknowledged: &Mutex<Acknowledged>) {
    let mut secret: Option<String> = None;
    for i in 0.. {
        let resource = i / PER_RESOURCE;
        let outcome = match kind {
            0 => call(addr, "TrentService.CreateKey", &json!({}))
                .await
                .map(|(status, body)| {
                    if let Some(id) = answered(status, &body, &["KeyMetadata", "KeyId"]) {
                        acknowledged.lock().unwrap().keys.push(id);
                    }
                }),
            1 => {
                let value = format!("{name}-{i}");
                // The SDKs fill in the idempotency token; a raw request names its own.
                let token = format!("token-{name}-{i:0>28}");
                let answer = match &secret {
                    Some(arn) if i % PER_RESOURCE != 0 => {
                        let body = json!({"SecretId": arn, "SecretString": value, "ClientRequestToken": token});
                        call(addr, "secretsmanager.PutSecretValue", &body).await
                    }
                    _ => {
                        let body = json!({
                            "Name": format!("{name}-{resource}"),
                            "SecretString": value,
                            "ClientRequestToken": token,
                        });
                        call(addr, "secretsmanager.CreateSecret", &body).await
                    }
                };
                answer.map(|(status, body)| {
                    let arn = answered(status, &body, &["ARN"]);
                    let version = answered(status, &body, &["VersionId"]);
                    if let (Some(arn), Some(version)) = (arn, version) {
                        secret = Some(arn.clone());
                        acknowledged
                            .lock()
                            .unwrap()
                            .secret_versions
                            .push((arn, version));
                    }
                })
            }
            _ => {
                let param = format!("/crash/{name}/{resource}");
                let body = json!({"Name": param, "Value": format!("{i}"), "Type": "String", "Overwrite": true});
                call(addr, "AmazonSSM.PutParameter", &body)
                    .await
                    .map(|(status, body)| {
                        let version = serde_json::from_str::<Value>(&body)
                            .ok()
                            .and_then(|v| v["Version"].as_i64())
                            .filter(|_| status == 200);
                        if let Some(version) = version {
                            acknowledged
                                .lock()
                                .unwrap()
                                .param_versions
                                .push((param, version));
                        }
                    })
            }
        };
        if outcome.is_err() {
            return; // the node is gone
        }
    }
}

/// The acknowledged writes none of `nodes` has (each read on the next node in turn).
async fn find_all(nodes: &[SocketAddr], acknowledged: &Acknowledged) -> Vec<String> {
    let mut missing = Vec::new();
    let mut turn = nodes.iter().cycle();
    for key in &acknowledged.keys {
        let node = *turn.next().unwrap();
        let (status, body) = call(node, "TrentService.DescribeKey", &json!({"KeyId": key}))
            .await
            .unwrap();
        if status != 200 {
            missing.push(format!("key {key}: {status} {body}"));
        }
    }
    for (arn, version) in &acknowledged.secret_versions {
        let node = *turn.next().unwrap();
        let request = json!({"SecretId": arn, "VersionId": version});
        let (status, body) = call(node, "secretsmanager.GetSecretValue", &request)
            .await
            .unwrap();
        if status != 200 || str_at(&body, &["VersionId"]) != *version {
            missing.push(format!("secret {arn} version {version}: {status} {body}"));
        }
    }
    for (name, version) in &acknowledged.param_versions {
        let node = *turn.next().unwrap();
        let request = json!({"Name": format!("{name}:{version}")});
        let (status, body) = call(node, "AmazonSSM.GetParameter", &request)
            .await
            .unwrap();
        let found = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["Parameter"]["Version"].as_i64());
        if status != 200 || found != Some(*version) {
            missing.push(format!(
                "parameter {name} version {version}: {status} {body}"
            ));
        }
    }
    missing
}

/// The string at `path` of a successful answer's body (`None`: no answer, or a cut one).
fn answered(status: u16, body: &str, path: &[&str]) -> Option<String> {
    let mut value = serde_json::from_str::<Value>(body).ok()?;
    for field in path {
        value = value[*field].take();
    }
    value.as_str().filter(|_| status == 200).map(str::to_owned)
}

fn str_at(body: &str, path: &[&str]) -> String {
    let mut value = serde_json::from_str::<Value>(body).unwrap();
    for field in path {
        value = value[*field].take();
    }
    value
        .as_str()
        .unwrap_or_else(|| panic!("{path:?} in {body}"))
        .to_owned()
}

/// One unsigned JSON request (dev mode) on its own connection: (status, body).
async fn call(addr: SocketAddr, target: &str, body: &Value) -> std::io::Result<(u16, String)> {
    let (status, _, body) = crate::audit_crash::call(addr, target, &body.to_string()).await?;
    Ok((status, body))
}

async fn wait_up(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if call(addr, "TrentService.ListKeys", &json!({}))
            .await
            .is_ok_and(|r| r.0 == 200)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the node at {addr} did not come up");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}
