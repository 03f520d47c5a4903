//! Versions and staging labels through `aws-sdk-secretsmanager`: PutSecretValue and its
//! idempotency token, label moves, UpdateSecretVersionStage, the version/stage selectors,
//! ListSecretVersionIds, retention (100 versions, none younger than 24 hours pruned), the
//! 20-label quota, and BatchGetSecretValue.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
use keyhold_testkit::TestServer;

fn err<E: ProvideErrorMetadata, R>(
    e: aws_sdk_secretsmanager::error::SdkError<E, R>,
) -> (String, String) {
    (
        e.code().unwrap_or_default().to_owned(),
        e.message().unwrap_or_default().to_owned(),
    )
}

/// Version id → labels, deprecated versions included.
async fn stages(sm: &aws_sdk_secretsmanager::Client, id: &str) -> HashMap<String, Vec<String>> {
    sm.list_secret_version_ids()
        .secret_id(id)
        .include_deprecated(true)
        .send()
        .await
        .unwrap()
        .versions()
        .iter()
        .map(|v| {
            (
                v.version_id().unwrap().to_owned(),
                v.version_stages().to_vec(),
            )
        })
        .collect()
}

const T1: &str = "aaaaaaaa-0000-0000-0000-000000000001";
const T2: &str = "aaaaaaaa-0000-0000-0000-000000000002";
const T3: &str = "aaaaaaaa-0000-0000-0000-000000000003";

#[tokio::test]
async fn put_secret_value_tokens_are_idempotent() {
    let server = TestServer::start().await;
    let sm = server.secrets_manager();
    sm.create_secret()
        .name("p")
        .secret_string("v1")
        .client_request_token(T1)
        .send()
        .await
        .unwrap();
    // Retrying CreateSecret with the same token and value answers as the first call did.
    let again = sm
        .create_secret()
        .name("p")
        .secret_string("v1")
        .client_request_token(T1)
        .send()
        .await
        .unwrap();
    assert_eq!(again.version_id(), Some(T1));

    let put = sm
        .put_secret_value()
        .secret_id("p")
        .secret_string("v2")
        .client_request_token(T2)
        .send()
        .await
        .unwrap();
    assert_eq!(put.version_id(), Some(T2));
    assert_eq!(put.version_stages(), ["AWSCURRENT"]);
    // Same token, same value: the same version, nothing changes.
    let retry = sm
        .put_secret_value()
        .secret_id("p")
        .secret_string("v2")
        .client_request_token(T2)
        .send()
        .await
        .unwrap();
    assert_eq!(retry.version_id(), Some(T2));
    assert_eq!(stages(&sm, "p").await.len(), 2);
    // Same token, another value: refused.
    let e = sm
        .put_secret_value()
        .secret_id("p")
        .secret_string("other")
        .client_request_token(T2)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "ResourceExistsException");
    // Neither value, or both.
    let e = sm
        .put_secret_value()
        .secret_id("p")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "InvalidRequestException");
    let s = stages(&sm, "p").await;
    assert_eq!(s[T1], ["AWSPREVIOUS"]);
    assert_eq!(s[T2], ["AWSCURRENT"]);
    let e = sm
        .put_secret_value()
        .secret_id("nope")
        .secret_string("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "ResourceNotFoundException");
}

