//! A KMS key as the server holds it in memory: typed metadata, tags, its grants, and the
//! unsealed backing keys of every material version.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use keyhold_crypto::asymmetric::PrivateKey;
use keyhold_crypto::{KeyId, MaterialId, SymmetricKey};
use keyhold_proto::Timestamp;
use keyhold_proto::kms::{
    EncapsulationAlgorithmSpec, EncryptionAlgorithmSpec, KeyAgreementAlgorithmSpec, KeyManagerType,
    KeyMetadata, KeySpec, KeyState, KeyUsageType, MacAlgorithmSpec, OriginType,
    SigningAlgorithmSpec,
};
use keyhold_store::{KeyRecord, Tag};

use super::error::KmsError;
use super::grant::KeyGrants;

/// The unsealed material of one KMS key.
///
/// - `by_id`: a symmetric encryption key's backing keys, by material id. Every material a
///   key ever had stays here, so ciphertexts from before a rotation still decrypt.
/// - `imported`: keys with `EXTERNAL` origin: what each imported material is (import
///   state, expiry), in import order. `by_id` holds exactly the ones that are imported.
/// - `private`: the one material of an asymmetric, HMAC or post-quantum key (stored as the
///   key's one material row), parsed once when the key is loaded: Sign, Decrypt, GenerateMac
///   and the rest use it from memory, never parsing or reading the store per request.
#[derive(Default)]
pub struct Materials {
    pub by_id: HashMap<MaterialId, Arc<SymmetricKey>>,
    pub imported: Vec<super::import::ImportedMaterial>,
    pub private: Option<Arc<PrivateKey>>,
    /// The custom key store (its id) whose token holds the key's material, for keys with
    /// `AWS_CLOUDHSM` origin; `by_id` is then empty.
    pub custom_key_store: Option<String>,
}

impl Materials {
    /// The materials of a symmetric encryption key.
    pub fn symmetric(by_id: HashMap<MaterialId, Arc<SymmetricKey>>) -> Self {
        Self {
            by_id,
            ..Self::default()
        }
    }

    /// The material of an asymmetric, HMAC or post-quantum key.
    pub fn private(key: PrivateKey) -> Self {
        Self {
            private: Some(Arc::new(key)),
            ..Self::default()
        }
    }

    /// These materials and one more (a rotation's).
    pub fn with(&self, id: MaterialId, material: SymmetricKey) -> Self {
        let mut by_id = self.by_id.clone();
        by_id.insert(id, Arc::new(material));
        Self {
            by_id,
            imported: self.imported.clone(),
            private: self.private.clone(),
            custom_key_store: self.custom_key_store.clone(),
        }
    }
}

/// One KMS key, immutable once built: a change builds a new `Key` (sharing [`Materials`]).
///
/// Laid out in declaration order (`repr(C)`): what a cryptographic request reads of the key
/// itself comes first, in the allocation's first 128 bytes with the `Arc`'s counts (a test
/// below pins it), so that a key outside the CPU's caches (most of them, with a working set
/// of 100,000 keys) costs few cache lines. Of the record, which follows, Decrypt reads the
/// ARN, region and account.
#[repr(C)]
pub struct Key {
    pub id: KeyId,
    pub state: KeyState,
    pub usage: KeyUsageType,
    pub spec: KeySpec,
    pub manager: KeyManagerType,
    pub origin: OriginType,
    /// The backing key of `current_material` when it is in memory (a symmetric encryption
    /// key outside a custom key store): Encrypt, and Decrypt of a ciphertext made since the
    /// last rotation, use it without reading the materials' map.
    current: Option<Arc<SymmetricKey>>,
    /// The parsed key policy; `None` if the stored text no longer parses, which denies
    /// everything (fail closed) until a valid policy is put.
    pub policy: Option<Arc<keyhold_policy::Policy>>,
    pub materials: Arc<Materials>,
    pub current_material: MaterialId,
    pub record: KeyRecord,
    /// The key's grants: shared by every version of this key and changed in place.
    pub grants: Arc<KeyGrants>,
    /// The key's aliases (`kms:ResourceAliases`): shared likewise, changed in place by the
    /// alias operations after their store write.
    pub aliases: Arc<KeyAliases>,
    pub tags: Vec<Tag>,
}

/// The names (`alias/...`) of the aliases that point at one key.
#[derive(Debug, Default)]
pub struct KeyAliases(RwLock<Vec<String>>);

impl KeyAliases {
    pub fn new(names: Vec<String>) -> Self {
        Self(RwLock::new(names))
    }

