//! Multi-Region KMS keys through the real `aws-sdk-kms` client, one client per region of
//! the same server: CreateKey with `MultiRegion`, ReplicateKey, DescribeKey's
//! `MultiRegionConfiguration`, ciphertexts crossing regions, a replica's own state, the
//! primary's rotation reaching its replicas, UpdatePrimaryRegion, AWS's errors, the
//! deletion of a primary that has replicas (`PendingReplicaDeletion`, across restarts),
//! ReplicateKey's authorization in the replica region, the multi-Region condition keys, and
//! multi-Region keys with imported material.

use std::time::Duration;

use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    KeySpec, KeyState, KeyUsageType, MacAlgorithmSpec, MessageType, MultiRegionKeyType,
    SigningAlgorithmSpec, Tag,
};
use keyhold_testkit::{DEFAULT_ACCOUNT, TestServer, new_key};

const EAST: &str = "us-east-1";
const WEST: &str = "eu-west-1";

fn clients(server: &TestServer) -> (aws_sdk_kms::Client, aws_sdk_kms::Client) {
    (
        server.kms_for(DEFAULT_ACCOUNT, EAST),
        server.kms_for(DEFAULT_ACCOUNT, WEST),
    )
}

async fn create_mrk(kms: &aws_sdk_kms::Client) -> String {
    kms.create_key()
        .multi_region(true)
        .description("primary")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id
}

