//! How a request or response appears in the audit trail: CloudTrail's `requestParameters`
//! and `responseElements` name members in lowerCamelCase and never contain a sensitive
//! value (a plaintext, a secret string, a password). The generated `AUDIT_SHAPES` of each
//! service describe its structures; [`view`] walks a JSON document along them, keeping
//! known members, dropping sensitive and unknown ones.

use serde_json::{Map, Value};

use super::query::QueryParams;

/// A structure of a model, for the audit trail.
#[derive(Debug)]
pub struct Shape {
    pub name: &'static str,
    pub members: &'static [(&'static str, Field)],
}

/// What a member holds.
#[derive(Debug)]
pub enum Field {
    /// A value recorded as sent.
    Plain,
    /// A value never recorded.
    Sensitive,
    /// A structure: the index of its [`Shape`].
    Struct(usize),
    List(&'static Field),
    Map(&'static Field),
}

/// The audit view of `value`, a JSON document of structure `shapes[index]`.
pub fn view(shapes: &[Shape], index: usize, value: &Value) -> Value {
    let (Some(shape), Value::Object(object)) = (shapes.get(index), value) else {
        return Value::Null;
    };
    let mut out = Map::new();
    for (member, field) in shape.members {
        if let Some(v) = object.get(*member)
            && !matches!(field, Field::Sensitive)
        {
            out.insert(lower_camel(member), view_field(shapes, field, v));
        }
    }
    Value::Object(out)
}

fn view_field(shapes: &[Shape], field: &Field, value: &Value) -> Value {
    match (field, value) {
        (Field::Sensitive, _) => Value::Null,
        (Field::Plain, v) => v.clone(),
        (Field::Struct(i), v) => view(shapes, *i, v),
        (Field::List(inner), Value::Array(items)) => {
            Value::Array(items.iter().map(|v| view_field(shapes, inner, v)).collect())
        }
        (Field::Map(inner), Value::Object(entries)) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), view_field(shapes, inner, v)))
                .collect(),
        ),
        (_, _) => Value::Null,
    }
}

/// The audit view of an awsQuery request of structure `shapes[index]`: top-level members,
/// lists of plain values (`Name.member.N`) and nested structures one level down.
pub fn view_query(shapes: &[Shape], index: usize, params: &QueryParams, prefix: &str) -> Value {
    let Some(shape) = shapes.get(index) else {
        return Value::Null;
    };
    let mut out = Map::new();
    for (member, field) in shape.members {
        let key = format!("{prefix}{member}");
        let value = match field {
            Field::Sensitive => continue,
            Field::Plain => params.get(&key).map(|v| Value::String(v.to_owned())),
            Field::List(Field::Plain) => params.list_len(&key).map(|n| {
                Value::Array(
                    (1..=n)
                        .filter_map(|i| params.get(&format!("{key}.member.{i}")))
                        .map(|v| Value::String(v.to_owned()))
                        .collect(),
                )
            }),
            Field::List(Field::Struct(i)) => params.list_len(&key).map(|n| {
                Value::Array(
                    (1..=n)
                        .map(|j| view_query(shapes, *i, params, &format!("{key}.member.{j}.")))
                        .collect(),
                )
            }),
            Field::Struct(i) => params
                .has_prefix(&key)
                .then(|| view_query(shapes, *i, params, &format!("{key}."))),
            Field::List(_) | Field::Map(_) => None,
        };
        if let Some(value) = value {
            out.insert(lower_camel(member), value);
        }
    }
    Value::Object(out)
}

/// `KeyId` → `keyId`, as CloudTrail names request members.
pub fn lower_camel(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SHAPES: &[Shape] = &[
        Shape {
            name: "EncryptRequest",
            members: &[
                ("EncryptionContext", Field::Map(&Field::Plain)),
                ("KeyId", Field::Plain),
                ("Plaintext", Field::Sensitive),
                ("Tags", Field::List(&Field::Struct(1))),
            ],
        },
        Shape {
            name: "Tag",
            members: &[("TagKey", Field::Plain), ("TagValue", Field::Plain)],
        },
    ];

    #[test]
    fn drops_sensitive_and_unknown_members() {
        let request = serde_json::json!({
            "KeyId": "alias/x",
            "Plaintext": "aHVudGVyMg==",
            "EncryptionContext": {"Purpose": "test"},
            "Tags": [{"TagKey": "a", "TagValue": "b"}],
            "Unknown": 1
        });
        assert_eq!(
            view(SHAPES, 0, &request),
            serde_json::json!({
                "keyId": "alias/x",
                "encryptionContext": {"Purpose": "test"},
                "tags": [{"tagKey": "a", "tagValue": "b"}]
            })
        );
    }

    #[test]
    fn query_requests() {
        let q = QueryParams::parse(
            b"KeyId=k&Plaintext=secret&Tags.member.1.TagKey=a&Tags.member.1.TagValue=b",
        );
        assert_eq!(
            view_query(SHAPES, 0, &q, ""),
            serde_json::json!({"keyId": "k", "tags": [{"tagKey": "a", "tagValue": "b"}]})
        );
    }
}
