//! The audit trail's log: append-only segment files of length-prefixed, checksummed records.
//!
//! A trail directory holds:
//! - `segments/<first seq, 20 digits>.seg`: the events, in order. Each file starts with a
//!   16-byte header (`KHAUDSEG`, format version, reserved) followed by frames
//!   `len: u32 LE | crc32: u32 LE | body[len]`. Only the newest segment is appended to; a
//!   new one starts (at a digest boundary, so retention can drop whole files) when it grows
//!   past its size or age limit.
//! - `digests.log`: the signed digests, framed the same way (header `KHAUDDIG`). A digest is
//!   appended only once the events it covers are durable, so a digest never names an event
//!   a crash could lose.
//! - `meta/<name>`: small values (the sealed signing key, its public half, the latest prune
//!   record), each replaced atomically.
//!
//! The newest segment may end in zeros: room the writer made ahead of its appends, so that
//! their syncs write data only (see [`space`]), and into which they may be written past the
//! page cache (see [`direct`]); a frame header of zeros reads as the end of the data, and a
//! segment is cut back to its data when it is sealed.
//!
//! After a crash the newest segment (and `digests.log`) may end in a torn frame: an append
//! that was never acknowledged. [`SegmentLog::open`] cuts it, keeping the cut bytes under
//! `torn/` for inspection. Readers stop quietly at an incomplete frame at the end of the
//! newest segment (it may still be being written) and report anything else that does not
//! decode as damage.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read};
use std::os::unix::fs::{DirBuilderExt as _, FileExt, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::audit::{AuditLog, AuditRow, DigestRow, PRUNE_RECORD};
use crate::{Result, StoreError};

mod direct;
mod space;

const SEGMENT_MAGIC: &[u8; 8] = b"KHAUDSEG";
const DIGEST_MAGIC: &[u8; 8] = b"KHAUDDIG";
const VERSION: u32 = 1;
const HEADER_LEN: u64 = 16;
const FRAME_HEADER: usize = 8;
/// No record is larger (a CloudTrail record is a few KiB; this bounds what a damaged length
/// field can make a reader allocate).
const MAX_FRAME: u32 = 16 << 20;
const KIND_EVENT: u8 = 1;
const KIND_DIGEST: u8 = 2;
/// Every this many events a reader remembers where an event starts, to seek by sequence.
const SPARSE_EVERY: i64 = 256;

fn io(e: std::io::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

/// Creates `dir` (and parents) and makes its entry durable.
fn create_dir_durable(dir: &Path) -> Result<()> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io)
}

/// Writes `bytes` to `path` atomically and durably (temporary file, fsync, rename, fsync of
/// the directory).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        file.write_all_at(bytes, 0).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    fs::rename(&tmp, path).map_err(io)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn header(magic: &[u8; 8]) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(magic);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h
}

fn segment_name(first_seq: i64) -> String {
    format!("{first_seq:020}.seg")
}

// ---- the record codec ----

fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_bytes(buf, s.as_bytes());
}

fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    buf.extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_le_bytes());
    buf.extend_from_slice(b);
}

fn put_opt(buf: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            buf.push(1);
            put_str(buf, s);
        }
        None => buf.push(0),
    }
}

/// Appends one frame (header and body) to `buf`; `body` writes the body.
fn frame(buf: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0; FRAME_HEADER]);
    body(buf);
    let len = u32::try_from(buf.len() - start - FRAME_HEADER).unwrap_or(u32::MAX);
    let crc = crc32fast::hash(&buf[start + FRAME_HEADER..]);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Appends the frame of one event to `buf`.
pub fn encode_event(buf: &mut Vec<u8>, row: &AuditRow) {
    frame(buf, |b| {
        b.push(KIND_EVENT);
        b.extend_from_slice(&row.seq.to_le_bytes());
        b.extend_from_slice(&row.time_ms.to_le_bytes());
        b.push(u8::from(row.read_only));
        b.extend_from_slice(&row.hash);
        put_str(b, &row.event_id);
        put_str(b, &row.account);
        put_str(b, &row.recipient_account);
        put_str(b, &row.region);
        put_str(b, &row.event_name);
        put_str(b, &row.event_source);
        put_opt(b, row.username.as_deref());
        put_opt(b, row.access_key_id.as_deref());
        b.extend_from_slice(
            &u32::try_from(row.resources.len())
                .unwrap_or(0)
                .to_le_bytes(),
        );
        for (kind, name) in &row.resources {
            put_str(b, kind);
            put_str(b, name);
        }
        put_str(b, &row.record);
    });
}

fn encode_digest(buf: &mut Vec<u8>, row: &DigestRow) {
    frame(buf, |b| {
        b.push(KIND_DIGEST);
        b.extend_from_slice(&row.seq.to_le_bytes());
        b.extend_from_slice(&row.first_seq.to_le_bytes());
        b.extend_from_slice(&row.last_seq.to_le_bytes());
        b.extend_from_slice(&row.time_ms.to_le_bytes());
        put_str(b, &row.document);
        put_bytes(b, &row.signature);
    });
}

/// A whole segment file holding `rows` (what [`replace_events`] writes).
fn encode_segment(rows: &[AuditRow]) -> Vec<u8> {
    let mut buf = header(SEGMENT_MAGIC).to_vec();
    for row in rows {
        encode_event(&mut buf, row);
    }
    buf
}

/// A whole `digests.log` holding `digests`.
fn encode_digest_log(digests: &[DigestRow]) -> Vec<u8> {
    let mut buf = header(DIGEST_MAGIC).to_vec();
    for d in digests {
        encode_digest(&mut buf, d);
    }
    buf
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()))
    }
    fn i64(&mut self) -> Option<i64> {
        self.take(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap_or_default()))
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = self.u32()? as usize;
        self.take(n).map(<[u8]>::to_vec)
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?).ok()
    }
    fn opt(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            1 => self.string().map(Some),
            _ => None,
        }
    }
}

fn decode_event(body: &[u8]) -> Option<AuditRow> {
    decode_event_as(body, true)
}

/// Decodes an event frame's body; without `with_record`, its record is checked to be
/// there (its length) but not copied, and the row's `record` is left empty (what the lookup
/// index reads: every column but the record).
fn decode_event_as(body: &[u8], with_record: bool) -> Option<AuditRow> {
    let mut c = Cursor(body);
    if c.u8()? != KIND_EVENT {
        return None;
    }
    let seq = c.i64()?;
    let time_ms = c.i64()?;
    let read_only = c.u8()? != 0;
    let hash: [u8; 32] = c.take(32)?.try_into().ok()?;
    let event_id = c.string()?;
    let account = c.string()?;
    let recipient_account = c.string()?;
    let region = c.string()?;
    let event_name = c.string()?;
    let event_source = c.string()?;
    let username = c.opt()?;
    let access_key_id = c.opt()?;
    let n = c.u32()?;
    let mut resources = Vec::with_capacity(n.min(64) as usize);
    for _ in 0..n {
        resources.push((c.string()?, c.string()?));
    }
    let record = if with_record {
        c.string()?
    } else {
        let n = c.u32()? as usize;
        c.take(n)?;
        String::new()
    };
    c.0.is_empty().then_some(AuditRow {
        seq,
        event_id,
        account,
        recipient_account,
        region,
        time_ms,
        event_name,
        event_source,
        read_only,
        username,
        access_key_id,
        resources,
        record,
        hash,
    })
}

