//! Parameter policies: a JSON array of `Expiration`, `ExpirationNotification` and
//! `NoChangeNotification` policies, accepted on advanced parameters only.
//!
//! ```json
//! [{"Type":"Expiration","Version":"1.0","Attributes":{"Timestamp":"2030-12-02T21:34:33.000Z"}},
//!  {"Type":"ExpirationNotification","Version":"1.0","Attributes":{"Before":"15","Unit":"Days"}},
//!  {"Type":"NoChangeNotification","Version":"1.0","Attributes":{"After":"20","Unit":"Days"}}]
//! ```
//!
//! Keyhold enforces `Expiration` (a background task deletes the parameter when it is due);
//! the two notification policies are validated and reported but send no event.

use keyhold_proto::Timestamp;
use keyhold_proto::ssm::ParameterInlinePolicy;
use serde_json::{Map, Value};

use super::error::SsmError;

/// At most this many policies per parameter.
const MAX_POLICIES: usize = 10;

/// One validated policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub kind: PolicyKind,
    /// The policy as AWS reports it (`PolicyText`): `{"Type":..,"Version":..,"Attributes":{..}}`.
    pub text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    /// Deletes the parameter at this time (epoch milliseconds).
    Expiration {
        at_ms: i64,
    },
    ExpirationNotification,
    NoChangeNotification,
}

impl PolicyKind {
    fn name(self) -> &'static str {
        match self {
            Self::Expiration { .. } => "Expiration",
            Self::ExpirationNotification => "ExpirationNotification",
            Self::NoChangeNotification => "NoChangeNotification",
        }
    }
}

/// Parses and validates a `Policies` document; `now_ms` rejects expirations in the past.
pub fn parse(document: &str, now_ms: i64) -> Result<Vec<Policy>, SsmError> {
    let value: Value = serde_json::from_str(document).map_err(|_| attribute("not JSON"))?;
    let items = match value {
        Value::Array(items) => items,
        Value::Object(_) => vec![value],
        _ => return Err(attribute("not a JSON array of policies")),
    };
    if items.len() > MAX_POLICIES {
        return Err(SsmError::PoliciesLimit);
    }
    let mut policies = Vec::with_capacity(items.len());
    for item in items {
        let policy = parse_one(item, now_ms)?;
        let same_kind = |p: &Policy| p.kind.name() == policy.kind.name();
        if policies.iter().any(same_kind) {
            return Err(SsmError::IncompatiblePolicy);
        }
        policies.push(policy);
    }
    let has_expiration = policies
        .iter()
        .any(|p| matches!(p.kind, PolicyKind::Expiration { .. }));
    let has_notification = policies
        .iter()
        .any(|p| p.kind == PolicyKind::ExpirationNotification);
    if has_notification && !has_expiration {
        return Err(SsmError::IncompatiblePolicy);
    }
    Ok(policies)
}

/// When the policies delete the parameter, if they do.
pub fn expiration_ms(policies: &[Policy]) -> Option<i64> {
    policies.iter().find_map(|p| match p.kind {
        PolicyKind::Expiration { at_ms } => Some(at_ms),
        _ => None,
    })
}

/// The policies as AWS reports them; a policy waiting for its time is `Pending`.
pub fn to_wire(policies: &[Policy]) -> Vec<ParameterInlinePolicy> {
    policies
        .iter()
        .map(|p| ParameterInlinePolicy {
            policy_text: Some(p.text.clone()),
            policy_type: Some(p.kind.name().to_owned()),
            policy_status: Some("Pending".to_owned()),
        })
        .collect()
}

/// Rebuilds a stored policy from its text (already validated when it was stored).
pub fn from_text(text: &str) -> Option<Policy> {
    let value: Value = serde_json::from_str(text).ok()?;
    parse_one(value, i64::MIN).ok()
}

fn parse_one(item: Value, now_ms: i64) -> Result<Policy, SsmError> {
    let Value::Object(map) = item else {
        return Err(attribute("a policy is not a JSON object"));
    };
    let kind_name = map
        .get("Type")
        .and_then(Value::as_str)
        .ok_or_else(|| attribute("Type is missing"))?;
    let version = map.get("Version").and_then(Value::as_str);
    if version != Some("1.0") {
        return Err(attribute("Version must be 1.0"));
    }
    let attributes = match map.get("Attributes") {
        Some(Value::Object(a)) => a,
        _ => return Err(attribute("Attributes are missing")),
    };
    let kind = match kind_name {
        "Expiration" => {
            let at = attributes
                .get("Timestamp")
                .and_then(Value::as_str)
                .and_then(parse_timestamp)
                .ok_or_else(|| attribute("Timestamp is not an ISO 8601 date and time"))?;
            if at.as_millis() <= now_ms {
                return Err(attribute("Timestamp is in the past"));
            }
            PolicyKind::Expiration {
                at_ms: at.as_millis(),
            }
        }
        "ExpirationNotification" => {
            check_period(attributes, "Before")?;
            PolicyKind::ExpirationNotification
        }
        "NoChangeNotification" => {
            check_period(attributes, "After")?;
            PolicyKind::NoChangeNotification
        }
        other => {
            return Err(SsmError::InvalidPolicyType {
                policy_type: other.to_owned(),
            });
        }
    };
    Ok(Policy {
        kind,
        text: canonical_text(kind.name(), attributes),
    })
}

