//! What Parameter Store keeps: parameters (identity, tags, expiration) and their versions.
//!
//! A version's value is stored as the service hands it over: the text of a `String` or
//! `StringList`, the envelope ciphertext of a `SecureString` (never its plaintext).

use async_trait::async_trait;

use crate::Result;

/// A parameter: identity columns plus the service's metadata document (its tags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamRecord {
    /// `arn:PARTITION:ssm:REGION:ACCOUNT:parameter/NAME`; the primary key.
    pub arn: String,
    pub account: String,
    pub region: String,
    /// The name as it was created (`/a/b`, or `a` / `/a`: the same parameter).
    pub name: String,
    pub created_ms: i64,
    /// When an `Expiration` policy deletes the parameter, if it has one.
    pub expires_ms: Option<i64>,
    /// Everything else (tags), encoded by the service. Opaque to the store.
    pub meta: String,
    /// How many times the row was written: 1 when the parameter is created, one more with
    /// each change. A [`ParamWrite::Put`] names the revision it makes, and the store
    /// replaces the row only while it is at the one before (creates it only while there is
    /// none); otherwise the whole write fails with [`crate::StoreError::Conflict`] — the
    /// writer decided on a state another writer (another node) has changed since.
    pub revision: i64,
}

/// One version of a parameter.
#[derive(Clone, PartialEq, Eq)]
pub struct ParamVersionRecord {
    pub param_arn: String,
    /// 1, 2, 3, ...: never reused while the parameter exists.
    pub version: i64,
    pub modified_ms: i64,
    /// The value: UTF-8 text, or a `SecureString`'s envelope ciphertext.
    pub value: Vec<u8>,
    /// Type, description, pattern, key, tier, policies, labels, user: encoded by the service.
    pub meta: String,
}

impl std::fmt::Debug for ParamVersionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParamVersionRecord")
            .field("param_arn", &self.param_arn)
            .field("version", &self.version)
            .field("modified_ms", &self.modified_ms)
            .field("value", &format_args!("{} bytes", self.value.len()))
            .field("meta", &self.meta)
            .finish()
    }
}

/// One change to one parameter, applied with others in a single transaction by
/// [`ParamStore::write_params`].
#[derive(Clone, Debug)]
pub enum ParamWrite {
    /// Inserts or replaces the parameter row, inserts or replaces `versions`, and deletes the
    /// versions numbered in `removed_versions`.
    Put {
        param: ParamRecord,
        versions: Vec<ParamVersionRecord>,
        removed_versions: Vec<i64>,
    },
    /// Deletes a parameter with all its versions (nothing if it does not exist).
    Delete { arn: String },
}

/// The parameters of one account and region, and their versions.
pub type ScopeParams = (Vec<ParamRecord>, Vec<ParamVersionRecord>);

/// One parameter and its versions (ordered by version).
pub type OneParam = (ParamRecord, Vec<ParamVersionRecord>);

/// Parameters and their versions.
#[async_trait]
pub trait ParamStore: Send + Sync {
    /// Applies `writes` in order, in one durable transaction: all or nothing. Fails with
    /// [`crate::StoreError::Conflict`] if a `Put`'s parameter is not at the revision before
    /// the one it writes ([`ParamRecord::revision`]).
    async fn write_params(&self, writes: &[ParamWrite]) -> Result<()>;
    /// Every parameter of one account and region (ordered by ARN) with all their versions
    /// (ordered by parameter ARN and version), read as one consistent snapshot.
    async fn load_params(&self, account: &str, region: &str) -> Result<ScopeParams>;
    /// One parameter with its versions, read as one consistent snapshot; `None` if there
    /// is none with this ARN.
    async fn load_param(&self, arn: &str) -> Result<Option<OneParam>>;
    /// Parameters whose expiration is at or before `now_ms`, soonest first.
    async fn params_due_for_expiration(&self, now_ms: i64) -> Result<Vec<ParamRecord>>;
}