fn decode_digest(body: &[u8]) -> Option<DigestRow> {
    let mut c = Cursor(body);
    if c.u8()? != KIND_DIGEST {
        return None;
    }
    let row = DigestRow {
        seq: c.i64()?,
        first_seq: c.i64()?,
        last_seq: c.i64()?,
        time_ms: c.i64()?,
        document: c.string()?,
        signature: c.bytes()?,
    };
    c.0.is_empty().then_some(row)
}

/// The sequence number of an event frame's body, without decoding the rest.
fn body_seq(body: &[u8]) -> Option<i64> {
    (body.first() == Some(&KIND_EVENT) && body.len() >= 9)
        .then(|| i64::from_le_bytes(body[1..9].try_into().unwrap_or_default()))
}

// ---- reading frames ----

/// What reading one frame found.
enum Frame {
    Body(Vec<u8>),
    /// The file ends here, cleanly.
    End,
    /// The file ends inside a frame (a torn or in-progress append).
    Incomplete,
    /// A frame whose length or checksum is wrong.
    Damaged,
}

struct FrameReader {
    reader: BufReader<File>,
    /// The offset of the next frame.
    offset: u64,
}

impl FrameReader {
    fn open(path: &Path, magic: &[u8; 8], at: u64) -> Result<Self> {
        let mut file = File::open(path).map_err(io)?;
        let mut h = [0u8; HEADER_LEN as usize];
        file.read_exact(&mut h)
            .map_err(|_| StoreError::Corrupt("an audit log file has no header"))?;
        if &h[..8] != magic {
            return Err(StoreError::Corrupt(
                "an audit log file has the wrong header",
            ));
        }
        if u32::from_le_bytes(h[8..12].try_into().unwrap_or_default()) != VERSION {
            return Err(StoreError::Corrupt(
                "an audit log file has a format version this Keyhold does not read",
            ));
        }
        let at = at.max(HEADER_LEN);
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(at)).map_err(io)?;
        Ok(Self {
            reader: BufReader::with_capacity(256 << 10, file),
            offset: at,
        })
    }

    fn next(&mut self) -> Result<Frame> {
        let mut head = [0u8; FRAME_HEADER];
        match read_full(&mut self.reader, &mut head)? {
            0 => return Ok(Frame::End),
            n if n < FRAME_HEADER => return Ok(Frame::Incomplete),
            _ => {}
        }
        let len = u32::from_le_bytes(head[..4].try_into().unwrap_or_default());
        let crc = u32::from_le_bytes(head[4..].try_into().unwrap_or_default());
        if len == 0 || len > MAX_FRAME {
            // A zeroed region (a torn append whose later pages reached the disk first) or
            // a damaged length.
            return Ok(if len == 0 && crc == 0 {
                Frame::Incomplete
            } else {
                Frame::Damaged
            });
        }
        let mut body = vec![0u8; len as usize];
        if read_full(&mut self.reader, &mut body)? < body.len() {
            return Ok(Frame::Incomplete);
        }
        if crc32fast::hash(&body) != crc {
            return Ok(Frame::Damaged);
        }
        self.offset += FRAME_HEADER as u64 + u64::from(len);
        Ok(Frame::Body(body))
    }
}

/// Reads until `buf` is full or the file ends; returns how many bytes it read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e)),
        }
    }
    Ok(n)
}

/// The offset just after the last non-zero byte of `file` in `from..to` (`from` if all
/// are zero).
fn end_of_nonzero(file: &File, from: u64, to: u64) -> Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut end = from;
    let mut at = from;
    while at < to {
        let n = usize::try_from(to - at).unwrap_or(buf.len()).min(buf.len());
        file.read_exact_at(&mut buf[..n], at).map_err(io)?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b != 0) {
            end = at + i as u64 + 1;
        }
        at += n as u64;
    }
    Ok(end)
}

/// Reads every frame of `path`; returns the bodies, the offset where valid frames end and
/// whether what follows is damage (rather than a clean end or an incomplete frame).
fn read_all(path: &Path, magic: &[u8; 8]) -> Result<(Vec<Vec<u8>>, u64, Option<Frame>)> {
    let mut reader = FrameReader::open(path, magic, 0)?;
    let mut bodies = Vec::new();
    loop {
        match reader.next()? {
            Frame::Body(b) => bodies.push(b),
            end => return Ok((bodies, reader.offset, Some(end))),
        }
    }
}

// ---- the log ----

#[derive(Debug)]
struct Segment {
    first_seq: i64,
    path: PathBuf,
    /// `(seq, offset)` of every [`SPARSE_EVERY`]th event seen so far.
    sparse: Vec<(i64, u64)>,
}

/// Where [`SegmentLog::read_page`] reads next: a segment (by position in the log) and an
/// offset in it (0: its first record).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    segment: usize,
    offset: u64,
}

/// Where one event's record is: the segment (by the sequence of its first event) and the
/// offset of the record's frame in it. Stable for the life of the segment (segments are
/// only appended to, and removed whole).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub segment: i64,
    pub offset: u64,
}

/// What [`SegmentLog::write_events`] appended: the file to sync, and where each record is.
#[derive(Debug)]
pub struct Appended {
    /// The file to [`sync`] before the records count as durable; `None` when they were
    /// written durably already (direct appends, see [`direct`]).
    pub file: Option<Arc<File>>,
    /// The segment the records are in (the sequence of its first event).
    pub segment: i64,
    /// The offset of each record's frame, in the order given.
    pub offsets: Vec<u64>,
    /// Where the segment ends after the records.
    pub end: u64,
}

/// Reads single events by [`Location`] (lookups through the index), keeping the last
/// segment it opened.
#[derive(Debug)]
pub struct EventReader {
    dir: PathBuf,
    open: Option<(i64, File)>,
}

