//! Arbitrary request bodies through every operation's generated decode and validation:
//! the answer is always an `ApiError` or success, never a panic.

use keyhold_proto::runtime::query::QueryParams;
use keyhold_proto::{cloudtrail, iam, kms, secretsmanager, ssm, sts};
use proptest::prelude::*;

use crate::Null;

/// Member names that occur in the models, so random documents reach deep validation.
const NAMES: &[&str] = &[
    "KeyId",
    "Plaintext",
    "CiphertextBlob",
    "EncryptionContext",
    "GrantTokens",
    "Tags",
    "TagKey",
    "TagValue",
    "Limit",
    "Marker",
    "Policy",
    "NumberOfBytes",
    "KeySpec",
    "Name",
    "SecretId",
    "SecretString",
    "SecretBinary",
    "VersionStages",
    "Filters",
    "Key",
    "Values",
    "Value",
    "Type",
    "ParameterFilters",
    "Option",
    "MaxResults",
    "NextToken",
    "Labels",
    "Description",
    "RoleArn",
    "UserName",
    "LookupAttributes",
    "AttributeKey",
    "AttributeValue",
    "StartTime",
    "Path",
];

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        ".{0,40}".prop_map(serde_json::Value::from),
        "[A-Za-z0-9+/]{0,16}={0,2}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::vec((prop::sample::select(NAMES), inner), 0..6).prop_map(|entries| {
                serde_json::Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect(),
                )
            }),
        ]
    })
}

fn document() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec((prop::sample::select(NAMES), json_value()), 0..8).prop_map(|entries| {
            let map: serde_json::Map<_, _> = entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            serde_json::to_vec(&map).unwrap()
        }),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio_test_runtime().block_on(f)
}

fn tokio_test_runtime() -> &'static tokio::runtime::Runtime {
    use std::sync::OnceLock;
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn json_operations_never_panic(body in document()) {
        block_on(async {
            for op in kms::KmsOperation::ALL {
                let _ = kms::dispatch(&Null, &(), *op, &body).await;
            }
            for op in secretsmanager::SecretsManagerOperation::ALL {
                let _ = secretsmanager::dispatch(&Null, &(), *op, &body).await;
            }
            for op in ssm::SsmOperation::ALL {
                let _ = ssm::dispatch(&Null, &(), *op, &body).await;
            }
            for op in cloudtrail::CloudTrailOperation::ALL {
                let _ = cloudtrail::dispatch(&Null, &(), *op, &body).await;
            }
        });
    }

    #[test]
    fn query_operations_never_panic(pairs in prop::collection::vec((prop::sample::select(NAMES), "(\\.member\\.[0-9]{1,2}(\\.[A-Za-z]{1,8})?)?", ".{0,20}"), 0..10)) {
        let body: String = pairs
            .iter()
            .map(|(k, suffix, v)| format!("{k}{suffix}={}", v.replace(['&', '='], "")))
            .collect::<Vec<_>>()
            .join("&");
        let q = QueryParams::parse(body.as_bytes());
        block_on(async {
            for op in sts::StsOperation::ALL {
                let _ = sts::dispatch(&Null, &(), *op, &q, "req").await;
            }
            for op in iam::IamOperation::ALL {
                let _ = iam::dispatch(&Null, &(), *op, &q, "req").await;
            }
        });
    }
}

/// A 384 KiB awsQuery body with 25,000 list members once cost ~10^9 key comparisons to
/// decode (every prefix check scanned every parameter, once per index, and again per
/// element in decoding and in the audit view). It must decode whole and in order.
#[test]
fn a_25000_member_query_list_decodes_whole() {
    let n = 25_000;
    let body = std::iter::once("Action=AssumeRole&RoleArn=arn&RoleSessionName=s".to_owned())
        .chain((1..=n).map(|i| format!("Tags.member.{i}.Key=k{i}&Tags.member.{i}.Value=v{i}")))
        .collect::<Vec<_>>()
        .join("&");
    let q = QueryParams::parse(body.as_bytes());

    let request = sts::wire::AssumeRoleRequest::from_query(&q, "").unwrap();
    let view = keyhold_proto::runtime::audit::AuditView::audit_view(&request);
    let tags = request.tags.unwrap();
    assert_eq!(tags.len(), n);
    for (i, tag) in (1..=n).zip(&tags) {
        assert_eq!(tag.key.as_deref(), Some(format!("k{i}").as_str()));
        assert_eq!(tag.value.as_deref(), Some(format!("v{i}").as_str()));
    }

    let viewed = view["tags"].as_array().unwrap();
    assert_eq!(viewed.len(), n);
    assert_eq!(
        viewed[n - 1],
        serde_json::json!({"key": format!("k{n}"), "value": format!("v{n}")})
    );
}
