//! Moving a node's state from one store to another (`keyhold migrate-store`): every row of
//! every table, sealed blobs byte for byte — nothing is unsealed, no root key is needed —
//! then a check that the target holds exactly what the source held.
//!
//! - [`TABLES`] describes each table once: its columns with their types, in the order of
//!   the foreign keys between tables. One generic row copy reads a table from either
//!   backend ([`sqlite`], [`postgres`]) into [`Value`]s and writes them to the other, so
//!   SQLite → PostgreSQL and PostgreSQL → SQLite are the same code.
//! - The source is read in one snapshot (SQLite: an exclusive lock, which also refuses a
//!   data directory a server has open; PostgreSQL: one `REPEATABLE READ` transaction, and a
//!   refusal while a node holds a background lease). The target is written in one
//!   transaction, only if every table is empty after its migrations are applied.
//! - Each table's schema is checked against [`TABLES`] on both sides before anything is
//!   written: a column or table this list does not know is an error, not a silent loss.
//! - Verification ([`CopyReport`]): per table, the row count and a SHA-256 over the rows
//!   (in a canonical order) of the source snapshot and of the target as committed.
//!
//! The audit trail's events are not in the store (they are the data directory's segment
//! log, [`crate::segment`]); its anchor is a `meta` row and moves with the table, and the
//! cluster digest chain (`audit_cluster_digests`) moves as it is. The nodes' shared lookup
//! index ([`crate::audit_lookup`]) is not copied: each node republishes its trail into the
//! store it runs on.

mod postgres;
mod sqlite;

use std::fmt;
use std::path::PathBuf;

use crate::StoreError;

/// A store to copy from or to.
#[derive(Clone)]
pub enum Location {
    /// A SQLite store: the database file (`<data_dir>/keyhold.db`).
    Sqlite(PathBuf),
    /// A PostgreSQL store: its connection URL.
    Postgres(String),
}

impl Location {
    /// Parses a storage location: `postgres://...` (or `postgresql://...`), `sqlite:DIR`, or
    /// a data directory's path (its `keyhold.db`).
    pub fn parse(text: &str) -> Result<Self, CopyError> {
        let text = text.trim();
        if crate::is_postgres_url(text) {
            crate::parse_postgres_url(text)?;
            return Ok(Self::Postgres(text.to_owned()));
        }
        let dir = text.strip_prefix("sqlite:").unwrap_or(text);
        if dir.is_empty() || text.contains("://") {
            return Err(CopyError::Location(
                "a store is `sqlite:DIR` (a data directory) or a postgres:// URL".into(),
            ));
        }
        Ok(Self::Sqlite(PathBuf::from(dir).join("keyhold.db")))
    }

    /// A description without credentials: the SQLite file, or the PostgreSQL host, port,
    /// database and connection options.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite:{}", path.display()),
            Self::Postgres(url) => postgres::describe(url),
        }
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// What the copy changes on the way.
#[derive(Clone, Debug, Default)]
pub struct CopyOptions {
    /// `meta` rows renamed (from, to): the audit anchor of a node that gets a `node_id` on
    /// the target (`audit.anchor` → `audit.anchor.NODE`) or loses it.
    pub rename_meta: Vec<(String, String)>,
}

