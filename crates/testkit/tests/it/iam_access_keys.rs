//! Access keys: their lifecycle through IAM, and authentication with them — signature
//! verified in strict and in dev mode, inactive and deleted keys refused.

use aws_sdk_iam::error::ProvideErrorMetadata;
use aws_sdk_iam::types::StatusType;
use keyhold_testkit::identity::{access_key, allow, put_user_policy, user_with_key};
use keyhold_testkit::{Creds, TestServer};

const ROOT_KEY: &str = "AKIAKEYHOLDROOT00001";
const ROOT_SECRET: &str = "keyhold-root-secret-0000000000000000000000";
const ACCOUNT: &str = "123456789012";

async fn strict() -> TestServer {
    TestServer::builder()
        .strict(&[(ROOT_KEY, ROOT_SECRET, ACCOUNT)])
        .start()
        .await
}

#[tokio::test]
async fn access_key_lifecycle() {
    let server = TestServer::start().await;
    let iam = server.iam();
    iam.create_user().user_name("app").send().await.unwrap();
    let created = iam
        .create_access_key()
        .user_name("app")
        .send()
        .await
        .unwrap()
        .access_key
        .unwrap();
    assert!(created.access_key_id().starts_with("AKIA"));
    assert_eq!(created.access_key_id().len(), 20);
    assert_eq!(created.secret_access_key().len(), 40);
    assert_eq!(created.status(), &StatusType::Active);
    assert_eq!(created.user_name(), "app");
    assert!(created.create_date().is_some());

    let second = access_key(&iam, "app").await;
    let e = iam
        .create_access_key()
        .user_name("app")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_limit_exceeded_exception());
    assert_eq!(
        e.message(),
        Some("Cannot exceed quota for AccessKeysPerUser: 2")
    );

    let listed = iam
        .list_access_keys()
        .user_name("app")
        .send()
        .await
        .unwrap();
    let ids: Vec<&str> = listed
        .access_key_metadata()
        .iter()
        .map(|k| k.access_key_id().unwrap())
        .collect();
    assert_eq!(
        ids,
        [created.access_key_id(), second.access_key_id.as_str()]
    );
    assert!(!listed.is_truncated());

    iam.update_access_key()
        .user_name("app")
        .access_key_id(created.access_key_id())
        .status(StatusType::Inactive)
        .send()
        .await
        .unwrap();
    let listed = iam
        .list_access_keys()
        .user_name("app")
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.access_key_metadata()[0].status(),
        Some(&StatusType::Inactive)
    );

    // A key of another user is not found under this one.
    iam.create_user().user_name("other").send().await.unwrap();
    let e = iam
        .delete_access_key()
        .user_name("other")
        .access_key_id(created.access_key_id())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_no_such_entity_exception());
    assert_eq!(
        e.message(),
        Some(
            format!(
                "The Access Key with id {} cannot be found.",
                created.access_key_id()
            )
            .as_str()
        )
    );
    let e = iam
        .list_access_keys()
        .user_name("nobody")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_no_such_entity_exception());

    iam.delete_access_key()
        .user_name("app")
        .access_key_id(created.access_key_id())
        .send()
        .await
        .unwrap();
    let listed = iam
        .list_access_keys()
        .user_name("app")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.access_key_metadata().len(), 1);
}

#[tokio::test]
async fn a_users_key_authenticates_as_the_user_in_strict_mode() {
    let server = strict().await;
    let root = server.clients(&Creds::new(ROOT_KEY, ROOT_SECRET));
    let creds = user_with_key(&root.iam, "worker").await;
    let me = server
        .clients(&creds)
        .sts
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(me.account(), Some(ACCOUNT));
    assert_eq!(me.arn(), Some("arn:aws:iam::123456789012:user/worker"));
    assert!(me.user_id().unwrap().starts_with("AIDA"));

    // The wrong secret fails the signature check.
    let wrong = Creds::new(
        &creds.access_key_id,
        "0123456789012345678901234567890123456789",
    );
    let e = server
        .clients(&wrong)
        .sts
        .get_caller_identity()
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("SignatureDoesNotMatch"));
    let e = server
        .clients(&wrong)
        .kms
        .list_keys()
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidSignatureException"));
}

#[tokio::test]
async fn a_users_key_is_verified_in_dev_mode_too() {
    let server = TestServer::start().await;
    let creds = user_with_key(&server.iam_for("444455556666"), "dev-user").await;
    let me = server
        .clients(&creds)
        .sts
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(me.arn(), Some("arn:aws:iam::444455556666:user/dev-user"));

    let wrong = Creds::new(
        &creds.access_key_id,
        "0123456789012345678901234567890123456789",
    );
    let e = server
        .clients(&wrong)
        .sts
        .get_caller_identity()
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("SignatureDoesNotMatch"));

    // Keys Keyhold does not know keep dev mode's permissive rule.
    let me = server
        .clients(&Creds::new("AKIAIOSFODNN7EXAMPLE", "anything"))
        .sts
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(me.arn(), Some("arn:aws:iam::000000000000:root"));
}

