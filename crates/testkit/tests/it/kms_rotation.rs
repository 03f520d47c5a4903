//! KMS key rotation through the real `aws-sdk-kms` client: EnableKeyRotation,
//! DisableKeyRotation, GetKeyRotationStatus, RotateKeyOnDemand, ListKeyRotations, and the
//! scheduled rotations of the background sweep (with the server's clock moved forward, and
//! across a restart with the server down over the due date).

use std::time::Duration;

use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{IncludeKeyMaterial, KeyMaterialState, RotationType};
use keyhold_testkit::TestServer;
use serde_json::Value;

const DAY: i64 = 86_400;

async fn current_material(kms: &aws_sdk_kms::Client, key_id: &str) -> String {
    kms.describe_key()
        .key_id(key_id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .current_key_material_id
        .unwrap()
}

async fn rotations(kms: &aws_sdk_kms::Client, key_id: &str) -> Vec<(RotationType, String)> {
    kms.list_key_rotations()
        .key_id(key_id)
        .send()
        .await
        .unwrap()
        .rotations
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            (
                r.rotation_type.unwrap(),
                r.key_material_id.unwrap_or_default(),
            )
        })
        .collect()
}

async fn encrypt(kms: &aws_sdk_kms::Client, key_id: &str, text: &[u8]) -> Blob {
    kms.encrypt()
        .key_id(key_id)
        .plaintext(Blob::new(text.to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap()
}

/// Decrypts and returns (plaintext, the material id Decrypt names).
async fn decrypt(kms: &aws_sdk_kms::Client, blob: &Blob) -> (Vec<u8>, String) {
    let out = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .send()
        .await
        .unwrap();
    (
        out.plaintext.unwrap().into_inner(),
        out.key_material_id.unwrap(),
    )
}

/// The trail's `RotateKey` service events, parsed.
fn rotate_key_events(dir: &std::path::Path) -> Vec<Value> {
    keyhold_testkit::audit_files::records(dir)
        .into_iter()
        .filter(|r| r["eventName"] == "RotateKey")
        .collect()
}

#[tokio::test]
async fn enable_and_disable_key_rotation_and_the_status_they_show() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let (id, arn) = (key.key_id(), key.arn().unwrap());

    let s = kms
        .get_key_rotation_status()
        .key_id(id)
        .send()
        .await
        .unwrap();
    assert_eq!(s.key_id(), Some(arn));
    assert!(!s.key_rotation_enabled());
    assert_eq!(s.rotation_period_in_days(), None);
    assert!(s.next_rotation_date().is_none());
    assert!(s.on_demand_rotation_start_date().is_none());

    kms.enable_key_rotation().key_id(id).send().await.unwrap();
    let s = kms
        .get_key_rotation_status()
        .key_id(arn)
        .send()
        .await
        .unwrap();
    assert!(s.key_rotation_enabled());
    assert_eq!(s.rotation_period_in_days(), Some(365));
    let next = s.next_rotation_date().unwrap().secs();
    assert!(
        (next - (keyhold_testkit::unix_now() + 365 * DAY)).abs() < 60,
        "365 days from now"
    );

    kms.enable_key_rotation()
        .key_id(id)
        .rotation_period_in_days(90)
        .send()
        .await
        .unwrap();
    let s = kms
        .get_key_rotation_status()
        .key_id(id)
        .send()
        .await
        .unwrap();
    assert_eq!(s.rotation_period_in_days(), Some(90));
    let next = s.next_rotation_date().unwrap().secs();
    assert!(
        (next - (keyhold_testkit::unix_now() + 90 * DAY)).abs() < 60,
        "90 days from now"
    );

    for bad in [89, 2561] {
        let e = kms
            .enable_key_rotation()
            .key_id(id)
            .rotation_period_in_days(bad)
            .send()
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("ValidationException"), "{bad}");
    }

    kms.disable_key_rotation().key_id(id).send().await.unwrap();
    let s = kms
        .get_key_rotation_status()
        .key_id(id)
        .send()
        .await
        .unwrap();
    assert!(!s.key_rotation_enabled());
    assert_eq!(s.rotation_period_in_days(), None);
    assert!(s.next_rotation_date().is_none());
    // Disabling twice is not an error.
    kms.disable_key_rotation().key_id(id).send().await.unwrap();

    let missing = "arn:aws:kms:us-east-1:000000000000:key/00000000-0000-4000-8000-000000000000";
    let e = kms
        .enable_key_rotation()
        .key_id(missing)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(e.as_service_error().unwrap()),
        (
            "NotFoundException".into(),
            format!("Key '{missing}' does not exist")
        )
    );
}

