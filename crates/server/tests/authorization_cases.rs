//! Table-driven tests of the *layered* authorization decision: how a KMS key policy or an
//! optional resource policy (a secret's), the caller's identity policies, the accounts
//! involved and KMS grants combine. What one policy says about one request is covered by
//! `crates/policy/tests/data/evaluation`; these cases hold every policy fixed in meaning and
//! vary the layers. Every `tests/data/authorization/*.json` file, every case, all failures
//! reported at once.
//!
//! A file checks one of three things (`"check"`):
//!
//! - `"decision"` (the default): [`authorize`] on one request. `expected` is `"allow"` or a
//!   [`DenyReason`] variant; `message`, when given, is the exact
//!   [`keyhold_server::authz::Denied::message`]. A case may add a `grant` of the key: it is
//!   consulted as KMS consults grants, through KMS's own grant layer
//!   ([`keyhold_server::kms::authz::grants_allow`]): only when the policies refuse for want
//!   of an allow, never over an explicit deny.
//! - `"constraint"`: [`Constraint::admits`] on one encryption context; `expected` is
//!   `"admitted"` or `"refused"`.
//! - `"strictness"`: whether a grant holding `CreateGrant` may create a child grant:
//!   operations a subset of the parent's, constraint [`Constraint::at_least_as_strict`];
//!   `expected` is `"permitted"` or `"refused"`.
//!
//! Decision file format (every case field but `name`, `rule`, `source` and `expected` falls
//! back on `defaults`):
//! ```json
//! {
//!   "description": "what the file covers",
//!   "principals": { "alice": { "account": "111122223333", "kind": "User",
//!                              "arn": "arn:aws:iam::111122223333:user/alice" } },
//!   "policies": { "allow_decrypt": { "Version": "2012-10-17", "Statement": [ ... ] } },
//!   "defaults": { "caller": "alice", "layer": "key_policy", "resource_policy": "...",
//!                 "identity_policies": [], "action": "kms:Decrypt", "resource": "arn:..." },
//!   "cases": [ {
//!     "name": "...", "rule": "the AWS rule", "source": "https://docs.aws...",
//!     "caller": "alice", "identity_policies": ["allow_decrypt" or {inline}],
//!     "layer": "key_policy | optional | none", "resource_policy": "name" or {inline} or null,
//!     "action": "...", "resource": "...", "resource_account": "(default: the ARN's)",
//!     "context": { "aws:SourceIp": ["192.0.2.1"] },
//!     "encryption_context": { "Department": "IT" },
//!     "grant": { "grantee": "arn:...", "operations": ["Decrypt"],
//!                "constraint": { "EncryptionContextSubset": { ... } }, "key_spec": "..." },
//!     "expected": "allow | ExplicitDenyInIdentityPolicy | ...", "message": "User: ..."
//!   } ]
//! }
//! ```
//! `encryption_context` also fills `kms:EncryptionContext:<key>` and
//! `kms:EncryptionContextKeys`, as KMS derives them from the request.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::sync::Arc;

