//! A parameter as the service holds it in memory: identity, tags and versions (oldest
//! first, at most 100). Immutable once built: a change builds the next `Param` and stores it,
//! sharing the versions it does not change (`Arc`), so only changed versions are written.
//!
//! Each version's metadata is one JSON document in the store (`ParamVersionRecord::meta`), so
//! adding a field needs no migration.

use std::sync::Arc;

use keyhold_proto::ssm::{ParameterTier, ParameterType};
use keyhold_store::{ParamRecord, ParamVersionRecord};
use serde::{Deserialize, Serialize};

use super::error::SsmError;
use super::policies::{self, Policy};

/// Parameter Store keeps this many versions of a parameter.
pub const MAX_VERSIONS: usize = 100;

#[derive(Clone, Debug)]
pub struct Param {
    pub arn: String,
    /// The name as created (`/a/b`, or `a`): what responses show.
    pub name: String,
    /// The name without its leading slash: the parameter's identity in its scope.
    pub key: String,
    pub created_ms: i64,
    /// Sorted by key.
    pub tags: Vec<(String, String)>,
    /// Oldest first; never empty.
    pub versions: Vec<Arc<Version>>,
    /// The store row's revision this state was read at or written as
    /// ([`ParamRecord::revision`]); [`super::SsmService`]'s commit writes the next one.
    pub revision: i64,
}

/// What a version holds as its value.
#[derive(Clone, PartialEq, Eq)]
pub enum Stored {
    /// A `String` or `StringList` value.
    Text(String),
    /// A `SecureString`: the envelope ciphertext (see `value.rs`).
    Sealed(Vec<u8>),
}

impl std::fmt::Debug for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stored::Text(t) => write!(f, "Text({} chars)", t.len()),
            Stored::Sealed(b) => write!(f, "Sealed({} bytes)", b.len()),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Version {
    pub number: i64,
    pub kind: ParameterType,
    pub value: Stored,
    pub description: Option<String>,
    pub allowed_pattern: Option<String>,
    /// The `KeyId` of a SecureString as the caller gave it (`alias/aws/ssm` by default).
    pub key_id: Option<String>,
    pub data_type: String,
    /// `Standard` or `Advanced` (Intelligent-Tiering resolves to one of them).
    pub tier: ParameterTier,
    pub policies: Vec<Policy>,
    pub labels: Vec<String>,
    pub modified_ms: i64,
    pub modified_user: String,
}

impl Param {
    pub fn current(&self) -> Result<&Arc<Version>, SsmError> {
        self.versions.last().ok_or(SsmError::Internal)
    }

    pub fn version(&self, number: i64) -> Option<&Arc<Version>> {
        self.versions.iter().find(|v| v.number == number)
    }

    pub fn labelled(&self, label: &str) -> Option<&Arc<Version>> {
        self.versions
            .iter()
            .find(|v| v.labels.iter().any(|l| l == label))
    }

    /// The tier the parameter is in: its current version's.
    pub fn tier(&self) -> ParameterTier {
        self.versions
            .last()
            .map_or(ParameterTier::Standard, |v| v.tier)
    }

    /// When an `Expiration` policy deletes the parameter.
    pub fn expires_ms(&self) -> Option<i64> {
        self.versions
            .last()
            .and_then(|v| policies::expiration_ms(&v.policies))
    }

    /// Rebuilds a parameter from its rows (versions in any order).
    pub fn from_records(
        record: ParamRecord,
        versions: Vec<ParamVersionRecord>,
    ) -> Result<Self, SsmError> {
        let meta: ParamMeta =
            serde_json::from_str(&record.meta).map_err(|_| corrupt(&record.arn))?;
        let mut versions = versions
            .into_iter()
            .map(|v| Version::from_record(v).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        versions.sort_by_key(|v| v.number);
        if versions.is_empty() {
            return Err(corrupt(&record.arn));
        }
        let key = super::name::key_of(&record.name).to_owned();
        Ok(Self {
            arn: record.arn,
            name: record.name,
            key,
            created_ms: record.created_ms,
            tags: meta.tags,
            versions,
            revision: record.revision,
        })
    }

    pub fn record(&self, scope: &crate::arn::Scope) -> Result<ParamRecord, SsmError> {
        let meta = ParamMeta {
            tags: self.tags.clone(),
        };
        Ok(ParamRecord {
            arn: self.arn.clone(),
            account: scope.account.clone(),
            region: scope.region.clone(),
            name: self.name.clone(),
            created_ms: self.created_ms,
            expires_ms: self.expires_ms(),
            meta: serde_json::to_string(&meta).map_err(|_| SsmError::Internal)?,
            revision: self.revision,
        })
    }
}

impl Version {
    pub fn record(&self, arn: &str) -> Result<ParamVersionRecord, SsmError> {
        let meta = VersionMeta {
            kind: self.kind.as_str().to_owned(),
            description: self.description.clone(),
            allowed_pattern: self.allowed_pattern.clone(),
            key_id: self.key_id.clone(),
            data_type: self.data_type.clone(),
            tier: self.tier.as_str().to_owned(),
            policies: self.policies.iter().map(|p| p.text.clone()).collect(),
            labels: self.labels.clone(),
            user: self.modified_user.clone(),
        };
        let value = match &self.value {
            Stored::Text(t) => t.as_bytes().to_vec(),
            Stored::Sealed(b) => b.clone(),
        };
        Ok(ParamVersionRecord {
            param_arn: arn.to_owned(),
            version: self.number,
            modified_ms: self.modified_ms,
            value,
            meta: serde_json::to_string(&meta).map_err(|_| SsmError::Internal)?,
        })
    }

