//! Seed files (`keyhold serve --seed`) and `POST /_keyhold/reset`, as a test suite uses
//! them: fixtures that stay valid across fresh data directories, and per-test isolation.

use aws_sdk_kms::primitives::Blob;
use keyhold_testkit::{Creds, TestServer, raw};

const KEY_ID: &str = "3f0c6a52-9b1e-4c7d-8a21-5e6f7a8b9c0d";
/// 32 bytes, base64: a fixture's key material.
const MATERIAL: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const USER_KEY_ID: &str = "AKIASEEDEDCIUSER0001";
const USER_SECRET: &str = "seeded-secret-access-key-of-ci-0001";

fn seed_yaml() -> String {
    format!(
        r#"
keys:
  - id: {KEY_ID}
    material: {MATERIAL}
    description: fixture key
    aliases: [alias/fixture]
    tags: {{team: payments}}
  - description: key known by its alias
    aliases: [alias/by-alias]
secrets:
  - name: app/db
    secret_string: '{{"user":"app","pass":"hunter2"}}'
    kms_key_id: alias/fixture
parameters:
  - name: /app/url
    value: https://example.com
  - name: /app/password
    type: SecureString
    value: s3cret
    key_id: alias/fixture
users:
  - name: ci
    policies:
      all: {{Version: "2012-10-17", Statement: [{{Effect: Allow, Action: "*", Resource: "*"}}]}}
    access_keys: [{{id: {USER_KEY_ID}, secret: {USER_SECRET}}}]
"#
    )
}

async fn seeded(seed: &std::path::Path) -> TestServer {
    let seed = seed.to_path_buf();
    TestServer::builder()
        .configure(move |cfg| cfg.seed = Some(seed))
        .start()
        .await
}

fn write_seed(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn fixed_material_decrypts_across_fresh_data_dirs() {
    let files = tempfile::tempdir().unwrap();
    let seed = write_seed(&files, "seed.yaml", &seed_yaml());

    let first = seeded(&seed).await;
    let kms = first.kms();
    let encrypted = kms
        .encrypt()
        .key_id("alias/fixture")
        .plaintext(Blob::new(b"fixture plaintext".to_vec()))
        .encryption_context("purpose", "fixture")
        .send()
        .await
        .unwrap();
    let blob = encrypted.ciphertext_blob().unwrap().clone();
    assert_eq!(
        encrypted.key_id().unwrap(),
        format!("arn:aws:kms:us-east-1:000000000000:key/{KEY_ID}")
    );
    first.stop().await;

    // A second, fresh data directory (a new root key), the same seed file (as JSON this
    // time): the fixture's ciphertext decrypts.
    let json = serde_json::json!({
        "keys": [{"id": KEY_ID, "material": MATERIAL, "aliases": ["alias/fixture"]}]
    });
    let seed_json = write_seed(&files, "seed.json", &json.to_string());
    let second = seeded(&seed_json).await;
    let decrypted = second
        .kms()
        .decrypt()
        .ciphertext_blob(blob.clone())
        .encryption_context("purpose", "fixture")
        .send()
        .await
        .unwrap();
    assert_eq!(
        decrypted.plaintext().unwrap().as_ref(),
        b"fixture plaintext"
    );
    assert_eq!(decrypted.key_id().unwrap(), encrypted.key_id().unwrap());
    second.stop().await;

    // Without the fixed material the same key id cannot decrypt it.
    let json = serde_json::json!({"keys": [{"id": KEY_ID}]});
    let seed_random = write_seed(&files, "random.json", &json.to_string());
    let third = seeded(&seed_random).await;
    let err = third
        .kms()
        .decrypt()
        .ciphertext_blob(blob)
        .encryption_context("purpose", "fixture")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("InvalidCiphertextException")
    );
}

