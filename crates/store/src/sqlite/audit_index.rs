//! The audit trail's lookup index (`audit/index.db`): for every event of the segment log,
//! where its record is and the columns `LookupEvents` and `GetKeyLastUsage` filter on.
//!
//! The records themselves stay in the segments: a lookup finds locations here and reads
//! the records there. Per event the index writes the row (rowid = sequence) and three
//! B-tree entries: by event id, by event name, and one per resource by resource name —
//! the attributes a lookup can name and that no sequential scan answers cheaply. The other
//! attributes (user name, access key, source, read-only, resource type), the account and
//! Region, and the time range are checked on the rows met while walking the sequence
//! downwards from the newest (results are newest first, a page at a time).
//!
//! Every entry goes near the end of its B-tree, so a transaction dirties about the pages its
//! new entries fill, whatever the number of keys, secrets and parameters: ids are
//! version 7 UUIDs (see below), event names are few, and resource entries are ordered
//! first by the *bucket* of their sequence ([`BUCKET_SHIFT`]: 4,096 events) and only then
//! by name. Ordered by name alone, with 100,000 keys every event wrote a page of its own.
//! A lookup by resource name walks the buckets newest first, one B-tree seek each.
//!
//! An event id is kept as the 16 bytes of its UUID (a BLOB) when it is a UUID in canonical
//! form, as every id Keyhold writes is, and as text otherwise. Keyhold's ids are version 7
//! UUIDs, which sort by time: the id B-tree takes its inserts at its end.
//!
//! Derived, so a commit does not wait for the disk (WAL with `synchronous=NORMAL`): a crash
//! can lose its newest rows, which the indexer reads again from the segments at start. The
//! WAL and the database are synced at each checkpoint (every thousand pages or so), so that
//! the index's writes reach the disk a few megabytes at a time: with `synchronous=OFF` they
//! piled up in the page cache until the kernel wrote them back all at once 30 s later
//! (`vm.dirty_expire_centisecs`), and the audit segments' syncs queued behind that burst —
//! a 25–50 ms p99 for every request then.

use std::path::Path;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, params};

use super::backend;
use crate::audit::{AuditAttribute, AuditQuery, IndexEntry};
use crate::segment::Location;
use crate::{Result, StoreError};

/// The layout's version (`user_version`). Version 1 was the first index, a second copy of
/// every record; version 2 kept event ids as text; version 3 ordered resource entries by
/// name alone. An index of another version is rebuilt, not migrated.
const VERSION: i64 = 4;

/// Resource entries are grouped by `seq >> BUCKET_SHIFT`: 4,096 consecutive events share a
/// bucket, so the entries a transaction adds land in the newest bucket or two.
const BUCKET_SHIFT: u32 = 12;

fn bucket(seq: i64) -> i64 {
    seq >> BUCKET_SHIFT
}

const SCHEMA: &str = "
    CREATE TABLE events (
        seq           INTEGER PRIMARY KEY,
        segment       INTEGER NOT NULL,
        offset        INTEGER NOT NULL,
        time_ms       INTEGER NOT NULL,
        account       TEXT NOT NULL,
        recipient     TEXT NOT NULL,
        region        TEXT NOT NULL,
        event_id      ANY NOT NULL,
        event_name    TEXT NOT NULL,
        event_source  TEXT NOT NULL,
        read_only     INTEGER NOT NULL,
        username      TEXT,
        access_key_id TEXT
    ) STRICT;
    CREATE INDEX events_id ON events (event_id);
    CREATE INDEX events_name ON events (event_name, seq);
    CREATE TABLE resources (
        bucket INTEGER NOT NULL,
        name   TEXT NOT NULL,
        seq    INTEGER NOT NULL,
        type   TEXT NOT NULL,
        PRIMARY KEY (bucket, name, seq, type)
    ) STRICT, WITHOUT ROWID;";

/// The lookup index of one trail.
pub struct SqliteAuditIndex {
    conn: Connection,
}

/// One event a lookup found: its sequence and where its record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexHit {
    pub seq: i64,
    pub location: Location,
}