#[tokio::test]
async fn inactive_and_deleted_keys_are_refused() {
    for server in [strict().await, TestServer::start().await] {
        // Strict mode: the configured root key. Dev mode: an unknown key, so the root too.
        let admin = server.clients(&Creds::new(ROOT_KEY, ROOT_SECRET)).iam;
        let creds = user_with_key(&admin, "rotating").await;
        put_user_policy(&admin, "rotating", "kms", &allow("kms:*", "*")).await;
        let user = server.clients(&creds);
        user.kms.list_keys().send().await.unwrap();

        admin
            .update_access_key()
            .user_name("rotating")
            .access_key_id(&creds.access_key_id)
            .status(StatusType::Inactive)
            .send()
            .await
            .unwrap();
        let e = user.sts.get_caller_identity().send().await.unwrap_err();
        assert_eq!(e.code(), Some("InvalidClientTokenId"));
        assert_eq!(
            e.message(),
            Some("The security token included in the request is invalid.")
        );
        let e = user.kms.list_keys().send().await.unwrap_err();
        assert_eq!(e.code(), Some("UnrecognizedClientException"));

        admin
            .update_access_key()
            .user_name("rotating")
            .access_key_id(&creds.access_key_id)
            .status(StatusType::Active)
            .send()
            .await
            .unwrap();
        user.kms.list_keys().send().await.unwrap();

        admin
            .delete_access_key()
            .user_name("rotating")
            .access_key_id(&creds.access_key_id)
            .send()
            .await
            .unwrap();
        let e = user.kms.list_keys().send().await.unwrap_err();
        assert_eq!(e.code(), Some("UnrecognizedClientException"));
        let e = user.sts.get_caller_identity().send().await.unwrap_err();
        assert_eq!(e.code(), Some("InvalidClientTokenId"));
    }
}

#[tokio::test]
async fn users_manage_their_own_keys_without_naming_themselves() {
    let server = TestServer::start().await;
    let iam = server.iam();
    let creds = user_with_key(&iam, "self-service").await;
    put_user_policy(&iam, "self-service", "keys", &allow("iam:*AccessKey*", "*")).await;
    let me = server.clients(&creds).iam;
    let listed = me.list_access_keys().send().await.unwrap();
    assert_eq!(listed.access_key_metadata().len(), 1);
    assert_eq!(
        listed.access_key_metadata()[0].user_name(),
        Some("self-service")
    );
    let new_key = me
        .create_access_key()
        .send()
        .await
        .unwrap()
        .access_key
        .unwrap();
    assert_eq!(new_key.user_name(), "self-service");
    me.update_access_key()
        .access_key_id(new_key.access_key_id())
        .status(StatusType::Inactive)
        .send()
        .await
        .unwrap();

    // The root user has no access keys of its own in Keyhold.
    let root_keys = iam.list_access_keys().send().await.unwrap();
    assert!(root_keys.access_key_metadata().is_empty());
}

#[tokio::test]
async fn the_bootstrap_administrator_can_do_everything_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::builder()
        .strict_bootstrap()
        .data_dir(dir.path())
        .start()
        .await;
    let (key, secret) = server
        .admin_credentials()
        .expect("first start creates the admin");
    let admin = Creds::new(key, secret);
    assert!(key.starts_with("AKIA"));
    let clients = server.clients(&admin);
    let me = clients.sts.get_caller_identity().send().await.unwrap();
    assert_eq!(me.arn(), Some("arn:aws:iam::000000000000:user/admin"));
    let policy = clients
        .iam
        .get_user_policy()
        .user_name("admin")
        .policy_name("AdministratorAccess")
        .send()
        .await
        .unwrap();
    assert!(
        policy
            .policy_document()
            .contains("%22Action%22%3A%22%2A%22")
    );
    clients.kms.create_key().send().await.unwrap();
    let created = user_with_key(&clients.iam, "ops").await;
    assert!(created.access_key_id.starts_with("AKIA"));
    server.stop().await;

    // The next start creates nothing and shows nothing; the administrator's key still works.
    let server = TestServer::builder()
        .strict_bootstrap()
        .data_dir(dir.path())
        .start()
        .await;
    assert!(server.admin_credentials().is_none());
    let users = server
        .clients(&admin)
        .iam
        .list_users()
        .send()
        .await
        .unwrap();
    assert_eq!(users.users().len(), 2);
    server.stop().await;

    // `keyhold init` on an initialized directory does nothing either.
    let mut config = keyhold_server::Config {
        data_dir: dir.path().to_path_buf(),
        storage: keyhold_testkit::test_storage_for(dir.path()).await,
        seal: Some(keyhold_testkit::strict_seal(dir.path())),
        ..keyhold_server::Config::default()
    };
    config.mode = keyhold_server::Mode::Strict;
    assert!(keyhold_server::initialize(&config).await.unwrap().is_none());
}

#[tokio::test]
async fn keyhold_init_creates_the_administrator_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = keyhold_server::Config {
        mode: keyhold_server::Mode::Strict,
        data_dir: dir.path().to_path_buf(),
        storage: keyhold_testkit::test_storage_for(dir.path()).await,
        seal: Some(keyhold_testkit::strict_seal(dir.path())),
        account_id: "210987654321".into(),
        ..keyhold_server::Config::default()
    };
    let admin = keyhold_server::initialize(&config)
        .await
        .unwrap()
        .expect("created");
    assert_eq!(admin.user_arn, "arn:aws:iam::210987654321:user/admin");
    assert!(!format!("{admin:?}").contains(admin.secret_access_key.as_str()));
    assert!(keyhold_server::initialize(&config).await.unwrap().is_none());

    let server = TestServer::builder()
        .strict_bootstrap()
        .data_dir(dir.path())
        .start()
        .await;
    assert!(server.admin_credentials().is_none());
    let creds = Creds::new(&admin.access_key_id, admin.secret_access_key.as_str());
    let me = server
        .clients(&creds)
        .sts
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(me.account(), Some("210987654321"));
    server.stop().await;
}