#[tokio::test]
async fn seed_creates_everything_once() {
    let files = tempfile::tempdir().unwrap();
    let seed = write_seed(&files, "seed.yaml", &seed_yaml());
    let data = tempfile::tempdir().unwrap();
    let start = || {
        let seed = seed.clone();
        TestServer::builder()
            .data_dir(data.path())
            .configure(move |cfg| cfg.seed = Some(seed))
            .start()
    };
    let server = start().await;
    check_seeded(&server).await;
    let keys = server.kms().list_keys().send().await.unwrap();
    let count = keys.keys().len();
    server.stop().await;

    // A restart with the same seed file creates nothing twice.
    let server = start().await;
    check_seeded(&server).await;
    let keys = server.kms().list_keys().send().await.unwrap();
    assert_eq!(keys.keys().len(), count);
}

async fn check_seeded(server: &TestServer) {
    let tags = server
        .kms()
        .list_resource_tags()
        .key_id(KEY_ID)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags()[0].tag_key(), "team");
    server
        .kms()
        .describe_key()
        .key_id("alias/by-alias")
        .send()
        .await
        .unwrap();
    let secret = server
        .secrets_manager()
        .get_secret_value()
        .secret_id("app/db")
        .send()
        .await
        .unwrap();
    assert_eq!(
        secret.secret_string(),
        Some(r#"{"user":"app","pass":"hunter2"}"#)
    );
    let param = server
        .ssm()
        .get_parameter()
        .name("/app/password")
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    assert_eq!(param.parameter().unwrap().value(), Some("s3cret"));
    // The seeded access key authenticates as its user, signature verified.
    let ci = server.clients(&Creds::new(USER_KEY_ID, USER_SECRET));
    let me = ci.sts.get_caller_identity().send().await.unwrap();
    assert_eq!(me.arn(), Some("arn:aws:iam::000000000000:user/ci"));
    let wrong = server.clients(&Creds::new(USER_KEY_ID, "not-the-seeded-secret-0000"));
    assert!(wrong.sts.get_caller_identity().send().await.is_err());
}

#[tokio::test]
async fn reset_between_tests_leaves_nothing_behind() {
    let server = TestServer::start().await;
    // "Test one" leaves a key, an alias, a grant, a secret, a parameter and a user behind.
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap();
    let key_id = key.key_metadata().unwrap().key_id().to_owned();
    kms.create_alias()
        .alias_name("alias/left-behind")
        .target_key_id(&key_id)
        .send()
        .await
        .unwrap();
    kms.create_grant()
        .key_id(&key_id)
        .grantee_principal("arn:aws:iam::000000000000:root")
        .operations(aws_sdk_kms::types::GrantOperation::Decrypt)
        .send()
        .await
        .unwrap();
    server
        .secrets_manager()
        .create_secret()
        .name("left/behind")
        .secret_string("x")
        .send()
        .await
        .unwrap();
    server
        .ssm()
        .put_parameter()
        .name("/left/behind")
        .value("x")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let iam = server.iam();
    iam.create_user().user_name("left").send().await.unwrap();
    let access = iam
        .create_access_key()
        .user_name("left")
        .send()
        .await
        .unwrap();
    let access = access.access_key().unwrap();

    let answer = raw::request(server.addr(), "POST", "/_keyhold/reset", &[], b"").await;
    assert_eq!(answer.status, 200, "{}", answer.body_text());
    assert!(answer.json()["deletedRows"].as_u64().unwrap() > 5);

    // "Test two" finds nothing.
    assert!(kms.list_keys().send().await.unwrap().keys().is_empty());
    let aliases = kms.list_aliases().send().await.unwrap();
    assert!(
        aliases
            .aliases()
            .iter()
            .all(|a| a.alias_name().unwrap().starts_with("alias/aws/")
                && a.target_key_id().is_none()),
        "{aliases:?}"
    );
    let err = kms.describe_key().key_id(&key_id).send().await.unwrap_err();
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("NotFoundException")
    );
    let secrets = server
        .secrets_manager()
        .list_secrets()
        .send()
        .await
        .unwrap();
    assert!(secrets.secret_list().is_empty());
    let err = server
        .secrets_manager()
        .describe_secret()
        .secret_id("left/behind")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("ResourceNotFoundException")
    );
    let params = server.ssm().describe_parameters().send().await.unwrap();
    assert!(params.parameters().is_empty());
    assert!(iam.list_users().send().await.unwrap().users().is_empty());
    // The erased user's key no longer authenticates as the user.
    let old = server.clients(&Creds::new(
        access.access_key_id(),
        access.secret_access_key(),
    ));
    let me = old.sts.get_caller_identity().send().await.unwrap();
    assert_ne!(me.arn(), Some("arn:aws:iam::000000000000:user/left"));

    // And can create the same names again.
    server
        .secrets_manager()
        .create_secret()
        .name("left/behind")
        .secret_string("y")
        .send()
        .await
        .unwrap();
    iam.create_user().user_name("left").send().await.unwrap();
}