async fn describe(kms: &aws_sdk_kms::Client, id: &str) -> aws_sdk_kms::types::KeyMetadata {
    kms.describe_key()
        .key_id(id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
}

async fn encrypt(kms: &aws_sdk_kms::Client, id: &str, text: &[u8]) -> Blob {
    kms.encrypt()
        .key_id(id)
        .plaintext(Blob::new(text.to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap()
}

fn arn(region: &str, id: &str) -> String {
    format!("arn:aws:kms:{region}:{DEFAULT_ACCOUNT}:key/{id}")
}

#[tokio::test]
async fn a_replica_shares_the_key_id_and_material_but_not_its_properties() {
    let server = TestServer::start().await;
    let (east, west) = clients(&server);

    let created = east
        .create_key()
        .multi_region(true)
        .description("primary")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let id = created.key_id.clone();
    assert!(id.starts_with("mrk-") && id.len() == 36, "{id}");
    assert_eq!(created.arn(), Some(arn(EAST, &id).as_str()));
    assert_eq!(created.multi_region(), Some(true));
    let config = created.multi_region_configuration().unwrap();
    assert_eq!(
        config.multi_region_key_type(),
        Some(&MultiRegionKeyType::Primary)
    );
    assert_eq!(config.primary_key().unwrap().region(), Some(EAST));
    assert!(config.replica_keys().is_empty());
    // Not there before ReplicateKey.
    let missing = west.describe_key().key_id(&id).send().await.unwrap_err();
    assert_eq!(missing.code(), Some("NotFoundException"));

    let replicated = east
        .replicate_key()
        .key_id(&id)
        .replica_region(WEST)
        .description("replica")
        .tags(
            Tag::builder()
                .tag_key("side")
                .tag_value("west")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let replica = replicated.replica_key_metadata.unwrap();
    assert_eq!(replica.key_id, id);
    assert_eq!(replica.arn(), Some(arn(WEST, &id).as_str()));
    assert_eq!(replica.description(), Some("replica"));
    assert_eq!(
        replica
            .multi_region_configuration()
            .unwrap()
            .multi_region_key_type(),
        Some(&MultiRegionKeyType::Replica)
    );
    assert!(replicated.replica_policy.unwrap().contains("kms:*"));
    assert_eq!(replicated.replica_tags.unwrap().len(), 1);

    // DescribeKey in both regions.
    for (kms, region, key_type, description) in [
        (&east, EAST, MultiRegionKeyType::Primary, "primary"),
        (&west, WEST, MultiRegionKeyType::Replica, "replica"),
    ] {
        let m = describe(kms, &id).await;
        assert_eq!(m.key_id, id);
        assert_eq!(m.arn(), Some(arn(region, &id).as_str()));
        assert_eq!(m.description(), Some(description));
        assert_eq!(m.multi_region(), Some(true));
        let c = m.multi_region_configuration().unwrap();
        assert_eq!(c.multi_region_key_type(), Some(&key_type));
        assert_eq!(
            c.primary_key().unwrap().arn(),
            Some(arn(EAST, &id).as_str())
        );
        let replicas: Vec<_> = c
            .replica_keys()
            .iter()
            .map(|r| r.region().unwrap())
            .collect();
        assert_eq!(replicas, vec![WEST]);
        // By ARN too.
        let by_arn = describe(kms, &arn(region, &id)).await;
        assert_eq!(by_arn.key_id, id);
    }
    // Each region lists its own row.
    for (kms, region) in [(&east, EAST), (&west, WEST)] {
        let keys = kms.list_keys().send().await.unwrap().keys.unwrap();
        assert!(
            keys.iter().any(|k| k.key_id() == Some(id.as_str())
                && k.key_arn() == Some(arn(region, &id).as_str())),
            "{keys:?}"
        );
    }
    // Tags and policy are the replica's own.
    let west_tags = west.list_resource_tags().key_id(&id).send().await.unwrap();
    assert_eq!(west_tags.tags().len(), 1);
    let east_tags = east.list_resource_tags().key_id(&id).send().await.unwrap();
    assert!(east_tags.tags().is_empty());

    // A ciphertext of one region decrypts in the other, with and without KeyId.
    let from_east = encrypt(&east, &id, b"made in the east").await;
    let out = west
        .decrypt()
        .ciphertext_blob(from_east.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.plaintext.clone().unwrap().into_inner(),
        b"made in the east"
    );
    assert_eq!(out.key_id(), Some(arn(WEST, &id).as_str()));
    let out = west
        .decrypt()
        .key_id(&id)
        .ciphertext_blob(from_east.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.plaintext.clone().unwrap().into_inner(),
        b"made in the east"
    );
    let from_west = encrypt(&west, &arn(WEST, &id), b"made in the west").await;
    let out = east
        .decrypt()
        .ciphertext_blob(from_west)
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.plaintext.clone().unwrap().into_inner(),
        b"made in the west"
    );
    assert_eq!(out.key_id(), Some(arn(EAST, &id).as_str()));

    // An alias in the replica's region names the replica; ListAliases shows the key id.
    west.create_alias()
        .alias_name("alias/west-mrk")
        .target_key_id(&id)
        .send()
        .await
        .unwrap();
    let aliases = west.list_aliases().key_id(&id).send().await.unwrap();
    assert_eq!(aliases.aliases()[0].target_key_id(), Some(id.as_str()));
    encrypt(&west, "alias/west-mrk", b"via alias").await;

    // A grant on the replica, retired by its token alone (the token names the key by its
    // 16 bytes).
    let grant = west
        .create_grant()
        .key_id(&id)
        .grantee_principal(format!("arn:aws:iam::{DEFAULT_ACCOUNT}:root"))
        .operations(aws_sdk_kms::types::GrantOperation::Decrypt)
        .send()
        .await
        .unwrap();
    let grants = west.list_grants().key_id(&id).send().await.unwrap();
    assert_eq!(grants.grants()[0].key_id(), Some(arn(WEST, &id).as_str()));
    west.retire_grant()
        .grant_token(grant.grant_token.unwrap())
        .send()
        .await
        .unwrap();
    let grants = west.list_grants().key_id(&id).send().await.unwrap();
    assert!(grants.grants().is_empty());

    // Disabling the replica leaves the primary working.
    west.disable_key().key_id(&id).send().await.unwrap();
    let denied = west
        .decrypt()
        .ciphertext_blob(from_east.clone())
        .send()
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Some("DisabledException"));
    assert!(describe(&east, &id).await.enabled());
    let again = east
        .decrypt()
        .ciphertext_blob(from_east.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.plaintext.clone().unwrap().into_inner(),
        b"made in the east"
    );
    west.enable_key().key_id(&id).send().await.unwrap();
}

#[tokio::test]
async fn rotating_the_primary_reaches_the_replicas_and_the_primary_region_moves() {
    let server = TestServer::start().await;
    let (east, west) = clients(&server);
    let id = create_mrk(&east).await;
    east.replicate_key()
        .key_id(&id)
        .replica_region(WEST)
        .send()
        .await
        .unwrap();
    let old = encrypt(&east, &id, b"before").await;

    // Only the primary rotates; the replica reports the primary's schedule.
    let refused = west
        .enable_key_rotation()
        .key_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("UnsupportedOperationException"));
    let refused = west
        .rotate_key_on_demand()
        .key_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("UnsupportedOperationException"));
    east.enable_key_rotation().key_id(&id).send().await.unwrap();
    let status = west
        .get_key_rotation_status()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert!(status.key_rotation_enabled());
    assert_eq!(status.rotation_period_in_days(), Some(365));

    let before = describe(&east, &id).await.current_key_material_id.unwrap();
    let rotated = east
        .rotate_key_on_demand()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.key_id(), Some(id.as_str()));
    let after = describe(&east, &id).await.current_key_material_id.unwrap();
    assert_ne!(before, after);
    assert_eq!(
        describe(&west, &id)
            .await
            .current_key_material_id
            .as_deref(),
        Some(after.as_str())
    );
    let new = encrypt(&east, &id, b"after").await;
    let out = west.decrypt().ciphertext_blob(new).send().await.unwrap();
    assert_eq!(out.plaintext.clone().unwrap().into_inner(), b"after");
    assert_eq!(out.key_material_id(), Some(after.as_str()));
    let out = west.decrypt().ciphertext_blob(old).send().await.unwrap();
    assert_eq!(out.plaintext.clone().unwrap().into_inner(), b"before");
    // The replica encrypts with the new material too.
    let from_west = encrypt(&west, &id, b"west after").await;
    let out = east
        .decrypt()
        .ciphertext_blob(from_west)
        .send()
        .await
        .unwrap();
    assert_eq!(out.key_material_id(), Some(after.as_str()));

    // UpdatePrimaryRegion: to a region without a replica, then to the replica's.
    let none = east
        .update_primary_region()
        .key_id(&id)
        .primary_region("ap-south-1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(none.code(), Some("NotFoundException"));
    east.update_primary_region()
        .key_id(&id)
        .primary_region(WEST)
        .send()
        .await
        .unwrap();
    for (kms, key_type) in [
        (&west, MultiRegionKeyType::Primary),
        (&east, MultiRegionKeyType::Replica),
    ] {
        let c = describe(kms, &id).await.multi_region_configuration.unwrap();
        assert_eq!(c.multi_region_key_type(), Some(&key_type));
        assert_eq!(
            c.primary_key().unwrap().arn(),
            Some(arn(WEST, &id).as_str())
        );
        let replicas: Vec<_> = c
            .replica_keys()
            .iter()
            .map(|r| r.region().unwrap())
            .collect();
        assert_eq!(replicas, vec![EAST]);
    }
    // The schedule moved with the primary; now the west rotates and the east follows.
    let status = east
        .get_key_rotation_status()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert!(status.key_rotation_enabled());
    let refused = east
        .rotate_key_on_demand()
        .key_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("UnsupportedOperationException"));
    west.rotate_key_on_demand()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    let newest = describe(&west, &id).await.current_key_material_id.unwrap();
    let blob = encrypt(&west, &id, b"newest").await;
    let out = east.decrypt().ciphertext_blob(blob).send().await.unwrap();
    assert_eq!(out.key_material_id(), Some(newest.as_str()));
}

