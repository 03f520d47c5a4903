//! The PostgreSQL side of a copy: one connection of its own (not a store's pool), one
//! transaction for the source's snapshot or the target's writes.

use std::time::Duration;

use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use super::{CopyError, Kind, Row, Table, Value};
use crate::postgres::pg;
use crate::{PgStore, StoreError, parse_postgres_url};

pub(super) struct PgSide {
    client: Client,
    driver: tokio::task::JoinHandle<()>,
}

/// The host, port, database and connection options of `url`, never its password.
pub(super) fn describe(url: &str) -> String {
    // The TLS parameters are read, not the files they name: a description never fails
    // for want of a CA bundle.
    let Ok((config, ..)) = crate::postgres::split_url(url) else {
        return "postgres://(unreadable URL)".to_owned();
    };
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".to_owned());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let database = config.get_dbname().unwrap_or("");
    match config.get_options() {
        Some(options) => format!("postgres://{host}:{port}/{database} (options: {options})"),
        None => format!("postgres://{host}:{port}/{database}"),
    }
}

impl PgSide {
    async fn connect(url: &str) -> Result<Self, CopyError> {
        let mut config = parse_postgres_url(url)?;
        let settings = config.config_mut();
        if settings.get_connect_timeout().is_none() {
            settings.connect_timeout(Duration::from_secs(10));
        }
        settings.application_name("keyhold-migrate-store");
        let (client, connection) = config.connect().await.map_err(pg)?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self { client, driver })
    }

    /// Opens the source: one read-only `REPEATABLE READ` transaction, so every table is read
    /// as of one moment. Refused while a node holds a background lease (a node running on
    /// it, or one that stopped without releasing it less than a lease ago).
    pub async fn open_source(url: &str) -> Result<Self, CopyError> {
        let side = Self::connect(url).await?;
        side.client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .map_err(pg)?;
        side.check_version("source").await?;
        let held = side
            .client
            .query(
                "SELECT name, holder, expires_ms - (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT \
                 FROM keyhold_leases \
                 WHERE expires_ms >= (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT",
                &[],
            )
            .await
            .map_err(pg)?;
        if let Some(lease) = held.first() {
            let name: String = lease.try_get(0).map_err(pg)?;
            let holder: String = lease.try_get(1).map_err(pg)?;
            let left: i64 = lease.try_get(2).map_err(pg)?;
            return Err(CopyError::SourceInUse(format!(
                "the node {holder} holds the lease {name} for {} more second(s)",
                left / 1000 + 1
            )));
        }
        Ok(side)
    }

    /// Opens the target: its migrations applied first (under the advisory lock), then one
    /// transaction for the copy.
    pub async fn open_target(url: &str) -> Result<Self, CopyError> {
        PgStore::migrate_url(url).await?;
        let side = Self::connect(url).await?;
        side.client.batch_execute("BEGIN").await.map_err(pg)?;
        side.check_version("target").await?;
        Ok(side)
    }

    async fn check_version(&self, side: &'static str) -> Result<(), CopyError> {
        let exists: bool = self
            .client
            .query_one(
                "SELECT to_regclass('keyhold_schema_version') IS NOT NULL",
                &[],
            )
            .await
            .map_err(pg)?
            .try_get(0)
            .map_err(pg)?;
        if !exists {
            return Err(CopyError::Schema {
                side,
                problem: "is missing (no keyhold_schema_version: not a Keyhold store, or another search_path)".into(),
            });
        }
        let version: i64 = self
            .client
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM keyhold_schema_version",
                &[],
            )
            .await
            .map_err(pg)?
            .try_get(0)
            .map_err(pg)?;
        let latest = PgStore::latest_schema_version();
        if usize::try_from(version).ok() != Some(latest) {
            return Err(CopyError::Schema {
                side,
                problem: format!(
                    "is at version {version}, this Keyhold's is {latest}: bring it up to date with `keyhold migrate` (or use the matching Keyhold)"
                ),
            });
        }
        Ok(())
    }

    pub async fn rows(&self, table: &Table) -> Result<Vec<Row>, CopyError> {
        let order = if table.ordered { " ORDER BY seq" } else { "" };
        let rows = self
            .client
            .query(
                &format!("SELECT {} FROM {}{order}", table.column_list(), table.name),
                &[],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| {
                table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, (_, kind))| read(r, i, *kind))
                    .collect::<Result<Row, CopyError>>()
            })
            .collect()
    }

    pub async fn count(&self, table: &Table) -> Result<i64, CopyError> {
        let row = self
            .client
            .query_one(&format!("SELECT COUNT(*) FROM {}", table.name), &[])
            .await
            .map_err(pg)?;
        Ok(row.try_get(0).map_err(pg)?)
    }

    pub async fn insert(&self, table: &Table, rows: &[Row]) -> Result<(), CopyError> {
        let placeholders = (1..=table.columns.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let stmt = self
            .client
            .prepare(&format!(
                "INSERT INTO {} ({}) VALUES ({placeholders})",
                table.name,
                table.column_list()
            ))
            .await
            .map_err(pg)?;
        for row in rows {
            let params = table
                .columns
                .iter()
                .zip(row)
                .map(|((_, kind), value)| param(*kind, value))
                .collect::<Result<Vec<_>, CopyError>>()?;
            let refs: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                .collect();
            self.client.execute(&stmt, &refs).await.map_err(pg)?;
        }
        Ok(())
    }

    /// Every `(table, column)` of the connection's schema (its `search_path`).
    pub async fn columns(&self) -> Result<Vec<(String, String)>, CopyError> {
        let rows = self
            .client
            .query(
                "SELECT table_name::TEXT, column_name::TEXT FROM information_schema.columns \
                 WHERE table_schema = current_schema()",
                &[],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| Ok((r.try_get(0).map_err(pg)?, r.try_get(1).map_err(pg)?)))
            .collect()
    }

    /// Commits what was written (durable on return with `synchronous_commit = on`) and
    /// starts a read-only snapshot of what was committed.
    pub async fn commit_and_reread(&self) -> Result<(), CopyError> {
        self.client.batch_execute("COMMIT").await.map_err(pg)?;
        self.client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .map_err(pg)?;
        Ok(())
    }

    /// Ends the open (read) transaction and closes the connection.
    pub async fn finish(self) -> Result<(), CopyError> {
        self.client.batch_execute("ROLLBACK").await.map_err(pg)?;
        drop(self.client);
        let _ = self.driver.await;
        Ok(())
    }
}

