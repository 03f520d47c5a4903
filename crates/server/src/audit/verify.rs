//! Walks a trail and reports the first event that was changed, removed, inserted or
//! reordered, and any gap or forgery in its digests. Shared by `keyhold audit verify` over
//! a data directory and over exported files.

use std::collections::HashMap;

use keyhold_crypto::digest::sha256;
use keyhold_crypto::signing::verify_signature;

use super::chain::{self, DigestDocument, GENESIS, PruneDocument, decode_hash};

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

/// What vouches for the trail from outside its events and digests.
#[derive(Default)]
pub struct Evidence {
    /// Signed prune records (the trail's own, the anchor's): the latest valid one says how
    /// far retention legitimately removed the head.
    pub prunes: Vec<FoundDigest>,
    /// Signed digests kept outside the trail — the key store's anchor, digest files given
    /// with `--digest` — each with where it came from. The trail must reach each of them.
    pub outside: Vec<(String, FoundDigest)>,
}

/// The newest digest seen (in the trail or outside it).
#[derive(Clone, Debug)]
pub struct NewestDigest {
    pub sequence: i64,
    pub last_event: i64,
    /// As the digest states it (ISO 8601).
    pub time: String,
    /// Where it was found.
    pub source: String,
}

/// What a walk found.
#[derive(Debug, Default)]
pub struct Report {
    pub events: u64,
    pub digests: u64,
    /// Events after the last digest: chained but not yet sealed by a signature.
    pub unsealed: u64,
    /// The newest digest that verified: how fresh the trail's seal is.
    pub newest_digest: Option<NewestDigest>,
    /// The prune record the head was checked against, if retention pruned it.
    pub pruned_through: Option<i64>,
    /// Every failure, the first event problem first.
    pub problems: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies `events` (in stored order) against `digests` (in order), `public_key`, and what
/// vouches for the trail from outside (`evidence`).
pub fn verify(
    events: impl IntoIterator<Item = FoundEvent>,
    digests: &[FoundDigest],
    public_key: &[u8],
    evidence: &Evidence,
) -> Report {
    let mut report = Report::default();
    let prune = check_prunes(&evidence.prunes, public_key, &mut report);
    report.pruned_through = prune.as_ref().map(|p| p.pruned_through_event_sequence);
    let documents = check_digests(digests, public_key, prune.as_ref(), &mut report);
    // The digest that ends at each event (the first one, if several claim to), decoded once.
    let mut sealing: HashMap<i64, (i64, Option<[u8; 32]>)> = HashMap::new();
    for d in &documents {
        sealing
            .entry(d.last_event_sequence)
            .or_insert_with(|| (d.digest_sequence, decode_hash(&d.last_event_hash)));
    }

    let mut events = events.into_iter().peekable();
    let first_claimed = events
        .peek()
        .and_then(|e| chain::read_link(&e.record))
        .map(|l| l.sequence);
    let (mut expected, mut previous, mut event_problem) =
        head(first_claimed, prune.as_ref(), &mut report);

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
            event_problem = true;
        }
        let sealed_up_to = documents.last().map_or(0, |d| d.last_event_sequence);
        report.unsealed = last
            .checked_sub(sealed_up_to)
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0);
    }
    report.newest_digest = documents.last().map(|d| NewestDigest {
        sequence: d.digest_sequence,
        last_event: d.last_event_sequence,
        time: d.digest_time.clone(),
        source: "the trail".to_owned(),
    });
    check_outside(
        &evidence.outside,
        &documents,
        digests,
        public_key,
        prune.as_ref(),
        (last, event_problem),
        &mut report,
    );
    report
}

/// Where the event walk starts: event 1, or just after a signed prune record's last pruned
/// event. A trail that starts later without one had its head deleted. Returns the expected
/// first sequence, its previous hash, and whether the head is already a problem.
fn head(
    first_claimed: Option<i64>,
    prune: Option<&PruneDocument>,
    report: &mut Report,
) -> (i64, [u8; 32], bool) {
    let Some(first) = first_claimed.filter(|f| *f > 1) else {
        return (1, GENESIS, false);
    };
    match prune {
        Some(p) if p.pruned_through_event_sequence == first - 1 => {
            match decode_hash(&p.last_pruned_event_hash) {
                Some(anchor) => (first, anchor, false),
                None => {
                    report
                        .problems
                        .push("the prune record's last event hash is malformed".to_owned());
                    (first, GENESIS, true)
                }
            }
        }
        Some(p) if p.pruned_through_event_sequence < first - 1 => {
            report.problems.push(format!(
                "events {}..{} are missing at the head: retention pruned only events 1..{}, so they were deleted",
                p.pruned_through_event_sequence.saturating_add(1),
                first - 1,
                p.pruned_through_event_sequence
            ));
            (first, GENESIS, true)
        }
        Some(p) => {
            report.problems.push(format!(
                "the trail starts at event {first} but the prune record says events 1..{} were pruned: events were inserted",
                p.pruned_through_event_sequence
            ));
            (first, GENESIS, true)
        }
        None => {
            report.problems.push(format!(
                "the trail starts at event {first} but no signed prune record covers events 1..{}: they were deleted",
                first - 1
            ));
            (first, GENESIS, true)
        }
    }
}

