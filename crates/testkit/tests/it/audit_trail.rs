//! The audit trail: one CloudTrail event per call, attributed to its caller, never holding a
//! secret, chained and signed so that any edit, deletion or reordering is detected, and
//! queryable with CloudTrail's LookupEvents.

use aws_sdk_kms::error::ProvideErrorMetadata as _;
use aws_sdk_kms::primitives::Blob;
use base64::Engine as _;
use keyhold_server::audit::offline;
use keyhold_testkit::{TestServer, audit_files, identity};
use serde_json::{Value, json};

/// Every stored record, in order, parsed.
fn records(server: &TestServer) -> Vec<Value> {
    audit_files::records(server.data_dir())
}

async fn lookup(server: &TestServer, body: Value) -> Value {
    let r = server
        .raw_json(
            "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
            &body.to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    r.json()
}

#[tokio::test]
async fn every_call_gets_exactly_one_event_with_cloudtrail_fields() {
    let server = TestServer::start().await;
    let mut request_ids = Vec::new();
    for (target, body) in [
        ("TrentService.CreateKey", r#"{"Description":"audited"}"#),
        ("TrentService.ListKeys", "{}"),
        ("TrentService.Encrypt", "{}"),
        ("TrentService.DescribeKey", r#"{"KeyId":"alias/nope"}"#),
        ("secretsmanager.ListSecrets", "{}"),
        ("AmazonSSM.DescribeParameters", "{}"),
        ("TrentService.Sign", "{}"),
    ] {
        let r = server.raw_json(target, body).await;
        request_ids.push((
            target,
            r.header("x-amzn-requestid").unwrap().to_owned(),
            r.status,
        ));
    }
    let all = records(&server);
    for (target, id, status) in &request_ids {
        let matching: Vec<&Value> = all.iter().filter(|r| r["requestID"] == *id).collect();
        assert_eq!(matching.len(), 1, "{target}: one event per call");
        let e = matching[0];
        let (source, name) = target.split_once('.').unwrap();
        assert_eq!(e["eventName"], name);
        let expected_source = match source {
            "TrentService" => "kms.amazonaws.com",
            "secretsmanager" => "secretsmanager.amazonaws.com",
            _ => "ssm.amazonaws.com",
        };
        assert_eq!(e["eventSource"], expected_source);
        for field in [
            "eventVersion",
            "userIdentity",
            "eventTime",
            "awsRegion",
            "sourceIPAddress",
            "userAgent",
            "requestID",
            "eventID",
            "readOnly",
            "eventType",
            "managementEvent",
            "recipientAccountId",
        ] {
            assert!(!e[field].is_null(), "{target}: {field} missing in {e}");
        }
        assert_eq!(e["userIdentity"]["type"], "Root");
        assert_eq!(e["userIdentity"]["arn"], "arn:aws:iam::000000000000:root");
        assert_eq!(e["awsRegion"], "us-east-1");
        assert_eq!(
            e["errorCode"].is_string(),
            *status != 200,
            "{target}: errorCode iff the call failed"
        );
    }
    let describe = all
        .iter()
        .find(|r| r["eventName"] == "DescribeKey")
        .unwrap();
    assert_eq!(describe["errorCode"], "NotFoundException");
    assert_eq!(
        describe["requestParameters"],
        json!({"keyId": "alias/nope"})
    );
    assert_eq!(describe["readOnly"], true);
    let create = all.iter().find(|r| r["eventName"] == "CreateKey").unwrap();
    assert_eq!(create["readOnly"], false);
    assert_eq!(create["requestParameters"]["description"], "audited");
    assert_eq!(
        create["responseElements"]["keyMetadata"]["description"],
        "audited"
    );
    assert_eq!(create["resources"][0]["type"], "AWS::KMS::Key");
}

#[tokio::test]
async fn secrets_never_reach_the_trail() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let plaintext = b"plaintext that must never be audited";
    kms.encrypt()
        .key_id(key.key_id())
        .plaintext(Blob::new(plaintext.to_vec()))
        .encryption_context("purpose", "audit-test")
        .send()
        .await
        .unwrap();
    let dk = kms
        .generate_data_key()
        .key_id(key.key_id())
        .number_of_bytes(32)
        .send()
        .await
        .unwrap();
    let sm = server.secrets_manager();
    sm.create_secret()
        .name("audited")
        .secret_string("hunter2-initial-value")
        .send()
        .await
        .unwrap();
    sm.put_secret_value()
        .secret_id("audited")
        .secret_string("hunter2-rotated-value")
        .send()
        .await
        .unwrap();
    sm.get_secret_value()
        .secret_id("audited")
        .send()
        .await
        .unwrap();

    let all = records(&server);
    let text: String = all.iter().map(Value::to_string).collect();
    let b64 = base64::engine::general_purpose::STANDARD;
    for secret in [
        plaintext.to_vec(),
        b64.encode(plaintext).into_bytes(),
        b"hunter2-initial-value".to_vec(),
        b"hunter2-rotated-value".to_vec(),
        b64.encode(dk.plaintext().unwrap().as_ref()).into_bytes(),
    ] {
        assert!(
            memchr::memmem::find(text.as_bytes(), &secret).is_none(),
            "a secret reached the trail"
        );
    }
    let encrypt = all.iter().find(|r| r["eventName"] == "Encrypt").unwrap();
    assert_eq!(
        encrypt["requestParameters"],
        json!({"keyId": key.key_id(), "encryptionContext": {"purpose": "audit-test"}})
    );
    assert!(
        encrypt["responseElements"].is_null(),
        "AWS writes null for cryptographic operations"
    );
    let put = all
        .iter()
        .find(|r| r["eventName"] == "PutSecretValue")
        .unwrap();
    assert_eq!(put["requestParameters"]["secretId"], "audited");
    // Secrets Manager's own KMS calls are their own events, invoked by the service.
    let inner = all
        .iter()
        .find(|r| {
            r["eventName"] == "GenerateDataKey"
                && r["userIdentity"]["invokedBy"] == "secretsmanager.amazonaws.com"
        })
        .expect("an inner GenerateDataKey event");
    assert_eq!(inner["sourceIPAddress"], "secretsmanager.amazonaws.com");
    assert!(inner["requestParameters"]["encryptionContext"]["SecretARN"].is_string());
}

#[tokio::test]
async fn a_decrypt_by_another_account_is_attributed_to_it() {
    let server = TestServer::start().await;
    let owner = server.kms_for("111111111111", "us-east-1");
    let partner = server.kms_for("222222222222", "us-east-1");
    let policy = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Principal":{"AWS":"111111111111"},"Action":"kms:*","Resource":"*"},
        {"Effect":"Allow","Principal":{"AWS":"222222222222"},"Action":"kms:Decrypt","Resource":"*"}]}"#;
    let key = owner
        .create_key()
        .policy(policy)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let blob = owner
        .encrypt()
        .key_id(key.key_id())
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await
        .unwrap();
    partner
        .decrypt()
        .ciphertext_blob(blob.ciphertext_blob.unwrap())
        .send()
        .await
        .unwrap();

    let decrypt = records(&server)
        .into_iter()
        .find(|r| r["eventName"] == "Decrypt")
        .unwrap();
    assert_eq!(decrypt["userIdentity"]["accountId"], "222222222222");
    assert_eq!(
        decrypt["userIdentity"]["arn"],
        "arn:aws:iam::222222222222:root"
    );
    assert_eq!(
        decrypt["recipientAccountId"], "111111111111",
        "the key's owner receives the event"
    );
    assert_eq!(decrypt["resources"][0]["ARN"], key.arn().unwrap());
}

