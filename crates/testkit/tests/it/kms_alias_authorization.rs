//! Who may create, repoint and delete an alias: the permission on the alias (identity
//! policies, the alias ARN as resource, `kms:AliasName`) and on every key the change
//! affects (their key policies, `kms:ResourceAliases`), as AWS requires ("Controlling
//! access to aliases"). Regression for the security review's first finding: UpdateAlias
//! was authorized on the new target key alone, so any principal could repoint any alias.

use aws_sdk_kms::error::ProvideErrorMetadata;
use keyhold_testkit::identity::{allow, put_user_policy, user_with_key};
use keyhold_testkit::{Clients, TestServer};

const ACCOUNT: &str = "111111111111";

/// A key policy that lets only `arn:aws:iam::111111111111:user/<name>` do anything.
fn only_user(name: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:user/{name}"}},"Action":"kms:*","Resource":"*"}}]}}"#
    )
}

async fn user(server: &TestServer, name: &str, policy: &str) -> Clients {
    let root = server.iam_for(ACCOUNT);
    let creds = user_with_key(&root, name).await;
    put_user_policy(&root, name, "p", policy).await;
    server.clients(&creds)
}

async fn key_with_policy(kms: &aws_sdk_kms::Client, policy: Option<&str>) -> String {
    let mut create = kms.create_key();
    if let Some(policy) = policy {
        create = create.policy(policy);
    }
    create.send().await.unwrap().key_metadata.unwrap().key_id
}

async fn alias_target(kms: &aws_sdk_kms::Client, name: &str) -> Option<String> {
    kms.list_aliases()
        .send()
        .await
        .unwrap()
        .aliases()
        .iter()
        .find(|a| a.alias_name() == Some(name))
        .and_then(|a| a.target_key_id().map(str::to_owned))
}

fn assert_denied<E: ProvideErrorMetadata + std::fmt::Debug>(e: &E, action: &str) {
    assert_eq!(e.code(), Some("AccessDeniedException"), "{e:?}");
    let message = e.message().unwrap_or_default();
    assert!(message.contains(action), "{message}");
}

#[tokio::test]
async fn update_alias_needs_the_permission_on_the_current_key() {
    let server = TestServer::start().await;
    let admin = user(&server, "admin", &allow("kms:*", "*")).await;
    let k1 = key_with_policy(&admin.kms, Some(&only_user("admin"))).await;
    admin
        .kms
        .create_alias()
        .alias_name("alias/prod")
        .target_key_id(&k1)
        .send()
        .await
        .unwrap();

    let mallory = user(&server, "mallory", &allow("kms:*", "*")).await;
    let k2 = key_with_policy(&mallory.kms, None).await;
    let e = mallory
        .kms
        .update_alias()
        .alias_name("alias/prod")
        .target_key_id(&k2)
        .send()
        .await
        .unwrap_err();
    let e = e.into_service_error();
    assert_denied(&e, "kms:UpdateAlias");
    assert!(
        e.message().unwrap().contains(&format!("key/{k1}")),
        "refused on the key the alias points at now: {:?}",
        e.message()
    );
    assert_eq!(
        alias_target(&admin.kms, "alias/prod").await.as_deref(),
        Some(k1.as_str()),
        "the alias still points at the admin's key"
    );
    // Mallory cannot delete it either, nor point a new alias at the admin's key.
    let e = mallory
        .kms
        .delete_alias()
        .alias_name("alias/prod")
        .send()
        .await
        .unwrap_err();
    assert_denied(&e.into_service_error(), "kms:DeleteAlias");
    let e = mallory
        .kms
        .create_alias()
        .alias_name("alias/mine")
        .target_key_id(&k1)
        .send()
        .await
        .unwrap_err();
    assert_denied(&e.into_service_error(), "kms:CreateAlias");

    // The admin, allowed on both keys' policies... is not allowed on mallory's key unless its
    // policy delegates to IAM, which the default policy does: the admin can move it.
    admin
        .kms
        .update_alias()
        .alias_name("alias/prod")
        .target_key_id(&k2)
        .send()
        .await
        .unwrap();
    assert_eq!(
        alias_target(&admin.kms, "alias/prod").await.as_deref(),
        Some(k2.as_str())
    );
}

