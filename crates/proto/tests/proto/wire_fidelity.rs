//! AWS's wire behaviour pinned through the generated decoders and validators: how a bad list
//! member is reported, how JSON type mismatches are refused, and that every error body is
//! well-formed XML (awsQuery) or JSON (JSON 1.1), whatever the request carried.

use keyhold_proto::runtime::error::ApiError;
use keyhold_proto::runtime::query::QueryParams;
use keyhold_proto::{cloudtrail, iam, kms, secretsmanager, ssm, sts};
use proptest::prelude::*;

use crate::Null;

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
// ---------------------------------------------------------------------------------------
// 3. JSON 1.1 type mismatches
// ---------------------------------------------------------------------------------------

/// Each body carries one value of the wrong JSON type: AWS refuses it as a whole with a
/// `SerializationException` (HTTP 400) before any validation.
#[test]
fn json_type_mismatches_are_serialization_exceptions() {
    use kms::KmsOperation as K;
    let grant = r#""KeyId": "k", "GranteePrincipal": "p", "Operations": ["Encrypt"]"#;
    let cases: Vec<(&str, K, String)> = vec![
        (
            "structure as array",
            K::CreateGrant,
            format!(r#"{{{grant}, "Constraints": []}}"#),
        ),
        (
            "structure as non-empty array",
            K::CreateGrant,
            format!(r#"{{{grant}, "Constraints": [{{}}]}}"#),
        ),
        (
            "structure as string",
            K::CreateGrant,
            format!(r#"{{{grant}, "Constraints": "x"}}"#),
        ),
        (
            "structure as number",
            K::CreateGrant,
            format!(r#"{{{grant}, "Constraints": 1}}"#),
        ),
        (
            "structure as boolean",
            K::CreateGrant,
            format!(r#"{{{grant}, "Constraints": true}}"#),
        ),
        (
            "list member structure as array",
            K::CreateKey,
            r#"{"Tags": [["k", "v"]]}"#.into(),
        ),
        (
            "list as object",
            K::CreateGrant,
            r#"{"KeyId": "k", "GranteePrincipal": "p", "Operations": {}}"#.into(),
        ),
        (
            "list as string",
            K::CreateGrant,
            r#"{"KeyId": "k", "GranteePrincipal": "p", "Operations": "Encrypt"}"#.into(),
        ),
        ("string as number", K::DescribeKey, r#"{"KeyId": 5}"#.into()),
        (
            "string as object",
            K::DescribeKey,
            r#"{"KeyId": {}}"#.into(),
        ),
        (
            "string as array",
            K::DescribeKey,
            r#"{"KeyId": ["k"]}"#.into(),
        ),
        ("enum as number", K::CreateKey, r#"{"KeySpec": 1}"#.into()),
        (
            "number as string",
            K::GenerateRandom,
            r#"{"NumberOfBytes": "5"}"#.into(),
        ),
        (
            "number as boolean",
            K::GenerateRandom,
            r#"{"NumberOfBytes": true}"#.into(),
        ),
        (
            "integer as fraction",
            K::GenerateRandom,
            r#"{"NumberOfBytes": 1.5}"#.into(),
        ),
        (
            "boolean as string",
            K::CreateKey,
            r#"{"BypassPolicyLockoutSafetyCheck": "true"}"#.into(),
        ),
        (
            "boolean as number",
            K::CreateKey,
            r#"{"BypassPolicyLockoutSafetyCheck": 1}"#.into(),
        ),
        (
            "blob not base64",
            K::Encrypt,
            r#"{"KeyId": "k", "Plaintext": "!!!"}"#.into(),
        ),
        (
            "blob as number",
            K::Encrypt,
            r#"{"KeyId": "k", "Plaintext": 5}"#.into(),
        ),
        (
            "map as list",
            K::Encrypt,
            r#"{"KeyId": "k", "Plaintext": "aGk=", "EncryptionContext": []}"#.into(),
        ),
        (
            "map value as number",
            K::Encrypt,
            r#"{"KeyId": "k", "Plaintext": "aGk=", "EncryptionContext": {"a": 1}}"#.into(),
        ),
        ("body as array", K::ListKeys, "[]".into()),
        ("body as string", K::ListKeys, r#""x""#.into()),
        ("not JSON", K::ListKeys, "{".into()),
    ];
    for (what, op, body) in cases {
        let e = kms_error(op, &body);
        assert_eq!(e.code(), "SerializationException", "{what}: {body}");
        assert_eq!(e.status(), 400, "{what}");
        assert_eq!(
            e.to_json(kms::MESSAGE_KEY),
            br#"{"__type":"SerializationException"}"#,
            "{what}"
        );
    }

    let e = block_on(cloudtrail::dispatch(
        &Null,
        &(),
        cloudtrail::CloudTrailOperation::LookupEvents,
        br#"{"StartTime": {}}"#,
    ))
    .unwrap_err();
    assert_eq!(e.code(), "SerializationException", "timestamp as object");
    let e = block_on(cloudtrail::dispatch(
        &Null,
        &(),
        cloudtrail::CloudTrailOperation::LookupEvents,
        br#"{"StartTime": true}"#,
    ))
    .unwrap_err();
    assert_eq!(e.code(), "SerializationException", "timestamp as boolean");
}

/// `null` is an absent member, as AWS reads it: a required one fails validation, an
/// optional one is just absent.
#[test]
fn json_null_is_an_absent_member() {
    let e = kms_error(kms::KmsOperation::DescribeKey, r#"{"KeyId": null}"#);
    assert_eq!(
        e.message().unwrap(),
        "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: \
         Member must not be null"
    );
    let e = kms_error(
        kms::KmsOperation::CreateGrant,
        r#"{"KeyId": "k", "GranteePrincipal": "p", "Operations": ["Encrypt"], "Constraints": null, "GrantTokens": null}"#,
    );
    assert_eq!(e.code(), "UnsupportedOperationException", "null passed");
    let e = kms_error(
        kms::KmsOperation::CreateGrant,
        r#"{"KeyId": "k", "GranteePrincipal": "p", "Operations": ["Encrypt"], "Constraints": {}}"#,
    );
    assert_eq!(
        e.code(),
        "UnsupportedOperationException",
        "an empty object is a structure"
    );
}

// ---------------------------------------------------------------------------------------
// 2. Every error body is well-formed
// ---------------------------------------------------------------------------------------

/// Characters XML 1.0 cannot carry, even as references.
const FORBIDDEN: &[char] = &[
    '\u{0}', '\u{1}', '\u{8}', '\u{b}', '\u{1f}', '\u{fffe}', '\u{ffff}',
];

fn assert_well_formed_xml(body: &str, context: &str) -> String {
    let doc = roxmltree::Document::parse(body)
        .unwrap_or_else(|e| panic!("{context}: not well-formed XML ({e}): {body:?}"));
    doc.descendants()
        .find(|n| n.has_tag_name("Code"))
        .and_then(|n| n.text())
        .unwrap_or_else(|| panic!("{context}: no <Code>: {body:?}"))
        .to_owned()
}

#[test]
fn query_errors_quoting_forbidden_characters_are_well_formed() {
    for c in FORBIDDEN {
        let body = format!("UserName=a{c}b");
        let q = QueryParams::parse(body.as_bytes());
        let e = block_on(iam::dispatch(
            &Null,
            &(),
            iam::IamOperation::CreateUser,
            &q,
            "r",
        ))
        .unwrap_err();
        let xml = e.to_xml(iam::XML_NAMESPACE.unwrap(), "r");
        assert_eq!(
            assert_well_formed_xml(&xml, &format!("{c:?}")),
            "ValidationError"
        );
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let message = doc
            .descendants()
            .find(|n| n.has_tag_name("Message"))
            .and_then(|n| n.text())
            .unwrap();
        assert_eq!(
            message,
            "1 validation error detected: Value 'a\u{fffd}b' at 'userName' failed to satisfy \
             constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+"
        );
    }
}

/// Query parameter names the IAM and STS models use, so arbitrary values reach validation
/// and the error messages that quote them.
const QUERY_NAMES: &[&str] = &[
    "UserName",
    "RoleName",
    "GroupName",
    "PolicyName",
    "PolicyArn",
    "RoleArn",
    "RoleSessionName",
    "AccessKeyId",
    "Path",
    "PathPrefix",
    "Marker",
    "PolicyDocument",
    "AssumeRolePolicyDocument",
    "Description",
    "SerialNumber",
    "TokenCode",
    "NewUserName",
    "ExternalId",
    "SourceIdentity",
    "Status",
    "VersionId",
    "Tags.member.1.Key",
    "Tags.member.1.Value",
    "TagKeys.member.1",
    "PolicyArns.member.1.arn",
    "MaxItems",
    "DurationSeconds",
];

fn hostile_text() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        3 => any::<char>(),
        2 => prop::sample::select(FORBIDDEN),
        1 => prop::sample::select(&['<', '&', '>', '"', '\'', '\r', ']', '\t', '\n'][..]),
    ];
    prop::collection::vec(ch, 0..24).prop_map(|cs| cs.into_iter().collect())
}

fn json_text_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        hostile_text().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::vec((prop::sample::select(JSON_NAMES), inner), 0..4).prop_map(
                |entries| {
                    serde_json::Value::Object(
                        entries
                            .into_iter()
                            .map(|(k, v)| (k.to_owned(), v))
                            .collect(),
                    )
                }
            ),
        ]
    })
}

const JSON_NAMES: &[&str] = &[
    "KeyId",
    "Plaintext",
    "EncryptionContext",
    "GrantTokens",
    "Tags",
    "TagKey",
    "TagValue",
    "Constraints",
    "Operations",
    "Name",
    "SecretId",
    "Labels",
    "Filters",
    "Key",
    "Values",
    "Value",
    "Description",
    "AliasName",
    "Policy",
];

fn check_json_error(e: &ApiError, key: &str, context: &str) {
    let body = e.to_json(key);
    let v: serde_json::Value = serde_json::from_slice(&body)
        .unwrap_or_else(|err| panic!("{context}: not JSON ({err}): {body:?}"));
    assert_eq!(v["__type"], e.code(), "{context}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Every awsQuery operation, fed arbitrary text (forbidden characters included) in the
    /// parameters the models name: each error body is well-formed XML with its `<Code>`.
    #[test]
    fn every_query_error_body_is_well_formed_xml(
        pairs in prop::collection::vec((prop::sample::select(QUERY_NAMES), hostile_text()), 1..6)
    ) {
        let mut body = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &pairs {
            body.append_pair(k, v);
        }
        let q = QueryParams::parse(body.finish().as_bytes());
        block_on(async {
            for op in sts::StsOperation::ALL {
                if let Err(e) = sts::dispatch(&Null, &(), *op, &q, "req").await {
                    let xml = e.to_xml(sts::XML_NAMESPACE.unwrap(), "req");
                    let code = assert_well_formed_xml(&xml, op.name());
                    assert_eq!(code, e.query_code());
                }
            }
            for op in iam::IamOperation::ALL {
                if let Err(e) = iam::dispatch(&Null, &(), *op, &q, "req").await {
                    let xml = e.to_xml(iam::XML_NAMESPACE.unwrap(), "req");
                    let code = assert_well_formed_xml(&xml, op.name());
                    assert_eq!(code, e.query_code());
                }
            }
        });
    }

    /// Every JSON 1.1 operation, fed arbitrary documents with arbitrary text: each error
    /// body is JSON whose `__type` is the error's code.
    #[test]
    fn every_json_error_body_is_json(
        entries in prop::collection::vec((prop::sample::select(JSON_NAMES), json_text_value()), 0..6)
    ) {
        let map: serde_json::Map<_, _> =
            entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let body = serde_json::to_vec(&map).unwrap();
        block_on(async {
            for op in kms::KmsOperation::ALL {
                if let Err(e) = kms::dispatch(&Null, &(), *op, &body).await {
                    check_json_error(&e, kms::MESSAGE_KEY, op.name());
                }
            }
            for op in secretsmanager::SecretsManagerOperation::ALL {
                if let Err(e) = secretsmanager::dispatch(&Null, &(), *op, &body).await {
                    check_json_error(&e, secretsmanager::MESSAGE_KEY, op.name());
                }
            }
            for op in ssm::SsmOperation::ALL {
                if let Err(e) = ssm::dispatch(&Null, &(), *op, &body).await {
                    check_json_error(&e, ssm::MESSAGE_KEY, op.name());
                }
            }
            for op in cloudtrail::CloudTrailOperation::ALL {
                if let Err(e) = cloudtrail::dispatch(&Null, &(), *op, &body).await {
                    check_json_error(&e, cloudtrail::MESSAGE_KEY, op.name());
                }
            }
        });
    }
}
