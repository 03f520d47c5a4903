//! GetKeyLastUsage through the real `aws-sdk-kms` client: the last successful cryptographic
//! operation, with the request id and CloudTrail event id of its audit record.

use aws_sdk_kms::operation::RequestId;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::KeyLastUsageTrackingOperation as Op;
use keyhold_testkit::TestServer;

/// (operation, request id, event id) of the key's last usage, if any.
async fn last_usage(kms: &aws_sdk_kms::Client, key_id: &str) -> Option<(Op, String, String)> {
    let out = kms
        .get_key_last_usage()
        .key_id(key_id)
        .send()
        .await
        .unwrap();
    assert_eq!(out.key_creation_date, out.tracking_start_date);
    assert!(out.key_id.unwrap().ends_with(key_id));
    out.key_last_usage.map(|u| {
        assert!(u.timestamp.is_some());
        (
            u.operation.unwrap(),
            u.kms_request_id.unwrap(),
            u.cloud_trail_event_id.unwrap(),
        )
    })
}

#[tokio::test]
async fn the_last_successful_cryptographic_call_is_reported_with_its_audit_record() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let id = key.key_id;
    assert_eq!(
        last_usage(&kms, &id).await,
        None,
        "a new key was never used"
    );

    let out = kms
        .encrypt()
        .key_id(&id)
        .plaintext(Blob::new("x"))
        .send()
        .await
        .unwrap();
    let encrypt_request = out.request_id().unwrap().to_owned();
    let (op, request, event) = last_usage(&kms, &id).await.unwrap();
    assert_eq!(
        (op, request.as_str()),
        (Op::Encrypt, encrypt_request.as_str())
    );
    // The event id is the trail's: LookupEvents finds the same event by it.
    let found = server
        .raw_json(
            "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
            &format!(
                r#"{{"LookupAttributes":[{{"AttributeKey":"EventId","AttributeValue":"{event}"}}]}}"#
            ),
        )
        .await;
    let found = found.json();
    assert_eq!(found["Events"][0]["EventName"], "Encrypt", "{found}");
    assert_eq!(found["Events"][0]["EventId"], event.as_str());

    // Management calls and failed calls do not count.
    kms.describe_key().key_id(&id).send().await.unwrap();
    kms.disable_key().key_id(&id).send().await.unwrap();
    kms.encrypt()
        .key_id(&id)
        .plaintext(Blob::new("x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        last_usage(&kms, &id).await.map(|u| u.1),
        Some(encrypt_request)
    );
    kms.enable_key().key_id(&id).send().await.unwrap();
    let out = kms
        .decrypt()
        .ciphertext_blob(out.ciphertext_blob.unwrap())
        .send()
        .await
        .unwrap();
    let (op, request, _) = last_usage(&kms, &id).await.unwrap();
    assert_eq!(
        (op, request.as_str()),
        (Op::Decrypt, out.request_id().unwrap())
    );

    kms.create_alias()
        .alias_name("alias/used")
        .target_key_id(&id)
        .send()
        .await
        .unwrap();
    let e = kms
        .get_key_last_usage()
        .key_id("alias/used")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(
        aws_sdk_kms::error::ProvideErrorMetadata::code(&e),
        Some("InvalidArnException")
    );
    let e = kms
        .get_key_last_usage()
        .key_id("00000000-0000-0000-0000-000000000000")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(
        aws_sdk_kms::error::ProvideErrorMetadata::code(&e),
        Some("NotFoundException")
    );
}
