//! IAM roles and inline policies through the real SDK, and identity policies deciding what
//! users may do (IAM itself and KMS through a key policy that delegates to IAM).

use aws_sdk_iam::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;
use keyhold_testkit::TestServer;
use keyhold_testkit::identity::{allow, deny, put_user_policy, trust, url_decode, user_with_key};

const ACCOUNT: &str = "000000000000";

#[tokio::test]
async fn role_lifecycle() {
    let server = TestServer::start().await;
    let iam = server.iam();
    let document = trust(&format!("arn:aws:iam::{ACCOUNT}:root"));
    let role = iam
        .create_role()
        .role_name("deployer")
        .path("/ci/")
        .description("deploys things")
        .max_session_duration(7200)
        .assume_role_policy_document(&document)
        .send()
        .await
        .unwrap()
        .role
        .unwrap();
    assert_eq!(
        role.arn(),
        format!("arn:aws:iam::{ACCOUNT}:role/ci/deployer")
    );
    assert!(role.role_id().starts_with("AROA"));
    assert_eq!(role.max_session_duration(), Some(7200));
    // IAM returns policy documents URL-encoded.
    let encoded = role.assume_role_policy_document().unwrap();
    assert!(encoded.starts_with("%7B%22Version%22"));
    assert_eq!(url_decode(encoded), document);

    let got = iam
        .get_role()
        .role_name("DEPLOYER")
        .send()
        .await
        .unwrap()
        .role
        .unwrap();
    assert_eq!(got.role_id(), role.role_id());
    assert_eq!(got.description(), Some("deploys things"));

    let e = iam
        .create_role()
        .role_name("deployer")
        .assume_role_policy_document(&document)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_entity_already_exists_exception());
    assert_eq!(e.message(), Some("Role with name deployer already exists."));

    let updated = trust(&format!("arn:aws:iam::{ACCOUNT}:root")).replace("sts:AssumeRole", "sts:*");
    iam.update_assume_role_policy()
        .role_name("deployer")
        .policy_document(&updated)
        .send()
        .await
        .unwrap();
    let got = iam.get_role().role_name("deployer").send().await.unwrap();
    assert_eq!(
        url_decode(got.role().unwrap().assume_role_policy_document().unwrap()),
        updated
    );

    iam.create_role()
        .role_name("other")
        .assume_role_policy_document(&document)
        .send()
        .await
        .unwrap();
    let listed = iam.list_roles().send().await.unwrap();
    let names: Vec<&str> = listed.roles().iter().map(|r| r.role_name()).collect();
    assert_eq!(names, ["deployer", "other"]);
    let ci = iam.list_roles().path_prefix("/ci/").send().await.unwrap();
    assert_eq!(ci.roles().len(), 1);
    let paged = iam.list_roles().max_items(1).send().await.unwrap();
    assert!(paged.is_truncated());
    assert_eq!(paged.roles().len(), 1);

    iam.delete_role()
        .role_name("deployer")
        .send()
        .await
        .unwrap();
    let e = iam
        .get_role()
        .role_name("deployer")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_no_such_entity_exception());
    assert_eq!(
        e.message(),
        Some("The role with name deployer cannot be found.")
    );
}

