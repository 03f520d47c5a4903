//! Wire robustness through a real server: awsQuery errors that quote characters XML cannot
//! carry, JSON 1.1 type mismatches, and headers a signature must cover.

use keyhold_proto::{iam, sts};
use keyhold_testkit::TestServer;
use keyhold_testkit::raw::{self, RawResponse};

const KEY_ID: &str = "AKIAWIREFIDELITY0001";
const SECRET: &str = "wire/fidelity/secret/key/0000000000000000";
const ACCOUNT: &str = "111122223333";

/// Characters XML 1.0 cannot carry, even as character references.
const FORBIDDEN: &[char] = &['\u{0}', '\u{1}', '\u{1f}', '\u{fffe}', '\u{ffff}'];

/// Percent-encodes every byte but the unreserved ones.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The `<Code>` and `<Message>` of a body that must parse as XML 1.0.
fn xml_error(r: &RawResponse, context: &str) -> (String, Option<String>) {
    let text = std::str::from_utf8(&r.body)
        .unwrap_or_else(|e| panic!("{context}: body is not UTF-8 ({e})"));
    let doc = roxmltree::Document::parse(text)
        .unwrap_or_else(|e| panic!("{context}: not well-formed XML ({e}): {text:?}"));
    let find = |tag: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name(tag))
            .and_then(|n| n.text())
            .map(str::to_owned)
    };
    let code = find("Code").unwrap_or_default();
    (code, find("Message"))
}

async fn query(server: &TestServer, body: &str) -> RawResponse {
    raw::post(
        server.addr(),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    )
    .await
}

#[tokio::test]
async fn create_user_with_a_nul_in_its_name_is_a_parseable_validation_error() {
    let server = TestServer::start().await;
    let r = query(
        &server,
        "Action=CreateUser&Version=2010-05-08&UserName=a%00b",
    )
    .await;
    assert_eq!(r.status, 400);
    let (code, message) = xml_error(&r, "CreateUser");
    assert_eq!(code, "ValidationError");
    assert_eq!(
        message.as_deref(),
        Some(
            "1 validation error detected: Value 'a\u{fffd}b' at 'userName' failed to satisfy \
             constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+"
        )
    );
}

/// Every IAM and STS action, its string parameters carrying each character XML forbids:
/// every answer is well-formed XML, and every error carries a code a client can act on.
#[tokio::test]
async fn every_iam_and_sts_action_answers_well_formed_xml_to_forbidden_characters() {
    let server = TestServer::start().await;
    let params = [
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
        "NewPath",
        "ExternalId",
        "SourceIdentity",
        "Status",
        "VersionId",
        "InstanceProfileName",
        "PermissionsBoundary",
        "Tags.member.1.Key",
        "Tags.member.1.Value",
        "TagKeys.member.1",
        "PolicyArns.member.1.arn",
    ];
    let actions = iam::IamOperation::ALL
        .iter()
        .map(|op| (op.name(), iam::API_VERSION))
        .chain(
            sts::StsOperation::ALL
                .iter()
                .map(|op| (op.name(), sts::API_VERSION)),
        );
    let mut validation_errors = 0;
    for (action, version) in actions {
        for c in FORBIDDEN {
            let value = encode(&format!("a{c}b"));
            let mut body = format!("Action={action}&Version={version}");
            for p in params {
                body.push_str(&format!("&{p}={value}"));
            }
            let r = query(&server, &body).await;
            let context = format!("{action} with {c:?}");
            let (code, message) = xml_error(&r, &context);
            if r.status >= 400 {
                assert!(!code.is_empty(), "{context}: no code");
                assert_ne!(code, "InternalFailure", "{context}: {message:?}");
            }
            let message = message.unwrap_or_default();
            if code == "ValidationError" && message.contains("a\u{fffd}b") {
                // The value is quoted, its forbidden character replaced.
                validation_errors += 1;
            }
        }
    }
    assert!(
        validation_errors > 100,
        "most actions quote the refused value: {validation_errors}"
    );
}

// ---------------------------------------------------------------------------------------
// JSON 1.1 type mismatches
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_structure_sent_as_an_array_is_a_serialization_exception() {
    let server = TestServer::start().await;
    let key = server.kms().create_key().send().await.unwrap();
    let key_id = key.key_metadata().unwrap().key_id().to_owned();
    let body = serde_json::json!({
        "KeyId": key_id,
        "GranteePrincipal": "arn:aws:iam::000000000000:root",
        "Operations": ["Encrypt"],
        "Constraints": [],
    });
    let r = server
        .raw_json("TrentService.CreateGrant", &body.to_string())
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        serde_json::json!({"__type": "SerializationException"})
    );

    // The same request with an object is a grant.
    let mut body = body;
    body["Constraints"] = serde_json::json!({});
    let r = server
        .raw_json("TrentService.CreateGrant", &body.to_string())
        .await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert!(r.json()["GrantId"].is_string());
}

