//! Starts a real Keyhold server on `127.0.0.1:0` (SQLite in a temporary directory) and hands
//! out configured AWS SDK clients for it.
//!
//! ```no_run
//! # async fn demo() {
//! let server = keyhold_testkit::TestServer::start().await;
//! let kms = server.kms();
//! let key = kms.create_key().send().await.unwrap();
//! let secrets = server.secrets_manager();
//! secrets.create_secret().name("db").secret_string("hunter2").send().await.unwrap();
//! # }
//! ```

pub mod audit_files;
pub mod identity;
pub mod raw;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use keyhold_server::clock::Clock;
use keyhold_server::config::StaticCredential;
use keyhold_server::transport::tls::{TlsFiles, TlsReload};
use keyhold_server::{Config, Mode, Server};
use tokio::sync::oneshot;

/// The account of clients that do not ask for another.
pub const DEFAULT_ACCOUNT: &str = "000000000000";
pub const DEFAULT_REGION: &str = "us-east-1";

/// Builds a [`TestServer`].
pub struct TestServerBuilder {
    config: Config,
    data_dir: Option<PathBuf>,
    tls_ca: Option<Vec<u8>>,
    clock_ahead: Option<std::time::Duration>,
    shamir: Option<(u8, u8)>,
    sqlite: bool,
}

impl TestServerBuilder {
    /// Keeps the store in SQLite in the data directory even when `KEYHOLD_TEST_STORAGE`
    /// names PostgreSQL (a test of moving a SQLite node's state).
    pub fn sqlite(mut self) -> Self {
        self.sqlite = true;
        self
    }

    /// A Shamir seal: on a new data directory, `keyhold init --shares N --threshold K` runs
    /// first ([`TestServer::shares`] hands out the shares, [`TestServer::admin_credentials`]
    /// the administrator); the server starts sealed ([`TestServer::unseal`]).
    pub fn shamir(mut self, shares: u8, threshold: u8) -> Self {
        self.config.seal = Some(keyhold_server::config::SealConfig::Shamir);
        self.shamir = Some((shares, threshold));
        self
    }

    /// The root of trust (`[seal]`), for a data directory initialized some other way.
    pub fn seal(mut self, seal: keyhold_server::config::SealConfig) -> Self {
        self.config.seal = Some(seal);
        self
    }

    /// Strict mode with the given access keys (id, secret, account).
    pub fn strict(mut self, credentials: &[(&str, &str, &str)]) -> Self {
        self.config.mode = Mode::Strict;
        self.config.credentials = credentials
            .iter()
            .map(|(id, secret, account)| StaticCredential {
                access_key_id: (*id).into(),
                secret_access_key: (*secret).into(),
                account_id: (*account).into(),
            })
            .collect();
        self
    }

    /// Strict mode with no configured credentials: the first start creates the IAM user
    /// `admin` ([`TestServer::admin_credentials`]).
    pub fn strict_bootstrap(mut self) -> Self {
        self.config.mode = Mode::Strict;
        self.config.credentials = Vec::new();
        self
    }

