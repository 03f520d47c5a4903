//! The seed's rule, with real IAM users: reading a secret or a SecureString needs both the
//! service's permission and `kms:Decrypt` on its customer managed key, because Secrets
//! Manager and Parameter Store decrypt through KMS as the caller. The AWS-managed keys
//! (`aws/secretsmanager`, `aws/ssm`) let every principal of the account use them through
//! their service, so the service permission alone suffices there.

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use keyhold_testkit::TestServer;
use keyhold_testkit::identity::{put_user_policy, user_with_key};

/// A policy document allowing each `(action, resource)`.
fn allow_all(statements: &[(&str, &str)]) -> String {
    let statements: Vec<String> = statements
        .iter()
        .map(|(action, resource)| {
            format!(r#"{{"Effect":"Allow","Action":"{action}","Resource":"{resource}"}}"#)
        })
        .collect();
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
        statements.join(",")
    )
}

#[tokio::test]
async fn reading_a_secret_needs_kms_decrypt_on_its_customer_key() {
    let server = TestServer::start().await;
    let root = server.iam();
    // The default key policy delegates to IAM.
    let key = server
        .kms()
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let key_arn = key.arn().unwrap();
    let sm = server.secrets_manager();
    let secret = sm
        .create_secret()
        .name("db")
        .kms_key_id(key.key_id())
        .secret_string("hunter2")
        .send()
        .await
        .unwrap();
    let secret_arn = secret.arn().unwrap();
    sm.create_secret()
        .name("managed")
        .secret_string("on the AWS-managed key")
        .send()
        .await
        .unwrap();

    let reader = user_with_key(&root, "reader").await;
    let reader_sm = server.clients(&reader).secrets_manager;
    let read = |id: &str| reader_sm.get_secret_value().secret_id(id).send();

    // No permission at all: Secrets Manager itself refuses.
    let e = read(secret_arn).await.unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));
    assert!(
        e.message().unwrap().contains(
            "because no identity-based policy allows the secretsmanager:GetSecretValue action"
        ),
        "{:?}",
        e.message()
    );

    // secretsmanager:GetSecretValue alone: KMS refuses the decrypt, as on AWS.
    put_user_policy(
        &root,
        "reader",
        "read",
        &allow_all(&[("secretsmanager:GetSecretValue", "*")]),
    )
    .await;
    let e = read(secret_arn).await.unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));
    assert_eq!(e.message(), Some("Access to KMS is not allowed"));
    // The AWS-managed key needs nothing more.
    let managed = read("managed").await.unwrap();
    assert_eq!(managed.secret_string(), Some("on the AWS-managed key"));

    // Both permissions: the value.
    put_user_policy(
        &root,
        "reader",
        "read",
        &allow_all(&[
            ("secretsmanager:GetSecretValue", "*"),
            ("kms:Decrypt", key_arn),
        ]),
    )
    .await;
    let value = read(secret_arn).await.unwrap();
    assert_eq!(value.secret_string(), Some("hunter2"));

    // Calling KMS directly with the same ciphertext is a different matter: the user may
    // decrypt only what the key policy and its identity policy allow, and the audit trail
    // shows Secrets Manager's call under kms:ViaService. A deny on kms:Decrypt outside the
    // service does not stop reads through it.
    put_user_policy(
        &root,
        "reader",
        "read",
        &format!(
            r#"{{"Version":"2012-10-17","Statement":[
              {{"Effect":"Allow","Action":["secretsmanager:GetSecretValue","kms:Decrypt"],"Resource":"*"}},
              {{"Effect":"Deny","Action":"kms:Decrypt","Resource":"{key_arn}",
                "Condition":{{"Null":{{"kms:ViaService":"true"}}}}}}]}}"#
        ),
    )
    .await;
    assert_eq!(
        read(secret_arn).await.unwrap().secret_string(),
        Some("hunter2")
    );
}

#[tokio::test]
async fn reading_a_secure_string_needs_kms_decrypt_on_its_customer_key() {
    let server = TestServer::start().await;
    let root = server.iam();
    let key = server
        .kms()
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let key_arn = key.arn().unwrap();
    let ssm = server.ssm();
    ssm.put_parameter()
        .name("/app/db-password")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .key_id(key.key_id())
        .value("hunter2")
        .send()
        .await
        .unwrap();

    let reader = user_with_key(&root, "reader").await;
    let reader_ssm = server.clients(&reader).ssm;
    let read = || {
        reader_ssm
            .get_parameter()
            .name("/app/db-password")
            .with_decryption(true)
            .send()
    };

    let e = read().await.unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));

    put_user_policy(
        &root,
        "reader",
        "read",
        &allow_all(&[("ssm:GetParameter", "*")]),
    )
    .await;
    // Without decryption the ciphertext comes back; with it, KMS refuses.
    let encrypted = reader_ssm
        .get_parameter()
        .name("/app/db-password")
        .send()
        .await
        .unwrap();
    assert_ne!(
        encrypted.parameter().unwrap().value(),
        Some("hunter2"),
        "the value without decryption is the ciphertext"
    );
    let e = read().await.unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"), "{:?}", e.message());

    put_user_policy(
        &root,
        "reader",
        "read",
        &allow_all(&[("ssm:GetParameter", "*"), ("kms:Decrypt", key_arn)]),
    )
    .await;
    let got = read().await.unwrap();
    assert_eq!(got.parameter().unwrap().value(), Some("hunter2"));
}
