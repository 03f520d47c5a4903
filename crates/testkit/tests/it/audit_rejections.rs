//! Calls rejected before dispatch (bad signatures, unknown access keys, unknown operations,
//! oversized bodies) are recorded with their `errorCode`, rate limited so that a flood
//! cannot fill the disk.

use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_kms::error::ProvideErrorMetadata as _;
use keyhold_server::audit::offline;
use keyhold_testkit::{TestServer, raw};
use serde_json::Value;

const KEY: &str = "AKIAREJECTIONS000001";
const SECRET: &str = "rejections-secret-0000000000000001";
const ACCOUNT: &str = "111122223333";

fn records(dir: &Path) -> Vec<Value> {
    keyhold_testkit::audit_files::records(dir)
}

async fn strict(dir: &Path) -> TestServer {
    TestServer::builder()
        .data_dir(dir)
        .strict(&[(KEY, SECRET, ACCOUNT)])
        .start()
        .await
}

#[tokio::test]
async fn a_bad_signature_and_an_unknown_key_are_recorded_with_their_error_code() {
    let dir = tempfile::tempdir().unwrap();
    let server = strict(dir.path()).await;
    let forged = aws_sdk_kms::Client::new(&server.sdk_config(KEY, "not-the-secret", "eu-west-1"));
    let e = forged.list_keys().send().await.unwrap_err();
    assert_eq!(e.code(), Some("InvalidSignatureException"));
    let unknown =
        aws_sdk_kms::Client::new(&server.sdk_config("AKIAUNKNOWNKEY000001", SECRET, "us-east-1"));
    let e = unknown
        .describe_key()
        .key_id("alias/x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("UnrecognizedClientException"));
    // Unknown operations and oversized bodies, over raw HTTP.
    let r = server.raw_json("TrentService.NoSuchOperation", "{}").await;
    assert_eq!(r.status, 400);
    let big = vec![b' '; 2 * 1024 * 1024];
    let r = raw::post(
        server.addr(),
        &[
            ("X-Amz-Target", "TrentService.Encrypt"),
            ("Content-Type", "application/x-amz-json-1.1"),
        ],
        &big,
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.body_text());
    server.stop().await;

    let all = records(dir.path());
    let find = |code: &str| {
        all.iter()
            .find(|r| r["errorCode"] == code)
            .unwrap_or_else(|| panic!("an event with errorCode {code}: {all:#?}"))
            .clone()
    };
    let bad = find("InvalidSignatureException");
    assert_eq!(bad["eventName"], "ListKeys");
    assert_eq!(bad["eventSource"], "kms.amazonaws.com");
    assert_eq!(bad["awsRegion"], "eu-west-1");
    assert_eq!(bad["userIdentity"]["type"], "Unknown");
    assert_eq!(bad["userIdentity"]["accessKeyId"], KEY);
    assert!(bad["errorMessage"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(bad["sourceIPAddress"], "127.0.0.1");
    let unknown = find("UnrecognizedClientException");
    assert_eq!(unknown["eventName"], "DescribeKey");
    assert_eq!(
        unknown["userIdentity"]["accessKeyId"],
        "AKIAUNKNOWNKEY000001"
    );
    assert_eq!(
        unknown["recipientAccountId"],
        keyhold_testkit::DEFAULT_ACCOUNT
    );
    assert!(
        all.iter()
            .any(|r| r["eventName"] == "TrentService.NoSuchOperation"
                && r["errorCode"].as_str().is_some())
    );
    assert!(
        all.iter()
            .any(|r| r["eventName"] == "TrentService.Encrypt" && r["errorCode"].as_str().is_some()),
        "the oversized body: {all:#?}"
    );
    // They are part of the chain like every other event.
    let v = offline::verify_data_dir(dir.path(), None, None)
        .await
        .unwrap();
    assert!(v.report.ok(), "{:?}", v.report.problems);
}

#[tokio::test]
async fn a_flood_of_rejections_is_bounded_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let server = strict(dir.path()).await;
    let flood = 400;
    let start = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..flood {
        let r = raw::post(
            server.addr(),
            &[
                ("X-Amz-Target", "TrentService.ListKeys"),
                ("Content-Type", "application/x-amz-json-1.1"),
                (
                    "Authorization",
                    "AWS4-HMAC-SHA256 Credential=AKIAFLOOD/20260101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=00",
                ),
            ],
            b"{}",
        )
        .await;
        assert!(r.status >= 400);
        ids.push(r.header("x-amzn-requestid").unwrap().to_owned());
    }
    let elapsed = start.elapsed().as_secs_f64();
    // The per-source bucket refills: one more rejection after a pause is recorded and
    // carries the count of those suppressed.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let last = server.raw_json("TrentService.Nope", "{}").await;
    let last_id = last.header("x-amzn-requestid").unwrap().to_owned();
    server.stop().await;

    let all = records(dir.path());
    let recorded = all
        .iter()
        .filter(|r| ids.iter().any(|id| r["requestID"] == *id.as_str()))
        .count();
    // Burst 20 per source, then 5 per second.
    let bound = 20 + (elapsed * 5.0).ceil() as usize + 1;
    assert!(
        recorded >= 20 && recorded <= bound,
        "{recorded} of {flood} recorded in {elapsed:.2} s (bound {bound})"
    );
    let count = |r: &Value| {
        r["additionalEventData"]["suppressedRejections"]
            .as_u64()
            .unwrap_or(0)
    };
    let summary = all
        .iter()
        .find(|r| r["requestID"] == *last_id.as_str())
        .expect("the rejection after the pause is recorded");
    assert!(count(summary) > 0, "it carries a count: {summary}");
    // Each recorded rejection carries the count suppressed since the previous one.
    let suppressed: u64 = all
        .iter()
        .filter(|r| r["errorCode"].is_string())
        .map(count)
        .sum();
    assert_eq!(
        suppressed as usize,
        flood - recorded,
        "every suppressed one is counted"
    );
}
