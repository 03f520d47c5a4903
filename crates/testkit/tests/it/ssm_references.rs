//! `/aws/reference/secretsmanager/<secret>` through GetParameter and GetParameters: the
//! secret's value as Parameter Store serves it (WithDecryption required), version selectors,
//! and the errors.

use aws_sdk_ssm::primitives::Blob;
use aws_sdk_ssm::types::ParameterType;
use keyhold_testkit::TestServer;

const PREFIX: &str = "/aws/reference/secretsmanager/";

#[tokio::test]
async fn a_secret_reads_through_parameter_store() {
    let server = TestServer::start().await;
    let (sm, ssm) = (server.secrets_manager(), server.ssm());
    let created = sm
        .create_secret()
        .name("app/db")
        .secret_string("first")
        .send()
        .await
        .unwrap();
    let arn = created.arn().unwrap().to_owned();
    let first_version = created.version_id().unwrap().to_owned();
    sm.put_secret_value()
        .secret_id("app/db")
        .secret_string("second")
        .send()
        .await
        .unwrap();

    let got = ssm
        .get_parameter()
        .name(format!("{PREFIX}app/db"))
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    let p = got.parameter().unwrap();
    assert_eq!(p.name(), Some(format!("{PREFIX}app/db").as_str()));
    assert_eq!(p.r#type(), Some(&ParameterType::SecureString));
    assert_eq!(p.value(), Some("second"));
    assert_eq!(p.version(), 0);
    assert_eq!(p.arn(), Some(arn.as_str()));
    assert!(p.last_modified_date().is_some());
    assert!(p.selector().is_none());
    let source: serde_json::Value = serde_json::from_str(p.source_result().unwrap()).unwrap();
    assert_eq!(source["ARN"], arn.as_str());
    assert_eq!(source["name"], "app/db");
    assert_eq!(source["secretString"], "second");
    assert_eq!(source["versionStages"], serde_json::json!(["AWSCURRENT"]));

    // Selectors: a staging label or a version id.
    let previous = ssm
        .get_parameter()
        .name(format!("{PREFIX}app/db:AWSPREVIOUS"))
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    let previous = previous.parameter().unwrap();
    assert_eq!(previous.value(), Some("first"));
    assert_eq!(previous.selector(), Some(":AWSPREVIOUS"));
    let by_id = ssm
        .get_parameter()
        .name(format!("{PREFIX}app/db:{first_version}"))
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    assert_eq!(by_id.parameter().unwrap().value(), Some("first"));
}

#[tokio::test]
async fn reference_errors() {
    let server = TestServer::start().await;
    let (sm, ssm) = (server.secrets_manager(), server.ssm());
    sm.create_secret()
        .name("s")
        .secret_string("v")
        .send()
        .await
        .unwrap();
    let get = |name: String, decrypt: bool| {
        let ssm = ssm.clone();
        async move {
            let e = ssm
                .get_parameter()
                .name(name)
                .with_decryption(decrypt)
                .send()
                .await
                .unwrap_err();
            keyhold_testkit::code_and_message(&e)
        }
    };
    let needs = (
        "ValidationException".to_owned(),
        "WithDecryption flag must be True for retrieving a Secret Manager secret.".to_owned(),
    );
    assert_eq!(get(format!("{PREFIX}s"), false).await, needs);
    assert_eq!(get(format!("{PREFIX}absent"), false).await, needs);
    assert_eq!(
        get(format!("{PREFIX}absent"), true).await,
        (
            "ParameterNotFound".into(),
            "An error occurred (ParameterNotFound) when referencing Secrets Manager: Secret \
             aws/reference/secretsmanager/absentnull not found."
                .into()
        )
    );
    assert_eq!(
        get(format!("{PREFIX}s:NOSUCHSTAGE"), true).await.1,
        "An error occurred (ParameterNotFound) when referencing Secrets Manager: Secret \
         aws/reference/secretsmanager/s:NOSUCHSTAGE not found."
    );
    let syntax = (
        "ValidationException".to_owned(),
        "Invalid parameter name. Please use correct syntax for referencing a version/label  \
         <name>:<version/label>"
            .to_owned(),
    );
    assert_eq!(get(format!("{PREFIX}s:a:b"), false).await, syntax);
    assert_eq!(get(format!("{PREFIX}s:"), true).await, syntax);

    sm.delete_secret()
        .secret_id("s")
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    assert_eq!(
        get(format!("{PREFIX}s"), true).await,
        (
            "ValidationException".into(),
            "Invalid Request to Secrets Manager".into()
        )
    );
}

#[tokio::test]
async fn get_parameters_mixes_references_and_parameters() {
    let server = TestServer::start().await;
    let (sm, ssm) = (server.secrets_manager(), server.ssm());
    sm.create_secret()
        .name("token")
        .secret_string("t0k3n")
        .send()
        .await
        .unwrap();
    sm.create_secret()
        .name("binary")
        .secret_binary(Blob::new(vec![1, 2, 3]))
        .send()
        .await
        .unwrap();
    ssm.put_parameter()
        .name("/plain")
        .value("p")
        .r#type(ParameterType::String)
        .send()
        .await
        .unwrap();
    let out = ssm
        .get_parameters()
        .names(format!("{PREFIX}token"))
        .names(format!("{PREFIX}missing"))
        .names(format!("{PREFIX}token:a:b"))
        .names(format!("{PREFIX}binary"))
        .names("/plain")
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    let values: Vec<Option<&str>> = out.parameters().iter().map(|p| p.value()).collect();
    assert_eq!(
        values,
        [Some("t0k3n"), None, Some("p")],
        "a binary secret has no value"
    );
    assert_eq!(
        out.invalid_parameters(),
        [format!("{PREFIX}missing"), format!("{PREFIX}token:a:b")]
    );

    let out = ssm
        .get_parameters()
        .names(format!("{PREFIX}token"))
        .names("/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(out.parameters().len(), 1);
    assert_eq!(out.invalid_parameters(), [format!("{PREFIX}token")]);

    // References are not parameters: the reserved path cannot be written.
    let e = ssm
        .put_parameter()
        .name(format!("{PREFIX}token"))
        .value("x")
        .r#type(ParameterType::String)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e).0,
        "AccessDeniedException"
    );
}