#[tokio::test]
async fn update_alias_needs_the_permission_on_the_new_key() {
    let server = TestServer::start().await;
    let admin = user(&server, "admin", &allow("kms:*", "*")).await;
    let mallory = user(&server, "mallory", &allow("kms:*", "*")).await;
    let k1 = key_with_policy(&mallory.kms, None).await;
    let k2 = key_with_policy(&admin.kms, Some(&only_user("admin"))).await;
    mallory
        .kms
        .create_alias()
        .alias_name("alias/app")
        .target_key_id(&k1)
        .send()
        .await
        .unwrap();
    let e = mallory
        .kms
        .update_alias()
        .alias_name("alias/app")
        .target_key_id(&k2)
        .send()
        .await
        .unwrap_err();
    assert_denied(&e.into_service_error(), "kms:UpdateAlias");
}

#[tokio::test]
async fn iam_policies_scoped_to_alias_arns() {
    let server = TestServer::start().await;
    // Allowed on every key, but on aliases named prod-* only.
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Effect":"Allow","Action":"kms:*","Resource":"arn:aws:kms:*:{ACCOUNT}:key/*"}},
            {{"Effect":"Allow","Action":["kms:CreateKey","kms:ListAliases"],"Resource":"*"}},
            {{"Effect":"Allow","Action":["kms:CreateAlias","kms:UpdateAlias","kms:DeleteAlias"],"Resource":"arn:aws:kms:*:*:alias/prod-*"}}
        ]}}"#
    );
    let ops = user(&server, "ops", &policy).await;
    let key = key_with_policy(&ops.kms, None).await;
    ops.kms
        .create_alias()
        .alias_name("alias/prod-db")
        .target_key_id(&key)
        .send()
        .await
        .unwrap();
    let e = ops
        .kms
        .create_alias()
        .alias_name("alias/test-db")
        .target_key_id(&key)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_denied(&e, "kms:CreateAlias");
    assert!(
        e.message()
            .unwrap()
            .contains(&format!("arn:aws:kms:us-east-1:{ACCOUNT}:alias/test-db")),
        "refused on the alias ARN: {:?}",
        e.message()
    );
    // An alias the root made outside the pattern can be neither moved nor deleted.
    let root = server.kms_for(ACCOUNT, "us-east-1");
    root.create_alias()
        .alias_name("alias/shared")
        .target_key_id(&key)
        .send()
        .await
        .unwrap();
    let other = key_with_policy(&ops.kms, None).await;
    let e = ops
        .kms
        .update_alias()
        .alias_name("alias/shared")
        .target_key_id(&other)
        .send()
        .await
        .unwrap_err();
    assert_denied(&e.into_service_error(), "kms:UpdateAlias");
    let e = ops
        .kms
        .delete_alias()
        .alias_name("alias/shared")
        .send()
        .await
        .unwrap_err();
    assert_denied(&e.into_service_error(), "kms:DeleteAlias");
    ops.kms
        .update_alias()
        .alias_name("alias/prod-db")
        .target_key_id(&other)
        .send()
        .await
        .unwrap();
    ops.kms
        .delete_alias()
        .alias_name("alias/prod-db")
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn alias_name_condition_key() {
    let server = TestServer::start().await;
    let policy = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"kms:*","Resource":"*"},
        {"Effect":"Deny","Action":["kms:CreateAlias","kms:DeleteAlias","kms:UpdateAlias"],"Resource":"*",
         "Condition":{"StringLike":{"kms:AliasName":"alias/restricted-*"}}}
    ]}"#;
    let dev = user(&server, "dev", policy).await;
    let key = key_with_policy(&dev.kms, None).await;
    dev.kms
        .create_alias()
        .alias_name("alias/open-1")
        .target_key_id(&key)
        .send()
        .await
        .unwrap();
    let e = dev
        .kms
        .create_alias()
        .alias_name("alias/restricted-1")
        .target_key_id(&key)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_denied(&e, "kms:CreateAlias");
    assert!(
        e.message().unwrap().contains("explicit deny"),
        "{:?}",
        e.message()
    );
}

#[tokio::test]
async fn resource_aliases_condition_key() {
    let server = TestServer::start().await;
    // Encrypt only with keys that carry an alias named finance-*.
    let policy = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":["kms:CreateKey","kms:CreateAlias","kms:UpdateAlias","kms:ListAliases"],"Resource":"*"},
        {"Effect":"Allow","Action":"kms:Encrypt","Resource":"*",
         "Condition":{"ForAnyValue:StringLike":{"kms:ResourceAliases":"alias/finance-*"}}}
    ]}"#;
    let dev = user(&server, "dev", policy).await;
    let key = key_with_policy(&dev.kms, None).await;
    let encrypt = || {
        dev.kms
            .encrypt()
            .key_id(&key)
            .plaintext(b"x".to_vec().into())
            .send()
    };
    assert_denied(
        &encrypt().await.unwrap_err().into_service_error(),
        "kms:Encrypt",
    );
    dev.kms
        .create_alias()
        .alias_name("alias/finance-app")
        .target_key_id(&key)
        .send()
        .await
        .unwrap();
    encrypt().await.unwrap();
    // Moving the alias away takes the permission with it.
    let other = key_with_policy(&dev.kms, None).await;
    dev.kms
        .update_alias()
        .alias_name("alias/finance-app")
        .target_key_id(&other)
        .send()
        .await
        .unwrap();
    assert_denied(
        &encrypt().await.unwrap_err().into_service_error(),
        "kms:Encrypt",
    );
}

#[tokio::test]
async fn multi_region_key_id_that_does_not_exist_is_not_found() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let id = "mrk-1234abcd12ab34cd56ef1234567890ab";
    for key_id in [
        id.to_owned(),
        format!("arn:aws:kms:us-east-1:000000000000:key/{id}"),
    ] {
        let e = kms
            .describe_key()
            .key_id(&key_id)
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert_eq!(e.code(), Some("NotFoundException"), "{e:?}");
        assert_eq!(
            e.message(),
            Some(
                format!("Key 'arn:aws:kms:us-east-1:000000000000:key/{id}' does not exist")
                    .as_str()
            )
        );
    }
}

#[tokio::test]
async fn list_aliases_shows_the_predefined_aws_aliases_without_a_target() {
    let server = TestServer::start().await;
    let listed = server.kms().list_aliases().send().await.unwrap();
    let predefined: Vec<&str> = listed
        .aliases()
        .iter()
        .filter(|a| a.target_key_id().is_none())
        .filter_map(|a| a.alias_name())
        .collect();
    // As a new AWS account lists them (ListAliases recorded on AWS).
    for name in [
        "alias/aws/dynamodb",
        "alias/aws/ebs",
        "alias/aws/elasticfilesystem",
        "alias/aws/es",
        "alias/aws/glue",
        "alias/aws/kinesisvideo",
        "alias/aws/rds",
        "alias/aws/redshift",
        "alias/aws/s3",
        "alias/aws/secretsmanager",
        "alias/aws/ssm",
        "alias/aws/xray",
    ] {
        assert!(predefined.contains(&name), "{name} in {predefined:?}");
    }
    let arn = listed
        .aliases()
        .iter()
        .find(|a| a.alias_name() == Some("alias/aws/s3"))
        .and_then(|a| a.alias_arn());
    assert_eq!(arn, Some("arn:aws:kms:us-east-1:000000000000:alias/aws/s3"));
}
