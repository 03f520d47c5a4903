//! The `Condition` element: operators, set qualifiers, and how absent keys evaluate.
//!
//! Sources: IAM User Guide, "IAM JSON policy elements: Condition operators" and "Conditions
//! with multiple context keys or values".
//! - Operators in one `Condition` block are ANDed, keys under one operator are ANDed, the
//!   values listed for one key are ORed — NORed for a negated operator (`StringNotEquals`,
//!   `NotIpAddress`, `ArnNotLike`, ...).
//! - A key absent from the request makes a condition false, but *true* for a negated
//!   operator. `...IfExists` makes an absent key true for every operator. `Null` tests
//!   presence itself and takes no `IfExists`.
//! - `ForAnyValue:` is true when at least one request value satisfies the operator (false when
//!   the key is absent or empty); `ForAllValues:` when every request value does (true when the
//!   key is absent or empty). With a negated operator, "satisfies" means "matches none of the
//!   policy values".
//! - Without a qualifier, a key with several request values (which AWS documents only for
//!   multi-valued keys that need a qualifier) is treated like `ForAnyValue` for a positive
//!   operator and as "no request value matches" for a negated one.
//! - A request value the operator cannot read (a non-numeric value under `NumericEquals`)
//!   matches no policy value.
//! - Operator names are matched ignoring case; a qualifier on `Null` is accepted and ignored.

use std::fmt;

use crate::context::{ConditionContext, canonical_key};
use crate::error::PolicyError;
use crate::json::Json;
use crate::pattern::{self, Tok};
use crate::values::{self, Cidr, Decimal, Instant};
use crate::variables::{Text, Unresolved};

/// One `operator: { key: values }` entry of a `Condition` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    operator: Operator,
    qualifier: Option<Qualifier>,
    if_exists: bool,
    key: String,
    values: Values,
}

/// A comparison, without its `ForAnyValue:` / `ForAllValues:` qualifier or `IfExists`.
/// Variant names are AWS's operator names ([`Operator::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateNotEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    BinaryEquals,
    IpAddress,
    NotIpAddress,
    ArnEquals,
    ArnLike,
    ArnNotEquals,
    ArnNotLike,
    Null,
}

/// A set qualifier for multi-valued keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qualifier {
    /// `ForAnyValue:`.
    ForAnyValue,
    /// `ForAllValues:`.
    ForAllValues,
}

/// The policy values of one condition, parsed for the operator's type.
#[derive(Debug, Clone, PartialEq)]
enum Values {
    Text(Vec<Text>),
    Number(Vec<Decimal>),
    Date(Vec<Instant>),
    Bool(Vec<bool>),
    Binary(Vec<Vec<u8>>),
    Ip(Vec<Cidr>),
}

const OPERATORS: &[(&str, Operator)] = &[
    ("StringEquals", Operator::StringEquals),
    ("StringNotEquals", Operator::StringNotEquals),
    ("StringEqualsIgnoreCase", Operator::StringEqualsIgnoreCase),
    (
        "StringNotEqualsIgnoreCase",
        Operator::StringNotEqualsIgnoreCase,
    ),
    ("StringLike", Operator::StringLike),
    ("StringNotLike", Operator::StringNotLike),
    ("NumericEquals", Operator::NumericEquals),
    ("NumericNotEquals", Operator::NumericNotEquals),
    ("NumericLessThan", Operator::NumericLessThan),
    ("NumericLessThanEquals", Operator::NumericLessThanEquals),
    ("NumericGreaterThan", Operator::NumericGreaterThan),
    (
        "NumericGreaterThanEquals",
        Operator::NumericGreaterThanEquals,
    ),
    ("DateEquals", Operator::DateEquals),
    ("DateNotEquals", Operator::DateNotEquals),
    ("DateLessThan", Operator::DateLessThan),
    ("DateLessThanEquals", Operator::DateLessThanEquals),
    ("DateGreaterThan", Operator::DateGreaterThan),
    ("DateGreaterThanEquals", Operator::DateGreaterThanEquals),
    ("Bool", Operator::Bool),
    ("BinaryEquals", Operator::BinaryEquals),
    ("IpAddress", Operator::IpAddress),
    ("NotIpAddress", Operator::NotIpAddress),
    ("ArnEquals", Operator::ArnEquals),
    ("ArnLike", Operator::ArnLike),
    ("ArnNotEquals", Operator::ArnNotEquals),
    ("ArnNotLike", Operator::ArnNotLike),
    ("Null", Operator::Null),
];