/// Why a copy did not happen (or did not verify).
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{0}")]
    Location(String),
    /// A server has the source open (or a node holds a lease on it).
    #[error("the source store is in use: {0}; stop the server(s) first")]
    SourceInUse(String),
    #[error("the {side} store {location} does not exist")]
    Missing {
        side: &'static str,
        location: String,
    },
    /// The target holds rows: the copy writes only into an empty store.
    #[error(
        "the target store is not empty: table {table} has {rows} row(s); migrate-store copies only into an empty store (a new database or schema)"
    )]
    TargetNotEmpty { table: &'static str, rows: i64 },
    /// A schema other than the one this Keyhold copies.
    #[error("the {side} store's schema {problem}")]
    Schema { side: &'static str, problem: String },
    #[error("source and target are the same store")]
    SameStore,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The verification of one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableCheck {
    pub table: &'static str,
    pub source_rows: usize,
    pub target_rows: usize,
    /// SHA-256 (hex) over the table's rows, see [`table_digest`].
    pub source_digest: String,
    pub target_digest: String,
}

impl TableCheck {
    pub fn matches(&self) -> bool {
        self.source_rows == self.target_rows && self.source_digest == self.target_digest
    }
}

/// What [`copy_store`] copied and how the target compared.
#[derive(Clone, Debug)]
pub struct CopyReport {
    pub source: String,
    pub target: String,
    pub tables: Vec<TableCheck>,
}

impl CopyReport {
    /// Whether every table of the target matches the source.
    pub fn ok(&self) -> bool {
        self.tables.iter().all(TableCheck::matches)
    }

    pub fn rows(&self) -> usize {
        self.tables.iter().map(|t| t.source_rows).sum()
    }
}

impl fmt::Display for CopyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "from {}", self.source)?;
        writeln!(f, "to   {}", self.target)?;
        writeln!(
            f,
            "{:<28} {:>10} {:>10}  {:<16}  check",
            "table", "source", "target", "sha256"
        )?;
        for t in &self.tables {
            let digest = t.source_digest.get(..16).unwrap_or(&t.source_digest);
            let verdict = if t.matches() {
                "ok".to_owned()
            } else {
                format!("MISMATCH (target sha256 {})", t.target_digest)
            };
            writeln!(
                f,
                "{:<28} {:>10} {:>10}  {digest:<16}  {verdict}",
                t.table, t.source_rows, t.target_rows
            )?;
        }
        write!(
            f,
            "{} rows in {} tables: {}",
            self.rows(),
            self.tables.len(),
            if self.ok() {
                "copied and verified"
            } else {
                "the copy does NOT match"
            }
        )
    }
}

/// A column's type, as both backends store it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    Blob,
    /// SQLite INTEGER, PostgreSQL BIGINT.
    Int,
    /// SQLite INTEGER, PostgreSQL INTEGER.
    Int32,
    /// SQLite INTEGER 0/1, PostgreSQL BOOLEAN.
    Bool,
}

/// One table of state.
pub(crate) struct Table {
    pub name: &'static str,
    pub columns: &'static [(&'static str, Kind)],
    /// The order rows were inserted in is part of the state (a key's materials are read
    /// in `creation_ms` order, ties broken by insertion: SQLite's `rowid`, PostgreSQL's
    /// `seq`). Such tables are copied and digested in that order; the others are digested
    /// in the order of their encoded rows.
    pub ordered: bool,
}

