//! The `Filters` of `ListSecrets` and `BatchGetSecretValue`, as AWS matches them.
//!
//! - `name`, `tag-key`, `tag-value`, `primary-region`: the value is a prefix of the field,
//!   case-sensitive (API reference, `Filter`; user guide, "Find secrets": `Name: Data`
//!   finds `DatabaseSecret`, not `databaseSecret` or `MyData`).
//! - `owning-service`: a prefix, not case-sensitive (user guide). Keyhold's secrets are
//!   never managed by another service, so it matches nothing.
//! - `description` and `all`: word search, not case-sensitive. The filter value and the
//!   field are split into [`words`]; every word of the value must be the prefix of some word
//!   of one field (`description`: the description; `all`: the name, the description, or any
//!   tag key or value). So `a secret` finds "a secret" and "an secret", not "asecret"; the
//!   user guide's `My Description` finds "Description of my secret". (The API reference
//!   calls `description` a prefix match; AWS answers by words, as moto's tests recorded.)
//! - A value starting with `!` is negated: a secret it matches is left out. Within one filter
//!   a secret must match one of the plain values (if there are any) and none of the negated
//!   ones; every filter must match, two filters with the same key included.

use keyhold_proto::secretsmanager::{Filter, FilterNameStringType};

use super::describe::primary_region;
use super::error::SecretsError;
use super::secret::Secret;

pub struct Filters(Vec<(FilterNameStringType, Vec<String>)>);

impl Filters {
    pub fn parse(filters: &[Filter]) -> Result<Self, SecretsError> {
        let mut out = Vec::with_capacity(filters.len());
        for f in filters {
            let (Some(key), Some(values)) = (f.key, &f.values) else {
                return Err(SecretsError::InvalidFilter);
            };
            if values.is_empty() {
                return Err(SecretsError::InvalidFilter);
            }
            out.push((key, values.clone()));
        }
        Ok(Self(out))
    }

    pub fn matches(&self, secret: &Secret) -> bool {
        self.0.iter().all(|(key, values)| {
            let (negated, positive): (Vec<&str>, Vec<&str>) = values
                .iter()
                .map(String::as_str)
                .partition(|v| v.starts_with('!'));
            let hit = |value: &str| matches_value(*key, secret, value);
            let excluded = negated
                .iter()
                .any(|v| hit(v.strip_prefix('!').unwrap_or(v)));
            let included = positive.is_empty() || positive.iter().any(|v| hit(v));
            included && !excluded
        })
    }
}

fn matches_value(key: FilterNameStringType, secret: &Secret, value: &str) -> bool {
    let meta = &secret.meta;
    let tags = meta.tags.as_deref().unwrap_or_default();
    match key {
        FilterNameStringType::Name => secret.name.starts_with(value),
        FilterNameStringType::TagKey => tags.iter().any(|(k, _)| k.starts_with(value)),
        FilterNameStringType::TagValue => tags.iter().any(|(_, v)| v.starts_with(value)),
        FilterNameStringType::PrimaryRegion => {
            primary_region(secret).is_some_and(|r| r.starts_with(value))
        }
        FilterNameStringType::OwningService => false,
        FilterNameStringType::Description => {
            let needles = words(value);
            meta.description
                .as_deref()
                .is_some_and(|d| words_match(&needles, d))
        }
        FilterNameStringType::All => {
            let needles = words(value);
            let mut fields = std::iter::once(secret.name.as_str())
                .chain(meta.description.as_deref())
                .chain(tags.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]));
            fields.any(|field| words_match(&needles, field))
        }
    }
}

/// Whether every word of the filter value (`needles`, already split) begins some word of
/// `field`. A value without words matches nothing.
fn words_match(needles: &[String], field: &str) -> bool {
    if needles.is_empty() {
        return false;
    }
    let haystack = words(field);
    needles
        .iter()
        .all(|n| haystack.iter().any(|w| w.starts_with(n.as_str())))
}

