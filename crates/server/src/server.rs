//! A Keyhold server's lifecycle: open the data directory and the seal, bind, serve until
//! shutdown, and stop the background tasks with it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use keyhold_store::{SqliteStore, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::audit::Auditor;
use crate::audit::lookup::CloudTrailService;
use crate::audit::source::LookupSource;
use crate::audit::trail::AuditTrail;
use crate::auth::Authenticator;
use crate::clock::Clock;
use crate::config::{Config, Mode, SealConfig};
use crate::http::AppState;
use crate::iam::IamService;
use crate::iam::bootstrap::AdminCredentials;
use crate::kms::KmsService;
use crate::params::SsmService;
use crate::seal::admin::SealGate;
use crate::secrets::SecretsService;
use crate::sts::StsService;
use crate::transport::Limits;
use crate::transport::tls::TlsReload;
use keyhold_crypto::seal::RootShare;

/// A bound, ready server; [`Server::serve`] runs it.
pub struct Server {
    listener: TcpListener,
    gate: Arc<SealGate>,
    /// `/metrics` and the health checks (`metrics_listen`).
    metrics_listener: Option<TcpListener>,
    clock: Clock,
    admin: Option<AdminCredentials>,
    limits: Limits,
    tls: Option<TlsReload>,
}

/// Creates the first administrator of a data directory (`keyhold init`): opens its store
/// and seal, and returns the administrator's credentials, or `None` when the directory
/// already has one (whose credentials were shown once, when it was created).
pub async fn initialize(config: &Config) -> anyhow::Result<Option<AdminCredentials>> {
    config.validate()?;
    if matches!(config.seal, Some(SealConfig::Shamir)) {
        anyhow::bail!(
            "a Shamir seal is initialized with `keyhold init --config FILE --shares N --threshold K`"
        );
    }
    let store = open_store(config).await?;
    let domain = crate::seal::open(config, store.as_ref())
        .await?
        .context("the seal did not open")?;
    let iam = open_iam(store, Arc::new(domain), Clock::default()).await?;
    iam.bootstrap(&config.account_id)
        .await
        .map_err(|e| anyhow::anyhow!("creating the administrator failed: {e:?}"))
}

/// `keyhold init --shares N --threshold K` on a Shamir-sealed data directory: creates the
/// root key (returned only as its shares), the domain key and the first administrator.
pub async fn initialize_shamir(
    config: &Config,
    shares: u8,
    threshold: u8,
) -> anyhow::Result<(Vec<RootShare>, Option<AdminCredentials>)> {
    config.validate()?;
    if !matches!(config.seal, Some(SealConfig::Shamir)) {
        anyhow::bail!(
            "--shares and --threshold need a Shamir seal: [seal] kind = \"shamir\" in the config file"
        );
    }
    let store = open_store(config).await?;
    let (domain, split) = crate::seal::initialize_shamir(store.as_ref(), shares, threshold).await?;
    let iam = open_iam(store, Arc::new(domain), Clock::default()).await?;
    let admin = iam
        .bootstrap(&config.account_id)
        .await
        .map_err(|e| anyhow::anyhow!("creating the administrator failed: {e:?}"))?;
    Ok((split, admin))
}

/// `keyhold rekey`: a new root key and share set for a Shamir-sealed data directory, given
/// enough shares of the current set. Only the domain key is re-sealed.
pub async fn rekey_shamir(
    config: &Config,
    current: &[RootShare],
    shares: u8,
    threshold: u8,
) -> anyhow::Result<Vec<RootShare>> {
    config.validate()?;
    if !matches!(config.seal, Some(SealConfig::Shamir)) {
        anyhow::bail!("rekeying is for a Shamir seal ([seal] kind = \"shamir\")");
    }
    let store = open_store(config).await?;
    crate::seal::rekey_shamir(store.as_ref(), current, shares, threshold).await
}

