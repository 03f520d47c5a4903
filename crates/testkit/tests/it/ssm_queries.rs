//! Parameter Store queries through `aws-sdk-ssm`: GetParametersByPath (Recursive,
//! ParameterFilters, WithDecryption, MaxResults/NextToken) and DescribeParameters (the
//! ParameterFilters keys and options, the deprecated Filters, pagination, their errors).

use aws_sdk_ssm::types::{
    ParameterStringFilter, ParameterTier, ParameterType, ParametersFilter, ParametersFilterKey, Tag,
};
use keyhold_testkit::TestServer;

/// A filter; no values leaves `Values` out (the model refuses an empty list).
fn filter(key: &str, option: Option<&str>, values: &[&str]) -> ParameterStringFilter {
    ParameterStringFilter::builder()
        .key(key)
        .set_option(option.map(str::to_owned))
        .set_values((!values.is_empty()).then(|| values.iter().map(|v| (*v).to_owned()).collect()))
        .build()
        .unwrap()
}

/// `/app/db/host`, `/app/db/password` (SecureString), `/app/name`, `/app/db/replica/host`,
/// `/other/x`, `top` (StringList, tagged), `/app/big` (Advanced).
async fn seed(ssm: &aws_sdk_ssm::Client) {
    let put = |name: &str, value: &str, kind: ParameterType| {
        ssm.put_parameter()
            .name(name)
            .value(value)
            .r#type(kind)
            .send()
    };
    put("/app/db/host", "db", ParameterType::String)
        .await
        .unwrap();
    put("/app/db/password", "pw", ParameterType::SecureString)
        .await
        .unwrap();
    put("/app/name", "app", ParameterType::String)
        .await
        .unwrap();
    put("/app/db/replica/host", "replica", ParameterType::String)
        .await
        .unwrap();
    put("/other/x", "x", ParameterType::String).await.unwrap();
    ssm.put_parameter()
        .name("top")
        .value("a,b")
        .r#type(ParameterType::StringList)
        .tags(Tag::builder().key("team").value("core").build().unwrap())
        .send()
        .await
        .unwrap();
    ssm.put_parameter()
        .name("/app/big")
        .value("big")
        .r#type(ParameterType::String)
        .tier(ParameterTier::Advanced)
        .send()
        .await
        .unwrap();
}

async fn by_path(
    ssm: &aws_sdk_ssm::Client,
    path: &str,
    recursive: bool,
    filters: Vec<ParameterStringFilter>,
) -> Vec<String> {
    let mut names = Vec::new();
    let mut token = None;
    loop {
        let page = ssm
            .get_parameters_by_path()
            .path(path)
            .recursive(recursive)
            .set_parameter_filters(Some(filters.clone()))
            .max_results(2)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        assert!(page.parameters().len() <= 2);
        names.extend(
            page.parameters()
                .iter()
                .map(|p| p.name().unwrap().to_owned()),
        );
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return names;
        }
    }
}

#[tokio::test]
async fn get_parameters_by_path_one_level_and_recursive() {
    let server = TestServer::start().await;
    let ssm = server.ssm();
    seed(&ssm).await;
    assert_eq!(
        by_path(&ssm, "/app", false, vec![]).await,
        ["/app/big", "/app/name"]
    );
    assert_eq!(
        by_path(&ssm, "/app/", true, vec![]).await,
        [
            "/app/big",
            "/app/db/host",
            "/app/db/password",
            "/app/db/replica/host",
            "/app/name"
        ]
    );
    assert_eq!(by_path(&ssm, "/", false, vec![]).await, ["top"]);
    assert_eq!(by_path(&ssm, "/", true, vec![]).await.len(), 7);
    assert!(
        by_path(&ssm, "/nothing/here", true, vec![])
            .await
            .is_empty()
    );

    // Filters: Type, KeyId.
    assert_eq!(
        by_path(
            &ssm,
            "/app",
            true,
            vec![filter("Type", None, &["SecureString"])]
        )
        .await,
        ["/app/db/password"]
    );
    assert_eq!(
        by_path(
            &ssm,
            "/",
            true,
            vec![filter("KeyId", Some("BeginsWith"), &["alias/aws"])]
        )
        .await,
        ["/app/db/password"]
    );

    // WithDecryption.
    let page = ssm
        .get_parameters_by_path()
        .path("/app/db")
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    let values: Vec<&str> = page
        .parameters()
        .iter()
        .map(|p| p.value().unwrap())
        .collect();
    assert_eq!(values, ["db", "pw"]);
    let page = ssm
        .get_parameters_by_path()
        .path("/app/db")
        .send()
        .await
        .unwrap();
    assert_ne!(page.parameters()[1].value(), Some("pw"));
}