#[tokio::test]
async fn reset_reseeds_on_request() {
    let files = tempfile::tempdir().unwrap();
    let seed = write_seed(&files, "seed.yaml", &seed_yaml());
    let server = seeded(&seed).await;
    server
        .secrets_manager()
        .create_secret()
        .name("test/own")
        .secret_string("x")
        .send()
        .await
        .unwrap();
    let answer = raw::request(
        server.addr(),
        "POST",
        "/_keyhold/reset?reseed=true",
        &[],
        b"",
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body_text());
    check_seeded(&server).await;
    let names: Vec<_> = server
        .secrets_manager()
        .list_secrets()
        .send()
        .await
        .unwrap()
        .secret_list()
        .iter()
        .filter_map(|s| s.name().map(str::to_owned))
        .collect();
    assert_eq!(names, ["app/db"]);
}

#[tokio::test]
async fn reset_is_refused_in_strict_mode_and_from_web_pages() {
    let strict = TestServer::builder()
        .strict(&[(
            "AKIASTRICTRESET00001",
            "strict-reset-secret-0001",
            "111122223333",
        )])
        .start()
        .await;
    let kms = strict.kms_with(
        "AKIASTRICTRESET00001",
        "strict-reset-secret-0001",
        "us-east-1",
    );
    kms.create_key().send().await.unwrap();
    let answer = raw::request(strict.addr(), "POST", "/_keyhold/reset", &[], b"").await;
    assert_eq!(answer.status, 403);
    assert_eq!(answer.json()["__type"], "AccessDeniedException");
    assert!(
        answer.json()["message"]
            .as_str()
            .unwrap()
            .contains("only in dev mode")
    );
    assert_eq!(kms.list_keys().send().await.unwrap().keys().len(), 1);

    let dev = TestServer::start().await;
    dev.kms().create_key().send().await.unwrap();
    let answer = raw::request(
        dev.addr(),
        "POST",
        "/_keyhold/reset",
        &[("Origin", "https://evil.example")],
        b"",
    )
    .await;
    assert_eq!(answer.status, 403);
    assert_eq!(dev.kms().list_keys().send().await.unwrap().keys().len(), 1);
}

#[tokio::test]
async fn fixed_material_is_refused_in_strict_mode() {
    let files = tempfile::tempdir().unwrap();
    let seed = write_seed(&files, "seed.yaml", &seed_yaml());
    let data = tempfile::tempdir().unwrap();
    let mut config = keyhold_server::Config {
        mode: keyhold_server::Mode::Strict,
        data_dir: data.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        seed: Some(seed),
        seal: Some(keyhold_testkit::strict_seal(data.path())),
        ..Default::default()
    };
    config
        .credentials
        .push(keyhold_server::config::StaticCredential {
            access_key_id: "AKIASTRICTSEED000001".into(),
            secret_access_key: "strict-seed-secret-0001".into(),
            account_id: "000000000000".into(),
        });
    let err = keyhold_server::Server::bind(config)
        .await
        .err()
        .expect("strict mode refuses fixed key material")
        .to_string();
    assert!(err.contains("refused in strict mode"), "{err}");
}
