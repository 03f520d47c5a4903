//! `keyhold audit verify --cluster` as an operator runs it against two nodes sharing a
//! PostgreSQL store: it passes with both data directories and fails, naming the node, with
//! one left out. Needs `KEYHOLD_TEST_STORAGE=postgres://...` (skipped with a notice
//! without it); the cases themselves are in the `it` suite's `audit_cluster`.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use keyhold_testkit::TestServer;

fn keyhold(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyhold"))
        .args(args)
        .env("KEYHOLD_LOG", "error")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn cluster_verification_needs_a_postgresql_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let no_store = keyhold(&["audit", "verify", "--cluster", "--data-dir", data]);
    assert!(!no_store.status.success());
    assert!(text(&no_store).contains("--storage"), "{}", text(&no_store));
    let sqlite = keyhold(&[
        "audit",
        "verify",
        "--cluster",
        "--storage",
        "sqlite",
        "--data-dir",
        data,
    ]);
    assert!(!sqlite.status.success());
    assert!(
        text(&sqlite).contains("--storage must be a postgres:// URL"),
        "{}",
        text(&sqlite)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_cluster_passes_with_every_node_and_names_the_one_left_out() {
    let Some(url) = keyhold_testkit::test_storage() else {
        eprintln!("audit_cluster_cli: not run: needs KEYHOLD_TEST_STORAGE=postgres://...");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (storage, _) = keyhold_testkit::postgres_schema_for(&url, &dir.path().join("shared")).await;
    let root_key = dir.path().join("root.key");
    let mut nodes = Vec::new();
    for i in 0..2 {
        let (storage, root_key) = (storage.clone(), root_key.clone());
        let node = TestServer::builder()
            .data_dir(&dir.path().join(format!("n{i}")))
            .deletion_sweep_interval(Duration::from_millis(200))
            .audit(|a| a.digest_interval = Duration::from_secs(1))
            .configure(move |c| {
                c.storage = Some(storage);
                c.seal = Some(keyhold_server::config::SealConfig::KeyFile { path: root_key });
                c.node_id = Some(format!("n{i}"));
            })
            .start()
            .await;
        node.kms().list_keys().send().await.unwrap();
        nodes.push(node);
    }
    let data: Vec<String> = (0..2)
        .map(|i| dir.path().join(format!("n{i}")).display().to_string())
        .collect();
    let key_file = root_key.display().to_string();
    let verify = |dirs: &[String]| {
        let mut args = vec![
            "audit",
            "verify",
            "--cluster",
            "--storage",
            storage.as_str(),
            "--key-file",
            &key_file,
        ];
        for d in dirs {
            args.extend(["--data-dir", d.as_str()]);
        }
        keyhold(&args)
    };
    // Until a cluster digest names both nodes, verification fails (no chain yet) or warns.
    let start = Instant::now();
    loop {
        let out = verify(&data);
        if out.status.success() && !text(&out).contains("WARNING") {
            assert!(text(&out).contains("cluster audit trail verified: OK"));
            assert!(text(&out).contains("node n0 ("), "{}", text(&out));
            assert!(text(&out).contains("node n1 ("), "{}", text(&out));
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the cluster never verified: {}",
            text(&out)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for node in nodes {
        node.stop().await;
    }
    let ok = verify(&data);
    assert!(ok.status.success(), "{}", text(&ok));
    let one = verify(&data[..1]);
    assert!(!one.status.success());
    assert!(
        text(&one).contains("FAILED: node n1's trail was not given"),
        "{}",
        text(&one)
    );
}
