//! KMS key lifecycle through the real `aws-sdk-kms` client: CreateKey, DescribeKey,
//! ListKeys, EnableKey, DisableKey, ScheduleKeyDeletion, CancelKeyDeletion,
//! UpdateKeyDescription.

use std::time::Duration;

use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::types::{KeyManagerType, KeySpec, KeyState, KeyUsageType, OriginType};
use keyhold_testkit::{TestServer, new_key};

#[tokio::test]
async fn create_key_returns_aws_shaped_metadata() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let out = kms
        .create_key()
        .description("lab envelope key")
        .send()
        .await
        .unwrap();
    let m = out.key_metadata().unwrap();
    let id = m.key_id();
    assert_eq!(id.len(), 36, "a UUID key id");
    assert_eq!(
        m.arn().unwrap(),
        format!("arn:aws:kms:us-east-1:000000000000:key/{id}")
    );
    assert_eq!(m.aws_account_id(), Some("000000000000"));
    assert_eq!(m.description(), Some("lab envelope key"));
    assert_eq!(m.key_state(), Some(&KeyState::Enabled));
    assert!(m.enabled());
    assert_eq!(m.key_usage(), Some(&KeyUsageType::EncryptDecrypt));
    assert_eq!(m.key_spec(), Some(&KeySpec::SymmetricDefault));
    assert_eq!(m.origin(), Some(&OriginType::AwsKms));
    assert_eq!(m.key_manager(), Some(&KeyManagerType::Customer));
    assert_eq!(m.multi_region(), Some(false));
    assert_eq!(m.current_key_material_id().map(str::len), Some(64));
    assert!(m.creation_date().is_some());
    assert!(m.deletion_date().is_none());

    let no_description = kms.create_key().send().await.unwrap();
    assert_eq!(
        no_description.key_metadata().unwrap().description(),
        Some(""),
        "AWS returns an empty description"
    );
}

#[tokio::test]
async fn describe_key_by_every_identifier() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let m = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    kms.create_alias()
        .alias_name("alias/app")
        .target_key_id(m.key_id())
        .send()
        .await
        .unwrap();
    for ident in [
        m.key_id().to_owned(),
        m.arn().unwrap().to_owned(),
        "alias/app".to_owned(),
        "arn:aws:kms:us-east-1:000000000000:alias/app".to_owned(),
    ] {
        let d = kms.describe_key().key_id(&ident).send().await.unwrap();
        assert_eq!(d.key_metadata().unwrap().key_id(), m.key_id(), "{ident}");
    }
}

#[tokio::test]
async fn describe_key_not_found_messages() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let missing = "11111111-2222-3333-4444-555555555555";
    let e = kms.describe_key().key_id(missing).send().await.unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "NotFoundException".into(),
            format!("Key 'arn:aws:kms:us-east-1:000000000000:key/{missing}' does not exist")
        )
    );
    let e = kms
        .describe_key()
        .key_id("not-a-key")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "NotFoundException".into(),
            "Invalid keyId 'not-a-key'".into()
        )
    );
    let e = kms
        .describe_key()
        .key_id("alias/nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "NotFoundException".into(),
            "Alias arn:aws:kms:us-east-1:000000000000:alias/nope is not found.".into()
        )
    );
    let e = kms
        .describe_key()
        .key_id(format!("arn:aws:kms:us-west-2:000000000000:key/{missing}"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        ("NotFoundException".into(), "Invalid arn us-west-2".into())
    );
}

#[tokio::test]
async fn keys_are_scoped_to_account_and_region() {
    let server = TestServer::start().await;
    let a = server.kms_for("111111111111", "us-east-1");
    let b = server.kms_for("222222222222", "us-east-1");
    let west = server.kms_for("111111111111", "eu-west-1");
    let china = server.kms_for("111111111111", "cn-north-1");
    let key = a.create_key().send().await.unwrap().key_metadata.unwrap();
    assert!(
        key.arn()
            .unwrap()
            .starts_with("arn:aws:kms:us-east-1:111111111111:key/")
    );
    assert!(
        b.describe_key().key_id(key.key_id()).send().await.is_err(),
        "another account sees nothing by id"
    );
    assert!(
        west.describe_key()
            .key_id(key.key_id())
            .send()
            .await
            .is_err(),
        "another region sees nothing"
    );
    let cn = china
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert!(
        cn.arn()
            .unwrap()
            .starts_with("arn:aws-cn:kms:cn-north-1:111111111111:key/")
    );
    let listed = a.list_keys().send().await.unwrap();
    assert_eq!(listed.keys().len(), 1);
    assert_eq!(b.list_keys().send().await.unwrap().keys().len(), 0);
}