#[tokio::test]
async fn json_type_mismatches_over_http() {
    let server = TestServer::start().await;
    let cases = [
        ("TrentService.GenerateRandom", r#"{"NumberOfBytes": "32"}"#),
        (
            "TrentService.CreateKey",
            r#"{"BypassPolicyLockoutSafetyCheck": "false"}"#,
        ),
        ("TrentService.CreateKey", r#"{"Tags": {"TagKey": "a"}}"#),
        ("TrentService.DescribeKey", r#"{"KeyId": 1}"#),
        (
            "secretsmanager.CreateSecret",
            r#"{"Name": "n", "Tags": [["a", "b"]]}"#,
        ),
        ("AmazonSSM.GetParameters", r#"{"Names": "a"}"#),
        (
            "AmazonSSM.PutParameter",
            r#"{"Name": "n", "Value": "v", "Overwrite": "yes"}"#,
        ),
    ];
    for (target, body) in cases {
        let r = server.raw_json(target, body).await;
        assert_eq!(r.status, 400, "{target} {body}");
        assert_eq!(
            r.json(),
            serde_json::json!({"__type": "SerializationException"}),
            "{target} {body}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Headers a signature must cover
// ---------------------------------------------------------------------------------------

async fn strict() -> TestServer {
    TestServer::builder()
        .strict(&[(KEY_ID, SECRET, ACCOUNT)])
        .start()
        .await
}

/// The headers of `POST /` to `addr` signed over `signed` (plus `host` and `x-amz-date`),
/// then `unsigned` appended.
fn sign_then_add(
    addr: std::net::SocketAddr,
    service: &str,
    signed: &[(&str, &str)],
    unsigned: &[(&str, &str)],
    body: &[u8],
) -> Vec<(String, String)> {
    let creds = keyhold_testkit::Creds::new(KEY_ID, SECRET);
    let mut headers = raw::signed_headers(addr, &creds, service, signed, body);
    headers.extend(
        unsigned
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    headers
}

async fn send(
    addr: std::net::SocketAddr,
    headers: &[(String, String)],
    body: &[u8],
) -> RawResponse {
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    raw::post(addr, &refs, body).await
}

const TARGET: (&str, &str) = ("X-Amz-Target", "TrentService.ListKeys");
const JSON: (&str, &str) = ("Content-Type", "application/x-amz-json-1.1");

fn assert_not_signed(r: &RawResponse, headers: &str) {
    assert_eq!(r.status, 400, "{}", r.body_text());
    assert_eq!(
        r.json(),
        serde_json::json!({
            "__type": "InvalidSignatureException",
            "message": format!(
                "There were headers present in the request which were not signed: {headers}"
            ),
        })
    );
}

#[tokio::test]
async fn a_fully_signed_raw_request_passes() {
    let server = strict().await;
    // Headers the SDKs leave unsigned stay allowed unsigned.
    let unsigned = [
        ("User-Agent", "raw-test"),
        (
            "X-Amzn-Trace-Id",
            "Root=1-00000000-000000000000000000000000",
        ),
    ];
    let headers = sign_then_add(server.addr(), "kms", &[TARGET, JSON], &unsigned, b"{}");
    let r = send(server.addr(), &headers, b"{}").await;
    assert_eq!(r.status, 200, "{}", r.body_text());
}

#[tokio::test]
async fn an_unsigned_target_is_refused() {
    let server = strict().await;
    let headers = sign_then_add(server.addr(), "kms", &[JSON], &[TARGET], b"{}");
    let r = send(server.addr(), &headers, b"{}").await;
    assert_not_signed(&r, "x-amz-target");
}

#[tokio::test]
async fn an_unsigned_content_type_is_refused() {
    let server = strict().await;
    let headers = sign_then_add(server.addr(), "kms", &[TARGET], &[JSON], b"{}");
    let r = send(server.addr(), &headers, b"{}").await;
    assert_not_signed(&r, "content-type");
}

#[tokio::test]
async fn an_unsigned_extra_amz_header_is_refused() {
    let server = strict().await;
    let headers = sign_then_add(
        server.addr(),
        "kms",
        &[TARGET, JSON],
        &[("X-Amz-Foo", "bar"), ("X-Amz-Bar", "baz")],
        b"{}",
    );
    let r = send(server.addr(), &headers, b"{}").await;
    assert_not_signed(&r, "x-amz-bar, x-amz-foo");
}

#[tokio::test]
async fn an_unsigned_header_on_a_query_request_is_refused_as_xml() {
    let server = strict().await;
    let body = b"Action=GetCallerIdentity&Version=2011-06-15";
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let headers = sign_then_add(server.addr(), "sts", &[form], &[], body);
    let r = send(server.addr(), &headers, body).await;
    assert_eq!(r.status, 200, "{}", r.body_text());

    let headers = sign_then_add(server.addr(), "sts", &[], &[form], body);
    let r = send(server.addr(), &headers, body).await;
    assert_eq!(r.status, 403, "{}", r.body_text());
    let (code, message) = xml_error(&r, "GetCallerIdentity");
    assert_eq!(code, "SignatureDoesNotMatch");
    assert_eq!(
        message.as_deref(),
        Some("There were headers present in the request which were not signed: content-type")
    );
}

/// The real SDKs sign every header this check covers.
#[tokio::test]
async fn the_sdks_sign_what_must_be_signed() {
    let server = strict().await;
    let kms = server.kms_with(KEY_ID, SECRET, "us-east-1");
    kms.list_keys().send().await.unwrap();
    let key = kms.create_key().send().await.unwrap();
    let key_id = key.key_metadata().unwrap().key_id();
    kms.encrypt()
        .key_id(key_id)
        .plaintext(aws_sdk_kms::primitives::Blob::new(b"hi".to_vec()))
        .send()
        .await
        .unwrap();
    let clients = server.clients(&keyhold_testkit::Creds::new(KEY_ID, SECRET));
    clients.sts.get_caller_identity().send().await.unwrap();
    clients.iam.list_users().send().await.unwrap();
    clients.ssm.describe_parameters().send().await.unwrap();
    clients.secrets_manager.list_secrets().send().await.unwrap();
}
