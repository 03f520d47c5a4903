//! Parsing and validating a policy document into [`Policy`] and its [`Statement`]s.
//!
//! Grammar: IAM User Guide, "IAM JSON policy element reference". What each
//! [`PolicyKind`] requires or forbids:
//!
//! | element              | `Resource` (key / secret policy) | `Identity`     | `Trust`        |
//! |----------------------|----------------------------------|----------------|----------------|
//! | `Principal`/`NotPrincipal` | required                   | forbidden      | required       |
//! | `Action`/`NotAction` | required                         | required       | required       |
//! | `Resource`/`NotResource` | optional (absent: the statement never applies, as KMS documents) | required | forbidden |
//! | duplicate `Sid`      | allowed                          | refused        | refused        |

use crate::condition::Condition;
use crate::error::{ActionProblem, PolicyError};
use crate::json::Json;
use crate::pattern::{self, Tok};
use crate::principal::PrincipalSpec;
use crate::variables::Text;

/// Which kind of document is being parsed; decides which elements are required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// A resource-based policy: a KMS key policy or a Secrets Manager resource policy.
    /// `Principal` is required.
    Resource,
    /// An IAM identity policy (attached to a user, group or role). `Principal` is forbidden.
    Identity,
    /// An IAM role trust policy. `Principal` is required, `Resource` forbidden.
    Trust,
}

/// The policy language version, which decides whether `${...}` variables are recognized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `2012-10-17`: policy variables are substituted.
    V2012_10_17,
    /// `2008-10-17`, or no `Version`: `${...}` is literal text.
    V2008_10_17,
}

/// A parsed, validated policy document. Cheap to evaluate many times; parse once and cache.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub(crate) kind: PolicyKind,
    pub(crate) version: Option<Version>,
    pub(crate) id: Option<String>,
    pub(crate) statements: Vec<Statement>,
}

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The statement grants.
    Allow,
    /// The statement refuses, overriding every allow.
    Deny,
}

/// One statement of a policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub(crate) sid: Option<String>,
    pub(crate) effect: Effect,
    pub(crate) principal: PrincipalClause,
    pub(crate) action: Clause<Vec<Tok>>,
    pub(crate) resource: ResourceClause,
    pub(crate) conditions: Vec<Condition>,
}

/// Who a statement is for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PrincipalClause {
    /// Identity policies: the principal is whoever the policy is attached to.
    Implicit,
    Principal(Vec<PrincipalSpec>),
    NotPrincipal(Vec<PrincipalSpec>),
}

/// A list element and its `Not` form.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Clause<T> {
    Is(Vec<T>),
    IsNot(Vec<T>),
}

/// The `Resource` side of a statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ResourceClause {
    /// Trust policies: no resource.
    Any,
    /// A key policy statement without `Resource`: it never applies.
    Nothing,
    Listed(Clause<Text>),
}

impl Policy {
    /// Parses and validates a policy document of the given kind.
    ///
    /// Size limits are the caller's job (KMS: 32 KiB). Any input is safe: nesting deeper than
    /// 128 levels is refused as [`PolicyError::NotJson`].
    pub fn parse(text: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
        let json = Json::parse(text).map_err(|_| PolicyError::NotJson)?;
        if let Some(key) = json.find_duplicate_key() {
            return Err(PolicyError::DuplicateKey {
                key: key.to_owned(),
            });
        }
        let Json::Object(members) = &json else {
            return Err(PolicyError::NotAnObject);
        };
        let mut version = None;
        let mut id = None;
        let mut statement = None;
        for (name, value) in members {
            match name.as_str() {
                "Version" => version = Some(parse_version(value)?),
                "Id" => id = Some(string(value, "Id")?.to_owned()),
                "Statement" => statement = Some(value),
                other => {
                    return Err(PolicyError::UnsupportedElement {
                        element: other.to_owned(),
                    });
                }
            }
        }
        let variables = version == Some(Version::V2012_10_17);
        let statements: Vec<&Json> = match statement {
            Some(object @ Json::Object(_)) => vec![object],
            Some(Json::Array(items)) => items.iter().collect(),
            Some(_) => {
                return Err(PolicyError::InvalidType {
                    element: "Statement",
                });
            }
            None => Vec::new(),
        };
        if statements.is_empty() {
            return Err(PolicyError::MissingStatement);
        }
        let statements = statements
            .into_iter()
            .map(|value| Statement::parse(value, kind, variables))
            .collect::<Result<Vec<_>, _>>()?;
        if kind != PolicyKind::Resource {
            check_unique_sids(&statements)?;
        }
        Ok(Policy {
            kind,
            version,
            id,
            statements,
        })
    }