#[tokio::test]
async fn list_keys_pages_with_markers() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let mut created = Vec::new();
    for _ in 0..5 {
        created.push(new_key(&kms).await.id);
    }
    created.sort();
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = kms
            .list_keys()
            .limit(2)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap();
        assert!(page.keys().len() <= 2);
        seen.extend(page.keys().iter().map(|k| k.key_id().unwrap().to_owned()));
        if !page.truncated() {
            assert!(page.next_marker().is_none());
            break;
        }
        marker = page.next_marker().map(str::to_owned);
    }
    assert_eq!(seen, created);
    let all = kms.list_keys().send().await.unwrap();
    assert_eq!(all.keys().len(), 5);
    assert!(!all.truncated());
    let e = kms.list_keys().marker("garbage").send().await.unwrap_err();
    assert_eq!(e.code(), Some("InvalidMarkerException"));
}

#[tokio::test]
async fn enable_and_disable() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let id = key.key_id();
    kms.disable_key().key_id(id).send().await.unwrap();
    kms.disable_key().key_id(id).send().await.unwrap();
    let d = kms
        .describe_key()
        .key_id(id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(d.key_state(), Some(&KeyState::Disabled));
    assert!(!d.enabled());
    let e = kms
        .encrypt()
        .key_id(id)
        .plaintext(b"x".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "DisabledException".into(),
            format!("{} is disabled.", key.arn().unwrap())
        )
    );
    kms.enable_key().key_id(id).send().await.unwrap();
    kms.encrypt()
        .key_id(id)
        .plaintext(b"x".to_vec().into())
        .send()
        .await
        .unwrap();
    let e = kms
        .enable_key()
        .key_id("alias/whatever")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "InvalidArnException".into(),
            "Key Aliases are not supported for this operation.".into()
        )
    );
}

#[tokio::test]
async fn schedule_and_cancel_deletion() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let (id, arn) = (key.key_id(), key.arn().unwrap());

    for days in [6, 31] {
        let e = kms
            .schedule_key_deletion()
            .key_id(id)
            .pending_window_in_days(days)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            keyhold_testkit::code_and_message(&e),
            (
                "ValidationException".into(),
                "PendingWindowInDays must be between 7 and 30".into()
            )
        );
    }
    let e = kms
        .cancel_key_deletion()
        .key_id(id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "KMSInvalidStateException".into(),
            format!("{arn} is not pending deletion.")
        )
    );

    let before = std::time::SystemTime::now();
    let s = kms.schedule_key_deletion().key_id(id).send().await.unwrap();
    assert_eq!(s.key_id(), Some(arn));
    assert_eq!(s.key_state(), Some(&KeyState::PendingDeletion));
    assert_eq!(s.pending_window_in_days(), Some(30), "30 days by default");
    let deletion = std::time::SystemTime::try_from(*s.deletion_date().unwrap()).unwrap();
    let days = deletion.duration_since(before).unwrap().as_secs_f64() / 86400.0;
    assert!(
        (29.99..30.01).contains(&days),
        "deletion date is 30 days out, got {days}"
    );

    let d = kms
        .describe_key()
        .key_id(id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(d.key_state(), Some(&KeyState::PendingDeletion));
    assert!(d.deletion_date().is_some());
    assert!(!d.enabled());

    let e = kms
        .encrypt()
        .key_id(id)
        .plaintext(b"x".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "KMSInvalidStateException".into(),
            format!("{arn} is pending deletion.")
        )
    );
    let e = kms
        .schedule_key_deletion()
        .key_id(id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "KMSInvalidStateException".into(),
            format!("{arn} is pending deletion.")
        )
    );
    let e = kms.enable_key().key_id(id).send().await.unwrap_err();
    assert_eq!(e.code(), Some("KMSInvalidStateException"));

    let c = kms.cancel_key_deletion().key_id(id).send().await.unwrap();
    assert_eq!(
        c.key_id(),
        Some(arn),
        "CancelKeyDeletion answers with the key ARN"
    );
    let d = kms
        .describe_key()
        .key_id(id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(
        d.key_state(),
        Some(&KeyState::Disabled),
        "a cancelled deletion leaves the key disabled"
    );
    assert!(d.deletion_date().is_none());
}