#[tokio::test]
async fn trust_policies_are_validated() {
    let server = TestServer::start().await;
    let iam = server.iam();
    let create = |document: String| {
        iam.create_role()
            .role_name("r")
            .assume_role_policy_document(document)
            .send()
    };
    let e = create("{not json".into())
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_malformed_policy_document_exception());
    assert_eq!(e.message(), Some("This policy contains invalid Json"));

    let with_resource = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole","Resource":"*"}]}"#;
    let e = create(with_resource.into())
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_malformed_policy_document_exception());
    assert_eq!(e.message(), Some("Has prohibited field Resource"));

    let nobody = format!("arn:aws:iam::{ACCOUNT}:user/nobody");
    let e = create(trust(&nobody))
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_malformed_policy_document_exception());
    assert_eq!(
        e.message(),
        Some(format!("Invalid principal in policy: \"AWS\":\"{nobody}\"").as_str())
    );
    iam.create_user().user_name("nobody").send().await.unwrap();
    create(trust(&nobody)).await.unwrap();

    let e = iam
        .update_assume_role_policy()
        .role_name("missing")
        .policy_document(trust("*"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_no_such_entity_exception());

    let e = iam
        .create_role()
        .role_name("too-long")
        .max_session_duration(50_000)
        .assume_role_policy_document(trust("*"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationError"));
}

#[tokio::test]
async fn inline_policies_of_users_and_roles() {
    let server = TestServer::start().await;
    let iam = server.iam();
    iam.create_user().user_name("u").send().await.unwrap();
    iam.create_role()
        .role_name("r")
        .assume_role_policy_document(trust("*"))
        .send()
        .await
        .unwrap();
    let document = allow("kms:Decrypt", "*");

    put_user_policy(&iam, "u", "b-policy", &document).await;
    put_user_policy(&iam, "u", "a-policy", &document).await;
    let got = iam
        .get_user_policy()
        .user_name("u")
        .policy_name("a-policy")
        .send()
        .await
        .unwrap();
    assert_eq!(got.user_name(), "u");
    assert_eq!(got.policy_name(), "a-policy");
    assert_eq!(url_decode(got.policy_document()), document);
    let listed = iam
        .list_user_policies()
        .user_name("u")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.policy_names(), ["a-policy", "b-policy"]);
    let first = iam
        .list_user_policies()
        .user_name("u")
        .max_items(1)
        .send()
        .await
        .unwrap();
    assert!(first.is_truncated());
    let second = iam
        .list_user_policies()
        .user_name("u")
        .marker(first.marker().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(second.policy_names(), ["b-policy"]);

    iam.delete_user_policy()
        .user_name("u")
        .policy_name("a-policy")
        .send()
        .await
        .unwrap();
    let e = iam
        .get_user_policy()
        .user_name("u")
        .policy_name("a-policy")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_no_such_entity_exception());
    assert_eq!(
        e.message(),
        Some("The user policy with name a-policy cannot be found.")
    );

    iam.put_role_policy()
        .role_name("r")
        .policy_name("rp")
        .policy_document(&document)
        .send()
        .await
        .unwrap();
    let got = iam
        .get_role_policy()
        .role_name("r")
        .policy_name("rp")
        .send()
        .await
        .unwrap();
    assert_eq!(url_decode(got.policy_document()), document);
    assert_eq!(
        iam.list_role_policies()
            .role_name("r")
            .send()
            .await
            .unwrap()
            .policy_names(),
        ["rp"]
    );
    let e = iam
        .delete_role()
        .role_name("r")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_delete_conflict_exception());
    assert_eq!(
        e.message(),
        Some("Cannot delete entity, must delete policies first.")
    );
    let e = iam
        .delete_role_policy()
        .role_name("r")
        .policy_name("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(
        e.message(),
        Some("The role policy with name nope cannot be found.")
    );
    iam.delete_role_policy()
        .role_name("r")
        .policy_name("rp")
        .send()
        .await
        .unwrap();
    iam.delete_role().role_name("r").send().await.unwrap();

    // Identity policies may not name a principal, and must be JSON.
    let with_principal = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}]}"#;
    let e = iam
        .put_user_policy()
        .user_name("u")
        .policy_name("bad")
        .policy_document(with_principal)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_malformed_policy_document_exception());
    assert_eq!(
        e.message(),
        Some("Policy document should not specify a principal.")
    );
    let e = iam
        .put_role_policy()
        .role_name("missing")
        .policy_name("p")
        .policy_document(&document)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_no_such_entity_exception());

    // A user's inline policies share 2,048 characters.
    let big = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"kms:Decrypt","Resource":"arn:aws:kms:us-east-1:000000000000:key/{}"}}]}}"#,
        "a".repeat(2000)
    );
    let e = iam
        .put_user_policy()
        .user_name("u")
        .policy_name("big")
        .policy_document(big)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_limit_exceeded_exception());
    assert_eq!(
        e.message(),
        Some("Maximum policy size of 2048 bytes exceeded for user u")
    );
}

