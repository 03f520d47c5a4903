//! STS through the real SDK: who the caller is, AssumeRole decided by trust policies (same
//! account and across accounts), temporary credentials that work until they expire, and
//! GetSessionToken with AWS's restrictions.

use std::time::Duration;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_sts::error::ProvideErrorMetadata;
use keyhold_testkit::identity::{allow, put_user_policy, session, trust, user_with_key};
use keyhold_testkit::{Creds, TestServer};

const A: &str = "111111111111";
const B: &str = "222222222222";

async fn role(iam: &aws_sdk_iam::Client, name: &str, trusted: &str) -> String {
    iam.create_role()
        .role_name(name)
        .assume_role_policy_document(trust(trusted))
        .max_session_duration(7200)
        .send()
        .await
        .unwrap()
        .role
        .unwrap()
        .arn()
        .to_owned()
}

#[tokio::test]
async fn caller_identity_of_root_user_and_role() {
    let server = TestServer::start().await;
    let me = server
        .sts_for(A)
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(me.account(), Some(A));
    assert_eq!(me.arn(), Some("arn:aws:iam::111111111111:root"));
    assert_eq!(me.user_id(), Some(A));

    let iam = server.iam_for(A);
    let creds = user_with_key(&iam, "alice").await;
    let user = server.clients(&creds);
    let me = user.sts.get_caller_identity().send().await.unwrap();
    let user_id = me.user_id().unwrap().to_owned();
    assert_eq!(me.arn(), Some("arn:aws:iam::111111111111:user/alice"));
    assert!(user_id.starts_with("AIDA"));

    let role_arn = role(&iam, "reader", "arn:aws:iam::111111111111:user/alice").await;
    let assumed = user
        .sts
        .assume_role()
        .role_arn(&role_arn)
        .role_session_name("s1")
        .send()
        .await
        .unwrap();
    let role_user = assumed.assumed_role_user().unwrap();
    assert_eq!(
        role_user.arn(),
        "arn:aws:sts::111111111111:assumed-role/reader/s1"
    );
    assert!(role_user.assumed_role_id().starts_with("AROA"));
    assert!(role_user.assumed_role_id().ends_with(":s1"));
    let credentials = assumed.credentials().unwrap();
    assert!(credentials.access_key_id().starts_with("ASIA"));
    assert_eq!(credentials.secret_access_key().len(), 40);
    assert!(!credentials.session_token().is_empty());

    let me = server
        .clients(&session(credentials))
        .sts
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(me.arn(), Some(role_user.arn()));
    assert_eq!(me.user_id(), Some(role_user.assumed_role_id()));
    assert_eq!(me.account(), Some(A));
}