#[tokio::test]
async fn asymmetric_and_hmac_multi_region_keys_work_in_their_replicas() {
    let server = TestServer::start().await;
    let (east, west) = clients(&server);

    let signing = east
        .create_key()
        .multi_region(true)
        .key_spec(KeySpec::EccNistP256)
        .key_usage(KeyUsageType::SignVerify)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    east.replicate_key()
        .key_id(&signing)
        .replica_region(WEST)
        .send()
        .await
        .unwrap();
    let signature = east
        .sign()
        .key_id(&signing)
        .message(Blob::new(b"signed in the east".to_vec()))
        .message_type(MessageType::Raw)
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .unwrap()
        .signature
        .unwrap();
    let verified = west
        .verify()
        .key_id(&signing)
        .message(Blob::new(b"signed in the east".to_vec()))
        .message_type(MessageType::Raw)
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .signature(signature)
        .send()
        .await
        .unwrap();
    assert!(verified.signature_valid());
    let east_public = east.get_public_key().key_id(&signing).send().await.unwrap();
    let west_public = west.get_public_key().key_id(&signing).send().await.unwrap();
    assert_eq!(east_public.public_key, west_public.public_key);

    let mac_key = east
        .create_key()
        .multi_region(true)
        .key_spec(KeySpec::Hmac256)
        .key_usage(KeyUsageType::GenerateVerifyMac)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    east.replicate_key()
        .key_id(&mac_key)
        .replica_region(WEST)
        .send()
        .await
        .unwrap();
    assert_mac_verifies_across(&east, &west, &mac_key).await;
}

