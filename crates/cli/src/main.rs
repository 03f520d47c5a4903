//! `keyhold`: the server and its operator commands.

mod audit;
mod bench;
mod envelope;
mod migrate;
mod ops;
mod seal;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use keyhold_server::{Config, Server};

/// mimalloc instead of glibc's malloc: a request allocates and frees many small objects on
/// two to a few threads, where glibc's arena locking and consolidation showed up at ~8% of
/// a durable Decrypt's CPU (docs/performance.md). Zeroization of secrets does not depend on
/// the allocator: sensitive buffers are zeroized before they are freed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "keyhold",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("KEYHOLD_GIT_REV"), ")"),
    about = "Self-hosted key management and secrets, speaking the AWS KMS, Secrets Manager and SSM Parameter Store APIs"
)]
struct Cli {
    /// Log lines as human-readable text (the default) or JSON, one object per line.
    #[arg(
        long,
        global = true,
        env = "KEYHOLD_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server. Without a config file: dev mode (SQLite under ./keyhold-data, a
    /// generated root key file, any access key accepted).
    Serve {
        /// A TOML config file; it switches to strict mode unless it says `mode = "dev"`.
        #[arg(long, env = "KEYHOLD_CONFIG")]
        config: Option<PathBuf>,
        /// Address to listen on [default: 127.0.0.1:4566].
        #[arg(long, env = "KEYHOLD_LISTEN")]
        listen: Option<SocketAddr>,
        /// Data directory [default: ./keyhold-data].
        #[arg(long, env = "KEYHOLD_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Serve HTTPS with a generated local CA and certificate (for localhost, 127.0.0.1,
        /// ::1 and the listen address), kept in <data_dir>/tls and reused on later starts.
        /// Prints the CA file to use as AWS_CA_BUNDLE and the SHA-256 fingerprints.
        #[arg(long)]
        tls_self_signed: bool,
        /// A seed file (YAML, or JSON when it ends in .json) whose keys, aliases, secrets,
        /// parameters and IAM users are created at start unless they exist (docs/operations.md).
        #[arg(long, env = "KEYHOLD_SEED")]
        seed: Option<PathBuf>,
        /// Serve /metrics (Prometheus) and /health/* on this address as well [default: off].
        #[arg(long, env = "KEYHOLD_METRICS_LISTEN")]
        metrics_listen: Option<SocketAddr>,
    },
    /// Create the first administrator (IAM user `admin` with an `AdministratorAccess`
    /// inline policy) in the default account of a data directory, and print its access key
    /// once. Does nothing on a data directory that already has one.
    Init {
        /// The TOML config file of the server (data directory, seal, default account).
        #[arg(long, env = "KEYHOLD_CONFIG")]
        config: PathBuf,
        /// Data directory [default: the config file's].
        #[arg(long, env = "KEYHOLD_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Shamir seal: split a new root key into this many shares (at most 255).
        #[arg(long, requires = "threshold")]
        shares: Option<u8>,
        /// Shamir seal: how many shares unseal the server.
        #[arg(long, requires = "shares")]
        threshold: Option<u8>,
        /// Write the shares to DIR/share-<n>.txt (mode 0600) instead of printing them.
        #[arg(long, requires = "shares")]
        share_dir: Option<PathBuf>,
    },
    /// Enter one unseal share into the running server (from stdin when SHARE is omitted).
    Unseal {
        #[arg(long, env = "KEYHOLD_CONFIG")]
        config: PathBuf,
        share: Option<String>,
    },
    /// Seal the running server: it drops its domain key and every unsealed key, and refuses
    /// API calls until it is unsealed again.
    Seal {
        #[arg(long, env = "KEYHOLD_CONFIG")]
        config: PathBuf,
    },
    /// Show whether the running server is sealed and the unseal progress (exit status 2
    /// when sealed).
    Status {
        #[arg(long, env = "KEYHOLD_CONFIG")]
        config: PathBuf,
    },
    /// Shamir seal: make a new root key and share set from shares of the current set (read
    /// from stdin, one per line); only the domain key is re-sealed.
    Rekey {
        #[arg(long, env = "KEYHOLD_CONFIG")]
        config: PathBuf,
        #[arg(long)]
        shares: u8,
        #[arg(long)]
        threshold: u8,
        #[arg(long)]
        share_dir: Option<PathBuf>,
    },
    /// Load a server's hot path and report requests/s and latency.
    Bench(bench::BenchArgs),
    /// Encrypt or decrypt files and streams in the AWS Encryption SDK message format, with
    /// data keys from KMS (Keyhold or AWS: the standard AWS endpoint, region and
    /// credential settings apply). Exit codes: 0 ok, 1 I/O, 2 usage, 3 KMS refused or no
    /// usable key, 4 malformed or tampered message, 5 encryption context mismatch.
    #[command(subcommand)]
    Envelope(envelope::EnvelopeCommand),
    /// Verify or export the tamper-evident audit trail.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Ask a running server whether it is ready (GET /health/ready); exits non-zero if not.
    Health(ops::HealthArgs),
    /// Write a consistent online snapshot of a data directory's state and audit trail to
    /// one file (still sealed: the root key is never in it).
    Backup {
        #[command(flatten)]
        target: ops::DataDirArgs,
        /// The backup file to write (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a backup (hashes, audit trail, seal) and, if it holds, make it the data
    /// directory's state; the databases it replaces are kept aside. Stop the server first.
    /// Under a Shamir seal, the shares (at least the threshold) are read from stdin.
    Restore {
        #[command(flatten)]
        target: ops::DataDirArgs,
        /// The backup file.
        #[arg(long = "in", value_name = "FILE")]
        input: PathBuf,
    },
    /// Bring the store's schema up to date (`storage` in the config file or
    /// KEYHOLD_STORAGE; SQLite in the data directory by default) without serving.
    Migrate {
        #[arg(long, env = "KEYHOLD_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Copy a node's state into another, empty store (SQLite -> PostgreSQL, or back): every
    /// table, sealed blobs as they are, the audit anchor with them. Then verify it: row
    /// counts and digests per table, and the data directory's audit trail against the
    /// target's anchor. Stop the server first. Exits non-zero on any mismatch.
    MigrateStore(migrate::MigrateStoreArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // `keyhold envelope` is a filter in pipelines: only warnings on stderr, unless asked.
    let default_level = match cli.command {
        Command::Envelope(_) => "warn",
        _ => "info",
    };
    init_logs(cli.log_format, default_level);
    match cli.command {
        Command::Serve {
            config,
            listen,
            data_dir,
            tls_self_signed,
            seed,
            metrics_listen,
        } => {
            let mut cfg = Config::load(config.as_deref())?;
            if let Some(listen) = listen {
                cfg.listen = listen;
            }
            if let Some(dir) = data_dir {
                cfg.data_dir = dir;
            }
            if let Some(seed) = seed {
                cfg.seed = Some(seed);
            }
            if let Some(addr) = metrics_listen {
                cfg.metrics_listen = Some(addr);
            }
            if tls_self_signed {
                use_self_signed(&mut cfg)?;
            }
            serve(cfg)
        }
        Command::Init {
            config,
            data_dir,
            shares,
            threshold,
            share_dir,
        } => {
            let mut cfg = Config::load(Some(&config))?;
            if let Some(dir) = data_dir {
                cfg.data_dir = dir;
            }
            match (shares, threshold) {
                (Some(shares), Some(threshold)) => {
                    seal::init_shamir(&cfg, shares, threshold, share_dir.as_deref())
                }
                _ => init(cfg),
            }
        }
        Command::Unseal { config, share } => seal::unseal(&Config::load(Some(&config))?, share),
        Command::Seal { config } => seal::seal(&Config::load(Some(&config))?),
        Command::Status { config } => seal::status(&Config::load(Some(&config))?),
        Command::Rekey {
            config,
            shares,
            threshold,
            share_dir,
        } => seal::rekey(&Config::load(Some(&config))?, shares, threshold, share_dir),
        Command::Audit(command) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(audit::run(command))
        }
        Command::Envelope(command) => {
            let code = current_thread()?.block_on(envelope::run(command));
            std::process::exit(code)
        }
        Command::Health(args) => current_thread()?.block_on(ops::health(args)),
        Command::Backup { target, out } => current_thread()?.block_on(ops::backup(target, out)),
        Command::Restore { target, input } => {
            current_thread()?.block_on(ops::restore(target, input))
        }
        Command::Migrate { config } => migrate::run(&Config::load(config.as_deref())?),
        Command::MigrateStore(args) => migrate::run_store(args),
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "keyhold", &mut std::io::stdout());
            Ok(())
        }
        Command::Bench(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(bench::run(args))
        }
    }
}

