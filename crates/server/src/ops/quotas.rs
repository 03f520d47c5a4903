//! Request quotas as AWS applies them: token buckets per account, Region and quota, with
//! AWS's default rates (requests per second), refilled continuously, holding at most one
//! second's worth. A request over its quota is answered `ThrottlingException` — before
//! it runs, and audited like any refused call — so clients' retry logic is exercised.
//!
//! Off by default in dev mode, on by default in strict mode (`[quotas] enabled`); every
//! rate can be changed (`[quotas.rates]`, by quota name). The defaults and where each
//! comes from are in docs/operations.md.
//!
//! - KMS: one shared quota for the cryptographic operations on symmetric keys (by Region:
//!   100,000/s in us-east-1, us-west-2 and eu-west-1, 20,000/s in us-east-2, ap-southeast-1,
//!   ap-southeast-2, ap-northeast-1, eu-central-1 and eu-west-2, 10,000/s elsewhere), one
//!   each for RSA, ML-DSA and elliptic-curve (and SM2) keys (1,000/s each), and a quota per
//!   management operation (`CreateKey` 5/s, `DescribeKey` 2,000/s, `ListKeys` 500/s, ...).
//! - Secrets Manager: `GetSecretValue` 10,000/s, `DescribeSecret` 40,000/s,
//!   `BatchGetSecretValue` and `ListSecrets` 100/s, the write and policy groups 50/s.
//! - Parameter Store: `GetParameter`, `GetParameters` and `GetParametersByPath` share 40/s
//!   (standard throughput) or 10,000/s with `ssm_high_throughput = true` (what AWS's
//!   `UpdateServiceSetting` on `/ssm/parameter-store/high-throughput-enabled` turns on;
//!   that operation is not in the served SSM model, so the setting is configuration);
//!   `PutParameter` 3/s (10/s with high throughput).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use keyhold_proto::route::Operation;
use keyhold_proto::{ApiError, CommonError};

use crate::context::RequestContext;
use crate::http::AppState;

/// KMS's throttling message, as AWS sends it.
pub const KMS_MESSAGE: &str =
    "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls.";
/// The message of the other JSON services' `ThrottlingException`.
pub const RATE_EXCEEDED: &str = "Rate exceeded";

/// Buckets kept at most; past this, full (idle) buckets are dropped first.
const MAX_BUCKETS: usize = 100_000;

/// The quota configuration: `[quotas]` in the config file.
#[derive(Clone, Debug, Default)]
pub struct QuotaConfig {
    /// `None`: on in strict mode, off in dev mode.
    pub enabled: Option<bool>,
    /// Parameter Store's higher-throughput setting.
    pub ssm_high_throughput: bool,
    /// Rates (requests per second) by quota name, replacing the defaults.
    pub rates: BTreeMap<String, f64>,
}

/// The kind of KMS key a request uses, for the shared cryptographic quotas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyClass {
    Symmetric,
    Rsa,
    MlDsa,
    Ecc,
}

impl KeyClass {
    /// From a key spec (`SYMMETRIC_DEFAULT`, `RSA_2048`, `ML_DSA_65`, `ECC_NIST_P256`,
    /// `HMAC_256`, ...).
    pub fn of_spec(spec: &str) -> Self {
        if spec.starts_with("RSA_") {
            Self::Rsa
        } else if spec.starts_with("ML_DSA_") {
            Self::MlDsa
        } else if spec.starts_with("ECC_") || spec.starts_with("SM2") {
            Self::Ecc
        } else {
            Self::Symmetric
        }
    }
}

/// The request quotas of one server.
pub struct Quotas {
    config: QuotaConfig,
    buckets: Mutex<HashMap<BucketKey, Bucket>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct BucketKey {
    account: String,
    region: String,
    quota: &'static str,
}

struct Bucket {
    tokens: f64,
    rate: f64,
    last: Instant,
}

impl Bucket {
    /// Refills, then takes one token if there is one.
    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(capacity(self.rate));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.rate >= capacity(self.rate)
    }
}

/// A bucket holds one second's worth of requests (at least one).
fn capacity(rate: f64) -> f64 {
    rate.max(1.0)
}

impl Quotas {
    /// `None` when quotas are off for this mode and configuration.
    pub fn new(config: QuotaConfig, mode: crate::config::Mode) -> Option<Self> {
        let enabled = config
            .enabled
            .unwrap_or(mode == crate::config::Mode::Strict);
        enabled.then(|| Self {
            config,
            buckets: Mutex::default(),
        })
    }

