//! Parameter Store through the real `aws-sdk-ssm` client: PutParameter, GetParameter,
//! GetParameters, DeleteParameter, DeleteParameters, GetParameterHistory — types, names,
//! ARNs, selectors, versions, SecureString through KMS, persistence.

use aws_sdk_ssm::types::{ParameterTier, ParameterType, Tag};
use base64::Engine as _;
use keyhold_testkit::{TestServer, new_key};

const ARN_PREFIX: &str = "arn:aws:ssm:us-east-1:000000000000:parameter";

async fn put(ssm: &aws_sdk_ssm::Client, name: &str, value: &str, kind: ParameterType) -> i64 {
    ssm.put_parameter()
        .name(name)
        .value(value)
        .r#type(kind)
        .overwrite(true)
        .send()
        .await
        .unwrap()
        .version()
}

#[tokio::test]
async fn put_and_get_with_aws_shaped_answers_and_arns() {
    let server = TestServer::start().await;
    let ssm = server.ssm();
    let out = ssm
        .put_parameter()
        .name("/app/db/host")
        .value("db.internal")
        .r#type(ParameterType::String)
        .description("the database")
        .send()
        .await
        .unwrap();
    assert_eq!(out.version(), 1);
    assert_eq!(out.tier(), Some(&ParameterTier::Standard));

    let p = ssm
        .get_parameter()
        .name("/app/db/host")
        .send()
        .await
        .unwrap()
        .parameter
        .unwrap();
    assert_eq!(p.name(), Some("/app/db/host"));
    assert_eq!(p.r#type(), Some(&ParameterType::String));
    assert_eq!(p.value(), Some("db.internal"));
    assert_eq!(p.version(), 1);
    assert_eq!(p.data_type(), Some("text"));
    assert!(p.last_modified_date().is_some());
    assert!(p.selector().is_none());
    // A hierarchical name keeps its slash in the ARN; a one-level name gets one.
    assert_eq!(p.arn(), Some(format!("{ARN_PREFIX}/app/db/host").as_str()));
    put(&ssm, "plain", "v", ParameterType::String).await;
    let plain = ssm.get_parameter().name("plain").send().await.unwrap();
    assert_eq!(
        plain.parameter().unwrap().arn(),
        Some(format!("{ARN_PREFIX}/plain").as_str())
    );

    // Lookup by ARN, and `/plain` and `plain` are the same parameter.
    for name in [
        format!("{ARN_PREFIX}/app/db/host"),
        format!("{ARN_PREFIX}/plain"),
        "/plain".to_owned(),
    ] {
        let got = ssm.get_parameter().name(&name).send().await.unwrap();
        assert!(got.parameter().unwrap().value().is_some(), "{name}");
    }
    let e = ssm
        .put_parameter()
        .name("/plain")
        .value("x")
        .r#type(ParameterType::String)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e).0,
        "ParameterAlreadyExists"
    );

    // An ARN of another region names nothing here.
    let e = ssm
        .get_parameter()
        .name("arn:aws:ssm:eu-west-1:000000000000:parameter/plain")
        .send()
        .await
        .unwrap_err();
    assert_eq!(keyhold_testkit::code_and_message(&e).0, "ParameterNotFound");
}