/// Logs to stderr: text (coloured on a terminal) or JSON lines. A request's lines carry its
/// request id (the `request` span).
fn init_logs(format: LogFormat, default_level: &str) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEYHOLD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

fn current_thread() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn serve(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let mode = config.mode;
        let mut server = Server::bind(config).await?;
        if let Some(admin) = server.take_admin_credentials() {
            print_admin(&admin);
        }
        let addr = server.local_addr()?;
        #[cfg(unix)]
        if let Some(tls) = server.tls_reload() {
            reload_on_sighup(tls)?;
        }
        let scheme = if server.tls_reload().is_some() {
            "https"
        } else {
            "http"
        };
        tracing::info!(%addr, ?mode, scheme, "keyhold is serving");
        server.serve(shutdown_signal()).await?;
        tracing::info!("keyhold stopped");
        Ok(())
    })
}

/// `--tls-self-signed`: creates (or reuses) a local CA and server certificate under the
/// data directory and serves with them; prints what a client needs to trust them.
fn use_self_signed(config: &mut Config) -> anyhow::Result<()> {
    if config.tls.is_some() {
        anyhow::bail!(
            "--tls-self-signed and tls_cert/tls_key in the config file exclude each other"
        );
    }
    let dir = config.data_dir.join("tls");
    let generated = keyhold_server::transport::tls::self_signed(&dir, &[config.listen.ip()])?;
    let ca = std::path::absolute(&generated.ca_cert).unwrap_or(generated.ca_cert.clone());
    println!(
        "Keyhold serves HTTPS with a {} local CA and certificate (localhost, 127.0.0.1, ::1).\n\
         \x20 CA certificate:       {}\n\
         \x20 CA SHA-256:           {}\n\
         \x20 server SHA-256:       {}\n\
         Trust it with:  export AWS_CA_BUNDLE={}\n",
        if generated.created { "new" } else { "reused" },
        ca.display(),
        generated.ca_fingerprint,
        generated.cert_fingerprint,
        ca.display(),
    );
    config.tls = Some(generated.files);
    Ok(())
}