#[tokio::test]
async fn on_demand_rotation_moves_new_ciphertexts_to_new_material_and_old_ones_still_decrypt() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let id = key.key_id();
    let first = key.current_key_material_id().unwrap().to_owned();
    kms.enable_key_rotation()
        .key_id(id)
        .rotation_period_in_days(730)
        .send()
        .await
        .unwrap();
    let scheduled = kms
        .get_key_rotation_status()
        .key_id(id)
        .send()
        .await
        .unwrap()
        .next_rotation_date
        .unwrap();
    let before = encrypt(&kms, id, b"before").await;
    let data_key = kms
        .generate_data_key_without_plaintext()
        .key_id(id)
        .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
        .send()
        .await
        .unwrap();
    assert_eq!(data_key.key_material_id(), Some(first.as_str()));

    let out = kms.rotate_key_on_demand().key_id(id).send().await.unwrap();
    assert_eq!(out.key_id(), Some(id));

    let second = current_material(&kms, id).await;
    assert_ne!(second, first, "DescribeKey names the new material");
    // AWS records the rotation itself too, besides the call; it is durable on the response.
    let [event] = rotate_key_events(server.data_dir()).try_into().unwrap();
    assert_eq!(event["eventType"], "AwsServiceEvent");
    assert_eq!(event["serviceEventDetails"]["rotationType"], "ON_DEMAND");
    assert_eq!(event["serviceEventDetails"]["previousKeyMaterialId"], first);
    assert_eq!(event["serviceEventDetails"]["currentKeyMaterialId"], second);
    let after = encrypt(&kms, id, b"after").await;
    assert_eq!(
        decrypt(&kms, &after).await,
        (b"after".to_vec(), second.clone())
    );
    assert_eq!(
        decrypt(&kms, &before).await,
        (b"before".to_vec(), first.clone())
    );
    let data_key_plain = kms
        .decrypt()
        .ciphertext_blob(data_key.ciphertext_blob.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(data_key_plain.key_material_id(), Some(first.as_str()));

    // ReEncrypt opens the old material and seals under the new.
    let re = kms
        .re_encrypt()
        .ciphertext_blob(before.clone())
        .destination_key_id(id)
        .send()
        .await
        .unwrap();
    assert_eq!(re.source_key_material_id(), Some(first.as_str()));
    assert_eq!(re.destination_key_material_id(), Some(second.as_str()));
    assert_eq!(
        decrypt(&kms, &re.ciphertext_blob.unwrap()).await,
        (b"before".to_vec(), second.clone())
    );

    // The automatic schedule does not move.
    let s = kms
        .get_key_rotation_status()
        .key_id(id)
        .send()
        .await
        .unwrap();
    assert_eq!(s.next_rotation_date(), Some(&scheduled));
    assert!(s.on_demand_rotation_start_date().is_none());

    let list = kms.list_key_rotations().key_id(id).send().await.unwrap();
    assert!(!list.truncated());
    let [entry] = list.rotations() else {
        panic!("one rotation: {list:?}")
    };
    assert_eq!(entry.key_id(), Some(id));
    assert_eq!(entry.rotation_type(), Some(&RotationType::OnDemand));
    assert_eq!(entry.key_material_id(), Some(second.as_str()));
    assert_eq!(entry.key_material_state(), Some(&KeyMaterialState::Current));
    let date = entry.rotation_date().unwrap().secs();
    assert!((date - keyhold_testkit::unix_now()).abs() < 60);

    // All key material: the first one too, without a rotation.
    let all = kms
        .list_key_rotations()
        .key_id(id)
        .include_key_material(IncludeKeyMaterial::AllKeyMaterial)
        .send()
        .await
        .unwrap();
    let [original, rotated] = all.rotations() else {
        panic!("two materials: {all:?}")
    };
    assert_eq!(original.key_material_id(), Some(first.as_str()));
    assert_eq!(
        original.key_material_state(),
        Some(&KeyMaterialState::NonCurrent)
    );
    assert!(original.rotation_type().is_none() && original.rotation_date().is_none());
    assert_eq!(rotated.key_material_id(), Some(second.as_str()));

    // On-demand rotation works with automatic rotation disabled too.
    kms.disable_key_rotation().key_id(id).send().await.unwrap();
    kms.rotate_key_on_demand().key_id(id).send().await.unwrap();
    assert_eq!(rotations(&kms, id).await.len(), 2);
}