/// A MAC made with `key` in one region verifies with it in the other.
async fn assert_mac_verifies_across(
    from: &aws_sdk_kms::Client,
    to: &aws_sdk_kms::Client,
    key: &str,
) {
    let mac = from
        .generate_mac()
        .key_id(key)
        .message(Blob::new(b"mac".to_vec()))
        .mac_algorithm(MacAlgorithmSpec::HmacSha256)
        .send()
        .await
        .unwrap()
        .mac
        .unwrap();
    let valid = to
        .verify_mac()
        .key_id(key)
        .message(Blob::new(b"mac".to_vec()))
        .mac_algorithm(MacAlgorithmSpec::HmacSha256)
        .mac(mac)
        .send()
        .await
        .unwrap();
    assert!(valid.mac_valid());
}

#[tokio::test]
async fn replicate_key_errors() {
    let server = TestServer::start().await;
    let (east, west) = clients(&server);
    let id = create_mrk(&east).await;
    east.replicate_key()
        .key_id(&id)
        .replica_region(WEST)
        .send()
        .await
        .unwrap();

    // The region has a replica already.
    let again = east
        .replicate_key()
        .key_id(&id)
        .replica_region(WEST)
        .send()
        .await
        .unwrap_err();
    assert_eq!(again.code(), Some("AlreadyExistsException"));
    // Into the primary's own region.
    let same = east
        .replicate_key()
        .key_id(&id)
        .replica_region(EAST)
        .send()
        .await
        .unwrap_err();
    assert_eq!(same.code(), Some("ValidationException"));
    // A replica is not replicated.
    let replica = west
        .replicate_key()
        .key_id(&id)
        .replica_region("ap-south-1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(replica.code(), Some("UnsupportedOperationException"));
    // AWS's wording (captured).
    assert_eq!(
        replica.message(),
        Some(format!("{} is not a multi-region primary key.", arn(WEST, &id)).as_str())
    );
    // A single-Region key is neither replicated nor given another primary.
    let single = new_key(&east).await.id;
    let err = east
        .replicate_key()
        .key_id(&single)
        .replica_region(WEST)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("UnsupportedOperationException"));
    let err = east
        .update_primary_region()
        .key_id(&single)
        .primary_region(WEST)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("UnsupportedOperationException"));
    // A single-Region key's description says so.
    let m = describe(&east, &single).await;
    assert_eq!(m.multi_region(), Some(false));
    assert!(m.multi_region_configuration().is_none());
}

#[tokio::test]
async fn replicate_key_also_takes_kms_create_key() {
    use keyhold_testkit::identity::{put_user_policy, user_with_key};
    let server = TestServer::start().await;
    let (east, _) = clients(&server);
    let id = create_mrk(&east).await;
    let iam = server.iam();
    let user = user_with_key(&iam, "replicator").await;
    put_user_policy(
        &iam,
        "replicator",
        "p",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"kms:CreateKey","Resource":"*"}]}"#,
    )
    .await;
    let kms = server.kms_with(&user.access_key_id, &user.secret_access_key, EAST);
    let denied = kms
        .replicate_key()
        .key_id(&id)
        .replica_region(WEST)
        .send()
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Some("AccessDeniedException"));
    assert!(
        denied.message().unwrap().contains("kms:CreateKey"),
        "{denied:?}"
    );
    put_user_policy(
        &iam,
        "replicator",
        "p",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    )
    .await;
    kms.replicate_key()
        .key_id(&id)
        .replica_region(WEST)
        .send()
        .await
        .unwrap();
}

const DAY: u64 = 86_400;

async fn state(kms: &aws_sdk_kms::Client, id: &str) -> Option<KeyState> {
    match kms.describe_key().key_id(id).send().await {
        Ok(out) => out.key_metadata.unwrap().key_state,
        Err(e) => {
            assert_eq!(e.code(), Some("NotFoundException"), "{e:?}");
            None
        }
    }
}

