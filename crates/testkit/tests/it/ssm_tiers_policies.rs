//! Parameter Store tiers and policies through `aws-sdk-ssm`: Standard (4 KB), Advanced
//! (8 KB), Intelligent-Tiering, the refused downgrade, the standard-parameter limit, and
//! parameter policies (advanced only; `Expiration` enforced by deleting the parameter).

use std::time::Duration;

use aws_sdk_ssm::types::{ParameterTier, ParameterType};
use keyhold_testkit::TestServer;

async fn put_tier(
    ssm: &aws_sdk_ssm::Client,
    name: &str,
    value: &str,
    tier: Option<ParameterTier>,
) -> Result<(i64, ParameterTier), (String, String)> {
    ssm.put_parameter()
        .name(name)
        .value(value)
        .r#type(ParameterType::String)
        .set_tier(tier)
        .overwrite(true)
        .send()
        .await
        .map(|o| (o.version(), o.tier().cloned().unwrap()))
        .map_err(|e| keyhold_testkit::code_and_message(&e))
}

#[tokio::test]
async fn tiers_sizes_and_the_refused_downgrade() {
    let server = TestServer::start().await;
    let ssm = server.ssm();
    let four_k = "x".repeat(4096);
    let eight_k = "x".repeat(8192);
    assert_eq!(
        put_tier(&ssm, "/std", &four_k, None).await,
        Ok((1, ParameterTier::Standard))
    );
    let (code, message) = put_tier(&ssm, "/std", &format!("{four_k}y"), None)
        .await
        .unwrap_err();
    assert_eq!(code, "ValidationException");
    assert!(message.starts_with(
        "Standard tier parameters support a maximum parameter value of 4096 characters."
    ));
    assert_eq!(
        put_tier(&ssm, "/adv", &eight_k, Some(ParameterTier::Advanced)).await,
        Ok((1, ParameterTier::Advanced))
    );
    let (code, _) = put_tier(&ssm, "/adv", &format!("{eight_k}y"), None)
        .await
        .unwrap_err();
    assert_eq!(code, "ValidationException");

    // Without a tier an advanced parameter stays advanced; asking for standard is refused.
    assert_eq!(
        put_tier(&ssm, "/adv", "small", None).await,
        Ok((2, ParameterTier::Advanced))
    );
    assert_eq!(
        put_tier(&ssm, "/adv", "small", Some(ParameterTier::Standard)).await,
        Err((
            "ValidationException".into(),
            "This parameter uses the advanced-parameter tier. You can't downgrade a parameter \
             from the advanced-parameter tier to the standard-parameter tier. If necessary, you \
             can delete the advanced parameter and recreate it as a standard parameter. Be aware \
             that standard parameters have a value limit of 4096 characters."
                .into()
        ))
    );
    // A standard parameter can be upgraded.
    assert_eq!(
        put_tier(&ssm, "/std", "v", Some(ParameterTier::Advanced)).await,
        Ok((2, ParameterTier::Advanced))
    );

    // Intelligent-Tiering chooses.
    let it = Some(ParameterTier::IntelligentTiering);
    assert_eq!(
        put_tier(&ssm, "/it", "small", it.clone()).await,
        Ok((1, ParameterTier::Standard))
    );
    assert_eq!(
        put_tier(&ssm, "/it", &eight_k, it.clone()).await,
        Ok((2, ParameterTier::Advanced))
    );
    assert_eq!(
        put_tier(&ssm, "/it", "small again", it).await,
        Ok((3, ParameterTier::Advanced))
    );
    let h = ssm
        .get_parameter_history()
        .name("/it")
        .send()
        .await
        .unwrap();
    let tiers: Vec<&ParameterTier> = h.parameters().iter().map(|p| p.tier().unwrap()).collect();
    assert_eq!(
        tiers,
        [
            &ParameterTier::Standard,
            &ParameterTier::Advanced,
            &ParameterTier::Advanced
        ]
    );
}

const EXPIRES_2099: &str = r#"[{"Type":"Expiration","Version":"1.0","Attributes":{"Timestamp":"2099-12-02T21:34:33.000Z"}}]"#;