use keyhold_policy::{Context, Policy, PolicyKind};
use keyhold_proto::kms::{GrantOperation, KeySpec};
use keyhold_server::authz::{Access, Denied, DenyReason, ResourceRule, authorize};
use keyhold_server::context::{Principal, PrincipalKind};
use keyhold_server::kms::authz::{Facts, GrantRequest, grants_allow};
use keyhold_server::kms::grant::{Constraint, Grant};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    description: String,
    #[serde(default)]
    check: Check,
    #[serde(default)]
    principals: BTreeMap<String, PrincipalSpec>,
    #[serde(default)]
    policies: BTreeMap<String, Value>,
    #[serde(default)]
    defaults: Defaults,
    /// Read by the shape `check` names.
    cases: Vec<Value>,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Check {
    #[default]
    Decision,
    Constraint,
    Strictness,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Defaults {
    caller: Option<String>,
    identity_policies: Option<Vec<PolicyRef>>,
    layer: Option<Layer>,
    #[serde(default, deserialize_with = "present")]
    resource_policy: Option<Option<PolicyRef>>,
    action: Option<String>,
    resource: Option<String>,
    resource_account: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionCase {
    name: String,
    rule: String,
    source: String,
    caller: Option<String>,
    identity_policies: Option<Vec<PolicyRef>>,
    layer: Option<Layer>,
    #[serde(default, deserialize_with = "present")]
    resource_policy: Option<Option<PolicyRef>>,
    action: Option<String>,
    resource: Option<String>,
    resource_account: Option<String>,
    #[serde(default)]
    context: BTreeMap<String, Vec<String>>,
    encryption_context: Option<BTreeMap<String, String>>,
    grant: Option<GrantSpec>,
    expected: String,
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConstraintCase {
    name: String,
    rule: String,
    source: String,
    constraint: ConstraintSpec,
    encryption_context: BTreeMap<String, String>,
    expected: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StrictnessCase {
    name: String,
    rule: String,
    source: String,
    parent: Option<ConstraintSpec>,
    child: Option<ConstraintSpec>,
    #[serde(default = "create_grant_and_decrypt")]
    parent_operations: Vec<String>,
    #[serde(default = "decrypt")]
    child_operations: Vec<String>,
    expected: String,
}

fn create_grant_and_decrypt() -> Vec<String> {
    vec!["CreateGrant".into(), "Decrypt".into()]
}

fn decrypt() -> Vec<String> {
    vec!["Decrypt".into()]
}

/// Which resource policy takes part, as [`ResourceRule`] says.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Layer {
    KeyPolicy,
    Optional,
    None,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum PolicyRef {
    Named(String),
    Inline(Value),
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct PrincipalSpec {
    account: String,
    kind: String,
    /// Defaults to the account root's ARN for `Root`.
    arn: Option<String>,
    /// For `AssumedRole`: the role behind the session.
    role_arn: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantSpec {
    grantee: String,
    operations: Vec<String>,
    constraint: Option<ConstraintSpec>,
    /// Defaults to `SYMMETRIC_DEFAULT`.
    key_spec: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConstraintSpec {
    #[serde(rename = "EncryptionContextEquals")]
    equals: Option<BTreeMap<String, String>>,
    #[serde(rename = "EncryptionContextSubset")]
    subset: Option<BTreeMap<String, String>>,
}

/// Tells a member set to `null` (`Some(None)`) from an absent one (`None`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

impl ConstraintSpec {
    fn constraint(&self) -> Result<Constraint, String> {
        match (&self.equals, &self.subset) {
            (Some(pairs), None) => Ok(Constraint::Equals(pairs.clone())),
            (None, Some(pairs)) => Ok(Constraint::Subset(pairs.clone())),
            _ => Err("a constraint is exactly one of EncryptionContextEquals/Subset".into()),
        }
    }
}

fn operations(names: &[String]) -> Result<Vec<GrantOperation>, String> {
    names
        .iter()
        .map(|name| GrantOperation::parse(name).ok_or_else(|| format!("unknown operation {name}")))
        .collect()
}

fn grant(
    grantee: &str,
    operations: Vec<GrantOperation>,
    constraint: Option<Constraint>,
    account: &str,
) -> Grant {
    Grant {
        id: "0".repeat(64),
        key_id: "1234abcd-12ab-34cd-56ef-1234567890ab".into(),
        name: None,
        grantee: grantee.into(),
        retiring: None,
        operations,
        constraint,
        issuing_account: account.into(),
        creation_ms: 0,
    }
}

fn principal(
    spec: &PrincipalSpec,
    identity_policies: Vec<Arc<Policy>>,
) -> Result<Principal, String> {
    let last_segment = |arn: &str| arn.rsplit('/').next().unwrap_or_default().to_owned();
    let arn = spec
        .arn
        .clone()
        .unwrap_or_else(|| format!("arn:aws:iam::{}:root", spec.account));
    let kind = match spec.kind.as_str() {
        "Root" => PrincipalKind::Root,
        "User" => PrincipalKind::User {
            name: last_segment(&arn),
            user_id: "AIDACKCEVSQ6C2EXAMPLE".into(),
        },
        "AssumedRole" => PrincipalKind::AssumedRole {
            role_arn: spec
                .role_arn
                .clone()
                .ok_or("an AssumedRole needs a role_arn")?,
            role_id: "AROADBQP57FF2AEXAMPLE".into(),
            session_name: last_segment(&arn),
        },
        other => return Err(format!("unknown principal kind {other:?}")),
    };
    Ok(Principal {
        account: spec.account.clone(),
        arn,
        kind,
        access_key_id: None,
        temporary_credentials: matches!(spec.kind.as_str(), "AssumedRole"),
        identity_policies: Arc::from(identity_policies),
        tags: Arc::from(Vec::new()),
    })
}

fn parse_policy(file: &File, reference: &PolicyRef, kind: PolicyKind) -> Result<Policy, String> {
    let document = match reference {
        PolicyRef::Inline(document) => document,
        PolicyRef::Named(name) => file
            .policies
            .get(name)
            .ok_or_else(|| format!("unknown policy {name:?}"))?,
    };
    let text = serde_json::to_string(document).map_err(|e| e.to_string())?;
    Policy::parse(&text, kind).map_err(|e| format!("policy refused: {e:?}"))
}

fn is_explicit(denied: &Denied) -> bool {
    matches!(
        denied.reason,
        DenyReason::ExplicitDenyInIdentityPolicy | DenyReason::ExplicitDenyInResourcePolicy
    )
}

fn run_decision(file: &File, case: &DecisionCase) -> Result<(), String> {
    let defaults = &file.defaults;
    let alias = case
        .caller
        .as_ref()
        .or(defaults.caller.as_ref())
        .ok_or("no caller")?;
    let spec = file
        .principals
        .get(alias)
        .ok_or_else(|| format!("unknown principal {alias:?}"))?;
    let identity = case
        .identity_policies
        .as_ref()
        .or(defaults.identity_policies.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|p| parse_policy(file, p, PolicyKind::Identity).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    let caller = principal(spec, identity)?;

    let resource_policy = match case
        .resource_policy
        .as_ref()
        .or(defaults.resource_policy.as_ref())
    {
        Some(Some(reference)) => Some(parse_policy(file, reference, PolicyKind::Resource)?),
        Some(None) | None => None,
    };
    let layer = case.layer.or(defaults.layer).ok_or("no layer")?;
    let rule = match layer {
        Layer::KeyPolicy => ResourceRule::KeyPolicy(resource_policy.as_ref()),
        Layer::Optional => ResourceRule::Optional(resource_policy.as_ref()),
        Layer::None if resource_policy.is_some() => {
            return Err("layer \"none\" takes no resource policy".into());
        }
        Layer::None => ResourceRule::None,
    };
    let action = case
        .action
        .as_deref()
        .or(defaults.action.as_deref())
        .ok_or("no action")?;
    let resource = case
        .resource
        .as_deref()
        .or(defaults.resource.as_deref())
        .ok_or("no resource")?;
    let resource_account = case
        .resource_account
        .as_deref()
        .or(defaults.resource_account.as_deref())
        .or_else(|| resource.split(':').nth(4))
        .ok_or("no resource account")?;

    let mut context = Context::new();
    for (key, values) in &case.context {
        context.set_values(key, values.iter().cloned());
    }
    let empty = BTreeMap::new();
    if let Some(ec) = &case.encryption_context {
        context.set_values("kms:EncryptionContextKeys", ec.keys().cloned());
        for (key, value) in ec {
            context.add(&format!("kms:EncryptionContext:{key}"), value.clone());
        }
    }
    let access = Access {
        principal: &caller,
        action,
        resource,
        resource_account,
        rule,
        context: &context,
    };
    let mut outcome = authorize(&access);
    if let (Err(denied), Some(spec)) = (&outcome, &case.grant)
        && !is_explicit(denied)
        && grant_allows(
            spec,
            &access,
            case.encryption_context.as_ref().unwrap_or(&empty),
        )?
    {
        outcome = Ok(());
    }

    let actual = match &outcome {
        Ok(()) => "allow".to_owned(),
        Err(denied) => format!("{:?}", denied.reason),
    };
    if actual != case.expected {
        return Err(format!("expected {}, got {actual}", case.expected));
    }
    match (&case.message, &outcome) {
        (None, _) => Ok(()),
        (Some(_), Ok(())) => Err("a message needs a denial".into()),
        (Some(expected), Err(denied)) if denied.message() == *expected => Ok(()),
        (Some(expected), Err(denied)) => Err(format!(
            "message:\n  expected {expected}\n  got      {}",
            denied.message()
        )),
    }
}

/// Whether `spec`, a grant of the key, lets the caller perform the action: KMS's own
/// grant layer ([`grants_allow`]), with the caller's identity policies as its delegated
/// half.
fn grant_allows(
    spec: &GrantSpec,
    access: &Access<'_>,
    encryption_context: &BTreeMap<String, String>,
) -> Result<bool, String> {
    let operation = access
        .action
        .strip_prefix("kms:")
        .and_then(GrantOperation::parse)
        .ok_or("the action is no grant operation")?;
    if operation == GrantOperation::CreateGrant {
        return Err("CreateGrant through a grant is checked by the strictness files".into());
    }
    let key_spec = spec.key_spec.as_deref().unwrap_or("SYMMETRIC_DEFAULT");
    let key_spec = KeySpec::parse(key_spec).ok_or("unknown key_spec")?;
    let constraint = spec
        .constraint
        .as_ref()
        .map(ConstraintSpec::constraint)
        .transpose()?;
    let grant = grant(
        &spec.grantee,
        operations(&spec.operations)?,
        constraint,
        access.resource_account,
    );
    let caller = access.principal;
    let caller_root_arn = format!("arn:aws:iam::{}:root", caller.account);
    let facts = Facts {
        encryption_context: Some(encryption_context),
        new_grant: None,
        alias_name: None,
        rotation_period_in_days: None,
        ..Facts::default()
    };
    let request = GrantRequest {
        caller,
        caller_root_arn: &caller_root_arn,
        key_account: access.resource_account,
        key_spec,
        operation,
        facts: &facts,
    };
    let identity_only = Access {
        resource_account: &caller.account,
        rule: ResourceRule::None,
        ..*access
    };
    Ok(grants_allow(&request, [&grant], || {
        authorize(&identity_only).is_ok()
    }))
}

fn run_constraint(case: &ConstraintCase) -> Result<(), String> {
    let admitted = case
        .constraint
        .constraint()?
        .admits(&case.encryption_context);
    let actual = if admitted { "admitted" } else { "refused" };
    if actual == case.expected {
        Ok(())
    } else {
        Err(format!("expected {}, got {actual}", case.expected))
    }
}

fn run_strictness(case: &StrictnessCase) -> Result<(), String> {
    let parent_constraint = case
        .parent
        .as_ref()
        .map(ConstraintSpec::constraint)
        .transpose()?;
    let child_constraint = case
        .child
        .as_ref()
        .map(ConstraintSpec::constraint)
        .transpose()?;
    let parent = grant(
        "arn:aws:iam::111122223333:user/exampleUser",
        operations(&case.parent_operations)?,
        parent_constraint,
        "111122223333",
    );
    if !parent.allows(GrantOperation::CreateGrant) {
        return Err("the parent grant must allow CreateGrant".into());
    }
    let child_operations = operations(&case.child_operations)?;
    let permitted = child_operations.iter().all(|op| parent.allows(*op))
        && Constraint::at_least_as_strict(child_constraint.as_ref(), parent.constraint.as_ref());
    let actual = if permitted { "permitted" } else { "refused" };
    if actual == case.expected {
        Ok(())
    } else {
        Err(format!("expected {}, got {actual}", case.expected))
    }
}

/// Reads one case in the shape its file's `check` names: its name and outcome.
fn run_case(file: &File, case: &Value) -> (String, Result<(), String>) {
    fn read<T: for<'de> Deserialize<'de>>(case: &Value) -> Result<T, String> {
        T::deserialize(case).map_err(|e| format!("unreadable case: {e}"))
    }
    fn documented(name: &str, rule: &str, source: &str) -> Result<(), String> {
        if name.trim().is_empty() || rule.trim().is_empty() || !source.starts_with("https://") {
            return Err("every case needs a name, a rule and an https source".into());
        }
        Ok(())
    }
    let fallback = case
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>")
        .to_owned();
    let outcome = match file.check {
        Check::Decision => read::<DecisionCase>(case).map(|c| {
            let outcome =
                documented(&c.name, &c.rule, &c.source).and_then(|()| run_decision(file, &c));
            (c.name, outcome)
        }),
        Check::Constraint => read::<ConstraintCase>(case).map(|c| {
            let outcome = documented(&c.name, &c.rule, &c.source).and_then(|()| run_constraint(&c));
            (c.name, outcome)
        }),
        Check::Strictness => read::<StrictnessCase>(case).map(|c| {
            let outcome = documented(&c.name, &c.rule, &c.source).and_then(|()| run_strictness(&c));
            (c.name, outcome)
        }),
    };
    outcome.unwrap_or_else(|e| (fallback, Err(e)))
}

#[test]
fn authorization_tables() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/authorization");
    let mut paths: Vec<_> = fs::read_dir(&dir)
        .expect("tests/data/authorization exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    let mut failures = Vec::new();
    let mut total = 0;
    let mut names = BTreeSet::new();
    for path in &paths {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = fs::read_to_string(path).expect("readable file");
        let file: File = match serde_json::from_str(&text) {
            Ok(file) => file,
            Err(e) => {
                failures.push(format!("{file_name}: unreadable: {e}"));
                continue;
            }
        };
        assert!(
            !file.description.is_empty(),
            "{file_name} needs a description"
        );
        for case in &file.cases {
            total += 1;
            let (name, outcome) = run_case(&file, case);
            if !names.insert((file_name.clone(), name.clone())) {
                failures.push(format!("{file_name}: duplicate case name {name:?}"));
            }
            if let Err(why) = outcome {
                failures.push(format!("{file_name} / {name}: {why}"));
            }
        }
    }
    assert!(total >= 100, "only {total} authorization cases");
    assert!(
        failures.is_empty(),
        "{} of {total} authorization cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