#[tokio::test]
async fn identity_policies_decide_iam_calls() {
    let server = TestServer::start().await;
    let root = server.iam();
    let creds = user_with_key(&root, "limited").await;
    let user = server.clients(&creds).iam;

    let e = user.list_users().send().await.unwrap_err();
    assert_eq!(e.code(), Some("AccessDenied"));
    assert_eq!(
        e.message(),
        Some(
            "User: arn:aws:iam::000000000000:user/limited is not authorized to perform: \
             iam:ListUsers on resource: arn:aws:iam::000000000000:user/ because no \
             identity-based policy allows the iam:ListUsers action"
        )
    );
    assert_eq!(e.raw_response().unwrap().status().as_u16(), 403);

    put_user_policy(&root, "limited", "read", &allow("iam:List*", "*")).await;
    assert_eq!(user.list_users().send().await.unwrap().users().len(), 1);
    let e = user
        .create_user()
        .user_name("escalate")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AccessDenied"));
    assert!(
        e.message()
            .unwrap()
            .contains("iam:CreateUser on resource: arn:aws:iam::000000000000:user/escalate")
    );

    // An explicit deny wins over any allow.
    put_user_policy(&root, "limited", "all", &allow("*", "*")).await;
    put_user_policy(
        &root,
        "limited",
        "no-users",
        &deny("iam:CreateUser", "arn:aws:iam::000000000000:user/admin*"),
    )
    .await;
    user.create_user().user_name("helper").send().await.unwrap();
    let e = user
        .create_user()
        .user_name("admin2")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AccessDenied"));
    assert!(
        e.message()
            .unwrap()
            .ends_with("with an explicit deny in an identity-based policy")
    );
}

#[tokio::test]
async fn kms_follows_the_users_identity_policies() {
    let server = TestServer::start().await;
    let root = server.iam();
    let key = server
        .kms()
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let creds = user_with_key(&root, "app").await;
    let kms = server.clients(&creds).kms;
    let encrypt = || {
        kms.encrypt()
            .key_id(key.key_id())
            .plaintext(Blob::new(b"data".to_vec()))
            .send()
    };

    // The default key policy delegates to IAM: no identity policy, no access.
    let e = encrypt().await.unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));
    assert!(
        e.message()
            .unwrap()
            .contains("because no identity-based policy allows the kms:Encrypt action"),
        "{:?}",
        e.message()
    );

    put_user_policy(
        &root,
        "app",
        "use-key",
        &allow("kms:Encrypt", key.arn().unwrap()),
    )
    .await;
    encrypt().await.unwrap();

    // Changes apply to the next request.
    root.delete_user_policy()
        .user_name("app")
        .policy_name("use-key")
        .send()
        .await
        .unwrap();
    assert_eq!(
        encrypt().await.unwrap_err().code(),
        Some("AccessDeniedException")
    );
}

#[tokio::test]
async fn principal_and_resource_tags_are_condition_keys() {
    let server = TestServer::start().await;
    let root = server.iam();
    let kms = server.kms();
    let tagged = |team: &str| {
        aws_sdk_kms::types::Tag::builder()
            .tag_key("Team")
            .tag_value(team)
            .build()
            .unwrap()
    };
    let ours = kms
        .create_key()
        .tags(tagged("payments"))
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let theirs = kms
        .create_key()
        .tags(tagged("search"))
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    root.create_user()
        .user_name("tagged")
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("team")
                .value("payments")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let creds = keyhold_testkit::identity::access_key(&root, "tagged").await;
    // Attribute-based access: the key's Team tag must equal the caller's team tag (tag keys
    // compare case-insensitively, values exactly).
    let abac = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Encrypt","Resource":"*",
        "Condition":{"StringEquals":{"aws:ResourceTag/team":"${aws:PrincipalTag/Team}"}}}]}"#;
    put_user_policy(&root, "tagged", "abac", abac).await;
    let user_kms = server.clients(&creds).kms;
    let encrypt = |key: String| {
        user_kms
            .encrypt()
            .key_id(key)
            .plaintext(Blob::new(b"data".to_vec()))
            .send()
    };
    encrypt(ours.arn().unwrap().to_owned()).await.unwrap();
    let e = encrypt(theirs.arn().unwrap().to_owned()).await.unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));

    // The same key in a literal comparison.
    let literal = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"kms:Encrypt","Resource":"*",
        "Condition":{"StringNotEquals":{"aws:PrincipalTag/TEAM":"payments"}}}]}"#;
    put_user_policy(&root, "tagged", "deny-others", literal).await;
    encrypt(ours.arn().unwrap().to_owned()).await.unwrap();
    // A caller without the tag matches neither policy's condition: denied.
    let untagged = user_with_key(&root, "untagged").await;
    put_user_policy(&root, "untagged", "abac", abac).await;
    let e = server
        .clients(&untagged)
        .kms
        .encrypt()
        .key_id(ours.arn().unwrap())
        .plaintext(Blob::new(b"data".to_vec()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));
}