#[tokio::test]
async fn not_found_is_parameter_not_found_without_a_message() {
    let server = TestServer::start().await;
    let ssm = server.ssm();
    let e = ssm.get_parameter().name("/nope").send().await.unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        ("ParameterNotFound".into(), String::new())
    );
    let raw = server
        .raw_json("AmazonSSM.GetParameter", r#"{"Name":"/nope"}"#)
        .await;
    assert_eq!(raw.status, 400);
    assert_eq!(
        raw.json(),
        serde_json::json!({"__type": "ParameterNotFound"})
    );
    let e = ssm
        .delete_parameter()
        .name("/nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(keyhold_testkit::code_and_message(&e).0, "ParameterNotFound");
}

#[tokio::test]
async fn overwrite_makes_versions_and_inherits_what_it_leaves_out() {
    let server = TestServer::start().await;
    let ssm = server.ssm();
    ssm.put_parameter()
        .name("/svc/port")
        .value("80")
        .r#type(ParameterType::String)
        .description("port")
        .allowed_pattern("[0-9]+")
        .send()
        .await
        .unwrap();
    let e = ssm
        .put_parameter()
        .name("/svc/port")
        .value("81")
        .r#type(ParameterType::String)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "ParameterAlreadyExists".into(),
            "The parameter already exists. To overwrite this value, set the overwrite option in \
             the request to true."
                .into()
        )
    );
    // Overwrite without a type keeps the type; the pattern still applies.
    let v2 = ssm
        .put_parameter()
        .name("/svc/port")
        .value("8080")
        .overwrite(true)
        .send()
        .await
        .unwrap();
    assert_eq!(v2.version(), 2);
    let e = ssm
        .put_parameter()
        .name("/svc/port")
        .value("eighty")
        .overwrite(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "ParameterPatternMismatchException".into(),
            "Parameter value, cannot be validated against allowedPattern: [0-9]+".into()
        )
    );
    let meta = ssm.describe_parameters().send().await.unwrap();
    let m = &meta.parameters()[0];
    assert_eq!(m.description(), Some("port"));
    assert_eq!(m.allowed_pattern(), Some("[0-9]+"));
    assert_eq!(m.version(), 2);
    assert_eq!(m.r#type(), Some(&ParameterType::String));
    assert_eq!(
        m.last_modified_user(),
        Some("arn:aws:iam::000000000000:root")
    );

    // Version selectors.
    let v1 = ssm
        .get_parameter()
        .name("/svc/port:1")
        .send()
        .await
        .unwrap();
    let v1 = v1.parameter().unwrap();
    assert_eq!(
        (v1.value(), v1.version(), v1.selector()),
        (Some("80"), 1, Some(":1"))
    );
    assert_eq!(v1.name(), Some("/svc/port"));
    let e = ssm
        .get_parameter()
        .name("/svc/port:9")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "ParameterVersionNotFound".into(),
            "Systems Manager could not find version 9 of /svc/port. Verify the version and try \
             again."
                .into()
        )
    );
    let e = ssm
        .get_parameter()
        .name("/svc/port:1:2")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e).0,
        "ValidationException"
    );

    let e = ssm
        .put_parameter()
        .name("/svc/new")
        .value("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "ValidationException".into(),
            "A parameter type is required when you create a parameter.".into()
        )
    );
    let e = ssm
        .put_parameter()
        .name("/svc/new")
        .value("x")
        .r#type(ParameterType::String)
        .overwrite(true)
        .tags(Tag::builder().key("a").value("b").build().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e).0,
        "ValidationException"
    );
    assert!(
        keyhold_testkit::code_and_message(&e)
            .1
            .starts_with("Invalid request: tags and overwrite")
    );
    let e = ssm
        .put_parameter()
        .name("/svc/new")
        .value("")
        .r#type(ParameterType::String)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e).0,
        "ValidationException"
    );
}

