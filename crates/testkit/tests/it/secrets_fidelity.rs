//! Secrets Manager answers that once differed from AWS's, each through the real SDK with
//! AWS's exact code and message: idempotent `UpdateSecret` tokens, `CreateSecret` with a
//! token in use, cross-account access to secrets under the AWS-managed key, word-based
//! list filters, `AWSPENDING` after a promotion, and stored resource policies that no
//! longer parse.

use std::collections::HashMap;

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, Tag};
use keyhold_testkit::TestServer;

fn err<E: ProvideErrorMetadata, R>(
    e: aws_sdk_secretsmanager::error::SdkError<E, R>,
) -> (String, String) {
    (
        e.code().unwrap_or_default().to_owned(),
        e.message().unwrap_or_default().to_owned(),
    )
}

const T1: &str = "bbbbbbbb-0000-0000-0000-000000000001";
const T2: &str = "bbbbbbbb-0000-0000-0000-000000000002";
const T3: &str = "bbbbbbbb-0000-0000-0000-000000000003";

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
            let mut labels = v.version_stages().to_vec();
            labels.sort();
            (v.version_id().unwrap().to_owned(), labels)
        })
        .collect()
}

#[tokio::test]
async fn update_secret_retried_with_the_same_token_is_idempotent() {
    let server = TestServer::start().await;
    let sm = server.secrets_manager();
    let arn = sm
        .create_secret()
        .name("u")
        .secret_string("v1")
        .client_request_token(T1)
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    let first = sm
        .update_secret()
        .secret_id("u")
        .secret_string("v2")
        .client_request_token(T2)
        .send()
        .await
        .unwrap();
    assert_eq!(first.version_id(), Some(T2));
    let before = stages(&sm, "u").await;

    // The retry answers as the first call did and changes nothing.
    let retry = sm
        .update_secret()
        .secret_id("u")
        .secret_string("v2")
        .client_request_token(T2)
        .send()
        .await
        .unwrap();
    assert_eq!(retry.version_id(), Some(T2));
    assert_eq!(retry.arn(), Some(arn.as_str()));
    assert_eq!(stages(&sm, "u").await, before);
    let got = sm.get_secret_value().secret_id("u").send().await.unwrap();
    assert_eq!(got.secret_string(), Some("v2"));
    assert_eq!(got.version_id(), Some(T2));

    // The same token with another value is refused, as PutSecretValue refuses it.
    let e = sm
        .update_secret()
        .secret_id("u")
        .secret_string("other")
        .client_request_token(T2)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err(e),
        (
            "ResourceExistsException".into(),
            format!(
                "You can't use ClientRequestToken {T2} because that value is already in use \
                 for a version of secret {arn}."
            )
        )
    );
    // An older version's token with its own value is that version again (nothing moves).
    let older = sm
        .update_secret()
        .secret_id("u")
        .secret_string("v1")
        .client_request_token(T1)
        .send()
        .await
        .unwrap();
    assert_eq!(older.version_id(), Some(T1));
    assert_eq!(stages(&sm, "u").await, before);
}

#[tokio::test]
async fn create_secret_with_a_token_in_use_names_the_token() {
    let server = TestServer::start().await;
    let sm = server.secrets_manager();
    let arn = sm
        .create_secret()
        .name("c")
        .secret_string("v1")
        .client_request_token(T1)
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    // The token names the existing version, the value differs.
    let e = sm
        .create_secret()
        .name("c")
        .secret_string("v2")
        .client_request_token(T1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err(e),
        (
            "ResourceExistsException".into(),
            format!(
                "You can't use ClientRequestToken {T1} because that value is already in use \
                 for a version of secret {arn}."
            )
        )
    );
    // A token that names no version: the name is taken.
    let e = sm
        .create_secret()
        .name("c")
        .secret_string("v1")
        .client_request_token(T3)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err(e),
        (
            "ResourceExistsException".into(),
            "The operation failed because the secret c already exists.".into()
        )
    );
}