    pub fn names(&self) -> Vec<String> {
        self.0.read().map(|n| n.clone()).unwrap_or_default()
    }

    pub fn add(&self, name: &str) {
        if let Ok(mut names) = self.0.write()
            && !names.iter().any(|n| n == name)
        {
            names.push(name.to_owned());
        }
    }

    pub fn remove(&self, name: &str) {
        if let Ok(mut names) = self.0.write() {
            names.retain(|n| n != name);
        }
    }
}

impl Key {
    /// Builds the in-memory key from its stored parts; fails on rows this version cannot read.
    pub fn from_parts(
        record: KeyRecord,
        tags: Vec<Tag>,
        materials: Arc<Materials>,
        grants: Arc<KeyGrants>,
        aliases: Arc<KeyAliases>,
    ) -> Option<Self> {
        let id = parse_key_uuid(&record.key_id)
            .or_else(|| super::multi_region::key_id_of_storage(&record.key_id))?;
        let policy = match super::shared_policy::key_policy(&record.policy) {
            Ok(policy) => Some(policy),
            Err(e) => {
                tracing::error!(key = %record.arn, error = %e, "stored key policy does not parse; the key denies every request");
                None
            }
        };
        let current_material = parse_current_material(&record.current_material_id)?;
        let current = materials.by_id.get(&current_material).cloned();
        Some(Self {
            policy,
            id,
            current,
            state: KeyState::parse(&record.state)?,
            usage: KeyUsageType::parse(&record.key_usage)?,
            spec: KeySpec::parse(&record.key_spec)?,
            manager: KeyManagerType::parse(&record.key_manager)?,
            origin: OriginType::parse(&record.origin)?,
            current_material,
            record,
            tags,
            materials,
            grants,
            aliases,
        })
    }

    /// The same key with a rotated record and its materials (one more); same grants.
    pub fn with_materials(&self, record: KeyRecord, materials: Arc<Materials>) -> Option<Self> {
        Self::from_parts(
            record,
            self.tags.clone(),
            materials,
            self.grants.clone(),
            self.aliases.clone(),
        )
    }

    /// The same key with a changed record (and possibly changed tags); same grants.
    pub fn with_record(&self, record: KeyRecord, tags: Vec<Tag>) -> Option<Self> {
        Self::from_parts(
            record,
            tags,
            self.materials.clone(),
            self.grants.clone(),
            self.aliases.clone(),
        )
    }

    pub fn arn(&self) -> &str {
        &self.record.arn
    }

    /// The in-memory backing key of this symmetric encryption key's material `id` (`None`:
    /// the key has no such material, or its material lives in a custom key store).
    pub fn symmetric_material(&self, id: &MaterialId) -> Option<&SymmetricKey> {
        match &self.current {
            Some(current) if *id == self.current_material => Some(current),
            _ => self.materials.by_id.get(id).map(|m| &**m),
        }
    }

    /// The key id the wire shows (`mrk-<hex>` for a multi-Region key's row in any region).
    pub fn wire_key_id(&self) -> &str {
        super::multi_region::wire_id(&self.record.key_id)
    }

    /// Whether this is a multi-Region replica key (rotated through its primary only).
    pub fn is_replica(&self) -> bool {
        self.record
            .multi_region_primary
            .as_deref()
            .is_some_and(|primary| primary != self.record.region)
    }

    pub fn is_aws_managed(&self) -> bool {
        self.manager == KeyManagerType::Aws
    }

    /// The state check of cryptographic operations.
    pub fn check_usable(&self) -> Result<(), KmsError> {
        match self.state {
            KeyState::Enabled => Ok(()),
            KeyState::Disabled => Err(KmsError::Disabled {
                arn: self.record.arn.clone(),
            }),
            KeyState::PendingImport => Err(KmsError::PendingImport {
                arn: self.record.arn.clone(),
            }),
            KeyState::PendingReplicaDeletion => Err(KmsError::PendingReplicaDeletion {
                arn: self.record.arn.clone(),
            }),
            _ => Err(KmsError::PendingDeletion {
                arn: self.record.arn.clone(),
            }),
        }
    }

    /// Whether the key is scheduled for deletion: `PendingDeletion`, or
    /// `PendingReplicaDeletion` (a multi-Region primary waiting for its replicas to go).
    pub fn is_pending_deletion(&self) -> bool {
        matches!(
            self.state,
            KeyState::PendingDeletion | KeyState::PendingReplicaDeletion
        )
    }