    /// Reuses a data directory (to test restarts); it is not deleted at the end.
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_path_buf());
        self
    }

    /// Adjusts the server's configuration before it starts: transport settings (timeouts,
    /// `max_connections`, TLS, trusted proxies) and anything else a test needs. The data
    /// directory and the listen address are the builder's.
    pub fn configure(mut self, adjust: impl FnOnce(&mut Config)) -> Self {
        adjust(&mut self.config);
        self
    }

    /// Serves HTTPS with the certificate chain and key in `files`; the SDK clients of the
    /// [`TestServer`] trust only `ca_pem` (PEM) and connect to `https://localhost:port`.
    pub fn tls(mut self, files: TlsFiles, ca_pem: impl Into<Vec<u8>>) -> Self {
        self.config.tls = Some(files);
        self.tls_ca = Some(ca_pem.into());
        self
    }

    /// Changes the audit trail's configuration (digest interval, retention, digest files).
    pub fn audit(
        mut self,
        change: impl FnOnce(&mut keyhold_server::audit::trail::TrailConfig),
    ) -> Self {
        change(&mut self.config.audit);
        self
    }

    pub fn deletion_sweep_interval(mut self, interval: std::time::Duration) -> Self {
        self.config.deletion_sweep_interval = interval;
        self
    }

    /// Starts with the server's clock this far ahead of real time, before any background
    /// work runs: a restart after the server was down that long.
    pub fn clock_ahead(mut self, by: std::time::Duration) -> Self {
        self.clock_ahead = Some(by);
        self
    }

    pub async fn start(mut self) -> TestServer {
        let temp = match &self.data_dir {
            Some(_) => None,
            None => Some(tempfile::tempdir().expect("a temporary directory for the test server")),
        };
        let dir = self
            .data_dir
            .clone()
            .or_else(|| temp.as_ref().map(|t| t.path().join("data")))
            .expect("a data directory");
        self.config.data_dir = dir.clone();
        self.config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        // Strict mode needs an explicit seal: unless the test chose one, a key file outside
        // the data directory (beside it, so that a restart finds it again).
        if self.config.mode == Mode::Strict && self.config.seal.is_none() {
            self.config.seal = Some(strict_seal(&dir));
        }
        // KEYHOLD_TEST_STORAGE=postgres://...: the store in PostgreSQL, in a schema of this
        // data directory's own (a restart on the same directory finds its state again).
        let mut first_start = !dir.join("keyhold.db").exists();
        if self.config.storage.is_none()
            && !self.sqlite
            && let Some(url) = test_storage()
        {
            let (storage, created) = postgres_schema_for(&url, &dir).await;
            self.config.storage = Some(storage);
            first_start = created;
        }
        let mut shares = Vec::new();
        let mut initialized_admin = None;
        if let Some((n, k)) = self.shamir
            && first_start
        {
            let (split, admin) = keyhold_server::initialize_shamir(&self.config, n, k)
                .await
                .expect("keyhold init --shares");
            shares = split.iter().map(|s| s.to_text().to_string()).collect();
            initialized_admin = admin.map(|c| {
                (
                    c.access_key_id.clone(),
                    String::from(c.secret_access_key.as_str()),
                )
            });
        }
        let mut server = Server::bind(self.config)
            .await
            .expect("the test server binds");
        let admin = server
            .take_admin_credentials()
            .map(|c| {
                (
                    c.access_key_id.clone(),
                    String::from(c.secret_access_key.as_str()),
                )
            })
            .or(initialized_admin);
        let addr = server.local_addr().expect("a bound address");
        let metrics_addr = server.metrics_addr();
        let clock = server.clock();
        let tls_reload = server.tls_reload();
        if let Some(by) = self.clock_ahead {
            clock.advance(by);
        }
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async move {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            metrics_addr,
            clock,
            admin,
            shares,
            tls_ca: self.tls_ca,
            tls_reload,
            data_dir: dir,
            _temp: temp,
            shutdown: Some(tx),
            task: Some(task),
        }
    }
}

/// A new symmetric KMS key (CreateKey with no options, so it must succeed).
pub struct NewKey {
    pub id: String,
    pub arn: String,
}

/// Creates a symmetric encryption key through `kms`: its id and ARN.
pub async fn new_key(kms: &aws_sdk_kms::Client) -> NewKey {
    let meta = kms
        .create_key()
        .send()
        .await
        .expect("CreateKey")
        .key_metadata
        .expect("KeyMetadata");
    NewKey {
        id: meta.key_id,
        arn: meta.arn.expect("an ARN"),
    }
}

/// `KEYHOLD_TEST_STORAGE`, when it names a PostgreSQL database: every test server keeps its
/// store there (each in a schema of its own) instead of SQLite in its data directory.
pub fn test_storage() -> Option<String> {
    std::env::var("KEYHOLD_TEST_STORAGE")
        .ok()
        .filter(|url| keyhold_store::is_postgres_url(url))
}