#[tokio::test]
async fn get_parameters_by_path_label_filter_returns_the_labelled_version() {
    let server = TestServer::start().await;
    let ssm = server.ssm();
    for v in ["one", "two", "three"] {
        ssm.put_parameter()
            .name("/cfg/mode")
            .value(v)
            .r#type(ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .unwrap();
    }
    ssm.put_parameter()
        .name("/cfg/other")
        .value("o")
        .r#type(ParameterType::String)
        .send()
        .await
        .unwrap();
    ssm.label_parameter_version()
        .name("/cfg/mode")
        .parameter_version(2)
        .labels("prod")
        .send()
        .await
        .unwrap();
    let out = ssm
        .get_parameters_by_path()
        .path("/cfg")
        .parameter_filters(filter("Label", Some("Equals"), &["prod"]))
        .send()
        .await
        .unwrap();
    let got: Vec<(&str, &str, i64)> = out
        .parameters()
        .iter()
        .map(|p| (p.name().unwrap(), p.value().unwrap(), p.version()))
        .collect();
    assert_eq!(got, [("/cfg/mode", "two", 2)]);
}

#[tokio::test]
async fn get_parameters_by_path_errors() {
    let server = TestServer::start().await;
    let ssm = server.ssm();
    let e = ssm
        .get_parameters_by_path()
        .path("app")
        .send()
        .await
        .unwrap_err();
    let (code, message) = keyhold_testkit::code_and_message(&e);
    assert_eq!(code, "ValidationException");
    assert!(message.starts_with("The parameter doesn't meet the parameter name requirements."));
    for key in ["Name", "Path", "Tier", "DataType", "tag:team"] {
        let e = ssm
            .get_parameters_by_path()
            .path("/")
            .parameter_filters(filter(key, None, &["x"]))
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            keyhold_testkit::code_and_message(&e).0,
            "InvalidFilterKey",
            "{key}"
        );
    }
    let e = ssm
        .get_parameters_by_path()
        .path("/")
        .parameter_filters(filter("Label", Some("BeginsWith"), &["x"]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e).0,
        "InvalidFilterOption"
    );
    let e = ssm
        .get_parameters_by_path()
        .path("/")
        .max_results(11)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e).0,
        "ValidationException"
    );
    let e = ssm
        .get_parameters_by_path()
        .path("/")
        .next_token("not-a-token")
        .send()
        .await
        .unwrap_err();
    assert_eq!(keyhold_testkit::code_and_message(&e).0, "InvalidNextToken");
}

