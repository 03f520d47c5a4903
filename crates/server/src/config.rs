//! Server configuration: defaults, overridden by the config file, then by the environment,
//! then by command-line flags (the CLI applies those).
//!
//! ```toml
//! # keyhold.toml — a config file means strict mode unless it says `mode = "dev"`
//! listen = "127.0.0.1:4566"
//! data_dir = "/var/lib/keyhold"
//! storage = "postgres://keyhold@db.internal:5432/keyhold"  # default: SQLite in data_dir
//! account_id = "111122223333"          # the default account
//! node_id = "kh1"                      # several nodes on one PostgreSQL: each its own name
//!
//! [seal]                               # strict mode requires one (see docs/seal.md)
//! kind = "key_file"                    # "key_file" | "shamir" | "pkcs11"
//! path = "/etc/keyhold/root.key"       # key_file: outside the data directory in strict mode
//! # kind = "shamir"                    # `keyhold init --shares N --threshold K`, then unseal
//! # kind = "pkcs11"                    # module, token_label, key_label, pin_file or pin_env
//!
//! header_read_timeout_seconds = 10     # a request head must arrive within this
//! idle_timeout_seconds = 60            # a kept-alive connection idles at most this
//! body_read_timeout_seconds = 30       # a request body must arrive within this
//! max_connections = 512                # more connections wait in the listen backlog
//!
//! tls_cert = "/etc/keyhold/tls.pem"    # PEM chain + key: HTTPS (reloaded on SIGHUP)
//! tls_key = "/etc/keyhold/tls.key"
//! allow_plain_http = false             # strict: plain HTTP only on loopback unless true
//! trusted_proxies = ["10.0.0.0/8"]     # peers whose X-Forwarded-For is believed
//!
//! [[credentials]]                       # optional: static keys, each its account's root
//! access_key_id = "AKIAEXAMPLE0000001"  # (without any, the first strict start creates
//! secret_access_key = "..."             # the IAM user `admin` and prints its key once)
//! account_id = "111122223333"
//!
//! [[custom_key_stores]]                 # what CreateCustomKeyStore's CloudHsmClusterId names
//! cluster_id = "cluster-1a23b4cdefg"   # AWS's cluster id form: cluster-[2-7a-zA-Z]{11,16}
//! module = "/usr/lib/softhsm/libsofthsm2.so"  # the PKCS#11 module
//! token_label = "kms-store-1"          # its token; KeyStorePassword is the user PIN
//! # trust_anchor = "/etc/keyhold/cluster-1.pem"  # optional: the only accepted certificate
//!
//! [[rotation_functions]]                # what a secret's RotationLambdaARN runs
//! arn = "arn:aws:lambda:us-east-1:111122223333:function:rotate-db"
//! command = ["python3", "/opt/rotators/shim.py"]  # or url = "http://...", or builtin
//! # builtin = "postgres-single-user"  # | postgres-alternating-users | mysql-single-user
//! #                                   # | mysql-alternating-users (docs/secrets-manager.md)
//! role_arn = "arn:aws:iam::111122223333:role/rotator"  # its temporary credentials
//! timeout_seconds = 30                  # Lambda-like time limit per step (1-900)
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::arn::is_account_id;

/// Dev mode is permissive and self-sealing; strict mode verifies every signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Dev,
    Strict,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub mode: Mode,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Where the key store lives: a PostgreSQL database, or (`None`) SQLite in `data_dir`
    /// (`storage` in the config file, `KEYHOLD_STORAGE` in the environment).
    pub storage: Option<StorageUrl>,
    /// This node's name among the nodes sharing one PostgreSQL store (`node_id`,
    /// `KEYHOLD_NODE_ID`): it names the node's audit anchor in the shared store, so every
    /// node of a cluster needs its own (see docs/ha.md). `None`: the only node.
    pub node_id: Option<String>,
    /// The account of requests that do not name one (12 digits).
    pub account_id: String,
    /// The largest request body accepted.
    pub max_body_bytes: usize,
    /// How often scheduled deletions, expirations and automatic key rotations are carried
    /// out (and once at start).
    pub deletion_sweep_interval: Duration,
    /// The root of trust (`[seal]`). `None`: dev mode's key file at `<data_dir>/root.key`;
    /// strict mode refuses to start without one.
    pub seal: Option<SealConfig>,
    /// Static credentials, each its account's root (besides the keys IAM issues).
    pub credentials: Vec<StaticCredential>,
    /// The audit trail.
    pub audit: crate::audit::trail::TrailConfig,
    /// How long a client may take to send a request's head (from its first byte, or from
    /// accept for a new connection).
    pub header_read_timeout: Duration,
    /// How long a kept-alive connection may sit idle between requests.
    pub idle_timeout: Duration,
    /// How long a client may take to send a request's body.
    pub body_read_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// The listener's certificate chain and key (PEM); without them, plain HTTP.
    pub tls: Option<crate::transport::tls::TlsFiles>,
    /// Strict mode serves plain HTTP on a non-loopback address only when this is set
    /// (TLS terminated by a proxy in front).
    pub allow_plain_http: bool,
    /// Proxies whose `X-Forwarded-For` gives the client address (`aws:SourceIp`).
    pub trusted_proxies: crate::transport::forwarded::TrustedProxies,
    /// What the Lambda ARNs of rotating secrets run (`[[rotation_functions]]`).
    pub rotation_functions: Vec<RotationFunction>,
    /// A seed file applied at start (`--seed`, `seed`): see [`crate::ops::seed`].
    pub seed: Option<PathBuf>,
    /// Where `/metrics` (and the health checks) are served; `None`: no metrics listener.
    pub metrics_listen: Option<SocketAddr>,
    /// AWS's request quotas (`[quotas]`).
    pub quotas: crate::ops::quotas::QuotaConfig,
    /// The bounds of the in-memory caches (`[cache]`).
    pub cache: CacheConfig,
    /// The PKCS#11 tokens that custom key stores may be created on (`[[custom_key_stores]]`).
    pub custom_key_stores: Vec<CustomKeyStoreConfig>,
}

