//! The IAM policy language (`keyhold_policy`): `Policy::parse` of arbitrary text as each kind
//! of document, then `decide` for a request, KMS's key-policy checks and both error
//! wordings.
//!
//! Input: the policy document, a line `%%`, then the request as `name=value` lines:
//! `kind=` (Resource, Identity, Trust), `arn=`, `account=`, `principal=` (Root, User,
//! AssumedRole, Role, Service, Anonymous), `role=`, `service=`, `action=`, `resource=`, and
//! any number of `ctx:KEY=VALUE` condition keys (repeat a key for several values). Missing
//! lines take the defaults of `crates/policy/tests/data`.

#![no_main]

use keyhold_fuzz::split_at_marker;
use keyhold_policy::{Context, Evaluation, Policy, PolicyKind, Principal, PrincipalKind, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (policy, request) = split_at_marker(data, b"\n%%\n");
    let Ok(policy_text) = std::str::from_utf8(policy) else {
        return;
    };
    let request_text = String::from_utf8_lossy(request);

    let mut kind = None;
    let mut arn = "arn:aws:iam::111122223333:user/alice";
    let mut account = "111122223333";
    let mut principal_kind = PrincipalKind::User;
    let mut role = None;
    let mut service = None;
    let mut action = "kms:Decrypt";
    let mut resource =
        "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let mut context = Context::new();
    for line in request_text.lines() {
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        match name {
            "kind" => {
                kind = match value {
                    "Resource" => Some(PolicyKind::Resource),
                    "Identity" => Some(PolicyKind::Identity),
                    "Trust" => Some(PolicyKind::Trust),
                    _ => None,
                }
            }
            "arn" => arn = value,
            "account" => account = value,
            "principal" => {
                principal_kind = match value {
                    "Root" => PrincipalKind::Root,
                    "AssumedRole" => PrincipalKind::AssumedRole,
                    "Role" => PrincipalKind::Role,
                    "Service" => PrincipalKind::Service,
                    "Anonymous" => PrincipalKind::Anonymous,
                    _ => PrincipalKind::User,
                }
            }
            "role" => role = Some(value),
            "service" => service = Some(value),
            "action" => action = value,
            "resource" => resource = value,
            _ => {
                if let Some(key) = name.strip_prefix("ctx:") {
                    context.add(key, value);
                }
            }
        }
    }

    let principal = Principal {
        arn,
        account,
        kind: principal_kind,
        role_arn: role,
        service,
    };
    let request = Request {
        principal: &principal,
        action,
        resource,
        context: &context,
    };
    let kinds = match kind {
        Some(kind) => vec![kind],
        None => vec![
            PolicyKind::Resource,
            PolicyKind::Identity,
            PolicyKind::Trust,
        ],
    };
    for kind in kinds {
        match Policy::parse(policy_text, kind) {
            Ok(policy) => {
                let decision = policy.decide(&request);
                assert_eq!(decision.evaluation, policy.evaluate(&request));
                match decision.evaluation {
                    Evaluation::NotApplicable => assert_eq!(decision.statement, None),
                    _ => {
                        let index = decision.statement.expect("a deciding statement");
                        assert!(index < policy.statements().len());
                    }
                }
                let _ = policy.aws_principals();
                if let Err(e) = policy.check_kms_key_policy() {
                    let _ = (e.aws_message(), e.iam_message(), e.to_string());
                }
                for statement in policy.statements() {
                    let _ = (statement.sid(), statement.effect());
                    for condition in statement.conditions() {
                        let _ = (condition.operator().name(), condition.key());
                    }
                }
            }
            Err(e) => {
                let _ = (e.aws_message(), e.iam_message(), e.to_string());
            }
        }
    }
});