/// `keyhold migrate`: brings the store's schema up to date without serving (a server also
/// does it at start; on PostgreSQL under an advisory lock, so that this may run while nodes
/// start). Returns what it did, for the operator.
pub async fn migrate_store(config: &Config) -> anyhow::Result<String> {
    config.validate()?;
    match &config.storage {
        Some(storage) => {
            let applied = keyhold_store::PgStore::migrate_url(storage.as_str())
                .await
                .map_err(anyhow::Error::new)
                .with_context(|| format!("migrating the PostgreSQL store {storage:?}"))?;
            Ok(format!(
                "PostgreSQL store {storage:?}: applied {applied} migration(s); the schema is at version {}",
                keyhold_store::PgStore::latest_schema_version()
            ))
        }
        None => {
            let db = config.database_path();
            if !db.exists() {
                anyhow::bail!(
                    "{} does not exist: the first `keyhold serve` (or `keyhold init`) creates it",
                    db.display()
                );
            }
            // Opening the SQLite store applies what it lacks.
            SqliteStore::open(&db)
                .map_err(anyhow::Error::new)
                .with_context(|| format!("migrating {}", db.display()))?;
            Ok(format!("{}: the schema is up to date", db.display()))
        }
    }
}

/// Opens the store: the database `storage` names (PostgreSQL, its schema brought up to
/// date), or else (creating it on first use) the data directory's SQLite database. The data
/// directory is prepared either way: it keeps the audit trail and the seal's files.
async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let key_file = config.key_file_path();
    crate::data_dir::prepare(&config.data_dir, key_file.as_deref().as_slice())?;
    if let Some(storage) = &config.storage {
        let store = keyhold_store::PgStore::connect(storage.as_str())
            .await
            .map_err(anyhow::Error::new)
            .with_context(|| format!("opening the PostgreSQL store {storage:?}"))?;
        return Ok(Arc::new(store));
    }
    let db = config.database_path();
    crate::data_dir::create_private_file(&db)?;
    let store = SqliteStore::open(&db).with_context(|| format!("opening {}", db.display()))?;
    Ok(Arc::new(store))
}

async fn open_iam(
    store: Arc<dyn Store>,
    domain: Arc<keyhold_crypto::seal::DomainKey>,
    clock: Clock,
) -> anyhow::Result<IamService> {
    IamService::open(store, domain, clock)
        .await
        .map_err(|e| anyhow::anyhow!("loading the IAM directory failed: {e:?}"))
}