#[tokio::test]
async fn on_demand_rotations_stop_at_25_and_list_in_pages() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let (id, arn) = (key.key_id(), key.arn().unwrap());
    for _ in 0..25 {
        kms.rotate_key_on_demand().key_id(id).send().await.unwrap();
    }
    let e = kms
        .rotate_key_on_demand()
        .key_id(id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(e.as_service_error().unwrap()),
        (
            "LimitExceededException".into(),
            format!(
                "An on-demand rotation limit was exceeded: {arn} can be rotated on demand at most 25 times."
            )
        )
    );

    let mut seen = Vec::new();
    let mut marker = None;
    let mut pages = 0;
    loop {
        let page = kms
            .list_key_rotations()
            .key_id(id)
            .limit(10)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        seen.extend(
            page.rotations()
                .iter()
                .map(|r| r.key_material_id().unwrap().to_owned()),
        );
        if !page.truncated() {
            assert!(page.next_marker().is_none());
            break;
        }
        marker = page.next_marker().map(str::to_owned);
    }
    assert_eq!((pages, seen.len()), (3, 25));
    assert_eq!(seen.last(), Some(&current_material(&kms, id).await));
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 25, "every rotation has its own material");

    let e = kms
        .list_key_rotations()
        .key_id(id)
        .marker("not-a-marker")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidMarkerException"));
}

#[tokio::test]
async fn disabled_and_pending_deletion_keys_refuse_rotation_changes() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let (id, arn) = (key.key_id(), key.arn().unwrap());
    kms.enable_key_rotation().key_id(id).send().await.unwrap();

    kms.disable_key().key_id(id).send().await.unwrap();
    let disabled = (
        "DisabledException".to_owned(),
        format!("{arn} is disabled."),
    );
    let e = kms
        .enable_key_rotation()
        .key_id(id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(e.as_service_error().unwrap()),
        disabled
    );
    let e = kms
        .disable_key_rotation()
        .key_id(id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(e.as_service_error().unwrap()),
        disabled
    );
    let e = kms
        .rotate_key_on_demand()
        .key_id(id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(e.as_service_error().unwrap()),
        disabled
    );
    // The status does not change while the key is disabled, and the history is readable.
    let s = kms
        .get_key_rotation_status()
        .key_id(id)
        .send()
        .await
        .unwrap();
    assert!(s.key_rotation_enabled());
    assert!(rotations(&kms, id).await.is_empty());

    kms.schedule_key_deletion()
        .key_id(id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    let pending = (
        "KMSInvalidStateException".to_owned(),
        format!("{arn} is pending deletion."),
    );
    let e = kms
        .enable_key_rotation()
        .key_id(id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(e.as_service_error().unwrap()),
        pending
    );
    let e = kms
        .disable_key_rotation()
        .key_id(id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(e.as_service_error().unwrap()),
        pending
    );
    let e = kms
        .rotate_key_on_demand()
        .key_id(id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(e.as_service_error().unwrap()),
        pending
    );
    // Pending deletion: the status is false; cancelling restores it.
    let s = kms
        .get_key_rotation_status()
        .key_id(id)
        .send()
        .await
        .unwrap();
    assert!(!s.key_rotation_enabled());
    assert!(s.rotation_period_in_days().is_none());
    kms.cancel_key_deletion().key_id(id).send().await.unwrap();
    let s = kms
        .get_key_rotation_status()
        .key_id(id)
        .send()
        .await
        .unwrap();
    assert!(s.key_rotation_enabled());
    assert_eq!(s.rotation_period_in_days(), Some(365));
}

