//! The audit trail in its first format, one SQLite file (WAL, `synchronous=FULL`): read
//! to convert an older data directory's trail into the segment log, and the anchor.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::backend;
use crate::audit::{AuditAnchor, AuditLog, AuditRow, DigestRow, PRUNE_RECORD};
use crate::{Result, StoreError};

const SCHEMA: &[&str] = &[
    // 1
    "CREATE TABLE audit_meta (name TEXT PRIMARY KEY, value BLOB NOT NULL) STRICT;
     CREATE TABLE audit_events (
        seq           INTEGER PRIMARY KEY,
        event_id      TEXT NOT NULL,
        account       TEXT NOT NULL,
        recipient     TEXT NOT NULL,
        region        TEXT NOT NULL,
        time_ms       INTEGER NOT NULL,
        event_name    TEXT NOT NULL,
        event_source  TEXT NOT NULL,
        read_only     INTEGER NOT NULL,
        username      TEXT,
        access_key_id TEXT,
        record        TEXT NOT NULL,
        hash          BLOB NOT NULL
     ) STRICT;
     CREATE INDEX audit_events_time ON audit_events (time_ms);
     CREATE INDEX audit_events_id ON audit_events (event_id);
     CREATE INDEX audit_events_name ON audit_events (event_name, seq);
     CREATE INDEX audit_events_account ON audit_events (account, region, seq);
     CREATE TABLE audit_resources (
        seq  INTEGER NOT NULL,
        type TEXT NOT NULL,
        name TEXT NOT NULL
     ) STRICT;
     CREATE INDEX audit_resources_seq ON audit_resources (seq);
     CREATE INDEX audit_resources_name ON audit_resources (name, seq);
     CREATE TABLE audit_digests (
        seq       INTEGER PRIMARY KEY,
        first_seq INTEGER NOT NULL,
        last_seq  INTEGER NOT NULL,
        time_ms   INTEGER NOT NULL,
        document  TEXT NOT NULL,
        signature BLOB NOT NULL
     ) STRICT;",
];

/// The audit trail of a data directory (`audit.db`).
pub struct SqliteAuditLog {
    conn: Connection,
}

impl SqliteAuditLog {
    /// Opens (creating if needed) the audit database for writing.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(backend)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(backend)?;
        migrate(&conn)?;
        Ok(Self { conn })
    }

    /// How long a write waits for a lock another connection holds before it fails.
    pub fn set_busy_timeout(&self, timeout: std::time::Duration) -> Result<()> {
        self.conn.busy_timeout(timeout).map_err(backend)
    }

    /// Opens an existing audit database without changing it (verification, export).
    pub fn open_read_only(path: &Path) -> Result<Self> {
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(backend)?;
        Ok(Self { conn })
    }
}

