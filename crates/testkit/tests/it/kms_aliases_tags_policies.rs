//! Aliases, tags and key policies through the real `aws-sdk-kms` client.

use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::Tag;
use keyhold_testkit::TestServer;

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().tag_key(k).tag_value(v).build().unwrap()
}

#[tokio::test]
async fn alias_lifecycle_and_errors() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let a = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let b = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    kms.create_alias()
        .alias_name("alias/app")
        .target_key_id(a.key_id())
        .send()
        .await
        .unwrap();

    let e = kms
        .create_alias()
        .alias_name("alias/app")
        .target_key_id(b.key_id())
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "AlreadyExistsException".into(),
            "An alias with the name arn:aws:kms:us-east-1:000000000000:alias/app already exists"
                .into()
        )
    );
    let e = kms
        .create_alias()
        .alias_name("app")
        .target_key_id(b.key_id())
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "ValidationException".into(),
            "Alias must start with the prefix \"alias/\". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html".into()
        )
    );
    let e = kms
        .create_alias()
        .alias_name("alias/aws/mine")
        .target_key_id(b.key_id())
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("NotAuthorizedException"));
    let e = kms
        .create_alias()
        .alias_name("alias/x")
        .target_key_id("alias/app")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));

    let blob = kms
        .encrypt()
        .key_id("alias/app")
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(blob.key_id(), a.arn());
    kms.update_alias()
        .alias_name("alias/app")
        .target_key_id(b.key_id())
        .send()
        .await
        .unwrap();
    let blob = kms
        .encrypt()
        .key_id("alias/app")
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(blob.key_id(), b.arn(), "UpdateAlias takes effect at once");

    let e = kms
        .update_alias()
        .alias_name("alias/nope")
        .target_key_id(b.key_id())
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "NotFoundException".into(),
            "Alias arn:aws:kms:us-east-1:000000000000:alias/nope is not found.".into()
        )
    );

    kms.create_alias()
        .alias_name("alias/second")
        .target_key_id(b.key_id())
        .send()
        .await
        .unwrap();
    let for_b = kms.list_aliases().key_id(b.key_id()).send().await.unwrap();
    let names: Vec<_> = for_b
        .aliases()
        .iter()
        .filter_map(|a| a.alias_name())
        .collect();
    assert_eq!(names, ["alias/app", "alias/second"]);
    let entry = &for_b.aliases()[0];
    assert_eq!(
        entry.alias_arn(),
        Some("arn:aws:kms:us-east-1:000000000000:alias/app")
    );
    assert_eq!(entry.target_key_id(), Some(b.key_id()));
    assert!(entry.creation_date().is_some() && entry.last_updated_date().is_some());

    kms.delete_alias()
        .alias_name("alias/app")
        .send()
        .await
        .unwrap();
    let e = kms
        .delete_alias()
        .alias_name("alias/app")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("NotFoundException"));
    let e = kms
        .describe_key()
        .key_id("alias/app")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Some("NotFoundException"),
        "a deleted alias no longer resolves"
    );
}

#[tokio::test]
async fn alias_pattern_is_validated_with_aws_wording() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let e = kms
        .create_alias()
        .alias_name("alias/bad name!")
        .target_key_id(key.key_id())
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "ValidationException".into(),
            "1 validation error detected: Value 'alias/bad name!' at 'aliasName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$".into()
        )
    );
}

#[tokio::test]
async fn list_aliases_pages() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    for i in 0..7 {
        kms.create_alias()
            .alias_name(format!("alias/a{i}"))
            .target_key_id(key.key_id())
            .send()
            .await
            .unwrap();
    }
    let mut names = Vec::new();
    let mut marker = None;
    loop {
        let page = kms
            .list_aliases()
            .limit(3)
            .set_marker(marker)
            .send()
            .await
            .unwrap();
        names.extend(
            page.aliases()
                .iter()
                .filter_map(|a| a.alias_name().map(str::to_owned)),
        );
        if !page.truncated() {
            break;
        }
        marker = page.next_marker().map(str::to_owned);
    }
    assert_eq!(names.len(), 19, "7 aliases and the 12 predefined AWS ones");
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
}

