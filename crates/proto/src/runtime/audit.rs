//! How a request or response appears in the audit trail: CloudTrail's `requestParameters`
//! and `responseElements` name members in lowerCamelCase and never contain a sensitive
//! value (a plaintext, a secret string, a password) nor a binary one (a ciphertext blob).
//!
//! The generated code implements [`AuditView`] for every structure of a model: the view is
//! built from the decoded, typed value, so a request body is parsed once, and a sensitive
//! member is never read into anything but its zeroizing type (the generated views do not
//! touch it; `SensitiveString`, `SensitiveBlob` and the blob types implement no view at all).
//! The generated dispatch hands the views to the request's [`AuditSink`].

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::types::Timestamp;

/// A value as the audit trail records it.
pub trait AuditView {
    fn audit_view(&self) -> Value;
}

/// Where the generated dispatch reports what the audit trail records of a call: the
/// request as decoded (before validation, so that a refused request is recorded too) and
/// the response the operation answered.
pub trait AuditSink {
    fn audit_request(&self, request: &dyn AuditView);
    fn audit_response(&self, response: &dyn AuditView);
}

/// A context without an audit trail (tests of the protocol layer alone) records nothing.
impl AuditSink for () {
    fn audit_request(&self, _: &dyn AuditView) {}
    fn audit_response(&self, _: &dyn AuditView) {}
}

/// Builds the view of one structure (used by the generated impls).
#[derive(Default)]
pub struct Record(Map<String, Value>);

impl Record {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value` under `name` (already in lowerCamelCase), unless it is absent.
    pub fn member(&mut self, name: &str, value: &impl AuditView) -> &mut Self {
        let value = value.audit_view();
        if !value.is_null() {
            self.0.insert(name.to_owned(), value);
        }
        self
    }

    pub fn finish(&mut self) -> Value {
        Value::Object(std::mem::take(&mut self.0))
    }
}

impl<T: AuditView> AuditView for Option<T> {
    fn audit_view(&self) -> Value {
        self.as_ref().map_or(Value::Null, AuditView::audit_view)
    }
}

impl<T: AuditView> AuditView for Vec<T> {
    fn audit_view(&self) -> Value {
        Value::Array(self.iter().map(AuditView::audit_view).collect())
    }
}

impl<T: AuditView> AuditView for BTreeMap<String, T> {
    fn audit_view(&self) -> Value {
        Value::Object(
            self.iter()
                .map(|(k, v)| (k.clone(), v.audit_view()))
                .collect(),
        )
    }
}

impl AuditView for String {
    fn audit_view(&self) -> Value {
        Value::String(self.clone())
    }
}

impl AuditView for bool {
    fn audit_view(&self) -> Value {
        Value::Bool(*self)
    }
}

impl AuditView for i32 {
    fn audit_view(&self) -> Value {
        Value::from(*self)
    }
}

impl AuditView for i64 {
    fn audit_view(&self) -> Value {
        Value::from(*self)
    }
}

/// As the JSON protocols carry it: epoch seconds, fractional when there are milliseconds.
impl AuditView for Timestamp {
    fn audit_view(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tag {
        key: String,
        value: Option<String>,
    }

    impl AuditView for Tag {
        fn audit_view(&self) -> Value {
            Record::new()
                .member("tagKey", &self.key)
                .member("tagValue", &self.value)
                .finish()
        }
    }

    #[test]
    fn absent_members_are_left_out() {
        let tags = vec![
            Tag {
                key: "a".into(),
                value: Some("b".into()),
            },
            Tag {
                key: "c".into(),
                value: None,
            },
        ];
        let mut context = BTreeMap::new();
        context.insert("Purpose".to_owned(), "test".to_owned());
        let view = Record::new()
            .member("keyId", &"alias/x".to_owned())
            .member("grantTokens", &None::<Vec<String>>)
            .member("encryptionContext", &Some(context))
            .member("tags", &tags)
            .member("numberOfBytes", &Some(32i32))
            .member("date", &Timestamp::from_millis(1_500))
            .finish();
        assert_eq!(
            view,
            serde_json::json!({
                "keyId": "alias/x",
                "encryptionContext": {"Purpose": "test"},
                "tags": [{"tagKey": "a", "tagValue": "b"}, {"tagKey": "c"}],
                "numberOfBytes": 32,
                "date": 1.5
            })
        );
    }
}
