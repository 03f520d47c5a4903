//! The wire protocol with requests no SDK would send: unknown targets, malformed JSON,
//! missing members, oversized bodies, unsupported operations.

use keyhold_testkit::TestServer;
use keyhold_testkit::raw;

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let server = TestServer::start().await;
    let ok = server.raw_json("TrentService.ListKeys", "{}").await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("x-amzn-requestid").map(str::len), Some(36));
    assert_eq!(
        ok.header("content-type"),
        Some("application/x-amz-json-1.1")
    );
    let err = server.raw_json("TrentService.Nope", "{}").await;
    assert!(err.header("x-amzn-requestid").is_some());
    assert_ne!(
        ok.header("x-amzn-requestid"),
        err.header("x-amzn-requestid")
    );
}

#[tokio::test]
async fn unknown_operation() {
    let server = TestServer::start().await;
    for target in ["TrentService.Nope", "Nope.ListKeys", "TrentService", ""] {
        let r = server.raw_json(target, "{}").await;
        assert_eq!(r.status, 400, "{target}");
        assert_eq!(
            r.json(),
            serde_json::json!({"__type": "UnknownOperationException"}),
            "{target}"
        );
    }
}

#[tokio::test]
async fn malformed_json_is_a_serialization_exception() {
    let server = TestServer::start().await;
    for body in [
        "{",
        "[]",
        "not json",
        r#"{"Limit": "ten"}"#,
        r#"{"Limit": 1.5e99}"#,
        "\u{0}",
    ] {
        let r = server.raw_json("TrentService.ListKeys", body).await;
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(
            r.json(),
            serde_json::json!({"__type": "SerializationException"}),
            "{body}"
        );
    }
    let r = server
        .raw_json(
            "TrentService.Encrypt",
            r#"{"KeyId":"k","Plaintext":"!!!not base64"}"#,
        )
        .await;
    assert_eq!(r.json()["__type"], "SerializationException");
}

#[tokio::test]
async fn missing_members_get_aws_validation_wording() {
    let server = TestServer::start().await;
    let r = server.raw_json("TrentService.Encrypt", "{}").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        serde_json::json!({
            "__type": "ValidationException",
            "message": "2 validation errors detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null; Value null at 'plaintext' failed to satisfy constraint: Member must not be null"
        })
    );
    let r = server
        .raw_json("TrentService.DescribeKey", r#"{"KeyId": ""}"#)
        .await;
    assert_eq!(
        r.json()["message"],
        "1 validation error detected: Value '' at 'keyId' failed to satisfy constraint: Member must have length greater than or equal to 1"
    );
    let r = server
        .raw_json("TrentService.ListKeys", r#"{"Limit": 0}"#)
        .await;
    assert_eq!(
        r.json()["message"],
        "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1"
    );
    let r = server
        .raw_json("TrentService.CreateKey", r#"{"KeySpec": "AES_999"}"#)
        .await;
    let message = r.json()["message"].as_str().unwrap().to_owned();
    assert!(
        message.starts_with("1 validation error detected: Value 'AES_999' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [RSA_2048,"),
        "{message}"
    );
    let r = server
        .raw_json("TrentService.Decrypt", r#"{"CiphertextBlob": ""}"#)
        .await;
    assert_eq!(
        r.json()["message"],
        "1 validation error detected: Value 'java.nio.HeapByteBuffer[pos=0 lim=0 cap=0]' at 'ciphertextBlob' failed to satisfy constraint: Member must have length greater than or equal to 1"
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let server = TestServer::start().await;
    let body = format!(r#"{{"Description": "{}"}}"#, "x".repeat(1024 * 1024));
    let r = server.raw_json("TrentService.CreateKey", &body).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["__type"], "RequestEntityTooLargeException");
    let listed = server.raw_json("TrentService.ListKeys", "{}").await;
    assert_eq!(
        listed.json()["Keys"],
        serde_json::json!([]),
        "nothing was created"
    );
}

/// ReplicateKey was the last KMS operation answering `UnsupportedOperationException`; served
/// now, it reaches the key lookup (the compatibility module checks what the table says for
/// every operation).
#[tokio::test]
async fn the_last_unsupported_kms_operation_is_served() {
    let server = TestServer::start().await;
    let r = server
        .raw_json(
            "TrentService.ReplicateKey",
            r#"{"KeyId":"1234abcd-12ab-34cd-56ef-1234567890ab","ReplicaRegion":"us-west-2"}"#,
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["__type"], "NotFoundException");
    let r = server
        .raw_json("secretsmanager.GetSecretValue", r#"{"SecretId":"nope"}"#)
        .await;
    assert_eq!(r.json()["__type"], "ResourceNotFoundException");
    assert!(
        r.json()["Message"].is_string(),
        "Secrets Manager spells it Message"
    );
}

#[tokio::test]
async fn query_protocol_errors_are_xml() {
    let server = TestServer::start().await;
    let r = raw::post(
        server.addr(),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"Action=AssumeRole&Version=2011-06-15",
    )
    .await;
    assert_eq!(r.status, 400);
    let body = r.body_text();
    assert!(body.starts_with("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>ValidationError</Code>"), "{body}");
    assert!(body.contains(&format!(
        "<RequestId>{}</RequestId>",
        r.header("x-amzn-requestid").unwrap()
    )));
    let r = raw::post(
        server.addr(),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"Action=Nope&Version=2011-06-15",
    )
    .await;
    assert!(
        r.body_text().contains("<Code>InvalidAction</Code>"),
        "{}",
        r.body_text()
    );
}

#[tokio::test]
async fn hostile_inputs_never_break_the_server() {
    let server = TestServer::start().await;
    let targets = [
        "TrentService.Encrypt",
        "TrentService.Decrypt",
        "TrentService.CreateKey",
        "TrentService.ListAliases",
        "TrentService.TagResource",
        "TrentService.PutKeyPolicy",
        "TrentService.GenerateDataKey",
        "TrentService.ReEncrypt",
    ];
    let bodies = [
        r#"{"KeyId": null, "Plaintext": null}"#.to_owned(),
        r#"{"KeyId": ["a"], "Plaintext": {}}"#.to_owned(),
        format!(r#"{{"KeyId": "{}"}}"#, "a".repeat(5000)),
        r#"{"KeyId": "arn:aws:kms:us-east-1:000000000000:key/../../etc", "Plaintext": "aGk="}"#
            .to_owned(),
        r#"{"CiphertextBlob": "AAAA", "KeyId": "alias/\u0000"}"#.to_owned(),
        r#"{"Tags": [{"TagKey": "\ud800", "TagValue": 1}]}"#.to_owned(),
        format!(r#"{{"Policy": "{}", "KeyId": "k"}}"#, "[".repeat(10000)),
        "{".repeat(100_000),
        r#"{"EncryptionContext": {"a": 1}}"#.to_owned(),
        r#"{"KeyId":"alias/aws/x","NumberOfBytes":-1}"#.to_owned(),
    ];
    for target in targets {
        for body in &bodies {
            let r = server.raw_json(target, body).await;
            assert!(
                r.status < 500,
                "{target} {body:.60}: {} {}",
                r.status,
                r.body_text()
            );
            if r.status != 200 {
                assert!(
                    r.json()["__type"].is_string(),
                    "{target} {body:.60}: {}",
                    r.body_text()
                );
            }
        }
    }
    let r = server.raw_json("TrentService.ListKeys", "{}").await;
    assert_eq!(r.status, 200, "the server still serves");
}