    /// The statements, in document order.
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }

    /// The kind this policy was parsed as.
    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// The `Version` element, if present.
    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// The `Id` element, if present.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// Every `AWS` principal named in a `Principal` or `NotPrincipal` element (account ids and
    /// ARNs, root ARNs normalized to `arn:PARTITION:iam::ACCOUNT:root`), so that the caller can
    /// refuse a key policy whose principals do not exist, as KMS does with
    /// [`PolicyError::InvalidPrincipal`].
    pub fn aws_principals(&self) -> Vec<String> {
        self.statements
            .iter()
            .flat_map(|s| match &s.principal {
                PrincipalClause::Principal(specs) | PrincipalClause::NotPrincipal(specs) => {
                    specs.as_slice()
                }
                PrincipalClause::Implicit => &[],
            })
            .filter_map(PrincipalSpec::aws_name)
            .collect()
    }

    /// The extra checks KMS applies to key policies (`CreateKey`, `PutKeyPolicy`): refuses
    /// `ForAllValues:` on the single-valued `kms:EncryptionContext:<key>` and
    /// `aws:RequestTag/<key>` keys (KMS developer guide, "AWS KMS condition keys").
    pub fn check_kms_key_policy(&self) -> Result<(), PolicyError> {
        for condition in self.statements.iter().flat_map(|s| &s.conditions) {
            if let Some(family) = condition.overly_permissive_key() {
                return Err(PolicyError::OverlyPermissiveCondition {
                    key: condition.key().to_owned(),
                    family,
                });
            }
        }
        Ok(())
    }
}

impl Statement {
    fn parse(value: &Json, kind: PolicyKind, variables: bool) -> Result<Statement, PolicyError> {
        let Json::Object(members) = value else {
            return Err(PolicyError::InvalidType {
                element: "Statement",
            });
        };
        let get = |name: &str| members.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        if let Some((name, _)) = members
            .iter()
            .find(|(name, _)| !STATEMENT_ELEMENTS.contains(&name.as_str()))
        {
            return Err(PolicyError::UnsupportedElement {
                element: name.clone(),
            });
        }
        let sid = get("Sid")
            .map(|v| string(v, "Sid").map(str::to_owned))
            .transpose()?;
        let effect = match get("Effect") {
            Some(Json::String(e)) if e == "Allow" => Effect::Allow,
            Some(Json::String(e)) if e == "Deny" => Effect::Deny,
            _ => return Err(PolicyError::InvalidEffect),
        };
        let principal = parse_principal(get("Principal"), get("NotPrincipal"), kind)?;
        let action = parse_action(get("Action"), get("NotAction"))?;
        let resource = parse_resource(get("Resource"), get("NotResource"), kind, variables)?;
        let conditions = get("Condition")
            .map(|c| Condition::parse_block(c, variables))
            .transpose()?
            .unwrap_or_default();
        Ok(Statement {
            sid,
            effect,
            principal,
            action,
            resource,
            conditions,
        })
    }

    /// The `Sid`, if any.
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    /// `Allow` or `Deny`.
    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// The parsed conditions (all must hold for the statement to apply).
    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
}

const STATEMENT_ELEMENTS: &[&str] = &[
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];

fn parse_version(value: &Json) -> Result<Version, PolicyError> {
    match value {
        Json::String(v) if v == "2012-10-17" => Ok(Version::V2012_10_17),
        Json::String(v) if v == "2008-10-17" => Ok(Version::V2008_10_17),
        _ => Err(PolicyError::InvalidVersion),
    }
}

fn string<'a>(value: &'a Json, element: &'static str) -> Result<&'a str, PolicyError> {
    match value {
        Json::String(s) => Ok(s),
        _ => Err(PolicyError::InvalidType { element }),
    }
}

/// A string or an array of strings.
fn strings<'a>(value: &'a Json, element: &'static str) -> Result<Vec<&'a str>, PolicyError> {
    match value {
        Json::String(s) => Ok(vec![s]),
        Json::Array(items) => items.iter().map(|item| string(item, element)).collect(),
        _ => Err(PolicyError::InvalidType { element }),
    }
}