    /// The state check of operations that change a key (tags, description, aliases).
    pub fn check_not_pending_deletion(&self) -> Result<(), KmsError> {
        match self.state {
            KeyState::PendingDeletion => Err(KmsError::PendingDeletion {
                arn: self.record.arn.clone(),
            }),
            KeyState::PendingReplicaDeletion => Err(KmsError::PendingReplicaDeletion {
                arn: self.record.arn.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// The waiting period of a multi-Region primary in `PendingReplicaDeletion`, in days:
    /// it starts only when its last replica is deleted, so until then the record's
    /// `deletion_ms` holds its length (in milliseconds), not a date.
    pub fn pending_replica_deletion_days(&self) -> Option<i32> {
        if self.state != KeyState::PendingReplicaDeletion {
            return None;
        }
        let window_ms = self.record.deletion_ms?;
        i32::try_from(window_ms / DAY_MS).ok()
    }

    /// The usage check of cryptographic operations.
    pub fn check_encrypt_decrypt(&self, operation: &'static str) -> Result<(), KmsError> {
        if self.usage != KeyUsageType::EncryptDecrypt || self.spec != KeySpec::SymmetricDefault {
            return Err(KmsError::InvalidKeyUsage {
                arn: self.record.arn.clone(),
                usage: self.usage.as_str(),
                operation,
            });
        }
        Ok(())
    }

    /// The usage check of the operations of asymmetric, HMAC and post-quantum keys.
    pub fn check_usage(
        &self,
        wanted: KeyUsageType,
        operation: &'static str,
    ) -> Result<(), KmsError> {
        if self.usage != wanted {
            return Err(KmsError::InvalidKeyUsage {
                arn: self.record.arn.clone(),
                usage: self.usage.as_str(),
                operation,
            });
        }
        Ok(())
    }

    /// The parsed private material of an asymmetric, HMAC or post-quantum key.
    pub fn private(&self) -> Result<&PrivateKey, KmsError> {
        self.materials.private.as_deref().ok_or(KmsError::Internal)
    }

    /// The algorithm lists of `DescribeKey` and `GetPublicKey` (each present only for the
    /// usage it belongs to, as AWS answers).
    pub fn algorithms(&self) -> Algorithms {
        let crypto = super::specs::crypto_spec(self.spec);
        let mut out = Algorithms::default();
        match self.usage {
            KeyUsageType::EncryptDecrypt if self.spec == KeySpec::SymmetricDefault => {
                out.encryption = Some(vec![EncryptionAlgorithmSpec::SymmetricDefault]);
            }
            KeyUsageType::EncryptDecrypt => {
                out.encryption = Some(vec![
                    EncryptionAlgorithmSpec::RsaesOaepSha1,
                    EncryptionAlgorithmSpec::RsaesOaepSha256,
                ]);
            }
            KeyUsageType::SignVerify => {
                out.signing = Some(
                    crypto
                        .map(|s| {
                            s.signing_algorithms()
                                .iter()
                                .map(|a| super::specs::signing_to_wire(*a))
                                .collect()
                        })
                        .unwrap_or_default(),
                );
            }
            KeyUsageType::GenerateVerifyMac => {
                out.mac = crypto
                    .and_then(|s| s.mac_algorithm())
                    .map(|a| vec![super::specs::mac_to_wire(a)]);
            }
            KeyUsageType::KeyAgreement => {
                out.key_agreement = Some(vec![KeyAgreementAlgorithmSpec::Ecdh]);
            }
            KeyUsageType::EncapsulateDecapsulate => {
                out.encapsulation = Some(vec![EncapsulationAlgorithmSpec::MlKem]);
            }
        }
        out
    }

    pub fn metadata(&self) -> KeyMetadata {
        let r = &self.record;
        let (expiration_model, valid_to) = super::import::metadata_expiration(self);
        let algorithms = self.algorithms();
        KeyMetadata {
            expiration_model,
            valid_to,
            aws_account_id: Some(r.account.clone()),
            key_id: self.wire_key_id().to_owned(),
            arn: Some(r.arn.clone()),
            creation_date: Some(Timestamp::from_millis(r.creation_ms)),
            enabled: Some(self.state == KeyState::Enabled),
            description: Some(r.description.clone()),
            key_usage: Some(self.usage),
            key_state: Some(self.state),
            // Only a key pending deletion has a date; in `PendingReplicaDeletion` the
            // waiting period has not started, and its length is shown instead.
            deletion_date: r
                .deletion_ms
                .filter(|_| self.state == KeyState::PendingDeletion)
                .map(Timestamp::from_millis),
            pending_deletion_window_in_days: self.pending_replica_deletion_days(),
            origin: Some(self.origin),
            key_manager: Some(self.manager),
            customer_master_key_spec: keyhold_proto::kms::CustomerMasterKeySpec::parse(
                self.spec.as_str(),
            ),
            key_spec: Some(self.spec),
            encryption_algorithms: algorithms.encryption,
            signing_algorithms: algorithms.signing,
            mac_algorithms: algorithms.mac,
            key_agreement_algorithms: algorithms.key_agreement,
            encapsulation_algorithms: algorithms.encapsulation,
            multi_region: Some(r.multi_region_primary.is_some()),
            // Only symmetric encryption keys have key material ids on AWS (and an imported
            // key has none until its first material arrives).
            current_key_material_id: (self.spec == KeySpec::SymmetricDefault
                && !r.current_material_id.is_empty())
            .then(|| r.current_material_id.clone()),
            ..KeyMetadata::default()
        }
    }
}

/// One day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// A key's current material id: 64 hex digits, or empty for a key with `EXTERNAL` origin
/// whose first material was never imported ([`NO_MATERIAL`]).
fn parse_current_material(text: &str) -> Option<MaterialId> {
    if text.is_empty() {
        return Some(NO_MATERIAL);
    }
    MaterialId::from_hex(text)
}

/// The `current_material` of a key that has none yet (no material has this id: ids are
/// random or derived from the material through HMAC-SHA256).
pub const NO_MATERIAL: MaterialId = MaterialId::from_bytes([0; 32]);

/// The algorithm lists of one key; `None` where its usage has no such list.
#[derive(Default)]
pub struct Algorithms {
    pub encryption: Option<Vec<EncryptionAlgorithmSpec>>,
    pub signing: Option<Vec<SigningAlgorithmSpec>>,
    pub mac: Option<Vec<MacAlgorithmSpec>>,
    pub key_agreement: Option<Vec<KeyAgreementAlgorithmSpec>>,
    pub encapsulation: Option<Vec<EncapsulationAlgorithmSpec>>,
}

/// Parses a key id in UUID form (`1234abcd-12ab-34cd-56ef-1234567890ab`, lowercase hex).
pub fn parse_key_uuid(text: &str) -> Option<KeyId> {
    let bytes = text.as_bytes();
    if bytes.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    let mut digits = bytes.iter().enumerate().filter_map(|(i, &b)| {
        let dash = matches!(i, 8 | 13 | 18 | 23);
        match (dash, b) {
            (true, b'-') => None,
            (true, _) => Some(None),
            (false, b'0'..=b'9') => Some(Some(b - b'0')),
            (false, b'a'..=b'f') => Some(Some(b - b'a' + 10)),
            (false, _) => Some(None),
        }
    });
    for slot in &mut out {
        let hi = digits.next()??;
        let lo = digits.next()??;
        *slot = (hi << 4) | lo;
    }
    digits.next().is_none().then_some(KeyId::from_bytes(out))
}

/// Formats key-id bytes as a UUID string.
pub fn format_key_uuid(id: &KeyId) -> String {
    let h = hex::encode(id.as_bytes());
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_round_trip() {
        let s = "1234abcd-12ab-34cd-56ef-1234567890ab";
        let id = parse_key_uuid(s).unwrap();
        assert_eq!(format_key_uuid(&id), s);
        for bad in [
            "",
            "1234ABCD-12ab-34cd-56ef-1234567890ab",
            "1234abcd12ab34cd56ef1234567890ab",
            "1234abcd-12ab-34cd-56ef-1234567890a",
            "1234abcd-12ab-34cd-56ef_1234567890ab",
        ] {
            assert!(parse_key_uuid(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn what_decrypt_reads_of_the_key_itself_lies_in_its_first_128_bytes() {
        use std::mem::{offset_of, size_of};
        // An `Arc`'s allocation holds its two counts, then the value.
        let counts = 2 * size_of::<usize>();
        let ends = [
            offset_of!(Key, origin) + size_of::<OriginType>(),
            offset_of!(Key, current) + size_of::<Option<Arc<SymmetricKey>>>(),
            offset_of!(Key, policy) + size_of::<Option<Arc<keyhold_policy::Policy>>>(),
            offset_of!(Key, current_material) + size_of::<MaterialId>(),
        ];
        for end in ends {
            assert!(counts + end <= 128, "{end}");
        }
    }
}
