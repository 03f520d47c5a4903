//! `/metrics` on the metrics listener, read with a Prometheus text parser, moves as
//! requests are served; `/health/live` and `/health/ready` answer on both listeners.

use keyhold_testkit::{TestServer, raw};

async fn metrics_server() -> TestServer {
    TestServer::builder()
        .configure(|cfg| cfg.metrics_listen = Some("127.0.0.1:0".parse().unwrap()))
        .start()
        .await
}

/// Scrapes `/metrics` and parses it with `prometheus-parse`.
async fn scrape(server: &TestServer) -> prometheus_parse::Scrape {
    let addr = server.metrics_addr().expect("a metrics listener");
    let answer = raw::request(addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(answer.status, 200, "{}", answer.body_text());
    let text = answer.body_text();
    assert!(!text.contains("hunter2"), "a secret in the metrics");
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses")
}

/// The value of the sample named `name` whose labels include `labels`.
fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            prometheus_parse::Value::Summary(_) => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn metrics_parse_and_move_as_requests_are_served() {
    let server = metrics_server().await;
    // On PostgreSQL the change feed drops every cache once it listens (whatever changed
    // before was not heard); under load (a TLS handshake, a busy machine) that can fall
    // between the encryptions below. Wait for it first.
    if keyhold_testkit::test_storage().is_some() {
        let everything = [("kind", "everything")];
        let start = std::time::Instant::now();
        while value(
            &scrape(&server).await,
            "keyhold_cache_invalidations_total",
            &everything,
        ) < 1.0
        {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "the change feed never listened"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    let before = scrape(&server).await;
    let create = [
        ("service", "kms"),
        ("operation", "CreateKey"),
        ("outcome", "success"),
    ];
    assert_eq!(value(&before, "keyhold_requests_total", &create), 0.0);

    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap();
    let key_id = key.key_metadata().unwrap().key_id();
    for _ in 0..3 {
        kms.encrypt()
            .key_id(key_id)
            .plaintext(aws_sdk_kms::primitives::Blob::new(b"x".to_vec()))
            .send()
            .await
            .unwrap();
    }
    let missing = kms.describe_key().key_id("alias/missing").send().await;
    assert!(missing.is_err());
    server
        .secrets_manager()
        .create_secret()
        .name("m")
        .secret_string("hunter2")
        .send()
        .await
        .unwrap();

    let after = scrape(&server).await;
    assert_eq!(value(&after, "keyhold_requests_total", &create), 1.0);
    let encrypt = [("operation", "Encrypt"), ("outcome", "success")];
    assert_eq!(value(&after, "keyhold_requests_total", &encrypt), 3.0);
    let not_found = [("operation", "DescribeKey"), ("outcome", "client_error")];
    assert_eq!(value(&after, "keyhold_requests_total", &not_found), 1.0);
    let latency_count = [("service", "kms"), ("operation", "Encrypt")];
    assert_eq!(
        value(
            &after,
            "keyhold_request_duration_seconds_count",
            &latency_count
        ),
        3.0
    );
    // Every call was audited: batches were committed, and their sizes add up.
    assert!(value(&after, "keyhold_audit_batch_events_count", &[]) >= 1.0);
    assert!(value(&after, "keyhold_audit_batch_events_sum", &[]) >= 6.0);
    assert!(value(&after, "keyhold_audit_commit_seconds_count", &[]) >= 1.0);
    // The encryptions found their key in the cache.
    let hits = [("cache", "kms_keys"), ("result", "hit")];
    assert!(value(&after, "keyhold_cache_lookups_total", &hits) >= 3.0);
    assert_eq!(value(&after, "keyhold_ready", &[]), 1.0);
}

#[tokio::test]
async fn health_endpoints_answer_on_both_listeners() {
    let server = metrics_server().await;
    for addr in [server.addr(), server.metrics_addr().unwrap()] {
        let live = raw::request(addr, "GET", "/health/live", &[], b"").await;
        assert_eq!(live.status, 200);
        assert_eq!(live.json()["status"], "live");
        let ready = raw::request(addr, "GET", "/health/ready", &[], b"").await;
        assert_eq!(ready.status, 200, "{}", ready.body_text());
        assert_eq!(ready.json()["status"], "ready");
        assert_eq!(ready.json()["checks"]["store"], "ok");
        assert_eq!(ready.json()["checks"]["audit"], "ok");
    }
    // The metrics stay off the service listener.
    let answer = raw::request(server.addr(), "GET", "/metrics", &[], b"").await;
    assert_ne!(answer.status, 200);
}

/// An API request is answered and counted whichever way it reaches its handler: on a path
/// outside `/_keyhold/` straight from the connection, on an unrouted `/_keyhold/` path as
/// the routers' fallback.
#[tokio::test]
async fn api_requests_on_any_path_are_answered_and_counted() {
    let server = metrics_server().await;
    let headers = [
        ("Content-Type", "application/x-amz-json-1.1"),
        ("X-Amz-Target", "TrentService.ListKeys"),
    ];
    let served = [
        ("service", "kms"),
        ("operation", "ListKeys"),
        ("outcome", "success"),
    ];
    let before = value(&scrape(&server).await, "keyhold_requests_total", &served);
    for path in ["/", "/elsewhere", "/_keyhold/nothing-here"] {
        // Unsigned: dev mode serves it as the default account.
        let answer = raw::request(server.addr(), "POST", path, &headers, b"{}").await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body_text());
        assert!(
            answer.json()["Keys"].is_array(),
            "{path}: {}",
            answer.body_text()
        );
        assert!(answer.header("x-amzn-requestid").is_some(), "{path}");
    }
    let after = value(&scrape(&server).await, "keyhold_requests_total", &served);
    assert_eq!(after - before, 3.0);
}