impl EventReader {
    /// A reader of the trail in `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            open: None,
        }
    }

    /// The event whose record is at `at`; `None` if its segment is gone (retention removed
    /// it). A frame that is not a whole, intact event record is an error.
    pub fn read(&mut self, at: Location) -> Result<Option<AuditRow>> {
        if self.open.as_ref().is_none_or(|(s, _)| *s != at.segment) {
            let path = self.dir.join("segments").join(segment_name(at.segment));
            match File::open(&path) {
                Ok(f) => self.open = Some((at.segment, f)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io(e)),
            }
        }
        let Some((_, file)) = &self.open else {
            return Ok(None);
        };
        const UNREADABLE: StoreError =
            StoreError::Corrupt("the audit index points at no intact event record");
        if at.offset < HEADER_LEN {
            return Err(UNREADABLE);
        }
        let mut head = [0u8; FRAME_HEADER];
        file.read_exact_at(&mut head, at.offset)
            .map_err(|_| UNREADABLE)?;
        let len = u32::from_le_bytes(head[..4].try_into().unwrap_or_default());
        let crc = u32::from_le_bytes(head[4..].try_into().unwrap_or_default());
        if len == 0 || len > MAX_FRAME {
            return Err(UNREADABLE);
        }
        let mut body = vec![0u8; len as usize];
        file.read_exact_at(&mut body, at.offset + FRAME_HEADER as u64)
            .map_err(|_| UNREADABLE)?;
        if crc32fast::hash(&body) != crc {
            return Err(UNREADABLE);
        }
        decode_event(&body).map(Some).ok_or(UNREADABLE)
    }
}

/// Whether a log is opened to be appended to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The writer: repairs a torn tail at open.
    Write,
    /// Verification, export, the index: changes nothing.
    Read,
}

/// How room is made ahead of the appends (see [`SegmentLog::make_room_ahead`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomAhead {
    /// Zeros and appends go through the page cache.
    Buffered,
    /// Zeros and appends are written directly (see [`direct`]); where the filesystem
    /// takes no direct writes, through the page cache with room ahead if `or_buffered`,
    /// without room ahead otherwise.
    Direct { or_buffered: bool },
}

/// The audit trail's log in a directory (see the module documentation).
pub struct SegmentLog {
    dir: PathBuf,
    mode: Mode,
    segments: Vec<Segment>,
    digests: Vec<DigestRow>,
    /// The newest event, as stored.
    tail: Option<(i64, [u8; 32])>,
    /// Appending (write mode only): the newest segment and where its next frame goes.
    active: Option<Arc<File>>,
    active_len: u64,
    /// Room kept ahead of the appends (write mode, once [`SegmentLog::make_room_ahead`]).
    space: Option<space::Space>,
    /// Appends written directly into that room (see [`direct`]), when asked for and the
    /// filesystem takes them; otherwise appends go through the page cache.
    direct: Option<direct::DirectAppender>,
    digest_file: Option<File>,
    digest_len: u64,
    buf: Vec<u8>,
}

impl std::fmt::Debug for SegmentLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentLog")
            .field("dir", &self.dir)
            .field("segments", &self.segments.len())
            .finish_non_exhaustive()
    }
}

impl SegmentLog {
    /// Whether `dir` holds a trail.
    pub fn exists(dir: &Path) -> bool {
        dir.join("segments").is_dir()
    }

    /// Opens the trail in `dir` (creating it in write mode). In write mode a torn tail of
    /// the newest segment or of `digests.log` is cut and kept under `torn/`.
    pub fn open(dir: &Path, mode: Mode) -> Result<Self> {
        if mode == Mode::Write {
            create_dir_durable(&dir.join("segments"))?;
            create_dir_durable(&dir.join("meta"))?;
        } else if !Self::exists(dir) {
            return Err(StoreError::NotFound);
        }
        let segments = list_segments(dir)?;
        let mut log = Self {
            dir: dir.to_owned(),
            mode,
            segments,
            digests: Vec::new(),
            tail: None,
            active: None,
            active_len: HEADER_LEN,
            space: None,
            direct: None,
            digest_file: None,
            digest_len: HEADER_LEN,
            buf: Vec::with_capacity(1 << 20),
        };
        log.load_digests()?;
        log.load_tail()?;
        Ok(log)
    }

    fn digests_path(&self) -> PathBuf {
        self.dir.join("digests.log")
    }

    fn load_digests(&mut self) -> Result<()> {
        let path = self.digests_path();
        if !path.exists() {
            if self.mode == Mode::Write {
                let file = OpenOptions::new()
                    .create_new(true)
                    .read(true)
                    .write(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(io)?;
                file.write_all_at(&header(DIGEST_MAGIC), 0).map_err(io)?;
                file.sync_all().map_err(io)?;
                sync_dir(&self.dir)?;
                self.digest_file = Some(file);
            }
            return Ok(());
        }
        let (bodies, end, stop) = read_all(&path, DIGEST_MAGIC)?;
        for body in &bodies {
            self.digests.push(
                decode_digest(body).ok_or(StoreError::Corrupt("an audit digest is unreadable"))?,
            );
        }
        self.digest_len = end;
        if self.mode == Mode::Write {
            self.cut(&path, end, stop)?;
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io)?;
            self.digest_file = Some(file);
        }
        Ok(())
    }

    /// Finds the newest event (and, in write mode, opens the newest segment for appending,
    /// cutting a torn tail).
    fn load_tail(&mut self) -> Result<()> {
        if self.segments.is_empty() && self.mode == Mode::Write {
            self.start_segment(1)?;
            return Ok(());
        }
        // The newest segment may hold no event yet (just rotated): look further back.
        for i in (0..self.segments.len()).rev() {
            let path = self.segments[i].path.clone();
            let (bodies, end, stop) = read_all(&path, SEGMENT_MAGIC)?;
            let newest = i + 1 == self.segments.len();
            if newest && self.mode == Mode::Write {
                self.cut(&path, end, stop)?;
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(io)?;
                self.active = Some(Arc::new(file));
                self.active_len = end;
            } else if !newest && matches!(stop, Some(Frame::Damaged | Frame::Incomplete)) {
                return Err(StoreError::Corrupt(
                    "a sealed audit segment ends in a damaged record",
                ));
            }
            if let Some(last) = bodies.last() {
                let row = decode_event(last)
                    .ok_or(StoreError::Corrupt("an audit event is unreadable"))?;
                self.tail = Some((row.seq, row.hash));
                return Ok(());
            }
        }
        Ok(())
    }