#[tokio::test]
async fn aws_managed_keys_rotate_yearly_and_cannot_be_configured() {
    let server = TestServer::start().await;
    server
        .secrets_manager()
        .create_secret()
        .name("db")
        .secret_string("hunter2")
        .send()
        .await
        .unwrap();
    let kms = server.kms();
    let managed = kms
        .describe_key()
        .key_id("alias/aws/secretsmanager")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let id = managed.key_id();
    let s = kms
        .get_key_rotation_status()
        .key_id(id)
        .send()
        .await
        .unwrap();
    assert!(s.key_rotation_enabled());
    assert_eq!(s.rotation_period_in_days(), Some(365));
    let next = s.next_rotation_date().unwrap().secs();
    assert!((next - (keyhold_testkit::unix_now() + 365 * DAY)).abs() < 60);
    assert!(rotations(&kms, id).await.is_empty());

    // Its policy allows only reading metadata directly: configuring it is refused.
    for e in [
        kms.enable_key_rotation()
            .key_id(id)
            .send()
            .await
            .unwrap_err()
            .code()
            .map(str::to_owned),
        kms.disable_key_rotation()
            .key_id(id)
            .send()
            .await
            .unwrap_err()
            .code()
            .map(str::to_owned),
        kms.rotate_key_on_demand()
            .key_id(id)
            .send()
            .await
            .unwrap_err()
            .code()
            .map(str::to_owned),
    ] {
        assert_eq!(e.as_deref(), Some("AccessDeniedException"));
    }
}

#[tokio::test]
async fn a_due_rotation_happens_once_on_schedule() {
    let server = TestServer::builder()
        .deletion_sweep_interval(Duration::from_millis(50))
        .start()
        .await;
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let (id, arn) = (key.key_id(), key.arn().unwrap());
    let first = key.current_key_material_id().unwrap().to_owned();
    // A key without automatic rotation is never rotated by the schedule.
    let still = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    kms.enable_key_rotation()
        .key_id(id)
        .rotation_period_in_days(90)
        .send()
        .await
        .unwrap();
    let before = encrypt(&kms, id, b"before").await;

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(current_material(&kms, id).await, first, "not due yet");

    // Past the due date, by more than two periods: one rotation, not three.
    server.clock().advance(Duration::from_secs(200 * 86_400));
    let mut second = first.clone();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        second = current_material(&kms, id).await;
        if second != first {
            break;
        }
    }
    assert_ne!(second, first, "the key rotated once due");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rotations(&kms, id).await,
        [(RotationType::Automatic, second.clone())]
    );
    assert!(rotations(&kms, still.key_id()).await.is_empty());

    let s = kms
        .get_key_rotation_status()
        .key_id(id)
        .send()
        .await
        .unwrap();
    let next = s.next_rotation_date().unwrap().secs();
    assert!(
        (next - (keyhold_testkit::unix_now() + 290 * DAY)).abs() < 60,
        "the next rotation is one period after this one"
    );
    assert_eq!(
        decrypt(&kms, &before).await,
        (b"before".to_vec(), first.clone())
    );
    let after = encrypt(&kms, id, b"after").await;
    assert_eq!(decrypt(&kms, &after).await.1, second);

    // The trail records it as AWS does: a service event, no caller.
    let mut events = Vec::new();
    for _ in 0..100 {
        events = rotate_key_events(server.data_dir());
        if !events.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let [event] = events.as_slice() else {
        panic!("one RotateKey event: {events:?}")
    };
    assert_eq!(event["eventType"], "AwsServiceEvent");
    assert_eq!(event["eventSource"], "kms.amazonaws.com");
    assert_eq!(
        event["userIdentity"],
        serde_json::json!({"accountId": "000000000000", "invokedBy": "AWS Internal"})
    );
    assert_eq!(event["sourceIPAddress"], "AWS Internal");
    assert!(event["requestParameters"].is_null());
    assert_eq!(event["resources"][0]["ARN"], arn);
    assert_eq!(
        event["serviceEventDetails"],
        serde_json::json!({
            "rotationType": "AUTOMATIC",
            "keyId": id,
            "keyOrigin": "AWS_KMS",
            "previousKeyMaterialId": first,
            "currentKeyMaterialId": second,
        })
    );
}