#[tokio::test]
async fn names_follow_aws_rules() {
    let server = TestServer::start().await;
    let ssm = server.ssm();
    let try_put = |name: String| {
        let ssm = ssm.clone();
        async move {
            ssm.put_parameter()
                .name(name)
                .value("v")
                .r#type(ParameterType::String)
                .send()
                .await
        }
    };
    let rules = "Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive). If \
                 formed as a path, it can consist of sub-paths divided by slash symbol; each \
                 sub-path can be formed as a mix of letters, numbers and the following 3 symbols .-_";
    for bad in ["a b", "a/b", "/a//b", "/a/", "a*b", "/é"] {
        let e = try_put(bad.into()).await.unwrap_err();
        assert_eq!(
            keyhold_testkit::code_and_message(&e),
            ("ValidationException".into(), rules.into()),
            "{bad}"
        );
    }
    for reserved in ["awsTestParameter", "SSM-testparameter", "/aws"] {
        let e = try_put(reserved.into()).await.unwrap_err();
        assert_eq!(
            keyhold_testkit::code_and_message(&e),
            (
                "ValidationException".into(),
                "Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive)."
                    .into()
            ),
            "{reserved}"
        );
    }
    let e = try_put("/aws/testparam1".into()).await.unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "AccessDeniedException".into(),
            "No access to reserved parameter name: /aws/testparam1.".into()
        )
    );
    let e = try_put("/ssm/x".into()).await.unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e).0,
        "ValidationException"
    );

    let fifteen: String = (1..=15).map(|i| format!("/L{i}")).collect();
    try_put(fifteen.clone()).await.unwrap();
    let e = try_put(format!("{fifteen}/x")).await.unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e).0,
        "HierarchyLevelLimitExceededException"
    );

    // 1011 characters, counting the ARN before the name.
    let room = 1011 - format!("{ARN_PREFIX}/").len();
    try_put("n".repeat(room)).await.unwrap();
    let e = try_put("m".repeat(room + 1)).await.unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e).0,
        "ValidationException"
    );

    // Spaces around a name are removed.
    try_put("  trimmed  ".into()).await.unwrap();
    let got = ssm.get_parameter().name("trimmed").send().await.unwrap();
    assert_eq!(got.parameter().unwrap().name(), Some("trimmed"));
}

#[tokio::test]
async fn string_lists_and_allowed_patterns() {
    let server = TestServer::start().await;
    let ssm = server.ssm();
    ssm.put_parameter()
        .name("/list")
        .value("a,b,c,")
        .r#type(ParameterType::StringList)
        .allowed_pattern("[a-z]{1}")
        .send()
        .await
        .unwrap();
    let p = ssm.get_parameter().name("/list").send().await.unwrap();
    let p = p.parameter().unwrap();
    assert_eq!(p.value(), Some("a,b,c,"));
    assert_eq!(p.r#type(), Some(&ParameterType::StringList));
    // Each item must match the pattern.
    let e = ssm
        .put_parameter()
        .name("/list")
        .value("aaa,b")
        .overwrite(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e).0,
        "ParameterPatternMismatchException"
    );
    let e = ssm
        .put_parameter()
        .name("/re")
        .value("x")
        .r#type(ParameterType::String)
        .allowed_pattern("(")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e).0,
        "InvalidAllowedPatternException"
    );
}

#[tokio::test]
async fn data_types() {
    let server = TestServer::start().await;
    let ssm = server.ssm();
    ssm.put_parameter()
        .name("/ami")
        .value("ami-0123456789abcdef0")
        .r#type(ParameterType::String)
        .data_type("aws:ec2:image")
        .send()
        .await
        .unwrap();
    let p = ssm.get_parameter().name("/ami").send().await.unwrap();
    assert_eq!(p.parameter().unwrap().data_type(), Some("aws:ec2:image"));
    // An invalid AMI id is accepted and then not stored (params_fidelity covers it).
    let r = ssm
        .put_parameter()
        .name("/ami")
        .value("not-an-image")
        .overwrite(true)
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), 2);
    let p = ssm.get_parameter().name("/ami").send().await.unwrap();
    assert_eq!(
        p.parameter().unwrap().value(),
        Some("ami-0123456789abcdef0")
    );
    let e = ssm
        .put_parameter()
        .name("/dt")
        .value("x")
        .r#type(ParameterType::String)
        .data_type("Text")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "ValidationException".into(),
            "The following data type is not supported: Text (Data type names are all lowercase.)"
                .into()
        )
    );
}