/// Re-reads the TLS certificate files on every SIGHUP; a failed reload keeps the current
/// certificate.
#[cfg(unix)]
fn reload_on_sighup(tls: keyhold_server::transport::tls::TlsReload) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            if let Err(e) = tls.reload() {
                tracing::error!(
                    error = format!("{e:#}"),
                    "TLS reload failed; keeping the current certificate"
                );
            }
        }
    });
    Ok(())
}

/// `keyhold init`: creates the administrator once and prints its credentials.
fn init(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match runtime.block_on(keyhold_server::initialize(&config))? {
        Some(admin) => {
            print_admin(&admin);
            Ok(())
        }
        None => anyhow::bail!(
            "{} already has an administrator; its credentials were shown once, when it was created",
            config.data_dir.display()
        ),
    }
}

/// Prints the bootstrap administrator's credentials: the only time they are shown.
pub(crate) fn print_admin(admin: &keyhold_server::iam::bootstrap::AdminCredentials) {
    println!(
        "Keyhold created the administrator {}.\n\
         Its credentials are shown this once and never again; store them now:\n\n\
         \x20 aws_access_key_id     = {}\n\
         \x20 aws_secret_access_key = {}\n",
        admin.user_arn,
        admin.access_key_id,
        admin.secret_access_key.as_str()
    );
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutting down");
}