    fn from_record(record: ParamVersionRecord) -> Result<Self, SsmError> {
        let arn = record.param_arn.as_str();
        let meta: VersionMeta = serde_json::from_str(&record.meta).map_err(|_| corrupt(arn))?;
        let kind = ParameterType::parse(&meta.kind).ok_or_else(|| corrupt(arn))?;
        let tier = ParameterTier::parse(&meta.tier).ok_or_else(|| corrupt(arn))?;
        let value = match kind {
            ParameterType::SecureString => Stored::Sealed(record.value),
            _ => Stored::Text(String::from_utf8(record.value).map_err(|_| corrupt(arn))?),
        };
        let policies = meta
            .policies
            .iter()
            .map(|text| policies::from_text(text).ok_or_else(|| corrupt(arn)))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            number: record.version,
            kind,
            value,
            description: meta.description,
            allowed_pattern: meta.allowed_pattern,
            key_id: meta.key_id,
            data_type: meta.data_type,
            tier,
            policies,
            labels: meta.labels,
            modified_ms: record.modified_ms,
            modified_user: meta.user,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct ParamMeta {
    #[serde(default)]
    tags: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
struct VersionMeta {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    allowed_pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
    data_type: String,
    tier: String,
    #[serde(default)]
    policies: Vec<String>,
    #[serde(default)]
    labels: Vec<String>,
    user: String,
}

fn corrupt(arn: &str) -> SsmError {
    tracing::error!(arn, "stored parameter cannot be read");
    SsmError::Internal
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::arn::Scope;

    #[test]
    fn records_round_trip() {
        let scope = Scope::new("111122223333", "us-east-1");
        let policy = policies::parse(
            r#"[{"Type":"Expiration","Version":"1.0","Attributes":{"Timestamp":"2040-01-01T00:00:00Z"}}]"#,
            0,
        )
        .unwrap();
        let version = |number, kind, value| {
            Arc::new(Version {
                number,
                kind,
                value,
                description: Some("d".into()),
                allowed_pattern: None,
                key_id: None,
                data_type: "text".into(),
                tier: ParameterTier::Advanced,
                policies: policy.clone(),
                labels: vec!["prod".into()],
                modified_ms: 5,
                modified_user: "arn:aws:iam::111122223333:root".into(),
            })
        };
        let p = Param {
            arn: "arn:aws:ssm:us-east-1:111122223333:parameter/a/b".into(),
            name: "/a/b".into(),
            key: "a/b".into(),
            created_ms: 1,
            revision: 1,
            tags: vec![("k".into(), "v".into())],
            versions: vec![
                version(1, ParameterType::String, Stored::Text("one".into())),
                version(
                    2,
                    ParameterType::SecureString,
                    Stored::Sealed(vec![1, 2, 3]),
                ),
            ],
        };
        let record = p.record(&scope).unwrap();
        assert_eq!(record.expires_ms, p.expires_ms());
        let versions = p
            .versions
            .iter()
            .rev()
            .map(|v| v.record(&p.arn).unwrap())
            .collect();
        let back = Param::from_records(record, versions).unwrap();
        assert_eq!(back.key, "a/b");
        assert_eq!(back.tags, p.tags);
        assert_eq!(back.versions.len(), 2);
        assert_eq!(back.versions[0].value, Stored::Text("one".into()));
        assert_eq!(back.versions[1].value, Stored::Sealed(vec![1, 2, 3]));
        assert_eq!(back.versions[1].policies, policy);
        assert_eq!(back.tier(), ParameterTier::Advanced);
    }
}