/// The `storage` URL of a fresh (or, for the same data directory, the same) schema in the
/// PostgreSQL database `url`: the schema is named after the data directory's path and
/// created if missing, and the URL sets the connection's `search_path` to it.
/// The store a test that builds its own [`Config`] for `data_dir` must use: the same
/// PostgreSQL schema a [`TestServer`] on that directory gets under `KEYHOLD_TEST_STORAGE`,
/// or `None` (SQLite in the data directory).
pub async fn test_storage_for(data_dir: &Path) -> Option<keyhold_server::config::StorageUrl> {
    match test_storage() {
        Some(url) => Some(postgres_schema_for(&url, data_dir).await.0),
        None => None,
    }
}

/// Also says whether the schema was created now (a first start).
pub async fn postgres_schema_for(
    url: &str,
    data_dir: &Path,
) -> (keyhold_server::config::StorageUrl, bool) {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data_dir.hash(&mut hasher);
    let schema = format!("keyhold_test_{:016x}", hasher.finish());
    let config = keyhold_store::parse_postgres_url(url).expect("KEYHOLD_TEST_STORAGE is a URL");
    let (client, connection) = config
        .connect()
        .await
        .expect("KEYHOLD_TEST_STORAGE: the database is reachable");
    let driver = tokio::spawn(connection);
    let existed = client
        .query_opt(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = $1",
            &[&schema],
        )
        .await
        .expect("the schemas")
        .is_some();
    client
        .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .await
        .expect("a schema for the test server");
    drop(client);
    let _ = driver.await;
    let separator = if url.contains('?') { '&' } else { '?' };
    let storage = keyhold_server::config::StorageUrl::parse(&format!(
        "{url}{separator}options=-c%20search_path%3D{schema}"
    ))
    .expect("a storage URL")
    .expect("a PostgreSQL storage URL");
    (storage, !existed)
}

/// The seal the testkit gives a strict-mode server that does not choose one: the root key
/// file `.<name>.root.key` beside the data directory `<name>` (outside it, as strict mode
/// requires). Tests that build a strict [`Config`] themselves use it too.
pub fn strict_seal(data_dir: &Path) -> keyhold_server::config::SealConfig {
    let name = data_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    let parent = data_dir.parent().unwrap_or(Path::new("/tmp"));
    keyhold_server::config::SealConfig::KeyFile {
        path: parent.join(format!(".{name}.root.key")),
    }
}

/// Credentials: an access key, its secret, and for temporary credentials their token.
#[derive(Clone, Debug)]
pub struct Creds {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl Creds {
    pub fn new(access_key_id: &str, secret_access_key: &str) -> Self {
        Self {
            access_key_id: access_key_id.to_owned(),
            secret_access_key: secret_access_key.to_owned(),
            session_token: None,
        }
    }
}

/// SDK clients sharing one set of credentials (region `us-east-1`).
pub struct Clients {
    pub iam: aws_sdk_iam::Client,
    pub sts: aws_sdk_sts::Client,
    pub kms: aws_sdk_kms::Client,
    pub secrets_manager: aws_sdk_secretsmanager::Client,
    pub ssm: aws_sdk_ssm::Client,
}

/// A running server; dropped, it stops (call [`TestServer::stop`] to wait for it).
pub struct TestServer {
    addr: SocketAddr,
    /// The metrics listener (`metrics_listen` set through `configure`).
    metrics_addr: Option<SocketAddr>,
    clock: Clock,
    admin: Option<(String, String)>,
    shares: Vec<String>,
    tls_ca: Option<Vec<u8>>,
    tls_reload: Option<TlsReload>,
    data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder {
            config: Config::default(),
            data_dir: None,
            tls_ca: None,
            clock_ahead: None,
            shamir: None,
            sqlite: false,
        }
    }

    /// A dev-mode server in a fresh temporary directory.
    pub async fn start() -> TestServer {
        Self::builder().start().await
    }

    pub fn endpoint(&self) -> String {
        match self.tls_ca {
            None => format!("http://{}", self.addr),
            Some(_) => format!("https://localhost:{}", self.addr.port()),
        }
    }