#[tokio::test]
async fn policies_on_advanced_parameters_only() {
    let server = TestServer::start().await;
    let ssm = server.ssm();
    let e = ssm
        .put_parameter()
        .name("/p")
        .value("v")
        .r#type(ParameterType::String)
        .policies(EXPIRES_2099)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e).0,
        "ValidationException"
    );

    let all = r#"[
      {"Type":"Expiration","Version":"1.0","Attributes":{"Timestamp":"2099-12-02T21:34:33.000Z"}},
      {"Type":"ExpirationNotification","Version":"1.0","Attributes":{"Before":"15","Unit":"Days"}},
      {"Type":"NoChangeNotification","Version":"1.0","Attributes":{"After":"20","Unit":"Days"}}]"#;
    let out = ssm
        .put_parameter()
        .name("/p")
        .value("v")
        .r#type(ParameterType::String)
        .tier(ParameterTier::IntelligentTiering)
        .policies(all)
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.tier(),
        Some(&ParameterTier::Advanced),
        "policies need advanced"
    );
    let meta = ssm.describe_parameters().send().await.unwrap();
    let policies = meta.parameters()[0].policies();
    let types: Vec<&str> = policies.iter().map(|p| p.policy_type().unwrap()).collect();
    assert_eq!(
        types,
        [
            "Expiration",
            "ExpirationNotification",
            "NoChangeNotification"
        ]
    );
    assert!(
        policies
            .iter()
            .all(|p| p.policy_status() == Some("Pending"))
    );
    assert_eq!(
        policies[0].policy_text(),
        Some(
            r#"{"Type":"Expiration","Version":"1.0","Attributes":{"Timestamp":"2099-12-02T21:34:33.000Z"}}"#
        )
    );
    // An update that leaves the policies out keeps them.
    ssm.put_parameter()
        .name("/p")
        .value("v2")
        .overwrite(true)
        .send()
        .await
        .unwrap();
    let meta = ssm.describe_parameters().send().await.unwrap();
    assert_eq!(meta.parameters()[0].policies().len(), 3);

    let err = |doc: &'static str| {
        let ssm = ssm.clone();
        async move {
            let e = ssm
                .put_parameter()
                .name("/q")
                .value("v")
                .r#type(ParameterType::String)
                .tier(ParameterTier::Advanced)
                .policies(doc)
                .send()
                .await
                .unwrap_err();
            keyhold_testkit::code_and_message(&e).0
        }
    };
    assert_eq!(
        err(r#"[{"Type":"Rotate","Version":"1.0","Attributes":{}}]"#).await,
        "InvalidPolicyTypeException"
    );
    assert_eq!(
        err(r#"[{"Type":"Expiration","Version":"1.0","Attributes":{"Timestamp":"soon"}}]"#).await,
        "InvalidPolicyAttributeException"
    );
    assert_eq!(
        err(r#"[{"Type":"Expiration","Version":"1.0","Attributes":{"Timestamp":"2099-01-01T00:00:00Z"}},
               {"Type":"Expiration","Version":"1.0","Attributes":{"Timestamp":"2098-01-01T00:00:00Z"}}]"#)
            .await,
        "IncompatiblePolicyException"
    );
    let eleven = format!(
        "[{}]",
        [r#"{"Type":"NoChangeNotification","Version":"1.0","Attributes":{"After":"1","Unit":"Days"}}"#; 11]
            .join(",")
    );
    let e = ssm
        .put_parameter()
        .name("/q")
        .value("v")
        .r#type(ParameterType::String)
        .tier(ParameterTier::Advanced)
        .policies(eleven)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e).0,
        "PoliciesLimitExceededException"
    );
}

#[tokio::test]
async fn expiration_deletes_the_parameter_when_due() {
    let server = TestServer::builder()
        .deletion_sweep_interval(Duration::from_millis(50))
        .start()
        .await;
    let ssm = server.ssm();
    let in_an_hour = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let stamp = in_an_hour
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let policy = format!(
        r#"[{{"Type":"Expiration","Version":"1.0","Attributes":{{"Timestamp":"{stamp}"}}}}]"#
    );
    ssm.put_parameter()
        .name("/temp/token")
        .value("short-lived")
        .r#type(ParameterType::SecureString)
        .tier(ParameterTier::Advanced)
        .policies(policy)
        .send()
        .await
        .unwrap();
    ssm.put_parameter()
        .name("/temp/keep")
        .value("stays")
        .r#type(ParameterType::String)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    ssm.get_parameter()
        .name("/temp/token")
        .send()
        .await
        .unwrap();

    server.clock().advance(Duration::from_secs(2 * 3600));
    let mut gone = false;
    for _ in 0..100 {
        match ssm.get_parameter().name("/temp/token").send().await {
            Err(e) if keyhold_testkit::code_and_message(&e).0 == "ParameterNotFound" => {
                gone = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(gone, "the expired parameter was deleted");
    ssm.get_parameter().name("/temp/keep").send().await.unwrap();
    let history = ssm
        .get_parameter_history()
        .name("/temp/token")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&history).0,
        "ParameterNotFound"
    );
}

#[tokio::test]
async fn the_standard_parameter_limit_is_10000_per_account_and_region() {
    let server = TestServer::start().await;
    let ssm = server.ssm();
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let ssm = ssm.clone();
        tasks.push(tokio::spawn(async move {
            for i in (worker..10_000).step_by(8) {
                ssm.put_parameter()
                    .name(format!("/bulk/p{i:05}"))
                    .value("v")
                    .r#type(ParameterType::String)
                    .send()
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let e = ssm
        .put_parameter()
        .name("/bulk/one-more")
        .value("v")
        .r#type(ParameterType::String)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "ParameterLimitExceeded".into(),
            "You have reached the maximum number of standard parameters for this AWS account and \
             Region (10000). To add more parameters, either delete existing parameters or \
             upgrade to the advanced-parameter tier (charges apply)."
                .into()
        )
    );
    // Intelligent-Tiering goes advanced instead; an update of an existing one still works.
    let out = ssm
        .put_parameter()
        .name("/bulk/one-more")
        .value("v")
        .r#type(ParameterType::String)
        .tier(ParameterTier::IntelligentTiering)
        .send()
        .await
        .unwrap();
    assert_eq!(out.tier(), Some(&ParameterTier::Advanced));
    ssm.put_parameter()
        .name("/bulk/p00000")
        .value("v2")
        .overwrite(true)
        .send()
        .await
        .unwrap();
    // Another region has its own quota.
    server
        .ssm_for("000000000000", "eu-west-1")
        .put_parameter()
        .name("/bulk/x")
        .value("v")
        .r#type(ParameterType::String)
        .send()
        .await
        .unwrap();
}
