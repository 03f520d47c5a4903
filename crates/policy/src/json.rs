//! A JSON tree that keeps every object member, duplicates included.
//!
//! `serde_json::Value` silently keeps the last of two members with the same name, so
//! `{"Effect": "Deny", "Effect": "Allow"}` would read as an Allow. A policy engine must not
//! disagree with the author about what a document says, so the parser keeps all members and
//! [`Json::find_duplicate_key`] rejects such documents before anything reads them.
//!
//! Nesting is bounded by `serde_json`'s recursion limit (128), so neither parsing nor the
//! recursive walks below can exhaust the stack.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// One JSON value; objects keep their members in document order, duplicates included.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parses `text` as one JSON document (trailing characters are an error).
    pub(crate) fn parse(text: &str) -> Result<Json, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The first member name that appears twice in one object, searching the whole tree.
    pub(crate) fn find_duplicate_key(&self) -> Option<&str> {
        match self {
            Json::Array(items) => items.iter().find_map(Json::find_duplicate_key),
            Json::Object(members) => {
                let mut seen = BTreeSet::new();
                for (name, _) in members {
                    if !seen.insert(name.as_str()) {
                        return Some(name);
                    }
                }
                members
                    .iter()
                    .find_map(|(_, value)| value.find_duplicate_key())
            }
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(v)
            .map(Json::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members = Vec::new();
        while let Some((name, value)) = map.next_entry::<String, Json>()? {
            members.push((name, value));
        }
        Ok(Json::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_duplicate_members_so_they_can_be_rejected() {
        let json = Json::parse(r#"{"a": 1, "b": {"c": 1, "c": 2}}"#).unwrap();
        assert_eq!(json.find_duplicate_key(), Some("c"));
        let json = Json::parse(r#"{"a": [ {"x": 1}, {"x": 2} ]}"#).unwrap();
        assert_eq!(json.find_duplicate_key(), None);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let text = "[".repeat(100_000) + &"]".repeat(100_000);
        assert!(Json::parse(&text).is_err());
    }

    #[test]
    fn trailing_garbage_is_an_error() {
        assert!(Json::parse("{} x").is_err());
    }
}