/// Waits (for the sweep) until `id` reaches `wanted` (`None`: deleted).
async fn wait_for_state(kms: &aws_sdk_kms::Client, id: &str, wanted: Option<KeyState>) {
    let mut seen = None;
    for _ in 0..200 {
        seen = state(kms, id).await;
        if seen == wanted {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{id} is {seen:?}, not {wanted:?}");
}

async fn replicate(east: &aws_sdk_kms::Client, id: &str) {
    east.replicate_key()
        .key_id(id)
        .replica_region(WEST)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_primary_with_replicas_waits_in_pending_replica_deletion() {
    let server = TestServer::builder()
        .deletion_sweep_interval(Duration::from_millis(50))
        .start()
        .await;
    let (east, west) = clients(&server);
    let id = create_mrk(&east).await;
    replicate(&east, &id).await;
    let before = encrypt(&east, &id, b"made by the primary").await;

    let scheduled = east
        .schedule_key_deletion()
        .key_id(&id)
        .pending_window_in_days(10)
        .send()
        .await
        .unwrap();
    assert_eq!(scheduled.key_id(), Some(arn(EAST, &id).as_str()));
    assert_eq!(
        scheduled.key_state(),
        Some(&KeyState::PendingReplicaDeletion)
    );
    assert_eq!(scheduled.pending_window_in_days(), Some(10));
    assert!(
        scheduled.deletion_date().is_none(),
        "no date until the replicas are gone"
    );
    let m = describe(&east, &id).await;
    assert_eq!(m.key_state(), Some(&KeyState::PendingReplicaDeletion));
    assert!(!m.enabled());
    assert!(m.deletion_date().is_none());
    assert_eq!(m.pending_deletion_window_in_days(), Some(10));
    assert_eq!(
        m.multi_region_configuration().unwrap().replica_keys().len(),
        1
    );

    // The primary is refused as a key pending deletion is; its replica is unaffected.
    let pending = format!("{} is pending replica deletion.", arn(EAST, &id));
    let err = east
        .encrypt()
        .key_id(&id)
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("KMSInvalidStateException"));
    assert_eq!(err.message(), Some(pending.as_str()));
    let err = east
        .replicate_key()
        .key_id(&id)
        .replica_region("ap-south-1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("KMSInvalidStateException"));
    let err = east
        .update_key_description()
        .key_id(&id)
        .description("no")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.message(), Some(pending.as_str()));
    let err = east
        .schedule_key_deletion()
        .key_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("KMSInvalidStateException"));
    let d = west
        .decrypt()
        .ciphertext_blob(before.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(d.plaintext().unwrap().as_ref(), b"made by the primary");
    assert_eq!(
        describe(&west, &id).await.key_state(),
        Some(&KeyState::Enabled)
    );

    // Cancelled like any scheduled deletion: disabled, no waiting period.
    east.cancel_key_deletion().key_id(&id).send().await.unwrap();
    let m = describe(&east, &id).await;
    assert_eq!(m.key_state(), Some(&KeyState::Disabled));
    assert!(m.pending_deletion_window_in_days().is_none());
    let err = east
        .cancel_key_deletion()
        .key_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("KMSInvalidStateException"));

    // Scheduled again, with its replica: nothing happens to the primary while the replica
    // exists, however long.
    east.schedule_key_deletion()
        .key_id(&id)
        .pending_window_in_days(10)
        .send()
        .await
        .unwrap();
    server.clock().advance(Duration::from_secs(60 * DAY));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        state(&east, &id).await,
        Some(KeyState::PendingReplicaDeletion)
    );
    west.schedule_key_deletion()
        .key_id(&id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    assert_eq!(
        state(&east, &id).await,
        Some(KeyState::PendingReplicaDeletion),
        "a replica only scheduled for deletion still counts"
    );

    // The replica's deletion starts the primary's waiting period of 10 days.
    server.clock().advance(Duration::from_secs(7 * DAY + 60));
    wait_for_state(&west, &id, None).await;
    wait_for_state(&east, &id, Some(KeyState::PendingDeletion)).await;
    let m = describe(&east, &id).await;
    assert!(m.pending_deletion_window_in_days().is_none());
    assert!(
        m.multi_region_configuration()
            .unwrap()
            .replica_keys()
            .is_empty()
    );
    let due = m.deletion_date().unwrap().secs();
    let expected = server.clock().now().as_secs() + i64::try_from(10 * DAY).unwrap();
    assert!((due - expected).abs() < 120, "{due} vs {expected}");

    server.clock().advance(Duration::from_secs(9 * DAY));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(state(&east, &id).await, Some(KeyState::PendingDeletion));
    server.clock().advance(Duration::from_secs(DAY));
    wait_for_state(&east, &id, None).await;
}

#[tokio::test]
async fn a_primary_s_waiting_period_starts_once_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    // Only the sweep at start runs within the test.
    let hour = Duration::from_secs(3600);
    let start = |ahead: u64| {
        TestServer::builder()
            .data_dir(dir.path())
            .deletion_sweep_interval(hour)
            .clock_ahead(Duration::from_secs(ahead))
            .start()
    };
    let server = start(0).await;
    let (east, west) = clients(&server);
    let id = create_mrk(&east).await;
    replicate(&east, &id).await;
    east.schedule_key_deletion()
        .key_id(&id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    west.schedule_key_deletion()
        .key_id(&id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    server.stop().await;

    // Down over the replica's date: the sweep at start deletes it, and the primary's
    // waiting period starts then.
    let server = start(8 * DAY).await;
    let (east, west) = clients(&server);
    wait_for_state(&west, &id, None).await;
    wait_for_state(&east, &id, Some(KeyState::PendingDeletion)).await;
    let due = describe(&east, &id).await.deletion_date().unwrap().secs();
    let expected = server.clock().now().as_secs() + i64::try_from(7 * DAY).unwrap();
    assert!((due - expected).abs() < 120, "{due} vs {expected}");
    server.stop().await;

    // Started again a day later: the waiting period is not started again.
    let server = start(9 * DAY).await;
    let (east, _) = clients(&server);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = describe(&east, &id).await;
    assert_eq!(m.key_state(), Some(&KeyState::PendingDeletion));
    assert_eq!(m.deletion_date().unwrap().secs(), due);
    server.stop().await;

    // And after it, the primary is gone.
    let server = start(16 * DAY).await;
    let (east, _) = clients(&server);
    wait_for_state(&east, &id, None).await;
    server.stop().await;
}

/// A user allowed everything but what `deny` denies (a statement's JSON).
async fn user_denied(server: &TestServer, name: &str, deny: &str) -> aws_sdk_kms::Client {
    use keyhold_testkit::identity::{put_user_policy, user_with_key};
    let iam = server.iam();
    let user = user_with_key(&iam, name).await;
    put_user_policy(
        &iam,
        name,
        "p",
        &format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"*","Resource":"*"}},{deny}]}}"#
        ),
    )
    .await;
    server.kms_with(&user.access_key_id, &user.secret_access_key, EAST)
}