impl SqliteAuditIndex {
    /// Opens (creating if needed) the index at `path`; [`StoreError::OtherLayout`] if it holds
    /// another version's layout
    /// (the caller rebuilds it).
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(backend)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(backend)?;
        // 32 MiB of page cache: the id and name B-trees take inserts all over.
        conn.pragma_update(None, "cache_size", -32_768)
            .map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(backend)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(backend)?;
        match version {
            0 => conn
                .execute_batch(&format!(
                    "BEGIN; {SCHEMA} PRAGMA user_version = {VERSION}; COMMIT;"
                ))
                .map_err(backend)?,
            VERSION => {}
            _ => {
                return Err(StoreError::OtherLayout("the audit index"));
            }
        }
        Ok(Self { conn })
    }

    /// Adds entries, in one transaction. An event indexed already keeps its row: its record
    /// never moves (segments are only appended to, and removed whole), and `OR IGNORE`
    /// spares SQLite the statement journal `OR REPLACE` needs.
    pub fn add(&mut self, entries: &[IndexEntry]) -> Result<()> {
        let tx = self.conn.transaction().map_err(backend)?;
        insert_all(
            &tx,
            "events (seq, segment, offset, time_ms, account, recipient, region, event_id, \
             event_name, event_source, read_only, username, access_key_id)",
            13,
            entries,
            |stmt, at, e| {
                let offset = i64::try_from(e.location.offset).unwrap_or(i64::MAX);
                stmt.raw_bind_parameter(at, e.seq)?;
                stmt.raw_bind_parameter(at + 1, e.location.segment)?;
                stmt.raw_bind_parameter(at + 2, offset)?;
                stmt.raw_bind_parameter(at + 3, e.time_ms)?;
                stmt.raw_bind_parameter(at + 4, &e.account)?;
                stmt.raw_bind_parameter(at + 5, &e.recipient_account)?;
                stmt.raw_bind_parameter(at + 6, &e.region)?;
                stmt.raw_bind_parameter(at + 7, id_key(&e.event_id))?;
                stmt.raw_bind_parameter(at + 8, &e.event_name)?;
                stmt.raw_bind_parameter(at + 9, &e.event_source)?;
                stmt.raw_bind_parameter(at + 10, e.read_only)?;
                stmt.raw_bind_parameter(at + 11, &e.username)?;
                stmt.raw_bind_parameter(at + 12, &e.access_key_id)
            },
        )?;
        let resources: Vec<(i64, &str, &str)> = entries
            .iter()
            .flat_map(|e| {
                e.resources
                    .iter()
                    .map(|(kind, name)| (e.seq, name.as_str(), kind.as_str()))
            })
            .collect();
        insert_all(
            &tx,
            "resources (bucket, name, seq, type)",
            4,
            &resources,
            |stmt, at, &(seq, name, kind)| {
                stmt.raw_bind_parameter(at, bucket(seq))?;
                stmt.raw_bind_parameter(at + 1, name)?;
                stmt.raw_bind_parameter(at + 2, seq)?;
                stmt.raw_bind_parameter(at + 3, kind)
            },
        )?;
        tx.commit().map_err(backend)
    }

    /// The newest indexed event's sequence (0 when none is).
    pub fn indexed_through(&mut self) -> Result<i64> {
        self.conn
            .query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0))
            .map_err(backend)
    }

    /// Where the index says event `seq` is (to check the index against the log).
    pub fn location(&mut self, seq: i64) -> Result<Option<Location>> {
        use rusqlite::OptionalExtension as _;
        self.conn
            .query_row(
                "SELECT segment, offset FROM events WHERE seq = ?1",
                [seq],
                |r| location(r, 0),
            )
            .optional()
            .map_err(backend)
    }

    /// The oldest indexed event's sequence (0 when none is).
    pub fn indexed_from(&mut self) -> Result<i64> {
        self.conn
            .query_row("SELECT coalesce(min(seq), 0) FROM events", [], |r| r.get(0))
            .map_err(backend)
    }

    /// Drops the entries with `seq <= through` (retention), or every one (`i64::MAX`).
    pub fn forget_through(&mut self, through: i64) -> Result<()> {
        let tx = self.conn.transaction().map_err(backend)?;
        tx.execute("DELETE FROM events WHERE seq <= ?1", [through])
            .map_err(backend)?;
        tx.execute(
            "DELETE FROM resources WHERE bucket <= ?1 AND seq <= ?2",
            [bucket(through), through],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)
    }

    /// The events matching `q`, newest first: their sequences and where their records are.
    pub fn lookup(&mut self, q: &AuditQuery) -> Result<Vec<IndexHit>> {
        // Each attribute with a B-tree of its own is walked through it; the rest filter the
        // rows met walking the sequence downwards. Clauses are written only when they
        // apply, so that SQLite sees the index it can use.
        let (from, filter, order) = match q.attribute.as_ref().map(|(a, _)| a) {
            Some(AuditAttribute::ResourceName) => (
                "resources r JOIN events e ON e.seq = r.seq",
                "r.bucket = ?8 AND r.name = ?1",
                "r.seq",
            ),
            Some(AuditAttribute::ResourceType) => (
                "events e",
                "e.seq IN (SELECT seq FROM resources WHERE type = ?1)",
                "e.seq",
            ),
            Some(AuditAttribute::EventId) => ("events e", "e.event_id = ?1", "e.seq"),
            Some(AuditAttribute::EventName) => ("events e", "e.event_name = ?1", "e.seq"),
            Some(AuditAttribute::ReadOnly) => ("events e", "e.read_only = (?1 = 'true')", "e.seq"),
            Some(AuditAttribute::Username) => ("events e", "e.username = ?1", "e.seq"),
            Some(AuditAttribute::EventSource) => ("events e", "e.event_source = ?1", "e.seq"),
            Some(AuditAttribute::AccessKeyId) => ("events e", "e.access_key_id = ?1", "e.seq"),
            None => ("events e", "?1 IS NULL", "e.seq"),
        };
        let by_resource = matches!(q.attribute, Some((AuditAttribute::ResourceName, _)));
        // A lookup by resource walks the buckets between the oldest and the newest event.
        let span = if by_resource {
            let (oldest, newest) = (self.indexed_from()?, self.indexed_through()?);
            if newest == 0 {
                return Ok(Vec::new());
            }
            Some((oldest, newest))
        } else {
            None
        };
        let mut sql = format!(
            "SELECT e.seq, e.segment, e.offset FROM {from} WHERE {filter} \
             AND (e.account = ?2 OR e.recipient = ?2) AND e.region = ?3"
        );
        if !by_resource {
            sql.push_str(" AND ?8 IS NULL");
        }
        if q.page.is_some() {
            sql.push_str(&format!(" AND {order} < ?4"));
        } else {
            sql.push_str(" AND ?4 IS NULL");
        }
        if q.start_ms.is_some() {
            sql.push_str(" AND e.time_ms >= ?5");
        } else {
            sql.push_str(" AND ?5 IS NULL");
        }
        if q.end_ms.is_some() {
            sql.push_str(" AND e.time_ms <= ?6");
        } else {
            sql.push_str(" AND ?6 IS NULL");
        }
        sql.push_str(&format!(" ORDER BY {order} DESC LIMIT ?7"));
        let value = q.attribute.as_ref().map(|(attribute, v)| match attribute {
            AuditAttribute::EventId => id_key(v),
            _ => TextOrUuid::Text(v),
        });
        let mut stmt = self.conn.prepare_cached(&sql).map_err(backend)?;
        let mut page = |bucket: Option<i64>, limit: usize| {
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            stmt.query_map(
                params![
                    value, q.account, q.region, q.page, q.start_ms, q.end_ms, limit, bucket
                ],
                |r| {
                    Ok(IndexHit {
                        seq: r.get(0)?,
                        location: location(r, 1)?,
                    })
                },
            )
            .map_err(backend)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(backend)
        };
        let Some((oldest, newest)) = span else {
            return page(None, q.limit);
        };
        // By resource name: the buckets newest first, from the page's start (or the newest
        // event) down to the oldest event, until the page is full.
        let newest = q.page.map_or(newest, |start| newest.min(start - 1));
        let mut hits = Vec::new();
        let mut b = bucket(newest);
        while b >= bucket(oldest) && hits.len() < q.limit {
            hits.extend(page(Some(b), q.limit - hits.len())?);
            b -= 1;
        }
        Ok(hits)
    }
}

