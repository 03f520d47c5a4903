//! Multi-Region KMS keys through the real `aws-sdk-kms` client, one client per region of
//! the same server: CreateKey with `MultiRegion`, ReplicateKey, DescribeKey's
//! `MultiRegionConfiguration`, ciphertexts crossing regions, a replica's own state, the
//! primary's rotation reaching its replicas, UpdatePrimaryRegion, and AWS's errors.

use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    KeySpec, KeyUsageType, MacAlgorithmSpec, MessageType, MultiRegionKeyType, SigningAlgorithmSpec,
    Tag,
};
use keyhold_testkit::{DEFAULT_ACCOUNT, TestServer};

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
    let mac = east
        .generate_mac()
        .key_id(&mac_key)
        .message(Blob::new(b"mac".to_vec()))
        .mac_algorithm(MacAlgorithmSpec::HmacSha256)
        .send()
        .await
        .unwrap()
        .mac
        .unwrap();
    let valid = west
        .verify_mac()
        .key_id(&mac_key)
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
    // A single-Region key is neither replicated nor given another primary.
    let single = east
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
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
    // A multi-Region key with imported material is refused.
    let err = east
        .create_key()
        .multi_region(true)
        .origin(aws_sdk_kms::types::OriginType::External)
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