#[tokio::test]
async fn custom_labels_move_and_deprecated_versions_hide() {
    let server = TestServer::start().await;
    let sm = server.secrets_manager();
    sm.create_secret()
        .name("l")
        .secret_string("s0")
        .client_request_token(T1)
        .send()
        .await
        .unwrap();
    let put = sm
        .put_secret_value()
        .secret_id("l")
        .secret_string("s1")
        .client_request_token(T2)
        .version_stages("one")
        .version_stages("two")
        .version_stages("three")
        .send()
        .await
        .unwrap();
    assert_eq!(put.version_stages(), ["one", "three", "two"]);
    // Labels named again move to the new version; the rest stay.
    sm.put_secret_value()
        .secret_id("l")
        .secret_string("s2")
        .client_request_token(T3)
        .version_stages("one")
        .version_stages("two")
        .version_stages("four")
        .send()
        .await
        .unwrap();
    let s = stages(&sm, "l").await;
    assert_eq!(s[T1], ["AWSCURRENT"]);
    assert_eq!(s[T2], ["three"]);
    assert_eq!(s[T3], ["four", "one", "two"]);
    // AWSCURRENT did not move: reads still see the first value.
    let got = sm.get_secret_value().secret_id("l").send().await.unwrap();
    assert_eq!(got.secret_string(), Some("s0"));

    // Removing the last label deprecates a version: gone from the default listing and from
    // VersionIdsToStages, still there with IncludeDeprecated (without VersionStages).
    sm.update_secret_version_stage()
        .secret_id("l")
        .version_stage("three")
        .remove_from_version_id(T2)
        .send()
        .await
        .unwrap();
    let listed = sm
        .list_secret_version_ids()
        .secret_id("l")
        .send()
        .await
        .unwrap();
    let ids: Vec<&str> = listed
        .versions()
        .iter()
        .filter_map(|v| v.version_id())
        .collect();
    assert_eq!(ids, [T1, T3]);
    let all = sm
        .list_secret_version_ids()
        .secret_id("l")
        .include_deprecated(true)
        .send()
        .await
        .unwrap();
    let deprecated = all
        .versions()
        .iter()
        .find(|v| v.version_id() == Some(T2))
        .unwrap();
    assert!(deprecated.version_stages.is_none());
    assert_eq!(deprecated.kms_key_ids(), ["DefaultEncryptionKey"]);
    let d = sm.describe_secret().secret_id("l").send().await.unwrap();
    assert!(!d.version_ids_to_stages().unwrap().contains_key(T2));
    // A deprecated version is still readable by id.
    let got = sm
        .get_secret_value()
        .secret_id("l")
        .version_id(T2)
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_string(), Some("s1"));
    assert!(got.version_stages().is_empty());
}

#[tokio::test]
async fn update_secret_version_stage_rules() {
    let server = TestServer::start().await;
    let sm = server.secrets_manager();
    sm.create_secret()
        .name("r")
        .secret_string("S1")
        .client_request_token(T1)
        .send()
        .await
        .unwrap();
    sm.put_secret_value()
        .secret_id("r")
        .secret_string("S2")
        .client_request_token(T2)
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    // Moving AWSCURRENT needs RemoveFromVersionId naming the version that holds it.
    let e = sm
        .update_secret_version_stage()
        .secret_id("r")
        .version_stage("AWSCURRENT")
        .move_to_version_id(T2)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err(e),
        (
            "InvalidParameterException".into(),
            format!(
                "The parameter RemoveFromVersionId can't be empty. Staging label AWSCURRENT is \
                 currently attached to version {T1}, so you must explicitly reference that \
                 version in RemoveFromVersionId."
            )
        )
    );
    let e = sm
        .update_secret_version_stage()
        .secret_id("r")
        .version_stage("AWSCURRENT")
        .remove_from_version_id(T2)
        .move_to_version_id(T2)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "InvalidParameterException");
    let e = sm
        .update_secret_version_stage()
        .secret_id("r")
        .version_stage("AWSCURRENT")
        .remove_from_version_id(T1)
        .move_to_version_id("bbbbbbbb-0000-0000-0000-000000000009")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "InvalidParameterException");
    let e = sm
        .update_secret_version_stage()
        .secret_id("r")
        .version_stage("AWSCURRENT")
        .remove_from_version_id(T1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err(e).0,
        "InvalidParameterException",
        "AWSCURRENT needs a destination"
    );
    let r = sm
        .update_secret_version_stage()
        .secret_id("r")
        .version_stage("AWSCURRENT")
        .remove_from_version_id(T1)
        .move_to_version_id(T2)
        .send()
        .await
        .unwrap();
    assert!(r.arn().is_some() && r.name() == Some("r"));
    let s = stages(&sm, "r").await;
    assert_eq!(s[T1], ["AWSPREVIOUS"]);
    assert_eq!(s[T2], ["AWSCURRENT", "AWSPENDING"]);
    assert_eq!(
        sm.get_secret_value()
            .secret_id("r")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("S2")
    );
    // 20 labels across all versions at most.
    let mut request = sm
        .put_secret_value()
        .secret_id("r")
        .secret_string("S3")
        .client_request_token(T3);
    for i in 0..18 {
        request = request.version_stages(format!("L{i}"));
    }
    let e = request.send().await.unwrap_err();
    assert_eq!(err(e).0, "LimitExceededException");
}

