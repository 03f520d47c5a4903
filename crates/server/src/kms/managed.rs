//! AWS-managed keys (`aws/secretsmanager`, `aws/ssm`) and the key policies AWS writes.
//!
//! AWS creates a service's managed key the first time something names its alias; its
//! policy lets every principal of the account use it *through the service only*
//! (`kms:ViaService`) and lets the account read its metadata. The texts below are AWS's,
//! in the pretty-printed form `GetKeyPolicy` returns (see docs/reference/kms-behaviour.md §5).

use std::sync::Arc;

use keyhold_crypto::asymmetric::PrivateKey;
use keyhold_crypto::{MaterialId, SymmetricKey};
use keyhold_proto::kms::{KeyManagerType, KeySpec, KeyState, KeyUsageType, OriginType};
use keyhold_store::{AliasRecord, KeyRecord, MaterialRecord, Tag};

use super::error::KmsError;
use super::key::{Key, KeyAliases, Materials, format_key_uuid};
use super::{AliasId, KmsService};
use crate::arn::Scope;

/// A service that has an AWS-managed key in Keyhold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManagedKey {
    SecretsManager,
    Ssm,
}

impl ManagedKey {
    pub const ALL: &'static [Self] = &[Self::SecretsManager, Self::Ssm];

    pub fn alias(self) -> &'static str {
        match self {
            Self::SecretsManager => "alias/aws/secretsmanager",
            Self::Ssm => "alias/aws/ssm",
        }
    }

    pub fn for_alias(alias: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|m| m.alias() == alias)
    }

    fn description(self) -> &'static str {
        match self {
            Self::SecretsManager => {
                "Default key that protects my Secrets Manager data when no other key is defined"
            }
            Self::Ssm => "Default key that protects my SSM parameters when no other key is defined",
        }
    }

    fn policy(self, scope: &Scope) -> String {
        let (account, region, root) = (&scope.account, &scope.region, scope.root_arn());
        match self {
            Self::SecretsManager => format!(
                r#"{{
  "Version" : "2012-10-17",
  "Id" : "auto-secretsmanager-2",
  "Statement" : [ {{
    "Sid" : "Allow access through AWS Secrets Manager for all principals in the account that are authorized to use AWS Secrets Manager",
    "Effect" : "Allow",
    "Principal" : {{
      "AWS" : "*"
    }},
    "Action" : [ "kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:CreateGrant", "kms:DescribeKey" ],
    "Resource" : "*",
    "Condition" : {{
      "StringEquals" : {{
        "kms:CallerAccount" : "{account}",
        "kms:ViaService" : "secretsmanager.{region}.amazonaws.com"
      }}
    }}
  }}, {{
    "Sid" : "Allow access through AWS Secrets Manager for all principals in the account that are authorized to use AWS Secrets Manager",
    "Effect" : "Allow",
    "Principal" : {{
      "AWS" : "*"
    }},
    "Action" : "kms:GenerateDataKey*",
    "Resource" : "*",
    "Condition" : {{
      "StringEquals" : {{
        "kms:CallerAccount" : "{account}"
      }},
      "StringLike" : {{
        "kms:ViaService" : "secretsmanager.{region}.amazonaws.com"
      }}
    }}
  }}, {{
    "Sid" : "Allow direct access to key metadata to the account",
    "Effect" : "Allow",
    "Principal" : {{
      "AWS" : "{root}"
    }},
    "Action" : [ "kms:Describe*", "kms:Get*", "kms:List*", "kms:RevokeGrant" ],
    "Resource" : "*"
  }} ]
}}"#
            ),
            Self::Ssm => format!(
                r#"{{
  "Version" : "2012-10-17",
  "Id" : "auto-ssm-1",
  "Statement" : [ {{
    "Sid" : "Allow access through SSM for all principals in the account that are authorized to use SSM",
    "Effect" : "Allow",
    "Principal" : {{
      "AWS" : "*"
    }},
    "Action" : [ "kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey" ],
    "Resource" : "*",
    "Condition" : {{
      "StringEquals" : {{
        "kms:CallerAccount" : "{account}",
        "kms:ViaService" : "ssm.{region}.amazonaws.com"
      }}
    }}
  }}, {{
    "Sid" : "Allow direct access to key metadata to the account",
    "Effect" : "Allow",
    "Principal" : {{
      "AWS" : "{root}"
    }},
    "Action" : [ "kms:Describe*", "kms:Get*", "kms:List*" ],
    "Resource" : "*"
  }} ]
}}"#
            ),
        }
    }
}

/// The policy `CreateKey` applies when none is given: the account (and through it, IAM)
/// may do everything.
pub fn default_key_policy(scope: &Scope) -> String {
    format!(
        r#"{{
  "Version" : "2012-10-17",
  "Id" : "key-default-1",
  "Statement" : [ {{
    "Sid" : "Enable IAM User Permissions",
    "Effect" : "Allow",
    "Principal" : {{
      "AWS" : "{}"
    }},
    "Action" : "kms:*",
    "Resource" : "*"
  }} ]
}}"#,
        scope.root_arn()
    )
}

/// AWS rotates the material of AWS-managed keys every year (since May 2022).
pub(super) const MANAGED_ROTATION_DAYS: i32 = 365;

/// What a new key is made of, before it is stored.
pub(super) struct NewKey {
    pub record: KeyRecord,
    pub material: MaterialRecord,
    pub materials: Materials,
}

impl KmsService {
    /// Generates and seals the material of a new symmetric key and builds its record.
    pub(super) fn new_symmetric_key(
        &self,
        scope: &Scope,
        description: String,
        policy: String,
        manager: KeyManagerType,
    ) -> Result<NewKey, KmsError> {
        self.new_key(scope, description, policy, manager, None, false)
    }