    /// Cuts `path` at `end` when a torn or damaged frame follows, keeping the cut bytes.
    /// Zeros after `end` are room made ahead (see [`space`]), not a torn frame: they stay,
    /// and of a file with room ahead only the bytes up to the last non-zero one are cut
    /// (zeroed again, so that frames of a torn append never reappear after later ones).
    fn cut(&self, path: &Path, end: u64, stop: Option<Frame>) -> Result<()> {
        let len = fs::metadata(path).map_err(io)?.len();
        if len <= end || matches!(stop, Some(Frame::End)) {
            return Ok(());
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io)?;
        let written_end = end_of_nonzero(&file, end, len)?;
        if written_end == end {
            return Ok(());
        }
        let torn_dir = self.dir.join("torn");
        create_dir_durable(&torn_dir)?;
        let mut rest = vec![0u8; usize::try_from(written_end - end).unwrap_or(0)];
        file.read_exact_at(&mut rest, end).map_err(io)?;
        let name = format!(
            "{}.{end}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("log")
        );
        write_atomic(&torn_dir.join(name), &rest)?;
        if written_end == len {
            file.set_len(end).map_err(io)?;
        } else {
            rest.fill(0);
            file.write_all_at(&rest, end).map_err(io)?;
        }
        file.sync_all().map_err(io)?;
        tracing::warn!(
            file = %path.display(),
            offset = end,
            bytes = rest.len(),
            "the audit log ended in an unfinished record (a write the crash interrupted, never acknowledged); cut it and kept the bytes under torn/"
        );
        Ok(())
    }

    /// Starts a new segment whose first event is `first_seq` (write mode).
    fn start_segment(&mut self, first_seq: i64) -> Result<()> {
        let path = self.dir.join("segments").join(segment_name(first_seq));
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        file.write_all_at(&header(SEGMENT_MAGIC), 0).map_err(io)?;
        file.sync_all().map_err(io)?;
        sync_dir(&self.dir.join("segments"))?;
        if let Some(last) = self.segments.last()
            && last.first_seq == first_seq
        {
            self.segments.pop();
        }
        self.segments.push(Segment {
            first_seq,
            path,
            sparse: Vec::new(),
        });
        let file = Arc::new(file);
        self.active = Some(file.clone());
        self.active_len = HEADER_LEN;
        // The new segment is appended to as the one before was: directly if it was.
        let direct = match self.direct.take() {
            Some(_) => self.open_direct()?,
            None => None,
        };
        if let Some(space) = &self.space {
            match direct {
                Some(direct) => space.switch(direct, true),
                None => space.switch(file, false),
            }
        }
        Ok(())
    }

    /// Opens the newest segment for direct appends; returns the file opened for them (what
    /// the room ahead is written through too), or `None` where the filesystem takes no
    /// direct writes.
    fn open_direct(&mut self) -> Result<Option<Arc<File>>> {
        let (Some(buffered), Some(segment)) = (&self.active, self.segments.last()) else {
            return Ok(None);
        };
        let Some(file) = direct::open(&segment.path) else {
            tracing::warn!(file = %segment.path.display(), "the audit log's filesystem takes no direct writes: appending through the page cache");
            return Ok(None);
        };
        let file = Arc::new(file);
        let appender = direct::DirectAppender::new(file.clone(), buffered, self.active_len);
        self.direct = Some(appender.map_err(io)?);
        Ok(Some(file))
    }

    /// Keeps room made ahead of the appends (zeros written and made durable, see
    /// [`space`]) in the newest segment and every segment after it, up to `limit` bytes
    /// per segment (write mode; the size at which the writer closes a segment, and a
    /// margin), written as `how` says.
    pub fn make_room_ahead(&mut self, limit: u64, how: RoomAhead) -> Result<()> {
        let Some(file) = self.active.clone() else {
            return Ok(());
        };
        let len = file.metadata().map_err(io)?.len();
        // The file the zeros are written through, and whether it is the direct one.
        let zeros_to = match how {
            RoomAhead::Buffered => Some((file, false)),
            RoomAhead::Direct { or_buffered } => match self.open_direct()? {
                Some(direct) => Some((direct, true)),
                None => or_buffered.then_some((file, false)),
            },
        };
        if let Some((zeros_to, direct)) = zeros_to {
            self.space = Some(space::Space::start(
                zeros_to,
                direct,
                len,
                self.active_len,
                limit,
            ));
        }
        Ok(())
    }

    /// Whether appends are written directly (see [`direct`]).
    pub fn appends_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// The directory the log is in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The newest stored event's sequence and hash.
    pub fn tail(&self) -> Option<(i64, [u8; 32])> {
        self.tail
    }

    /// The size of the segment being appended to.
    pub fn active_len(&self) -> u64 {
        self.active_len
    }

    /// Appends `events` to the newest segment without waiting for the disk (unless the
    /// append is direct: then it returns once they are durable); returns the file to
    /// [`sync`] before the events count as durable, and where each event's record
    /// starts (what the lookup index points at). On failure nothing counts as written: the
    /// next append overwrites whatever part of this one reached the file.
    pub fn write_events(&mut self, events: &[AuditRow]) -> Result<Appended> {
        let file = self
            .active
            .clone()
            .ok_or(StoreError::Corrupt("the audit log is not open for writing"))?;
        let segment = self
            .segments
            .last()
            .map(|s| s.first_seq)
            .ok_or(StoreError::Corrupt("the audit log is not open for writing"))?;
        self.buf.clear();
        let mut offsets = Vec::with_capacity(events.len());
        for row in events {
            offsets.push(self.active_len + self.buf.len() as u64);
            encode_event(&mut self.buf, row);
        }
        let mut written = self.write_buf(&file);
        if let Err(e) = &written
            && e.kind() == std::io::ErrorKind::InvalidInput
            && self.direct.take().is_some()
        {
            // The filesystem opened the segment for direct writes but refuses them (it
            // needs another alignment): through the page cache from now on.
            tracing::warn!(error = %e, "the audit log's filesystem refuses direct writes: appending through the page cache");
            written = self.write_buf(&file);
        }
        written.map_err(io)?;
        self.active_len += self.buf.len() as u64;
        if let Some(last) = events.last() {
            self.tail = Some((last.seq, last.hash));
        }
        Ok(Appended {
            file: self.direct.is_none().then_some(file),
            segment,
            offsets,
            end: self.active_len,
        })
    }

    /// Writes the frames in `buf` where the newest segment's data ends: directly, or
    /// through the page cache (`file`).
    fn write_buf(&mut self, file: &File) -> std::io::Result<()> {
        match (&self.space, &mut self.direct) {
            (Some(space), Some(direct)) => space.write(direct.written_end(self.buf.len()), || {
                direct.append(&self.buf)
            }),
            (Some(space), None) => space.write(self.active_len + self.buf.len() as u64, || {
                file.write_all_at(&self.buf, self.active_len)
            }),
            (None, _) => file.write_all_at(&self.buf, self.active_len),
        }
    }