/// One `[[custom_key_stores]]` entry: the "CloudHSM cluster" a `CreateCustomKeyStore` of
/// type `AWS_CLOUDHSM` names by `CloudHsmClusterId`, mapped onto a PKCS#11 token. The
/// `KeyStorePassword` of the store is the token's user PIN. Two entries naming the same
/// token (module and label) are "related clusters": `UpdateCustomKeyStore` may move a store
/// between them, as AWS allows between clusters that share a backup history.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomKeyStoreConfig {
    pub cluster_id: String,
    pub module: PathBuf,
    pub token_label: String,
    /// A PEM certificate file: when set, `TrustAnchorCertificate` must be this certificate
    /// (else `IncorrectTrustAnchorException`); when not, any PEM certificate is accepted.
    #[serde(default)]
    pub trust_anchor: Option<PathBuf>,
}

impl CustomKeyStoreConfig {
    /// AWS's form of a cluster id: `cluster-` and 11 to 16 of `[2-7a-zA-Z]`.
    pub fn is_valid_cluster_id(id: &str) -> bool {
        id.strip_prefix("cluster-").is_some_and(|rest| {
            (11..=16).contains(&rest.len())
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphabetic() || (b'2'..=b'7').contains(&b))
        })
    }
}

/// How many entries each in-memory cache holds at most (`[cache]`). An entry evicted
/// (least recently used first, approximately) is loaded again from the store on its next
/// use, its key material unsealed again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// KMS keys, each with its unsealed backing keys (and, as many again, key aliases).
    pub kms_keys: usize,
    /// Secrets Manager secrets (metadata and sealed versions; no plaintext).
    pub secrets: usize,
    /// Parameter Store parameters, held by account and Region (a scope is loaded and
    /// evicted whole).
    pub parameters: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            kms_keys: 100_000,
            secrets: 100_000,
            parameters: 100_000,
        }
    }
}

/// The longest a rotation function may run for one step, as Lambda's limit (seconds).
pub const MAX_ROTATION_TIMEOUT_SECONDS: u64 = 900;
/// Its default: the timeout AWS's rotation function templates set.
pub const DEFAULT_ROTATION_TIMEOUT_SECONDS: u64 = 30;

/// One `[[rotation_functions]]` entry: the rotation function a `RotationLambdaARN` names,
/// run as an HTTP endpoint (`url`), a local command (`command`) or one of Keyhold's
/// built-in database rotators (`builtin`), with temporary credentials for `role_arn`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationFunction {
    /// `arn:aws:lambda:REGION:ACCOUNT:function:NAME`.
    pub arn: String,
    /// Receives each step's invocation event as the body of an HTTP POST (`http://` only).
    #[serde(default)]
    pub url: Option<String>,
    /// Receives each step's invocation event on stdin (argv; no shell).
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// A rotator built into Keyhold (AWS's published database rotation functions).
    #[serde(default)]
    pub builtin: Option<BuiltinRotator>,
    /// The role whose temporary credentials the function calls Keyhold with.
    #[serde(default)]
    pub role_arn: Option<String>,
    #[serde(default = "default_rotation_timeout")]
    pub timeout_seconds: u64,
}

/// The rotators built into Keyhold: AWS's published rotation functions for PostgreSQL and
/// MySQL/MariaDB, single-user and alternating-users strategies
/// (`crate::secrets::rotate_builtin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuiltinRotator {
    PostgresSingleUser,
    PostgresAlternatingUsers,
    MysqlSingleUser,
    MysqlAlternatingUsers,
}

impl BuiltinRotator {
    /// The name the config gives it.
    pub fn name(self) -> &'static str {
        match self {
            Self::PostgresSingleUser => "postgres-single-user",
            Self::PostgresAlternatingUsers => "postgres-alternating-users",
            Self::MysqlSingleUser => "mysql-single-user",
            Self::MysqlAlternatingUsers => "mysql-alternating-users",
        }
    }
}

fn default_rotation_timeout() -> u64 {
    DEFAULT_ROTATION_TIMEOUT_SECONDS
}

