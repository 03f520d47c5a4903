//! Request quotas as AWS applies them: past its quota a key's callers get
//! `ThrottlingException` with AWS's wording, the SDK's retry recovers, and dev mode is
//! unthrottled unless quotas are turned on.

use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::primitives::Blob;
use keyhold_testkit::{DEFAULT_ACCOUNT, DEFAULT_REGION, TestServer, raw};

const SYMMETRIC: &str = "kms:CryptographicOperationsSymmetric";

async fn throttled_server(quota: &str, rate: f64) -> TestServer {
    let quota = quota.to_owned();
    TestServer::builder()
        .configure(move |cfg| {
            cfg.quotas.enabled = Some(true);
            cfg.quotas.rates.insert(quota, rate);
            cfg.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        })
        .start()
        .await
}

fn kms_with_retry(server: &TestServer, retry: RetryConfig) -> aws_sdk_kms::Client {
    let config = server.sdk_config(DEFAULT_ACCOUNT, "dev", DEFAULT_REGION);
    let config = aws_sdk_kms::config::Builder::from(&config)
        .retry_config(retry)
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

async fn throttled_count(server: &TestServer) -> f64 {
    let answer = raw::request(server.metrics_addr().unwrap(), "GET", "/metrics", &[], b"").await;
    let text = answer.body_text();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == "keyhold_throttled_requests_total")
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn a_key_past_its_quota_is_throttled_and_the_sdk_retry_recovers() {
    let server = throttled_server(SYMMETRIC, 5.0).await;
    let key = server.kms().create_key().send().await.unwrap();
    let key_id = key.key_metadata().unwrap().key_id().to_owned();

    // Without retries the caller sees AWS's ThrottlingException once the bucket is empty.
    let no_retry = kms_with_retry(&server, RetryConfig::disabled());
    let mut throttled = None;
    for _ in 0..50 {
        let answer = no_retry
            .encrypt()
            .key_id(&key_id)
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
            .await;
        if let Err(e) = answer {
            throttled = Some(e.into_service_error());
            break;
        }
    }
    let err = throttled.expect("throttled within 50 calls at 5 requests/s");
    assert_eq!(err.meta().code(), Some("ThrottlingException"));
    assert_eq!(
        err.meta().message(),
        Some(
            "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls."
        )
    );

    // The SDK's standard retry (backoff) gets through once the bucket refills.
    let before = throttled_count(&server).await;
    let retrying = kms_with_retry(&server, RetryConfig::standard().with_max_attempts(10));
    retrying
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await
        .expect("the retry recovers");
    assert!(
        throttled_count(&server).await > before,
        "the retried call was throttled first"
    );

    // The shared quota is per account and Region: another account is not throttled.
    server
        .kms_for("111122223333", DEFAULT_REGION)
        .generate_random()
        .number_of_bytes(8)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn other_services_throttle_in_their_own_words() {
    let server = throttled_server("secretsmanager:GetSecretValue", 1.0).await;
    let sm = server.secrets_manager();
    sm.create_secret()
        .name("q")
        .secret_string("v")
        .send()
        .await
        .unwrap();
    let body = r#"{"SecretId":"q"}"#;
    let first = server.raw_json("secretsmanager.GetSecretValue", body).await;
    assert_eq!(first.status, 200, "{}", first.body_text());
    let second = server.raw_json("secretsmanager.GetSecretValue", body).await;
    assert_eq!(second.status, 400);
    assert_eq!(second.json()["__type"], "ThrottlingException");
    assert_eq!(second.json()["Message"], "Rate exceeded");
}

#[tokio::test]
async fn dev_mode_is_unthrottled_by_default() {
    let server = TestServer::start().await;
    let kms = kms_with_retry(&server, RetryConfig::disabled());
    // CreateKey's AWS quota is 5 per second: a burst of 20 would be throttled.
    for _ in 0..20 {
        kms.create_key().send().await.unwrap();
    }
}
