//! Wire robustness through a real server: awsQuery errors that quote characters XML cannot
//! carry, JSON 1.1 type mismatches, and headers a signature must cover.

use keyhold_proto::{iam, sts};
use keyhold_testkit::TestServer;
use keyhold_testkit::raw::{self, RawResponse};

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
            if code == "ValidationError" {
                validation_errors += 1;
                let message = message.unwrap_or_default();
                assert!(
                    message.contains("a\u{fffd}b"),
                    "{context}: the value is quoted, its forbidden character replaced: {message}"
                );
            }
        }
    }
    assert!(
        validation_errors > 100,
        "most actions refuse the names: {validation_errors}"
    );
}