async fn describe(ssm: &aws_sdk_ssm::Client, filters: Vec<ParameterStringFilter>) -> Vec<String> {
    let out = ssm
        .describe_parameters()
        .set_parameter_filters(Some(filters))
        .max_results(50)
        .send()
        .await
        .unwrap();
    out.parameters()
        .iter()
        .map(|p| p.name().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn describe_parameters_filters() {
    let server = TestServer::start().await;
    let ssm = server.ssm();
    seed(&ssm).await;
    assert_eq!(describe(&ssm, vec![]).await.len(), 7);
    assert_eq!(
        describe(&ssm, vec![filter("Name", None, &["/app/name", "top"])]).await,
        ["/app/name", "top"]
    );
    assert_eq!(
        describe(&ssm, vec![filter("Name", Some("BeginsWith"), &["/app/db"])]).await,
        ["/app/db/host", "/app/db/password", "/app/db/replica/host"]
    );
    assert_eq!(
        describe(&ssm, vec![filter("Name", Some("Contains"), &["replica"])]).await,
        ["/app/db/replica/host"]
    );
    assert_eq!(
        describe(&ssm, vec![filter("Path", None, &["/app/db"])]).await,
        ["/app/db/host", "/app/db/password"]
    );
    assert_eq!(
        describe(&ssm, vec![filter("Path", Some("Recursive"), &["/app/db"])]).await,
        ["/app/db/host", "/app/db/password", "/app/db/replica/host"]
    );
    assert_eq!(
        describe(&ssm, vec![filter("Type", None, &["StringList"])]).await,
        ["top"]
    );
    assert_eq!(
        describe(&ssm, vec![filter("KeyId", None, &["alias/aws/ssm"])]).await,
        ["/app/db/password"]
    );
    assert_eq!(
        describe(&ssm, vec![filter("Tier", None, &["Advanced"])]).await,
        ["/app/big"]
    );
    assert_eq!(
        describe(&ssm, vec![filter("DataType", None, &["text"])])
            .await
            .len(),
        7
    );
    assert_eq!(
        describe(&ssm, vec![filter("tag:team", None, &[])]).await,
        ["top"]
    );
    assert_eq!(
        describe(&ssm, vec![filter("tag:team", Some("Equals"), &["core"])]).await,
        ["top"]
    );
    assert_eq!(
        describe(
            &ssm,
            vec![
                filter("Path", Some("Recursive"), &["/app"]),
                filter("Type", None, &["String"])
            ]
        )
        .await,
        [
            "/app/big",
            "/app/db/host",
            "/app/db/replica/host",
            "/app/name"
        ]
    );

    // The deprecated Filters.
    let out = ssm
        .describe_parameters()
        .filters(
            ParametersFilter::builder()
                .key(ParametersFilterKey::Name)
                .values("/app/d")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(out.parameters().len(), 3);

    // Metadata only: no value; the fields AWS reports.
    let out = ssm
        .describe_parameters()
        .parameter_filters(filter("Name", None, &["/app/big"]))
        .send()
        .await
        .unwrap();
    let m = &out.parameters()[0];
    assert_eq!(m.tier(), Some(&ParameterTier::Advanced));
    assert_eq!(m.version(), 1);
    assert_eq!(m.data_type(), Some("text"));
    assert!(m.policies().is_empty());
    assert_eq!(
        m.arn(),
        Some("arn:aws:ssm:us-east-1:000000000000:parameter/app/big")
    );
}

#[tokio::test]
async fn describe_parameters_pages() {
    let server = TestServer::start().await;
    let ssm = server.ssm();
    for i in 0..23 {
        ssm.put_parameter()
            .name(format!("/page/p{i:02}"))
            .value("v")
            .r#type(ParameterType::String)
            .send()
            .await
            .unwrap();
    }
    let first = ssm.describe_parameters().send().await.unwrap();
    assert_eq!(first.parameters().len(), 10, "the default page");
    let mut names = Vec::new();
    let mut token = None;
    loop {
        let page = ssm
            .describe_parameters()
            .max_results(7)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        names.extend(
            page.parameters()
                .iter()
                .map(|p| p.name().unwrap().to_owned()),
        );
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let expected: Vec<String> = (0..23).map(|i| format!("/page/p{i:02}")).collect();
    assert_eq!(names, expected);
    let e = ssm
        .describe_parameters()
        .max_results(51)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e).0,
        "ValidationException"
    );
    let e = ssm
        .describe_parameters()
        .next_token("bad")
        .send()
        .await
        .unwrap_err();
    assert_eq!(keyhold_testkit::code_and_message(&e).0, "InvalidNextToken");
}

#[tokio::test]
async fn describe_parameters_filter_errors() {
    let server = TestServer::start().await;
    let ssm = server.ssm();
    let err = |filters: Vec<ParameterStringFilter>| {
        let ssm = ssm.clone();
        async move {
            let e = ssm
                .describe_parameters()
                .set_parameter_filters(Some(filters))
                .send()
                .await
                .unwrap_err();
            keyhold_testkit::code_and_message(&e)
        }
    };
    assert_eq!(
        err(vec![filter("Label", None, &["x"])]).await,
        (
            "InvalidFilterKey".into(),
            "The following filter key is not valid: Label. Valid filter keys include: [Path, \
             Name, Type, KeyId, Tier]."
                .into()
        )
    );
    assert_eq!(
        err(vec![
            filter("Type", None, &["String"]),
            filter("Type", None, &["SecureString"])
        ])
        .await
        .0,
        "InvalidFilterKey"
    );
    assert_eq!(
        err(vec![filter("Type", Some("Contains"), &["String"])]).await,
        (
            "InvalidFilterOption".into(),
            "The following filter option is not valid: Contains. Valid options include: \
             [BeginsWith, Equals]."
                .into()
        )
    );
    assert_eq!(
        err(vec![filter("Path", Some("Equals"), &["/a"])]).await.0,
        "InvalidFilterOption"
    );
    assert_eq!(
        err(vec![filter("Tier", None, &["Gold"])]).await,
        (
            "InvalidFilterOption".into(),
            "The following filter value is not valid: Gold. Valid values include: [Standard, \
             Advanced, Intelligent-Tiering]."
                .into()
        )
    );
    assert_eq!(
        err(vec![filter("Name", None, &[])]).await,
        (
            "InvalidFilterValue".into(),
            "The following filter values are missing : null for filter key Name.".into()
        )
    );
    assert_eq!(
        err(vec![filter("Path", None, &["/aws/service"])]).await.0,
        "ValidationException"
    );
    assert_eq!(
        err(vec![filter("Nope", None, &["x"])]).await.0,
        "ValidationException",
        "the model's key pattern"
    );
    let e = ssm
        .describe_parameters()
        .filters(
            ParametersFilter::builder()
                .key(ParametersFilterKey::Type)
                .values("String")
                .build()
                .unwrap(),
        )
        .parameter_filters(filter("Type", None, &["String"]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "ValidationException".into(),
            "You can use either Filters or ParameterFilters in a single request.".into()
        )
    );
}
