//! Walks a trail and reports the first event that was changed, removed, inserted or
//! reordered, and any gap or forgery in its digests. Shared by `keyhold audit verify` over
//! a data directory and over exported files.

use std::collections::HashMap;

use keyhold_crypto::digest::sha256;
use keyhold_crypto::signing::verify_signature;

use super::chain::{self, DigestDocument, GENESIS, decode_hash};

/// One event as found: its position-given sequence (the store's column, if any) and text.
pub struct FoundEvent {
    pub stored_seq: Option<i64>,
    pub record: String,
}

/// One digest as found.
pub struct FoundDigest {
    pub document: String,
    pub signature: Vec<u8>,
}

/// What a walk found.
#[derive(Debug, Default)]
pub struct Report {
    pub events: u64,
    pub digests: u64,
    /// Events after the last digest: chained but not yet sealed by a signature.
    pub unsealed: u64,
    /// Every failure, the first event problem first.
    pub problems: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies `events` (in stored order) against `digests` (in order) and `public_key`.
pub fn verify(
    events: impl IntoIterator<Item = FoundEvent>,
    digests: &[FoundDigest],
    public_key: &[u8],
) -> Report {
    let mut report = Report::default();
    let documents = check_digests(digests, public_key, &mut report);
    // The digest that ends at each event (the first one, if several claim to), decoded once.
    let mut sealing: HashMap<i64, (i64, Option<[u8; 32]>)> = HashMap::new();
    for d in &documents {
        sealing
            .entry(d.last_event_sequence)
            .or_insert_with(|| (d.digest_sequence, decode_hash(&d.last_event_hash)));
    }

    let mut events = events.into_iter().peekable();
    // Where the walk starts: 1, or just after a digest that anchors a pruned trail.
    let first_claimed = events
        .peek()
        .and_then(|e| chain::read_link(&e.record))
        .map(|l| l.sequence);
    let mut event_problem = false;
    let (mut expected, mut previous) = match first_claimed {
        Some(first) if first > 1 => match sealing.get(&(first - 1)) {
            Some((_, anchor)) => (first, anchor.unwrap_or(GENESIS)),
            None => {
                report.problems.push(format!(
                    "the trail starts at event {first} but no digest anchors it: events 1..{} were removed",
                    first - 1
                ));
                event_problem = true;
                (first, GENESIS)
            }
        },
        _ => (1, GENESIS),
    };

    for (position, event) in events.enumerate() {
        report.events += 1;
        if event_problem {
            continue;
        }
        let Some(link) = chain::read_link(&event.record) else {
            report.problems.push(format!(
                "the event at position {} (expected event {expected}) has no readable chain link: it was changed",
                position + 1
            ));
            event_problem = true;
            continue;
        };
        if let Some(stored) = event.stored_seq.filter(|s| *s != link.sequence) {
            report.problems.push(format!(
                "the row stored as event {stored} holds event {}: events were inserted or reordered",
                link.sequence
            ));
            event_problem = true;
            continue;
        }
        if link.sequence > expected {
            report.problems.push(format!(
                "events {expected}..{} are missing: they were removed",
                link.sequence - 1
            ));
            event_problem = true;
            continue;
        }
        if link.sequence < expected {
            report.problems.push(format!(
                "event {} appears again after event {}: events were inserted or reordered",
                link.sequence,
                expected - 1
            ));
            event_problem = true;
            continue;
        }
        if link.previous_hash != previous {
            report.problems.push(format!(
                "event {} does not follow event {}: event {} was changed, or events were inserted or reordered",
                link.sequence,
                link.sequence - 1,
                link.sequence - 1
            ));
            event_problem = true;
            continue;
        }
        let hash = sha256(event.record.as_bytes());
        if let Some((digest_sequence, signed)) = sealing.get(&link.sequence)
            && *signed != Some(hash)
        {
            report.problems.push(format!(
                "event {} was changed: digest {digest_sequence} signs a different event",
                link.sequence
            ));
            event_problem = true;
            continue;
        }
        previous = hash;
        expected += 1;
    }

    let last = expected - 1;
    if !event_problem {
        if let Some(d) = documents
            .iter()
            .rev()
            .find(|d| d.last_event_sequence > last)
        {
            report.problems.push(format!(
                "events {}..{} are missing: they were removed (digest {} covers them)",
                last + 1,
                d.last_event_sequence,
                d.digest_sequence
            ));
        }
        let sealed_up_to = documents.last().map_or(0, |d| d.last_event_sequence);
        report.unsealed = u64::try_from(last - sealed_up_to).unwrap_or(0);
    }
    report
}

/// Checks the digests' signatures, sequence, coverage and chain; returns the readable ones.
fn check_digests(
    digests: &[FoundDigest],
    public_key: &[u8],
    report: &mut Report,
) -> Vec<DigestDocument> {
    let fingerprint = chain::fingerprint(public_key);
    let mut out: Vec<DigestDocument> = Vec::new();
    let mut previous_hash: Option<String> = None;
    for (i, digest) in digests.iter().enumerate() {
        report.digests += 1;
        if !verify_signature(public_key, digest.document.as_bytes(), &digest.signature) {
            report.problems.push(format!(
                "digest at position {} does not verify: it was forged or changed",
                i + 1
            ));
            continue;
        }
        let Some(doc) = DigestDocument::parse(&digest.document) else {
            report.problems.push(format!(
                "digest at position {} is not a digest document",
                i + 1
            ));
            continue;
        };
        if doc.public_key_fingerprint != fingerprint {
            report.problems.push(format!(
                "digest {} names another signing key",
                doc.digest_sequence
            ));
        }
        if let Some(prev) = out.last() {
            if doc.digest_sequence != prev.digest_sequence + 1 {
                report.problems.push(format!(
                    "digests {}..{} are missing",
                    prev.digest_sequence + 1,
                    doc.digest_sequence - 1
                ));
            } else if doc.first_event_sequence != prev.last_event_sequence + 1 {
                report.problems.push(format!(
                    "digest {} does not continue digest {}: its events start at {}, not {}",
                    doc.digest_sequence,
                    prev.digest_sequence,
                    doc.first_event_sequence,
                    prev.last_event_sequence + 1
                ));
            } else if doc.previous_digest_hash != previous_hash {
                report.problems.push(format!(
                    "digest {} does not follow digest {}: one of them was replaced",
                    doc.digest_sequence, prev.digest_sequence
                ));
            }
        } else if doc.digest_sequence == 1
            && (doc.first_event_sequence != 1 || doc.previous_digest_hash.is_some())
        {
            report
                .problems
                .push("digest 1 does not start the trail".to_owned());
        }
        previous_hash = Some(chain::digest_hash(&digest.document));
        out.push(doc);
    }
    out
}