#[tokio::test]
async fn put_secret_value_after_a_promotion_drops_awspending() {
    let server = TestServer::start().await;
    let sm = server.secrets_manager();
    sm.create_secret()
        .name("r")
        .secret_string("v1")
        .client_request_token(T1)
        .send()
        .await
        .unwrap();
    // The rotation dance by hand: a pending value, then AWSCURRENT moved onto it.
    sm.put_secret_value()
        .secret_id("r")
        .secret_string("v2")
        .client_request_token(T2)
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    sm.update_secret_version_stage()
        .secret_id("r")
        .version_stage("AWSCURRENT")
        .move_to_version_id(T2)
        .remove_from_version_id(T1)
        .send()
        .await
        .unwrap();
    let s = stages(&sm, "r").await;
    assert_eq!(s[T2], ["AWSCURRENT", "AWSPENDING"]);
    assert_eq!(s[T1], ["AWSPREVIOUS"]);

    sm.put_secret_value()
        .secret_id("r")
        .secret_string("v3")
        .client_request_token(T3)
        .send()
        .await
        .unwrap();
    let s = stages(&sm, "r").await;
    assert_eq!(s[T3], ["AWSCURRENT"]);
    assert_eq!(s[T2], ["AWSPREVIOUS"]);
    assert_eq!(s[T1], Vec::<String>::new());
    let e = sm
        .get_secret_value()
        .secret_id("r")
        .version_stage("AWSPENDING")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err(e),
        (
            "ResourceNotFoundException".into(),
            "Secrets Manager can't find the specified secret value for staging label: \
             AWSPENDING"
                .into()
        )
    );
}

#[tokio::test]
async fn update_secret_after_a_promotion_drops_awspending() {
    let server = TestServer::start().await;
    let sm = server.secrets_manager();
    sm.create_secret()
        .name("r2")
        .secret_string("v1")
        .client_request_token(T1)
        .send()
        .await
        .unwrap();
    sm.put_secret_value()
        .secret_id("r2")
        .secret_string("v2")
        .client_request_token(T2)
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    sm.update_secret_version_stage()
        .secret_id("r2")
        .version_stage("AWSCURRENT")
        .move_to_version_id(T2)
        .remove_from_version_id(T1)
        .send()
        .await
        .unwrap();
    sm.update_secret()
        .secret_id("r2")
        .secret_string("v3")
        .client_request_token(T3)
        .send()
        .await
        .unwrap();
    let s = stages(&sm, "r2").await;
    assert_eq!(s[T3], ["AWSCURRENT"]);
    assert_eq!(s[T2], ["AWSPREVIOUS"]);
}

const OTHER: &str = "111122223333";
const DEFAULT_KEY_ACROSS_ACCOUNTS: &str = "You can't access a secret from a different AWS account \
     if you encrypt the secret with the default KMS service key.";

fn allow_other(action: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{OTHER}:root"}},"Action":"{action}","Resource":"*"}}]}}"#
    )
}

#[tokio::test]
async fn other_accounts_cannot_use_a_secret_under_the_default_key() {
    let server = TestServer::start().await;
    let owner = server.secrets_manager();
    let stranger = server.secrets_manager_for(OTHER, "us-east-1");
    let arn = owner
        .create_secret()
        .name("dk")
        .secret_string("v1")
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();

    // Without a resource policy the authorization check answers first.
    let e = stranger
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "AccessDeniedException");
    let e = stranger
        .put_secret_value()
        .secret_id(&arn)
        .secret_string("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "AccessDeniedException");

    // Allowed by the resource policy: the default key is what refuses.
    owner
        .put_resource_policy()
        .secret_id("dk")
        .resource_policy(allow_other("secretsmanager:*"))
        .send()
        .await
        .unwrap();
    let expected = (
        "InvalidRequestException".to_owned(),
        DEFAULT_KEY_ACROSS_ACCOUNTS.to_owned(),
    );
    let e = stranger
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e), expected);
    let e = stranger
        .put_secret_value()
        .secret_id(&arn)
        .secret_string("from B")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e), expected);
    let e = stranger
        .update_secret()
        .secret_id(&arn)
        .secret_string("from B")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e), expected);
    // A batch read reports it as that secret's error.
    let batch = stranger
        .batch_get_secret_value()
        .secret_id_list(&arn)
        .send()
        .await
        .unwrap();
    assert!(batch.secret_values().is_empty());
    let entry = &batch.errors()[0];
    assert_eq!(entry.error_code(), Some("InvalidRequestException"));
    assert_eq!(entry.message(), Some(DEFAULT_KEY_ACROSS_ACCOUNTS));
    // Nothing was written; metadata stays readable; the owner is not affected.
    assert_eq!(stages(&owner, "dk").await.len(), 1);
    let d = stranger
        .describe_secret()
        .secret_id(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(d.name(), Some("dk"));
    let got = owner
        .get_secret_value()
        .secret_id("dk")
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_string(), Some("v1"));

    // Named explicitly by alias, the default key is the same refusal.
    owner
        .update_secret()
        .secret_id("dk")
        .kms_key_id("alias/aws/secretsmanager")
        .secret_string("v2")
        .send()
        .await
        .unwrap();
    let e = stranger
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e), expected);
}