#[tokio::test]
async fn tags_lifecycle_and_rules() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let key = kms
        .create_key()
        .tags(tag("team", "core"))
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let id = key.key_id();
    kms.tag_resource()
        .key_id(id)
        .tags(tag("env", "dev"))
        .tags(tag("team", "infra"))
        .send()
        .await
        .unwrap();
    let listed = kms.list_resource_tags().key_id(id).send().await.unwrap();
    let pairs: Vec<_> = listed
        .tags()
        .iter()
        .map(|t| (t.tag_key(), t.tag_value()))
        .collect();
    assert_eq!(
        pairs,
        [("env", "dev"), ("team", "infra")],
        "an existing key's value is replaced"
    );
    assert!(!listed.truncated());

    kms.untag_resource()
        .key_id(id)
        .tag_keys("env")
        .tag_keys("absent")
        .send()
        .await
        .unwrap();
    let listed = kms.list_resource_tags().key_id(id).send().await.unwrap();
    assert_eq!(listed.tags().len(), 1);

    let e = kms
        .tag_resource()
        .key_id(id)
        .tags(tag("a", "1"))
        .tags(tag("a", "2"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        ("TagException".into(), "Duplicate tag keys".into())
    );
    let e = kms
        .tag_resource()
        .key_id(id)
        .tags(tag("aws:owner", "me"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "TagException".into(),
            "Tags beginning with aws: are reserved".into()
        )
    );
    let mut req = kms.tag_resource().key_id(id);
    for i in 0..50 {
        req = req.tags(tag(&format!("k{i}"), "v"));
    }
    let e = req.send().await.unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        ("TagException".into(), "Too many tags".into()),
        "50 new + 1 existing > 50"
    );
    let long = "k".repeat(129);
    let e = kms
        .tag_resource()
        .key_id(id)
        .tags(tag(&long, "v"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        Some(format!("1 validation error detected: Value '{long}' at 'tags.1.member.tagKey' failed to satisfy constraint: Member must have length less than or equal to 128").as_str())
    );
    let e = kms
        .tag_resource()
        .key_id("alias/x")
        .tags(tag("a", "b"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidArnException"));
}

#[tokio::test]
async fn default_key_policy_is_aws_text() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let p = kms
        .get_key_policy()
        .key_id(key.key_id())
        .send()
        .await
        .unwrap();
    assert_eq!(p.policy_name(), Some("default"));
    assert_eq!(
        p.policy().unwrap(),
        "{\n  \"Version\" : \"2012-10-17\",\n  \"Id\" : \"key-default-1\",\n  \"Statement\" : [ {\n    \"Sid\" : \"Enable IAM User Permissions\",\n    \"Effect\" : \"Allow\",\n    \"Principal\" : {\n      \"AWS\" : \"arn:aws:iam::000000000000:root\"\n    },\n    \"Action\" : \"kms:*\",\n    \"Resource\" : \"*\"\n  } ]\n}"
    );
    let names = kms
        .list_key_policies()
        .key_id(key.key_id())
        .send()
        .await
        .unwrap();
    assert_eq!(names.policy_names(), ["default"]);
    let e = kms
        .get_key_policy()
        .key_id(key.key_id())
        .policy_name("other")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        ("NotFoundException".into(), "No such policy exists".into())
    );
}

const OPEN_TO_222: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "owner", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:root"}, "Action": "kms:*", "Resource": "*"},
    {"Sid": "partner", "Effect": "Allow", "Principal": {"AWS": "222222222222"}, "Action": ["kms:Decrypt", "kms:DescribeKey"], "Resource": "*"}
  ]
}"#;

