//! A KMS grant as the server holds it in memory, and the grants of one key.
//!
//! - [`Grant`] is immutable: its operations, grantee, retiring principal and [`Constraint`].
//! - [`KeyGrants`] is the set of a key's grants, shared by every version of the cached
//!   [`super::key::Key`] and changed in place (after the store) when a grant is created,
//!   retired or revoked, so authorization reads grants from memory only. It is indexed by
//!   grantee principal, which is how authorization looks grants up.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use keyhold_proto::Timestamp;
use keyhold_proto::kms::{GrantConstraints, GrantListEntry, GrantOperation, KeySpec, KeyUsageType};
use keyhold_store::GrantRecord;

/// One grant of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// 64 lowercase hex characters.
    pub id: String,
    pub key_id: String,
    pub name: Option<String>,
    pub grantee: String,
    pub retiring: Option<String>,
    /// In the order the grant was created with, without duplicates.
    pub operations: Vec<GrantOperation>,
    pub constraint: Option<Constraint>,
    /// The account under which the grant was issued (the key's account).
    pub issuing_account: String,
    pub creation_ms: i64,
}

/// A grant's encryption-context constraint. Keys compare case-insensitively and values
/// exactly, as AWS documents for grant constraints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Constraint {
    /// The request's encryption context must be exactly these pairs.
    Equals(BTreeMap<String, String>),
    /// The request's encryption context must include these pairs.
    Subset(BTreeMap<String, String>),
}

impl Constraint {
    /// Whether a request with encryption context `context` satisfies the constraint.
    pub fn admits(&self, context: &BTreeMap<String, String>) -> bool {
        match self {
            Self::Equals(pairs) => same_pairs(context, pairs),
            Self::Subset(pairs) => includes(context, pairs),
        }
    }

    /// Whether a grant with constraint `child` is at least as strict as one with `parent`
    /// (the rule for grants created under a grant's `CreateGrant` permission).
    pub fn at_least_as_strict(child: Option<&Constraint>, parent: Option<&Constraint>) -> bool {
        match (parent, child) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(Self::Equals(p)), Some(Self::Equals(c))) => same_pairs(c, p),
            (Some(Self::Equals(_)), Some(Self::Subset(_))) => false,
            (Some(Self::Subset(p)), Some(Self::Equals(c) | Self::Subset(c))) => includes(c, p),
        }
    }

    pub fn pairs(&self) -> &BTreeMap<String, String> {
        match self {
            Self::Equals(pairs) | Self::Subset(pairs) => pairs,
        }
    }

    /// The `kms:GrantConstraintType` value.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Equals(_) => "EncryptionContextEquals",
            Self::Subset(_) => "EncryptionContextSubset",
        }
    }

    pub fn to_wire(&self) -> GrantConstraints {
        match self {
            Self::Equals(pairs) => GrantConstraints {
                encryption_context_equals: Some(pairs.clone()),
                ..GrantConstraints::default()
            },
            Self::Subset(pairs) => GrantConstraints {
                encryption_context_subset: Some(pairs.clone()),
                ..GrantConstraints::default()
            },
        }
    }
}

/// Whether `context` holds exactly the pairs of `wanted`, pair for pair (keys
/// case-insensitive, values exact): `{"dept":"a","DEPT":"a"}` is not `{"dept":"a"}`, since
/// it carries a pair the constraint does not list (and authenticates a different AAD).
fn same_pairs(context: &BTreeMap<String, String>, wanted: &BTreeMap<String, String>) -> bool {
    fn folded(map: &BTreeMap<String, String>) -> Vec<(String, &str)> {
        let mut pairs: Vec<(String, &str)> = map
            .iter()
            .map(|(k, v)| (k.to_lowercase(), v.as_str()))
            .collect();
        pairs.sort_unstable();
        pairs
    }
    context.len() == wanted.len() && folded(context) == folded(wanted)
}

/// Whether every pair of `wanted` is in `context` (keys case-insensitive, values exact).
fn includes(context: &BTreeMap<String, String>, wanted: &BTreeMap<String, String>) -> bool {
    wanted.iter().all(|(k, v)| {
        context
            .iter()
            .any(|(ck, cv)| cv == v && (ck == k || ck.to_lowercase() == k.to_lowercase()))
    })
}