#[tokio::test]
async fn lookup_events_filters_and_pages() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    for _ in 0..3 {
        let blob = kms
            .encrypt()
            .key_id(key.key_id())
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
            .await
            .unwrap();
        kms.decrypt()
            .ciphertext_blob(blob.ciphertext_blob.unwrap())
            .send()
            .await
            .unwrap();
    }
    let decrypts = lookup(
        &server,
        json!({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "Decrypt"}]}),
    )
    .await;
    let events = decrypts["Events"].as_array().unwrap();
    assert_eq!(events.len(), 3);
    for e in events {
        assert_eq!(e["EventName"], "Decrypt");
        assert_eq!(e["EventSource"], "kms.amazonaws.com");
        assert_eq!(e["ReadOnly"], "true");
        assert_eq!(e["Username"], "root");
        assert_eq!(e["Resources"][0]["ResourceName"], key.arn().unwrap());
        let inner: Value = serde_json::from_str(e["CloudTrailEvent"].as_str().unwrap()).unwrap();
        assert_eq!(inner["eventID"], e["EventId"]);
    }
    let by_resource = lookup(&server, json!({"LookupAttributes": [{"AttributeKey": "ResourceName", "AttributeValue": key.arn().unwrap()}]})).await;
    assert_eq!(
        by_resource["Events"].as_array().unwrap().len(),
        7,
        "CreateKey + 3 Encrypt + 3 Decrypt"
    );

    let page = lookup(&server, json!({"MaxResults": 2})).await;
    assert_eq!(page["Events"].as_array().unwrap().len(), 2);
    let token = page["NextToken"].as_str().unwrap();
    let next = lookup(&server, json!({"MaxResults": 2, "NextToken": token})).await;
    assert_ne!(next["Events"][0]["EventId"], page["Events"][0]["EventId"]);

    let other = server.kms_for("333333333333", "us-east-1");
    other.list_keys().send().await.unwrap();
    let mine = lookup(
        &server,
        json!({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "ListKeys"}]}),
    )
    .await;
    assert!(
        mine["Events"].as_array().unwrap().is_empty(),
        "another account's events are not visible"
    );

    let insights = lookup(&server, json!({"EventCategory": "insight"})).await;
    assert_eq!(
        insights["Events"],
        json!([]),
        "the model's one category is valid; Keyhold has no Insights events"
    );

    let r = server
        .raw_json(
            "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
            r#"{"LookupAttributes":[{"AttributeKey":"EventName","AttributeValue":"a"},{"AttributeKey":"EventName","AttributeValue":"b"}]}"#,
        )
        .await;
    assert_eq!(r.json()["__type"], "InvalidLookupAttributesException");
}