    /// Forgets an append that could not be made durable: the segment ends at `len` again
    /// and its tail is `tail`.
    pub fn rewind(&mut self, len: u64, tail: Option<(i64, [u8; 32])>) -> Result<()> {
        if let Some(file) = &self.active {
            match &self.space {
                Some(space) => space.truncate(file, len),
                None => file.set_len(len),
            }
            .map_err(io)?;
            if let Some(direct) = &mut self.direct {
                direct.reset(file, len).map_err(io)?;
            }
        }
        self.active_len = len;
        self.tail = tail;
        Ok(())
    }

    /// Starts a new segment after the newest event (write mode), once the current one has
    /// reached its limits: call it right after a digest, so that segments start at digest
    /// boundaries. The current segment must be durable already.
    pub fn rotate(&mut self) -> Result<()> {
        let next = self.tail.map_or(1, |(seq, _)| seq + 1);
        if self.segments.last().is_some_and(|s| s.first_seq == next) {
            return Ok(());
        }
        self.seal_active()?;
        self.start_segment(next)
    }

    /// Cuts the room made ahead off the segment being appended to, durably, before the
    /// next one exists: a sealed segment ends with its last frame.
    fn seal_active(&mut self) -> Result<()> {
        if let Some(space) = &self.space {
            space.pause();
        }
        // The file's own length: room made by this writer, by an earlier run, or a chunk of
        // zeros that failed part-way.
        if let Some(file) = &self.active
            && file.metadata().map_err(io)?.len() > self.active_len
        {
            file.set_len(self.active_len).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        Ok(())
    }

    /// Appends a digest durably. Call it only once the events it covers are durable.
    pub fn append_digest(&mut self, digest: &DigestRow) -> Result<()> {
        let file = self
            .digest_file
            .as_ref()
            .ok_or(StoreError::Corrupt("the audit log is not open for writing"))?;
        let mut buf = Vec::with_capacity(digest.document.len() + 256);
        encode_digest(&mut buf, digest);
        file.write_all_at(&buf, self.digest_len).map_err(io)?;
        if let Err(e) = file.sync_data() {
            let _ = file.set_len(self.digest_len);
            return Err(io(e));
        }
        self.digest_len += buf.len() as u64;
        self.digests.push(digest.clone());
        Ok(())
    }

    /// Reads events with `seq >= from`, calling `each` until it returns `false` or the log
    /// ends. A damaged record is an error, except an incomplete one at the very end of the
    /// newest segment (an append in progress, or torn by a crash: never acknowledged).
    pub fn scan(&mut self, from: i64, mut each: impl FnMut(AuditRow) -> bool) -> Result<()> {
        self.scan_located(from, |row, _| each(row))
    }

    /// [`SegmentLog::scan`], telling where each event's record is (what the lookup index
    /// points at).
    pub fn scan_located(
        &mut self,
        from: i64,
        each: impl FnMut(AuditRow, Location) -> bool,
    ) -> Result<()> {
        self.scan_as(from, true, each)
    }

    /// [`SegmentLog::scan_located`] for the lookup index: each row comes without its record
    /// (`record` is empty; it is checked to be there, not copied).
    pub fn scan_without_records(
        &mut self,
        from: i64,
        each: impl FnMut(AuditRow, Location) -> bool,
    ) -> Result<()> {
        self.scan_as(from, false, each)
    }

    fn scan_as(
        &mut self,
        from: i64,
        with_record: bool,
        mut each: impl FnMut(AuditRow, Location) -> bool,
    ) -> Result<()> {
        let start = self
            .segments
            .partition_point(|s| s.first_seq <= from)
            .saturating_sub(1);
        for i in start..self.segments.len() {
            let newest = i + 1 == self.segments.len();
            let seg = &self.segments[i];
            let segment = seg.first_seq;
            let at = seg
                .sparse
                .iter()
                .rev()
                .find(|(seq, _)| *seq <= from)
                .map_or(HEADER_LEN, |(_, off)| *off);
            let mut reader = FrameReader::open(&seg.path, SEGMENT_MAGIC, at)?;
            let mut sparse = Vec::new();
            loop {
                let offset = reader.offset;
                match reader.next()? {
                    Frame::Body(body) => {
                        let seq = body_seq(&body)
                            .ok_or(StoreError::Corrupt("an audit event is unreadable"))?;
                        if seq % SPARSE_EVERY == 0 {
                            sparse.push((seq, offset));
                        }
                        if seq < from {
                            continue;
                        }
                        let row = decode_event_as(&body, with_record)
                            .ok_or(StoreError::Corrupt("an audit event is unreadable"))?;
                        if !each(row, Location { segment, offset }) {
                            self.remember(i, sparse);
                            return Ok(());
                        }
                    }
                    Frame::End => break,
                    // The newest segment may be being appended to: a frame not yet wholly
                    // written reads as incomplete or damaged; what follows is not readable
                    // yet. (Verification reads with `read_page`, which reports damage.)
                    Frame::Incomplete | Frame::Damaged if newest => break,
                    Frame::Incomplete | Frame::Damaged => {
                        return Err(StoreError::Corrupt(
                            "an audit event is unreadable (its record is damaged)",
                        ));
                    }
                }
            }
            self.remember(i, sparse);
        }
        Ok(())
    }

    /// Reads up to `limit` events in stored order from `at`, whatever their sequence
    /// numbers say (verification sees gaps and out-of-place events as stored); returns them
    /// and where the next read starts. Damage is an error as in [`SegmentLog::scan`].
    pub fn read_page(&self, at: Position, limit: usize) -> Result<(Vec<AuditRow>, Position)> {
        let mut rows = Vec::new();
        let mut pos = at;
        while pos.segment < self.segments.len() && rows.len() < limit {
            let newest = pos.segment + 1 == self.segments.len();
            let mut reader =
                FrameReader::open(&self.segments[pos.segment].path, SEGMENT_MAGIC, pos.offset)?;
            loop {
                if rows.len() >= limit {
                    return Ok((
                        rows,
                        Position {
                            offset: reader.offset,
                            ..pos
                        },
                    ));
                }
                match reader.next()? {
                    Frame::Body(body) => rows.push(
                        decode_event(&body)
                            .ok_or(StoreError::Corrupt("an audit event is unreadable"))?,
                    ),
                    Frame::End => break,
                    Frame::Incomplete if newest => {
                        return Ok((
                            rows,
                            Position {
                                offset: reader.offset,
                                ..pos
                            },
                        ));
                    }
                    Frame::Incomplete | Frame::Damaged => {
                        return Err(StoreError::Corrupt(
                            "an audit event is unreadable (its record is damaged)",
                        ));
                    }
                }
            }
            pos = Position {
                segment: pos.segment + 1,
                offset: 0,
            };
        }
        Ok((rows, pos))
    }

    fn remember(&mut self, segment: usize, seen: Vec<(i64, u64)>) {
        let sparse = &mut self.segments[segment].sparse;
        for entry in seen {
            if let Err(at) = sparse.binary_search(&entry) {
                sparse.insert(at, entry);
            }
        }
    }

    /// Re-reads which segments exist (a reader following a log another handle appends to
    /// and rotates); keeps what it learnt about positions in them. Digests and the tail are
    /// not re-read.
    pub fn refresh(&mut self) -> Result<()> {
        let mut fresh = list_segments(&self.dir)?;
        for s in &mut fresh {
            if let Some(o) = self.segments.iter().find(|o| o.first_seq == s.first_seq) {
                s.sparse.clone_from(&o.sparse);
            }
        }
        self.segments = fresh;
        Ok(())
    }

    /// The first sequence of every segment, oldest first.
    pub fn segment_starts(&self) -> Vec<i64> {
        self.segments.iter().map(|s| s.first_seq).collect()
    }
}

/// The trail's files but its index, relative to `dir`, in the order a copy taken while the
/// trail is written stays consistent in: the meta files, the digests, then the segments,
/// oldest first (every digest copied covers events copied after it).
pub fn files_in_copy_order(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut meta: Vec<PathBuf> = fs::read_dir(dir.join("meta"))
        .map_err(io)?
        .filter_map(std::result::Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| PathBuf::from(e.file_name()))
        .filter(|n| n.extension().is_none_or(|x| x != "tmp"))
        .map(|n| Path::new("meta").join(n))
        .collect();
    meta.sort();
    meta.push("digests.log".into());
    meta.extend(
        list_segments(dir)?
            .iter()
            .filter_map(|s| s.path.strip_prefix(dir).ok().map(Path::to_path_buf)),
    );
    Ok(meta)
}

/// The segments in `dir`, oldest first.
fn list_segments(dir: &Path) -> Result<Vec<Segment>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir.join("segments")).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let Some(first) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse::<i64>().ok())
        else {
            continue;
        };
        segments.push(Segment {
            first_seq: first,
            path: entry.path(),
            sparse: Vec::new(),
        });
    }
    segments.sort_by_key(|s| s.first_seq);
    Ok(segments)
}