/// Picks the one of `element` / `Not<element>` that is present.
fn either<'a>(
    is: Option<&'a Json>,
    is_not: Option<&'a Json>,
    element: &'static str,
) -> Result<Option<(bool, &'a Json)>, PolicyError> {
    match (is, is_not) {
        (Some(_), Some(_)) => Err(PolicyError::ConflictingElements { element }),
        (Some(v), None) => Ok(Some((false, v))),
        (None, Some(v)) => Ok(Some((true, v))),
        (None, None) => Ok(None),
    }
}

fn parse_principal(
    is: Option<&Json>,
    is_not: Option<&Json>,
    kind: PolicyKind,
) -> Result<PrincipalClause, PolicyError> {
    let found = either(is, is_not, "Principal")?;
    match (kind, found) {
        (PolicyKind::Identity, None) => Ok(PrincipalClause::Implicit),
        (PolicyKind::Identity, Some(_)) => Err(PolicyError::PrincipalNotAllowed),
        (_, None) => Err(PolicyError::MissingPrincipal),
        (_, Some((false, value))) => Ok(PrincipalClause::Principal(PrincipalSpec::parse_element(
            value,
        )?)),
        (_, Some((true, value))) => Ok(PrincipalClause::NotPrincipal(
            PrincipalSpec::parse_element(value)?,
        )),
    }
}

fn parse_action(is: Option<&Json>, is_not: Option<&Json>) -> Result<Clause<Vec<Tok>>, PolicyError> {
    let Some((negated, value)) = either(is, is_not, "Action")? else {
        return Err(PolicyError::MissingAction);
    };
    let texts = strings(value, "Action")?;
    if texts.is_empty() {
        return Err(PolicyError::MissingAction);
    }
    let mut actions = Vec::with_capacity(texts.len());
    for text in texts {
        check_action(text)?;
        actions.push(pattern::compile(text, true));
    }
    Ok(if negated {
        Clause::IsNot(actions)
    } else {
        Clause::Is(actions)
    })
}

/// `*`, or `vendor:name` with exactly one colon.
fn check_action(text: &str) -> Result<(), PolicyError> {
    if text == "*" {
        return Ok(());
    }
    let problem = match text.split_once(':') {
        None => ActionProblem::NoVendor,
        Some((_, name)) if name.contains(':') => ActionProblem::ExtraColon,
        Some((vendor, name)) if vendor.is_empty() || name.is_empty() => ActionProblem::NoVendor,
        Some(_) => return Ok(()),
    };
    Err(PolicyError::InvalidAction {
        action: text.to_owned(),
        problem,
    })
}

fn parse_resource(
    is: Option<&Json>,
    is_not: Option<&Json>,
    kind: PolicyKind,
    variables: bool,
) -> Result<ResourceClause, PolicyError> {
    let found = either(is, is_not, "Resource")?;
    let (negated, value) = match (kind, found) {
        (PolicyKind::Trust, None) => return Ok(ResourceClause::Any),
        (PolicyKind::Trust, Some(_)) => return Err(PolicyError::ResourceNotAllowed),
        (PolicyKind::Identity, None) => return Err(PolicyError::MissingResource),
        (PolicyKind::Resource, None) => return Ok(ResourceClause::Nothing),
        (_, Some(found)) => found,
    };
    let texts = strings(value, "Resource")?;
    if texts.is_empty() {
        return match kind {
            PolicyKind::Identity => Err(PolicyError::MissingResource),
            _ => Ok(ResourceClause::Nothing),
        };
    }
    let mut resources = Vec::with_capacity(texts.len());
    for text in texts {
        if text.is_empty() {
            return Err(PolicyError::InvalidResource);
        }
        resources.push(Text::new(text, variables, true));
    }
    Ok(ResourceClause::Listed(if negated {
        Clause::IsNot(resources)
    } else {
        Clause::Is(resources)
    }))
}

fn check_unique_sids(statements: &[Statement]) -> Result<(), PolicyError> {
    let mut seen = std::collections::BTreeSet::new();
    for sid in statements.iter().filter_map(Statement::sid) {
        if !sid.is_empty() && !seen.insert(sid) {
            return Err(PolicyError::DuplicateSid {
                sid: sid.to_owned(),
            });
        }
    }
    Ok(())
}
