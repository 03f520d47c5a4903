//! The request context: the condition keys and their values for one request.
//!
//! Condition key *names* are case-insensitive everywhere in AWS, including the `context-key`
//! part of `kms:EncryptionContext:<context-key>` (KMS developer guide, "Case sensitivity of
//! the encryption context condition"). Values keep their case; whether a comparison ignores
//! it is up to the operator (`StringEqualsIgnoreCase`). So keys are canonicalized once, by
//! [`canonical_key`], both when a policy is parsed and when a [`Context`] is filled.
//!
//! Every key holds a list of values. A single-valued key (`aws:SourceIp`) holds one; a
//! multi-valued key (`kms:GrantOperations`, `kms:EncryptionContextKeys`) holds any number. An
//! empty list is the "empty data set" of the IAM User Guide and is treated as an absent key
//! by every operator except `ForAllValues:` (true) and `ForAnyValue:` (false).

use std::borrow::Cow;
use std::collections::BTreeMap;

/// Source of condition key values during evaluation.
///
/// Implement it to compute values lazily; [`Context`] is the ready-made map.
pub trait ConditionContext {
    /// The values of `key`, or `None` when the request has no such key. `key` is always in
    /// canonical form (see [`canonical_key`]).
    fn values(&self, key: &str) -> Option<Cow<'_, [String]>>;
}

impl<T: ConditionContext + ?Sized> ConditionContext for &T {
    fn values(&self, key: &str) -> Option<Cow<'_, [String]>> {
        (**self).values(key)
    }
}

/// The canonical (lower-case) form of a condition key name.
pub fn canonical_key(key: &str) -> String {
    key.to_lowercase()
}

/// A [`ConditionContext`] backed by a sorted map, keys canonicalized on insertion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    entries: BTreeMap<String, Vec<String>>,
}

impl Context {
    /// An empty context: every key is absent.
    pub fn new() -> Context {
        Context::default()
    }

    /// Sets `key` to the single `value`, replacing what it held.
    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut Context {
        self.entries.insert(canonical_key(key), vec![value.into()]);
        self
    }

    /// Sets `key` to `values` (possibly none: the empty data set), replacing what it held.
    pub fn set_values<I, S>(&mut self, key: &str, values: I) -> &mut Context
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.entries.insert(
            canonical_key(key),
            values.into_iter().map(Into::into).collect(),
        );
        self
    }

    /// Adds `value` to the values of `key`. Two encryption context keys that differ only in
    /// case land in the same condition key this way, as they do on AWS.
    pub fn add(&mut self, key: &str, value: impl Into<String>) -> &mut Context {
        self.entries
            .entry(canonical_key(key))
            .or_default()
            .push(value.into());
        self
    }

    /// Removes `key`, returning its values.
    pub fn remove(&mut self, key: &str) -> Option<Vec<String>> {
        self.entries.remove(&canonical_key(key))
    }

    /// The values of `key`, looked up case-insensitively.
    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.entries.get(&canonical_key(key)).map(Vec::as_slice)
    }

    /// Builder form of [`Context::set`].
    #[must_use]
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Context {
        self.set(key, value);
        self
    }

    /// Builder form of [`Context::set_values`].
    #[must_use]
    pub fn with_values<I, S>(mut self, key: &str, values: I) -> Context
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.set_values(key, values);
        self
    }
}

impl ConditionContext for Context {
    fn values(&self, key: &str) -> Option<Cow<'_, [String]>> {
        self.entries
            .get(key)
            .map(|values| Cow::Borrowed(values.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_case_insensitive_values_are_not() {
        let ctx = Context::new().with("kms:EncryptionContext:AppName", "ExampleApp");
        assert_eq!(
            ctx.get("KMS:encryptioncontext:appname"),
            Some(&["ExampleApp".to_owned()][..])
        );
        assert_eq!(
            ctx.values(&canonical_key("kms:EncryptionContext:APPNAME"))
                .as_deref(),
            Some(&["ExampleApp".to_owned()][..])
        );
    }

    #[test]
    fn add_collects_values() {
        let mut ctx = Context::new();
        ctx.add("kms:GrantOperations", "Decrypt")
            .add("KMS:GrantOperations", "Encrypt");
        assert_eq!(ctx.get("kms:grantoperations").map(<[String]>::len), Some(2));
    }
}