#[tokio::test]
async fn secure_strings_are_encrypted_under_the_aws_managed_key() {
    let server = TestServer::start().await;
    let ssm = server.ssm();
    let secret = "correct horse battery staple";
    put(&ssm, "/app/password", secret, ParameterType::SecureString).await;

    let sealed = ssm
        .get_parameter()
        .name("/app/password")
        .send()
        .await
        .unwrap();
    let sealed = sealed.parameter().unwrap().value().unwrap().to_owned();
    assert_ne!(sealed, secret);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&sealed)
        .expect("without decryption the value is the ciphertext, base64");
    assert!(
        !bytes
            .windows(8)
            .any(|w| secret.as_bytes().windows(8).any(|s| s == w))
    );

    let open = ssm
        .get_parameter()
        .name("/app/password")
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    assert_eq!(open.parameter().unwrap().value(), Some(secret));
    assert_eq!(
        open.parameter().unwrap().r#type(),
        Some(&ParameterType::SecureString)
    );

    let meta = ssm.describe_parameters().send().await.unwrap();
    assert_eq!(meta.parameters()[0].key_id(), Some("alias/aws/ssm"));
    // The AWS-managed key exists now.
    let key = server
        .kms()
        .describe_key()
        .key_id("alias/aws/ssm")
        .send()
        .await
        .unwrap();
    assert_eq!(
        key.key_metadata().unwrap().key_manager(),
        Some(&aws_sdk_kms::types::KeyManagerType::Aws)
    );

    let e = ssm
        .put_parameter()
        .name("/plain")
        .value("x")
        .r#type(ParameterType::String)
        .key_id("alias/aws/ssm")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "ValidationException".into(),
            "KeyId is required for SecureString type parameter only.".into()
        )
    );
}

#[tokio::test]
async fn secure_strings_under_a_customer_key_follow_the_key() {
    let server = TestServer::start().await;
    let (ssm, kms) = (server.ssm(), server.kms());
    let key_id = new_key(&kms).await.id;
    kms.create_alias()
        .alias_name("alias/params")
        .target_key_id(&key_id)
        .send()
        .await
        .unwrap();
    ssm.put_parameter()
        .name("/cmk")
        .value("s3cr3t")
        .r#type(ParameterType::SecureString)
        .key_id("alias/params")
        .send()
        .await
        .unwrap();
    let read = || async {
        ssm.get_parameter()
            .name("/cmk")
            .with_decryption(true)
            .send()
            .await
    };
    assert_eq!(
        read().await.unwrap().parameter().unwrap().value(),
        Some("s3cr3t")
    );
    let meta = ssm.describe_parameters().send().await.unwrap();
    assert_eq!(meta.parameters()[0].key_id(), Some("alias/params"));

    // Decryption goes through KMS: a disabled key refuses it (as the parameter's
    // InvalidKeyId, with KMS's message); the ciphertext is still served.
    kms.disable_key().key_id(&key_id).send().await.unwrap();
    let e = read().await.unwrap_err();
    let (code, message) = keyhold_testkit::code_and_message(&e);
    assert_eq!(code, "InvalidKeyId");
    assert!(message.ends_with("is disabled."), "{message}");
    ssm.get_parameter().name("/cmk").send().await.unwrap();
    kms.enable_key().key_id(&key_id).send().await.unwrap();
    assert_eq!(
        read().await.unwrap().parameter().unwrap().value(),
        Some("s3cr3t")
    );

    let e = ssm
        .put_parameter()
        .name("/cmk2")
        .value("x")
        .r#type(ParameterType::SecureString)
        .key_id("alias/does-not-exist")
        .send()
        .await
        .unwrap_err();
    assert_eq!(keyhold_testkit::code_and_message(&e).0, "InvalidKeyId");
}

#[tokio::test]
async fn get_parameters_lists_what_it_cannot_answer() {
    let server = TestServer::start().await;
    let ssm = server.ssm();
    put(&ssm, "/a", "1", ParameterType::String).await;
    put(&ssm, "/a", "2", ParameterType::String).await;
    put(&ssm, "/s", "hidden", ParameterType::SecureString).await;
    let out = ssm
        .get_parameters()
        .names("/a")
        .names("/a:1")
        .names("/missing")
        .names("/a:7")
        .names("/s")
        .names("bad/name")
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    let values: Vec<(&str, i64)> = out
        .parameters()
        .iter()
        .map(|p| (p.value().unwrap(), p.version()))
        .collect();
    assert_eq!(values, [("2", 2), ("1", 1), ("hidden", 1)]);
    assert_eq!(out.parameters()[1].selector(), Some(":1"));
    assert_eq!(out.invalid_parameters(), ["/missing", "/a:7", "bad/name"]);

    let names: Vec<String> = (0..11).map(|i| format!("/p{i}")).collect();
    let e = ssm
        .get_parameters()
        .set_names(Some(names))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e).0,
        "ValidationException"
    );
}

