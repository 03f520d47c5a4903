//! Table-driven evaluation tests: every `tests/data/evaluation/*.json` file, every case, all
//! failures reported at once.
//!
//! File format:
//! ```json
//! {
//!   "description": "what the file covers",
//!   "principals": { "alice": { "arn": "...", "account": "...", "kind": "User" } },
//!   "defaults": { "kind": "Resource", "action": "kms:Decrypt", "resource": "arn:..." },
//!   "cases": [ {
//!     "name": "...", "rule": "the AWS rule, one sentence", "source": "https://docs.aws...",
//!     "kind": "Resource | Identity | Trust (optional)",
//!     "policy": { ... },
//!     "request": { "principal": "alice" or {...}, "action": "...", "resource": "...",
//!                  "context": { "key": ["value", ...] } },
//!     "expected": "ExplicitDeny | Allow:Direct | Allow:Account | Allow:NotApplicable | NotApplicable"
//!   } ]
//! }
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use keyhold_policy::{
    Context, Evaluation, Policy, PolicyKind, Principal, PrincipalKind, PrincipalMatch, Request,
};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    description: String,
    #[serde(default)]
    principals: BTreeMap<String, PrincipalSpec>,
    #[serde(default)]
    defaults: Defaults,
    cases: Vec<Case>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Defaults {
    kind: Option<String>,
    action: Option<String>,
    resource: Option<String>,
    principal: Option<PrincipalRef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    rule: String,
    source: String,
    kind: Option<String>,
    policy: Value,
    #[serde(default)]
    request: RequestSpec,
    expected: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RequestSpec {
    principal: Option<PrincipalRef>,
    action: Option<String>,
    resource: Option<String>,
    #[serde(default)]
    context: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum PrincipalRef {
    Alias(String),
    Inline(PrincipalSpec),
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct PrincipalSpec {
    #[serde(default)]
    arn: String,
    #[serde(default)]
    account: String,
    kind: String,
    role_arn: Option<String>,
    service: Option<String>,
}

fn parse_kind(text: &str) -> Result<PolicyKind, String> {
    match text {
        "Resource" => Ok(PolicyKind::Resource),
        "Identity" => Ok(PolicyKind::Identity),
        "Trust" => Ok(PolicyKind::Trust),
        other => Err(format!("unknown policy kind {other:?}")),
    }
}

fn principal_kind(text: &str) -> Result<PrincipalKind, String> {
    Ok(match text {
        "Root" => PrincipalKind::Root,
        "User" => PrincipalKind::User,
        "AssumedRole" => PrincipalKind::AssumedRole,
        "Role" => PrincipalKind::Role,
        "Service" => PrincipalKind::Service,
        "Anonymous" => PrincipalKind::Anonymous,
        other => return Err(format!("unknown principal kind {other:?}")),
    })
}

fn show(evaluation: Evaluation) -> String {
    match evaluation {
        Evaluation::ExplicitDeny => "ExplicitDeny".into(),
        Evaluation::NotApplicable => "NotApplicable".into(),
        Evaluation::Allow { principal_match } => format!(
            "Allow:{}",
            match principal_match {
                PrincipalMatch::Direct => "Direct",
                PrincipalMatch::Account => "Account",
                PrincipalMatch::NotApplicable => "NotApplicable",
            }
        ),
    }
}

fn run_case(file: &File, case: &Case) -> Result<(), String> {
    if case.rule.trim().is_empty() || !case.source.starts_with("https://") {
        return Err("every case needs a rule and an https source".into());
    }
    let kind = parse_kind(
        case.kind
            .as_deref()
            .or(file.defaults.kind.as_deref())
            .unwrap_or("Resource"),
    )?;
    let text = serde_json::to_string(&case.policy).map_err(|e| e.to_string())?;
    let policy = Policy::parse(&text, kind).map_err(|e| format!("policy refused: {e:?}"))?;

    let principal_ref = case
        .request
        .principal
        .clone()
        .or_else(|| file.defaults.principal.clone())
        .ok_or("no principal")?;
    let spec = match principal_ref {
        PrincipalRef::Inline(spec) => spec,
        PrincipalRef::Alias(alias) => file
            .principals
            .get(&alias)
            .cloned()
            .ok_or_else(|| format!("unknown principal alias {alias:?}"))?,
    };
    let principal = Principal {
        arn: &spec.arn,
        account: &spec.account,
        kind: principal_kind(&spec.kind)?,
        role_arn: spec.role_arn.as_deref(),
        service: spec.service.as_deref(),
    };
    let mut context = Context::new();
    for (key, values) in &case.request.context {
        context.set_values(key, values.iter().cloned());
    }
    let action = case
        .request
        .action
        .as_deref()
        .or(file.defaults.action.as_deref())
        .ok_or("no action")?;
    let resource = case
        .request
        .resource
        .as_deref()
        .or(file.defaults.resource.as_deref())
        .ok_or("no resource")?;
    let request = Request {
        principal: &principal,
        action,
        resource,
        context: &context,
    };
    let actual = show(policy.evaluate(&request));
    if actual == case.expected {
        Ok(())
    } else {
        Err(format!("expected {}, got {actual}", case.expected))
    }
}

#[test]
fn evaluation_tables() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/evaluation");
    let mut paths: Vec<_> = fs::read_dir(&dir)
        .expect("tests/data/evaluation exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    let mut failures = Vec::new();
    let mut total = 0;
    let mut names = std::collections::BTreeSet::new();
    for path in &paths {
        let text = fs::read_to_string(path).expect("readable file");
        let file: File = match serde_json::from_str(&text) {
            Ok(file) => file,
            Err(e) => {
                failures.push(format!("{}: unreadable: {e}", path.display()));
                continue;
            }
        };
        assert!(
            !file.description.is_empty(),
            "{} needs a description",
            path.display()
        );
        for case in &file.cases {
            total += 1;
            let file_name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !names.insert((file_name.clone(), case.name.clone())) {
                failures.push(format!("{file_name}: duplicate case name {:?}", case.name));
            }
            if let Err(why) = run_case(&file, case) {
                failures.push(format!("{file_name} / {}: {why}", case.name));
            }
        }
    }
    assert!(total >= 150, "only {total} evaluation cases");
    assert!(
        failures.is_empty(),
        "{} of {total} evaluation cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
