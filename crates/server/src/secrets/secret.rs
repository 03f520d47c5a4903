//! A secret as the service holds it in memory: its identity, its metadata document and its
//! sealed versions. Immutable once built: a change builds the next `Secret` and stores it.
//!
//! The metadata ([`Meta`]) is one JSON document in the store (`SecretRecord::meta`), so
//! adding a field needs no migration. Staging labels live there too, as a map from version
//! id to labels: one row holds every label, so "a label is on one version at a time" is a
//! property of one value, changed atomically.

use std::collections::BTreeMap;
use std::sync::Arc;

use keyhold_store::{SecretRecord, SecretVersionRecord};
use serde::{Deserialize, Serialize};

use super::error::SecretsError;

pub const AWSCURRENT: &str = "AWSCURRENT";
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";
pub const AWSPENDING: &str = "AWSPENDING";

/// One secret with its versions (oldest first).
#[derive(Clone, Debug)]
pub struct Secret {
    pub arn: String,
    pub account: String,
    pub region: String,
    pub name: String,
    pub created_ms: i64,
    /// When the secret will be purged, while it is scheduled for deletion.
    pub deletion_ms: Option<i64>,
    pub meta: Meta,
    pub versions: Vec<Arc<SecretVersionRecord>>,
    /// The store row's revision this state was read at or written as
    /// ([`SecretRecord::revision`]); [`super::SecretsService`]'s commit writes the next one.
    pub revision: i64,
}

/// Everything about a secret that is neither its identity nor a value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Meta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The `KmsKeyId` as the caller gave it; `None` is the AWS-managed `aws/secretsmanager`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// `None` until the secret is first tagged (AWS then answers `Tags: []` once all are gone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<(String, String)>>,
    /// Version id → its staging labels (sorted). Versions without labels are absent.
    pub stages: BTreeMap<String, Vec<String>>,
    pub last_changed_ms: i64,
    /// Midnight (UTC) of the last day the value was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_accessed_ms: Option<i64>,
    /// When `DeleteSecret` scheduled the deletion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_ms: Option<i64>,
    /// The `default` resource policy, as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// `None` until rotation is first configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_type: Option<String>,
    /// For a replica: the ARN of its primary secret (in another Region).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_arn: Option<String>,
    /// For a primary: its replicas in other Regions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<Replica>,
    /// For a cross-account replica: the primary it replicates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cross_account_primary: Option<CrossAccountLink>,
    /// For a primary: its replica in another account (at most one).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cross_account_replicas: Vec<CrossAccountLink>,
}

/// The rotation configuration and schedule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rotation {
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lambda_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_days: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_expression: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_rotated_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_rotation_ms: Option<i64>,
    /// When the scheduled rotation is due: the opening of the window `next_rotation_ms`
    /// closes (or, after a failed attempt, the retry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_metadata: Option<Vec<(String, String)>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_role_arn: Option<String>,
}

/// A replica of a primary secret in another Region.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Replica {
    pub region: String,
    /// As the caller gave it; `None` is `aws/secretsmanager` of that Region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// `InSync` or `Failed`.
    pub status: String,
    pub status_message: String,
}

/// One side of a cross-account replication.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CrossAccountLink {
    /// The other secret's ARN.
    pub arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// `Pending`, `InSync`, `Failed` or `Detached`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// On the primary's side: the version last copied to the replica.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synced_version: Option<String>,
}

impl Secret {
    /// Builds the in-memory secret from its stored parts.
    pub fn from_records(
        record: SecretRecord,
        versions: Vec<SecretVersionRecord>,
    ) -> Result<Self, SecretsError> {
        let meta: Meta = serde_json::from_str(&record.meta).map_err(|e| {
            tracing::error!(arn = %record.arn, error = %e, "stored secret metadata does not parse");
            SecretsError::Internal
        })?;
        let mut versions: Vec<_> = versions.into_iter().map(Arc::new).collect();
        versions.sort_by(|a, b| (a.created_ms, &a.version_id).cmp(&(b.created_ms, &b.version_id)));
        Ok(Self {
            arn: record.arn,
            account: record.account,
            region: record.region,
            name: record.name,
            created_ms: record.created_ms,
            deletion_ms: record.deletion_ms,
            meta,
            versions,
            revision: record.revision,
        })
    }

    /// The row the store keeps for this secret.
    pub fn record(&self) -> Result<SecretRecord, SecretsError> {
        let meta = serde_json::to_string(&self.meta).map_err(|_| SecretsError::Internal)?;
        Ok(SecretRecord {
            arn: self.arn.clone(),
            account: self.account.clone(),
            region: self.region.clone(),
            name: self.name.clone(),
            created_ms: self.created_ms,
            deletion_ms: self.deletion_ms,
            meta,
            revision: self.revision,
        })
    }

    /// A version a rotation created and its function has not filled yet (AWS's "empty
    /// secret version"): it has labels but no value.
    pub fn is_empty_version(version: &SecretVersionRecord) -> bool {
        version.sealed_value.is_empty()
    }

    pub fn is_deleted(&self) -> bool {
        self.deletion_ms.is_some()
    }

    pub fn is_replica(&self) -> bool {
        self.meta.primary_arn.is_some()
    }

    pub fn version(&self, version_id: &str) -> Option<&Arc<SecretVersionRecord>> {
        self.versions.iter().find(|v| v.version_id == version_id)
    }

    /// The labels of a version (empty for a deprecated one).
    pub fn labels(&self, version_id: &str) -> &[String] {
        self.meta
            .stages
            .get(version_id)
            .map_or(&[][..], Vec::as_slice)
    }

    /// The version a label is attached to.
    pub fn version_with(&self, label: &str) -> Option<&str> {
        self.meta
            .stages
            .iter()
            .find(|(_, labels)| labels.iter().any(|l| l == label))
            .map(|(id, _)| id.as_str())
    }

    /// The labels in use across all versions.
    pub fn label_count(&self) -> usize {
        self.meta.stages.values().map(Vec::len).sum()
    }

    /// The version ids that carry labels, with their labels (`VersionIdsToStages`).
    pub fn versions_to_stages(&self) -> BTreeMap<String, Vec<String>> {
        self.meta.stages.clone()
    }

    /// Replaces (or adds) one version.
    pub fn put_version(&mut self, version: SecretVersionRecord) {
        let version = Arc::new(version);
        match self
            .versions
            .iter_mut()
            .find(|v| v.version_id == version.version_id)
        {
            Some(slot) => *slot = version,
            None => self.versions.push(version),
        }
    }
}

/// Midnight UTC of the day of `ms` (AWS reports access dates without the time).
pub fn day_of(ms: i64) -> i64 {
    ms - ms.rem_euclid(86_400_000)
}