#[tokio::test]
async fn delete_one_or_many() {
    let server = TestServer::start().await;
    let ssm = server.ssm();
    for n in ["/d/1", "/d/2", "/d/3"] {
        put(&ssm, n, "v", ParameterType::String).await;
    }
    put(&ssm, "/d/1", "v2", ParameterType::String).await;
    ssm.delete_parameter().name("/d/1").send().await.unwrap();
    let e = ssm.get_parameter().name("/d/1").send().await.unwrap_err();
    assert_eq!(keyhold_testkit::code_and_message(&e).0, "ParameterNotFound");
    // A parameter created again starts over at version 1.
    assert_eq!(put(&ssm, "/d/1", "again", ParameterType::String).await, 1);

    let out = ssm
        .delete_parameters()
        .names("/d/2")
        .names("/d/3")
        .names("/d/404")
        .send()
        .await
        .unwrap();
    assert_eq!(out.deleted_parameters(), ["/d/2", "/d/3"]);
    assert_eq!(out.invalid_parameters(), ["/d/404"]);
    let left = ssm.describe_parameters().send().await.unwrap();
    assert_eq!(left.parameters().len(), 1);
}

#[tokio::test]
async fn history_keeps_the_latest_100_versions() {
    let server = TestServer::start().await;
    let ssm = server.ssm();
    for i in 1..=3 {
        put(
            &ssm,
            "/h",
            &format!("secret-{i}"),
            ParameterType::SecureString,
        )
        .await;
    }
    let h = ssm
        .get_parameter_history()
        .name("/h")
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    let values: Vec<(i64, &str)> = h
        .parameters()
        .iter()
        .map(|p| (p.version(), p.value().unwrap()))
        .collect();
    assert_eq!(values, [(1, "secret-1"), (2, "secret-2"), (3, "secret-3")]);
    assert_eq!(h.parameters()[0].key_id(), Some("alias/aws/ssm"));
    assert_eq!(h.parameters()[0].tier(), Some(&ParameterTier::Standard));
    let sealed = ssm.get_parameter_history().name("/h").send().await.unwrap();
    assert!(
        sealed
            .parameters()
            .iter()
            .all(|p| !p.value().unwrap().starts_with("secret"))
    );

    // Pages.
    let first = ssm
        .get_parameter_history()
        .name(format!("{ARN_PREFIX}/h"))
        .max_results(2)
        .send()
        .await
        .unwrap();
    assert_eq!(first.parameters().len(), 2);
    let rest = ssm
        .get_parameter_history()
        .name("/h")
        .max_results(2)
        .next_token(first.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.parameters()[0].version(), 3);
    assert!(rest.next_token().is_none());
    let e = ssm
        .get_parameter_history()
        .name("/h")
        .next_token("garbage")
        .send()
        .await
        .unwrap_err();
    assert_eq!(keyhold_testkit::code_and_message(&e).0, "InvalidNextToken");
    let e = ssm
        .get_parameter_history()
        .name("/nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(keyhold_testkit::code_and_message(&e).0, "ParameterNotFound");

    // The 101st version drops the oldest ...
    for i in 4..=101 {
        put(&ssm, "/h", &format!("v{i}"), ParameterType::SecureString).await;
    }
    let versions = all_history_versions(&ssm, "/h").await;
    assert_eq!(versions.len(), 100);
    assert_eq!((versions[0], versions[99]), (2, 101));

    // ... unless a label holds it.
    ssm.label_parameter_version()
        .name("/h")
        .parameter_version(2)
        .labels("keep")
        .send()
        .await
        .unwrap();
    let e = ssm
        .put_parameter()
        .name("/h")
        .value("v102")
        .overwrite(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "ParameterMaxVersionLimitExceeded".into(),
            "You attempted to create a new version of /h by calling the PutParameter API with \
             the overwrite flag. Version 2, the oldest version, can't be deleted because it has \
             a label associated with it. Move the label to another version of the parameter, \
             and try again."
                .into()
        )
    );
    ssm.label_parameter_version()
        .name("/h")
        .parameter_version(50)
        .labels("keep")
        .send()
        .await
        .unwrap();
    assert_eq!(
        put(&ssm, "/h", "v102", ParameterType::SecureString).await,
        102
    );
}