#[tokio::test]
async fn create_key_with_tags_needs_tag_resource_in_an_iam_policy() {
    let server = TestServer::start().await;
    let kms = user_denied(
        &server,
        "no-tagging",
        r#"{"Effect":"Deny","Action":"kms:TagResource","Resource":"*"}"#,
    )
    .await;
    let tag = Tag::builder()
        .tag_key("team")
        .tag_value("a")
        .build()
        .unwrap();
    let err = kms.create_key().tags(tag).send().await.unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"));
    assert!(
        err.message().unwrap().contains("kms:TagResource"),
        "{err:?}"
    );
    // Without tags the same user creates keys, and nothing was left behind by the refusal.
    kms.create_key().send().await.unwrap();
    let keys = server.kms().list_keys().send().await.unwrap();
    assert_eq!(keys.keys().len(), 1);
}

#[tokio::test]
async fn replicate_key_is_authorized_in_the_replica_region() {
    let server = TestServer::start().await;
    let (east, _) = clients(&server);

    // kms:CreateKey is decided for the replica's region.
    let id = create_mrk(&east).await;
    let kms = user_denied(
        &server,
        "no-west-keys",
        r#"{"Effect":"Deny","Action":"kms:CreateKey","Resource":"*","Condition":{"StringEquals":{"aws:RequestedRegion":"eu-west-1"}}}"#,
    )
    .await;
    let err = kms
        .replicate_key()
        .key_id(&id)
        .replica_region(WEST)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"));
    assert!(err.message().unwrap().contains("kms:CreateKey"), "{err:?}");
    kms.replicate_key()
        .key_id(&id)
        .replica_region("ap-south-1")
        .send()
        .await
        .unwrap();
    // ... while the caller's own region is not refused.
    create_mrk(&kms).await;

    // kms:TagResource in an IAM policy, only when tags are given.
    let id = create_mrk(&east).await;
    let kms = user_denied(
        &server,
        "no-tags",
        r#"{"Effect":"Deny","Action":"kms:TagResource","Resource":"arn:aws:kms:eu-west-1:*:key/*"}"#,
    )
    .await;
    let tag = Tag::builder()
        .tag_key("team")
        .tag_value("a")
        .build()
        .unwrap();
    let err = kms
        .replicate_key()
        .key_id(&id)
        .replica_region(WEST)
        .tags(tag.clone())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"));
    assert!(
        err.message().unwrap().contains("kms:TagResource"),
        "{err:?}"
    );
    kms.replicate_key()
        .key_id(&id)
        .replica_region("ap-south-1")
        .tags(tag)
        .send()
        .await
        .unwrap();
    kms.replicate_key()
        .key_id(&id)
        .replica_region(WEST)
        .send()
        .await
        .unwrap();

    // kms:ReplicaRegion in the primary's key policy.
    let root = format!("arn:aws:iam::{DEFAULT_ACCOUNT}:root");
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{root}"}},"Action":"kms:*","Resource":"*"}},{{"Effect":"Deny","Principal":{{"AWS":"*"}},"Action":"kms:ReplicateKey","Resource":"*","Condition":{{"StringNotEquals":{{"kms:ReplicaRegion":"eu-west-1"}}}}}}]}}"#
    );
    let id = east
        .create_key()
        .multi_region(true)
        .policy(policy)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let err = east
        .replicate_key()
        .key_id(&id)
        .replica_region("ap-south-1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"));
    assert!(
        err.message().unwrap().contains("kms:ReplicateKey"),
        "{err:?}"
    );
    replicate(&east, &id).await;
}