/// The names `ListSecrets` answers with these filters, sorted.
async fn listed(
    sm: &aws_sdk_secretsmanager::Client,
    filters: &[(FilterNameStringType, &[&str])],
) -> Vec<String> {
    let mut request = sm.list_secrets();
    for (key, values) in filters {
        let mut filter = Filter::builder().key(key.clone());
        for v in *values {
            filter = filter.values(*v);
        }
        request = request.filters(filter.build());
    }
    let mut names: Vec<String> = request
        .send()
        .await
        .unwrap()
        .secret_list()
        .iter()
        .map(|s| s.name().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn list_filters_match_words_as_aws_does() {
    let server = TestServer::start().await;
    let sm = server.secrets_manager();
    for (name, description, tag) in [
        ("one", "a secret", ("Team", "Platform")),
        ("two", "an secret", ("team", "platform-db")),
        ("three", "asecret", ("Owner", "COMPANYthings")),
        (
            "credsDatabase892",
            "Description of my secret",
            ("env", "prod"),
        ),
    ] {
        sm.create_secret()
            .name(name)
            .description(description)
            .secret_string("x")
            .tags(Tag::builder().key(tag.0).value(tag.1).build())
            .send()
            .await
            .unwrap();
    }
    use FilterNameStringType as K;
    // description: words, each a prefix of a word, not case-sensitive.
    assert_eq!(
        listed(&sm, &[(K::Description, &["a secret"])]).await,
        ["one", "two"]
    );
    assert_eq!(
        listed(&sm, &[(K::Description, &["A SECRET"])]).await,
        ["one", "two"]
    );
    assert_eq!(
        listed(&sm, &[(K::Description, &["my description"])]).await,
        ["credsDatabase892"]
    );
    assert_eq!(listed(&sm, &[(K::Description, &["asec"])]).await, ["three"]);
    assert!(
        listed(&sm, &[(K::Description, &["ecret"])])
            .await
            .is_empty()
    );
    // Negated: everything the words do not match.
    assert_eq!(
        listed(&sm, &[(K::Description, &["!a secret"])]).await,
        ["credsDatabase892", "three"]
    );
    // Two filters of the same key: both must match.
    assert_eq!(
        listed(
            &sm,
            &[(K::Description, &["secret"]), (K::Description, &["an"])]
        )
        .await,
        ["two"]
    );
    // Values of one filter: any.
    assert_eq!(
        listed(&sm, &[(K::Description, &["an", "asecret"])]).await,
        ["three", "two"]
    );
    // name, tag-key, tag-value: a prefix of the whole field, case-sensitive.
    assert_eq!(
        listed(&sm, &[(K::Name, &["creds"])]).await,
        ["credsDatabase892"]
    );
    assert!(listed(&sm, &[(K::Name, &["Database"])]).await.is_empty());
    assert!(listed(&sm, &[(K::Name, &["Creds"])]).await.is_empty());
    assert_eq!(listed(&sm, &[(K::TagKey, &["Team"])]).await, ["one"]);
    assert_eq!(listed(&sm, &[(K::TagValue, &["platform"])]).await, ["two"]);
    assert!(listed(&sm, &[(K::TagValue, &["db"])]).await.is_empty());
    // all: words of any one field, not case-sensitive; names split at case and digits.
    assert_eq!(
        listed(&sm, &[(K::All, &["database"])]).await,
        ["credsDatabase892"]
    );
    assert_eq!(
        listed(&sm, &[(K::All, &["892"])]).await,
        ["credsDatabase892"]
    );
    assert_eq!(
        listed(&sm, &[(K::All, &["creds 89"])]).await,
        ["credsDatabase892"]
    );
    assert_eq!(listed(&sm, &[(K::All, &["compan"])]).await, ["three"]);
    assert_eq!(listed(&sm, &[(K::All, &["ythings"])]).await, ["three"]);
    assert!(listed(&sm, &[(K::All, &["things"])]).await.is_empty());
    assert_eq!(listed(&sm, &[(K::All, &["db"])]).await, ["two"]);
    assert_eq!(
        listed(&sm, &[(K::All, &["platform"])]).await,
        ["one", "two"]
    );
    // Words from two different fields do not combine.
    assert!(listed(&sm, &[(K::All, &["one secret"])]).await.is_empty());
    assert_eq!(
        listed(&sm, &[(K::All, &["!platform"])]).await,
        ["credsDatabase892", "three"]
    );

    // BatchGetSecretValue filters the same way.
    let batch = sm
        .batch_get_secret_value()
        .filters(
            Filter::builder()
                .key(K::Description)
                .values("a secret")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut names: Vec<&str> = batch
        .secret_values()
        .iter()
        .map(|v| v.name().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["one", "two"]);
}

/// Replaces the stored resource policy of every secret in a stopped server's database.
fn store_policy_text(dir: &std::path::Path, text: &str) {
    let conn = rusqlite::Connection::open(dir.join("keyhold.db")).unwrap();
    let rows: Vec<(String, String)> = conn
        .prepare("SELECT arn, meta FROM sm_secrets")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!rows.is_empty());
    for (arn, meta) in rows {
        let mut meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
        meta["policy"] = serde_json::Value::String(text.to_owned());
        conn.execute(
            "UPDATE sm_secrets SET meta = ?1 WHERE arn = ?2",
            rusqlite::params![meta.to_string(), arn],
        )
        .unwrap();
    }
}

#[tokio::test]
async fn a_stored_policy_that_does_not_parse_refuses_access() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::builder().data_dir(dir.path()).start().await;
    let owner = server.secrets_manager();
    let arn = owner
        .create_secret()
        .name("locked")
        .secret_string("v1")
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    // A policy that lets the other account in and denies the owner's reads.
    owner
        .put_resource_policy()
        .secret_id("locked")
        .resource_policy(format!(
            r#"{{"Version":"2012-10-17","Statement":[
              {{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{OTHER}:root"}},"Action":"secretsmanager:DescribeSecret","Resource":"*"}},
              {{"Effect":"Deny","Principal":"*","Action":"secretsmanager:GetSecretValue","Resource":"*"}}]}}"#
        ))
        .send()
        .await
        .unwrap();
    server.stop().await;

    // The stored copy is damaged: the explicit deny can no longer be read.
    let broken = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny""#;
    store_policy_text(dir.path(), broken);
    let server = TestServer::builder().data_dir(dir.path()).start().await;
    let owner = server.secrets_manager();
    let stranger = server.secrets_manager_for(OTHER, "us-east-1");
    let refused = |op: &str| {
        format!(
            "User: arn:aws:iam::000000000000:root is not authorized to perform: \
             secretsmanager:{op} on resource: {arn} with an explicit deny in a resource-based \
             policy"
        )
    };
    let e = owner
        .get_secret_value()
        .secret_id("locked")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err(e),
        ("AccessDeniedException".into(), refused("GetSecretValue"))
    );
    for e in [
        owner
            .describe_secret()
            .secret_id("locked")
            .send()
            .await
            .map(|_| ())
            .map_err(err),
        owner
            .put_secret_value()
            .secret_id("locked")
            .secret_string("v2")
            .send()
            .await
            .map(|_| ())
            .map_err(err),
        owner
            .delete_secret()
            .secret_id("locked")
            .send()
            .await
            .map(|_| ())
            .map_err(err),
    ] {
        assert_eq!(e.unwrap_err().0, "AccessDeniedException");
    }
    // The other account loses what the policy allowed, and cannot repair it.
    let e = stranger
        .describe_secret()
        .secret_id(&arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "AccessDeniedException");
    let e = stranger
        .delete_resource_policy()
        .secret_id(&arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "AccessDeniedException");

    // The owner can see the damaged policy and replace it.
    let got = owner
        .get_resource_policy()
        .secret_id("locked")
        .send()
        .await
        .unwrap();
    assert_eq!(got.resource_policy(), Some(broken));
    owner
        .put_resource_policy()
        .secret_id("locked")
        .resource_policy(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"secretsmanager:DeleteSecret","Resource":"*"}]}"#,
        )
        .send()
        .await
        .unwrap();
    let got = owner
        .get_secret_value()
        .secret_id("locked")
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_string(), Some("v1"));
    let e = owner
        .delete_secret()
        .secret_id("locked")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "AccessDeniedException");

    // Damaged again: deleting the policy is the other way out.
    server.stop().await;
    store_policy_text(dir.path(), "not a policy");
    let server = TestServer::builder().data_dir(dir.path()).start().await;
    let owner = server.secrets_manager();
    let e = owner
        .get_secret_value()
        .secret_id("locked")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "AccessDeniedException");
    owner
        .delete_resource_policy()
        .secret_id("locked")
        .send()
        .await
        .unwrap();
    let got = owner
        .get_secret_value()
        .secret_id("locked")
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_string(), Some("v1"));
}