/// Whether `operation` takes an encryption context (and so is subject to a constraint) on
/// a key of this spec and usage.
pub fn takes_encryption_context(operation: GrantOperation, spec: KeySpec) -> bool {
    use GrantOperation as Op;
    spec == KeySpec::SymmetricDefault
        && matches!(
            operation,
            Op::Encrypt
                | Op::Decrypt
                | Op::ReEncryptFrom
                | Op::ReEncryptTo
                | Op::GenerateDataKey
                | Op::GenerateDataKeyWithoutPlaintext
                | Op::GenerateDataKeyPair
                | Op::GenerateDataKeyPairWithoutPlaintext
        )
}

/// Whether a grant on a key of this spec and usage may allow `operation` (AWS's "Grant
/// operations" table).
pub fn supports(operation: GrantOperation, spec: KeySpec, usage: KeyUsageType) -> bool {
    use GrantOperation as Op;
    if matches!(
        operation,
        Op::CreateGrant | Op::RetireGrant | Op::DescribeKey
    ) {
        return true;
    }
    match usage {
        KeyUsageType::EncryptDecrypt if spec == KeySpec::SymmetricDefault => {
            takes_encryption_context(operation, spec)
        }
        KeyUsageType::EncryptDecrypt => matches!(
            operation,
            Op::Encrypt | Op::Decrypt | Op::ReEncryptFrom | Op::ReEncryptTo | Op::GetPublicKey
        ),
        KeyUsageType::SignVerify => matches!(operation, Op::Sign | Op::Verify | Op::GetPublicKey),
        KeyUsageType::GenerateVerifyMac => matches!(operation, Op::GenerateMac | Op::VerifyMac),
        KeyUsageType::KeyAgreement => {
            matches!(operation, Op::DeriveSharedSecret | Op::GetPublicKey)
        }
        KeyUsageType::EncapsulateDecapsulate => {
            matches!(
                operation,
                Op::Encapsulate | Op::Decapsulate | Op::GetPublicKey
            )
        }
    }
}

impl Grant {
    pub fn allows(&self, operation: GrantOperation) -> bool {
        self.operations.contains(&operation)
    }

    /// The same grant for the purpose of `Name` idempotency: same name, principals,
    /// operations (in any order) and constraint.
    pub fn same_as(&self, other: &Grant) -> bool {
        let mut a = self.operations.clone();
        let mut b = other.operations.clone();
        a.sort();
        b.sort();
        self.name == other.name
            && self.grantee == other.grantee
            && self.retiring == other.retiring
            && a == b
            && self.constraint == other.constraint
    }

    pub fn to_entry(&self, key_arn: &str, partition: &str) -> GrantListEntry {
        GrantListEntry {
            key_id: Some(key_arn.to_owned()),
            grant_id: Some(self.id.clone()),
            name: Some(self.name.clone().unwrap_or_default()),
            creation_date: Some(Timestamp::from_millis(self.creation_ms)),
            grantee_principal: Some(self.grantee.clone()),
            retiring_principal: self.retiring.clone(),
            issuing_account: Some(format!(
                "arn:{partition}:iam::{}:root",
                self.issuing_account
            )),
            operations: Some(self.operations.clone()),
            constraints: self.constraint.as_ref().map(Constraint::to_wire),
            ..GrantListEntry::default()
        }
    }

    pub fn to_record(&self) -> GrantRecord {
        let operations: Vec<&str> = self.operations.iter().map(|o| o.as_str()).collect();
        let constraints = self
            .constraint
            .as_ref()
            .map(|c| serde_json::json!({ c.type_name(): c.pairs() }).to_string());
        GrantRecord {
            grant_id: self.id.clone(),
            key_id: self.key_id.clone(),
            name: self.name.clone(),
            grantee_principal: self.grantee.clone(),
            retiring_principal: self.retiring.clone(),
            operations: operations.join(","),
            constraints,
            issuing_account: self.issuing_account.clone(),
            creation_ms: self.creation_ms,
        }
    }

    /// The grant of a stored row; `None` if this version cannot read it.
    pub fn from_record(record: GrantRecord) -> Option<Self> {
        let operations = record
            .operations
            .split(',')
            .map(GrantOperation::parse)
            .collect::<Option<Vec<_>>>()?;
        let constraint = match &record.constraints {
            None => None,
            Some(text) => {
                let mut map: BTreeMap<String, BTreeMap<String, String>> =
                    serde_json::from_str(text).ok()?;
                match (
                    map.remove("EncryptionContextEquals"),
                    map.remove("EncryptionContextSubset"),
                ) {
                    (Some(pairs), None) if map.is_empty() => Some(Constraint::Equals(pairs)),
                    (None, Some(pairs)) if map.is_empty() => Some(Constraint::Subset(pairs)),
                    _ => return None,
                }
            }
        };
        Some(Self {
            id: record.grant_id,
            key_id: record.key_id,
            name: record.name,
            grantee: record.grantee_principal,
            retiring: record.retiring_principal,
            operations,
            constraint,
            issuing_account: record.issuing_account,
            creation_ms: record.creation_ms,
        })
    }
}