/// The services of an unsealed server, built around its domain key. Dropping the last
/// reference drops (zeroizes) the domain key and every cache of unsealed keys.
pub(crate) async fn unsealed_state(
    config: &Config,
    store: Arc<dyn Store>,
    domain: keyhold_crypto::seal::DomainKey,
    clock: Clock,
    bootstrap: bool,
    endpoint: &str,
    metrics: &Arc<crate::ops::metrics::Metrics>,
) -> anyhow::Result<(Arc<AppState>, Option<AdminCredentials>)> {
    let domain = Arc::new(domain);
    let iam = Arc::new(open_iam(store.clone(), domain.clone(), clock.clone()).await?);
    // Strict mode without configured credentials: the first start creates the
    // administrator (once per data directory) so that someone can sign requests.
    let admin = match (bootstrap, config.mode, config.credentials.is_empty()) {
        (true, Mode::Strict, true) => iam
            .bootstrap(&config.account_id)
            .await
            .map_err(|e| anyhow::anyhow!("creating the administrator failed: {e:?}"))?,
        _ => None,
    };
    // The anchor lives with the key store: in its database, wherever that is (one per node
    // when several share it: each keeps its own trail).
    let anchor: Box<dyn keyhold_store::audit::AuditAnchor> = match &config.storage {
        Some(storage) => Box::new(
            keyhold_store::PgAuditAnchor::connect_node(storage.as_str(), config.node_id.as_deref())
                .context("opening the audit trail's anchor in the key store")?,
        ),
        None => Box::new(
            keyhold_store::SqliteAuditAnchor::open(&config.database_path())
                .context("opening the audit trail's anchor in the key store")?,
        ),
    };
    let trail_config = crate::audit::trail::TrailConfig {
        rejections_account: config.account_id.clone(),
        ..config.audit.clone()
    };
    let trail = Arc::new(AuditTrail::open(
        &config.audit_dir(),
        &config.audit_database_path(),
        anchor,
        &domain,
        trail_config,
    )?);
    for sub in ["", "segments", "meta", "torn"] {
        let dir = config.audit_dir().join(sub);
        if dir.is_dir() {
            crate::data_dir::tighten(&dir, &[])?;
        }
    }
    let audit: Arc<dyn Auditor> = trail.clone();
    // On a store several nodes share, lookups read the nodes' shared index, which this
    // node's publisher keeps up to date with its trail.
    let lookups = Arc::new(LookupSource::start(
        trail.clone(),
        store.shared_audit_index(),
        config.node_id.as_deref(),
        &config.audit_dir(),
    ));
    // The cluster digest chain joins the trails of nodes that share a store: PostgreSQL
    // only (a SQLite store has one node, whose anchor already is the whole story).
    let cluster_audit = config.storage.is_some().then(|| {
        Arc::new(crate::audit::cluster::ClusterDigests::new(
            store.clone(),
            domain.clone(),
        ))
    });
    let kms = Arc::new(KmsService::new(
        store.clone(),
        domain,
        clock.clone(),
        audit.clone(),
        lookups.clone(),
        config.cache.kms_keys,
    ));
    kms.attach_custom_key_stores(config.custom_key_stores.clone());
    let secrets = Arc::new(SecretsService::new(
        store.clone(),
        kms.clone(),
        clock.clone(),
        config.cache.secrets,
    ));
    let ssm = Arc::new(SsmService::new(
        store.clone(),
        kms.clone(),
        secrets.clone(),
        audit.clone(),
        clock.clone(),
        config.cache.parameters,
    ));
    let seed = config
        .seed
        .as_deref()
        .map(crate::ops::seed::SeedFile::read)
        .transpose()?
        .map(Arc::new);
    if let Some(seed) = &seed {
        seed.check(config.mode)?;
    }
    kms.attach_metrics(metrics.clone());
    let quotas = crate::ops::quotas::Quotas::new(config.quotas.clone(), config.mode).map(Arc::new);
    if let Some(quotas) = &quotas {
        kms.attach_quotas(quotas.clone());
    }
    secrets.attach_metrics(metrics.clone());
    let observed = metrics.clone();
    trail
        .health()
        .observe_batches(Box::new(move |events, commit| {
            observed.audit_batch(events, commit);
        }));
    secrets.install_rotation(crate::secrets::RotationSetup {
        functions: config.rotation_functions.clone(),
        iam: iam.clone(),
        audit: audit.clone(),
        endpoint: endpoint.to_owned(),
    });
    let state = Arc::new(AppState {
        mode: config.mode,
        max_body_bytes: config.max_body_bytes,
        trusted_proxies: config.trusted_proxies.clone(),
        body_read_timeout: config.body_read_timeout,
        auth: Authenticator::new(config, iam.clone(), clock.clone()),
        kms,
        secrets,
        ssm,
        sts: Arc::new(StsService::new(iam.clone(), clock.clone())),
        iam,
        cloudtrail: Arc::new(CloudTrailService::new(lookups)),
        audit,
        trail,
        cluster_audit,
        ops: crate::ops::Ops {
            seed,
            default_account: config.account_id.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
            quotas,
            ready_checks: Vec::new(),
        },
    });
    state
        .secrets
        .attach_rotation_dispatcher(Arc::downgrade(&state));
    if let Some(seed) = &state.ops.seed {
        crate::ops::seed::apply(&state, seed, &config.account_id)
            .await
            .context("applying the seed file")?;
    }
    Ok((state, admin))
}