/// Material wrapped for `key_id` in `kms`'s region: (import token, wrapped material).
async fn wrapped_for(kms: &aws_sdk_kms::Client, key_id: &str, material: &[u8]) -> (Blob, Blob) {
    use aws_sdk_kms::types::{AlgorithmSpec, WrappingKeySpec};
    use keyhold_crypto::import::{WrappingAlgorithm, wrap_for_import};
    let params = kms
        .get_parameters_for_import()
        .key_id(key_id)
        .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha256)
        .wrapping_key_spec(WrappingKeySpec::Rsa2048)
        .send()
        .await
        .unwrap();
    let public = params.public_key.unwrap();
    let wrapped = wrap_for_import(
        public.as_ref(),
        WrappingAlgorithm::RsaesOaepSha256,
        material,
    )
    .unwrap();
    (params.import_token.unwrap(), Blob::new(wrapped))
}

async fn import(
    kms: &aws_sdk_kms::Client,
    key_id: &str,
    material: &[u8],
    import_type: Option<aws_sdk_kms::types::ImportType>,
) -> Result<
    aws_sdk_kms::operation::import_key_material::ImportKeyMaterialOutput,
    aws_sdk_kms::error::SdkError<
        aws_sdk_kms::operation::import_key_material::ImportKeyMaterialError,
    >,
> {
    let (token, blob) = wrapped_for(kms, key_id, material).await;
    kms.import_key_material()
        .key_id(key_id)
        .import_token(token)
        .encrypted_key_material(blob)
        .expiration_model(aws_sdk_kms::types::ExpirationModelType::KeyMaterialDoesNotExpire)
        .set_import_type(import_type)
        .send()
        .await
}

