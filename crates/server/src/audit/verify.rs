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
        // Sequences come from the records (and digests) being checked, so any i64 can
        // arrive; an event numbered i64::MAX ends the trail rather than overflowing.
        match expected.checked_add(1) {
            Some(next) => expected = next,
            None => {
                report.problems.push(format!(
                    "event {expected} carries the largest sequence number there is: no genuine trail gets there"
                ));
                event_problem = true;
            }
        }
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
        report.unsealed = last
            .checked_sub(sealed_up_to)
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0);
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
            // Checked: the sequences are whatever the (signed) documents say.
            if Some(doc.digest_sequence) != prev.digest_sequence.checked_add(1) {
                report.problems.push(format!(
                    "digests {}..{} are missing",
                    prev.digest_sequence.saturating_add(1),
                    doc.digest_sequence.saturating_sub(1)
                ));
            } else if Some(doc.first_event_sequence) != prev.last_event_sequence.checked_add(1) {
                report.problems.push(format!(
                    "digest {} does not continue digest {}: its events start at {}, not {}",
                    doc.digest_sequence,
                    prev.digest_sequence,
                    doc.first_event_sequence,
                    prev.last_event_sequence.saturating_add(1)
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

#[cfg(test)]
mod tests {
    //! Regression tests for what fuzzing (`fuzz/fuzz_targets/audit_chain.rs`) reaches:
    //! sequence numbers are read from the documents being verified, so the extremes of i64
    //! must give a report, not an arithmetic overflow (a panic in debug builds, a wrapped
    //! number in release builds).

    use keyhold_crypto::signing::SigningKey;

    use super::*;

    fn document(digest: i64, first: i64, last: i64, previous: Option<String>) -> String {
        DigestDocument {
            digest_sequence: digest,
            first_event_sequence: first,
            last_event_sequence: last,
            last_event_hash: "00".repeat(32),
            previous_digest_hash: previous,
            digest_time: "2026-12-03T00:00:00Z".into(),
            public_key_fingerprint: String::new(),
        }
        .to_text()
    }

    fn signed(key: &SigningKey, document: String) -> FoundDigest {
        FoundDigest {
            signature: key.sign(document.as_bytes()),
            document,
        }
    }

    #[test]
    fn a_digest_numbered_i64_max_followed_by_another_is_reported() {
        let (key, _) = SigningKey::generate().unwrap();
        let first = document(i64::MAX, 1, 1, None);
        let second = document(i64::MAX, 2, 2, Some(chain::digest_hash(&first)));
        let digests = [signed(&key, first), signed(&key, second)];
        let report = verify(Vec::new(), &digests, &key.public_key());
        assert!(
            report.problems.iter().any(|p| p.contains("are missing")),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn a_digest_continuing_from_event_i64_max_is_reported() {
        let (key, _) = SigningKey::generate().unwrap();
        let first = document(1, 1, i64::MAX, None);
        let second = document(2, i64::MIN, 5, Some(chain::digest_hash(&first)));
        let digests = [signed(&key, first), signed(&key, second)];
        let report = verify(Vec::new(), &digests, &key.public_key());
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains("does not continue")),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn a_digest_sealing_up_to_a_negative_event_leaves_nothing_unsealed() {
        let (key, _) = SigningKey::generate().unwrap();
        let digests = [signed(&key, document(1, 1, i64::MIN, None))];
        let report = verify(Vec::new(), &digests, &key.public_key());
        assert_eq!(report.unsealed, 0);
    }

    #[test]
    fn an_event_numbered_i64_max_ends_the_walk_with_a_problem() {
        let (key, _) = SigningKey::generate().unwrap();
        let (record, _) = chain::link(r#"{"eventName":"Decrypt"}"#, i64::MAX, &GENESIS);
        let anchor = document(1, 1, i64::MAX - 1, None);
        let digests = [signed(&key, anchor)];
        let events = vec![FoundEvent {
            stored_seq: None,
            record,
        }];
        let report = verify(events, &digests, &key.public_key());
        assert_eq!(report.events, 1);
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains("largest sequence number")),
            "{:?}",
            report.problems
        );
    }
}