impl Operator {
    /// The operator's name as AWS spells it.
    pub fn name(self) -> &'static str {
        OPERATORS
            .iter()
            .find(|(_, op)| *op == self)
            .map_or("", |(name, _)| name)
    }

    fn from_name(name: &str) -> Option<Operator> {
        OPERATORS
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|(_, op)| *op)
    }

    /// Whether this is a negated operator (`...Not...`), whose values are NORed.
    pub fn is_negated(self) -> bool {
        use Operator::*;
        matches!(
            self,
            StringNotEquals
                | StringNotEqualsIgnoreCase
                | StringNotLike
                | NumericNotEquals
                | DateNotEquals
                | NotIpAddress
                | ArnNotEquals
                | ArnNotLike
        )
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Condition {
    /// Parses a whole `Condition` element.
    pub(crate) fn parse_block(
        value: &Json,
        variables: bool,
    ) -> Result<Vec<Condition>, PolicyError> {
        let Json::Object(operators) = value else {
            return Err(PolicyError::InvalidType {
                element: "Condition",
            });
        };
        let mut conditions = Vec::new();
        for (operator_text, keys) in operators {
            let (operator, qualifier, if_exists) = parse_operator(operator_text)?;
            let Json::Object(keys) = keys else {
                return Err(PolicyError::InvalidType {
                    element: "Condition",
                });
            };
            for (key, raw) in keys {
                if key.is_empty() {
                    return Err(PolicyError::InvalidConditionKey {
                        operator: operator_text.clone(),
                    });
                }
                let bad_value = || PolicyError::InvalidConditionValue {
                    operator: operator_text.clone(),
                    key: key.clone(),
                };
                let texts = value_texts(raw).ok_or_else(bad_value)?;
                let values = parse_values(operator, &texts, variables).ok_or_else(bad_value)?;
                conditions.push(Condition {
                    operator,
                    qualifier,
                    if_exists,
                    key: canonical_key(key),
                    values,
                });
            }
        }
        Ok(conditions)
    }

    /// The comparison.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The set qualifier, if any.
    pub fn qualifier(&self) -> Option<Qualifier> {
        self.qualifier
    }

    /// Whether the operator carries `IfExists`.
    pub fn if_exists(&self) -> bool {
        self.if_exists
    }

    /// The condition key, in canonical (lower-case) form.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Evaluates this condition against the request context.
    pub(crate) fn evaluate(&self, context: &dyn ConditionContext) -> Result<bool, Unresolved> {
        let found = context.values(&self.key);
        let present: &[String] = found.as_deref().unwrap_or(&[]);
        if self.operator == Operator::Null {
            let Values::Bool(expected) = &self.values else {
                return Ok(false);
            };
            let is_null = present.is_empty();
            return Ok(expected.contains(&is_null));
        }
        let negated = self.operator.is_negated();
        if present.is_empty() {
            return Ok(match self.qualifier {
                _ if self.if_exists => true,
                None => negated,
                Some(Qualifier::ForAnyValue) => false,
                Some(Qualifier::ForAllValues) => true,
            });
        }
        let policy = PolicyValues::resolve(&self.values, context)?;
        // Whether one request value satisfies the (possibly negated) operator.
        let satisfies = |value: &String| self.matches_any(&policy, value) != negated;
        Ok(match self.qualifier {
            None if negated => present.iter().all(satisfies),
            None | Some(Qualifier::ForAnyValue) => present.iter().any(satisfies),
            Some(Qualifier::ForAllValues) => present.iter().all(satisfies),
        })
    }

    /// Whether `value` matches at least one policy value under the positive form of the
    /// operator.
    fn matches_any(&self, policy: &PolicyValues<'_>, value: &str) -> bool {
        match policy {
            PolicyValues::Text(patterns) => {
                let matcher = self.text_matcher();
                patterns.iter().any(|p| matcher(p.tokens(), value))
            }
            PolicyValues::FixedText(texts) => {
                let matcher = self.text_matcher();
                texts
                    .iter()
                    .filter_map(Text::fixed_tokens)
                    .any(|p| matcher(p, value))
            }
            PolicyValues::Number(numbers) => Decimal::parse(value)
                .is_some_and(|v| numbers.iter().any(|p| compare(self.operator, v.cmp(p)))),
            PolicyValues::Date(dates) => values::parse_date(value)
                .is_some_and(|v| dates.iter().any(|p| compare(self.operator, v.cmp(p)))),
            PolicyValues::Bool(bools) => {
                values::parse_bool(value).is_some_and(|v| bools.contains(&v))
            }
            PolicyValues::Binary(blobs) => {
                values::decode_base64(value).is_some_and(|v| blobs.contains(&v))
            }
            PolicyValues::Ip(networks) => {
                values::parse_ip(value).is_some_and(|ip| networks.iter().any(|n| n.contains(ip)))
            }
        }
    }

    /// How a string or ARN operator compares a policy pattern with a request value.
    fn text_matcher(&self) -> fn(&[Tok], &str) -> bool {
        use Operator::*;
        match self.operator {
            StringEqualsIgnoreCase | StringNotEqualsIgnoreCase => {
                |p, v| pattern::matches(p, v, true)
            }
            ArnEquals | ArnLike | ArnNotEquals | ArnNotLike => pattern::arn_matches,
            _ => |p, v| pattern::matches(p, v, false),
        }
    }

    /// Whether this condition is KMS's "overly permissive" `ForAllValues` on a single-valued
    /// key, and on which family of keys.
    pub(crate) fn overly_permissive_key(&self) -> Option<crate::error::OverlyPermissiveKey> {
        use crate::error::OverlyPermissiveKey;
        if self.qualifier != Some(Qualifier::ForAllValues) {
            return None;
        }
        if self.key.starts_with("kms:encryptioncontext:") {
            Some(OverlyPermissiveKey::EncryptionContext)
        } else if self.key.starts_with("aws:requesttag/") {
            Some(OverlyPermissiveKey::RequestTag)
        } else {
            None
        }
    }
}

/// Whether `ordering` (request value compared with policy value) satisfies `operator`.
fn compare(operator: Operator, ordering: std::cmp::Ordering) -> bool {
    use Operator::*;
    use std::cmp::Ordering::*;
    match operator {
        NumericEquals | NumericNotEquals | DateEquals | DateNotEquals => ordering == Equal,
        NumericLessThan | DateLessThan => ordering == Less,
        NumericLessThanEquals | DateLessThanEquals => ordering != Greater,
        NumericGreaterThan | DateGreaterThan => ordering == Greater,
        NumericGreaterThanEquals | DateGreaterThanEquals => ordering != Less,
        _ => false,
    }
}

/// Policy values ready for one request (templates resolved).
enum PolicyValues<'a> {
    /// String values without variables: matched as compiled, nothing allocated.
    FixedText(&'a [Text]),
    /// String values with variables, substituted for this request.
    Text(Vec<crate::variables::Resolved<'a>>),
    Number(&'a [Decimal]),
    Date(&'a [Instant]),
    Bool(&'a [bool]),
    Binary(&'a [Vec<u8>]),
    Ip(&'a [Cidr]),
}

impl<'a> PolicyValues<'a> {
    fn resolve(values: &'a Values, context: &dyn ConditionContext) -> Result<Self, Unresolved> {
        Ok(match values {
            Values::Text(texts) if texts.iter().all(|t| t.fixed_tokens().is_some()) => {
                PolicyValues::FixedText(texts)
            }
            Values::Text(texts) => PolicyValues::Text(
                texts
                    .iter()
                    .map(|text| text.resolve(context))
                    .collect::<Result<_, _>>()?,
            ),
            Values::Number(v) => PolicyValues::Number(v),
            Values::Date(v) => PolicyValues::Date(v),
            Values::Bool(v) => PolicyValues::Bool(v),
            Values::Binary(v) => PolicyValues::Binary(v),
            Values::Ip(v) => PolicyValues::Ip(v),
        })
    }
}

/// Splits `[ForAnyValue:|ForAllValues:]Operator[IfExists]`.
fn parse_operator(text: &str) -> Result<(Operator, Option<Qualifier>, bool), PolicyError> {
    let invalid = || PolicyError::InvalidCondition {
        operator: text.to_owned(),
    };
    let (qualifier, rest) = match text.split_once(':') {
        Some((prefix, rest)) if prefix.eq_ignore_ascii_case("ForAnyValue") => {
            (Some(Qualifier::ForAnyValue), rest)
        }
        Some((prefix, rest)) if prefix.eq_ignore_ascii_case("ForAllValues") => {
            (Some(Qualifier::ForAllValues), rest)
        }
        Some(_) => return Err(invalid()),
        None => (None, text),
    };
    if let Some(operator) = Operator::from_name(rest) {
        return Ok((operator, qualifier, false));
    }
    let suffix_at = rest
        .len()
        .checked_sub("IfExists".len())
        .ok_or_else(invalid)?;
    let (base, suffix) = (rest.get(..suffix_at), rest.get(suffix_at..));
    match (base.and_then(Operator::from_name), suffix) {
        (Some(Operator::Null), _) => Err(invalid()),
        (Some(operator), Some(suffix)) if suffix.eq_ignore_ascii_case("IfExists") => {
            Ok((operator, qualifier, true))
        }
        _ => Err(invalid()),
    }
}

/// The condition values as text: a string, number or boolean, or a list of them.
fn value_texts(value: &Json) -> Option<Vec<String>> {
    fn scalar(value: &Json) -> Option<String> {
        match value {
            Json::String(s) => Some(s.clone()),
            Json::Number(n) => Some(n.to_string()),
            Json::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
    match value {
        Json::Array(items) => items.iter().map(scalar).collect(),
        other => scalar(other).map(|s| vec![s]),
    }
}

fn parse_values(operator: Operator, texts: &[String], variables: bool) -> Option<Values> {
    use Operator::*;
    fn all<T>(texts: &[String], parse: impl Fn(&str) -> Option<T>) -> Option<Vec<T>> {
        texts.iter().map(|t| parse(t)).collect()
    }
    Some(match operator {
        StringEquals | StringNotEquals | StringEqualsIgnoreCase | StringNotEqualsIgnoreCase => {
            Values::Text(
                texts
                    .iter()
                    .map(|t| Text::new(t, variables, false))
                    .collect(),
            )
        }
        StringLike | StringNotLike | ArnEquals | ArnLike | ArnNotEquals | ArnNotLike => {
            Values::Text(
                texts
                    .iter()
                    .map(|t| Text::new(t, variables, true))
                    .collect(),
            )
        }
        NumericEquals
        | NumericNotEquals
        | NumericLessThan
        | NumericLessThanEquals
        | NumericGreaterThan
        | NumericGreaterThanEquals => Values::Number(all(texts, Decimal::parse)?),
        DateEquals
        | DateNotEquals
        | DateLessThan
        | DateLessThanEquals
        | DateGreaterThan
        | DateGreaterThanEquals => Values::Date(all(texts, values::parse_date)?),
        Bool | Null => Values::Bool(all(texts, values::parse_bool)?),
        BinaryEquals => Values::Binary(all(texts, values::decode_base64)?),
        IpAddress | NotIpAddress => Values::Ip(all(texts, Cidr::parse)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_names() {
        assert_eq!(
            parse_operator("ForAllValues:StringLikeIfExists"),
            Ok((Operator::StringLike, Some(Qualifier::ForAllValues), true))
        );
        assert_eq!(parse_operator("Bool"), Ok((Operator::Bool, None, false)));
        assert!(parse_operator("NullIfExists").is_err());
        assert!(parse_operator("StringEqualz").is_err());
        assert!(parse_operator("ForSomeValues:StringEquals").is_err());
        assert!(parse_operator("IfExists").is_err());
        assert!(parse_operator("").is_err());
        for (name, op) in OPERATORS {
            assert_eq!(op.name(), *name);
        }
    }
}