fn meta_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl AuditLog for SegmentLog {
    fn last_event(&mut self) -> Result<Option<AuditRow>> {
        let Some((seq, _)) = self.tail else {
            return Ok(None);
        };
        Ok(self.events(seq, seq)?.pop())
    }

    fn last_digest(&mut self) -> Result<Option<DigestRow>> {
        Ok(self.digests.last().cloned())
    }

    fn append(&mut self, events: &[AuditRow], digest: Option<&DigestRow>) -> Result<()> {
        if !events.is_empty() {
            let before = (self.active_len, self.tail);
            let appended = self.write_events(events)?;
            if let Some(Err(e)) = appended.file.as_deref().map(sync) {
                let _ = self.rewind(before.0, before.1);
                return Err(e);
            }
        }
        if let Some(d) = digest {
            self.append_digest(d)?;
        }
        Ok(())
    }

    fn events(&mut self, first: i64, last: i64) -> Result<Vec<AuditRow>> {
        let mut rows = Vec::new();
        self.scan(first, |row| {
            if row.seq > last {
                return false;
            }
            rows.push(row);
            true
        })?;
        Ok(rows)
    }

    fn events_after(&mut self, after: i64, limit: usize) -> Result<Vec<AuditRow>> {
        let mut rows = Vec::new();
        if limit == 0 {
            return Ok(rows);
        }
        self.scan(after + 1, |row| {
            rows.push(row);
            rows.len() < limit
        })?;
        Ok(rows)
    }

    fn digests(&mut self) -> Result<Vec<DigestRow>> {
        Ok(self.digests.clone())
    }

    fn digest(&mut self, seq: i64) -> Result<Option<DigestRow>> {
        Ok(self.digests.iter().find(|d| d.seq == seq).cloned())
    }

    fn get_meta(&mut self, name: &str) -> Result<Option<Vec<u8>>> {
        if !meta_name_ok(name) {
            return Ok(None);
        }
        match fs::read(self.dir.join("meta").join(name)) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    fn put_meta(&mut self, name: &str, value: &[u8]) -> Result<()> {
        if !meta_name_ok(name) {
            return Err(StoreError::Corrupt(
                "an audit meta name is not a plain name",
            ));
        }
        write_atomic(&self.dir.join("meta").join(name), value)
    }

    /// Drops the segments whose events all come before digest `keep_from_digest`, and the
    /// digests before it. Segments start at digest boundaries, so whole digest periods go.
    fn prune_before_digest(&mut self, keep_from_digest: i64, prune_record: &[u8]) -> Result<()> {
        let Some(keep) = self
            .digests
            .iter()
            .find(|d| d.seq == keep_from_digest)
            .cloned()
        else {
            return Err(StoreError::NotFound);
        };
        // The prune record first: a crash after it and before the deletion leaves a trail
        // that still verifies (events before the record may remain).
        self.put_meta(PRUNE_RECORD, prune_record)?;
        let mut doomed = Vec::new();
        while self.segments.len() > 1 && self.segments[1].first_seq <= keep.first_seq {
            doomed.push(self.segments.remove(0));
        }
        let kept: Vec<DigestRow> = self
            .digests
            .iter()
            .filter(|d| d.seq >= keep_from_digest)
            .cloned()
            .collect();
        let buf = encode_digest_log(&kept);
        write_atomic(&self.digests_path(), &buf)?;
        if self.mode == Mode::Write {
            self.digest_file = Some(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(self.digests_path())
                    .map_err(io)?,
            );
        }
        self.digest_len = buf.len() as u64;
        self.digests = kept;
        for seg in doomed {
            fs::remove_file(&seg.path).map_err(io)?;
        }
        sync_dir(&self.dir.join("segments"))
    }
}

/// Every event of the trail in `dir`, in stored order (inspection and repair tools).
pub fn read_events(dir: &Path) -> Result<Vec<AuditRow>> {
    let log = SegmentLog::open(dir, Mode::Read)?;
    let mut rows = Vec::new();
    let mut at = Position::default();
    loop {
        let (page, next) = log.read_page(at, 10_000)?;
        if page.is_empty() {
            return Ok(rows);
        }
        rows.extend(page);
        at = next;
    }
}

/// Replaces the events of the trail in `dir` with `rows`, as one segment (tools that
/// rewrite a trail offline, and tests that play an attacker who knows the format).
pub fn replace_events(dir: &Path, rows: &[AuditRow]) -> Result<()> {
    let segments = dir.join("segments");
    for entry in fs::read_dir(&segments).map_err(io)? {
        fs::remove_file(entry.map_err(io)?.path()).map_err(io)?;
    }
    let first = rows.first().map_or(1, |r| r.seq);
    write_atomic(&segments.join(segment_name(first)), &encode_segment(rows))
}

/// Replaces the digests of the trail in `dir` (see [`replace_events`]).
pub fn replace_digests(dir: &Path, digests: &[DigestRow]) -> Result<()> {
    write_atomic(&dir.join("digests.log"), &encode_digest_log(digests))
}

/// Makes everything written to `file` durable (`fdatasync`).
pub fn sync(file: &File) -> Result<()> {
    file.sync_data().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64) -> AuditRow {
        AuditRow {
            seq,
            event_id: format!("e{seq}"),
            account: "111122223333".into(),
            recipient_account: "111122223333".into(),
            region: "us-east-1".into(),
            time_ms: seq * 10,
            event_name: "Decrypt".into(),
            event_source: "kms.amazonaws.com".into(),
            read_only: true,
            username: (seq % 2 == 0).then(|| "alice".into()),
            access_key_id: None,
            resources: vec![("AWS::KMS::Key".into(), format!("arn:{seq}"))],
            record: format!("{{\"n\":{seq}}}"),
            hash: [u8::try_from(seq % 256).unwrap(); 32],
        }
    }

    fn digest(seq: i64, first: i64, last: i64) -> DigestRow {
        DigestRow {
            seq,
            first_seq: first,
            last_seq: last,
            time_ms: 5,
            document: format!("doc{seq}"),
            signature: vec![1, 2, 3],
        }
    }

    #[test]
    fn events_and_digests_round_trip_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SegmentLog::open(dir.path(), Mode::Write).unwrap();
        let first: Vec<_> = (1..=600).map(row).collect();
        log.append(&first, Some(&digest(1, 1, 600))).unwrap();
        log.rotate().unwrap();
        let second: Vec<_> = (601..=700).map(row).collect();
        log.append(&second, None).unwrap();
        drop(log);

        let mut log = SegmentLog::open(dir.path(), Mode::Read).unwrap();
        assert_eq!(log.segment_starts(), [1, 601]);
        assert_eq!(log.tail().unwrap().0, 700);
        assert_eq!(
            log.events(599, 602).unwrap(),
            (599..=602).map(row).collect::<Vec<_>>()
        );
        assert_eq!(log.events_after(695, 10).unwrap().len(), 5);
        assert_eq!(log.last_event().unwrap(), Some(row(700)));
        assert_eq!(log.digests().unwrap(), [digest(1, 1, 600)]);
        // Seeking again uses the positions remembered by the first scan.
        assert_eq!(log.events(513, 513).unwrap(), [row(513)]);
    }

    #[test]
    fn events_are_read_back_where_the_writer_and_the_scan_say_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SegmentLog::open(dir.path(), Mode::Write).unwrap();
        let first = log
            .write_events(&(1..=3).map(row).collect::<Vec<_>>())
            .unwrap();
        sync(first.file.as_deref().unwrap()).unwrap();
        log.rotate().unwrap();
        let second = log
            .write_events(&(4..=5).map(row).collect::<Vec<_>>())
            .unwrap();
        sync(second.file.as_deref().unwrap()).unwrap();
        assert_eq!((first.segment, second.segment), (1, 4));
        let written: Vec<Location> = first
            .offsets
            .iter()
            .map(|&offset| Location { segment: 1, offset })
            .chain(
                second
                    .offsets
                    .iter()
                    .map(|&offset| Location { segment: 4, offset }),
            )
            .collect();
        let mut scanned = Vec::new();
        let mut reader = SegmentLog::open(dir.path(), Mode::Read).unwrap();
        reader
            .scan_located(1, |r, at| {
                scanned.push((r.seq, at));
                true
            })
            .unwrap();
        assert_eq!(
            scanned,
            (1..=5).zip(written.iter().copied()).collect::<Vec<_>>()
        );
        let mut heads = Vec::new();
        reader
            .scan_without_records(2, |r, at| {
                heads.push((r, at));
                true
            })
            .unwrap();
        let expected: Vec<(AuditRow, Location)> = (2..=5)
            .zip(written[1..].iter().copied())
            .map(|(seq, at)| {
                let mut head = row(seq);
                head.record.clear();
                (head, at)
            })
            .collect();
        assert_eq!(heads, expected);
        let mut events = EventReader::new(dir.path());
        for (seq, at) in scanned {
            assert_eq!(events.read(at).unwrap(), Some(row(seq)));
        }
        // Not the start of a record: an error, never another event.
        let inside = Location {
            segment: 1,
            offset: written[1].offset + 3,
        };
        assert!(events.read(inside).is_err());
        // A segment that is gone (pruned): nothing.
        let gone = Location {
            segment: 99,
            offset: HEADER_LEN,
        };
        assert_eq!(events.read(gone).unwrap(), None);
    }

    fn room(direct: bool) -> RoomAhead {
        if direct {
            RoomAhead::Direct { or_buffered: false }
        } else {
            RoomAhead::Buffered
        }
    }

    /// Waits until the helper made `at_least` bytes of room in `path`.
    fn wait_for_room(path: &Path, at_least: u64) -> u64 {
        for _ in 0..500 {
            let len = fs::metadata(path).unwrap().len();
            if len >= at_least {
                return len;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("no room was made ahead in {}", path.display());
    }

    /// A new trail in `dir` that makes room ahead (written directly or not), with events
    /// `1..=events` durable; the path of its first segment.
    fn log_with_room(dir: &Path, events: i64, direct: bool) -> (SegmentLog, PathBuf) {
        let mut log = SegmentLog::open(dir, Mode::Write).unwrap();
        log.make_room_ahead(8 << 20, room(direct)).unwrap();
        assert_eq!(
            log.appends_direct(),
            direct,
            "the test directory takes direct writes"
        );
        // The helper's first chunk before the events, every time: whether the events
        // came first decided how much room they were given (see below).
        let path = dir.join("segments").join(segment_name(1));
        wait_for_room(&path, 1 << 20);
        log.append(&(1..=events).map(row).collect::<Vec<_>>(), None)
            .unwrap();
        (log, path)
    }

    #[test]
    fn room_made_ahead_reads_as_the_end_and_is_cut_when_the_segment_is_sealed() {
        room_made_ahead_reads_as_the_end_and_is_cut_when_sealed(false);
    }

    #[test]
    fn direct_appends_into_room_made_ahead_read_as_the_end_and_are_cut_when_sealed() {
        room_made_ahead_reads_as_the_end_and_is_cut_when_sealed(true);
    }

    fn room_made_ahead_reads_as_the_end_and_is_cut_when_sealed(direct: bool) {
        let dir = tempfile::tempdir().unwrap();
        let (log, path) = log_with_room(dir.path(), 300, direct);
        let data_end = log.active_len();
        // The room made before the events is not grown for them until it falls below
        // half of what it should be (`MIN_AHEAD` here): at least that much is ahead.
        let len = wait_for_room(&path, data_end + (1 << 19));
        let zeros = vec![0u8; usize::try_from(len - data_end).unwrap()];
        let mut tail = zeros.clone();
        File::open(&path)
            .unwrap()
            .read_exact_at(&mut tail, data_end)
            .unwrap();
        assert!(tail == zeros, "the room is zeros");

        // Readers, and a writer opening the trail again, see the events and no torn tail.
        let mut reader = SegmentLog::open(dir.path(), Mode::Read).unwrap();
        assert_eq!(
            reader.events_after(0, 1000).unwrap(),
            (1..=300).map(row).collect::<Vec<_>>()
        );
        drop(log);
        let mut log = SegmentLog::open(dir.path(), Mode::Write).unwrap();
        assert!(
            !dir.path().join("torn").exists(),
            "room is not a torn append"
        );
        assert_eq!(log.active_len(), data_end);
        log.make_room_ahead(8 << 20, room(direct)).unwrap();
        log.append(
            &(301..=310).map(row).collect::<Vec<_>>(),
            Some(&digest(1, 1, 310)),
        )
        .unwrap();
        let sealed_end = log.active_len();

        // Sealed: the segment ends with its last frame; the next one gets room.
        log.rotate().unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), sealed_end);
        log.append(&[row(311)], None).unwrap();
        let next = dir.path().join("segments").join(segment_name(311));
        wait_for_room(&next, 1 << 20);
        drop(log);
        let mut log = SegmentLog::open(dir.path(), Mode::Read).unwrap();
        assert_eq!(
            log.events_after(0, 1000).unwrap(),
            (1..=311).map(row).collect::<Vec<_>>()
        );
        let (rows, _) = log.read_page(Position::default(), 1000).unwrap();
        assert_eq!(rows.len(), 311, "verification's reader sees no damage");
    }

    #[test]
    fn a_torn_append_into_room_made_ahead_is_cut_and_never_reappears() {
        a_torn_append_into_room_is_cut_and_never_reappears(false);
    }

    #[test]
    fn a_torn_direct_append_into_room_made_ahead_is_cut_and_never_reappears() {
        a_torn_append_into_room_is_cut_and_never_reappears(true);
    }

    fn a_torn_append_into_room_is_cut_and_never_reappears(direct: bool) {
        let dir = tempfile::tempdir().unwrap();
        let (log, path) = log_with_room(dir.path(), 3, direct);
        let good = log.active_len();
        wait_for_room(&path, good + 4096);
        drop(log);
        let len = fs::metadata(&path).unwrap().len();
        // A crash in the middle of the next batch: its later records reached the disk,
        // its first record's page did not.
        let mut batch = Vec::new();
        encode_event(&mut batch, &row(4));
        let second = batch.len();
        encode_event(&mut batch, &row(5));
        encode_event(&mut batch, &row(6));
        batch[..second].fill(0);
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .write_all_at(&batch, good)
            .unwrap();

        let mut log = SegmentLog::open(dir.path(), Mode::Write).unwrap();
        assert_eq!(log.tail().unwrap().0, 3);
        assert_eq!(fs::metadata(&path).unwrap().len(), len, "the room stays");
        let torn: Vec<_> = dir.path().join("torn").read_dir().unwrap().collect();
        assert_eq!(torn.len(), 1, "the torn records are kept aside");
        // The next batch fills the torn record's place exactly: the torn batch's later
        // records, right after it, must not be read as its successors.
        log.make_room_ahead(8 << 20, room(direct)).unwrap();
        log.append(&[row(4)], None).unwrap();
        drop(log);
        let mut log = SegmentLog::open(dir.path(), Mode::Read).unwrap();
        let expected: Vec<_> = (1..=4).map(row).collect();
        assert_eq!(log.events_after(0, 10).unwrap(), expected);
    }

    #[test]
    fn a_torn_tail_is_cut_at_open_and_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SegmentLog::open(dir.path(), Mode::Write).unwrap();
        log.append(&(1..=3).map(row).collect::<Vec<_>>(), None)
            .unwrap();
        let path = dir.path().join("segments").join(segment_name(1));
        let good = fs::metadata(&path).unwrap().len();
        drop(log);
        // Half of a fourth record.
        let mut extra = Vec::new();
        encode_event(&mut extra, &row(4));
        let f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all_at(&extra[..extra.len() / 2], good).unwrap();

        let mut reader = SegmentLog::open(dir.path(), Mode::Read).unwrap();
        assert_eq!(
            reader.events_after(0, 10).unwrap().len(),
            3,
            "a reader stops quietly"
        );

        let mut log = SegmentLog::open(dir.path(), Mode::Write).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), good);
        assert_eq!(log.tail().unwrap().0, 3);
        assert!(dir.path().join("torn").read_dir().unwrap().next().is_some());
        log.append(&[row(4)], None).unwrap();
        assert_eq!(
            log.events_after(0, 10).unwrap(),
            (1..=4).map(row).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_damaged_record_in_a_sealed_segment_is_an_error_for_readers() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SegmentLog::open(dir.path(), Mode::Write).unwrap();
        log.append(&(1..=3).map(row).collect::<Vec<_>>(), None)
            .unwrap();
        log.rotate().unwrap();
        log.append(&[row(4)], None).unwrap();
        drop(log);
        let path = dir.path().join("segments").join(segment_name(1));
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(b"X", HEADER_LEN + 40).unwrap();
        let mut reader = SegmentLog::open(dir.path(), Mode::Read).unwrap();
        assert!(reader.events_after(0, 10).is_err());
    }

    #[test]
    fn pruning_drops_whole_segments_and_old_digests() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SegmentLog::open(dir.path(), Mode::Write).unwrap();
        for (d, range) in [(1, 1..=10), (2, 11..=20), (3, 21..=30)] {
            let rows: Vec<_> = range.clone().map(row).collect();
            log.append(&rows, Some(&digest(d, *range.start(), *range.end())))
                .unwrap();
            log.rotate().unwrap();
        }
        log.prune_before_digest(3, b"record").unwrap();
        assert_eq!(log.segment_starts(), [21, 31]);
        assert_eq!(log.digests().unwrap(), [digest(3, 21, 30)]);
        assert_eq!(log.get_meta(PRUNE_RECORD).unwrap().unwrap(), b"record");
        drop(log);
        let mut log = SegmentLog::open(dir.path(), Mode::Write).unwrap();
        assert_eq!(log.events_after(0, 100).unwrap().first().unwrap().seq, 21);
        assert_eq!(log.tail().unwrap().0, 30);
    }
}
