//! Secrets Manager through the real `aws-sdk-secretsmanager`: create, read, describe, list,
//! update, tag, delete and restore, with AWS's names, ARNs, errors and limits.

use std::time::Duration;

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, SortByType, SortOrderType, Tag};
use keyhold_testkit::TestServer;

/// `(code, message)` of a failed call.
fn err<E: ProvideErrorMetadata, R>(
    e: aws_sdk_secretsmanager::error::SdkError<E, R>,
) -> (String, String) {
    (
        e.code().unwrap_or_default().to_owned(),
        e.message().unwrap_or_default().to_owned(),
    )
}

const NOT_FOUND: &str = "Secrets Manager can't find the specified secret.";
const MARKED: &str =
    "You can't perform this operation on the secret because it was marked for deletion.";

#[tokio::test]
async fn create_read_describe_with_aws_arns_and_names() {
    let server = TestServer::start().await;
    let sm = server.secrets_manager();
    let created = sm
        .create_secret()
        .name("Valid/_+=.@-Name")
        .description("Testing secret creation.")
        .secret_string("my_secret")
        .send()
        .await
        .unwrap();
    let arn = created.arn().unwrap().to_owned();
    let prefix = "arn:aws:secretsmanager:us-east-1:000000000000:secret:Valid/_+=.@-Name-";
    assert!(arn.starts_with(prefix), "{arn}");
    let suffix = &arn[prefix.len()..];
    assert_eq!(suffix.len(), 6);
    assert!(suffix.bytes().all(|b| b.is_ascii_alphanumeric()));
    let version = created.version_id().unwrap().to_owned();

    // By name, full ARN and partial ARN (the ARN without the random suffix).
    let partial = "arn:aws:secretsmanager:us-east-1:000000000000:secret:Valid/_+=.@-Name";
    for id in ["Valid/_+=.@-Name", arn.as_str(), partial] {
        let got = sm.get_secret_value().secret_id(id).send().await.unwrap();
        assert_eq!(got.secret_string(), Some("my_secret"));
        assert_eq!(got.arn(), Some(arn.as_str()));
        assert_eq!(got.version_id(), Some(version.as_str()));
        assert_eq!(got.version_stages(), ["AWSCURRENT"]);
        assert!(got.created_date().is_some());
    }

    let d = sm.describe_secret().secret_id(&arn).send().await.unwrap();
    assert_eq!(d.name(), Some("Valid/_+=.@-Name"));
    assert_eq!(d.description(), Some("Testing secret creation."));
    assert!(d.kms_key_id().is_none(), "the default key is not reported");
    assert!(d.last_accessed_date().is_some(), "read above");
    assert!(d.last_changed_date().is_some() && d.created_date().is_some());
    assert!(d.rotation_enabled().is_none() && d.deleted_date().is_none());
    assert!(d.tags().is_empty());
    assert_eq!(
        d.version_ids_to_stages().unwrap().get(&version).unwrap(),
        &vec!["AWSCURRENT".to_owned()]
    );

    // Binary values come back as they went in.
    let bytes: Vec<u8> = (0..=255u8).collect();
    sm.create_secret()
        .name("bin")
        .secret_binary(Blob::new(bytes.clone()))
        .send()
        .await
        .unwrap();
    let got = sm.get_secret_value().secret_id("bin").send().await.unwrap();
    assert_eq!(got.secret_binary().unwrap().as_ref(), &bytes[..]);
    assert!(got.secret_string().is_none());

    // A secret without a value has no version.
    let empty = sm.create_secret().name("empty").send().await.unwrap();
    assert!(empty.version_id().is_none());
    let e = sm
        .get_secret_value()
        .secret_id("empty")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err(e),
        (
            "ResourceNotFoundException".into(),
            "Secrets Manager can't find the specified secret value for staging label: AWSCURRENT"
                .into()
        )
    );
    assert!(
        sm.describe_secret()
            .secret_id("empty")
            .send()
            .await
            .unwrap()
            .version_ids_to_stages()
            .is_none()
    );
}