/// Rows per `INSERT` statement: one execution for many rows spares SQLite the per-statement
/// work (binding, stepping, resetting) that cost about as much as a row's B-tree inserts.
const ROWS_PER_INSERT: usize = 32;

/// Inserts `rows` into `table` (`name (columns…)`, `columns` of them) with `OR IGNORE`,
/// [`ROWS_PER_INSERT`] rows per statement and the rest one by one; `bind` binds one row's
/// values from the parameter index it is given.
fn insert_all<T>(
    tx: &rusqlite::Transaction<'_>,
    table: &str,
    columns: usize,
    rows: &[T],
    bind: impl Fn(&mut rusqlite::Statement<'_>, usize, &T) -> rusqlite::Result<()>,
) -> Result<()> {
    let sql = |count: usize| {
        let row = format!("({})", vec!["?"; columns].join(", "));
        format!(
            "INSERT OR IGNORE INTO {table} VALUES {}",
            vec![row; count].join(", ")
        )
    };
    let mut chunks = rows.chunks_exact(ROWS_PER_INSERT);
    if chunks.len() > 0 {
        let mut many = tx.prepare_cached(&sql(ROWS_PER_INSERT)).map_err(backend)?;
        for chunk in &mut chunks {
            for (i, row) in chunk.iter().enumerate() {
                bind(&mut many, 1 + i * columns, row).map_err(backend)?;
            }
            many.raw_execute().map_err(backend)?;
        }
    }
    if !chunks.remainder().is_empty() {
        let mut one = tx.prepare_cached(&sql(1)).map_err(backend)?;
        for row in chunks.remainder() {
            bind(&mut one, 1, row).map_err(backend)?;
            one.raw_execute().map_err(backend)?;
        }
    }
    Ok(())
}

/// How the index keeps an event id: the 16 bytes of a UUID written in canonical form
/// (lowercase, hyphenated: what Keyhold writes), else the text as given. Only the canonical
/// form maps to bytes, so a lookup finds exactly the ids equal to its text.
enum TextOrUuid<'a> {
    Uuid([u8; 16]),
    Text(&'a str),
}

fn id_key(id: &str) -> TextOrUuid<'_> {
    match uuid_bytes(id) {
        Some(bytes) => TextOrUuid::Uuid(bytes),
        None => TextOrUuid::Text(id),
    }
}