#[tokio::test]
async fn key_policies_govern_cross_account_use() {
    let server = TestServer::start().await;
    let owner = server.kms_for("111111111111", "us-east-1");
    let partner = server.kms_for("222222222222", "us-east-1");
    let key = owner
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let arn = key.arn().unwrap().to_owned();
    let blob = owner
        .encrypt()
        .key_id(&arn)
        .plaintext(Blob::new(b"shared".to_vec()))
        .send()
        .await
        .unwrap();
    let blob = blob.ciphertext_blob.unwrap();

    let e = partner
        .decrypt()
        .ciphertext_blob(blob.clone())
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "AccessDeniedException".into(),
            format!(
                "User: arn:aws:iam::222222222222:root is not authorized to perform: kms:Decrypt on resource: {arn} because no resource-based policy allows the kms:Decrypt action"
            )
        )
    );
    owner
        .put_key_policy()
        .key_id(key.key_id())
        .policy(OPEN_TO_222)
        .send()
        .await
        .unwrap();
    let d = partner
        .decrypt()
        .ciphertext_blob(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(d.plaintext().unwrap().as_ref(), b"shared");
    partner.describe_key().key_id(&arn).send().await.unwrap();
    let e = partner
        .encrypt()
        .key_id(&arn)
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Some("AccessDeniedException"),
        "only what the policy lists"
    );
    let got = owner
        .get_key_policy()
        .key_id(key.key_id())
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.policy(),
        Some(OPEN_TO_222),
        "a policy comes back as it was put"
    );
}

#[tokio::test]
async fn explicit_deny_wins() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let policy = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"kms:*","Resource":"*"},
        {"Effect":"Deny","Principal":"*","Action":"kms:Encrypt","Resource":"*"}]}"#;
    kms.put_key_policy()
        .key_id(key.key_id())
        .policy(policy)
        .send()
        .await
        .unwrap();
    let e = kms
        .encrypt()
        .key_id(key.key_id())
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));
    assert!(
        e.message()
            .unwrap()
            .ends_with("with an explicit deny in a resource-based policy"),
        "{:?}",
        e.message()
    );
    kms.generate_data_key()
        .key_id(key.key_id())
        .number_of_bytes(8)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn policy_checks() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let lockout = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"kms:Decrypt","Resource":"*"}]}"#;
    let e = kms
        .put_key_policy()
        .key_id(key.key_id())
        .policy(lockout)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "MalformedPolicyDocumentException".into(),
            "The new key policy will not allow you to update the key policy in the future.".into()
        )
    );
    let e = kms.create_key().policy(lockout).send().await.unwrap_err();
    assert_eq!(e.code(), Some("MalformedPolicyDocumentException"));
    kms.put_key_policy()
        .key_id(key.key_id())
        .policy(lockout)
        .bypass_policy_lockout_safety_check(true)
        .send()
        .await
        .unwrap();
    let e = kms
        .get_key_policy()
        .key_id(key.key_id())
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Some("AccessDeniedException"),
        "locked out, as AWS warns"
    );

    let other = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let e = kms
        .put_key_policy()
        .key_id(other.key_id())
        .policy("{not json")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        ("MalformedPolicyDocumentException".into(), String::new())
    );
    let huge = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"{}","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::000000000000:root"}},"Action":"kms:*","Resource":"*"}}]}}"#,
        "x".repeat(33_000)
    );
    let e = kms
        .put_key_policy()
        .key_id(other.key_id())
        .policy(huge)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("LimitExceededException"));
}