async fn all_history_versions(ssm: &aws_sdk_ssm::Client, name: &str) -> Vec<i64> {
    let mut versions = Vec::new();
    let mut token = None;
    loop {
        let page = ssm
            .get_parameter_history()
            .name(name)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        versions.extend(page.parameters().iter().map(|p| p.version()));
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return versions;
        }
    }
}

#[tokio::test]
async fn accounts_and_regions_are_separate() {
    let server = TestServer::start().await;
    put(
        &server.ssm(),
        "/shared-name",
        "default",
        ParameterType::String,
    )
    .await;
    let other = server.ssm_for("111122223333", "us-east-1");
    let e = other
        .get_parameter()
        .name("/shared-name")
        .send()
        .await
        .unwrap_err();
    assert_eq!(keyhold_testkit::code_and_message(&e).0, "ParameterNotFound");
    put(&other, "/shared-name", "other", ParameterType::String).await;
    let west = server.ssm_for("000000000000", "eu-west-1");
    assert!(
        west.describe_parameters()
            .send()
            .await
            .unwrap()
            .parameters()
            .is_empty()
    );
    let p = other
        .get_parameter()
        .name("/shared-name")
        .send()
        .await
        .unwrap();
    assert_eq!(
        p.parameter().unwrap().arn(),
        Some("arn:aws:ssm:us-east-1:111122223333:parameter/shared-name")
    );
}

#[tokio::test]
async fn parameters_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::builder().data_dir(dir.path()).start().await;
    let ssm = server.ssm();
    put(&ssm, "/keep/plain", "text", ParameterType::String).await;
    put(&ssm, "/keep/secret", "s1", ParameterType::SecureString).await;
    put(&ssm, "/keep/secret", "s2", ParameterType::SecureString).await;
    ssm.label_parameter_version()
        .name("/keep/secret")
        .parameter_version(1)
        .labels("first")
        .send()
        .await
        .unwrap();
    server.stop().await;

    let server = TestServer::builder().data_dir(dir.path()).start().await;
    let ssm = server.ssm();
    let got = ssm
        .get_parameter()
        .name("/keep/secret:first")
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    assert_eq!(got.parameter().unwrap().value(), Some("s1"));
    let got = ssm
        .get_parameters()
        .names("/keep/plain")
        .names("/keep/secret")
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    let values: Vec<&str> = got
        .parameters()
        .iter()
        .map(|p| p.value().unwrap())
        .collect();
    assert_eq!(values, ["text", "s2"]);
    server.stop().await;
}

#[tokio::test]
async fn raw_requests_get_model_validation() {
    let server = TestServer::start().await;
    let r = server
        .raw_json(
            "AmazonSSM.PutParameter",
            r#"{"Name":"/x","Value":"v","Type":"Text"}"#,
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["__type"], "ValidationException");
    assert_eq!(
        r.json()["message"],
        "1 validation error detected: Value 'Text' at 'type' failed to satisfy constraint: \
         Member must satisfy enum value set: [String, StringList, SecureString]"
    );
    let r = server
        .raw_json("AmazonSSM.PutParameter", r#"{"Name":"/x","Type":"String"}"#)
        .await;
    assert_eq!(
        r.json()["message"],
        "1 validation error detected: Value null at 'value' failed to satisfy constraint: \
         Member must not be null"
    );
    let r = server
        .raw_json(
            "AmazonSSM.GetParametersByPath",
            r#"{"Path":"/","MaxResults":11}"#,
        )
        .await;
    assert_eq!(
        r.json()["message"],
        "1 validation error detected: Value '11' at 'maxResults' failed to satisfy constraint: \
         Member must have value less than or equal to 10"
    );
}
