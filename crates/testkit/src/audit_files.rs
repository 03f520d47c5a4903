//! Reading and rewriting a data directory's audit trail files directly: what tests use to
//! look at the stored records, and to play an attacker who edits the files.

use std::path::{Path, PathBuf};

use keyhold_store::audit::{AuditLog, AuditRow, DigestRow};
use keyhold_store::segment::{self, Mode, SegmentLog};

fn trail(data_dir: &Path) -> PathBuf {
    data_dir.join("audit")
}

/// Every stored event, in stored order (what is durable: a durable-mode response comes
/// after its event is).
pub fn rows(data_dir: &Path) -> Vec<AuditRow> {
    segment::read_events(&trail(data_dir)).expect("the audit trail reads")
}

/// Every stored CloudTrail record, in order, parsed.
pub fn records(data_dir: &Path) -> Vec<serde_json::Value> {
    rows(data_dir)
        .iter()
        .map(|r| serde_json::from_str(&r.record).expect("a record is JSON"))
        .collect()
}

/// The stored digests, in order.
pub fn digests(data_dir: &Path) -> Vec<DigestRow> {
    let mut log = SegmentLog::open(&trail(data_dir), Mode::Read).expect("the audit trail opens");
    log.digests().expect("the digests read")
}

/// Rewrites the trail's events as `edit` leaves them (one segment, checksums valid): an
/// attacker who knows the format. The server must be stopped.
pub fn rewrite_events(data_dir: &Path, edit: impl FnOnce(&mut Vec<AuditRow>)) {
    let mut all = rows(data_dir);
    edit(&mut all);
    segment::replace_events(&trail(data_dir), &all).expect("the events are rewritten");
}

/// Rewrites the trail's digests as `edit` leaves them. The server must be stopped.
pub fn rewrite_digests(data_dir: &Path, edit: impl FnOnce(&mut Vec<DigestRow>)) {
    let mut all = digests(data_dir);
    edit(&mut all);
    segment::replace_digests(&trail(data_dir), &all).expect("the digests are rewritten");
}

/// Damages the stored bytes of event `seq` without fixing its checksum: a record that no
/// longer reads. The server must be stopped.
pub fn damage_event(data_dir: &Path, seq: i64) {
    let segments = trail(data_dir).join("segments");
    let entries = std::fs::read_dir(&segments).expect("the segments list");
    for entry in entries {
        let path = entry.expect("a segment").path();
        let mut bytes = std::fs::read(&path).expect("a segment reads");
        // After the 16-byte header: frames of `len: u32 | crc32: u32 | body`, the body
        // starting with its kind (1 byte) and the event's sequence (i64).
        let mut at = 16;
        while at + 8 <= bytes.len() {
            let word = |from: usize, n: usize| -> u64 {
                bytes[from..from + n]
                    .iter()
                    .rev()
                    .fold(0, |acc, b| (acc << 8) | u64::from(*b))
            };
            let len = usize::try_from(word(at, 4)).expect("a frame length");
            let body = at + 8;
            if word(body + 1, 8).cast_signed() == seq {
                bytes[body + len - 2] ^= 0xff;
                std::fs::write(&path, bytes).expect("the segment is written");
                return;
            }
            at = body + len;
        }
    }
    panic!("event {seq} is not stored");
}