#[tokio::test]
async fn lookup_events_needs_cloudtrail_lookup_events() {
    let server = TestServer::start().await;
    let iam = server.iam();
    let auditor = identity::user_with_key(&iam, "auditor").await;
    let denied = as_cloudtrail::lookup_events(&server, &auditor)
        .await
        .expect_err("a user without a policy cannot read the trail");
    assert_eq!(denied.code(), Some("AccessDeniedException"));
    assert_eq!(
        denied.message(),
        Some(
            "User: arn:aws:iam::000000000000:user/auditor is not authorized to perform: \
             cloudtrail:LookupEvents on resource: * because no identity-based policy allows the \
             cloudtrail:LookupEvents action"
        )
    );
    identity::put_user_policy(
        &iam,
        "auditor",
        "read-trail",
        &identity::allow("cloudtrail:LookupEvents", "*"),
    )
    .await;
    as_cloudtrail::lookup_events(&server, &auditor)
        .await
        .expect("cloudtrail:LookupEvents allows it");
}

/// LookupEvents signed with an IAM user's credentials. The pinned AWS SDK has no CloudTrail
/// client, and LookupEvents takes the same `{}` as KMS's ListKeys, so a KMS client sends it:
/// an interceptor re-targets the request before it is signed, and the endpoint tells the
/// signer to sign it for `cloudtrail`. Only success or the error comes back (a ListKeys
/// response ignores the events).
mod as_cloudtrail {
    use std::borrow::Cow;
    use std::collections::HashMap;

    use aws_sdk_kms::config::endpoint::{Endpoint, EndpointFuture, Params, ResolveEndpoint};
    use aws_sdk_kms::config::interceptors::BeforeTransmitInterceptorContextMut;
    use aws_sdk_kms::config::{ConfigBag, Intercept, RuntimeComponents};
    use aws_sdk_kms::error::{BoxError, SdkError};
    use aws_sdk_kms::operation::list_keys::ListKeysError;
    use keyhold_testkit::{Creds, DEFAULT_REGION, TestServer};

    const TARGET: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents";

    pub async fn lookup_events(server: &TestServer, creds: &Creds) -> Result<(), ListKeysError> {
        let shared = server.sdk_config(
            &creds.access_key_id,
            &creds.secret_access_key,
            DEFAULT_REGION,
        );
        let config = aws_sdk_kms::config::Builder::from(&shared)
            .endpoint_resolver(SignedForCloudTrail(server.endpoint()))
            .interceptor(LookupEventsTarget)
            .build();
        aws_sdk_kms::Client::from_conf(config)
            .list_keys()
            .send()
            .await
            .map(drop)
            .map_err(SdkError::into_service_error)
    }

    #[derive(Debug)]
    struct LookupEventsTarget;

    impl Intercept for LookupEventsTarget {
        fn name(&self) -> &'static str {
            "LookupEventsTarget"
        }

        fn modify_before_signing(
            &self,
            context: &mut BeforeTransmitInterceptorContextMut<'_>,
            _: &RuntimeComponents,
            _: &mut ConfigBag,
        ) -> Result<(), BoxError> {
            context
                .request_mut()
                .headers_mut()
                .insert("x-amz-target", TARGET);
            Ok(())
        }
    }

    #[derive(Debug)]
    struct SignedForCloudTrail(String);

    impl ResolveEndpoint for SignedForCloudTrail {
        fn resolve_endpoint<'a>(&'a self, _: &'a Params) -> EndpointFuture<'a> {
            let plain = Endpoint::builder().url(self.0.clone()).build();
            let auth_schemes = sigv4_for_cloudtrail(plain.properties());
            EndpointFuture::ready(Ok(Endpoint::builder()
                .url(self.0.clone())
                .property("authSchemes", auth_schemes)
                .build()))
        }
    }

    /// `[{"name": "sigv4", "signingName": "cloudtrail"}]` as an endpoint property (a document
    /// type the SDK does not re-export, hence named by `like`).
    fn sigv4_for_cloudtrail<D>(_like: &HashMap<Cow<'static, str>, D>) -> D
    where
        D: From<Vec<D>> + From<HashMap<String, D>> + From<&'static str>,
    {
        let scheme = HashMap::from([
            ("name".to_owned(), D::from("sigv4")),
            ("signingName".to_owned(), D::from("cloudtrail")),
        ]);
        D::from(vec![D::from(scheme)])
    }
}

/// A trail with some events, sealed, and the server stopped; returns its data directory.
async fn sealed_trail() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::builder().data_dir(dir.path()).start().await;
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    for i in 0..10 {
        kms.encrypt()
            .key_id(key.key_id())
            .plaintext(Blob::new(vec![i; 8]))
            .send()
            .await
            .unwrap();
    }
    server.stop().await;
    dir
}

async fn verify(dir: &std::path::Path) -> offline::Verified {
    offline::verify_data_dir(dir, None, None).await.unwrap()
}

/// Edits the stored record of event `seq`.
fn edit_record(dir: &std::path::Path, seq: i64, edit: impl Fn(&str) -> String) {
    audit_files::rewrite_events(dir, |rows| {
        let row = rows.iter_mut().find(|r| r.seq == seq).unwrap();
        row.record = edit(&row.record);
    });
}

#[tokio::test]
async fn an_untouched_trail_verifies() {
    let dir = sealed_trail().await;
    let v = verify(dir.path()).await;
    assert!(v.report.ok(), "{:?}", v.report.problems);
    assert_eq!(v.report.events, 11);
    assert!(v.report.digests >= 1);
    assert_eq!(v.report.unsealed, 0, "stopping the server seals the trail");
    assert!(matches!(v.trust, offline::KeyTrust::Unsealed));
}