    /// Takes one request from the bucket of `quota` in the account and Region, if there is
    /// one left.
    fn take(&self, account: &str, region: &str, quota: Quota) -> bool {
        let rate = self
            .config
            .rates
            .get(quota.name)
            .copied()
            .unwrap_or(quota.default_rate);
        if !(rate.is_finite() && rate > 0.0) {
            return true;
        }
        let now = Instant::now();
        let key = BucketKey {
            account: account.to_owned(),
            region: region.to_owned(),
            quota: quota.name,
        };
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&key) {
            buckets.retain(|_, b| !b.is_full(now));
        }
        let bucket = buckets.entry(key).or_insert_with(|| Bucket {
            tokens: capacity(rate),
            rate,
            last: now,
        });
        bucket.rate = rate;
        bucket.take(now)
    }
}

/// One quota: its name (what `[quotas.rates]` sets) and AWS's default rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quota {
    pub name: &'static str,
    pub default_rate: f64,
}

const fn quota(name: &'static str, default_rate: f64) -> Option<Quota> {
    Some(Quota { name, default_rate })
}

/// Admits the request, or answers `ThrottlingException` when its quota is used up. Does
/// nothing when quotas are off, and nothing for the KMS operations whose quota depends on
/// the key they use ([`depends_on_key`]): KMS admits those once it has decoded the
/// request's `KeyId` ([`Quotas::admit`]), so the body is parsed once.
pub fn admit(state: &AppState, ctx: &RequestContext) -> Result<(), ApiError> {
    let Some(quotas) = &state.ops.quotas else {
        return Ok(());
    };
    if depends_on_key(ctx.operation) {
        return Ok(());
    }
    quotas.admit(ctx, || KeyClass::Symmetric, Some(&state.ops.metrics))
}

/// Whether the quota of `operation` is the shared cryptographic quota of the class of key
/// it uses.
pub fn depends_on_key(operation: Operation) -> bool {
    let mut asked = false;
    let _ = quota_of(operation, "us-east-1", false, || {
        asked = true;
        KeyClass::Symmetric
    });
    asked
}

impl Quotas {
    /// Takes one request of `ctx`'s operation from its bucket (the shared cryptographic
    /// quota of `class()` for the KMS operations that use one), or answers
    /// `ThrottlingException`, counted in `metrics`.
    pub fn admit(
        &self,
        ctx: &RequestContext,
        class: impl FnOnce() -> KeyClass,
        metrics: Option<&crate::ops::metrics::Metrics>,
    ) -> Result<(), ApiError> {
        let operation = ctx.operation;
        let Some(quota) = quota_of(
            operation,
            &ctx.scope.region,
            self.config.ssm_high_throughput,
            class,
        ) else {
            return Ok(());
        };
        if self.take(&ctx.scope.account, &ctx.scope.region, quota) {
            return Ok(());
        }
        let service = operation.service().signing_name();
        if let Some(metrics) = metrics {
            metrics.throttled(service, quota.name);
        }
        tracing::debug!(quota = quota.name, "request throttled");
        let message = match operation {
            Operation::Kms(_) => KMS_MESSAGE,
            _ => RATE_EXCEEDED,
        };
        Err(ApiError::new(CommonError::Throttling, message))
    }
}