    /// Seals the material of a new key and builds its record: a fresh symmetric backing key
    /// for `private: None`, else the given asymmetric, HMAC or post-quantum material (its
    /// spec and use come with it), stored as the key's one material row.
    pub(super) fn new_key(
        &self,
        scope: &Scope,
        description: String,
        policy: String,
        manager: KeyManagerType,
        private: Option<PrivateKey>,
        multi_region: bool,
    ) -> Result<NewKey, KmsError> {
        let id = keyhold_crypto::KeyId::from_bytes(*uuid::Uuid::new_v4().as_bytes());
        // A multi-Region key: `mrk-<hex>` on the wire, its row stored per region.
        let (key_id, arn) = if multi_region {
            let wire = super::multi_region::format_wire(&id);
            let arn = scope.arn("kms", format_args!("key/{wire}"));
            (super::multi_region::storage_id(&wire, &scope.region), arn)
        } else {
            let key_id = format_key_uuid(&id);
            let arn = scope.arn("kms", format_args!("key/{key_id}"));
            (key_id, arn)
        };
        let material_id = MaterialId::random().map_err(|_| KmsError::Internal)?;
        let (spec, usage, sealed, materials) = match private {
            None => {
                let material = SymmetricKey::generate().map_err(|_| KmsError::Internal)?;
                let sealed = self
                    .domain
                    .seal_material(&material, &arn, &material_id)
                    .map_err(|_| KmsError::Internal)?;
                let mut by_id = std::collections::HashMap::new();
                by_id.insert(material_id, Arc::new(material));
                let materials = Materials::symmetric(by_id);
                (
                    KeySpec::SymmetricDefault,
                    KeyUsageType::EncryptDecrypt,
                    sealed,
                    materials,
                )
            }
            Some(private) => {
                let spec = KeySpec::parse(private.spec().name()).ok_or(KmsError::Internal)?;
                let usage =
                    KeyUsageType::parse(private.key_use().name()).ok_or(KmsError::Internal)?;
                let sealed = self
                    .domain
                    .seal_private_key(&private, &arn, &material_id)
                    .map_err(|_| KmsError::Internal)?;
                (spec, usage, sealed, Materials::private(private))
            }
        };
        let now = self.clock.now().as_millis();
        let mut record = KeyRecord {
            key_id: key_id.clone(),
            account: scope.account.clone(),
            region: scope.region.clone(),
            arn,
            creation_ms: now,
            description,
            key_usage: usage.as_str().to_owned(),
            key_spec: spec.as_str().to_owned(),
            origin: OriginType::AwsKms.as_str().to_owned(),
            key_manager: manager.as_str().to_owned(),
            state: KeyState::Enabled.as_str().to_owned(),
            deletion_ms: None,
            policy,
            current_material_id: material_id.to_hex(),
            rotation_period_days: None,
            next_rotation_ms: None,
            state_after_import: None,
            multi_region_primary: multi_region.then(|| scope.region.clone()),
        };
        // AWS-managed keys rotate every year, always (GetKeyRotationStatus: true).
        if manager == KeyManagerType::Aws {
            super::rotation::enable_schedule(&mut record, MANAGED_ROTATION_DAYS, self.clock.now());
        }
        let material_record = MaterialRecord {
            key_id,
            material_id: material_id.to_hex(),
            sealed,
            creation_ms: now,
            rotation_type: None,
        };
        Ok(NewKey {
            record,
            material: material_record,
            materials,
        })
    }

    /// Stores a new key durably and caches it. Callers need not hold the write lock for a
    /// key with a fresh random id (`CreateKey`).
    pub(super) async fn insert_key(
        &self,
        new: NewKey,
        tags: Vec<Tag>,
        alias: Option<&AliasRecord>,
    ) -> Result<Arc<Key>, KmsError> {
        self.store
            .insert_key(&new.record, &new.material, &tags, alias)
            .await?;
        self.writes.note_write();
        let aliases = alias.map(|a| vec![a.name.clone()]).unwrap_or_default();
        let key = Key::from_parts(
            new.record,
            tags,
            Arc::new(new.materials),
            Arc::default(),
            Arc::new(KeyAliases::new(aliases)),
        )
        .ok_or(KmsError::Internal)?;
        let key = Arc::new(key);
        self.cache_put(key.clone());
        Ok(key)
    }

    /// Creates the AWS-managed key of a service with its alias (or returns the one another
    /// request created meanwhile).
    pub(super) async fn create_managed_key(
        &self,
        scope: &Scope,
        managed: ManagedKey,
    ) -> Result<Arc<Key>, KmsError> {
        let _guard = self.writes.lock().await;
        let id = AliasId {
            account: scope.account.clone(),
            region: scope.region.clone(),
            name: managed.alias().to_owned(),
        };
        if let Some(existing) = self
            .store
            .get_alias(&id.account, &id.region, &id.name)
            .await?
        {
            return self
                .load(&existing.target_key_id)
                .await?
                .ok_or(KmsError::Internal);
        }
        let new = self.new_symmetric_key(
            scope,
            managed.description().to_owned(),
            managed.policy(scope),
            KeyManagerType::Aws,
        )?;
        let now = new.record.creation_ms;
        let alias = AliasRecord {
            account: id.account.clone(),
            region: id.region.clone(),
            name: id.name.clone(),
            target_key_id: new.record.key_id.clone(),
            creation_ms: now,
            updated_ms: now,
        };
        let key = self.insert_key(new, Vec::new(), Some(&alias)).await?;
        self.alias_cache_put(id, key.record.key_id.clone());
        tracing::info!(alias = managed.alias(), account = %scope.account, region = %scope.region, "created AWS-managed key");
        Ok(key)
    }
}