#[tokio::test]
async fn a_rotation_due_while_the_server_was_down_happens_once_at_start() {
    let dir = tempfile::tempdir().unwrap();
    // A sweep interval far longer than the test: only the sweep at start can rotate.
    let hour = Duration::from_secs(3600);
    let server = TestServer::builder()
        .data_dir(dir.path())
        .deletion_sweep_interval(hour)
        .start()
        .await;
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let id = key.key_id().to_owned();
    let first = key.current_key_material_id().unwrap().to_owned();
    kms.enable_key_rotation()
        .key_id(&id)
        .rotation_period_in_days(90)
        .send()
        .await
        .unwrap();
    let before = encrypt(&kms, &id, b"before").await;
    server.stop().await;

    // Down for 400 days: four periods missed.
    let down = Duration::from_secs(400 * 86_400);
    let server = TestServer::builder()
        .data_dir(dir.path())
        .deletion_sweep_interval(hour)
        .clock_ahead(down)
        .start()
        .await;
    let kms = server.kms();
    let mut second = first.clone();
    for _ in 0..100 {
        second = current_material(&kms, &id).await;
        if second != first {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_ne!(second, first, "the missed rotation happened at start");
    assert_eq!(
        rotations(&kms, &id).await,
        [(RotationType::Automatic, second.clone())]
    );
    let next = kms
        .get_key_rotation_status()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .next_rotation_date
        .unwrap()
        .secs();
    assert!((next - (keyhold_testkit::unix_now() + 490 * DAY)).abs() < 60);
    assert_eq!(decrypt(&kms, &before).await, (b"before".to_vec(), first));
    server.stop().await;

    // Started again at the same time: nothing is due, nothing rotates.
    let server = TestServer::builder()
        .data_dir(dir.path())
        .deletion_sweep_interval(hour)
        .clock_ahead(down)
        .start()
        .await;
    let kms = server.kms();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(current_material(&kms, &id).await, second);
    assert_eq!(rotations(&kms, &id).await.len(), 1);
    server.stop().await;
    assert_eq!(rotate_key_events(dir.path()).len(), 1);
}

#[tokio::test]
async fn a_key_policy_can_bound_the_rotation_period() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let id = key.key_id();
    let policy = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:root"},
     "Action": "kms:*", "Resource": "*"},
    {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "kms:EnableKeyRotation",
     "Resource": "*",
     "Condition": {"NumericLessThan": {"kms:RotationPeriodInDays": "180"}}}
  ]
}"#;
    kms.put_key_policy()
        .key_id(id)
        .policy_name("default")
        .policy(policy)
        .send()
        .await
        .unwrap();
    let e = kms
        .enable_key_rotation()
        .key_id(id)
        .rotation_period_in_days(90)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));
    kms.enable_key_rotation()
        .key_id(id)
        .rotation_period_in_days(180)
        .send()
        .await
        .unwrap();
    let s = kms
        .get_key_rotation_status()
        .key_id(id)
        .send()
        .await
        .unwrap();
    assert_eq!(s.rotation_period_in_days(), Some(180));
}

