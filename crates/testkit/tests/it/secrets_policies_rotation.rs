//! Resource policies (stored, validated, enforced for other accounts and explicit denies),
//! KMS acting as the caller (a key policy that refuses the caller makes the secret
//! unreadable), and the rotation configuration (stored and reported; an immediate rotation
//! with a function the server has no `[[rotation_functions]]` entry for is refused as AWS
//! refuses a function it cannot invoke; running rotations: `secrets_rotation`).

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::types::RotationRulesType;
use keyhold_testkit::TestServer;

fn err<E: ProvideErrorMetadata, R>(
    e: aws_sdk_secretsmanager::error::SdkError<E, R>,
) -> (String, String) {
    (
        e.code().unwrap_or_default().to_owned(),
        e.message().unwrap_or_default().to_owned(),
    )
}

const OTHER: &str = "111122223333";
const LAMBDA: &str = "arn:aws:lambda:us-east-1:000000000000:function:rotator";

fn allow(principal: &str, action: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{principal}"}},"Action":"{action}","Resource":"*"}}]}}"#
    )
}

#[tokio::test]
async fn resource_policies_are_stored_validated_and_returned() {
    let server = TestServer::start().await;
    let sm = server.secrets_manager();
    sm.create_secret()
        .name("p")
        .secret_string("x")
        .send()
        .await
        .unwrap();
    let got = sm
        .get_resource_policy()
        .secret_id("p")
        .send()
        .await
        .unwrap();
    assert!(got.resource_policy().is_none() && got.name() == Some("p"));

    let policy = allow(
        "arn:aws:iam::000000000000:root",
        "secretsmanager:GetSecretValue",
    );
    let put = sm
        .put_resource_policy()
        .secret_id("p")
        .resource_policy(&policy)
        .send()
        .await
        .unwrap();
    assert_eq!(put.name(), Some("p"));
    let got = sm
        .get_resource_policy()
        .secret_id("p")
        .send()
        .await
        .unwrap();
    assert_eq!(got.resource_policy(), Some(policy.as_str()));
    let listed = server
        .raw_json("secretsmanager.ListResourcePolicies", r#"{"SecretId":"p"}"#)
        .await
        .json();
    assert_eq!(listed["ResourcePolicies"][0]["PolicyName"], "default");

    // Syntax, and public policies when asked to block them.
    let e = sm
        .put_resource_policy()
        .secret_id("p")
        .resource_policy("{not json")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "MalformedPolicyDocumentException");
    let public = allow("*", "secretsmanager:GetSecretValue");
    let e = sm
        .put_resource_policy()
        .secret_id("p")
        .resource_policy(&public)
        .block_public_policy(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "PublicPolicyException");
    let v = sm
        .validate_resource_policy()
        .resource_policy(&public)
        .send()
        .await
        .unwrap();
    assert!(!v.policy_validation_passed());
    assert_eq!(v.validation_errors().len(), 1);
    let v = sm
        .validate_resource_policy()
        .secret_id("p")
        .resource_policy(&policy)
        .send()
        .await
        .unwrap();
    assert!(v.policy_validation_passed() && v.validation_errors().is_empty());
    let r = server
        .raw_json(
            "secretsmanager.PutResourcePolicy",
            &format!(
                r#"{{"SecretId":"p","PolicyName":"other","ResourcePolicy":{}}}"#,
                serde_json::Value::String(policy.clone())
            ),
        )
        .await;
    assert_eq!(r.json()["__type"], "InvalidParameterException");

    sm.delete_resource_policy()
        .secret_id("p")
        .send()
        .await
        .unwrap();
    let got = sm
        .get_resource_policy()
        .secret_id("p")
        .send()
        .await
        .unwrap();
    assert!(got.resource_policy().is_none());
}

