//! How fast the audit trail's lookup index takes events, for a number of distinct resources
//! (docs/performance.md, "The audit index's per-event cost"): the indexer's per-event cost
//! must not grow with the number of keys, secrets and parameters events name.
//!
//! `cargo run --release -p keyhold-store --example audit_index_add -- [RESOURCES] [EVENTS]`
//! (defaults 100000 and 400000): adds EVENTS Decrypt-like entries, each naming one of
//! RESOURCES key ARNs at random, in transactions of 4,096 as the indexer does, and prints
//! events/s and the index file's size.

use std::time::Instant;

use keyhold_store::SqliteAuditIndex;
use keyhold_store::audit::IndexEntry;
use keyhold_store::segment::Location;

fn main() {
    let mut args = std::env::args().skip(1);
    let resources: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let events: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(400_000);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("index.db");
    let mut index = SqliteAuditIndex::open(&path).expect("the index opens");
    // A small xorshift generator: the same sequence on every run, no dependency.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    // The entries are made first, so that only the index's work is timed.
    let mut batches = Vec::new();
    let mut seq = 0;
    while seq < events {
        let batch: Vec<IndexEntry> = (0..4096.min(events - seq))
            .map(|i| {
                let seq = seq + i + 1;
                let key = next() % resources;
                let id = next();
                IndexEntry {
                    seq,
                    location: Location {
                        segment: 1,
                        offset: 64 + 1200 * u64::try_from(seq).unwrap_or(0),
                    },
                    time_ms: 1_765_000_000_000 + seq / 20,
                    account: "111122223333".into(),
                    recipient_account: "111122223333".into(),
                    region: "us-east-1".into(),
                    event_id: format!(
                        "019aeb3c-{:04x}-7{:03x}-8{:03x}-{:012x}",
                        (seq >> 12) & 0xffff,
                        seq & 0xfff,
                        id & 0xfff,
                        id >> 16 & 0xffff_ffff_ffff
                    ),
                    event_name: "Decrypt".into(),
                    event_source: "kms.amazonaws.com".into(),
                    read_only: true,
                    username: None,
                    access_key_id: Some("AKIAIOSFODNN7EXAMPLE".into()),
                    resources: vec![(
                        "AWS::KMS::Key".into(),
                        format!("arn:aws:kms:us-east-1:111122223333:key/{key:08x}-1234-4abc-8def-0123456789ab"),
                    )],
                }
            })
            .collect();
        seq += i64::try_from(batch.len()).unwrap_or(0);
        batches.push(batch);
    }
    let started = Instant::now();
    for batch in &batches {
        index.add(batch).expect("the batch is indexed");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(path.with_extension("db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    println!(
        "resources={resources} events={events} events/s={:.0} us/event={:.2} index_mb={:.1}",
        events as f64 / elapsed,
        elapsed * 1e6 / events as f64,
        size as f64 / 1e6
    );
}