#[tokio::test]
async fn scheduled_deletion_happens_when_due() {
    let server = TestServer::builder()
        .deletion_sweep_interval(Duration::from_millis(50))
        .start()
        .await;
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let keep = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    kms.create_alias()
        .alias_name("alias/doomed")
        .target_key_id(key.key_id())
        .send()
        .await
        .unwrap();
    let blob = kms
        .encrypt()
        .key_id(keep.key_id())
        .plaintext(b"kept".to_vec().into())
        .send()
        .await
        .unwrap();
    kms.schedule_key_deletion()
        .key_id(key.key_id())
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        kms.describe_key().key_id(key.key_id()).send().await.is_ok(),
        "not due yet"
    );

    server.clock().advance(Duration::from_secs(7 * 86400 + 60));
    let mut gone = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Err(e) = kms.describe_key().key_id(key.key_id()).send().await {
            assert_eq!(e.code(), Some("NotFoundException"));
            gone = true;
            break;
        }
    }
    assert!(gone, "the key is deleted once its waiting period is over");
    let aliases = kms.list_aliases().send().await.unwrap();
    assert!(
        aliases
            .aliases()
            .iter()
            .all(|a| a.alias_name() != Some("alias/doomed")),
        "its aliases go with it"
    );
    let d = kms
        .decrypt()
        .ciphertext_blob(blob.ciphertext_blob.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        d.plaintext().unwrap().as_ref(),
        b"kept",
        "other keys are untouched"
    );
}

#[tokio::test]
async fn update_key_description() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let key = kms
        .create_key()
        .description("old")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    kms.update_key_description()
        .key_id(key.key_id())
        .description("new")
        .send()
        .await
        .unwrap();
    let d = kms
        .describe_key()
        .key_id(key.key_id())
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(d.description(), Some("new"));
    kms.update_key_description()
        .key_id(key.key_id())
        .description("")
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn unsupported_key_specs_are_refused_honestly() {
    let server = TestServer::start().await;
    let kms = server.kms();
    // SM2 is China-only (no maintained Rust library implements it either).
    let e = kms
        .create_key()
        .key_spec(KeySpec::Sm2)
        .key_usage(KeyUsageType::SignVerify)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    let e = kms
        .create_key()
        .key_usage(KeyUsageType::SignVerify)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    // EXTERNAL (imported material) is served: see kms_import; AWS_CLOUDHSM needs a custom
    // key store (kms_custom_key_stores). External key stores are not served.
    let e = kms
        .create_key()
        .origin(OriginType::AwsCloudhsm)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    let e = kms
        .create_key()
        .origin(OriginType::ExternalKeyStore)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("UnsupportedOperationException"));
}

#[tokio::test]
async fn keys_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::builder().data_dir(dir.path()).start().await;
    let kms = server.kms();
    let key = kms
        .create_key()
        .description("durable")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    kms.create_alias()
        .alias_name("alias/durable")
        .target_key_id(key.key_id())
        .send()
        .await
        .unwrap();
    let blob = kms
        .encrypt()
        .key_id("alias/durable")
        .plaintext(b"survives".to_vec().into())
        .encryption_context("k", "v")
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    server.stop().await;

    let server = TestServer::builder().data_dir(dir.path()).start().await;
    let kms = server.kms();
    let d = kms
        .describe_key()
        .key_id("alias/durable")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(d.description(), Some("durable"));
    let plain = kms
        .decrypt()
        .ciphertext_blob(blob)
        .encryption_context("k", "v")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.plaintext().unwrap().as_ref(), b"survives");
    server.stop().await;
}