/// The grants of one key, changed in place. A poisoned lock reads as "no grants" (grants
/// only ever allow, so that fails closed) and refuses changes.
#[derive(Default)]
pub struct KeyGrants {
    inner: RwLock<Index>,
}

#[derive(Default)]
struct Index {
    by_id: BTreeMap<String, Arc<Grant>>,
    by_grantee: HashMap<String, Vec<Arc<Grant>>>,
}

impl KeyGrants {
    pub fn new(grants: impl IntoIterator<Item = Grant>) -> Self {
        let set = Self::default();
        if let Ok(mut index) = set.inner.write() {
            for grant in grants {
                index.insert(Arc::new(grant));
            }
        }
        set
    }

    pub fn len(&self) -> usize {
        self.inner.read().map_or(0, |i| i.by_id.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, grant_id: &str) -> Option<Arc<Grant>> {
        self.inner.read().ok()?.by_id.get(grant_id).cloned()
    }

    /// Every grant, ordered by grant id.
    pub fn all(&self) -> Vec<Arc<Grant>> {
        self.inner
            .read()
            .map(|i| i.by_id.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The grants whose grantee principal is one of `grantees`.
    pub fn for_grantees(&self, grantees: &[&str]) -> Vec<Arc<Grant>> {
        let Ok(index) = self.inner.read() else {
            return Vec::new();
        };
        grantees
            .iter()
            .filter_map(|g| index.by_grantee.get(*g))
            .flatten()
            .cloned()
            .collect()
    }

    /// A grant the same as `grant` (see [`Grant::same_as`]), if any.
    pub fn find_same(&self, grant: &Grant) -> Option<Arc<Grant>> {
        let index = self.inner.read().ok()?;
        let candidates = index.by_grantee.get(&grant.grantee)?;
        candidates.iter().find(|g| g.same_as(grant)).cloned()
    }

    /// Adds a grant; false if the lock is poisoned.
    pub fn insert(&self, grant: Arc<Grant>) -> bool {
        self.inner.write().map(|mut i| i.insert(grant)).is_ok()
    }

    pub fn remove(&self, grant_id: &str) -> Option<Arc<Grant>> {
        self.inner.write().ok()?.remove(grant_id)
    }
}

impl Index {
    fn insert(&mut self, grant: Arc<Grant>) {
        self.by_grantee
            .entry(grant.grantee.clone())
            .or_default()
            .push(grant.clone());
        self.by_id.insert(grant.id.clone(), grant);
    }

    fn remove(&mut self, grant_id: &str) -> Option<Arc<Grant>> {
        let grant = self.by_id.remove(grant_id)?;
        if let Some(list) = self.by_grantee.get_mut(&grant.grantee) {
            list.retain(|g| g.id != grant_id);
            if list.is_empty() {
                self.by_grantee.remove(&grant.grantee);
            }
        }
        Some(grant)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ec(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn equals_and_subset() {
        let equals = Constraint::Equals(ec(&[("Dept", "IT"), ("app", "x")]));
        assert!(equals.admits(&ec(&[("app", "x"), ("Dept", "IT")])));
        // Keys are case-insensitive in a grant constraint, values are not.
        assert!(equals.admits(&ec(&[("dept", "IT"), ("APP", "x")])));
        assert!(!equals.admits(&ec(&[("Dept", "it"), ("app", "x")])));
        assert!(!equals.admits(&ec(&[("Dept", "IT")])));
        assert!(!equals.admits(&ec(&[("Dept", "IT"), ("app", "x"), ("more", "1")])));
        assert!(!equals.admits(&ec(&[])));
        // Regression (security review): a context with an extra pair that differs from a
        // constraint key only in case is not the constraint's context.
        let dept = Constraint::Equals(ec(&[("dept", "a")]));
        assert!(!dept.admits(&ec(&[("dept", "a"), ("DEPT", "a")])));
        assert!(dept.admits(&ec(&[("DEPT", "a")])));

        let subset = Constraint::Subset(ec(&[("Dept", "IT")]));
        assert!(subset.admits(&ec(&[("Dept", "IT")])));
        assert!(subset.admits(&ec(&[("DEPT", "IT"), ("more", "1")])));
        assert!(!subset.admits(&ec(&[("more", "1")])));
        assert!(!subset.admits(&ec(&[])));
        assert!(Constraint::Subset(ec(&[])).admits(&ec(&[])));
    }

    #[test]
    fn equals_needs_every_request_pair_matched() {
        // Two constraint keys differing only in case must not let an extra request pair in.
        let equals = Constraint::Equals(ec(&[("a", "1"), ("A", "1")]));
        assert!(!equals.admits(&ec(&[("a", "1"), ("b", "2")])));
        assert!(equals.admits(&ec(&[("a", "1"), ("A", "1")])));
        assert!(!equals.admits(&ec(&[("a", "1")])));
    }

    #[test]
    fn strictness_of_derived_grants() {
        let subset = Constraint::Subset(ec(&[("t", "1")]));
        let wider_subset = Constraint::Subset(ec(&[("t", "1"), ("u", "2")]));
        let equals = Constraint::Equals(ec(&[("t", "1")]));
        let other = Constraint::Subset(ec(&[("t", "2")]));
        let strict = Constraint::at_least_as_strict;
        assert!(strict(None, None));
        assert!(strict(Some(&subset), None));
        assert!(!strict(None, Some(&subset)));
        assert!(strict(Some(&subset), Some(&subset)));
        assert!(strict(Some(&wider_subset), Some(&subset)));
        assert!(strict(Some(&equals), Some(&subset)));
        assert!(!strict(Some(&other), Some(&subset)));
        assert!(strict(Some(&equals), Some(&equals)));
        assert!(!strict(Some(&subset), Some(&equals)));
        assert!(!strict(
            Some(&Constraint::Equals(ec(&[("t", "1"), ("u", "2")]))),
            Some(&equals)
        ));
    }

    #[test]
    fn operations_by_key_type() {
        let sym = (KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt);
        assert!(supports(GrantOperation::GenerateDataKey, sym.0, sym.1));
        assert!(supports(GrantOperation::DescribeKey, sym.0, sym.1));
        assert!(!supports(GrantOperation::Sign, sym.0, sym.1));
        assert!(!supports(GrantOperation::GetPublicKey, sym.0, sym.1));
        assert!(supports(
            GrantOperation::Sign,
            KeySpec::Rsa2048,
            KeyUsageType::SignVerify
        ));
        assert!(!supports(
            GrantOperation::GenerateDataKey,
            KeySpec::Rsa2048,
            KeyUsageType::EncryptDecrypt
        ));
        assert!(!takes_encryption_context(
            GrantOperation::Decrypt,
            KeySpec::Rsa2048
        ));
    }

    #[test]
    fn records_round_trip() {
        let grant = Grant {
            id: "ab".repeat(32),
            key_id: "k".into(),
            name: Some("n".into()),
            grantee: "arn:aws:iam::111122223333:role/r".into(),
            retiring: None,
            operations: vec![GrantOperation::Decrypt, GrantOperation::DescribeKey],
            constraint: Some(Constraint::Subset(ec(&[("a", "b")]))),
            issuing_account: "111122223333".into(),
            creation_ms: 7,
        };
        assert_eq!(Grant::from_record(grant.to_record()), Some(grant.clone()));
        let mut bad = grant.to_record();
        bad.operations = "Decrypt,Nope".into();
        assert_eq!(Grant::from_record(bad), None);
    }

    #[test]
    fn index_by_grantee() {
        let grant = |id: &str, grantee: &str| Grant {
            id: id.into(),
            key_id: "k".into(),
            name: None,
            grantee: grantee.into(),
            retiring: None,
            operations: vec![GrantOperation::Decrypt],
            constraint: None,
            issuing_account: "1".into(),
            creation_ms: 0,
        };
        let set = KeyGrants::new([grant("b", "x"), grant("a", "y"), grant("c", "x")]);
        assert_eq!(set.len(), 3);
        assert_eq!(set.for_grantees(&["x"]).len(), 2);
        assert_eq!(set.for_grantees(&["y", "z"]).len(), 1);
        let ids: Vec<String> = set.all().iter().map(|g| g.id.clone()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert!(set.remove("b").is_some());
        assert!(set.remove("b").is_none());
        assert_eq!(set.for_grantees(&["x"]).len(), 1);
        assert!(set.get("c").is_some());
    }
}