#[tokio::test]
async fn policy_conditions_on_the_encryption_context() {
    let server = TestServer::start().await;
    let owner = server.kms_for("111111111111", "us-east-1");
    let partner = server.kms_for("222222222222", "us-east-1");
    let policy = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":"kms:*","Resource":"*"},
        {"Effect":"Allow","Principal":{"AWS":"222222222222"},"Action":"kms:Decrypt","Resource":"*",
         "Condition":{"StringEquals":{"kms:EncryptionContext:Tenant":"a","kms:CallerAccount":"222222222222"}}}]}"#;
    let key = owner
        .create_key()
        .policy(policy)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let seal = |tenant: &'static str| {
        let owner = owner.clone();
        let id = key.key_id().to_owned();
        async move {
            owner
                .encrypt()
                .key_id(id)
                .plaintext(Blob::new(tenant.as_bytes().to_vec()))
                .encryption_context("tenant", tenant)
                .send()
                .await
                .unwrap()
                .ciphertext_blob
                .unwrap()
        }
    };
    let (a, b) = (seal("a").await, seal("b").await);
    let ok = partner
        .decrypt()
        .ciphertext_blob(a)
        .encryption_context("tenant", "a")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.plaintext().unwrap().as_ref(), b"a");
    let e = partner
        .decrypt()
        .ciphertext_blob(b)
        .encryption_context("tenant", "b")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));
}

#[tokio::test]
async fn other_accounts_never_manage_a_key_whatever_the_policy_says() {
    let server = TestServer::start().await;
    let owner = server.kms_for("111111111111", "us-east-1");
    let partner = server.kms_for("222222222222", "us-east-1");
    let arn = owner
        .create_key()
        .policy(
            r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":"kms:*","Resource":"*"},
                {"Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:*","Resource":"*"}]}"#,
        )
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .arn
        .unwrap();
    // Use is shared...
    partner.describe_key().key_id(&arn).send().await.unwrap();
    partner
        .encrypt()
        .key_id(&arn)
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await
        .unwrap();
    // ...management is not.
    let denied = |e: &dyn ProvideErrorMetadata| {
        assert_eq!(e.code(), Some("AccessDeniedException"), "{:?}", e.message());
        assert!(
            e.message().unwrap().starts_with(
                "User: arn:aws:iam::222222222222:root is not authorized to perform: kms:"
            ),
            "{:?}",
            e.message()
        );
    };
    denied(
        &partner
            .schedule_key_deletion()
            .key_id(&arn)
            .send()
            .await
            .unwrap_err(),
    );
    denied(&partner.disable_key().key_id(&arn).send().await.unwrap_err());
    denied(
        &partner
            .put_key_policy()
            .key_id(&arn)
            .policy_name("default")
            .policy(OPEN_TO_222)
            .send()
            .await
            .unwrap_err(),
    );
    let key = owner.describe_key().key_id(&arn).send().await.unwrap();
    assert!(key.key_metadata().unwrap().enabled());
}

#[tokio::test]
async fn bypassing_the_lockout_check_can_be_denied_by_its_condition_key() {
    use keyhold_testkit::identity::{put_user_policy, user_with_key};
    let server = TestServer::start().await;
    let iam = server.iam();
    let user = user_with_key(&iam, "careful").await;
    put_user_policy(
        &iam,
        "careful",
        "p",
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"*","Resource":"*"},
            {"Effect":"Deny","Action":["kms:CreateKey","kms:PutKeyPolicy"],"Resource":"*",
             "Condition":{"Bool":{"kms:BypassPolicyLockoutSafetyCheck":"true"}}}]}"#,
    )
    .await;
    let kms = server.kms_with(&user.access_key_id, &user.secret_access_key, "us-east-1");
    let policy = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"kms:*","Resource":"*"}]}"#;
    let e = kms
        .create_key()
        .policy(policy)
        .bypass_policy_lockout_safety_check(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));
    assert!(e.message().unwrap().contains("kms:CreateKey"), "{e:?}");
    let key = kms
        .create_key()
        .policy(policy)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let e = kms
        .put_key_policy()
        .key_id(key.key_id())
        .policy(policy)
        .bypass_policy_lockout_safety_check(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));
    assert!(e.message().unwrap().contains("kms:PutKeyPolicy"), "{e:?}");
    kms.put_key_policy()
        .key_id(key.key_id())
        .policy(policy)
        .bypass_policy_lockout_safety_check(false)
        .send()
        .await
        .unwrap();
}
