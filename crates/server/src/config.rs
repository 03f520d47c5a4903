//! Server configuration: defaults, overridden by the config file, then by the environment,
//! then by command-line flags (the CLI applies those).
//!
//! ```toml
//! # keyhold.toml — a config file means strict mode unless it says `mode = "dev"`
//! listen = "127.0.0.1:4566"
//! data_dir = "/var/lib/keyhold"
//! account_id = "111122223333"          # the default account
//!
//! [seal]
//! key_file = "/etc/keyhold/root.key"    # default: <data_dir>/root.key
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
    /// The account of requests that do not name one (12 digits).
    pub account_id: String,
    /// The largest request body accepted.
    pub max_body_bytes: usize,
    /// How often scheduled deletions, expirations and automatic key rotations are carried
    /// out (and once at start).
    pub deletion_sweep_interval: Duration,
    /// The dev-mode root key file (default `<data_dir>/root.key`).
    pub key_file: Option<PathBuf>,
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
    /// A seed file applied at start (`--seed`, `seed`): see [`crate::ops::seed`].
    pub seed: Option<PathBuf>,
    /// Where `/metrics` (and the health checks) are served; `None`: no metrics listener.
    pub metrics_listen: Option<SocketAddr>,
    /// AWS's request quotas (`[quotas]`).
    pub quotas: crate::ops::quotas::QuotaConfig,
}

/// An access key accepted in strict mode; it authenticates as its account's root.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticCredential {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub account_id: String,
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
            account_id: DEFAULT_ACCOUNT.to_owned(),
            max_body_bytes: DEFAULT_MAX_BODY,
            deletion_sweep_interval: Duration::from_secs(60),
            key_file: None,
            credentials: Vec::new(),
            audit: crate::audit::trail::TrailConfig::default(),
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            tls: None,
            allow_plain_http: false,
            trusted_proxies: Default::default(),
            seed: None,
            metrics_listen: None,
            quotas: Default::default(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    mode: Option<Mode>,
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
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
    seed: Option<PathBuf>,
    metrics_listen: Option<SocketAddr>,
    quotas: Option<QuotaSection>,
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SealSection {
    key_file: Option<PathBuf>,
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
        if let Some(account) = file.account_id {
            self.account_id = account;
        }
        if let Some(max) = file.max_body_bytes {
            self.max_body_bytes = max;
        }
        if let Some(secs) = file.deletion_sweep_seconds {
            self.deletion_sweep_interval = Duration::from_secs(secs.max(1));
        }
        self.key_file = file.seal.and_then(|s| s.key_file);
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
        if self.max_connections == 0 || u32::try_from(self.max_connections).is_err() {
            bail!("max_connections must be between 1 and 4294967295");
        }
        Ok(())
    }

    pub fn key_file_path(&self) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("root.key"))
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("keyhold.db")
    }

    /// The audit trail's database.
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
    fn file_means_strict() {
        let mut c = Config::default();
        c.apply_file(
            r#"
            listen = "127.0.0.1:9000"
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
        let mut c = Config::default();
        c.apply_file("listen = \"0.0.0.0:4566\"").unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("refuses plain HTTP on 0.0.0.0:4566"), "{err}");
        c.apply_file("listen = \"0.0.0.0:4566\"\nallow_plain_http = true")
            .unwrap();
        c.validate().unwrap();
        c.apply_file("listen = \"0.0.0.0:4566\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"")
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
    fn rejects_bad_values() {
        let mut c = Config::default();
        assert!(c.apply_file("nope = 1").is_err());
        c.account_id = "123".into();
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.apply_file("mode = \"strict\"").unwrap();
        assert!(
            c.validate().is_ok(),
            "strict without credentials: the first start creates the administrator"
        );
    }
}