#[tokio::test]
async fn selectors_and_their_errors() {
    let server = TestServer::start().await;
    let sm = server.secrets_manager();
    sm.create_secret()
        .name("sel")
        .secret_string("one")
        .client_request_token(T1)
        .send()
        .await
        .unwrap();
    let e = sm
        .get_secret_value()
        .secret_id("sel")
        .version_stage("AWSPREVIOUS")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err(e),
        (
            "ResourceNotFoundException".into(),
            "Secrets Manager can't find the specified secret value for staging label: AWSPREVIOUS"
                .into()
        )
    );
    let missing = "cccccccc-0000-0000-0000-000000000000";
    let e = sm
        .get_secret_value()
        .secret_id("sel")
        .version_id(missing)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err(e),
        (
            "ResourceNotFoundException".into(),
            format!(
                "Secrets Manager can't find the specified secret value for VersionId: {missing}"
            )
        )
    );
    let e = sm
        .get_secret_value()
        .secret_id("sel")
        .version_id(T1)
        .version_stage("AWSPENDING")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err(e),
        (
            "InvalidRequestException".into(),
            "You provided a VersionStage that is not associated to the provided VersionId.".into()
        )
    );
    let ok = sm
        .get_secret_value()
        .secret_id("sel")
        .version_id(T1)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.secret_string(), Some("one"));
}

#[tokio::test]
async fn versions_are_pruned_as_aws_prunes_them() {
    let server = TestServer::start().await;
    let sm = server.secrets_manager();
    sm.create_secret()
        .name("many")
        .secret_string("v0")
        .send()
        .await
        .unwrap();
    for i in 1..100 {
        sm.put_secret_value()
            .secret_id("many")
            .secret_string(format!("v{i}"))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(stages(&sm, "many").await.len(), 100);
    // A 101st version would need an unlabelled version older than 24 hours to go.
    let e = sm
        .put_secret_value()
        .secret_id("many")
        .secret_string("v100")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "LimitExceededException");
    server.clock().advance(Duration::from_secs(25 * 3600));
    sm.put_secret_value()
        .secret_id("many")
        .secret_string("v100")
        .send()
        .await
        .unwrap();
    let all = sm
        .list_secret_version_ids()
        .secret_id("many")
        .include_deprecated(true)
        .max_results(60)
        .send()
        .await
        .unwrap();
    assert_eq!(all.versions().len(), 60);
    let rest = sm
        .list_secret_version_ids()
        .secret_id("many")
        .include_deprecated(true)
        .next_token(all.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        all.versions().len() + rest.versions().len(),
        100,
        "the oldest went"
    );
    assert!(rest.next_token().is_none());
    let current = sm
        .get_secret_value()
        .secret_id("many")
        .send()
        .await
        .unwrap();
    assert_eq!(current.secret_string(), Some("v100"));
    let previous = sm
        .get_secret_value()
        .secret_id("many")
        .version_stage("AWSPREVIOUS")
        .send()
        .await
        .unwrap();
    assert_eq!(previous.secret_string(), Some("v99"));
}

#[tokio::test]
async fn batch_get_secret_value() {
    let server = TestServer::start().await;
    let sm = server.secrets_manager();
    for (name, value) in [("b/one", "1"), ("b/two", "2"), ("c/three", "3")] {
        sm.create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .unwrap();
    }
    let r = sm
        .batch_get_secret_value()
        .secret_id_list("b/one")
        .secret_id_list("b/two")
        .secret_id_list("missing")
        .send()
        .await
        .unwrap();
    let values: Vec<(&str, &str)> = r
        .secret_values()
        .iter()
        .map(|v| (v.name().unwrap(), v.secret_string().unwrap()))
        .collect();
    assert_eq!(values, [("b/one", "1"), ("b/two", "2")]);
    assert_eq!(r.errors().len(), 1);
    assert_eq!(r.errors()[0].secret_id(), Some("missing"));
    assert_eq!(
        r.errors()[0].error_code(),
        Some("ResourceNotFoundException")
    );

    let filter = Filter::builder()
        .key(FilterNameStringType::Name)
        .values("b/")
        .build();
    let r = sm
        .batch_get_secret_value()
        .filters(filter.clone())
        .max_results(1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.secret_values().len(), 1);
    let next = sm
        .batch_get_secret_value()
        .filters(filter.clone())
        .max_results(1)
        .next_token(r.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(next.secret_values()[0].secret_string(), Some("2"));

    let e = sm
        .batch_get_secret_value()
        .secret_id_list("b/one")
        .filters(filter)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err(e),
        (
            "InvalidParameterException".into(),
            "Either 'SecretIdList' or 'Filters' must be provided, but not both.".into()
        )
    );
    let e = sm
        .batch_get_secret_value()
        .secret_id_list("b/one")
        .max_results(5)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "InvalidParameterException");
}