/// AWS's search words, in lowercase: runs of letters and digits (anything else separates), split where letters and digits meet, where a lowercase letter is followed by
/// an uppercase one, and before an uppercase letter that begins a capitalized word inside a
/// run of capitals (`COMPANYthings` → `compan`, `ythings`; `HTTPServer` → `http`, `server`).
pub fn words(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        let previous = i.checked_sub(1).and_then(|p| chars.get(p)).copied();
        let next = chars.get(i + 1).copied();
        let boundary = previous.filter(|p| p.is_alphanumeric()).is_some_and(|p| {
            let letter_digit = p.is_alphabetic() != c.is_alphabetic();
            let lower_upper = p.is_lowercase() && c.is_uppercase();
            let capital_starts_word =
                p.is_uppercase() && c.is_uppercase() && next.is_some_and(char::is_lowercase);
            letter_digit || lower_upper || capital_starts_word
        });
        if boundary && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(text: &str) -> Vec<String> {
        words(text)
    }

    #[test]
    fn words_split_at_separators() {
        assert_eq!(w("My_Secret"), ["my", "secret"]);
        assert_eq!(w("a secret"), ["a", "secret"]);
        assert_eq!(
            w("prod/db-creds+x=y.z@w"),
            ["prod", "db", "creds", "x", "y", "z", "w"]
        );
        assert_eq!(w("  lead and trail  "), ["lead", "and", "trail"]);
        assert!(w("").is_empty());
        assert!(w("__").is_empty());
        assert!(w("/").is_empty());
        assert!(w("#!?").is_empty());
    }

    #[test]
    fn words_split_at_case_changes() {
        assert_eq!(w("credsDatabase#892"), ["creds", "database", "892"]);
        assert_eq!(w("MyTest"), ["my", "test"]);
        assert_eq!(w("COMPANYthings"), ["compan", "ythings"]);
        assert_eq!(w("HTTPServer"), ["http", "server"]);
        assert_eq!(w("ALLCAPS"), ["allcaps"]);
        assert_eq!(w("lowercase"), ["lowercase"]);
        assert_eq!(w("camelCaseWord"), ["camel", "case", "word"]);
        assert_eq!(w("aB"), ["a", "b"]);
        assert_eq!(w("Ab"), ["ab"]);
        assert_eq!(w("ABc"), ["a", "bc"]);
    }

    #[test]
    fn words_split_at_digits() {
        assert_eq!(w("db2prod"), ["db", "2", "prod"]);
        assert_eq!(w("v10"), ["v", "10"]);
        assert_eq!(w("2024Keys"), ["2024", "keys"]);
        assert_eq!(w("ABC123def"), ["abc", "123", "def"]);
    }

    #[test]
    fn non_ascii_letters_are_letters() {
        assert_eq!(w("Héllo Wörld"), ["héllo", "wörld"]);
        assert_eq!(w("ÉtéÀ"), ["été", "à"]);
        assert_eq!(w("a→b"), ["a", "b"]);
    }

    #[test]
    fn every_filter_word_must_begin_a_field_word() {
        let m = |filter: &str, field: &str| words_match(&words(filter), field);
        assert!(m("a secret", "a secret"));
        assert!(m("a secret", "an secret"));
        assert!(m("a secret", "A SECRET"));
        assert!(!m("a secret", "asecret"));
        assert!(m("My Description", "Description of my secret"));
        assert!(m("My Description", "My basic description"));
        assert!(!m("My Description", "My secret"));
        assert!(m("Data", "myDatabase"));
        assert!(!m("base", "myDatabase"));
        assert!(m("compan", "COMPANYthings"));
        assert!(!m("things", "COMPANYthings"));
        assert!(m("ythings", "COMPANYthings"));
        assert!(!m("", "anything"));
        assert!(!m("#", "anything"));
    }
}