#[tokio::test]
async fn other_accounts_need_the_resource_policy_and_the_key() {
    let server = TestServer::start().await;
    let owner = server.secrets_manager();
    let stranger = server.secrets_manager_for(OTHER, "us-east-1");
    let arn = owner
        .create_secret()
        .name("shared")
        .secret_string("for B")
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();

    // No policy: another account is refused, by ARN; by name it finds nothing of its own.
    let e = stranger
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "AccessDeniedException");
    let e = stranger
        .get_secret_value()
        .secret_id("shared")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "ResourceNotFoundException");

    // The policy lets B in, but the AWS-managed key serves only its own account (AWS says
    // so before asking KMS).
    owner
        .put_resource_policy()
        .secret_id("shared")
        .resource_policy(allow(
            &format!("arn:aws:iam::{OTHER}:root"),
            "secretsmanager:*",
        ))
        .send()
        .await
        .unwrap();
    let d = stranger
        .describe_secret()
        .secret_id(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(d.name(), Some("shared"));
    let e = stranger
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err(e),
        (
            "InvalidRequestException".into(),
            "You can't access a secret from a different AWS account if you encrypt the secret \
             with the default KMS service key."
                .into()
        )
    );

    // A customer managed key whose policy lets B decrypt: B reads the secret.
    let kms = server.kms();
    let key_policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
          {{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::000000000000:root"}},"Action":"kms:*","Resource":"*"}},
          {{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{OTHER}:root"}},"Action":"kms:Decrypt","Resource":"*"}}]}}"#
    );
    let key = kms
        .create_key()
        .policy(key_policy)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    owner
        .update_secret()
        .secret_id("shared")
        .kms_key_id(key.arn().unwrap())
        .send()
        .await
        .unwrap();
    let got = stranger
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_string(), Some("for B"));

    // An explicit deny refuses even the owner.
    owner
        .put_resource_policy()
        .secret_id("shared")
        .resource_policy(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#,
        )
        .send()
        .await
        .unwrap();
    let e = owner
        .get_secret_value()
        .secret_id("shared")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "AccessDeniedException");
}

#[tokio::test]
async fn kms_decrypts_as_the_caller_through_secrets_manager() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let sm = server.secrets_manager();
    // The key allows everything except Decrypt through Secrets Manager (kms:ViaService).
    let policy = r#"{"Version":"2012-10-17","Statement":[
      {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"kms:*","Resource":"*"},
      {"Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*",
       "Condition":{"StringEquals":{"kms:ViaService":"secretsmanager.us-east-1.amazonaws.com"}}}]}"#;
    let key = kms
        .create_key()
        .policy(policy)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    sm.create_secret()
        .name("k")
        .kms_key_id(key.key_id())
        .secret_string("x")
        .send()
        .await
        .unwrap();
    let e = sm
        .get_secret_value()
        .secret_id("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err(e),
        (
            "AccessDeniedException".into(),
            "Access to KMS is not allowed".into()
        )
    );
    // A key that does not exist: nothing is created.
    let e = sm
        .create_secret()
        .name("k2")
        .kms_key_id("alias/does-not-exist")
        .secret_string("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "EncryptionFailure");
    assert!(sm.describe_secret().secret_id("k2").send().await.is_err());
    // The AWS-managed key was created on first use, by KMS itself.
    sm.create_secret()
        .name("k3")
        .secret_string("x")
        .send()
        .await
        .unwrap();
    let managed = kms
        .describe_key()
        .key_id("alias/aws/secretsmanager")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(
        managed.key_manager(),
        Some(&aws_sdk_kms::types::KeyManagerType::Aws)
    );
}