/// The latest prune record that verifies (the one that pruned furthest); a prune record that
/// does not verify is a problem.
fn check_prunes(
    prunes: &[FoundDigest],
    public_key: &[u8],
    report: &mut Report,
) -> Option<PruneDocument> {
    let fingerprint = chain::fingerprint(public_key);
    let mut best: Option<PruneDocument> = None;
    for found in prunes {
        let doc = PruneDocument::parse(&found.document);
        let valid = verify_signature(public_key, found.document.as_bytes(), &found.signature);
        match doc {
            Some(doc) if valid && doc.public_key_fingerprint == fingerprint => {
                if best.as_ref().is_none_or(|b| {
                    b.pruned_through_event_sequence < doc.pruned_through_event_sequence
                }) {
                    best = Some(doc);
                }
            }
            _ => report
                .problems
                .push("a prune record does not verify: it was forged or changed".to_owned()),
        }
    }
    best
}

/// Checks digests kept outside the trail: each must verify, and the trail must still hold
/// it (byte for byte) and every event it covers — unless retention pruned it.
fn check_outside(
    outside: &[(String, FoundDigest)],
    documents: &[DigestDocument],
    digests: &[FoundDigest],
    public_key: &[u8],
    prune: Option<&PruneDocument>,
    (last, event_problem): (i64, bool),
    report: &mut Report,
) {
    let fingerprint = chain::fingerprint(public_key);
    for (source, found) in outside {
        let doc = DigestDocument::parse(&found.document);
        let valid = verify_signature(public_key, found.document.as_bytes(), &found.signature);
        let Some(doc) = doc.filter(|d| valid && d.public_key_fingerprint == fingerprint) else {
            report.problems.push(format!(
                "{source} does not verify with the trail's signing key: it was forged, or the trail was re-signed"
            ));
            continue;
        };
        if report
            .newest_digest
            .as_ref()
            .is_none_or(|n| n.sequence < doc.digest_sequence)
        {
            report.newest_digest = Some(NewestDigest {
                sequence: doc.digest_sequence,
                last_event: doc.last_event_sequence,
                time: doc.digest_time.clone(),
                source: source.clone(),
            });
        }
        if prune.is_some_and(|p| doc.digest_sequence <= p.pruned_through_digest_sequence) {
            continue; // retention removed it, as the signed prune record says
        }
        let held = documents
            .iter()
            .position(|d| d.digest_sequence == doc.digest_sequence);
        match held {
            None => {
                let (trail_digest, trail_event) = documents
                    .last()
                    .map_or((0, 0), |d| (d.digest_sequence, d.last_event_sequence));
                report.problems.push(format!(
                    "the trail was truncated: {source} is digest {} over events up to {}, but the trail's digests end at {trail_digest} (events up to {trail_event}) and its events at {last}",
                    doc.digest_sequence, doc.last_event_sequence
                ));
            }
            Some(_) if !digests.iter().any(|d| d.document == found.document) => {
                report.problems.push(format!(
                    "the trail's digest {} is not the one {source} holds: the trail was replaced",
                    doc.digest_sequence
                ));
            }
            Some(_) if !event_problem && last < doc.last_event_sequence => {
                report.problems.push(format!(
                    "the trail was truncated: events {}..{} are missing ({source} covers them)",
                    last + 1,
                    doc.last_event_sequence
                ));
            }
            Some(_) => {}
        }
    }
}

/// Checks the digests' signatures, sequence, coverage and chain; returns the readable ones.
fn check_digests(
    digests: &[FoundDigest],
    public_key: &[u8],
    prune: Option<&PruneDocument>,
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
        } else if doc.digest_sequence == 1 {
            if doc.first_event_sequence != 1 || doc.previous_digest_hash.is_some() {
                report
                    .problems
                    .push("digest 1 does not start the trail".to_owned());
            }
        } else {
            check_first_kept_digest(&doc, prune, report);
        }
        previous_hash = Some(chain::digest_hash(&digest.document));
        out.push(doc);
    }
    out
}

/// The first digest of a trail whose head is gone must continue the signed prune record.
fn check_first_kept_digest(
    doc: &DigestDocument,
    prune: Option<&PruneDocument>,
    report: &mut Report,
) {
    match prune {
        None => report.problems.push(format!(
            "digests 1..{} are missing and no signed prune record covers them: they were deleted",
            doc.digest_sequence.saturating_sub(1)
        )),
        Some(p) if p.pruned_through_digest_sequence < doc.digest_sequence.saturating_sub(1) => {
            report.problems.push(format!(
                "digests {}..{} are missing at the head: retention pruned only digests 1..{}, so they were deleted",
                p.pruned_through_digest_sequence.saturating_add(1),
                doc.digest_sequence.saturating_sub(1),
                p.pruned_through_digest_sequence
            ))
        }
        Some(p)
            if p.pruned_through_digest_sequence == doc.digest_sequence.saturating_sub(1)
                && (doc.previous_digest_hash.as_deref() != Some(&p.last_pruned_digest_hash)
                    || doc.first_event_sequence != p.pruned_through_event_sequence.saturating_add(1)) =>
        {
            report.problems.push(format!(
                "digest {} does not continue the prune record: one of them was replaced",
                doc.digest_sequence
            ))
        }
        Some(_) => {}
    }
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
        let report = verify(
            Vec::new(),
            &digests,
            &key.public_key(),
            &Evidence::default(),
        );
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
        let report = verify(
            Vec::new(),
            &digests,
            &key.public_key(),
            &Evidence::default(),
        );
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
        let report = verify(
            Vec::new(),
            &digests,
            &key.public_key(),
            &Evidence::default(),
        );
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
        // Without a prune record the head is already reported missing; what matters here
        // is that the walk reports instead of overflowing.
        let report = verify(events, &digests, &key.public_key(), &Evidence::default());
        assert_eq!(report.events, 1);
        assert!(!report.ok());
    }
}
