//! Operator commands: `keyhold health`, `keyhold backup`, `keyhold restore`,
//! `keyhold completions` (docs/operations.md).

use std::path::PathBuf;

use anyhow::{Context, bail};
use keyhold_server::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    /// The server's (or its metrics listener's) base URL; plain HTTP.
    #[arg(long, env = "KEYHOLD_URL", default_value = "http://127.0.0.1:4566")]
    url: String,
}

#[derive(Debug, clap::Args)]
pub struct DataDirArgs {
    /// The server's TOML config file (data directory, seal).
    #[arg(long, env = "KEYHOLD_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory [default: the config file's, or ./keyhold-data].
    #[arg(long, env = "KEYHOLD_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

impl DataDirArgs {
    /// The configuration of a server whose store is SQLite in its data directory: backup
    /// and restore do not cover a PostgreSQL store yet.
    fn sqlite_config(&self) -> anyhow::Result<Config> {
        let config = self.config()?;
        if let Some(storage) = &config.storage {
            bail!(
                "the store is in PostgreSQL ({storage:?}): back it up with the database's own tools \
                 (pg_dump), and the data directory's audit/ with it; `keyhold backup` and \
                 `restore` cover the SQLite store only (docs/storage.md)"
            );
        }
        Ok(config)
    }

    fn config(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        Ok(config)
    }
}

/// `keyhold health`: the server's readiness, as `GET /health/ready` answers it. Exits
/// non-zero when the server is not ready or does not answer.
pub async fn health(args: HealthArgs) -> anyhow::Result<()> {
    let rest = args
        .url
        .strip_prefix("http://")
        .context("--url must be a plain http:// URL (for HTTPS: curl https://.../health/ready)")?;
    let host = rest.split('/').next().unwrap_or(rest);
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .with_context(|| format!("connecting to {host}"))?;
    let request =
        format!("GET /health/ready HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).unwrap_or("");
    let body: serde_json::Value =
        serde_json::from_str(body.trim()).context("the answer is not JSON")?;
    println!("{}", serde_json::to_string_pretty(&body)?);
    if status != "200" {
        bail!("the server is not ready (HTTP {status})");
    }
    Ok(())
}

/// `keyhold backup --out FILE`.
pub async fn backup(args: DataDirArgs, out: PathBuf) -> anyhow::Result<()> {
    let config = args.sqlite_config()?;
    let summary = keyhold_server::ops::backup::backup(&config.data_dir, &out).await?;
    for (name, len) in summary.members {
        println!("{name}: {len} bytes");
    }
    println!(
        "backup written to {} (sealed: keep the root key or shares separately)",
        out.display()
    );
    Ok(())
}

/// `keyhold restore --in FILE`; under a Shamir seal the shares come from stdin.
pub async fn restore(args: DataDirArgs, input: PathBuf) -> anyhow::Result<()> {
    let config = args.sqlite_config()?;
    let shares = match config.seal {
        Some(keyhold_server::config::SealConfig::Shamir) => {
            crate::seal::read_shares("Enter the backup's Shamir shares (at least its threshold)")?
        }
        _ => Vec::new(),
    };
    let restored = keyhold_server::ops::backup::restore(&config, &input, &shares).await?;
    println!(
        "restored {} into {}: audit trail verified ({} events), seal opened",
        input.display(),
        config.data_dir.display(),
        restored.audit_events
    );
    if let Some(previous) = restored.previous {
        println!("the databases it replaced are in {}", previous.display());
    }
    Ok(())
}
