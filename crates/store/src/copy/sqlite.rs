//! The SQLite side of a copy: one connection, holding the database for the whole copy.

use std::path::Path;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::{CopyError, Kind, Row, Table, Value};
use crate::sqlite::{backend, migrations};

/// How long opening waits for a connection that is closing (a server that just stopped).
const BUSY: Duration = Duration::from_secs(5);

pub(super) struct SqliteSide {
    conn: Connection,
}

impl SqliteSide {
    /// Opens the source for the copy, in SQLite's exclusive locking mode and an exclusive
    /// transaction: no other connection may have the database open — a server running on
    /// the data directory holds its connections for its lifetime, so it is refused — and
    /// none can open it until the copy ends. The source is not changed.
    pub fn open_source(path: &Path) -> Result<Self, CopyError> {
        if !path.is_file() {
            return Err(CopyError::Missing {
                side: "source",
                location: path.display().to_string(),
            });
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(backend)?;
        conn.busy_timeout(BUSY).map_err(backend)?;
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(backend)?;
        conn.execute_batch("BEGIN EXCLUSIVE").map_err(|e| {
            if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                || e.sqlite_error_code() == Some(ErrorCode::DatabaseLocked)
            {
                CopyError::SourceInUse(format!(
                    "{} is open in another connection (a server running on its data directory?)",
                    path.display()
                ))
            } else {
                CopyError::Store(backend(e))
            }
        })?;
        let side = Self { conn };
        side.check_version("source")?;
        Ok(side)
    }

    /// Opens (creating it if needed) the target, brings its schema up to date and begins
    /// the transaction the copy is written in.
    pub fn open_target(path: &Path) -> Result<Self, CopyError> {
        let conn = Connection::open(path).map_err(backend)?;
        conn.busy_timeout(BUSY).map_err(backend)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(backend)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(backend)?;
        migrations::apply(&conn)?;
        conn.execute_batch("BEGIN EXCLUSIVE").map_err(backend)?;
        let side = Self { conn };
        side.check_version("target")?;
        Ok(side)
    }

    fn check_version(&self, side: &'static str) -> Result<(), CopyError> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(backend)?;
        let latest = migrations::latest();
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

    pub fn rows(&self, table: &Table) -> Result<Vec<Row>, CopyError> {
        let order = if table.ordered { " ORDER BY rowid" } else { "" };
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {} FROM {}{order}",
                table.column_list(),
                table.name
            ))
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| {
                table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, (_, kind))| read(r, i, *kind))
                    .collect::<rusqlite::Result<Row>>()
            })
            .map_err(backend)?
            .collect::<rusqlite::Result<Vec<Row>>>()
            .map_err(backend)?;
        Ok(rows)
    }

    pub fn count(&self, table: &Table) -> Result<i64, CopyError> {
        Ok(self
            .conn
            .query_row(&format!("SELECT COUNT(*) FROM {}", table.name), [], |r| {
                r.get(0)
            })
            .map_err(backend)?)
    }

    pub fn insert(&self, table: &Table, rows: &[Row]) -> Result<(), CopyError> {
        let placeholders = (1..=table.columns.len())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut stmt = self
            .conn
            .prepare(&format!(
                "INSERT INTO {} ({}) VALUES ({placeholders})",
                table.name,
                table.column_list()
            ))
            .map_err(backend)?;
        for row in rows {
            stmt.execute(rusqlite::params_from_iter(row.iter()))
                .map_err(backend)?;
        }
        Ok(())
    }

    /// Every `(table, column)` of the database.
    pub fn columns(&self) -> Result<Vec<(String, String)>, CopyError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT m.name, p.name FROM sqlite_master AS m, pragma_table_info(m.name) AS p \
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'",
            )
            .map_err(backend)?;
        let columns = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(backend)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(backend)?;
        Ok(columns)
    }

    /// Commits what was written (durably: `synchronous=FULL`) and starts a read transaction.
    pub fn commit_and_reread(&self) -> Result<(), CopyError> {
        self.conn.execute_batch("COMMIT; BEGIN").map_err(backend)?;
        Ok(())
    }

    /// Ends the open transaction without writing anything more and closes the database.
    pub fn finish(self) -> Result<(), CopyError> {
        if !self.conn.is_autocommit() {
            self.conn.execute_batch("ROLLBACK").map_err(backend)?;
        }
        self.conn.close().map_err(|(_, e)| backend(e))?;
        Ok(())
    }
}

fn read(row: &rusqlite::Row<'_>, i: usize, kind: Kind) -> rusqlite::Result<Value> {
    Ok(match kind {
        Kind::Text => row
            .get::<_, Option<String>>(i)?
            .map_or(Value::Null, Value::Text),
        Kind::Blob => row
            .get::<_, Option<Vec<u8>>>(i)?
            .map_or(Value::Null, Value::Blob),
        Kind::Int | Kind::Int32 => row
            .get::<_, Option<i64>>(i)?
            .map_or(Value::Null, Value::Int),
        Kind::Bool => row
            .get::<_, Option<i64>>(i)?
            .map_or(Value::Null, |v| Value::Bool(v != 0)),
    })
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        use rusqlite::types::Value as Owned;
        Ok(match self {
            Value::Null => ToSqlOutput::Owned(Owned::Null),
            Value::Int(i) => ToSqlOutput::Owned(Owned::Integer(*i)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Value::Bool(b) => ToSqlOutput::Owned(Owned::Integer(i64::from(*b))),
        })
    }
}
