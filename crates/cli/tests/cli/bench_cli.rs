//! `keyhold bench --endpoint` against a running test server: SigV4-signed requests, a mix
//! of reads and durable writes, and a JSON report whose counts add up.

use std::process::Command;

use keyhold_testkit::TestServer;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_against_an_endpoint_reports_every_operation_of_the_mix_in_json() {
    let server = TestServer::start().await;
    let endpoint = server.endpoint();
    let mix = "decrypt=40,encrypt=5,generate-data-key=5,get-secret-value=15,get-parameter=15,\
               create-key=5,put-secret-value=10,put-parameter=5";
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_keyhold"))
            .args(["bench", "--endpoint", &endpoint, "--json", "--mix", mix])
            .args(["--keys", "5", "--connections", "4"])
            .args([
                "--warmup",
                "0.2",
                "--duration",
                "1.5",
                "--region",
                "eu-west-1",
            ])
            // Credentials from the standard variables; dev mode: the account is the key id.
            .env("AWS_ACCESS_KEY_ID", "111122223333")
            .env("AWS_SECRET_ACCESS_KEY", "bench-secret")
            .env_remove("AWS_SESSION_TOKEN")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(report["connections"], 4);
    assert_eq!(report["keys"], 5);
    assert_eq!(
        report["endpoint"].as_str(),
        Some(server.endpoint().as_str())
    );
    let ops = report["operations"].as_object().unwrap();
    for name in [
        "decrypt",
        "encrypt",
        "generate-data-key",
        "get-secret-value",
        "get-parameter",
        "create-key",
        "put-secret-value",
        "put-parameter",
    ] {
        let op = &ops[name];
        assert!(op["requests"].as_u64().unwrap() > 0, "{name}: {op}");
        assert_eq!(op["errors"], 0, "{name}: {op}");
        let l = &op["latency_ms"];
        let (p50, p99, p999, max) = (
            l["p50"].as_f64().unwrap(),
            l["p99"].as_f64().unwrap(),
            l["p99_9"].as_f64().unwrap(),
            l["max"].as_f64().unwrap(),
        );
        assert!(
            0.0 < p50 && p50 <= p99 && p99 <= p999 && p999 <= max,
            "{name}: {l}"
        );
    }
    // PutSecretValue opens a new secret with CreateSecret every 90 versions (the first
    // ones, during the warm-up, are not counted).
    if let Some(create) = ops.get("create-secret") {
        assert_eq!(create["errors"], 0, "{create}");
    }
    let total = &report["total"];
    let sum: u64 = ops.values().map(|o| o["requests"].as_u64().unwrap()).sum();
    assert_eq!(total["requests"].as_u64(), Some(sum));
    assert_eq!(total["errors"], 0);
    assert!(total["requests_per_second"].as_f64().unwrap() > 0.0);

    // The set-up went through the API: the five working-set keys and the created ones
    // are in the account the credentials name, in the region asked for.
    let kms = server.kms_for("111122223333", "eu-west-1");
    let keys = kms.list_keys().limit(1000).send().await.unwrap();
    let created = ops["create-key"]["requests"].as_u64().unwrap() as usize;
    assert!(keys.keys().len() >= 5 + created, "{}", keys.keys().len());
}

#[test]
fn bench_refuses_an_unknown_operation_in_the_mix() {
    let out = Command::new(env!("CARGO_BIN_EXE_keyhold"))
        .args(["bench", "--mix", "decrypt=1,frobnicate=2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown operation `frobnicate`"),
        "{stderr}"
    );
}