impl Table {
    pub fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

use Kind::{Blob, Bool, Int, Int32, Text};

/// Every table of state, parents before the tables whose foreign keys name them. Tables
/// that are not state are left out: PostgreSQL's `keyhold_schema_version` (each side has
/// its own migrations) and `keyhold_leases` (held by running nodes), and its `seq` columns
/// (assigned again, in the copy's order).
pub(crate) const TABLES: &[Table] = &[
    Table {
        name: "meta",
        columns: &[("name", Text), ("value", Blob)],
        ordered: false,
    },
    Table {
        name: "kms_keys",
        columns: &[
            ("key_id", Text),
            ("account", Text),
            ("region", Text),
            ("arn", Text),
            ("creation_ms", Int),
            ("description", Text),
            ("key_usage", Text),
            ("key_spec", Text),
            ("origin", Text),
            ("key_manager", Text),
            ("state", Text),
            ("deletion_ms", Int),
            ("policy", Text),
            ("current_material_id", Text),
            ("rotation_period_days", Int32),
            ("next_rotation_ms", Int),
            ("state_after_import", Text),
            ("multi_region_primary", Text),
        ],
        ordered: false,
    },
    Table {
        name: "kms_materials",
        columns: &[
            ("key_id", Text),
            ("material_id", Text),
            ("sealed", Blob),
            ("creation_ms", Int),
            ("rotation_type", Text),
        ],
        ordered: true,
    },
    Table {
        name: "kms_aliases",
        columns: &[
            ("account", Text),
            ("region", Text),
            ("name", Text),
            ("target_key_id", Text),
            ("creation_ms", Int),
            ("updated_ms", Int),
        ],
        ordered: false,
    },
    Table {
        name: "kms_tags",
        columns: &[("key_id", Text), ("tag_key", Text), ("tag_value", Text)],
        ordered: false,
    },
    Table {
        name: "kms_grants",
        columns: &[
            ("grant_id", Text),
            ("key_id", Text),
            ("name", Text),
            ("grantee_principal", Text),
            ("retiring_principal", Text),
            ("operations", Text),
            ("constraints", Text),
            ("issuing_account", Text),
            ("creation_ms", Int),
        ],
        ordered: false,
    },
    Table {
        name: "kms_imported_materials",
        columns: &[
            ("key_id", Text),
            ("material_id", Text),
            ("sealed", Blob),
            ("creation_ms", Int),
            ("expiration_model", Text),
            ("valid_to_ms", Int),
            ("description", Text),
            ("pending_rotation", Bool),
            ("rotation_type", Text),
            ("rotation_ms", Int),
        ],
        ordered: true,
    },
    Table {
        name: "kms_import_tokens",
        columns: &[
            ("token_sha256", Blob),
            ("key_id", Text),
            ("wrapping_key_spec", Text),
            ("wrapping_algorithm", Text),
            ("created_ms", Int),
            ("expires_ms", Int),
            ("sealed_private_key", Blob),
        ],
        ordered: false,
    },
    Table {
        name: "kms_custom_key_stores",
        columns: &[
            ("id", Text),
            ("account", Text),
            ("region", Text),
            ("name", Text),
            ("store_type", Text),
            ("cluster_id", Text),
            ("trust_anchor", Text),
            ("sealed_password", Blob),
            ("connection_state", Text),
            ("connection_error", Text),
            ("creation_ms", Int),
        ],
        ordered: false,
    },
    Table {
        name: "kms_custom_key_store_keys",
        columns: &[("key_id", Text), ("custom_key_store_id", Text)],
        ordered: false,
    },
    Table {
        name: "sm_secrets",
        columns: &[
            ("arn", Text),
            ("account", Text),
            ("region", Text),
            ("name", Text),
            ("created_ms", Int),
            ("deletion_ms", Int),
            ("meta", Text),
            ("revision", Int),
        ],
        ordered: false,
    },
    Table {
        name: "sm_versions",
        columns: &[
            ("secret_arn", Text),
            ("version_id", Text),
            ("created_ms", Int),
            ("last_accessed_ms", Int),
            ("kms_key_id", Text),
            ("kms_key_arn", Text),
            ("data_key", Blob),
            ("sealed_value", Blob),
        ],
        ordered: false,
    },
    Table {
        name: "ssm_params",
        columns: &[
            ("arn", Text),
            ("account", Text),
            ("region", Text),
            ("name", Text),
            ("created_ms", Int),
            ("expires_ms", Int),
            ("meta", Text),
            ("revision", Int),
        ],
        ordered: false,
    },
    Table {
        name: "ssm_versions",
        columns: &[
            ("param_arn", Text),
            ("version", Int),
            ("modified_ms", Int),
            ("value", Blob),
            ("meta", Text),
        ],
        ordered: false,
    },
    Table {
        name: "iam_users",
        columns: &[
            ("user_id", Text),
            ("account", Text),
            ("name", Text),
            ("name_key", Text),
            ("path", Text),
            ("created_ms", Int),
            ("meta", Text),
        ],
        ordered: false,
    },
    Table {
        name: "iam_roles",
        columns: &[
            ("role_id", Text),
            ("account", Text),
            ("name", Text),
            ("name_key", Text),
            ("path", Text),
            ("created_ms", Int),
            ("trust_policy", Text),
            ("meta", Text),
        ],
        ordered: false,
    },
    Table {
        name: "iam_access_keys",
        columns: &[
            ("access_key_id", Text),
            ("account", Text),
            ("user_id", Text),
            ("status", Text),
            ("created_ms", Int),
            ("sealed_secret", Blob),
        ],
        ordered: false,
    },
    Table {
        name: "iam_policies",
        columns: &[
            ("owner_id", Text),
            ("account", Text),
            ("name", Text),
            ("document", Text),
        ],
        ordered: false,
    },
    Table {
        name: "iam_sessions",
        columns: &[
            ("access_key_id", Text),
            ("account", Text),
            ("owner_id", Text),
            ("created_ms", Int),
            ("expires_ms", Int),
            ("token_sha256", Blob),
            ("sealed_secret", Blob),
            ("meta", Text),
        ],
        ordered: false,
    },
    Table {
        name: "iam_retired_keys",
        columns: &[("access_key_id", Text), ("retired_ms", Int)],
        ordered: false,
    },
    Table {
        name: "audit_cluster_digests",
        columns: &[
            ("seq", Int),
            ("time_ms", Int),
            ("document", Text),
            ("signature", Blob),
        ],
        ordered: false,
    },
];

/// PostgreSQL's tables that are not state (see [`TABLES`]): the schema version, the
/// leases, and the nodes' shared lookup index (derived from the nodes' trails, which are
/// not in the store either: each node publishes its own trail into the store it runs on,
/// from the start when that store has none of it, so a copy would only hold rows the target
/// rebuilds — or, between SQLite and PostgreSQL, rows one side has no table for).
pub(crate) const PG_ONLY_TABLES: &[&str] = &[
    "keyhold_schema_version",
    "keyhold_leases",
    "audit_lookup_events",
    "audit_lookup_resources",
    "audit_lookup_nodes",
];
/// PostgreSQL's columns that are not state: the insertion order of ordered tables.
pub(crate) const PG_ONLY_COLUMNS: &[(&str, &str)] =
    &[("kms_materials", "seq"), ("kms_imported_materials", "seq")];

/// One stored value, as both backends give it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
    Bool(bool),
}