#[tokio::test]
async fn a_data_dir_is_pinned_by_the_printed_key_and_a_wrong_root_key_is_an_error() {
    let dir = sealed_trail().await;
    let unsealed = verify(dir.path()).await;

    // A root key file that is there but does not open the trail does not lower the trust.
    let elsewhere = tempfile::tempdir().unwrap();
    TestServer::builder()
        .data_dir(elsewhere.path())
        .start()
        .await
        .stop()
        .await;
    let wrong_root = elsewhere.path().join("root.key");
    let error = offline::verify_data_dir(dir.path(), Some(wrong_root), None)
        .await
        .err()
        .expect("another data directory's root key is refused");
    assert!(
        error
            .to_string()
            .contains("does not open this data directory's domain key"),
        "{error:#}"
    );

    // Without a root key file, what verification printed pins the key.
    std::fs::remove_file(dir.path().join("root.key")).unwrap();
    assert!(matches!(
        verify(dir.path()).await.trust,
        offline::KeyTrust::SelfDeclared
    ));
    for pin in [unsealed.public_key_hex(), unsealed.fingerprint.clone()] {
        let v = offline::verify_data_dir(dir.path(), None, Some(&pin))
            .await
            .unwrap();
        assert!(v.report.ok(), "{:?}", v.report.problems);
        assert!(matches!(v.trust, offline::KeyTrust::Pinned));
    }
    let wrong_key = hex::encode([7u8; 32]);
    assert!(
        offline::verify_data_dir(dir.path(), None, Some(&wrong_key))
            .await
            .is_err(),
        "a pinned key that differs is refused"
    );
}

#[tokio::test]
async fn an_unreadable_event_fails_verification_instead_of_ending_the_trail() {
    let dir = sealed_trail().await;
    audit_files::damage_event(dir.path(), 11);
    let error = offline::verify_data_dir(dir.path(), None, None)
        .await
        .err()
        .expect("a read error is not the end of the trail");
    assert!(
        error.to_string().contains("reading the trail's events"),
        "{error:#}"
    );
}

#[tokio::test]
async fn a_changed_event_is_detected() {
    let dir = sealed_trail().await;
    edit_record(dir.path(), 5, |r| r.replace("\"Encrypt\"", "\"Decrypt\""));
    let v = verify(dir.path()).await;
    assert_eq!(
        v.report.problems.first().map(String::as_str),
        Some(
            "event 6 does not follow event 5: event 5 was changed, or events were inserted or reordered"
        )
    );
}

#[tokio::test]
async fn a_changed_last_event_is_caught_by_its_digest() {
    let dir = sealed_trail().await;
    edit_record(dir.path(), 11, |r| r.replace("us-east-1", "us-west-2"));
    let v = verify(dir.path()).await;
    assert!(
        v.report.problems[0].starts_with("event 11 was changed: digest"),
        "{:?}",
        v.report.problems
    );
}

#[tokio::test]
async fn a_removed_event_is_detected() {
    let dir = sealed_trail().await;
    audit_files::rewrite_events(dir.path(), |rows| rows.retain(|r| r.seq != 4));
    let v = verify(dir.path()).await;
    assert_eq!(
        v.report.problems[0],
        "events 4..4 are missing: they were removed"
    );
    let dir = sealed_trail().await;
    audit_files::rewrite_events(dir.path(), |rows| rows.retain(|r| r.seq < 10));
    let v = verify(dir.path()).await;
    assert!(
        v.report.problems[0].starts_with("events 10..11 are missing: they were removed (digest"),
        "{:?}",
        v.report.problems
    );
}

#[tokio::test]
async fn reordered_events_are_detected() {
    let dir = sealed_trail().await;
    // Events 3 and 4 trade places, each stored under the other's sequence number.
    audit_files::rewrite_events(dir.path(), |rows| {
        let at = rows.iter().position(|r| r.seq == 3).unwrap();
        rows.swap(at, at + 1);
        rows[at].seq = 3;
        rows[at + 1].seq = 4;
    });
    let v = verify(dir.path()).await;
    assert!(!v.report.ok());
    assert!(
        v.report.problems[0].contains("reordered"),
        "{:?}",
        v.report.problems
    );
}

#[tokio::test]
async fn an_inserted_event_is_detected() {
    let dir = sealed_trail().await;
    audit_files::rewrite_events(dir.path(), |rows| {
        let mut copy = rows.iter().find(|r| r.seq == 2).unwrap().clone();
        copy.seq = 100;
        rows.push(copy);
    });
    let v = verify(dir.path()).await;
    assert!(
        v.report.problems[0].contains("inserted or reordered"),
        "{:?}",
        v.report.problems
    );
}

#[tokio::test]
async fn a_forged_digest_is_detected() {
    let dir = sealed_trail().await;
    audit_files::rewrite_digests(dir.path(), |digests| {
        for d in digests {
            d.document = d
                .document
                .replace("\"lastEventSequence\":11", "\"lastEventSequence\":12");
        }
    });
    let v = verify(dir.path()).await;
    assert!(
        v.report
            .problems
            .iter()
            .any(|p| p.contains("does not verify")),
        "{:?}",
        v.report.problems
    );
}