fn migrate(conn: &Connection) -> Result<()> {
    let current: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(backend)?;
    let current =
        usize::try_from(current).map_err(|_| StoreError::Corrupt("negative user_version"))?;
    if current > SCHEMA.len() {
        return Err(StoreError::Corrupt(
            "audit schema is newer than this Keyhold",
        ));
    }
    for (i, sql) in SCHEMA.iter().enumerate().skip(current) {
        conn.execute_batch(&format!(
            "BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        ))
        .map_err(backend)?;
    }
    Ok(())
}

const EVENT_COLUMNS: &str = "seq, event_id, time_ms, event_name, event_source, read_only, \
     username, access_key_id, record, hash, account, recipient, region";

fn event_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRow> {
    let hash: Vec<u8> = row.get(9)?;
    Ok(AuditRow {
        seq: row.get(0)?,
        event_id: row.get(1)?,
        time_ms: row.get(2)?,
        event_name: row.get(3)?,
        event_source: row.get(4)?,
        read_only: row.get(5)?,
        username: row.get(6)?,
        access_key_id: row.get(7)?,
        resources: Vec::new(),
        record: row.get(8)?,
        hash: hash.try_into().unwrap_or([0; 32]),
        account: row.get(10)?,
        recipient_account: row.get(11)?,
        region: row.get(12)?,
    })
}

fn digest_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<DigestRow> {
    Ok(DigestRow {
        seq: row.get(0)?,
        first_seq: row.get(1)?,
        last_seq: row.get(2)?,
        time_ms: row.get(3)?,
        document: row.get(4)?,
        signature: row.get(5)?,
    })
}

impl AuditLog for SqliteAuditLog {
    fn last_event(&mut self) -> Result<Option<AuditRow>> {
        self.conn
            .query_row(
                &format!("SELECT {EVENT_COLUMNS} FROM audit_events ORDER BY seq DESC LIMIT 1"),
                [],
                event_from_row,
            )
            .optional()
            .map_err(backend)
    }

    fn last_digest(&mut self) -> Result<Option<DigestRow>> {
        self.conn
            .query_row(
                "SELECT seq, first_seq, last_seq, time_ms, document, signature FROM audit_digests \
                 ORDER BY seq DESC LIMIT 1",
                [],
                digest_from_row,
            )
            .optional()
            .map_err(backend)
    }

    fn append(&mut self, events: &[AuditRow], digest: Option<&DigestRow>) -> Result<()> {
        let tx = self.conn.transaction().map_err(backend)?;
        {
            let mut insert = tx
                .prepare_cached(&format!(
                    "INSERT INTO audit_events ({EVENT_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
                ))
                .map_err(backend)?;
            let mut resource = tx
                .prepare_cached("INSERT INTO audit_resources (seq, type, name) VALUES (?1, ?2, ?3)")
                .map_err(backend)?;
            for e in events {
                insert
                    .execute(params![
                        e.seq,
                        e.event_id,
                        e.time_ms,
                        e.event_name,
                        e.event_source,
                        e.read_only,
                        e.username,
                        e.access_key_id,
                        e.record,
                        e.hash.as_slice(),
                        e.account,
                        e.recipient_account,
                        e.region
                    ])
                    .map_err(backend)?;
                for (kind, name) in &e.resources {
                    resource
                        .execute(params![e.seq, kind, name])
                        .map_err(backend)?;
                }
            }
            if let Some(d) = digest {
                tx.execute(
                    "INSERT INTO audit_digests (seq, first_seq, last_seq, time_ms, document, signature) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![d.seq, d.first_seq, d.last_seq, d.time_ms, d.document, d.signature],
                )
                .map_err(backend)?;
            }
        }
        tx.commit().map_err(backend)
    }

    fn events(&mut self, first: i64, last: i64) -> Result<Vec<AuditRow>> {
        let rows = {
            let mut stmt = self
                .conn
                .prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM audit_events WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq"
                ))
                .map_err(backend)?;
            stmt.query_map([first, last], event_from_row)
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend)?
        };
        Ok(rows)
    }

    fn events_after(&mut self, after: i64, limit: usize) -> Result<Vec<AuditRow>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM audit_events WHERE seq > ?1 ORDER BY seq LIMIT ?2"
            ))
            .map_err(backend)?;
        stmt.query_map([after, limit], event_from_row)
            .map_err(backend)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(backend)
    }

    fn digests(&mut self) -> Result<Vec<DigestRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, first_seq, last_seq, time_ms, document, signature FROM audit_digests ORDER BY seq",
            )
            .map_err(backend)?;
        stmt.query_map([], digest_from_row)
            .map_err(backend)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(backend)
    }

    fn digest(&mut self, seq: i64) -> Result<Option<DigestRow>> {
        self.conn
            .query_row(
                "SELECT seq, first_seq, last_seq, time_ms, document, signature FROM audit_digests \
                 WHERE seq = ?1",
                [seq],
                digest_from_row,
            )
            .optional()
            .map_err(backend)
    }

    fn get_meta(&mut self, name: &str) -> Result<Option<Vec<u8>>> {
        self.conn
            .query_row(
                "SELECT value FROM audit_meta WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)
    }

    fn put_meta(&mut self, name: &str, value: &[u8]) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO audit_meta (name, value) VALUES (?1, ?2) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                params![name, value],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn prune_before_digest(&mut self, keep_from_digest: i64, prune_record: &[u8]) -> Result<()> {
        let tx = self.conn.transaction().map_err(backend)?;
        let first: Option<i64> = tx
            .query_row(
                "SELECT first_seq FROM audit_digests WHERE seq = ?1",
                [keep_from_digest],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        let Some(first) = first else { return Ok(()) };
        tx.execute("DELETE FROM audit_resources WHERE seq < ?1", [first])
            .map_err(backend)?;
        tx.execute("DELETE FROM audit_events WHERE seq < ?1", [first])
            .map_err(backend)?;
        // The prune record takes the place of the pruned digests as the chain's anchor.
        tx.execute(
            "DELETE FROM audit_digests WHERE seq < ?1",
            [keep_from_digest],
        )
        .map_err(backend)?;
        tx.execute(
            "INSERT INTO audit_meta (name, value) VALUES (?1, ?2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            params![PRUNE_RECORD, prune_record],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)
    }
}

/// The trail's anchor in the key store's database (`keyhold.db`): one row of its `meta`
/// table, written through a connection of its own (the audit writer thread is synchronous).
pub struct SqliteAuditAnchor {
    conn: Connection,
}

/// The key store's meta entry that holds the audit trail's anchor.
const ANCHOR: &str = "audit.anchor";

impl SqliteAuditAnchor {
    /// Opens the anchor of the key store at `path` (which must exist: the key store creates
    /// its schema before the trail starts).
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
            .map_err(backend)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(backend)?;
        Ok(Self { conn })
    }

    /// Opens it without changing anything (verification).
    pub fn open_read_only(path: &Path) -> Result<Self> {
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(backend)?;
        Ok(Self { conn })
    }
}

impl AuditAnchor for SqliteAuditAnchor {
    fn load(&mut self) -> Result<Option<Vec<u8>>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE name = ?1", [ANCHOR], |r| {
                r.get(0)
            })
            .optional()
            .map_err(backend)
    }

    fn store(&mut self, value: &[u8]) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO meta (name, value) VALUES (?1, ?2) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                params![ANCHOR, value],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn clear(&mut self) -> Result<()> {
        self.conn
            .execute("DELETE FROM meta WHERE name = ?1", [ANCHOR])
            .map_err(backend)?;
        Ok(())
    }
}
