//! Operations that act on no existing resource are authorized too (CreateSecret, ListSecrets,
//! GetRandomPassword, BatchGetSecretValue), and the service-specific condition keys
//! (`secretsmanager:Name`, `ssm:Overwrite`, `ssm:Recursive`) reach the policies.

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use keyhold_testkit::TestServer;
use keyhold_testkit::identity::{put_user_policy, user_with_key};

#[tokio::test]
async fn secrets_manager_account_level_operations_need_an_allow() {
    let server = TestServer::start().await;
    let root = server.iam();
    let creds = user_with_key(&root, "dev").await;
    let sm = server.clients(&creds).secrets_manager;
    let denied = |e: &dyn ProvideErrorMetadata, action: &str| {
        assert_eq!(e.code(), Some("AccessDeniedException"), "{:?}", e.message());
        assert!(
            e.message().unwrap().contains(&format!(
                "because no identity-based policy allows the {action} action"
            )),
            "{:?}",
            e.message()
        );
    };
    let create = |name: &'static str| {
        sm.create_secret()
            .name(name)
            .secret_string("v")
            .client_request_token("00000000-0000-4000-8000-000000000001")
            .send()
    };
    denied(
        &create("team/app").await.unwrap_err(),
        "secretsmanager:CreateSecret",
    );
    denied(
        &sm.list_secrets().send().await.unwrap_err(),
        "secretsmanager:ListSecrets",
    );
    denied(
        &sm.get_random_password().send().await.unwrap_err(),
        "secretsmanager:GetRandomPassword",
    );
    denied(
        &sm.batch_get_secret_value()
            .secret_id_list("anything")
            .send()
            .await
            .unwrap_err(),
        "secretsmanager:BatchGetSecretValue",
    );

    // CreateSecret limited by name (secretsmanager:Name), and the rest allowed.
    put_user_policy(
        &root,
        "dev",
        "secrets",
        r#"{"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":"secretsmanager:CreateSecret","Resource":"*",
           "Condition":{"StringLike":{"secretsmanager:Name":"team/*"}}},
          {"Effect":"Allow","Action":["secretsmanager:ListSecrets","secretsmanager:GetRandomPassword",
            "secretsmanager:BatchGetSecretValue"],"Resource":"*"}]}"#,
    )
    .await;
    create("team/app").await.unwrap();
    denied(
        &create("other/app").await.unwrap_err(),
        "secretsmanager:CreateSecret",
    );
    assert_eq!(
        sm.list_secrets().send().await.unwrap().secret_list().len(),
        1
    );
    sm.get_random_password().send().await.unwrap();
    // BatchGetSecretValue also needs GetSecretValue on each secret: its refusal is that
    // secret's error entry.
    let batch = sm
        .batch_get_secret_value()
        .secret_id_list("team/app")
        .send()
        .await
        .unwrap();
    assert!(batch.secret_values().is_empty());
    assert_eq!(
        batch.errors()[0].error_code(),
        Some("AccessDeniedException")
    );
}

#[tokio::test]
async fn ssm_overwrite_and_recursive_are_condition_keys() {
    let server = TestServer::start().await;
    let root = server.iam();
    let creds = user_with_key(&root, "dev").await;
    put_user_policy(
        &root,
        "dev",
        "params",
        r#"{"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":["ssm:PutParameter","ssm:GetParametersByPath"],"Resource":"*"},
          {"Effect":"Deny","Action":"ssm:PutParameter","Resource":"*","Condition":{"Bool":{"ssm:Overwrite":"true"}}},
          {"Effect":"Deny","Action":"ssm:GetParametersByPath","Resource":"*","Condition":{"Bool":{"ssm:Recursive":"true"}}}]}"#,
    )
    .await;
    let ssm = server.clients(&creds).ssm;
    let put = |overwrite: bool| {
        ssm.put_parameter()
            .name("/app/x")
            .value("1")
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .overwrite(overwrite)
            .send()
    };
    put(false).await.unwrap();
    let e = put(true).await.unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));
    assert!(
        e.message()
            .unwrap()
            .contains("with an explicit deny in an identity-based policy"),
        "{:?}",
        e.message()
    );
    let by_path = |recursive: bool| {
        ssm.get_parameters_by_path()
            .path("/app")
            .recursive(recursive)
            .send()
    };
    assert_eq!(by_path(false).await.unwrap().parameters().len(), 1);
    let e = by_path(true).await.unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));
}