#[tokio::test]
async fn assumed_role_credentials_work_until_they_expire() {
    let server = TestServer::start().await;
    let iam = server.iam_for(A);
    let key = server
        .kms_for(A, "us-east-1")
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let creds = user_with_key(&iam, "bob").await;
    let role_arn = role(&iam, "encryptor", "arn:aws:iam::111111111111:user/bob").await;
    iam.put_role_policy()
        .role_name("encryptor")
        .policy_name("kms")
        .policy_document(allow("kms:Encrypt", "*"))
        .send()
        .await
        .unwrap();
    let assumed = server
        .clients(&creds)
        .sts
        .assume_role()
        .role_arn(&role_arn)
        .role_session_name("batch")
        .duration_seconds(900)
        .send()
        .await
        .unwrap();
    let credentials = assumed.credentials().unwrap();
    let expiration = credentials.expiration().secs();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((expiration - now - 900).abs() < 60, "{expiration} vs {now}");

    let role_session = server.clients(&session(credentials));
    let encrypt = || {
        role_session
            .kms
            .encrypt()
            .key_id(key.key_id())
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
    };
    encrypt().await.unwrap();
    // The role's policies decide: it may not decrypt.
    let e = role_session
        .kms
        .generate_data_key()
        .key_id(key.key_id())
        .number_of_bytes(32)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));

    // A wrong or missing session token is an unknown token.
    let mut forged = session(credentials);
    forged.session_token = Some(format!("{}x", forged.session_token.unwrap()));
    let e = server
        .clients(&forged)
        .sts
        .get_caller_identity()
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidClientTokenId"));
    let tokenless = Creds::new(credentials.access_key_id(), credentials.secret_access_key());
    let e = server
        .clients(&tokenless)
        .kms
        .list_keys()
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("UnrecognizedClientException"));

    server.clock().advance(Duration::from_secs(901));
    let e = encrypt().await.unwrap_err();
    assert_eq!(e.code(), Some("ExpiredTokenException"));
    assert_eq!(
        e.message(),
        Some("The security token included in the request is expired")
    );
    let e = role_session
        .sts
        .get_caller_identity()
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ExpiredToken"));
    // The user's long-term key is unaffected.
    server
        .clients(&creds)
        .sts
        .get_caller_identity()
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn trust_policies_decide_who_may_assume() {
    let server = TestServer::start().await;
    let iam = server.iam_for(A);
    let creds = user_with_key(&iam, "carol").await;
    let sts = server.clients(&creds).sts;
    // Trust in the account delegates to IAM: the user needs an identity policy too.
    let delegated = role(&iam, "delegated", A).await;
    let e = sts
        .assume_role()
        .role_arn(&delegated)
        .role_session_name("sess")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AccessDenied"));
    assert_eq!(
        e.message(),
        Some(
            "User: arn:aws:iam::111111111111:user/carol is not authorized to perform: \
             sts:AssumeRole on resource: arn:aws:iam::111111111111:role/delegated because no \
             identity-based policy allows the sts:AssumeRole action"
        )
    );
    put_user_policy(
        &iam,
        "carol",
        "assume",
        &allow("sts:AssumeRole", &delegated),
    )
    .await;
    sts.assume_role()
        .role_arn(&delegated)
        .role_session_name("sess")
        .send()
        .await
        .unwrap();

    // A trust policy naming someone else lets nobody else in, identity policy or not.
    iam.create_user().user_name("dave").send().await.unwrap();
    let others = role(&iam, "others", "arn:aws:iam::111111111111:user/dave").await;
    put_user_policy(&iam, "carol", "all", &allow("sts:*", "*")).await;
    let e = sts
        .assume_role()
        .role_arn(&others)
        .role_session_name("sess")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AccessDenied"));
    assert!(
        e.message()
            .unwrap()
            .ends_with("because no resource-based policy allows the sts:AssumeRole action")
    );

    // A role that does not exist answers the same way.
    let e = sts
        .assume_role()
        .role_arn("arn:aws:iam::111111111111:role/missing")
        .role_session_name("sess")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AccessDenied"));

    // The root user may not assume roles at all.
    let e = server
        .sts_for(A)
        .assume_role()
        .role_arn(&delegated)
        .role_session_name("sess")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AccessDenied"));
    assert_eq!(
        e.message(),
        Some("Roles may not be assumed by root accounts.")
    );

    // External ids are condition keys.
    let with_external_id = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:user/carol"},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"sts:ExternalId":"secret-handshake"}}}]}"#;
    iam.create_role()
        .role_name("partner")
        .assume_role_policy_document(with_external_id)
        .send()
        .await
        .unwrap();
    let partner = "arn:aws:iam::111111111111:role/partner";
    let e = sts
        .assume_role()
        .role_arn(partner)
        .role_session_name("sess")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AccessDenied"));
    sts.assume_role()
        .role_arn(partner)
        .role_session_name("sess")
        .external_id("secret-handshake")
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn roles_are_assumed_across_accounts_when_both_sides_allow() {
    let server = TestServer::start().await;
    let iam_a = server.iam_for(A);
    let iam_b = server.iam_for(B);
    let creds = user_with_key(&iam_a, "traveller").await;
    let sts = server.clients(&creds).sts;
    let target = role(&iam_b, "shared", A).await;
    assert_eq!(target, "arn:aws:iam::222222222222:role/shared");

    // B's trust policy names account A, but A has not allowed its user.
    let e = sts
        .assume_role()
        .role_arn(&target)
        .role_session_name("visit")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AccessDenied"));

    put_user_policy(
        &iam_a,
        "traveller",
        "assume",
        &allow("sts:AssumeRole", &target),
    )
    .await;
    let assumed = sts
        .assume_role()
        .role_arn(&target)
        .role_session_name("visit")
        .send()
        .await
        .unwrap();
    let session_creds = session(assumed.credentials().unwrap());
    let me = server
        .clients(&session_creds)
        .sts
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(me.account(), Some(B));
    assert_eq!(
        me.arn(),
        Some("arn:aws:sts::222222222222:assumed-role/shared/visit")
    );

    // A role whose trust policy does not name A stays closed to A's users.
    let closed = role(&iam_b, "closed", B).await;
    put_user_policy(&iam_a, "traveller", "all", &allow("sts:AssumeRole", "*")).await;
    let e = sts
        .assume_role()
        .role_arn(&closed)
        .role_session_name("visit")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AccessDenied"));

    // Deleting the role ends its sessions.
    iam_b
        .delete_role()
        .role_name("shared")
        .send()
        .await
        .unwrap();
    let e = server
        .clients(&session_creds)
        .sts
        .get_caller_identity()
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidClientTokenId"));
}

#[tokio::test]
async fn session_durations_are_bounded() {
    let server = TestServer::start().await;
    let iam = server.iam_for(A);
    let creds = user_with_key(&iam, "erin").await;
    let sts = server.clients(&creds).sts;
    let target = role(&iam, "bounded", "arn:aws:iam::111111111111:user/erin").await;
    let e = sts
        .assume_role()
        .role_arn(&target)
        .role_session_name("sess")
        .duration_seconds(7201)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationError"));
    assert_eq!(
        e.message(),
        Some("The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
    );
    let e = sts
        .assume_role()
        .role_arn(&target)
        .role_session_name("sess")
        .duration_seconds(899)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationError"));
    let assumed = sts
        .assume_role()
        .role_arn(&target)
        .role_session_name("sess")
        .duration_seconds(7200)
        .send()
        .await
        .unwrap();

    // Role chaining: a session may assume a role for an hour at most.
    let chained = server.clients(&session(assumed.credentials().unwrap())).sts;
    iam.update_assume_role_policy()
        .role_name("bounded")
        .policy_document(trust(A))
        .send()
        .await
        .unwrap();
    iam.put_role_policy()
        .role_name("bounded")
        .policy_name("chain")
        .policy_document(allow("sts:AssumeRole", "*"))
        .send()
        .await
        .unwrap();
    let e = chained
        .assume_role()
        .role_arn(&target)
        .role_session_name("s2")
        .duration_seconds(3601)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        Some(
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."
        )
    );
    chained
        .assume_role()
        .role_arn(&target)
        .role_session_name("s2")
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn session_tokens_of_users_and_root() {
    let server = TestServer::start().await;
    let iam = server.iam_for(A);
    let creds = user_with_key(&iam, "frank").await;
    put_user_policy(&iam, "frank", "kms", &allow("kms:ListKeys", "*")).await;
    let token = server
        .clients(&creds)
        .sts
        .get_session_token()
        .send()
        .await
        .unwrap();
    let credentials = token.credentials().unwrap();
    assert!(credentials.access_key_id().starts_with("ASIA"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((credentials.expiration().secs() - now - 43_200).abs() < 60);

    let temp = server.clients(&session(credentials));
    let me = temp.sts.get_caller_identity().send().await.unwrap();
    assert_eq!(me.arn(), Some("arn:aws:iam::111111111111:user/frank"));
    temp.kms.list_keys().send().await.unwrap();
    // No IAM with GetSessionToken credentials, and no second GetSessionToken.
    let e = temp.iam.list_users().send().await.unwrap_err();
    assert_eq!(e.code(), Some("InvalidClientTokenId"));
    let e = temp.sts.get_session_token().send().await.unwrap_err();
    assert_eq!(e.code(), Some("AccessDenied"));
    assert_eq!(
        e.message(),
        Some("Cannot call GetSessionToken with session credentials")
    );

    // The root user's sessions last an hour at most.
    let root = server
        .sts_for(A)
        .get_session_token()
        .duration_seconds(7200)
        .send()
        .await
        .unwrap();
    let credentials = root.credentials().unwrap();
    assert!((credentials.expiration().secs() - now - 3600).abs() < 60);
    let me = server
        .clients(&session(credentials))
        .sts
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(me.arn(), Some("arn:aws:iam::111111111111:root"));
}

#[tokio::test]
async fn sessions_work_in_strict_mode() {
    const KEY: &str = "AKIAKEYHOLDSTSROOT01";
    const SECRET: &str = "keyhold-sts-root-secret-00000000000000000";
    let server = TestServer::builder()
        .strict(&[(KEY, SECRET, A)])
        .start()
        .await;
    let root = server.clients(&Creds::new(KEY, SECRET));
    let creds = user_with_key(&root.iam, "strict-user").await;
    let target = role(
        &root.iam,
        "strict-role",
        "arn:aws:iam::111111111111:user/strict-user",
    )
    .await;
    let assumed = server
        .clients(&creds)
        .sts
        .assume_role()
        .role_arn(&target)
        .role_session_name("sess")
        .send()
        .await
        .unwrap();
    let me = server
        .clients(&session(assumed.credentials().unwrap()))
        .sts
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.arn(),
        Some("arn:aws:sts::111111111111:assumed-role/strict-role/sess")
    );
    let mut wrong = session(assumed.credentials().unwrap());
    wrong.secret_access_key = "0123456789012345678901234567890123456789".into();
    let e = server
        .clients(&wrong)
        .sts
        .get_caller_identity()
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("SignatureDoesNotMatch"));
}
