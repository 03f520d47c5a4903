//! The audit trail's append path, end to end: callers hand events to the trail and wait for
//! their durability receipts (durable mode). Reports events per second appended, chained,
//! synced and handed to the index (`cargo bench -p keyhold-server --bench audit_append`):
//!
//! - `append_durable`: 256 callers, each waiting for every event before the next, as
//!   requests do (one event each): bound by the callers' hand-offs and the sync latency.
//! - `append_durable_streamed`: 16 callers, each handing over 1,000 events and then
//!   waiting for all of them: what the log itself sustains (writer, syncer, indexer).

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use keyhold_crypto::seal::DomainKey;
use keyhold_server::audit::trail::{AuditTrail, TrailConfig};
use keyhold_server::audit::{Auditor, Receipts, ServiceEvent};
use keyhold_store::{SqliteAuditAnchor, SqliteStore};

/// The allocator the server runs with (`keyhold`'s `main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Concurrent callers, and events each sends per iteration.
const CALLERS: usize = 256;
const EACH: usize = 40;

fn event<'a>(details: &serde_json::Value, receipts: &'a Receipts) -> ServiceEvent<'a> {
    ServiceEvent {
        source: "kms.amazonaws.com",
        invoked_by: "kms.amazonaws.com",
        name: "Decrypt",
        account: "111122223333",
        region: "us-east-1",
        resources: vec![(
            "AWS::KMS::Key",
            "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
                .to_owned(),
        )],
        details: details.clone(),
        receipts: Some(receipts),
    }
}

fn append(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("keyhold.db");
    drop(SqliteStore::open(&db).expect("the key store"));
    let anchor = SqliteAuditAnchor::open(&db).expect("the anchor");
    let domain = DomainKey::generate().expect("a domain key");
    let trail = Arc::new(
        AuditTrail::open(
            &dir.path().join("audit"),
            &dir.path().join("audit.db"),
            Box::new(anchor),
            &domain,
            TrailConfig {
                // `AUDIT_APPENDS=buffered` measures appends through the page cache.
                direct_appends: std::env::var("AUDIT_APPENDS").as_deref() != Ok("buffered"),
                ..TrailConfig::default()
            },
        )
        .expect("the trail"),
    );
    // About the size of a Decrypt record's request parameters.
    let details = serde_json::json!({
        "encryptionContext": {"tenant": "acme", "purpose": "benchmark"},
        "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
        "keyId": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "padding": "x".repeat(400),
    });
    let details = Arc::new(details);

    let mut group = c.benchmark_group("audit");
    group.throughput(Throughput::Elements((CALLERS * EACH) as u64));
    group.sample_size(10);
    group.bench_function("append_durable", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut tasks = tokio::task::JoinSet::new();
                for _ in 0..CALLERS {
                    let trail = trail.clone();
                    let details = details.clone();
                    tasks.spawn(async move {
                        for _ in 0..EACH {
                            let receipts = Receipts::default();
                            trail.record_service_event(event(&details, &receipts));
                            receipts.wait().await.expect("the event is durable");
                        }
                    });
                }
                while tasks.join_next().await.is_some() {}
            });
        });
    });
    const STREAMS: usize = 16;
    const STREAMED: usize = 1000;
    group.throughput(Throughput::Elements((STREAMS * STREAMED) as u64));
    group.bench_function("append_durable_streamed", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut tasks = tokio::task::JoinSet::new();
                for _ in 0..STREAMS {
                    let trail = trail.clone();
                    let details = details.clone();
                    tasks.spawn(async move {
                        let receipts = Receipts::default();
                        for _ in 0..STREAMED {
                            trail.record_service_event(event(&details, &receipts));
                        }
                        receipts.wait().await.expect("the events are durable");
                    });
                }
                while tasks.join_next().await.is_some() {}
            });
        });
    });
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