#[tokio::test]
async fn rotation_configuration_is_stored_and_unknown_function_refused() {
    let server = TestServer::start().await;
    let sm = server.secrets_manager();
    sm.create_secret()
        .name("rot")
        .secret_string("v1")
        .send()
        .await
        .unwrap();

    let e = sm
        .rotate_secret()
        .secret_id("rot")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err(e),
        (
            "InvalidRequestException".into(),
            "No Lambda rotation function ARN is associated with this secret.".into()
        )
    );
    let e = sm
        .cancel_rotate_secret()
        .secret_id("rot")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "InvalidRequestException");

    // Rotating now needs the rotation function, which this server does not have: refused,
    // and nothing is stored.
    let e = sm
        .rotate_secret()
        .secret_id("rot")
        .rotation_lambda_arn(LAMBDA)
        .rotation_rules(
            RotationRulesType::builder()
                .automatically_after_days(30)
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err(e),
        (
            "AccessDeniedException".into(),
            "Secrets Manager cannot invoke the specified Lambda function. Ensure that the \
             function policy grants access to the principal secretsmanager.amazonaws.com."
                .into()
        )
    );
    let d = sm.describe_secret().secret_id("rot").send().await.unwrap();
    assert!(d.rotation_enabled().is_none() && d.rotation_rules().is_none());

    // RotateImmediately=false stores the configuration.
    let r = sm
        .rotate_secret()
        .secret_id("rot")
        .rotation_lambda_arn(LAMBDA)
        .rotation_rules(
            RotationRulesType::builder()
                .automatically_after_days(30)
                .build(),
        )
        .rotate_immediately(false)
        .send()
        .await
        .unwrap();
    assert_eq!(r.name(), Some("rot"));
    let d = sm.describe_secret().secret_id("rot").send().await.unwrap();
    assert_eq!(d.rotation_enabled(), Some(true));
    assert_eq!(d.rotation_lambda_arn(), Some(LAMBDA));
    assert_eq!(
        d.rotation_rules().unwrap().automatically_after_days(),
        Some(30)
    );
    let next = std::time::SystemTime::try_from(*d.next_rotation_date().unwrap()).unwrap();
    let days = next
        .duration_since(std::time::SystemTime::now())
        .unwrap()
        .as_secs()
        / 86_400;
    assert!((29..=31).contains(&days), "{days}");
    assert!(d.last_rotated_date().is_none());

    // A schedule expression (AWS's example), AutomaticallyAfterDays derived from it.
    sm.rotate_secret()
        .secret_id("rot")
        .rotation_rules(
            RotationRulesType::builder()
                .schedule_expression("cron(0 16 1,15 * ? *)")
                .duration("2h")
                .build(),
        )
        .rotate_immediately(false)
        .send()
        .await
        .unwrap();
    let d = sm.describe_secret().secret_id("rot").send().await.unwrap();
    let rules = d.rotation_rules().unwrap();
    assert_eq!(rules.schedule_expression(), Some("cron(0 16 1,15 * ? *)"));
    assert_eq!(rules.duration(), Some("2h"));
    assert_eq!(rules.automatically_after_days(), Some(14));
    assert_eq!(d.rotation_lambda_arn(), Some(LAMBDA), "kept from before");

    for bad in [
        RotationRulesType::builder()
            .automatically_after_days(10)
            .schedule_expression("rate(10 days)")
            .build(),
        RotationRulesType::builder()
            .schedule_expression("rate(1 hours)")
            .build(),
        RotationRulesType::builder()
            .schedule_expression("rate(4 hours)")
            .duration("5h")
            .build(),
    ] {
        let e = sm
            .rotate_secret()
            .secret_id("rot")
            .rotation_rules(bad)
            .rotate_immediately(false)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err(e).0, "InvalidParameterException");
    }
    let e = sm
        .rotate_secret()
        .secret_id("rot")
        .rotation_rules(
            RotationRulesType::builder()
                .automatically_after_days(0)
                .build(),
        )
        .rotate_immediately(false)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "ValidationException");

    // An unfinished rotation (AWSPENDING apart from AWSCURRENT) blocks a new one.
    let pending = sm
        .put_secret_value()
        .secret_id("rot")
        .secret_string("v2")
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    let e = sm
        .rotate_secret()
        .secret_id("rot")
        .rotate_immediately(false)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err(e),
        (
            "InvalidRequestException".into(),
            "A previous rotation isn't complete. That rotation will be reattempted.".into()
        )
    );

    // CancelRotateSecret turns rotation off, keeps the settings, names the pending version.
    let c = sm
        .cancel_rotate_secret()
        .secret_id("rot")
        .send()
        .await
        .unwrap();
    assert_eq!(c.version_id(), pending.version_id());
    let d = sm.describe_secret().secret_id("rot").send().await.unwrap();
    assert_eq!(d.rotation_enabled(), Some(false));
    assert!(d.next_rotation_date().is_none());
    assert!(d.rotation_rules().is_some() && d.rotation_lambda_arn() == Some(LAMBDA));
}