/// `GetKeyRotationStatus` works across accounts when the key policy allows it; the other
/// rotation operations never do, whatever the policy says (AWS: "Cross-account use: No").
#[tokio::test]
async fn only_the_rotation_status_is_readable_from_another_account() {
    let server = TestServer::start().await;
    let owner = server.kms_for("111111111111", "us-east-1");
    let partner = server.kms_for("222222222222", "us-east-1");
    let key = owner
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let arn = key.arn().unwrap();
    let policy = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:root"},
     "Action": "kms:*", "Resource": "*"},
    {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::222222222222:root"},
     "Action": "kms:*", "Resource": "*"}
  ]
}"#;
    owner
        .put_key_policy()
        .key_id(key.key_id())
        .policy_name("default")
        .policy(policy)
        .send()
        .await
        .unwrap();
    owner
        .enable_key_rotation()
        .key_id(key.key_id())
        .send()
        .await
        .unwrap();

    let s = partner
        .get_key_rotation_status()
        .key_id(arn)
        .send()
        .await
        .unwrap();
    assert!(s.key_rotation_enabled());
    assert_eq!(s.key_id(), Some(arn));

    let codes = [
        partner
            .enable_key_rotation()
            .key_id(arn)
            .send()
            .await
            .unwrap_err()
            .code()
            .map(str::to_owned),
        partner
            .disable_key_rotation()
            .key_id(arn)
            .send()
            .await
            .unwrap_err()
            .code()
            .map(str::to_owned),
        partner
            .rotate_key_on_demand()
            .key_id(arn)
            .send()
            .await
            .unwrap_err()
            .code()
            .map(str::to_owned),
        partner
            .list_key_rotations()
            .key_id(arn)
            .send()
            .await
            .unwrap_err()
            .code()
            .map(str::to_owned),
    ];
    for code in codes {
        assert_eq!(code.as_deref(), Some("AccessDeniedException"));
    }
}

/// An AWS-managed key rotates on its yearly schedule, and what it protected stays readable.
#[tokio::test]
async fn aws_managed_keys_rotate_after_a_year_and_old_secrets_still_read() {
    let server = TestServer::builder()
        .deletion_sweep_interval(Duration::from_millis(50))
        .start()
        .await;
    let secrets = server.secrets_manager();
    secrets
        .create_secret()
        .name("db")
        .secret_string("hunter2")
        .send()
        .await
        .unwrap();
    let kms = server.kms();
    let managed = kms
        .describe_key()
        .key_id("alias/aws/secretsmanager")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let id = managed.key_id();
    let first = managed.current_key_material_id().unwrap().to_owned();

    server.clock().advance(Duration::from_secs(366 * 86_400));
    let mut second = first.clone();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        second = current_material(&kms, id).await;
        if second != first {
            break;
        }
    }
    assert_ne!(second, first, "the managed key rotated after a year");
    assert_eq!(
        rotations(&kms, id).await,
        [(RotationType::Automatic, second)]
    );
    let next = kms
        .get_key_rotation_status()
        .key_id(id)
        .send()
        .await
        .unwrap()
        .next_rotation_date
        .unwrap()
        .secs();
    assert!((next - (keyhold_testkit::unix_now() + (366 + 365) * DAY)).abs() < 60);
    let value = secrets
        .get_secret_value()
        .secret_id("db")
        .send()
        .await
        .unwrap();
    assert_eq!(value.secret_string(), Some("hunter2"));
}