/// The quota a request counts against, if any.
pub fn quota_of(
    operation: Operation,
    region: &str,
    ssm_high_throughput: bool,
    class: impl FnOnce() -> KeyClass,
) -> Option<Quota> {
    use keyhold_proto::kms::KmsOperation as K;
    use keyhold_proto::secretsmanager::SecretsManagerOperation as S;
    use keyhold_proto::ssm::SsmOperation as P;
    match operation {
        Operation::Kms(op) => match op {
            K::Decrypt
            | K::Encrypt
            | K::GenerateDataKey
            | K::GenerateDataKeyWithoutPlaintext
            | K::GenerateMac
            | K::GenerateRandom
            | K::ReEncrypt
            | K::VerifyMac
            | K::Sign
            | K::Verify
            | K::DeriveSharedSecret => match class() {
                KeyClass::Symmetric => quota(
                    "kms:CryptographicOperationsSymmetric",
                    symmetric_rate(region),
                ),
                KeyClass::Rsa => quota("kms:CryptographicOperationsRsa", 1_000.0),
                KeyClass::MlDsa => quota("kms:CryptographicOperationsMlDsa", 1_000.0),
                KeyClass::Ecc => quota("kms:CryptographicOperationsEcc", 1_000.0),
            },
            // AWS has one quota per data key pair spec (100/s for each ECC spec, 20/s
            // RSA_2048, 4/s RSA_3072, 1/s RSA_4096, 25/s SM2); here one shared bucket, at
            // the ECC figure.
            K::GenerateDataKeyPair | K::GenerateDataKeyPairWithoutPlaintext => {
                quota("kms:GenerateDataKeyPair", 100.0)
            }
            K::CancelKeyDeletion => quota("kms:CancelKeyDeletion", 5.0),
            K::CreateAlias => quota("kms:CreateAlias", 5.0),
            K::CreateGrant => quota("kms:CreateGrant", 50.0),
            K::CreateKey => quota("kms:CreateKey", 5.0),
            K::DeleteAlias => quota("kms:DeleteAlias", 15.0),
            K::DeleteImportedKeyMaterial => quota("kms:DeleteImportedKeyMaterial", 15.0),
            K::DescribeKey => quota("kms:DescribeKey", 2_000.0),
            K::DisableKey => quota("kms:DisableKey", 5.0),
            K::DisableKeyRotation => quota("kms:DisableKeyRotation", 5.0),
            K::EnableKey => quota("kms:EnableKey", 5.0),
            K::EnableKeyRotation => quota("kms:EnableKeyRotation", 15.0),
            K::GetKeyLastUsage => quota("kms:GetKeyLastUsage", 5.0),
            K::GetKeyPolicy => quota("kms:GetKeyPolicy", 1_000.0),
            K::GetKeyRotationStatus => quota("kms:GetKeyRotationStatus", 1_000.0),
            K::GetParametersForImport => quota("kms:GetParametersForImport", 1.0),
            K::GetPublicKey => quota("kms:GetPublicKey", 2_000.0),
            K::ImportKeyMaterial => quota("kms:ImportKeyMaterial", 15.0),
            K::ListAliases => quota("kms:ListAliases", 500.0),
            K::ListGrants => quota("kms:ListGrants", 100.0),
            K::ListKeyPolicies => quota("kms:ListKeyPolicies", 100.0),
            K::ListKeyRotations => quota("kms:ListKeyRotations", 100.0),
            K::ListKeys => quota("kms:ListKeys", 500.0),
            K::ListResourceTags => quota("kms:ListResourceTags", 2_000.0),
            K::ListRetirableGrants => quota("kms:ListRetirableGrants", 100.0),
            K::PutKeyPolicy => quota("kms:PutKeyPolicy", 15.0),
            K::ReplicateKey => quota("kms:ReplicateKey", 5.0),
            K::RetireGrant => quota("kms:RetireGrant", 50.0),
            K::RevokeGrant => quota("kms:RevokeGrant", 50.0),
            K::RotateKeyOnDemand => quota("kms:RotateKeyOnDemand", 5.0),
            K::ScheduleKeyDeletion => quota("kms:ScheduleKeyDeletion", 15.0),
            K::TagResource => quota("kms:TagResource", 10.0),
            K::UntagResource => quota("kms:UntagResource", 5.0),
            K::UpdateAlias => quota("kms:UpdateAlias", 5.0),
            K::UpdateKeyDescription => quota("kms:UpdateKeyDescription", 5.0),
            K::UpdatePrimaryRegion => quota("kms:UpdatePrimaryRegion", 5.0),
            K::ConnectCustomKeyStore => quota("kms:ConnectCustomKeyStore", 5.0),
            K::CreateCustomKeyStore => quota("kms:CreateCustomKeyStore", 5.0),
            K::DeleteCustomKeyStore => quota("kms:DeleteCustomKeyStore", 5.0),
            K::DescribeCustomKeyStores => quota("kms:DescribeCustomKeyStores", 5.0),
            K::DisconnectCustomKeyStore => quota("kms:DisconnectCustomKeyStore", 5.0),
            K::UpdateCustomKeyStore => quota("kms:UpdateCustomKeyStore", 5.0),
            _ => None,
        },
        Operation::SecretsManager(op) => match op {
            S::GetSecretValue => quota("secretsmanager:GetSecretValue", 10_000.0),
            S::DescribeSecret => quota("secretsmanager:DescribeSecret", 40_000.0),
            S::BatchGetSecretValue => quota("secretsmanager:BatchGetSecretValue", 100.0),
            S::ListSecrets => quota("secretsmanager:ListSecrets", 100.0),
            S::DeleteResourcePolicy
            | S::GetResourcePolicy
            | S::PutResourcePolicy
            | S::ValidateResourcePolicy => quota("secretsmanager:ResourcePolicies", 50.0),
            S::PutSecretValue
            | S::RemoveRegionsFromReplication
            | S::ReplicateSecretToRegions
            | S::StopReplicationToReplica
            | S::UpdateSecret
            | S::UpdateSecretVersionStage => quota("secretsmanager:SecretWrites", 50.0),
            S::RestoreSecret => quota("secretsmanager:RestoreSecret", 50.0),
            S::RotateSecret | S::CancelRotateSecret => quota("secretsmanager:Rotation", 50.0),
            S::TagResource | S::UntagResource => quota("secretsmanager:Tagging", 50.0),
            S::CreateSecret => quota("secretsmanager:CreateSecret", 50.0),
            S::DeleteSecret => quota("secretsmanager:DeleteSecret", 50.0),
            S::GetRandomPassword => quota("secretsmanager:GetRandomPassword", 50.0),
            S::ListSecretVersionIds => quota("secretsmanager:ListSecretVersionIds", 50.0),
            _ => None,
        },
        Operation::Ssm(op) => match op {
            P::GetParameter | P::GetParameters | P::GetParametersByPath => {
                if ssm_high_throughput {
                    quota("ssm:GetParameters", 10_000.0)
                } else {
                    quota("ssm:GetParameters", 40.0)
                }
            }
            P::PutParameter => quota(
                "ssm:PutParameter",
                if ssm_high_throughput { 10.0 } else { 3.0 },
            ),
            _ => None,
        },
        _ => None,
    }
}