#[tokio::test]
async fn errors_of_names_existence_and_values() {
    let server = TestServer::start().await;
    let sm = server.secrets_manager();
    for bad in ["Inv Name", " Inv*Name? ", "a:b"] {
        let e = sm
            .create_secret()
            .name(bad)
            .secret_string("x")
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            err(e),
            (
                "ValidationException".into(),
                "Invalid name. Must be a valid name containing alphanumeric characters, or any \
                 of the following: -/_+=.@!"
                    .into()
            )
        );
        let e = sm
            .get_secret_value()
            .secret_id(bad)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err(e).0, "ValidationException");
    }
    let e = sm
        .get_secret_value()
        .secret_id("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err(e),
        ("ResourceNotFoundException".into(), NOT_FOUND.into())
    );
    let e = sm
        .describe_secret()
        .secret_id("arn:aws:secretsmanager:us-east-1:000000000000:secret:nope-AbCdEf")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "ResourceNotFoundException");

    sm.create_secret()
        .name("s")
        .secret_string("a")
        .send()
        .await
        .unwrap();
    let e = sm
        .create_secret()
        .name("s")
        .secret_string("b")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err(e),
        (
            "ResourceExistsException".into(),
            "The operation failed because the secret s already exists.".into()
        )
    );
    let e = sm
        .create_secret()
        .name("both")
        .secret_string("a")
        .secret_binary(Blob::new(b"b".to_vec()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "InvalidParameterException");

    // 65,536 bytes is the limit, for strings and binaries alike.
    let max = "x".repeat(65_536);
    sm.create_secret()
        .name("max")
        .secret_string(&max)
        .send()
        .await
        .unwrap();
    let e = sm
        .create_secret()
        .name("too-big")
        .secret_string(format!("{max}x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "ValidationException");
    let got = sm.get_secret_value().secret_id("max").send().await.unwrap();
    assert_eq!(got.secret_string().unwrap().len(), 65_536);
}

#[tokio::test]
async fn raw_requests_without_a_token_are_refused_as_aws_does() {
    let server = TestServer::start().await;
    let r = server
        .raw_json(
            "secretsmanager.CreateSecret",
            r#"{"Name":"raw","SecretString":"x"}"#,
        )
        .await;
    assert_eq!(r.status, 400);
    let body = r.json();
    assert_eq!(body["__type"], "InvalidRequestException");
    assert_eq!(
        body["Message"],
        "You must provide a ClientRequestToken value. We recommend a UUID-type value."
    );
    let r = server
        .raw_json(
            "secretsmanager.CreateSecret",
            r#"{"Name":"raw","SecretString":"x","ClientRequestToken":"00000000-0000-0000-0000-000000000001"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(
        r.json()["VersionId"],
        "00000000-0000-0000-0000-000000000001"
    );
    for (target, body) in [
        ("PutSecretValue", r#"{"SecretId":"raw","SecretString":"y"}"#),
        ("UpdateSecret", r#"{"SecretId":"raw","SecretString":"y"}"#),
    ] {
        let r = server
            .raw_json(&format!("secretsmanager.{target}"), body)
            .await;
        assert_eq!(r.json()["__type"], "InvalidRequestException", "{target}");
    }
    let r = server
        .raw_json("secretsmanager.RotateSecret", r#"{"SecretId":"raw"}"#)
        .await;
    assert_eq!(r.json()["__type"], "InvalidParameterException");
    // Model constraints: a token shorter than 32 characters.
    let r = server
        .raw_json(
            "secretsmanager.PutSecretValue",
            r#"{"SecretId":"raw","SecretString":"y","ClientRequestToken":"short"}"#,
        )
        .await;
    assert_eq!(r.json()["__type"], "ValidationException");
    // Malformed JSON.
    let r = server.raw_json("secretsmanager.GetSecretValue", "{").await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn update_secret_changes_metadata_and_values() {
    let server = TestServer::start().await;
    let sm = server.secrets_manager();
    let v1 = sm
        .create_secret()
        .name("u")
        .secret_string("one")
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned();
    let r = sm
        .update_secret()
        .secret_id("u")
        .description("MyDescription")
        .send()
        .await
        .unwrap();
    assert!(r.version_id().is_none(), "no new version without a value");
    let r = sm
        .update_secret()
        .secret_id("u")
        .secret_string("two")
        .send()
        .await
        .unwrap();
    let v2 = r.version_id().unwrap().to_owned();
    let d = sm.describe_secret().secret_id("u").send().await.unwrap();
    assert_eq!(d.description(), Some("MyDescription"));
    let stages = d.version_ids_to_stages().unwrap();
    assert_eq!(stages[&v1], ["AWSPREVIOUS"]);
    assert_eq!(stages[&v2], ["AWSCURRENT"]);
    assert_eq!(
        sm.get_secret_value()
            .secret_id("u")
            .version_stage("AWSPREVIOUS")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("one")
    );
    // A version id can't be reused by UpdateSecret.
    let e = sm
        .update_secret()
        .secret_id("u")
        .secret_string("three")
        .client_request_token(&v2)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "ResourceExistsException");

    // A customer managed key: new versions and the labelled ones are re-encrypted under it.
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    sm.update_secret()
        .secret_id("u")
        .kms_key_id(key.arn().unwrap())
        .send()
        .await
        .unwrap();
    let d = sm.describe_secret().secret_id("u").send().await.unwrap();
    assert_eq!(d.kms_key_id(), key.arn());
    let versions = sm
        .list_secret_version_ids()
        .secret_id("u")
        .send()
        .await
        .unwrap();
    for v in versions.versions() {
        assert_eq!(v.kms_key_ids(), [key.arn().unwrap()]);
    }
    assert_eq!(
        sm.get_secret_value()
            .secret_id("u")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("two")
    );
    // Disabling the key makes the value unreadable (KMS decrypts on every read).
    kms.disable_key().key_id(key.key_id()).send().await.unwrap();
    let e = sm
        .get_secret_value()
        .secret_id("u")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "DecryptionFailure");
    kms.enable_key().key_id(key.key_id()).send().await.unwrap();
    // Back to the default key with an empty KmsKeyId.
    sm.update_secret()
        .secret_id("u")
        .kms_key_id("")
        .send()
        .await
        .unwrap();
    let d = sm.describe_secret().secret_id("u").send().await.unwrap();
    assert!(d.kms_key_id().is_none());
}

#[tokio::test]
async fn tags_keep_their_order_and_limits() {
    let server = TestServer::start().await;
    let sm = server.secrets_manager();
    sm.create_secret().name("t").send().await.unwrap();
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    sm.tag_resource()
        .secret_id("t")
        .tags(tag("tag1", "value1"))
        .tags(tag("tag2", "value2"))
        .send()
        .await
        .unwrap();
    sm.untag_resource()
        .secret_id("t")
        .tag_keys("tag1")
        .send()
        .await
        .unwrap();
    let d = sm.describe_secret().secret_id("t").send().await.unwrap();
    let keys: Vec<&str> = d.tags().iter().filter_map(|t| t.key()).collect();
    assert_eq!(keys, ["tag2"]);
    sm.untag_resource()
        .secret_id("t")
        .tag_keys("tag2")
        .tag_keys("never-there")
        .send()
        .await
        .unwrap();
    let d = sm.describe_secret().secret_id("t").send().await.unwrap();
    assert!(
        d.tags.is_some() && d.tags().is_empty(),
        "AWS answers Tags: [] once tagged"
    );

    let e = sm
        .tag_resource()
        .secret_id("t")
        .tags(tag("aws:reserved", "x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "InvalidParameterException");
    let mut request = sm.tag_resource().secret_id("t");
    for i in 0..51 {
        request = request.tags(tag(&format!("k{i}"), "v"));
    }
    assert_eq!(
        err(request.send().await.unwrap_err()).0,
        "InvalidParameterException"
    );
    let e = sm
        .tag_resource()
        .secret_id("missing")
        .tags(tag("a", "b"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "ResourceNotFoundException");
}

#[tokio::test]
async fn deletion_window_restore_and_purge() {
    let server = TestServer::builder()
        .deletion_sweep_interval(Duration::from_millis(50))
        .start()
        .await;
    let sm = server.secrets_manager();
    let first = sm
        .create_secret()
        .name("d")
        .secret_string("x")
        .send()
        .await
        .unwrap();

    for (window, force) in [(Some(6), None), (Some(31), None), (Some(0), Some(true))] {
        let e = sm
            .delete_secret()
            .secret_id("d")
            .set_recovery_window_in_days(window)
            .set_force_delete_without_recovery(force)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            err(e),
            (
                "InvalidParameterException".into(),
                "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).".into()
            )
        );
    }
    let e = sm
        .delete_secret()
        .secret_id("d")
        .recovery_window_in_days(7)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "InvalidParameterException");

    let before = std::time::SystemTime::now();
    let deleted = sm.delete_secret().secret_id("d").send().await.unwrap();
    let when = std::time::SystemTime::try_from(*deleted.deletion_date().unwrap()).unwrap();
    let window = when.duration_since(before).unwrap().as_secs_f64();
    assert!(
        (window - 30.0 * 86_400.0).abs() < 5.0,
        "30 days by default: {window}"
    );

    // Marked for deletion: reads and changes refused, description allowed, name reserved.
    let e = sm
        .get_secret_value()
        .secret_id("d")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e), ("InvalidRequestException".into(), MARKED.into()));
    let e = sm
        .put_secret_value()
        .secret_id("d")
        .secret_string("y")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e), ("InvalidRequestException".into(), MARKED.into()));
    let d = sm.describe_secret().secret_id("d").send().await.unwrap();
    assert!(d.deleted_date().is_some());
    let e = sm
        .create_secret()
        .name("d")
        .secret_string("z")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err(e),
        (
            "InvalidRequestException".into(),
            "You can't create this secret because a secret with this name is already scheduled \
             for deletion."
                .into()
        )
    );
    let e = sm.delete_secret().secret_id("d").send().await.unwrap_err();
    assert_eq!(err(e).0, "InvalidRequestException");
    // Listing leaves it out unless asked.
    let listed = sm.list_secrets().send().await.unwrap();
    assert!(listed.secret_list().is_empty());
    let listed = sm
        .list_secrets()
        .include_planned_deletion(true)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.secret_list().len(), 1);
    assert!(listed.secret_list()[0].deleted_date().is_some());

    let restored = sm.restore_secret().secret_id("d").send().await.unwrap();
    assert_eq!(restored.arn(), first.arn());
    assert_eq!(
        sm.get_secret_value()
            .secret_id("d")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("x")
    );

    // Purged by the background task when the window ends.
    sm.delete_secret()
        .secret_id("d")
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    server.clock().advance(Duration::from_secs(6 * 86_400));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sm.describe_secret().secret_id("d").send().await.is_ok());
    server.clock().advance(Duration::from_secs(2 * 86_400));
    let mut gone = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if sm.describe_secret().secret_id("d").send().await.is_err() {
            gone = true;
            break;
        }
    }
    assert!(gone, "the sweeper purged the secret");
    // The name is free again, under a new ARN.
    let again = sm
        .create_secret()
        .name("d")
        .secret_string("n")
        .send()
        .await
        .unwrap();
    assert_ne!(again.arn(), first.arn());

    // Forced deletion is immediate, and succeeds for a secret that does not exist.
    sm.delete_secret()
        .secret_id("d")
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    assert!(sm.describe_secret().secret_id("d").send().await.is_err());
    let r = sm
        .delete_secret()
        .secret_id("never-existed")
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    assert_eq!(r.name(), Some("never-existed"));
    let e = sm
        .delete_secret()
        .secret_id("never-existed")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "ResourceNotFoundException");
}