#[tokio::test]
async fn exported_files_verify_and_detect_tampering() {
    let dir = sealed_trail().await;
    let out = tempfile::tempdir().unwrap();
    let (files, events) = offline::export_data_dir(dir.path(), out.path()).unwrap();
    assert_eq!(events, 11);
    assert!(files >= 2);
    let v = offline::verify_exported(out.path(), None).unwrap();
    assert!(v.report.ok(), "{:?}", v.report.problems);
    assert_eq!(v.report.events, 11);
    // `keyhold audit verify` prints the public key and its fingerprint: either pins it.
    for pin in [v.public_key_hex(), v.fingerprint.clone()] {
        let pinned = offline::verify_exported(out.path(), Some(&pin)).unwrap();
        assert!(pinned.report.ok(), "{:?}", pinned.report.problems);
        assert!(matches!(pinned.trust, offline::KeyTrust::Pinned));
        assert_eq!(pinned.public_key_hex(), v.public_key_hex());
    }

    let events_file = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("000001-events.json"))
        .unwrap();
    let text = std::fs::read_to_string(&events_file).unwrap();
    let parsed: Value = serde_json::from_str(&text).unwrap();
    assert!(
        parsed["Records"].as_array().unwrap().len() >= 11,
        "CloudTrail's file shape"
    );
    std::fs::write(&events_file, text.replacen("\"Encrypt\"", "\"Decrypt\"", 1)).unwrap();
    let v = offline::verify_exported(out.path(), None).unwrap();
    assert!(!v.report.ok());

    let wrong_key = hex::encode([7u8; 32]);
    assert!(
        offline::verify_exported(out.path(), Some(&wrong_key)).is_err(),
        "a pinned key that differs is refused"
    );
}

#[tokio::test]
async fn every_operation_of_every_json_service_is_audited_once() {
    use keyhold_proto::route::Operation;
    let server = TestServer::start().await;
    let mut sent = Vec::new();
    for (_, ops) in keyhold_server::compat::all_operations() {
        for op in ops {
            let target = match op {
                Operation::Kms(op) => format!("TrentService.{op}"),
                Operation::SecretsManager(op) => format!("secretsmanager.{op}"),
                Operation::Ssm(op) => format!("AmazonSSM.{op}"),
                Operation::CloudTrail(op) => {
                    format!("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.{op}")
                }
                Operation::Sts(_) | Operation::Iam(_) => continue,
            };
            let r = server.raw_json(&target, "{}").await;
            sent.push((op.name(), r.header("x-amzn-requestid").unwrap().to_owned()));
        }
    }
    let all = records(&server);
    for (name, id) in &sent {
        let matching: Vec<&Value> = all.iter().filter(|r| r["requestID"] == *id).collect();
        assert_eq!(matching.len(), 1, "{name}: exactly one event");
        assert_eq!(matching[0]["eventName"], *name);
    }
    assert!(
        sent.len() > 90,
        "all operations of the JSON models ({})",
        sent.len()
    );
}

/// Truncation, head deletion and retention: the trail is anchored outside its own files.
mod anchoring {
    use std::path::Path;
    use std::time::Duration;

    use keyhold_server::audit::offline;
    use keyhold_testkit::{TestServer, audit_files};

    /// One server start on `dir` with `calls` audited calls, stopped (which seals the trail).
    async fn session(
        dir: &Path,
        calls: usize,
        change: impl FnOnce(&mut keyhold_server::audit::trail::TrailConfig),
    ) {
        let server = TestServer::builder()
            .data_dir(dir)
            .audit(change)
            .start()
            .await;
        let kms = server.kms();
        for _ in 0..calls {
            kms.list_keys().send().await.unwrap();
        }
        server.stop().await;
    }

    /// The trail's digests as (sequence, first event, last event).
    fn digests(dir: &Path) -> Vec<(i64, i64, i64)> {
        audit_files::digests(dir)
            .iter()
            .map(|d| (d.seq, d.first_seq, d.last_seq))
            .collect()
    }

    fn anchor(dir: &Path) -> Option<Vec<u8>> {
        let conn = rusqlite::Connection::open(dir.join("keyhold.db")).unwrap();
        conn.query_row(
            "SELECT value FROM meta WHERE name = 'audit.anchor'",
            [],
            |r| r.get(0),
        )
        .ok()
    }

    fn set_anchor(dir: &Path, value: &[u8]) {
        let conn = rusqlite::Connection::open(dir.join("keyhold.db")).unwrap();
        conn.execute(
            "UPDATE meta SET value = ?1 WHERE name = 'audit.anchor'",
            [value],
        )
        .unwrap();
    }

    /// Deletes every event after `last_kept` and every digest that covers one of them: a
    /// truncation that leaves a chain that is consistent in itself.
    fn truncate_after(dir: &Path, last_kept: i64) {
        audit_files::rewrite_events(dir, |rows| rows.retain(|r| r.seq <= last_kept));
        audit_files::rewrite_digests(dir, |d| d.retain(|d| d.last_seq <= last_kept));
    }

    async fn verify(dir: &Path) -> offline::Verified {
        offline::verify_data_dir(dir, None, None).await.unwrap()
    }