pub(crate) type Row = Vec<Value>;

/// SHA-256 (hex) over a table's rows: each row encoded as its values (a type tag and the
/// length-prefixed bytes of each), the rows length-prefixed, in insertion order for an
/// ordered table and in byte order of their encodings otherwise (which neither backend's
/// collation influences).
pub(crate) fn table_digest(table: &Table, rows: &[Row]) -> String {
    let mut encoded: Vec<Vec<u8>> = rows.iter().map(|r| encode_row(r)).collect();
    if !table.ordered {
        encoded.sort_unstable();
    }
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for row in &encoded {
        context.update(&(row.len() as u64).to_be_bytes());
        context.update(row);
    }
    context
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn encode_row(row: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for value in row {
        let (tag, bytes): (u8, std::borrow::Cow<'_, [u8]>) = match value {
            Value::Null => (0, (&[][..]).into()),
            Value::Int(i) => (1, i.to_be_bytes().to_vec().into()),
            Value::Text(s) => (2, s.as_bytes().into()),
            Value::Blob(b) => (3, b.as_slice().into()),
            Value::Bool(b) => (4, vec![u8::from(*b)].into()),
        };
        out.push(tag);
        out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

/// One side of a copy, opened for it.
enum Side {
    Sqlite(sqlite::SqliteSide),
    Postgres(postgres::PgSide),
}

impl Side {
    async fn rows(&mut self, table: &Table) -> Result<Vec<Row>, CopyError> {
        match self {
            Self::Sqlite(s) => s.rows(table),
            Self::Postgres(p) => p.rows(table).await,
        }
    }

    async fn count(&mut self, table: &Table) -> Result<i64, CopyError> {
        match self {
            Self::Sqlite(s) => s.count(table),
            Self::Postgres(p) => p.count(table).await,
        }
    }

    async fn insert(&mut self, table: &Table, rows: &[Row]) -> Result<(), CopyError> {
        match self {
            Self::Sqlite(s) => s.insert(table, rows),
            Self::Postgres(p) => p.insert(table, rows).await,
        }
    }

    async fn check_schema(&mut self, side: &'static str) -> Result<(), CopyError> {
        let columns = match self {
            Self::Sqlite(s) => s.columns()?,
            Self::Postgres(p) => p.columns().await?,
        };
        compare_schema(side, &columns)
    }

    /// Commits the target's writes (or ends the source's snapshot), then opens a new read
    /// snapshot.
    async fn commit_and_reread(&mut self) -> Result<(), CopyError> {
        match self {
            Self::Sqlite(s) => s.commit_and_reread(),
            Self::Postgres(p) => p.commit_and_reread().await,
        }
    }

    async fn finish(self) -> Result<(), CopyError> {
        match self {
            Self::Sqlite(s) => s.finish(),
            Self::Postgres(p) => p.finish().await,
        }
    }
}

/// Checks the tables and columns a store has (`(table, column)` pairs, whatever order)
/// against [`TABLES`]: a column or a table missing on either side, or one this Keyhold
/// does not know, stops the copy before anything is written.
fn compare_schema(side: &'static str, found: &[(String, String)]) -> Result<(), CopyError> {
    let schema_error = |problem: String| CopyError::Schema { side, problem };
    for table in TABLES {
        for (column, _) in table.columns {
            if !found.iter().any(|(t, c)| t == table.name && c == column) {
                return Err(schema_error(format!(
                    "lacks the column {}.{column} (run `keyhold migrate` on it first)",
                    table.name
                )));
            }
        }
    }
    for (t, c) in found {
        let known = TABLES
            .iter()
            .find(|table| table.name == t)
            .is_some_and(|table| table.columns.iter().any(|(name, _)| name == c));
        let ignored = PG_ONLY_TABLES.contains(&t.as_str())
            || PG_ONLY_COLUMNS.contains(&(t.as_str(), c.as_str()));
        if !known && !ignored {
            return Err(schema_error(format!(
                "has the column {t}.{c}, which this Keyhold does not copy (a newer Keyhold's schema?)"
            )));
        }
    }
    Ok(())
}

/// Copies every table of `source` into the empty store `target` (its migrations applied
/// first) and verifies the result. The target is written in one transaction: a copy that
/// fails leaves it empty. A report that does not match means the committed target differs
/// from the source snapshot (drop it before trying again).
pub async fn copy_store(
    source: &Location,
    target: &Location,
    options: &CopyOptions,
) -> Result<CopyReport, CopyError> {
    if same_store(source, target) {
        return Err(CopyError::SameStore);
    }
    let mut src = match source {
        Location::Sqlite(path) => Side::Sqlite(sqlite::SqliteSide::open_source(path)?),
        Location::Postgres(url) => Side::Postgres(postgres::PgSide::open_source(url).await?),
    };
    src.check_schema("source").await?;
    let mut dst = match target {
        Location::Sqlite(path) => Side::Sqlite(sqlite::SqliteSide::open_target(path)?),
        Location::Postgres(url) => Side::Postgres(postgres::PgSide::open_target(url).await?),
    };
    dst.check_schema("target").await?;
    for table in TABLES {
        let rows = dst.count(table).await?;
        if rows > 0 {
            return Err(CopyError::TargetNotEmpty {
                table: table.name,
                rows,
            });
        }
    }
    let mut checks = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let mut rows = src.rows(table).await?;
        if table.name == "meta" {
            rename_meta(&mut rows, &options.rename_meta);
        }
        dst.insert(table, &rows).await?;
        checks.push(TableCheck {
            table: table.name,
            source_rows: rows.len(),
            target_rows: 0,
            source_digest: table_digest(table, &rows),
            target_digest: String::new(),
        });
    }
    dst.commit_and_reread().await?;
    for (table, check) in TABLES.iter().zip(checks.iter_mut()) {
        let rows = dst.rows(table).await?;
        check.target_rows = rows.len();
        check.target_digest = table_digest(table, &rows);
    }
    dst.finish().await?;
    src.finish().await?;
    Ok(CopyReport {
        source: source.describe(),
        target: target.describe(),
        tables: checks,
    })
}

fn rename_meta(rows: &mut [Row], renames: &[(String, String)]) {
    for row in rows {
        if let Some(Value::Text(name)) = row.first_mut()
            && let Some((_, to)) = renames.iter().find(|(from, _)| from == name)
        {
            *name = to.clone();
        }
    }
}

fn same_store(a: &Location, b: &Location) -> bool {
    match (a, b) {
        (Location::Sqlite(a), Location::Sqlite(b)) => {
            a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
        }
        (Location::Postgres(a), Location::Postgres(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The table list covers the SQLite schema exactly: a migration that adds a table or a
    /// column must add it to [`TABLES`] too, or `migrate-store` would drop it.
    #[test]
    fn the_table_list_is_the_sqlite_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyhold.db");
        let side = sqlite::SqliteSide::open_target(&path).unwrap();
        let columns = side.columns().unwrap();
        compare_schema("target", &columns).unwrap();
        side.finish().unwrap();
    }

    #[test]
    fn an_unknown_column_stops_the_copy() {
        let mut columns: Vec<(String, String)> = TABLES
            .iter()
            .flat_map(|t| {
                t.columns
                    .iter()
                    .map(|(c, _)| (t.name.to_owned(), (*c).to_owned()))
            })
            .collect();
        compare_schema("source", &columns).unwrap();
        columns.push(("kms_keys".into(), "new_column".into()));
        let error = compare_schema("source", &columns).unwrap_err();
        assert!(error.to_string().contains("kms_keys.new_column"), "{error}");
        columns.pop();
        columns.retain(|(t, c)| !(t == "sm_versions" && c == "data_key"));
        let error = compare_schema("source", &columns).unwrap_err();
        assert!(
            error.to_string().contains("sm_versions.data_key"),
            "{error}"
        );
    }

    #[test]
    fn digests_see_every_value_and_the_order_of_ordered_tables_only() {
        let meta = &TABLES[0];
        let materials = TABLES.iter().find(|t| t.name == "kms_materials").unwrap();
        let a = vec![Value::Text("a".into()), Value::Blob(vec![1, 2])];
        let b = vec![Value::Text("b".into()), Value::Null];
        let ab = table_digest(meta, &[a.clone(), b.clone()]);
        assert_eq!(ab, table_digest(meta, &[b.clone(), a.clone()]));
        assert_ne!(
            table_digest(materials, &[a.clone(), b.clone()]),
            table_digest(materials, &[b.clone(), a.clone()])
        );
        // Null, an empty blob and an empty text differ; so does a value moved between
        // columns.
        let empty_blob = vec![Value::Text("b".into()), Value::Blob(Vec::new())];
        let empty_text = vec![Value::Text("b".into()), Value::Text(String::new())];
        let digests = [
            table_digest(meta, &[b]),
            table_digest(meta, &[empty_blob]),
            table_digest(meta, &[empty_text]),
            table_digest(
                meta,
                &[vec![Value::Text("ab".into()), Value::Text(String::new())]],
            ),
            table_digest(
                meta,
                &[vec![Value::Text("a".into()), Value::Text("b".into())]],
            ),
        ];
        for (i, x) in digests.iter().enumerate() {
            for y in &digests[i + 1..] {
                assert_ne!(x, y);
            }
        }
    }

    #[test]
    fn locations_parse() {
        assert!(matches!(
            Location::parse("sqlite:/var/lib/keyhold").unwrap(),
            Location::Sqlite(p) if p == std::path::Path::new("/var/lib/keyhold/keyhold.db")
        ));
        assert!(matches!(
            Location::parse("./data").unwrap(),
            Location::Sqlite(p) if p == std::path::Path::new("./data/keyhold.db")
        ));
        let pg = Location::parse("postgres://u:secret@db:5433/keyhold").unwrap();
        assert!(matches!(&pg, Location::Postgres(_)));
        assert!(!pg.describe().contains("secret"), "{}", pg.describe());
        assert!(
            pg.describe().contains("db:5433/keyhold"),
            "{}",
            pg.describe()
        );
        assert!(Location::parse("mysql://x").is_err());
        assert!(Location::parse("sqlite:").is_err());
    }
}