/// `Before`/`After`: a positive whole number (as a string or a number) of `Days` or `Hours`.
fn check_period(attributes: &Map<String, Value>, field: &str) -> Result<(), SsmError> {
    let amount = match attributes.get(field) {
        Some(Value::String(s)) => s.parse::<u32>().ok(),
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        _ => None,
    };
    if amount.is_none_or(|a| a == 0) {
        return Err(attribute("Before/After must be a positive whole number"));
    }
    match attributes.get("Unit").and_then(Value::as_str) {
        Some("Days" | "Hours") => Ok(()),
        _ => Err(attribute("Unit must be Days or Hours")),
    }
}

/// ISO_INSTANT (`2020-05-13T00:00:00.000Z`) or ISO_OFFSET_DATE_TIME, including Java's
/// offset with seconds (`+10:30:00`).
fn parse_timestamp(text: &str) -> Option<Timestamp> {
    Timestamp::parse_iso8601(text).or_else(|| {
        let trimmed = text.strip_suffix(":00")?;
        Timestamp::parse_iso8601(trimmed)
    })
}

fn canonical_text(kind: &str, attributes: &Map<String, Value>) -> String {
    let attributes = serde_json::to_string(attributes).unwrap_or_else(|_| "{}".to_owned());
    format!("{{\"Type\":\"{kind}\",\"Version\":\"1.0\",\"Attributes\":{attributes}}}")
}

fn attribute(detail: &'static str) -> SsmError {
    SsmError::InvalidPolicyAttribute { detail }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn the_three_policy_types() {
        let doc = r#"[
          {"Type":"Expiration","Version":"1.0","Attributes":{"Timestamp":"2030-12-02T21:34:33.000Z"}},
          {"Type":"ExpirationNotification","Version":"1.0","Attributes":{"Before":"15","Unit":"Days"}},
          {"Type":"NoChangeNotification","Version":"1.0","Attributes":{"After":20,"Unit":"Hours"}}]"#;
        let p = parse(doc, NOW).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(
            expiration_ms(&p),
            Timestamp::parse_iso8601("2030-12-02T21:34:33Z").map(Timestamp::as_millis)
        );
        assert_eq!(
            p[0].text,
            r#"{"Type":"Expiration","Version":"1.0","Attributes":{"Timestamp":"2030-12-02T21:34:33.000Z"}}"#
        );
        assert_eq!(from_text(&p[1].text).unwrap(), p[1]);
        let offset = r#"[{"Type":"Expiration","Version":"1.0","Attributes":{"Timestamp":"2030-11-01T22:13:48.87+10:30:00"}}]"#;
        assert!(parse(offset, NOW).is_ok());
    }

    #[test]
    fn invalid_policies() {
        assert!(matches!(
            parse(
                r#"[{"Type":"Rotate","Version":"1.0","Attributes":{}}]"#,
                NOW
            ),
            Err(SsmError::InvalidPolicyType { .. })
        ));
        for bad in [
            "nope",
            "[1]",
            r#"[{"Type":"Expiration","Version":"2.0","Attributes":{"Timestamp":"2030-01-01T00:00:00Z"}}]"#,
            r#"[{"Type":"Expiration","Version":"1.0","Attributes":{"Timestamp":"tomorrow"}}]"#,
            r#"[{"Type":"Expiration","Version":"1.0","Attributes":{"Timestamp":"2001-01-01T00:00:00Z"}}]"#,
            r#"[{"Type":"NoChangeNotification","Version":"1.0","Attributes":{"After":"0","Unit":"Days"}}]"#,
            r#"[{"Type":"NoChangeNotification","Version":"1.0","Attributes":{"After":"3","Unit":"Weeks"}}]"#,
        ] {
            assert!(
                matches!(
                    parse(bad, NOW),
                    Err(SsmError::InvalidPolicyAttribute { .. })
                ),
                "{bad}"
            );
        }
        let twice = r#"[{"Type":"Expiration","Version":"1.0","Attributes":{"Timestamp":"2030-01-01T00:00:00Z"}},
                        {"Type":"Expiration","Version":"1.0","Attributes":{"Timestamp":"2031-01-01T00:00:00Z"}}]"#;
        assert_eq!(parse(twice, NOW), Err(SsmError::IncompatiblePolicy));
        let orphan = r#"[{"Type":"ExpirationNotification","Version":"1.0","Attributes":{"Before":"1","Unit":"Days"}}]"#;
        assert_eq!(parse(orphan, NOW), Err(SsmError::IncompatiblePolicy));
        let many: Vec<String> = (0..11)
            .map(|_| r#"{"Type":"NoChangeNotification","Version":"1.0","Attributes":{"After":"1","Unit":"Days"}}"#.to_owned())
            .collect();
        assert_eq!(
            parse(&format!("[{}]", many.join(",")), NOW),
            Err(SsmError::PoliciesLimit)
        );
        assert!(parse("[]", NOW).unwrap().is_empty());
    }
}