fn read(row: &tokio_postgres::Row, i: usize, kind: Kind) -> Result<Value, CopyError> {
    Ok(match kind {
        Kind::Text => row
            .try_get::<_, Option<String>>(i)
            .map_err(pg)?
            .map_or(Value::Null, Value::Text),
        Kind::Blob => row
            .try_get::<_, Option<Vec<u8>>>(i)
            .map_err(pg)?
            .map_or(Value::Null, Value::Blob),
        Kind::Int => row
            .try_get::<_, Option<i64>>(i)
            .map_err(pg)?
            .map_or(Value::Null, Value::Int),
        Kind::Int32 => row
            .try_get::<_, Option<i32>>(i)
            .map_err(pg)?
            .map_or(Value::Null, |v| Value::Int(i64::from(v))),
        Kind::Bool => row
            .try_get::<_, Option<bool>>(i)
            .map_err(pg)?
            .map_or(Value::Null, Value::Bool),
    })
}

/// `value` as a parameter for a column of `kind` (a NULL typed as the column is).
fn param(kind: Kind, value: &Value) -> Result<Box<dyn ToSql + Sync + Send>, CopyError> {
    Ok(match (kind, value) {
        (Kind::Text, Value::Null) => Box::new(None::<String>),
        (Kind::Blob, Value::Null) => Box::new(None::<Vec<u8>>),
        (Kind::Int, Value::Null) => Box::new(None::<i64>),
        (Kind::Int32, Value::Null) => Box::new(None::<i32>),
        (Kind::Bool, Value::Null) => Box::new(None::<bool>),
        (Kind::Text, Value::Text(s)) => Box::new(s.clone()),
        (Kind::Blob, Value::Blob(b)) => Box::new(b.clone()),
        (Kind::Int, Value::Int(i)) => Box::new(*i),
        (Kind::Int32, Value::Int(i)) => Box::new(
            i32::try_from(*i)
                .map_err(|_| StoreError::Corrupt("an INTEGER value out of PostgreSQL's range"))?,
        ),
        (Kind::Bool, Value::Bool(b)) => Box::new(*b),
        _ => {
            return Err(
                StoreError::Corrupt("a stored value of another type than its column's").into(),
            );
        }
    })
}