    /// Re-reads the TLS certificate files (what `SIGHUP` does to `keyhold serve`).
    pub fn reload_tls(&self) -> anyhow::Result<()> {
        self.tls_reload
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("the test server does not serve TLS"))?
            .reload()
    }

    /// An SDK HTTP client that trusts only `ca_pem` (aws-lc-rs rustls).
    pub fn http_client_trusting(
        ca_pem: &[u8],
    ) -> aws_smithy_runtime_api::client::http::SharedHttpClient {
        use aws_smithy_http_client::tls;
        let context = tls::TlsContext::builder()
            .with_trust_store(tls::TrustStore::empty().with_pem_certificate(ca_pem.to_vec()))
            .build()
            .expect("a TLS context for the test CA");
        aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .tls_context(context)
            .build_https()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The metrics listener's address, when the test configured `metrics_listen`.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The bootstrap administrator's access key id and secret, when this start created it
    /// ([`TestServerBuilder::strict_bootstrap`], first start).
    pub fn admin_credentials(&self) -> Option<(&str, &str)> {
        self.admin.as_ref().map(|(k, s)| (k.as_str(), s.as_str()))
    }

    /// The Shamir shares `keyhold init` made when this start initialized the data directory
    /// ([`TestServerBuilder::shamir`]), in the text form operators hold.
    pub fn shares(&self) -> &[String] {
        &self.shares
    }

    /// The seal status (`GET /_keyhold/seal/status`, what `keyhold status` shows).
    pub async fn seal_status(&self) -> keyhold_server::seal::client::Answer {
        keyhold_server::seal::client::status(self.addr)
            .await
            .expect("the seal status")
    }

    /// Enters one share, as `keyhold unseal` does (with the admin token from the data
    /// directory).
    pub async fn unseal(&self, share: &str) -> keyhold_server::seal::client::Answer {
        let token = keyhold_server::seal::client::read_token(&self.data_dir).expect("the token");
        keyhold_server::seal::client::unseal(self.addr, &token, share)
            .await
            .expect("an answer to unseal")
    }

    /// Seals the server, as `keyhold seal` does.
    pub async fn seal(&self) -> keyhold_server::seal::client::Answer {
        let token = keyhold_server::seal::client::read_token(&self.data_dir).expect("the token");
        keyhold_server::seal::client::seal(self.addr, &token)
            .await
            .expect("an answer to seal")
    }

    /// SDK configuration for `access_key` / `secret` in `region`.
    pub fn sdk_config(
        &self,
        access_key: &str,
        secret: &str,
        region: &str,
    ) -> aws_config::SdkConfig {
        self.sdk_config_with_token(access_key, secret, None, region)
    }

    /// SDK configuration for temporary credentials (with their session token).
    pub fn sdk_config_with_token(
        &self,
        access_key: &str,
        secret: &str,
        session_token: Option<&str>,
        region: &str,
    ) -> aws_config::SdkConfig {
        let mut builder = aws_config::SdkConfig::builder();
        if let Some(ca) = &self.tls_ca {
            builder = builder.http_client(Self::http_client_trusting(ca));
        }
        builder
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .endpoint_url(self.endpoint())
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                    access_key,
                    secret,
                    session_token.map(str::to_owned),
                    None,
                    "keyhold-testkit",
                )),
            )
            .build()
    }

    /// A KMS client of the default account in `us-east-1` (dev mode).
    pub fn kms(&self) -> aws_sdk_kms::Client {
        self.kms_for(DEFAULT_ACCOUNT, DEFAULT_REGION)
    }

    /// A KMS client acting as `account` (dev mode: the access key id selects the account).
    pub fn kms_for(&self, account: &str, region: &str) -> aws_sdk_kms::Client {
        aws_sdk_kms::Client::new(&self.sdk_config(account, "dev-mode-secret", region))
    }

    /// A KMS client with explicit credentials (strict mode).
    pub fn kms_with(&self, access_key: &str, secret: &str, region: &str) -> aws_sdk_kms::Client {
        aws_sdk_kms::Client::new(&self.sdk_config(access_key, secret, region))
    }

    /// A Secrets Manager client of the default account in `us-east-1` (dev mode).
    pub fn secrets_manager(&self) -> aws_sdk_secretsmanager::Client {
        self.secrets_manager_for(DEFAULT_ACCOUNT, DEFAULT_REGION)
    }

    /// A Secrets Manager client acting as `account` in `region` (dev mode).
    pub fn secrets_manager_for(
        &self,
        account: &str,
        region: &str,
    ) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.sdk_config(account, "dev-mode-secret", region))
    }

    /// An SSM (Parameter Store) client of the default account in `us-east-1` (dev mode).
    pub fn ssm(&self) -> aws_sdk_ssm::Client {
        self.ssm_for(DEFAULT_ACCOUNT, DEFAULT_REGION)
    }

    /// An SSM client acting as `account` in `region` (dev mode).
    pub fn ssm_for(&self, account: &str, region: &str) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&self.sdk_config(account, "dev-mode-secret", region))
    }

    /// An IAM client of the default account (dev mode).
    pub fn iam(&self) -> aws_sdk_iam::Client {
        self.iam_for(DEFAULT_ACCOUNT)
    }

    /// An IAM client acting as `account`'s root (dev mode).
    pub fn iam_for(&self, account: &str) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.sdk_config(account, "dev-mode-secret", DEFAULT_REGION))
    }

    /// An STS client of the default account (dev mode).
    pub fn sts(&self) -> aws_sdk_sts::Client {
        self.sts_for(DEFAULT_ACCOUNT)
    }

    /// An STS client acting as `account`'s root (dev mode).
    pub fn sts_for(&self, account: &str) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::new(&self.sdk_config(account, "dev-mode-secret", DEFAULT_REGION))
    }

    /// Clients of every service for one set of credentials.
    pub fn clients(&self, credentials: &Creds) -> Clients {
        let config = self.sdk_config_with_token(
            &credentials.access_key_id,
            &credentials.secret_access_key,
            credentials.session_token.as_deref(),
            DEFAULT_REGION,
        );
        Clients {
            iam: aws_sdk_iam::Client::new(&config),
            sts: aws_sdk_sts::Client::new(&config),
            kms: aws_sdk_kms::Client::new(&config),
            secrets_manager: aws_sdk_secretsmanager::Client::new(&config),
            ssm: aws_sdk_ssm::Client::new(&config),
        }
    }

    /// Sends a raw JSON 1.1 request for `target` (`TrentService.Encrypt`), unsigned.
    pub async fn raw_json(&self, target: &str, body: &str) -> raw::RawResponse {
        raw::post(
            self.addr,
            &[
                ("X-Amz-Target", target),
                ("Content-Type", "application/x-amz-json-1.1"),
            ],
            body.as_bytes(),
        )
        .await
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Every file under `data_dir` (recursively) with its bytes, but the root key file: what
/// tests scan for secrets that must not be stored in the clear.
pub fn data_files(data_dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut dirs = vec![data_dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("the data directory lists") {
            let entry = entry.expect("an entry");
            let path = entry.path();
            if entry.file_type().expect("a file type").is_dir() {
                dirs.push(path);
            } else if path.file_name().is_some_and(|n| n != "root.key") {
                // A file may go between the listing and the read (SQLite's -shm).
                if let Ok(bytes) = std::fs::read(&path) {
                    files.push((path, bytes));
                }
            }
        }
    }
    files
}

/// An AWS error's code and message as the SDK parsed them (any service's error).
pub fn code_and_message<E: aws_sdk_kms::error::ProvideErrorMetadata>(e: &E) -> (String, String) {
    (
        e.code().unwrap_or_default().to_owned(),
        e.message().unwrap_or_default().to_owned(),
    )
}

/// The machine's real time, in Unix seconds (not a test server's clock).
pub fn unix_now() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(since.as_secs()).expect("seconds fit an i64")
}