    #[tokio::test]
    async fn a_truncated_tail_is_detected_by_the_key_store_anchor() {
        let dir = tempfile::tempdir().unwrap();
        session(dir.path(), 3, |_| {}).await;
        let (_, _, first_end) = digests(dir.path())[0];
        session(dir.path(), 4, |_| {}).await;
        let v = verify(dir.path()).await;
        assert!(v.report.ok(), "{:?}", v.report.problems);
        let newest = v.report.newest_digest.expect("a newest digest is reported");
        assert_eq!(newest.sequence, 2);

        // The second session's events and its digest go: the rest chains and signs fine.
        truncate_after(dir.path(), first_end);
        let v = verify(dir.path()).await;
        assert!(
            v.report
                .problems
                .iter()
                .any(|p| p
                    .starts_with("the trail was truncated: the key store's anchor is digest 2")),
            "{:?}",
            v.report.problems
        );

        // Removing the anchor too does not help.
        let conn = rusqlite::Connection::open(dir.path().join("keyhold.db")).unwrap();
        conn.execute("DELETE FROM meta WHERE name = 'audit.anchor'", [])
            .unwrap();
        let v = verify(dir.path()).await;
        assert!(
            v.report
                .problems
                .iter()
                .any(|p| p.contains("holds no anchor")),
            "{:?}",
            v.report.problems
        );
    }

    #[tokio::test]
    async fn digest_files_kept_elsewhere_catch_a_truncation_with_a_replayed_anchor() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let digest_dir = elsewhere.path().join("digests");
        let to = digest_dir.clone();
        session(dir.path(), 3, move |a| a.digest_dir = Some(to)).await;
        let (_, _, first_end) = digests(dir.path())[0];
        let first_anchor = anchor(dir.path()).unwrap();
        let to = digest_dir.clone();
        session(dir.path(), 4, move |a| a.digest_dir = Some(to)).await;
        assert!(digest_dir.join("000002-digest.json").exists());
        let v = offline::verify_data_dir_with(
            dir.path(),
            None,
            None,
            std::slice::from_ref(&digest_dir),
        )
        .await
        .unwrap();
        assert!(v.report.ok(), "{:?}", v.report.problems);
        assert_eq!(v.report.newest_digest.unwrap().sequence, 2);

        // Whoever truncates the trail and puts the older (genuine) anchor back fools the
        // data directory alone, not the digest files.
        truncate_after(dir.path(), first_end);
        set_anchor(dir.path(), &first_anchor);
        assert!(verify(dir.path()).await.report.ok(), "a replayed anchor");
        let v = offline::verify_data_dir_with(
            dir.path(),
            None,
            None,
            std::slice::from_ref(&digest_dir),
        )
        .await
        .unwrap();
        assert!(
            v.report
                .problems
                .iter()
                .any(|p| p.starts_with("the trail was truncated")
                    && p.contains("000002-digest.json")),
            "{:?}",
            v.report.problems
        );
        // One file works as well as the directory.
        let v = offline::verify_data_dir_with(
            dir.path(),
            None,
            None,
            &[digest_dir.join("000002-digest.json")],
        )
        .await
        .unwrap();
        assert!(!v.report.ok());
    }

    #[tokio::test]
    async fn the_writer_refuses_a_truncated_trail_at_start_until_the_operator_reanchors() {
        let dir = tempfile::tempdir().unwrap();
        session(dir.path(), 3, |_| {}).await;
        let (_, _, first_end) = digests(dir.path())[0];
        session(dir.path(), 4, |_| {}).await;
        truncate_after(dir.path(), first_end);

        let config = keyhold_server::Config {
            data_dir: dir.path().to_path_buf(),
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            ..keyhold_server::Config::default()
        };
        let error = keyhold_server::Server::bind(config.clone())
            .await
            .err()
            .expect("a truncated trail is not continued");
        let message = format!("{error:#}");
        assert!(
            message.contains(&format!("the audit trail ends at event {first_end}"))
                && message.contains("anchor records digest 2")
                && message.contains("keyhold audit reanchor"),
            "{message}"
        );
        assert_eq!(digests(dir.path()).len(), 1, "nothing was appended");

        // The operator's recovery: accept the trail as it is; the server continues it.
        match offline::reanchor(dir.path()).unwrap() {
            offline::Reanchored::To { digest, last_event } => {
                assert_eq!((digest, last_event), (1, first_end));
            }
            offline::Reanchored::Cleared => panic!("the trail has a digest"),
        }
        session(dir.path(), 2, |_| {}).await;
        let v = verify(dir.path()).await;
        assert!(v.report.ok(), "{:?}", v.report.problems);
    }

    #[tokio::test]
    async fn a_deleted_head_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..3 {
            session(dir.path(), 2, |_| {}).await;
        }
        let all = digests(dir.path());
        let (_, _, second_end) = all[1];
        // What retention used to leave: the digest before the first kept event as the
        // chain's anchor. Without a signed prune record, this is a deletion.
        audit_files::rewrite_events(dir.path(), |rows| rows.retain(|r| r.seq > second_end));
        audit_files::rewrite_digests(dir.path(), |d| d.retain(|d| d.seq >= 2));
        let v = verify(dir.path()).await;
        assert!(
            v.report.problems.iter().any(|p| p
                == &format!(
                    "the trail starts at event {} but no signed prune record covers events 1..{second_end}: they were deleted",
                    second_end + 1
                )),
            "{:?}",
            v.report.problems
        );
        assert!(
            v.report
                .problems
                .iter()
                .any(|p| p.contains("digests 1..1 are missing and no signed prune record")),
            "{:?}",
            v.report.problems
        );
    }

    #[tokio::test]
    async fn a_retention_prune_is_accepted_and_a_deletion_beyond_it_is_not() {
        let dir = tempfile::tempdir().unwrap();
        session(dir.path(), 3, |_| {}).await;
        let (_, _, first_end) = digests(dir.path())[0];
        tokio::time::sleep(Duration::from_millis(3000)).await;
        session(dir.path(), 3, |_| {}).await;
        // Digest 1 is now 3 s old, digest 2 fresh: a 1.5 s retention prunes digest 1's events.
        let server = TestServer::builder()
            .data_dir(dir.path())
            .audit(|a| a.retention = Some(Duration::from_millis(1500)))
            .start()
            .await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while digests(dir.path()).first().map(|d| d.0) == Some(1) {
            assert!(std::time::Instant::now() < deadline, "retention pruned");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server.kms().list_keys().send().await.unwrap();
        server.stop().await;

        let v = verify(dir.path()).await;
        assert!(v.report.ok(), "{:?}", v.report.problems);
        assert_eq!(v.report.pruned_through, Some(first_end));
        // Exported, the prune record goes along.
        let out = tempfile::tempdir().unwrap();
        offline::export_data_dir(dir.path(), out.path()).unwrap();
        let exported = offline::verify_exported(out.path(), None).unwrap();
        assert!(exported.report.ok(), "{:?}", exported.report.problems);

        // Deleting more of the head than retention pruned is caught.
        audit_files::rewrite_events(dir.path(), |rows| rows.retain(|r| r.seq > first_end + 2));
        let v = verify(dir.path()).await;
        assert!(
            v.report.problems.iter().any(|p| p
                == &format!(
                    "events {}..{} are missing at the head: retention pruned only events 1..{first_end}, so they were deleted",
                    first_end + 1,
                    first_end + 2
                )),
            "{:?}",
            v.report.problems
        );
    }
}