impl RotationFunction {
    fn validate(&self, mode: Mode) -> anyhow::Result<()> {
        let parts: Vec<&str> = self.arn.split(':').collect();
        let well_formed = matches!(
            parts.as_slice(),
            ["arn", partition, "lambda", region, account, "function", name]
                if !partition.is_empty()
                    && crate::arn::is_region_name(region)
                    && is_account_id(account)
                    && !name.is_empty()
                    && name.len() <= 64
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        if !well_formed {
            bail!(
                "rotation function {:?}: arn must be arn:aws:lambda:REGION:ACCOUNT:function:NAME",
                self.arn
            );
        }
        match (&self.url, &self.command, &self.builtin) {
            (Some(url), None, None) => {
                if !url.starts_with("http://") {
                    bail!("rotation function {}: url must be an http:// URL", self.arn);
                }
            }
            (None, Some(argv), None) if !argv.is_empty() && !argv[0].is_empty() => {}
            (None, Some(_), None) => bail!("rotation function {}: command is empty", self.arn),
            (None, None, Some(_)) => {}
            _ => bail!(
                "rotation function {}: give exactly one of url, command and builtin",
                self.arn
            ),
        }
        if let Some(role) = &self.role_arn {
            let ok = role.starts_with("arn:") && role.contains(":iam::") && role.contains(":role/");
            if !ok {
                bail!(
                    "rotation function {}: role_arn {role:?} is not a role ARN",
                    self.arn
                );
            }
        } else if mode == Mode::Strict {
            bail!(
                "rotation function {}: strict mode needs role_arn (the credentials the \
                 function calls Keyhold with)",
                self.arn
            );
        }
        if !(1..=MAX_ROTATION_TIMEOUT_SECONDS).contains(&self.timeout_seconds) {
            bail!(
                "rotation function {}: timeout_seconds must be between 1 and {MAX_ROTATION_TIMEOUT_SECONDS}",
                self.arn
            );
        }
        Ok(())
    }
}

/// An access key accepted in strict mode; it authenticates as its account's root.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticCredential {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub account_id: String,
}

/// A `postgres://` (or `postgresql://`) connection string. Its `Debug` never shows it whole
/// (it may hold a password): only the part after the last `@`, that is host, port and
/// database.
#[derive(Clone, PartialEq, Eq)]
pub struct StorageUrl(String);

impl StorageUrl {
    /// `sqlite` (or an empty value) means the default, SQLite in the data directory
    /// (`None`); a `postgres://` URL names a PostgreSQL database.
    pub fn parse(value: &str) -> anyhow::Result<Option<Self>> {
        let value = value.trim();
        if value.is_empty() || value == "sqlite" {
            return Ok(None);
        }
        if !keyhold_store::is_postgres_url(value) {
            bail!(
                "storage must be \"sqlite\" or a postgres:// URL (postgres://USER@HOST:PORT/DATABASE)"
            );
        }
        keyhold_store::parse_postgres_url(value).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Some(Self(value.to_owned())))
    }

    /// The whole connection string (never to be logged).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for StorageUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.0.split("://").next().unwrap_or("postgres");
        let rest = self.0.rsplit('@').next().unwrap_or("");
        let rest = rest.rsplit("://").next().unwrap_or("");
        let rest = rest.split('?').next().unwrap_or("");
        write!(f, "{scheme}://…@{rest}")
    }
}