#[tokio::test]
async fn imported_material_is_imported_into_each_replica_and_must_be_the_same() {
    use aws_sdk_kms::types::{ImportType, OriginType};
    let server = TestServer::start().await;
    let (east, west) = clients(&server);
    let material = [7u8; 32];
    let created = east
        .create_key()
        .multi_region(true)
        .origin(OriginType::External)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let id = created.key_id.clone();
    assert!(id.starts_with("mrk-"), "{id}");
    assert_eq!(created.key_state(), Some(&KeyState::PendingImport));
    assert_eq!(created.origin(), Some(&OriginType::External));
    assert_eq!(created.multi_region(), Some(true));

    // No replica of a key still waiting for its material.
    let err = east
        .replicate_key()
        .key_id(&id)
        .replica_region(WEST)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("KMSInvalidStateException"));
    assert_eq!(
        err.message(),
        Some(format!("{} is pending import.", arn(EAST, &id)).as_str())
    );

    let imported = import(&east, &id, &material, None).await.unwrap();
    let material_id = imported.key_material_id().unwrap().to_owned();
    let replica = east
        .replicate_key()
        .key_id(&id)
        .replica_region(WEST)
        .send()
        .await
        .unwrap()
        .replica_key_metadata
        .unwrap();
    assert_eq!(replica.key_state(), Some(&KeyState::PendingImport));
    assert_eq!(replica.origin(), Some(&OriginType::External));
    assert_eq!(replica.key_id, id);
    let blob = encrypt(&east, &id, b"byok across regions").await;
    let err = west
        .decrypt()
        .ciphertext_blob(blob.clone())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("KMSInvalidStateException"));

    // Other material is refused; the primary's is taken, with its own expiry model.
    let err = import(&west, &id, &[8u8; 32], None).await.unwrap_err();
    assert_eq!(err.code(), Some("IncorrectKeyMaterialException"), "{err:?}");
    assert_eq!(state(&west, &id).await, Some(KeyState::PendingImport));
    let imported = import(&west, &id, &material, None).await.unwrap();
    assert_eq!(imported.key_material_id(), Some(material_id.as_str()));
    assert_eq!(state(&west, &id).await, Some(KeyState::Enabled));
    let d = west.decrypt().ciphertext_blob(blob).send().await.unwrap();
    assert_eq!(d.plaintext().unwrap().as_ref(), b"byok across regions");
    let back = encrypt(&west, &id, b"and back").await;
    let d = east.decrypt().ciphertext_blob(back).send().await.unwrap();
    assert_eq!(d.plaintext().unwrap().as_ref(), b"and back");

    // Each region's material is its own: deleting the replica's leaves the primary usable.
    west.delete_imported_key_material()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(state(&west, &id).await, Some(KeyState::PendingImport));
    assert_eq!(state(&east, &id).await, Some(KeyState::Enabled));
    import(&west, &id, &material, None).await.unwrap();
    assert_eq!(state(&west, &id).await, Some(KeyState::Enabled));

    // New material for a multi-Region key is not supported (yet), nor rotating a replica.
    let err = import(&east, &id, &[9u8; 32], Some(ImportType::NewKeyMaterial))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("UnsupportedOperationException"), "{err:?}");
    let err = west
        .rotate_key_on_demand()
        .key_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("UnsupportedOperationException"));
}

#[tokio::test]
async fn policies_can_tell_multi_region_keys_primaries_and_replicas_apart() {
    use keyhold_testkit::identity::{put_user_policy, user_with_key};
    let server = TestServer::start().await;
    let (east, _) = clients(&server);
    let id = create_mrk(&east).await;
    replicate(&east, &id).await;
    let iam = server.iam();
    let user = user_with_key(&iam, "regional").await;
    put_user_policy(
        &iam,
        "regional",
        "p",
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"*","Resource":"*"},
            {"Effect":"Deny","Action":"kms:CreateKey","Resource":"*",
             "Condition":{"Bool":{"kms:MultiRegion":"true"}}},
            {"Effect":"Deny","Action":"kms:Encrypt","Resource":"*",
             "Condition":{"StringEquals":{"kms:MultiRegionKeyType":"REPLICA"}}}]}"#,
    )
    .await;
    let user_east = server.kms_with(&user.access_key_id, &user.secret_access_key, EAST);
    let user_west = server.kms_with(&user.access_key_id, &user.secret_access_key, WEST);

    let e = user_east
        .create_key()
        .multi_region(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));
    user_east.create_key().send().await.unwrap();
    user_east
        .create_key()
        .multi_region(false)
        .send()
        .await
        .unwrap();

    encrypt(&user_east, &id, b"primary").await;
    let e = user_west
        .encrypt()
        .key_id(&id)
        .plaintext(Blob::new(b"replica".to_vec()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));
    assert!(e.message().unwrap().contains("kms:Encrypt"), "{e:?}");
    // A single-Region key has no kms:MultiRegionKeyType: the deny does not apply.
    let single = new_key(&user_west).await.id;
    encrypt(&user_west, &single, b"single").await;
}

#[tokio::test]
async fn an_imported_hmac_multi_region_key_takes_the_same_secret_in_each_region() {
    use aws_sdk_kms::types::OriginType;
    let server = TestServer::start().await;
    let (east, west) = clients(&server);
    let id = east
        .create_key()
        .multi_region(true)
        .origin(OriginType::External)
        .key_spec(KeySpec::Hmac256)
        .key_usage(KeyUsageType::GenerateVerifyMac)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let secret = [0x5au8; 48];
    import(&east, &id, &secret, None).await.unwrap();
    replicate(&east, &id).await;
    assert_eq!(state(&west, &id).await, Some(KeyState::PendingImport));
    let err = import(&west, &id, &[0x5bu8; 48], None).await.unwrap_err();
    assert_eq!(err.code(), Some("IncorrectKeyMaterialException"), "{err:?}");
    import(&west, &id, &secret, None).await.unwrap();
    assert_mac_verifies_across(&east, &west, &id).await;
}