impl rusqlite::ToSql for TextOrUuid<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            TextOrUuid::Uuid(bytes) => ValueRef::Blob(bytes),
            TextOrUuid::Text(text) => ValueRef::Text(text.as_bytes()),
        }))
    }
}

/// The bytes of a UUID in canonical form (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lowercase
/// hex digits); `None` for any other text.
fn uuid_bytes(id: &str) -> Option<[u8; 16]> {
    /// Where each byte's two digits start in the text.
    const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let text = id.as_bytes();
    if text.len() != 36 || [8, 13, 18, 23].iter().any(|&i| text[i] != b'-') {
        return None;
    }
    let mut out = [0u8; 16];
    for (byte, &at) in out.iter_mut().zip(&AT) {
        *byte = digit(text[at])? << 4 | digit(text[at + 1])?;
    }
    Some(out)
}

fn location(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Location> {
    let offset: i64 = r.get(first + 1)?;
    Ok(Location {
        segment: r.get(first)?,
        offset: u64::try_from(offset).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: i64, name: &str, resource: &str) -> IndexEntry {
        IndexEntry {
            seq,
            location: Location {
                segment: 1,
                offset: 16 + 100 * u64::try_from(seq).unwrap(),
            },
            time_ms: seq * 1000,
            account: "111122223333".into(),
            recipient_account: if seq == 3 {
                "444455556666".into()
            } else {
                "111122223333".into()
            },
            region: "us-east-1".into(),
            event_id: format!("id-{seq}"),
            event_name: name.into(),
            event_source: "kms.amazonaws.com".into(),
            read_only: name != "CreateKey",
            username: None,
            access_key_id: None,
            resources: vec![("AWS::KMS::Key".into(), resource.into())],
        }
    }

    fn seqs(index: &mut SqliteAuditIndex, q: &AuditQuery) -> Vec<i64> {
        index.lookup(q).unwrap().iter().map(|h| h.seq).collect()
    }

    #[test]
    fn lookups_find_pointers_by_each_attribute_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = SqliteAuditIndex::open(&dir.path().join("index.db")).unwrap();
        index
            .add(&[
                entry(1, "CreateKey", "k1"),
                entry(2, "Decrypt", "k1"),
                entry(3, "Decrypt", "k2"),
                entry(4, "Decrypt", "k1"),
            ])
            .unwrap();
        let base = AuditQuery {
            account: "111122223333".into(),
            region: "us-east-1".into(),
            limit: 10,
            ..AuditQuery::default()
        };
        assert_eq!(seqs(&mut index, &base), [4, 3, 2, 1]);
        let by = |a, v: &str| AuditQuery {
            attribute: Some((a, v.to_owned())),
            ..base.clone()
        };
        assert_eq!(
            seqs(&mut index, &by(AuditAttribute::ResourceName, "k1")),
            [4, 2, 1]
        );
        assert_eq!(
            seqs(&mut index, &by(AuditAttribute::EventName, "Decrypt")),
            [4, 3, 2]
        );
        assert_eq!(seqs(&mut index, &by(AuditAttribute::EventId, "id-2")), [2]);
        assert_eq!(
            seqs(&mut index, &by(AuditAttribute::ReadOnly, "false")),
            [1]
        );
        assert_eq!(
            seqs(
                &mut index,
                &by(AuditAttribute::ResourceType, "AWS::KMS::Key")
            ),
            [4, 3, 2, 1]
        );
        let page = AuditQuery {
            page: Some(4),
            start_ms: Some(2000),
            limit: 1,
            ..by(AuditAttribute::ResourceName, "k1")
        };
        assert_eq!(seqs(&mut index, &page), [2]);
        let other = AuditQuery {
            account: "444455556666".into(),
            ..base.clone()
        };
        assert_eq!(
            seqs(&mut index, &other),
            [3],
            "the recipient account sees it too"
        );
        assert_eq!(
            index.lookup(&by(AuditAttribute::EventId, "id-3")).unwrap()[0].location,
            Location {
                segment: 1,
                offset: 316
            }
        );

        index.forget_through(2).unwrap();
        assert_eq!(
            seqs(&mut index, &by(AuditAttribute::ResourceName, "k1")),
            [4]
        );
        assert_eq!(index.indexed_from().unwrap(), 3);
        assert_eq!(index.indexed_through().unwrap(), 4);
    }

    #[test]
    fn lookups_by_resource_walk_the_buckets_newest_first_across_pages() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = SqliteAuditIndex::open(&dir.path().join("index.db")).unwrap();
        let size = 1 << BUCKET_SHIFT;
        // k1 in the first, third and fifth buckets (none in the second and fourth); k2 in
        // every event between.
        let k1 = [3, 2 * size + 1, 2 * size + 7, 4 * size];
        let entries: Vec<_> = (1..=4 * size + 10)
            .map(|seq| entry(seq, "Decrypt", if k1.contains(&seq) { "k1" } else { "k2" }))
            .collect();
        for chunk in entries.chunks(1000) {
            index.add(chunk).unwrap();
        }
        let by_k1 = |page: Option<i64>, limit: usize| AuditQuery {
            account: "111122223333".into(),
            region: "us-east-1".into(),
            attribute: Some((AuditAttribute::ResourceName, "k1".to_owned())),
            page,
            limit,
            ..AuditQuery::default()
        };
        let newest_first: Vec<i64> = k1.iter().rev().copied().collect();
        assert_eq!(seqs(&mut index, &by_k1(None, 10)), newest_first);
        assert_eq!(seqs(&mut index, &by_k1(None, 3)), newest_first[..3]);
        assert_eq!(
            seqs(&mut index, &by_k1(Some(2 * size + 7), 10)),
            [2 * size + 1, 3],
            "a page starts below the page before it, inside a bucket"
        );
        assert!(seqs(&mut index, &by_k1(Some(3), 10)).is_empty());
        index.forget_through(2 * size + 1).unwrap();
        assert_eq!(seqs(&mut index, &by_k1(None, 10)), [4 * size, 2 * size + 7]);
        let left: i64 = index
            .conn
            .query_row("SELECT count(*) FROM resources", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            left,
            2 * size + 10 - 1,
            "pruned entries are gone from every bucket"
        );
    }

    #[test]
    fn event_ids_are_found_as_written_whether_uuids_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = SqliteAuditIndex::open(&dir.path().join("index.db")).unwrap();
        let uuid = "0193a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b";
        let mut entries = vec![entry(1, "Decrypt", "k1"), entry(2, "Decrypt", "k1")];
        entries[0].event_id = uuid.into();
        entries[1].event_id = "not-a-uuid".into();
        index.add(&entries).unwrap();
        assert_eq!(uuid_bytes(uuid).unwrap()[..2], [0x01, 0x93]);
        let by_id = |id: &str| AuditQuery {
            account: "111122223333".into(),
            region: "us-east-1".into(),
            attribute: Some((AuditAttribute::EventId, id.to_owned())),
            limit: 10,
            ..AuditQuery::default()
        };
        assert_eq!(seqs(&mut index, &by_id(uuid)), [1]);
        assert_eq!(seqs(&mut index, &by_id("not-a-uuid")), [2]);
        // Another spelling of the same UUID is another id, as it was when ids were text.
        assert!(seqs(&mut index, &by_id(&uuid.to_uppercase())).is_empty());
        assert!(seqs(&mut index, &by_id(&uuid.replace('-', ""))).is_empty());
        let stored: String = index
            .conn
            .query_row(
                "SELECT typeof(event_id) FROM events WHERE seq = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(stored, "blob");
    }

    #[test]
    fn an_index_of_another_layout_does_not_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("CREATE TABLE audit_events (seq INTEGER); PRAGMA user_version = 1;")
                .unwrap();
        }
        assert!(matches!(
            SqliteAuditIndex::open(&path),
            Err(StoreError::OtherLayout(_))
        ));
    }
}
