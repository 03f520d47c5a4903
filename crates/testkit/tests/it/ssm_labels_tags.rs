//! Parameter Store labels and tags through `aws-sdk-ssm`: LabelParameterVersion,
//! UnlabelParameterVersion, `name:label` selectors, AddTagsToResource,
//! RemoveTagsFromResource, ListTagsForResource.

use aws_sdk_ssm::types::{ParameterType, ResourceTypeForTagging, Tag};
use keyhold_testkit::TestServer;

async fn three_versions(ssm: &aws_sdk_ssm::Client, name: &str) {
    for v in ["one", "two", "three"] {
        ssm.put_parameter()
            .name(name)
            .value(v)
            .r#type(ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .unwrap();
    }
}

async fn labels_of(ssm: &aws_sdk_ssm::Client, name: &str) -> Vec<(i64, Vec<String>)> {
    let h = ssm.get_parameter_history().name(name).send().await.unwrap();
    h.parameters()
        .iter()
        .map(|p| (p.version(), p.labels().to_vec()))
        .collect()
}

#[tokio::test]
async fn labels_attach_move_and_select() {
    let server = TestServer::start().await;
    let ssm = server.ssm();
    three_versions(&ssm, "/l").await;

    // Without a version, the latest is labelled.
    let out = ssm
        .label_parameter_version()
        .name("/l")
        .labels("latest")
        .send()
        .await
        .unwrap();
    assert_eq!(out.parameter_version(), 3);
    assert!(out.invalid_labels().is_empty());

    let out = ssm
        .label_parameter_version()
        .name("/l")
        .parameter_version(1)
        .labels("prod")
        .labels("1bad")
        .labels("awsLabel")
        .labels("SSM-x")
        .labels("bad label")
        .send()
        .await
        .unwrap();
    assert_eq!(out.parameter_version(), 1);
    assert_eq!(
        out.invalid_labels(),
        ["1bad", "awsLabel", "SSM-x", "bad label"]
    );
    let got = ssm.get_parameter().name("/l:prod").send().await.unwrap();
    let p = got.parameter().unwrap();
    assert_eq!(
        (p.value(), p.version(), p.selector()),
        (Some("one"), 1, Some(":prod"))
    );

    // A label names one version: labelling version 2 moves it.
    ssm.label_parameter_version()
        .name("/l")
        .parameter_version(2)
        .labels("prod")
        .send()
        .await
        .unwrap();
    assert_eq!(
        labels_of(&ssm, "/l").await,
        [
            (1, vec![]),
            (2, vec!["prod".to_owned()]),
            (3, vec!["latest".to_owned()])
        ]
    );
    let got = ssm.get_parameter().name("/l:prod").send().await.unwrap();
    assert_eq!(got.parameter().unwrap().value(), Some("two"));
    let e = ssm
        .get_parameter()
        .name("/l:nolabel")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e).0,
        "ParameterVersionNotFound"
    );

    // Labels do not make versions.
    let p = ssm.get_parameter().name("/l").send().await.unwrap();
    assert_eq!(p.parameter().unwrap().version(), 3);
}

#[tokio::test]
async fn label_limits_and_errors() {
    let server = TestServer::start().await;
    let ssm = server.ssm();
    three_versions(&ssm, "/l").await;
    let ten: Vec<String> = (0..10).map(|i| format!("label{i}")).collect();
    ssm.label_parameter_version()
        .name("/l")
        .set_labels(Some(ten))
        .send()
        .await
        .unwrap();
    let e = ssm
        .label_parameter_version()
        .name("/l")
        .labels("eleventh")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e).0,
        "ParameterVersionLabelLimitExceeded"
    );
    // Eleven in one request is the model's limit.
    let eleven: Vec<String> = (0..11).map(|i| format!("x{i}")).collect();
    let e = ssm
        .label_parameter_version()
        .name("/l")
        .set_labels(Some(eleven))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e).0,
        "ValidationException"
    );
    let e = ssm
        .label_parameter_version()
        .name("/l")
        .labels("x".repeat(101))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e).0,
        "ValidationException"
    );
    let e = ssm
        .label_parameter_version()
        .name("/l")
        .parameter_version(9)
        .labels("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "ParameterVersionNotFound".into(),
            "Systems Manager could not find version 9 of /l. Verify the version and try again."
                .into()
        )
    );
    let e = ssm
        .label_parameter_version()
        .name("/nope")
        .labels("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(keyhold_testkit::code_and_message(&e).0, "ParameterNotFound");
}