impl fmt::Debug for StaticCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredential")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[redacted]")
            .field("account_id", &self.account_id)
            .finish()
    }
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:4566";
pub const DEFAULT_ACCOUNT: &str = "000000000000";
/// Ample for the largest legal input (a 64 KiB secret, base64-encoded, in JSON).
pub const DEFAULT_MAX_BODY: usize = 384 * 1024;
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Well under the usual 1024 open-file limit, which also has to cover the databases.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::Dev,
            listen: SocketAddr::from(([127, 0, 0, 1], 4566)),
            data_dir: PathBuf::from("./keyhold-data"),
            storage: None,
            node_id: None,
            account_id: DEFAULT_ACCOUNT.to_owned(),
            max_body_bytes: DEFAULT_MAX_BODY,
            deletion_sweep_interval: Duration::from_secs(60),
            seal: None,
            credentials: Vec::new(),
            audit: crate::audit::trail::TrailConfig::default(),
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            tls: None,
            allow_plain_http: false,
            trusted_proxies: Default::default(),
            rotation_functions: Vec::new(),
            seed: None,
            metrics_listen: None,
            quotas: Default::default(),
            cache: CacheConfig::default(),
            custom_key_stores: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    mode: Option<Mode>,
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    storage: Option<String>,
    node_id: Option<String>,
    account_id: Option<String>,
    max_body_bytes: Option<usize>,
    deletion_sweep_seconds: Option<u64>,
    seal: Option<SealSection>,
    #[serde(default)]
    credentials: Vec<StaticCredential>,
    audit: Option<AuditSection>,
    header_read_timeout_seconds: Option<f64>,
    idle_timeout_seconds: Option<f64>,
    body_read_timeout_seconds: Option<f64>,
    max_connections: Option<usize>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    allow_plain_http: Option<bool>,
    trusted_proxies: Option<Vec<String>>,
    #[serde(default)]
    rotation_functions: Vec<RotationFunction>,
    seed: Option<PathBuf>,
    metrics_listen: Option<SocketAddr>,
    quotas: Option<QuotaSection>,
    cache: Option<CacheSection>,
    #[serde(default)]
    custom_key_stores: Vec<CustomKeyStoreConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheSection {
    kms_keys: Option<usize>,
    secrets: Option<usize>,
    parameters: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaSection {
    enabled: Option<bool>,
    ssm_high_throughput: Option<bool>,
    #[serde(default)]
    rates: std::collections::BTreeMap<String, f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditSection {
    mode: Option<crate::audit::trail::AuditMode>,
    queue_capacity: Option<usize>,
    digest_interval_seconds: Option<u64>,
    digest_every_events: Option<i64>,
    retention_days: Option<u64>,
    digest_dir: Option<PathBuf>,
    segment_megabytes: Option<u64>,
    segment_hours: Option<u64>,
    room_ahead: Option<bool>,
    direct_appends: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SealSection {
    kind: Option<SealKind>,
    path: Option<PathBuf>,
    /// The first config format's spelling of a key file seal's `path`.
    key_file: Option<PathBuf>,
    module: Option<PathBuf>,
    token_label: Option<String>,
    key_label: Option<String>,
    pin_file: Option<PathBuf>,
    pin_env: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SealKind {
    KeyFile,
    Shamir,
    Pkcs11,
}

/// The root of trust, from the config's `[seal]` (docs/seal.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SealConfig {
    /// A 256-bit root key in a file (created on first start if missing).
    KeyFile { path: PathBuf },
    /// The root key exists only as K-of-N shares held by operators (`keyhold init
    /// --shares N --threshold K`); the server starts sealed until K are entered.
    Shamir,
    /// A non-extractable AES-256 key in a PKCS#11 token wraps the domain key; the server
    /// unseals itself at start with the token user's PIN.
    Pkcs11(Pkcs11Config),
}

/// Where a PKCS#11 root key lives and how to log in to its token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pkcs11Config {
    /// The PKCS#11 module (shared library), e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    pub token_label: String,
    /// The label of the AES-256 key (created non-extractable on first start if missing).
    pub key_label: String,
    pub pin: PinSource,
}

/// Where the token user's PIN comes from; the PIN itself is never in the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PinSource {
    File(PathBuf),
    Env(String),
}

impl SealSection {
    fn into_config(self) -> anyhow::Result<SealConfig> {
        let kind = match (self.kind, &self.key_file) {
            (Some(kind), _) => kind,
            (None, Some(_)) => SealKind::KeyFile,
            (None, None) => bail!("[seal] needs kind = \"key_file\", \"shamir\" or \"pkcs11\""),
        };
        let key_file_fields = self.path.is_some() || self.key_file.is_some();
        let pkcs11_fields = self.module.is_some()
            || self.token_label.is_some()
            || self.key_label.is_some()
            || self.pin_file.is_some()
            || self.pin_env.is_some();
        match kind {
            SealKind::KeyFile => {
                if pkcs11_fields {
                    bail!("[seal] kind = \"key_file\" takes only `path`");
                }
                let path = match (self.path, self.key_file) {
                    (Some(path), None) | (None, Some(path)) => path,
                    (Some(_), Some(_)) => {
                        bail!("[seal] has both `path` and `key_file`: keep `path`")
                    }
                    (None, None) => bail!("[seal] kind = \"key_file\" needs `path`"),
                };
                Ok(SealConfig::KeyFile { path })
            }
            SealKind::Shamir => {
                if key_file_fields || pkcs11_fields {
                    bail!("[seal] kind = \"shamir\" takes no other settings");
                }
                Ok(SealConfig::Shamir)
            }
            SealKind::Pkcs11 => {
                if key_file_fields {
                    bail!("[seal] kind = \"pkcs11\" takes no `path`");
                }
                let pin = match (self.pin_file, self.pin_env) {
                    (Some(file), None) => PinSource::File(file),
                    (None, Some(var)) => PinSource::Env(var),
                    _ => bail!(
                        "[seal] kind = \"pkcs11\" needs exactly one of `pin_file` and `pin_env`"
                    ),
                };
                Ok(SealConfig::Pkcs11(Pkcs11Config {
                    module: self
                        .module
                        .context("[seal] kind = \"pkcs11\" needs `module`")?,
                    token_label: self
                        .token_label
                        .context("[seal] kind = \"pkcs11\" needs `token_label`")?,
                    key_label: self
                        .key_label
                        .context("[seal] kind = \"pkcs11\" needs `key_label`")?,
                    pin,
                }))
            }
        }
    }
}

impl Config {
    /// Defaults, then `file` if given (strict mode unless it says otherwise), then
    /// `KEYHOLD_ACCOUNT_ID` from the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut config = Self::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            config
                .apply_file(&text)
                .with_context(|| format!("in config file {}", path.display()))?;
        }
        if let Ok(account) = std::env::var("KEYHOLD_ACCOUNT_ID") {
            config.account_id = account;
        }
        if let Ok(storage) = std::env::var("KEYHOLD_STORAGE") {
            config.storage = StorageUrl::parse(&storage).context("in KEYHOLD_STORAGE")?;
        }
        if let Ok(node) = std::env::var("KEYHOLD_NODE_ID") {
            config.node_id = Some(node);
        }
        config.validate()?;
        Ok(config)
    }

    fn apply_file(&mut self, text: &str) -> anyhow::Result<()> {
        let file: FileConfig = toml::from_str(text)?;
        self.mode = file.mode.unwrap_or(Mode::Strict);
        if let Some(listen) = file.listen {
            self.listen = listen;
        }
        if let Some(dir) = file.data_dir {
            self.data_dir = dir;
        }
        if let Some(storage) = file.storage {
            self.storage = StorageUrl::parse(&storage).context("storage")?;
        }
        if let Some(account) = file.account_id {
            self.account_id = account;
        }
        if let Some(node) = file.node_id {
            self.node_id = Some(node);
        }
        if let Some(max) = file.max_body_bytes {
            self.max_body_bytes = max;
        }
        if let Some(secs) = file.deletion_sweep_seconds {
            self.deletion_sweep_interval = Duration::from_secs(secs.max(1));
        }
        self.seal = file.seal.map(SealSection::into_config).transpose()?;
        for (value, target, name) in [
            (
                file.header_read_timeout_seconds,
                &mut self.header_read_timeout,
                "header_read_timeout_seconds",
            ),
            (
                file.idle_timeout_seconds,
                &mut self.idle_timeout,
                "idle_timeout_seconds",
            ),
            (
                file.body_read_timeout_seconds,
                &mut self.body_read_timeout,
                "body_read_timeout_seconds",
            ),
        ] {
            if let Some(secs) = value {
                *target = seconds(secs).with_context(|| format!("{name} = {secs}"))?;
            }
        }
        if let Some(max) = file.max_connections {
            self.max_connections = max;
        }
        self.tls = match (file.tls_cert, file.tls_key) {
            (Some(cert), Some(key)) => Some(crate::transport::tls::TlsFiles { cert, key }),
            (None, None) => None,
            _ => bail!("tls_cert and tls_key go together: set both or neither"),
        };
        if let Some(allow) = file.allow_plain_http {
            self.allow_plain_http = allow;
        }
        if let Some(proxies) = file.trusted_proxies {
            self.trusted_proxies = crate::transport::forwarded::TrustedProxies::parse(&proxies)?;
        }
        self.credentials = file.credentials;
        self.rotation_functions = file.rotation_functions;
        for (i, entry) in file.custom_key_stores.iter().enumerate() {
            if !CustomKeyStoreConfig::is_valid_cluster_id(&entry.cluster_id) {
                bail!(
                    "[[custom_key_stores]] cluster_id = {:?}: use AWS's form, cluster- and 11 \
                     to 16 letters or digits 2-7",
                    entry.cluster_id
                );
            }
            if file.custom_key_stores[..i]
                .iter()
                .any(|other| other.cluster_id == entry.cluster_id)
            {
                bail!(
                    "[[custom_key_stores]] cluster_id = {:?} appears twice",
                    entry.cluster_id
                );
            }
        }
        self.custom_key_stores = file.custom_key_stores;
        if let Some(seed) = file.seed {
            self.seed = Some(seed);
        }
        if let Some(addr) = file.metrics_listen {
            self.metrics_listen = Some(addr);
        }
        if let Some(q) = file.quotas {
            for (name, rate) in &q.rates {
                if !(rate.is_finite() && *rate > 0.0) {
                    bail!(
                        "[quotas.rates] {name} = {rate}: a rate must be a positive number of requests per second"
                    );
                }
            }
            self.quotas = crate::ops::quotas::QuotaConfig {
                enabled: q.enabled,
                ssm_high_throughput: q.ssm_high_throughput.unwrap_or(false),
                rates: q.rates,
            };
        }
        if let Some(c) = file.cache {
            for (name, size) in [
                ("kms_keys", c.kms_keys),
                ("secrets", c.secrets),
                ("parameters", c.parameters),
            ] {
                if size == Some(0) {
                    bail!("[cache] {name} = 0: a cache holds at least one entry");
                }
            }
            let d = &mut self.cache;
            d.kms_keys = c.kms_keys.unwrap_or(d.kms_keys);
            d.secrets = c.secrets.unwrap_or(d.secrets);
            d.parameters = c.parameters.unwrap_or(d.parameters);
        }
        if let Some(audit) = file.audit {
            let a = &mut self.audit;
            a.mode = audit.mode.unwrap_or(a.mode);
            a.queue_capacity = audit.queue_capacity.unwrap_or(a.queue_capacity).max(1);
            if let Some(secs) = audit.digest_interval_seconds {
                a.digest_interval = Duration::from_secs(secs.max(1));
            }
            a.digest_every_events = audit
                .digest_every_events
                .unwrap_or(a.digest_every_events)
                .max(1);
            if let Some(dir) = audit.digest_dir {
                a.digest_dir = Some(dir);
            }
            if let Some(mb) = audit.segment_megabytes {
                a.segment_bytes = mb.clamp(1, 4096) << 20;
            }
            if let Some(hours) = audit.segment_hours {
                a.segment_age = Duration::from_secs(hours.max(1) * 3600);
            }
            a.room_ahead = audit.room_ahead.unwrap_or(a.room_ahead);
            a.direct_appends = audit.direct_appends.unwrap_or(a.direct_appends);
            a.retention = audit
                .retention_days
                .filter(|d| *d > 0)
                .map(|d| Duration::from_secs(d * 86_400));
        }
        Ok(())
    }

    /// Checks values that cannot be typed by the parser.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !is_account_id(&self.account_id) {
            bail!("account_id must be 12 digits, got {:?}", self.account_id);
        }
        if let Some(node) = &self.node_id
            && (node.is_empty()
                || node.len() > 64
                || !node
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            bail!("node_id must be 1 to 64 letters, digits, '-' or '_', got {node:?}");
        }
        for c in &self.credentials {
            if !is_account_id(&c.account_id) {
                bail!(
                    "credential {} has an account_id that is not 12 digits",
                    c.access_key_id
                );
            }
            if c.access_key_id.len() < 16 || c.secret_access_key.len() < 16 {
                bail!(
                    "credential {}: access key ids and secrets must be at least 16 characters",
                    c.access_key_id
                );
            }
        }
        if self.max_body_bytes < 64 * 1024 {
            bail!("max_body_bytes must be at least 65536");
        }
        if self.mode == Mode::Strict
            && self.tls.is_none()
            && !self.listen.ip().is_loopback()
            && !self.allow_plain_http
        {
            bail!(
                "strict mode refuses plain HTTP on {}, which is not a loopback address: \
                 set tls_cert and tls_key, or allow_plain_http = true when a proxy in front \
                 terminates TLS",
                self.listen
            );
        }
        for (i, f) in self.rotation_functions.iter().enumerate() {
            f.validate(self.mode)?;
            if self.rotation_functions[..i].iter().any(|g| g.arn == f.arn) {
                bail!("rotation function {} is configured twice", f.arn);
            }
        }
        if self.max_connections == 0 || u32::try_from(self.max_connections).is_err() {
            bail!("max_connections must be between 1 and 4294967295");
        }
        if self.mode == Mode::Strict {
            match &self.seal {
                None => bail!(
                    "strict mode needs an explicit root of trust: add a [seal] section to the \
                     config file with kind = \"shamir\" (then `keyhold init --shares N \
                     --threshold K`), kind = \"pkcs11\" (module, token_label, key_label, \
                     pin_file or pin_env), or kind = \"key_file\" with a path outside the data \
                     directory; see docs/seal.md"
                ),
                Some(SealConfig::KeyFile { path }) if self.is_inside_data_dir(path) => bail!(
                    "strict mode refuses the root key file {}: it is inside the data directory \
                     {}, so every copy of the data would carry its key; move it elsewhere \
                     (e.g. /etc/keyhold/root.key) or use kind = \"shamir\" or \"pkcs11\"",
                    path.display(),
                    self.data_dir.display()
                ),
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Whether `path` is the data directory or lies under it (compared absolutely, with
    /// symbolic links resolved as far as the paths exist).
    fn is_inside_data_dir(&self, path: &Path) -> bool {
        let resolve = |p: &Path| -> PathBuf {
            let absolute = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
            // Resolve the longest existing ancestor, then append the rest.
            let mut existing = absolute.as_path();
            let mut rest = Vec::new();
            loop {
                if let Ok(real) = existing.canonicalize() {
                    let mut out = real;
                    for part in rest.iter().rev() {
                        out.push(part);
                    }
                    return out;
                }
                match (existing.parent(), existing.file_name()) {
                    (Some(parent), Some(name)) => {
                        rest.push(name.to_owned());
                        existing = parent;
                    }
                    _ => return absolute,
                }
            }
        };
        resolve(path).starts_with(resolve(&self.data_dir))
    }

    /// The root key file of a key file seal: the configured path, or dev mode's default
    /// `<data_dir>/root.key` when there is no `[seal]`. `None` for other seals.
    pub fn key_file_path(&self) -> Option<PathBuf> {
        match &self.seal {
            None => Some(self.data_dir.join("root.key")),
            Some(SealConfig::KeyFile { path }) => Some(path.clone()),
            Some(_) => None,
        }
    }

    /// The token that authenticates the seal administration endpoints (`keyhold unseal`,
    /// `seal`, `rekey`): written by the server at start, readable by its owner only.
    pub fn admin_token_path(&self) -> PathBuf {
        self.data_dir.join("admin.token")
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("keyhold.db")
    }

    /// The audit trail: its segment log, digests and index.
    pub fn audit_dir(&self) -> PathBuf {
        self.data_dir.join("audit")
    }

    /// Where the trail's first format (one SQLite file) was; converted at start.
    pub fn audit_database_path(&self) -> PathBuf {
        self.data_dir.join("audit.db")
    }
}

/// A timeout from the config file: positive, finite seconds (fractions allowed).
fn seconds(secs: f64) -> anyhow::Result<Duration> {
    if secs.is_nan() || secs <= 0.0 {
        bail!("a timeout must be a positive number of seconds");
    }
    Duration::try_from_secs_f64(secs).context("a timeout out of range")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_bounds() {
        let mut c = Config::default();
        assert_eq!(c.cache, CacheConfig::default());
        c.apply_file(
            r#"
            [seal]
            kind = "shamir"
            [cache]
            kms_keys = 2
            parameters = 50
        "#,
        )
        .unwrap();
        assert_eq!(c.cache.kms_keys, 2);
        assert_eq!(c.cache.secrets, CacheConfig::default().secrets);
        assert_eq!(c.cache.parameters, 50);
        let e = Config::default()
            .apply_file("[cache]\nsecrets = 0\n")
            .unwrap_err();
        assert!(e.to_string().contains("at least one entry"), "{e}");
    }

    #[test]
    fn audit_room_ahead_is_off_unless_asked_for() {
        let mut c = Config::default();
        assert!(!c.audit.room_ahead);
        c.apply_file("mode = \"dev\"\n[audit]\nsegment_megabytes = 8\n")
            .unwrap();
        assert!(!c.audit.room_ahead);
        assert_eq!(c.audit.segment_bytes, 8 << 20);
        c.apply_file("mode = \"dev\"\n[audit]\nroom_ahead = true\n")
            .unwrap();
        assert!(c.audit.room_ahead);
    }

    #[test]
    fn audit_appends_are_direct_unless_turned_off() {
        let mut c = Config::default();
        assert!(c.audit.direct_appends);
        c.apply_file("mode = \"dev\"\n[audit]\nsegment_megabytes = 8\n")
            .unwrap();
        assert!(c.audit.direct_appends);
        c.apply_file("mode = \"dev\"\n[audit]\ndirect_appends = false\n")
            .unwrap();
        assert!(!c.audit.direct_appends);
    }

    #[test]
    fn file_means_strict() {
        let mut c = Config::default();
        c.apply_file(
            r#"
            listen = "127.0.0.1:9000"
            [seal]
            kind = "shamir"
            [[credentials]]
            access_key_id = "AKIAEXAMPLE0000001"
            secret_access_key = "secretsecretsecret"
            account_id = "111122223333"
        "#,
        )
        .unwrap();
        assert_eq!(c.mode, Mode::Strict);
        assert_eq!(c.listen.port(), 9000);
        c.validate().unwrap();
        assert!(!format!("{c:?}").contains("secretsecretsecret"));
    }

    #[test]
    fn strict_refuses_plain_http_off_loopback() {
        const SEAL: &str = "\n[seal]\nkind = \"shamir\"";
        let mut c = Config::default();
        c.apply_file(&format!("listen = \"0.0.0.0:4566\"{SEAL}"))
            .unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("refuses plain HTTP on 0.0.0.0:4566"), "{err}");
        c.apply_file(&format!(
            "listen = \"0.0.0.0:4566\"\nallow_plain_http = true{SEAL}"
        ))
        .unwrap();
        c.validate().unwrap();
        c.apply_file(&format!(
            "listen = \"0.0.0.0:4566\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"{SEAL}"
        ))
        .unwrap();
        c.validate().unwrap();
        assert!(c.apply_file("tls_cert = \"c.pem\"").is_err());
        let dev = Config {
            listen: "0.0.0.0:4566".parse().unwrap(),
            ..Config::default()
        };
        dev.validate().unwrap();
    }

    #[test]
    fn transport_settings() {
        let mut c = Config::default();
        c.apply_file(
            "header_read_timeout_seconds = 0.5\nidle_timeout_seconds = 5\n\
             body_read_timeout_seconds = 7\nmax_connections = 9\n\
             trusted_proxies = [\"10.0.0.0/8\", \"192.0.2.1\"]",
        )
        .unwrap();
        assert_eq!(c.header_read_timeout, Duration::from_millis(500));
        assert_eq!(c.idle_timeout, Duration::from_secs(5));
        assert_eq!(c.body_read_timeout, Duration::from_secs(7));
        assert_eq!(c.max_connections, 9);
        assert!(!c.trusted_proxies.is_empty());
        assert!(c.apply_file("idle_timeout_seconds = 0").is_err());
        assert!(c.apply_file("trusted_proxies = [\"nope\"]").is_err());
        c.max_connections = 0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn rotation_functions() {
        let mut c = Config::default();
        c.apply_file(
            r#"
            mode = "dev"
            [[rotation_functions]]
            arn = "arn:aws:lambda:us-east-1:111122223333:function:rotate-db"
            command = ["python3", "handler.py"]
            [[rotation_functions]]
            arn = "arn:aws:lambda:us-east-1:111122223333:function:hook"
            url = "http://127.0.0.1:9000/rotate"
            role_arn = "arn:aws:iam::111122223333:role/rotator"
            timeout_seconds = 5
            [[rotation_functions]]
            arn = "arn:aws:lambda:us-east-1:111122223333:function:pg"
            builtin = "postgres-alternating-users"
        "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.rotation_functions.len(), 3);
        assert_eq!(
            c.rotation_functions[2].builtin,
            Some(BuiltinRotator::PostgresAlternatingUsers)
        );
        assert_eq!(c.rotation_functions[0].timeout_seconds, 30);
        for bad in [
            "arn = \"arn:aws:lambda:us-east-1:1:function:x\"\ncommand = [\"x\"]",
            "arn = \"arn:aws:lambda:us-east-1:111122223333:function:x\"",
            "arn = \"arn:aws:lambda:us-east-1:111122223333:function:x\"\ncommand = []",
            "arn = \"arn:aws:lambda:us-east-1:111122223333:function:x\"\nurl = \"ftp://h\"",
            "arn = \"arn:aws:lambda:us-east-1:111122223333:function:x\"\ncommand = [\"x\"]\ntimeout_seconds = 901",
            "arn = \"arn:aws:lambda:us-east-1:111122223333:function:x\"\ncommand = [\"x\"]\nbuiltin = \"mysql-single-user\"",
        ] {
            let mut c = Config::default();
            c.apply_file(&format!("mode = \"dev\"\n[[rotation_functions]]\n{bad}"))
                .unwrap();
            assert!(c.validate().is_err(), "{bad}");
        }
        // Strict mode: the function needs a role to call back with.
        let mut c = Config::default();
        c.apply_file(
            "[[rotation_functions]]\narn = \"arn:aws:lambda:us-east-1:111122223333:function:x\"\ncommand = [\"x\"]",
        )
        .unwrap();
        assert!(c.validate().is_err());
    }

    #[test]
    fn rejects_bad_values() {
        let mut c = Config::default();
        assert!(c.apply_file("nope = 1").is_err());
        c.account_id = "123".into();
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.apply_file("mode = \"strict\"\n[seal]\nkind = \"shamir\"")
            .unwrap();
        assert!(
            c.validate().is_ok(),
            "strict without credentials: the first start creates the administrator"
        );
    }

    #[test]
    fn strict_needs_an_explicit_seal_outside_the_data_dir() {
        let mut c = Config::default();
        c.apply_file("data_dir = \"/var/lib/keyhold\"").unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("strict mode needs an explicit root of trust"),
            "{err}"
        );
        assert!(err.contains("[seal]"), "{err}");
        for inside in [
            "/var/lib/keyhold/root.key",
            "/var/lib/keyhold/x/../root.key",
        ] {
            c.apply_file(&format!(
                "data_dir = \"/var/lib/keyhold\"\n[seal]\nkind = \"key_file\"\npath = \"{inside}\""
            ))
            .unwrap();
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains("inside the data directory"), "{inside}: {err}");
        }
        c.apply_file(
            "data_dir = \"/var/lib/keyhold\"\n[seal]\nkind = \"key_file\"\npath = \"/etc/keyhold/root.key\"",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(
            c.key_file_path(),
            Some(PathBuf::from("/etc/keyhold/root.key"))
        );
        // The first format's spelling still means a key file.
        c.apply_file("data_dir = \"/d\"\n[seal]\nkey_file = \"/etc/k\"")
            .unwrap();
        assert_eq!(
            c.seal,
            Some(SealConfig::KeyFile {
                path: "/etc/k".into()
            })
        );
        // Dev mode keeps its default key file beside the data.
        let dev = Config::default();
        dev.validate().unwrap();
        assert_eq!(dev.key_file_path(), Some(dev.data_dir.join("root.key")));
    }

    #[test]
    fn seal_sections() {
        let mut c = Config::default();
        c.apply_file(
            "[seal]\nkind = \"pkcs11\"\nmodule = \"/usr/lib/softhsm/libsofthsm2.so\"\n\
             token_label = \"keyhold\"\nkey_label = \"root\"\npin_env = \"KEYHOLD_PIN\"",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(
            c.seal,
            Some(SealConfig::Pkcs11(Pkcs11Config {
                module: "/usr/lib/softhsm/libsofthsm2.so".into(),
                token_label: "keyhold".into(),
                key_label: "root".into(),
                pin: PinSource::Env("KEYHOLD_PIN".into()),
            }))
        );
        assert_eq!(c.key_file_path(), None);
        for bad in [
            "[seal]\n",
            "[seal]\nkind = \"vault\"",
            "[seal]\nkind = \"key_file\"",
            "[seal]\nkind = \"shamir\"\npath = \"/k\"",
            "[seal]\nkind = \"pkcs11\"\nmodule = \"m\"\ntoken_label = \"t\"\nkey_label = \"k\"",
            "[seal]\nkind = \"pkcs11\"\nmodule = \"m\"\ntoken_label = \"t\"\nkey_label = \"k\"\npin_env = \"A\"\npin_file = \"/p\"",
            "[seal]\nkind = \"key_file\"\npath = \"/k\"\nmodule = \"m\"",
        ] {
            assert!(c.apply_file(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn storage_is_sqlite_or_a_postgres_url_never_shown_whole() {
        let mut c = Config::default();
        assert!(c.storage.is_none());
        c.apply_file("mode = \"dev\"\nstorage = \"postgres://keyhold:s3cret@db.internal:5432/kh\"")
            .unwrap();
        let storage = c.storage.clone().unwrap();
        assert_eq!(
            storage.as_str(),
            "postgres://keyhold:s3cret@db.internal:5432/kh"
        );
        let shown = format!("{storage:?} {c:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("keyhold:"),
            "{shown}"
        );
        assert!(shown.contains("db.internal:5432/kh"), "{shown}");
        c.apply_file("mode = \"dev\"\nstorage = \"sqlite\"")
            .unwrap();
        assert!(c.storage.is_none());
        for bad in [
            "storage = \"mysql://db/kh\"",
            "storage = \"/var/lib/keyhold.db\"",
            "storage = \"postgres://h:notaport/kh\"",
        ] {
            assert!(c.apply_file(bad).is_err(), "accepted {bad:?}");
        }
    }
}