/// KMS's default shared quota for symmetric cryptographic operations in `region`.
fn symmetric_rate(region: &str) -> f64 {
    match region {
        "us-east-1" | "us-west-2" | "eu-west-1" => 100_000.0,
        "us-east-2" | "ap-southeast-1" | "ap-southeast-2" | "ap-northeast-1" | "eu-central-1"
        | "eu-west-2" => 20_000.0,
        _ => 10_000.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyhold_proto::kms::KmsOperation;

    #[test]
    fn buckets_hold_one_second_and_refill() {
        let quotas = Quotas::new(
            QuotaConfig {
                enabled: Some(true),
                rates: [("kms:CreateKey".to_owned(), 2.0)].into(),
                ..QuotaConfig::default()
            },
            crate::config::Mode::Dev,
        )
        .unwrap();
        let q = quota_of(
            Operation::Kms(KmsOperation::CreateKey),
            "us-east-1",
            false,
            || KeyClass::Symmetric,
        )
        .unwrap();
        assert!(quotas.take("111122223333", "us-east-1", q));
        assert!(quotas.take("111122223333", "us-east-1", q));
        assert!(!quotas.take("111122223333", "us-east-1", q));
        // Another account and another Region have their own buckets.
        assert!(quotas.take("444455556666", "us-east-1", q));
        assert!(quotas.take("111122223333", "eu-west-1", q));
        std::thread::sleep(std::time::Duration::from_millis(600));
        assert!(quotas.take("111122223333", "us-east-1", q));
    }

    #[test]
    fn off_by_default_in_dev_mode_only() {
        use crate::config::Mode;
        assert!(Quotas::new(QuotaConfig::default(), Mode::Dev).is_none());
        assert!(Quotas::new(QuotaConfig::default(), Mode::Strict).is_some());
    }

    #[test]
    fn the_crypto_operations_depend_on_the_key() {
        assert!(depends_on_key(Operation::Kms(KmsOperation::Decrypt)));
        assert!(depends_on_key(Operation::Kms(KmsOperation::Sign)));
        assert!(depends_on_key(Operation::Kms(KmsOperation::GenerateRandom)));
        assert!(!depends_on_key(Operation::Kms(KmsOperation::CreateKey)));
        assert!(!depends_on_key(Operation::Kms(
            KmsOperation::GenerateDataKeyPair
        )));
    }

    #[test]
    fn crypto_quota_follows_the_key_class() {
        let op = Operation::Kms(KmsOperation::Sign);
        let rsa = quota_of(op, "us-east-1", false, || KeyClass::Rsa).unwrap();
        assert_eq!(rsa.name, "kms:CryptographicOperationsRsa");
        let sym = quota_of(
            Operation::Kms(KmsOperation::Encrypt),
            "sa-east-1",
            false,
            || KeyClass::Symmetric,
        )
        .unwrap();
        assert_eq!(sym.default_rate, 10_000.0);
        assert_eq!(KeyClass::of_spec("ECC_SECG_P256K1"), KeyClass::Ecc);
        assert_eq!(KeyClass::of_spec("ML_DSA_65"), KeyClass::MlDsa);
        assert_eq!(symmetric_rate("us-east-1"), 100_000.0);
        assert_eq!(symmetric_rate("eu-west-2"), 20_000.0);
        assert_eq!(KeyClass::of_spec("HMAC_256"), KeyClass::Symmetric);
    }
}