/// Starts the background work of an unsealed server — the sweep and, on a store shared
/// with other nodes, the change feed that keeps the caches coherent ([`crate::coherence`]);
/// both stop when the sender says so.
pub(crate) fn start_sweep(
    state: &AppState,
    interval: Duration,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let services = Sweep {
        kms: state.kms.clone(),
        secrets: state.secrets.clone(),
        ssm: state.ssm.clone(),
        iam: state.iam.clone(),
        cluster_audit: state.cluster_audit.clone(),
        store: state.ops.store.clone(),
        metrics: state.ops.metrics.clone(),
    };
    let coherence = state.ops.store.change_feed().map(|feed| {
        tokio::spawn(crate::coherence::run(
            crate::coherence::Caches {
                kms: state.kms.clone(),
                secrets: state.secrets.clone(),
                ssm: state.ssm.clone(),
                iam: state.iam.clone(),
                metrics: state.ops.metrics.clone(),
            },
            feed,
            stop_rx.clone(),
        ))
    });
    let sweeper = tokio::spawn(async move {
        sweep(services, interval, stop_rx).await;
        if let Some(coherence) = coherence {
            let _ = coherence.await;
        }
    });
    (stop_tx, sweeper)
}

impl Server {
    /// Opens the data directory (database, seal) and binds the listener. A Shamir-sealed
    /// server binds sealed: it serves the seal endpoints until its shares are entered.
    pub async fn bind(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        let store = open_store(&config).await?;
        let domain = crate::seal::open(&config, store.as_ref()).await?;
        let clock = Clock::default();
        let tls = config.tls.clone().map(TlsReload::load).transpose()?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        // Where rotation functions call back into this server.
        let endpoint = own_endpoint(listener.local_addr()?, tls.is_some());
        // One registry for the life of the process: it outlives a seal and an unseal.
        let metrics = Arc::new(crate::ops::metrics::Metrics::new());
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("listening on {addr} (metrics_listen)"))?,
            ),
            None => None,
        };
        let (live, admin) = match domain {
            Some(domain) => {
                let (state, admin) = unsealed_state(
                    &config,
                    store.clone(),
                    domain,
                    clock.clone(),
                    true,
                    &endpoint,
                    &metrics,
                )
                .await?;
                (Some(state), admin)
            }
            None => (None, None),
        };
        // The databases are open (their -wal/-shm files exist): one more pass catches any
        // file that an older version or a copy left readable by others.
        crate::data_dir::tighten(
            &config.data_dir,
            config.key_file_path().as_deref().as_slice(),
        )?;
        let limits = Limits {
            header_read_timeout: config.header_read_timeout,
            idle_timeout: config.idle_timeout,
            max_connections: config.max_connections,
        };
        let gate = SealGate::new(config, store, clock.clone(), live, endpoint, metrics)?;
        Ok(Self {
            listener,
            gate,
            metrics_listener,
            clock,
            admin,
            limits,
            tls,
        })
    }

    /// The administrator created by this start (strict mode, first start, no configured
    /// credentials): the caller shows its credentials once. `None` ever after.
    pub fn take_admin_credentials(&mut self) -> Option<AdminCredentials> {
        self.admin.take()
    }

    /// Whether the server is sealed (a Shamir seal before its shares are entered).
    pub fn is_sealed(&self) -> bool {
        self.gate.is_sealed()
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The metrics listener's address, when `metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The TLS certificate handle (when serving HTTPS): [`TlsReload::reload`] re-reads the
    /// certificate files for new connections (`keyhold serve` calls it on SIGHUP).
    pub fn tls_reload(&self) -> Option<TlsReload> {
        self.tls.clone()
    }

    /// The server's clock (tests move it forward).
    pub fn clock(&self) -> Clock {
        self.clock.clone()
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests and stops the
    /// background tasks.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, _) = watch::channel(false);
        let metrics = self.metrics_listener.map(|listener| {
            let router = crate::seal::admin::metrics_router(self.gate.clone());
            let mut stop = stop_tx.subscribe();
            tokio::spawn(async move {
                let served = axum::serve(listener, router)
                    .with_graceful_shutdown(async move {
                        let _ = stop.changed().await;
                    })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "the metrics listener failed");
                }
            })
        });
        crate::transport::serve(
            self.listener,
            crate::seal::admin::Front::new(self.gate.clone()),
            self.limits,
            self.tls,
            shutdown,
        )
        .await;
        let _ = stop_tx.send(true);
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        self.gate.close().await;
        Ok(())
    }
}

