//! The audit trail's decoder and verifier (`keyhold-server`'s `audit::chain` and
//! `audit::verify`, compiled in through `keyhold_fuzz::audit`): reading a record's chain
//! link, digest documents, and walking a whole trail of records and signed digests.
//!
//! Input: one flags byte, then one record per line; a line `digest <document>` is a digest.
//! Flag bit 0: the harness signs the digest documents with its own key (the verifier's
//! logic past the signature check is only reachable with valid signatures, which the fuzzer
//! cannot forge); otherwise they carry no signature. Flag bit 1: events carry their stored
//! sequence (as the SQLite trail does) rather than none (as exported files do).
//!
//! Two shorthand lines let the fuzzer build well-formed trails from a few numbers, so that
//! mutating a number explores the verifier's sequence logic rather than JSON syntax:
//! `event S` is a record linked as event `S` to the record before it, and `seal D F L` a
//! digest numbered `D` over events `F..=L` that names the hash of event `L` (if present),
//! the previous digest and the harness's key. Numbers saturate at the ends of i64, so a
//! mutation that adds digits reaches the extremes.

#![no_main]

use keyhold_crypto::digest::sha256;
use keyhold_fuzz::audit::chain::{self, DigestDocument, Link};
use keyhold_fuzz::audit::verify::{self, FoundDigest, FoundEvent};
use keyhold_fuzz::keys;
use libfuzzer_sys::fuzz_target;

/// A decimal integer, clamped to i64: a mutation that adds digits lands on the extremes.
fn saturating(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(match text.parse::<i64>() {
        Ok(n) => n,
        Err(_) if text.starts_with('-') => i64::MIN,
        Err(_) => i64::MAX,
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let key = keys::audit_signing_key();
    let sign = flags & 1 != 0;
    let stored = flags & 2 != 0;

    let mut events = Vec::new();
    let mut digests = Vec::new();
    let mut hashes = std::collections::HashMap::new();
    let mut previous_event = chain::GENESIS;
    let mut previous_digest: Option<String> = None;
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        let numbers: Vec<i64> = line.split(' ').skip(1).filter_map(saturating).collect();
        if let (true, [sequence]) = (line.starts_with("event "), numbers.as_slice()) {
            let (record, hash) =
                chain::link(r#"{"eventName":"Decrypt"}"#, *sequence, &previous_event);
            previous_event = hash;
            hashes.insert(*sequence, hash);
            lines.push(record);
        } else if let (true, [digest, first, last]) =
            (line.starts_with("seal "), numbers.as_slice())
        {
            let document = DigestDocument {
                digest_sequence: *digest,
                first_event_sequence: *first,
                last_event_sequence: *last,
                last_event_hash: hex::encode(hashes.get(last).copied().unwrap_or(chain::GENESIS)),
                previous_digest_hash: previous_digest.take(),
                digest_time: "2026-12-03T00:00:00Z".to_owned(),
                public_key_fingerprint: chain::fingerprint(&key.public_key()),
            }
            .to_text();
            previous_digest = Some(chain::digest_hash(&document));
            lines.push(format!("digest {document}"));
        } else {
            lines.push(line.to_owned());
        }
    }
    for line in &lines {
        let line = line.as_str();
        if let Some(document) = line.strip_prefix("digest ") {
            if let Some(doc) = DigestDocument::parse(document) {
                // What the trail writes reads back the same.
                assert_eq!(DigestDocument::parse(&doc.to_text()), Some(doc.clone()));
                let _ = chain::decode_hash(&doc.last_event_hash);
            }
            digests.push(FoundDigest {
                document: document.to_owned(),
                signature: if sign {
                    key.sign(document.as_bytes())
                } else {
                    Vec::new()
                },
            });
            continue;
        }
        let link = chain::read_link(line);
        events.push(FoundEvent {
            stored_seq: stored.then_some(events.len() as i64 + 1),
            record: line.to_owned(),
        });

        // Linking a record that has no link yet gives one that reads back.
        if link.is_none()
            && let Ok(serde_json::Value::Object(map)) = serde_json::from_str(line)
            && !map.contains_key(chain::CHAIN_KEY)
        {
            let previous = sha256(line.as_bytes());
            let sequence = events.len() as i64;
            let (linked, hash) = chain::link(line, sequence, &previous);
            assert_eq!(hash, sha256(linked.as_bytes()));
            assert_eq!(
                chain::read_link(&linked),
                Some(Link {
                    sequence,
                    previous_hash: previous
                }),
                "linked record: {linked}"
            );
        }
    }

    let report = verify::verify(events, &digests, &key.public_key(), &verify::Evidence::default());
    assert_eq!(report.digests as usize, digests.len());
    if report.ok() {
        assert!(report.unsealed <= report.events);
    }
});