#[tokio::test]
async fn list_secrets_filters_sort_and_pages() {
    let server = TestServer::start().await;
    let sm = server.secrets_manager();
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    for (name, description, tags) in [
        ("prod/db", "Database credentials", vec![tag("env", "prod")]),
        (
            "prod/api",
            "API key for Billing",
            vec![tag("env", "prod"), tag("team", "pay")],
        ),
        ("dev/db", "database for dev", vec![tag("env", "dev")]),
        ("other", "", vec![]),
    ] {
        let mut r = sm.create_secret().name(name).secret_string("v");
        if !description.is_empty() {
            r = r.description(description);
        }
        for t in tags {
            r = r.tags(t);
        }
        r.send().await.unwrap();
    }
    let names = |r: &aws_sdk_secretsmanager::operation::list_secrets::ListSecretsOutput| {
        r.secret_list()
            .iter()
            .map(|s| s.name().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let filter = |key: FilterNameStringType, values: &[&str]| {
        let mut f = Filter::builder().key(key);
        for v in values {
            f = f.values(*v);
        }
        f.build()
    };
    let list = |filters: Vec<Filter>| {
        let sm = sm.clone();
        async move {
            sm.list_secrets()
                .set_filters(Some(filters))
                .send()
                .await
                .unwrap()
        }
    };
    // Default order: creation date, oldest first.
    assert_eq!(
        names(&sm.list_secrets().send().await.unwrap()),
        ["prod/db", "prod/api", "dev/db", "other"]
    );
    // name: prefix, case-sensitive.
    assert_eq!(
        names(&list(vec![filter(FilterNameStringType::Name, &["prod/"])]).await),
        ["prod/db", "prod/api"]
    );
    assert!(names(&list(vec![filter(FilterNameStringType::Name, &["PROD"])]).await).is_empty());
    // description: prefix, not case-sensitive.
    assert_eq!(
        names(
            &list(vec![filter(
                FilterNameStringType::Description,
                &["database"]
            )])
            .await
        ),
        ["prod/db", "dev/db"]
    );
    // tag-key / tag-value, negation, and several filters (all must match).
    assert_eq!(
        names(&list(vec![filter(FilterNameStringType::TagKey, &["team"])]).await),
        ["prod/api"]
    );
    assert_eq!(
        names(
            &list(vec![
                filter(FilterNameStringType::TagValue, &["prod"]),
                filter(FilterNameStringType::Name, &["!prod/api"]),
            ])
            .await
        ),
        ["prod/db"]
    );
    // all: words, any attribute, not case-sensitive.
    assert_eq!(
        names(&list(vec![filter(FilterNameStringType::All, &["billing"])]).await),
        ["prod/api"]
    );
    assert_eq!(
        names(&list(vec![filter(FilterNameStringType::All, &["DevDb"])]).await),
        ["dev/db"]
    );
    assert!(
        names(&list(vec![filter(FilterNameStringType::OwningService, &["rds"])]).await).is_empty()
    );
    // Sort by name, descending.
    let r = sm
        .list_secrets()
        .sort_by(SortByType::Name)
        .sort_order(SortOrderType::Desc)
        .send()
        .await
        .unwrap();
    assert_eq!(names(&r), ["prod/db", "prod/api", "other", "dev/db"]);
    // Pages.
    let mut token = None;
    let mut all = Vec::new();
    loop {
        let r = sm
            .list_secrets()
            .max_results(3)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        all.extend(names(&r));
        token = r.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(all.len(), 4);
    let e = sm
        .list_secrets()
        .next_token("garbage")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "InvalidNextTokenException");
    // Other accounts and Regions see none of these.
    let elsewhere = server.secrets_manager_for("111122223333", "us-east-1");
    assert!(
        elsewhere
            .list_secrets()
            .send()
            .await
            .unwrap()
            .secret_list()
            .is_empty()
    );
    let elsewhere = server.secrets_manager_for("000000000000", "eu-west-1");
    assert!(
        elsewhere
            .list_secrets()
            .send()
            .await
            .unwrap()
            .secret_list()
            .is_empty()
    );
    assert!(
        elsewhere
            .get_secret_value()
            .secret_id("prod/db")
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn random_passwords() {
    let server = TestServer::start().await;
    let sm = server.secrets_manager();
    let p = sm.get_random_password().send().await.unwrap();
    let p = p.random_password().unwrap();
    assert_eq!(p.len(), 32);
    assert!(p.bytes().any(|b| b.is_ascii_lowercase()));
    assert!(p.bytes().any(|b| b.is_ascii_uppercase()));
    assert!(p.bytes().any(|b| b.is_ascii_digit()));
    assert!(p.bytes().any(|b| b.is_ascii_punctuation()));
    assert!(!p.contains(' '));

    let p = sm
        .get_random_password()
        .password_length(100)
        .exclude_punctuation(true)
        .exclude_uppercase(true)
        .exclude_characters("abc0")
        .include_space(true)
        .send()
        .await
        .unwrap();
    let p = p.random_password().unwrap();
    assert_eq!(p.len(), 100);
    assert!(p.bytes().all(
        |b| (b.is_ascii_lowercase() || b.is_ascii_digit() || b == b' ') && !b"abc0".contains(&b)
    ));

    let p = sm
        .get_random_password()
        .password_length(4)
        .send()
        .await
        .unwrap();
    assert_eq!(p.random_password().unwrap().len(), 4);
    let e = sm
        .get_random_password()
        .password_length(3)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err(e),
        (
            "InvalidParameterException".into(),
            "Password length is too short based on the required types.".into()
        )
    );
    let p = sm
        .get_random_password()
        .password_length(3)
        .require_each_included_type(false)
        .send()
        .await
        .unwrap();
    assert_eq!(p.random_password().unwrap().len(), 3);
    let e = sm
        .get_random_password()
        .password_length(4097)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "ValidationException");
    let e = sm
        .get_random_password()
        .exclude_lowercase(true)
        .exclude_uppercase(true)
        .exclude_numbers(true)
        .exclude_punctuation(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "InvalidParameterException");
    // Two draws differ.
    let a = sm.get_random_password().send().await.unwrap();
    let b = sm.get_random_password().send().await.unwrap();
    assert_ne!(a.random_password(), b.random_password());
}

#[tokio::test]
async fn secrets_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::builder().data_dir(dir.path()).start().await;
    let sm = server.secrets_manager();
    sm.create_secret()
        .name("persist")
        .secret_string("still here")
        .send()
        .await
        .unwrap();
    sm.put_secret_value()
        .secret_id("persist")
        .secret_string("v2")
        .version_stages("MINE")
        .send()
        .await
        .unwrap();
    server.stop().await;
    let server = TestServer::builder().data_dir(dir.path()).start().await;
    let sm = server.secrets_manager();
    let got = sm
        .get_secret_value()
        .secret_id("persist")
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_string(), Some("still here"));
    let got = sm
        .get_secret_value()
        .secret_id("persist")
        .version_stage("MINE")
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_string(), Some("v2"));
    server.stop().await;
}
