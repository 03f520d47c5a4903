//! AWS's wire behaviour pinned through the generated decoders and validators: how a bad list
//! member is reported, how JSON type mismatches are refused, and that every error body is
//! well-formed XML (awsQuery) or JSON (JSON 1.1), whatever the request carried.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use keyhold_proto::runtime::error::ApiError;
use keyhold_proto::{cloudtrail, iam, kms, secretsmanager, ssm, sts};

struct Null;
impl kms::KmsApi for Null {
    type Context = ();
}
impl secretsmanager::SecretsManagerApi for Null {
    type Context = ();
}
impl ssm::SsmApi for Null {
    type Context = ();
}
impl cloudtrail::CloudTrailApi for Null {
    type Context = ();
}
impl sts::StsApi for Null {
    type Context = ();
}
impl iam::IamApi for Null {
    type Context = ();
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::sync::OnceLock;
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    })
    .block_on(f)
}

fn kms_error(op: kms::KmsOperation, body: &str) -> ApiError {
    block_on(kms::dispatch(&Null, &(), op, body.as_bytes())).unwrap_err()
}

fn ssm_error(op: ssm::SsmOperation, body: &str) -> ApiError {
    block_on(ssm::dispatch(&Null, &(), op, body.as_bytes())).unwrap_err()
}

// ---------------------------------------------------------------------------------------
// 1. Constraints of list members are reported on the whole list
// ---------------------------------------------------------------------------------------

#[test]
fn a_bad_list_member_is_reported_on_the_whole_list() {
    let long = "x".repeat(101);
    let e = ssm_error(
        ssm::SsmOperation::LabelParameterVersion,
        &format!(r#"{{"Name": "/p", "Labels": ["ok", "{long}"]}}"#),
    );
    assert_eq!(e.code(), "ValidationException");
    assert_eq!(
        e.message().unwrap(),
        format!(
            "1 validation error detected: Value '[ok, {long}]' at 'labels' failed to satisfy \
             constraint: Member must satisfy constraint: [Member must have length less than or \
             equal to 100, Member must have length greater than or equal to 1]"
        )
    );
}

#[test]
fn several_bad_members_make_one_error_and_list_bounds_come_first() {
    let labels: Vec<String> = (0..11).map(|_| String::new()).collect();
    let body = serde_json::json!({"Name": "/p", "Labels": labels}).to_string();
    let e = ssm_error(ssm::SsmOperation::LabelParameterVersion, &body);
    assert_eq!(
        e.message().unwrap(),
        "2 validation errors detected: Value '[, , , , , , , , , , ]' at 'labels' failed to \
         satisfy constraint: Member must have length less than or equal to 10; Value '[, , , , \
         , , , , , , ]' at 'labels' failed to satisfy constraint: Member must satisfy \
         constraint: [Member must have length less than or equal to 100, Member must have \
         length greater than or equal to 1]"
    );
}

#[test]
fn a_bad_enum_member_is_reported_on_the_whole_list() {
    let e = kms_error(
        kms::KmsOperation::CreateGrant,
        r#"{"KeyId": "k", "GranteePrincipal": "p", "Operations": ["Encrypt", "Nope"]}"#,
    );
    assert_eq!(e.code(), "ValidationException");
    let set = kms::GrantOperation::VALUES.join(", ");
    assert_eq!(
        e.message().unwrap(),
        format!(
            "1 validation error detected: Value '[Encrypt, Nope]' at 'operations' failed to \
             satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value \
             set: [{set}]]"
        )
    );
}

#[test]
fn members_of_structures_in_lists_keep_their_indexed_path() {
    let e = kms_error(
        kms::KmsOperation::TagResource,
        r#"{"KeyId": "k", "Tags": [{"TagKey": "a", "TagValue": "b"}, {"TagKey": "", "TagValue": "c"}]}"#,
    );
    assert_eq!(
        e.message().unwrap(),
        "1 validation error detected: Value '' at 'tags.2.member.tagKey' failed to satisfy \
         constraint: Member must have length greater than or equal to 1"
    );
}

#[test]
fn good_list_members_pass() {
    let e = ssm_error(
        ssm::SsmOperation::LabelParameterVersion,
        r#"{"Name": "/p", "Labels": ["a", "b"]}"#,
    );
    assert_eq!(
        e.code(),
        "UnsupportedOperationException",
        "validation passed"
    );
}
