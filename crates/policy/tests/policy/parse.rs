//! Table-driven parse tests: every `tests/data/parse/*.json` file, all failures at once.
//!
//! File format:
//! ```json
//! {
//!   "description": "what the file covers",
//!   "cases": [ {
//!     "name": "...", "rule": "...", "source": "https://...",
//!     "kind": "Resource | Identity | Trust",
//!     "policy": { ... }            // or "policy_text": "raw text, for invalid JSON"
//!     "expected": "Ok" | "<PolicyError variant name>",
//!     "aws_message": "...",        // optional: expected PolicyError::aws_message
//!     "iam_message": "...",        // optional: expected PolicyError::iam_message
//!     "no_aws_message": true       // optional: PolicyError::aws_message must be None
//!   } ]
//! }
//! ```

use std::fs;
use std::path::Path;

use keyhold_policy::{Policy, PolicyError, PolicyKind};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    description: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    rule: String,
    source: String,
    kind: String,
    policy: Option<Value>,
    policy_text: Option<String>,
    expected: String,
    aws_message: Option<String>,
    iam_message: Option<String>,
    #[serde(default)]
    no_aws_message: bool,
}

fn kind(text: &str) -> Result<PolicyKind, String> {
    match text {
        "Resource" => Ok(PolicyKind::Resource),
        "Identity" => Ok(PolicyKind::Identity),
        "Trust" => Ok(PolicyKind::Trust),
        other => Err(format!("unknown policy kind {other:?}")),
    }
}

/// The variant name of an error, from its `Debug` form.
fn variant(error: &PolicyError) -> String {
    let debug = format!("{error:?}");
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn run_case(case: &Case) -> Result<(), String> {
    if case.rule.trim().is_empty() || !case.source.starts_with("https://") {
        return Err("every case needs a rule and an https source".into());
    }
    let text = match (&case.policy, &case.policy_text) {
        (Some(policy), None) => serde_json::to_string(policy).map_err(|e| e.to_string())?,
        (None, Some(text)) => text.clone(),
        _ => return Err("give exactly one of policy and policy_text".into()),
    };
    let result = Policy::parse(&text, kind(&case.kind)?);
    match (&result, case.expected.as_str()) {
        (Ok(_), "Ok") => return Ok(()),
        (Ok(_), expected) => return Err(format!("expected {expected}, got Ok")),
        (Err(e), "Ok") => return Err(format!("expected Ok, got {e:?}")),
        (Err(e), expected) if variant(e) != expected => {
            return Err(format!("expected {expected}, got {e:?}"));
        }
        (Err(_), _) => {}
    }
    let Err(error) = result else { return Ok(()) };
    if let Some(message) = &case.aws_message
        && error.aws_message() != Some(message.as_str())
    {
        return Err(format!(
            "aws_message: expected {message:?}, got {:?}",
            error.aws_message()
        ));
    }
    if case.no_aws_message && error.aws_message().is_some() {
        return Err(format!(
            "aws_message: expected none, got {:?}",
            error.aws_message()
        ));
    }
    if let Some(message) = &case.iam_message
        && error.iam_message() != Some(message.as_str())
    {
        return Err(format!(
            "iam_message: expected {message:?}, got {:?}",
            error.iam_message()
        ));
    }
    Ok(())
}

#[test]
fn parse_tables() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/parse");
    let mut paths: Vec<_> = fs::read_dir(&dir)
        .expect("tests/data/parse exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    let mut failures = Vec::new();
    let mut total = 0;
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
            if let Err(why) = run_case(case) {
                let file_name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                failures.push(format!("{file_name} / {}: {why}", case.name));
            }
        }
    }
    assert!(total > 0, "no parse cases found");
    assert!(
        failures.is_empty(),
        "{} of {total} parse cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