#[tokio::test]
async fn unlabel_reports_removed_and_invalid() {
    let server = TestServer::start().await;
    let ssm = server.ssm();
    three_versions(&ssm, "/u").await;
    ssm.label_parameter_version()
        .name("/u")
        .parameter_version(2)
        .labels("a")
        .labels("b")
        .send()
        .await
        .unwrap();
    let out = ssm
        .unlabel_parameter_version()
        .name("/u")
        .parameter_version(2)
        .labels("a")
        .labels("zzz")
        .send()
        .await
        .unwrap();
    assert_eq!(out.removed_labels(), ["a"]);
    assert_eq!(out.invalid_labels(), ["zzz"]);
    assert_eq!(labels_of(&ssm, "/u").await[1], (2, vec!["b".to_owned()]));
    let e = ssm
        .unlabel_parameter_version()
        .name("/u")
        .parameter_version(7)
        .labels("b")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e).0,
        "ParameterVersionNotFound"
    );
    let e = ssm
        .unlabel_parameter_version()
        .name("/nope")
        .parameter_version(1)
        .labels("b")
        .send()
        .await
        .unwrap_err();
    assert_eq!(keyhold_testkit::code_and_message(&e).0, "ParameterNotFound");
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build().unwrap()
}

async fn tags_of(ssm: &aws_sdk_ssm::Client, id: &str) -> Vec<(String, String)> {
    let out = ssm
        .list_tags_for_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id(id)
        .send()
        .await
        .unwrap();
    out.tag_list()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect()
}

#[tokio::test]
async fn tags_add_remove_list() {
    let server = TestServer::start().await;
    let ssm = server.ssm();
    ssm.put_parameter()
        .name("/t")
        .value("v")
        .r#type(ParameterType::String)
        .tags(tag("env", "dev"))
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of(&ssm, "/t").await, [("env".into(), "dev".into())]);
    ssm.add_tags_to_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id("/t")
        .tags(tag("team", "core"))
        .tags(tag("env", "prod"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags_of(&ssm, "arn:aws:ssm:us-east-1:000000000000:parameter/t").await,
        [
            ("env".into(), "prod".into()),
            ("team".into(), "core".into())
        ]
    );
    ssm.remove_tags_from_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id("/t")
        .tag_keys("env")
        .tag_keys("absent")
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of(&ssm, "/t").await, [("team".into(), "core".into())]);
    // Overwriting keeps the tags.
    ssm.put_parameter()
        .name("/t")
        .value("v2")
        .overwrite(true)
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of(&ssm, "/t").await.len(), 1);

    let fifty: Vec<Tag> = (0..50).map(|i| tag(&format!("k{i}"), "v")).collect();
    let e = ssm
        .add_tags_to_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id("/t")
        .set_tags(Some(fifty))
        .send()
        .await
        .unwrap_err();
    assert_eq!(keyhold_testkit::code_and_message(&e).0, "TooManyTagsError");

    let e = ssm
        .list_tags_for_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id("/missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(keyhold_testkit::code_and_message(&e).0, "InvalidResourceId");
    let e = ssm
        .add_tags_to_resource()
        .resource_type(ResourceTypeForTagging::Document)
        .resource_id("/t")
        .tags(tag("a", "b"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(keyhold_testkit::code_and_message(&e).0, "InvalidResourceId");
    let r = server
        .raw_json(
            "AmazonSSM.ListTagsForResource",
            r#"{"ResourceType":"Bucket","ResourceId":"/t"}"#,
        )
        .await;
    assert_eq!(r.json()["__type"], "ValidationException");

    // Deleting a parameter deletes its tags.
    ssm.delete_parameter().name("/t").send().await.unwrap();
    ssm.put_parameter()
        .name("/t")
        .value("v")
        .r#type(ParameterType::String)
        .send()
        .await
        .unwrap();
    assert!(tags_of(&ssm, "/t").await.is_empty());
}
