//! The public API beyond the tables: KMS's extra key policy check, principal listing,
//! deciding statements, and robustness on arbitrary input.

use keyhold_policy::{
    Context, Decision, Effect, Evaluation, OverlyPermissiveKey, Policy, PolicyError, PolicyKind,
    Principal, PrincipalKind, PrincipalMatch, Request,
};
use proptest::prelude::*;
use serde_json::{Value, json};

const KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

fn alice() -> Principal<'static> {
    Principal {
        arn: "arn:aws:iam::111122223333:user/alice",
        account: "111122223333",
        kind: PrincipalKind::User,
        role_arn: None,
        service: None,
    }
}

fn parse(policy: &Value, kind: PolicyKind) -> Result<Policy, PolicyError> {
    Policy::parse(&policy.to_string(), kind)
}

#[test]
fn kms_refuses_for_all_values_on_single_valued_keys() {
    let policy = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
        "Action": "kms:Decrypt", "Resource": "*",
        "Condition": {"ForAllValues:StringEquals": {"kms:EncryptionContext:Department": "IT"}}
    }]});
    let error = parse(&policy, PolicyKind::Resource)
        .unwrap()
        .check_kms_key_policy()
        .unwrap_err();
    assert!(matches!(
        error,
        PolicyError::OverlyPermissiveCondition {
            family: OverlyPermissiveKey::EncryptionContext,
            ..
        }
    ));
    assert!(
        error
            .aws_message()
            .unwrap()
            .starts_with("OverlyPermissiveCondition:EncryptionContext:")
    );

    let tag = json!({"Statement": {
        "Effect": "Allow", "Principal": "*", "Action": "kms:TagResource", "Resource": "*",
        "Condition": {"ForAllValues:StringEquals": {"aws:RequestTag/env": "prod"}}
    }});
    let error = parse(&tag, PolicyKind::Resource)
        .unwrap()
        .check_kms_key_policy()
        .unwrap_err();
    assert!(matches!(
        error,
        PolicyError::OverlyPermissiveCondition {
            family: OverlyPermissiveKey::RequestTag,
            ..
        }
    ));

    // The multi-valued keys are fine.
    let keys = json!({"Statement": {
        "Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
        "Condition": {"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": "AppName"}}
    }});
    assert_eq!(
        parse(&keys, PolicyKind::Resource)
            .unwrap()
            .check_kms_key_policy(),
        Ok(())
    );
}

#[test]
fn lists_aws_principals_for_existence_checks() {
    let policy = json!({"Statement": [
        {"Effect": "Allow", "Principal": {"AWS": ["111122223333", "arn:aws:iam::444455556666:root"]},
         "Action": "kms:*", "Resource": "*"},
        {"Effect": "Deny", "NotPrincipal": {"AWS": "arn:aws:iam::111122223333:user/alice",
         "Service": "logs.amazonaws.com"}, "Action": "kms:*", "Resource": "*"}
    ]});
    let policy = parse(&policy, PolicyKind::Resource).unwrap();
    assert_eq!(
        policy.aws_principals(),
        [
            "111122223333",
            "arn:aws:iam::444455556666:root",
            "arn:aws:iam::111122223333:user/alice"
        ]
    );
}

#[test]
fn decide_names_the_deciding_statement() {
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "Alice", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"},
         "Action": "kms:Decrypt", "Resource": "*"},
        {"Sid": "NoDeletion", "Effect": "Deny", "Principal": "*",
         "Action": "kms:ScheduleKeyDeletion", "Resource": "*"}
    ]});
    let policy = parse(&policy, PolicyKind::Resource).unwrap();
    let context = Context::new();
    let caller = alice();
    let request = |action| Request {
        principal: &caller,
        action,
        resource: KEY,
        context: &context,
    };
    assert_eq!(
        policy.decide(&request("kms:Decrypt")),
        Decision {
            evaluation: Evaluation::Allow {
                principal_match: PrincipalMatch::Direct
            },
            statement: Some(1)
        }
    );
    assert_eq!(
        policy.decide(&request("kms:Encrypt")),
        Decision {
            evaluation: Evaluation::Allow {
                principal_match: PrincipalMatch::Account
            },
            statement: Some(0)
        }
    );
    let denied = policy.decide(&request("kms:ScheduleKeyDeletion"));
    assert_eq!(denied.evaluation, Evaluation::ExplicitDeny);
    let statement = &policy.statements()[denied.statement.unwrap()];
    assert_eq!(
        (statement.sid(), statement.effect()),
        (Some("NoDeletion"), Effect::Deny)
    );
}

#[test]
fn error_messages_per_service() {
    let error = parse(
        &json!({"Statement": {"Effect": "Allow", "Principal": "*", "Action": "kms:*"}}),
        PolicyKind::Identity,
    )
    .unwrap_err();
    assert_eq!(error, PolicyError::PrincipalNotAllowed);
    assert_eq!(
        error.iam_message(),
        Some("Policy document should not specify a principal.")
    );
    assert_eq!(error.aws_message(), None);
}

/// Arbitrary JSON, biased towards policy-shaped documents.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        prop_oneof![
            Just("*".to_owned()),
            Just("Allow".to_owned()),
            Just("Deny".to_owned()),
            Just("kms:*".to_owned()),
            Just("arn:aws:iam::111122223333:root".to_owned()),
            Just("111122223333".to_owned()),
            Just("${aws:username}".to_owned()),
            Just("2019-07-16T12:00:00Z".to_owned()),
            Just("203.0.113.0/24".to_owned()),
            ".{0,12}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        let key = prop_oneof![
            Just("Version".to_owned()),
            Just("Statement".to_owned()),
            Just("Effect".to_owned()),
            Just("Principal".to_owned()),
            Just("NotPrincipal".to_owned()),
            Just("AWS".to_owned()),
            Just("Service".to_owned()),
            Just("Action".to_owned()),
            Just("NotAction".to_owned()),
            Just("Resource".to_owned()),
            Just("NotResource".to_owned()),
            Just("Condition".to_owned()),
            Just("StringLike".to_owned()),
            Just("ForAllValues:StringNotEqualsIfExists".to_owned()),
            Just("NumericLessThan".to_owned()),
            Just("DateGreaterThan".to_owned()),
            Just("IpAddress".to_owned()),
            Just("ArnLike".to_owned()),
            Just("Null".to_owned()),
            Just("aws:SourceIp".to_owned()),
            ".{0,8}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn kinds() -> impl Strategy<Value = PolicyKind> {
    prop_oneof![
        Just(PolicyKind::Resource),
        Just(PolicyKind::Identity),
        Just(PolicyKind::Trust)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Regression guard: no document, and no request against a parsed document, panics.
    #[test]
    fn parse_and_evaluate_never_panic(
        document in arb_json(),
        kind in kinds(),
        action in "[a-z*?:]{0,12}",
        resource in "[a-z0-9*?:/-]{0,24}",
        value in ".{0,16}",
    ) {
        if let Ok(policy) = Policy::parse(&document.to_string(), kind) {
            let context = Context::new()
                .with("aws:SourceIp", value.clone())
                .with("aws:username", value.clone())
                .with_values("aws:TagKeys", [value.clone(), String::new()]);
            let caller = alice();
            let request = Request { principal: &caller, action: &action, resource: &resource, context: &context };
            let _ = policy.evaluate(&request);
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}", kind in kinds()) {
        let _ = Policy::parse(&text, kind);
    }
}