/// A trail that cannot be written refuses calls, and recovers by itself once it can.
mod recovery {
    use std::time::{Duration, Instant};

    use keyhold_server::audit::offline;
    use keyhold_testkit::{TestServer, raw};

    use super::records;

    async fn health(server: &TestServer) -> raw::RawResponse {
        raw::request(server.addr(), "GET", "/_keyhold/health", &[], b"").await
    }

    #[tokio::test]
    async fn a_failing_trail_refuses_calls_and_recovers_without_losing_an_event() {
        let dir = tempfile::tempdir().unwrap();
        let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let fail = failing.clone();
        let server = TestServer::builder()
            .data_dir(dir.path())
            .audit(move |a| a.fail_writes = Some(fail))
            .start()
            .await;
        let id = |r: &raw::RawResponse| r.header("x-amzn-requestid").unwrap().to_owned();
        let before = server.raw_json("TrentService.ListKeys", "{}").await;
        assert_eq!(before.status, 200);

        // Every append fails from now on, as on a full disk.
        failing.store(true, std::sync::atomic::Ordering::Relaxed);
        let lost = server.raw_json("TrentService.CreateKey", "{}").await;
        assert_eq!(lost.status, 503, "{}", lost.body_text());
        assert_eq!(lost.json()["__type"], "ServiceUnavailable");
        assert_eq!(
            lost.json()["message"],
            "The audit trail cannot record this call, so Keyhold refuses to serve it. Retry later."
        );
        let refused = server.raw_json("TrentService.ListKeys", "{}").await;
        assert_eq!(refused.status, 503);
        assert_eq!(refused.json()["__type"], "ServiceUnavailable");
        let h = health(&server).await;
        assert_eq!(h.status, 503);
        assert!(
            h.json()["audit"]
                .as_str()
                .unwrap()
                .starts_with("the audit trail cannot be written"),
            "{}",
            h.body_text()
        );

        // The failure clears: the writer's own retry brings the trail back, no call needed.
        failing.store(false, std::sync::atomic::Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(5);
        while health(&server).await.status != 200 {
            assert!(Instant::now() < deadline, "the trail recovered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let after = server.raw_json("TrentService.ListKeys", "{}").await;
        assert_eq!(after.status, 200, "{}", after.body_text());
        let ids = [id(&before), id(&lost), id(&after)];
        let all = records(&server);
        for expected in &ids {
            assert_eq!(
                all.iter().filter(|r| r["requestID"] == *expected).count(),
                1,
                "request {expected} has its event (the refused CreateKey's was retried)"
            );
        }
        assert!(
            !all.iter().any(|r| r["requestID"] == id(&refused)),
            "a call refused before it ran has no event"
        );
        server.stop().await;
        let v = offline::verify_data_dir(dir.path(), None, None)
            .await
            .unwrap();
        assert!(v.report.ok(), "{:?}", v.report.problems);
    }
}

/// The trail's storage: segment files, a torn tail after a crash, the derived index, and
/// the conversion of a trail of the first format (one SQLite file).
mod segments {
    use std::io::Write as _;

    use keyhold_server::audit::offline;
    use keyhold_store::audit::AuditLog as _;
    use keyhold_testkit::{TestServer, audit_files};
    use serde_json::json;

    async fn session(dir: &std::path::Path, calls: usize) {
        let server = TestServer::builder().data_dir(dir).start().await;
        for _ in 0..calls {
            server.kms().list_keys().send().await.unwrap();
        }
        server.stop().await;
    }

    fn newest_segment(dir: &std::path::Path) -> std::path::PathBuf {
        let mut all: Vec<_> = std::fs::read_dir(dir.join("audit/segments"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        all.sort();
        all.pop().unwrap()
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_at_start_and_kept_and_the_trail_still_verifies() {
        let dir = tempfile::tempdir().unwrap();
        session(dir.path(), 3).await;
        // A crash in the middle of an append: half a frame after the last whole one.
        let newest = newest_segment(dir.path());
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&newest)
            .unwrap();
        file.write_all(&[200, 1, 0, 0, 7, 7, 7, 7, 1, 2, 3])
            .unwrap();
        drop(file);
        let before = audit_files::rows(dir.path()).len();

        session(dir.path(), 2).await;
        let torn: Vec<_> = std::fs::read_dir(dir.path().join("audit/torn"))
            .unwrap()
            .collect();
        assert_eq!(torn.len(), 1, "the cut bytes are kept for inspection");
        let v = offline::verify_data_dir(dir.path(), None, None)
            .await
            .unwrap();
        assert!(v.report.ok(), "{:?}", v.report.problems);
        assert_eq!(audit_files::rows(dir.path()).len(), before + 2);
    }

    #[tokio::test]
    async fn lookups_read_an_index_that_is_rebuilt_from_the_segments() {
        let dir = tempfile::tempdir().unwrap();
        session(dir.path(), 4).await;
        let index = dir.path().join("audit/index.db");
        remove_index(&index);
        let indexed = offline::reindex(dir.path()).unwrap();
        assert_eq!(indexed, audit_files::rows(dir.path()).len());

        // A damaged index is rebuilt at start too; either way every call is found, newest
        // first, right after it was made.
        std::fs::write(&index, b"not a database").unwrap();
        let server = TestServer::builder().data_dir(dir.path()).start().await;
        for _ in 0..3 {
            server.kms().list_keys().send().await.unwrap();
        }
        let found = super::lookup(
            &server,
            json!({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "ListKeys"}], "MaxResults": 50}),
        )
        .await;
        assert_eq!(found["Events"].as_array().unwrap().len(), 4 + 3);
        let key = keyhold_testkit::new_key(&server.kms()).await.arn;
        server.stop().await;

        // An index an earlier version wrote (layout 3: resource entries by name alone) is
        // rebuilt at start, and lookups by resource name find the key's events in the new
        // layout.
        remove_index(&index);
        {
            let old = rusqlite::Connection::open(&index).unwrap();
            old.execute_batch(
                "CREATE TABLE events (seq INTEGER PRIMARY KEY); \
                 CREATE TABLE resources (name TEXT NOT NULL, seq INTEGER NOT NULL, \
                 type TEXT NOT NULL, PRIMARY KEY (name, seq, type)) WITHOUT ROWID; \
                 PRAGMA user_version = 3;",
            )
            .unwrap();
        }
        let server = TestServer::builder().data_dir(dir.path()).start().await;
        server
            .kms()
            .describe_key()
            .key_id(&key)
            .send()
            .await
            .unwrap();
        let found = super::lookup(
            &server,
            json!({"LookupAttributes": [{"AttributeKey": "ResourceName", "AttributeValue": key}]}),
        )
        .await;
        let names: Vec<_> = found["Events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["EventName"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["DescribeKey", "CreateKey"], "newest first");
        server.stop().await;
    }

    fn remove_index(index: &std::path::Path) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = index.as_os_str().to_owned();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }

    #[tokio::test]
    async fn a_trail_of_the_first_format_is_converted_at_start_and_still_verifies() {
        let dir = tempfile::tempdir().unwrap();
        session(dir.path(), 3).await;
        session(dir.path(), 2).await;
        // Write the trail back in its first format (one SQLite file), as an older Keyhold
        // left it, and remove the segment log.
        let trail = dir.path().join("audit");
        let rows = audit_files::rows(dir.path());
        let digests = audit_files::digests(dir.path());
        {
            let mut old =
                keyhold_store::SqliteAuditLog::open(&dir.path().join("audit.db")).unwrap();
            for name in ["signing_key.sealed", "signing_key.public"] {
                let value = std::fs::read(trail.join("meta").join(name)).unwrap();
                old.put_meta(name, &value).unwrap();
            }
            old.append(&rows, None).unwrap();
            for d in &digests {
                old.append(&[], Some(d)).unwrap();
            }
        }
        std::fs::remove_dir_all(&trail).unwrap();

        session(dir.path(), 1).await;
        assert!(dir.path().join("audit.db.converted").exists());
        assert!(!dir.path().join("audit.db").exists());
        let v = offline::verify_data_dir(dir.path(), None, None)
            .await
            .unwrap();
        assert!(v.report.ok(), "{:?}", v.report.problems);
        assert_eq!(v.report.events as usize, rows.len() + 1);
        assert!(matches!(v.trust, offline::KeyTrust::Unsealed));
    }
}
