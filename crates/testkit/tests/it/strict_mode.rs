//! Strict mode: SigV4 verified against the configured credentials, with real SDK clients
//! and with hand-made requests.

use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;
use keyhold_testkit::{TestServer, raw};

const KEY_ID: &str = "AKIAKEYHOLDTEST00001";
const SECRET: &str = "keyhold-test-secret-key-0000000000000000";
const ACCOUNT: &str = "123456789012";

async fn strict() -> TestServer {
    TestServer::builder()
        .strict(&[(KEY_ID, SECRET, ACCOUNT)])
        .start()
        .await
}

#[tokio::test]
async fn signed_requests_from_the_sdk_work() {
    let server = strict().await;
    let kms = server.kms_with(KEY_ID, SECRET, "eu-central-1");
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    assert_eq!(
        key.aws_account_id(),
        Some(ACCOUNT),
        "the key acts as its account's root"
    );
    assert!(
        key.arn()
            .unwrap()
            .starts_with("arn:aws:kms:eu-central-1:123456789012:key/")
    );
    let enc = kms
        .encrypt()
        .key_id(key.key_id())
        .plaintext(Blob::new(b"strict".to_vec()))
        .send()
        .await
        .unwrap();
    let dec = kms
        .decrypt()
        .ciphertext_blob(enc.ciphertext_blob.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(dec.plaintext().unwrap().as_ref(), b"strict");
}

#[tokio::test]
async fn wrong_secret_is_an_invalid_signature() {
    let server = strict().await;
    let kms = server.kms_with(
        KEY_ID,
        "the-wrong-secret-key-000000000000000000",
        "us-east-1",
    );
    let e = kms.list_keys().send().await.unwrap_err();
    assert_eq!(e.code(), Some("InvalidSignatureException"));
    assert_eq!(
        e.message(),
        Some(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
        )
    );
}

#[tokio::test]
async fn unknown_access_key_is_unrecognized() {
    let server = strict().await;
    let kms = server.kms_with("AKIANOBODY0000000000", SECRET, "us-east-1");
    let e = kms.list_keys().send().await.unwrap_err();
    assert_eq!(e.code(), Some("UnrecognizedClientException"));
    assert_eq!(
        e.message(),
        Some("The security token included in the request is invalid.")
    );
}

#[tokio::test]
async fn missing_authentication() {
    let server = strict().await;
    let r = server.raw_json("TrentService.ListKeys", "{}").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["__type"], "MissingAuthenticationTokenException");
}

#[tokio::test]
async fn stale_signatures_are_refused() {
    let server = strict().await;
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={KEY_ID}/20200101/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature={}",
        "0".repeat(64)
    );
    let r = raw::post(
        server.addr(),
        &[
            ("X-Amz-Target", "TrentService.ListKeys"),
            ("Content-Type", "application/x-amz-json-1.1"),
            ("X-Amz-Date", "20200101T000000Z"),
            ("Authorization", &auth),
        ],
        b"{}",
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["__type"], "InvalidSignatureException");
    let message = r.json()["message"].as_str().unwrap().to_owned();
    assert!(
        message.starts_with("Signature expired: 20200101T000000Z is now earlier than "),
        "{message}"
    );
    assert!(!message.contains(&"0".repeat(64)), "never echo a signature");
}

#[tokio::test]
async fn credentials_scoped_to_another_service_are_refused() {
    let server = strict().await;
    let now = time::OffsetDateTime::now_utc();
    let date = format!(
        "{:04}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    );
    let stamp = format!(
        "{date}T{:02}{:02}{:02}Z",
        now.hour(),
        now.minute(),
        now.second()
    );
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={KEY_ID}/{date}/us-east-1/ssm/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature={}",
        "0".repeat(64)
    );
    let r = raw::post(
        server.addr(),
        &[
            ("X-Amz-Target", "TrentService.ListKeys"),
            ("X-Amz-Date", &stamp),
            ("Authorization", &auth),
        ],
        b"{}",
    )
    .await;
    assert_eq!(r.json()["__type"], "InvalidSignatureException");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("Credential should be scoped to correct service: 'kms'")
    );
}