/// The endpoint rotation functions call back: this server, on loopback when it listens on
/// every address.
fn own_endpoint(addr: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let ip = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => std::net::IpAddr::from([127, 0, 0, 1]),
        ip if ip.is_unspecified() => std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("{scheme}://{}", SocketAddr::new(ip, addr.port()))
}

/// What the background sweep looks after.
struct Sweep {
    kms: Arc<KmsService>,
    secrets: Arc<SecretsService>,
    ssm: Arc<SsmService>,
    iam: Arc<IamService>,
    /// Appends the cluster digest chain (a store shared by several nodes).
    cluster_audit: Option<Arc<crate::audit::cluster::ClusterDigests>>,
    /// Where the sweep's lease is taken.
    store: Arc<dyn Store>,
    metrics: Arc<crate::ops::metrics::Metrics>,
}

/// The lease under which one node of those sharing a store sweeps.
const SWEEP_LEASE: &str = "sweep";

/// How long a sweep lease lasts unless renewed: three sweeps, and at least ten seconds, so
/// that a holder late by a tick keeps it; a node that stops gives it up at once, one that
/// dies hands it over when it expires.
fn sweep_lease_ms(interval: Duration) -> i64 {
    let ttl = (interval * 3).max(Duration::from_secs(10));
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

/// Every `interval` (the first time at start), until told to stop: deletes keys and purges
/// secrets whose deletion date has passed, rotates keys whose automatic rotation is due,
/// starts the secret rotations that are due, deletes parameters whose `Expiration` policy is
/// due, forgets long-expired STS sessions, and (several nodes on one store) appends the
/// cluster digest chain that joins their audit trails. A failure is logged and retried on
/// the next tick. With several nodes on one store, only the holder of the sweep lease does
/// it, so that each job runs once across them.
async fn sweep(services: Sweep, interval: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let lease_ms = sweep_lease_ms(interval);
    let mut holding = false;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                match services.store.try_lease(SWEEP_LEASE, lease_ms).await {
                    Ok(held) => {
                        if held != holding {
                            tracing::info!(held, "the background sweep's lease changed hands");
                        }
                        holding = held;
                    }
                    Err(e) => {
                        tracing::warn!(error = ?e, "taking the sweep lease failed; will retry");
                        holding = false;
                    }
                }
                if !holding {
                    continue;
                }
                services.metrics.sweep();
                match services.kms.sweep_deletions().await {
                    Ok(deleted) => services.metrics.keys_deleted(deleted),
                    Err(e) => tracing::warn!(error = ?e, "scheduled key deletion failed; will retry"),
                }
                if let Err(e) = services.kms.sweep_rotations().await {
                    tracing::warn!(error = ?e, "scheduled key rotation failed; will retry");
                }
                if let Err(e) = services.kms.sweep_import_expiry().await {
                    tracing::warn!(error = ?e, "deleting expired imported key material failed; will retry");
                }
                if let Err(e) = services.secrets.sweep_deletions().await {
                    tracing::warn!(error = ?e, "scheduled secret deletion failed; will retry");
                }
                if let Err(e) = services.secrets.sweep_rotations().await {
                    tracing::warn!(error = ?e, "starting scheduled secret rotations failed; will retry");
                }
                if let Err(e) = services.ssm.sweep_expirations().await {
                    tracing::warn!(error = ?e, "parameter expiration failed; will retry");
                }
                if let Err(e) = services.iam.sweep_sessions().await {
                    tracing::warn!(error = ?e, "sweeping expired STS sessions failed; will retry");
                }
                if let Some(cluster) = &services.cluster_audit {
                    match cluster.tick().await {
                        Ok(crate::audit::cluster::Tick::Appended(sequence)) => {
                            tracing::debug!(sequence, "appended a cluster audit digest");
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %format!("{e:#}"), "appending the cluster audit digest failed; will retry"),
                    }
                }
            }
            _ = stop.changed() => break,
        }
    }
    if holding && let Err(e) = services.store.release_lease(SWEEP_LEASE).await {
        tracing::warn!(error = ?e, "giving up the sweep lease failed; it expires on its own");
    }
}
