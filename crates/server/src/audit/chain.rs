//! How events are chained and digests signed: what the trail writes and the verifier reads.
//!
//! Every record carries, inside the bytes that are hashed,
//! `"keyholdChain": {"sequence": N, "previousHash": "<hex SHA-256 of record N-1>"}` (the first
//! record's previous hash is 64 zeros). Changing, removing, inserting or reordering a record
//! breaks a link. A digest, signed with the trail's Ed25519 key, states that events
//! `first..=last` end in a given hash and names the previous digest's hash, so a truncated
//! tail and a forged chain are caught too.

use std::fmt::Write as _;

use keyhold_crypto::digest::sha256;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The member of each record that holds its link.
pub const CHAIN_KEY: &str = "keyholdChain";
/// The previous hash of the first event.
pub const GENESIS: [u8; 32] = [0; 32];

/// Adds the link to a record (a JSON object's text) and returns its final text and hash.
pub fn link(record: &str, sequence: i64, previous: &[u8; 32]) -> (String, [u8; 32]) {
    link_owned(record.to_owned(), sequence, previous)
}

/// [`link`], in place: the record's own buffer grows by the link (the writer links every
/// event, so it copies none).
pub fn link_owned(mut record: String, sequence: i64, previous: &[u8; 32]) -> (String, [u8; 32]) {
    let object_end = record.trim_end().strip_suffix('}').map(str::len);
    match object_end {
        Some(len) => record.truncate(len),
        None => {
            record.clear();
            record.push('{');
        }
    }
    if !record.trim_end().ends_with('{') {
        record.push(',');
    }
    let mut hex = [0u8; 64];
    // 64 hex digits for 32 bytes: the lengths match, so this cannot fail.
    let _ = hex::encode_to_slice(previous, &mut hex);
    record.push('"');
    record.push_str(CHAIN_KEY);
    record.push_str("\":{\"sequence\":");
    // Writing to a `String` cannot fail.
    let _ = write!(record, "{sequence}");
    record.push_str(",\"previousHash\":\"");
    record.push_str(std::str::from_utf8(&hex).unwrap_or_default());
    record.push_str("\"}}");
    let hash = sha256(record.as_bytes());
    (record, hash)
}

/// The link a record's text claims.
#[derive(Debug, PartialEq, Eq)]
pub struct Link {
    pub sequence: i64,
    pub previous_hash: [u8; 32],
}

/// Reads the link of a record; `None` if it has none or it is malformed.
pub fn read_link(record: &str) -> Option<Link> {
    let value: Value = serde_json::from_str(record).ok()?;
    let chain = value.get(CHAIN_KEY)?;
    let sequence = chain.get("sequence")?.as_i64()?;
    let previous_hash = decode_hash(chain.get("previousHash")?.as_str()?)?;
    Some(Link {
        sequence,
        previous_hash,
    })
}

/// What a digest states (field names as written in the signed document).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DigestDocument {
    pub digest_sequence: i64,
    pub first_event_sequence: i64,
    pub last_event_sequence: i64,
    /// Hex SHA-256 of the last event's record.
    pub last_event_hash: String,
    /// Hex SHA-256 of the previous digest's document (`None` for the first digest).
    pub previous_digest_hash: Option<String>,
    pub digest_time: String,
    /// Hex SHA-256 of the public key that signs the digest.
    pub public_key_fingerprint: String,
}

impl DigestDocument {
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

/// A signed statement that retention removed events `1..=pruned_through_event_sequence` and
/// digests `1..=pruned_through_digest_sequence`: what lets a verifier accept a trail whose
/// head is gone because it was pruned, and reject one whose head was deleted. Each prune
/// writes a new one covering everything pruned so far (the latest one is all it takes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneDocument {
    pub pruned_through_event_sequence: i64,
    /// Hex SHA-256 of the last pruned event: the next event's `previousHash`.
    pub last_pruned_event_hash: String,
    pub pruned_through_digest_sequence: i64,
    /// Hex SHA-256 of the last pruned digest's document: the next digest's
    /// `previousDigestHash`.
    pub last_pruned_digest_hash: String,
    pub prune_time: String,
    pub public_key_fingerprint: String,
}

impl PruneDocument {
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

/// Hex SHA-256 of a public key: how digests name the key that signs them.
pub fn fingerprint(public_key: &[u8]) -> String {
    hex::encode(sha256(public_key))
}

/// Hex SHA-256 of a digest document's text: the next digest's `previousDigestHash`.
pub fn digest_hash(document: &str) -> String {
    hex::encode(sha256(document.as_bytes()))
}

/// A hash as records and digests write it (64 hex digits); `None` if malformed.
pub fn decode_hash(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_round_trip() {
        let (text, hash) = link(r#"{"eventName":"Decrypt"}"#, 7, &[1; 32]);
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["eventName"], "Decrypt");
        let (empty, _) = link("{}", 1, &[0; 32]);
        assert!(serde_json::from_str::<Value>(&empty).is_ok());
        assert_eq!(hash, sha256(text.as_bytes()));
        let formatted = format!(
            "{{\"eventName\":\"Decrypt\",\"{CHAIN_KEY}\":{{\"sequence\":7,\"previousHash\":\"{}\"}}}}",
            hex::encode([1; 32])
        );
        assert_eq!(text, formatted, "the exact bytes verifiers hash");
        assert_eq!(link("not json", 1, &[0; 32]).0, link("{}", 1, &[0; 32]).0);
        assert_eq!(
            read_link(&text),
            Some(Link {
                sequence: 7,
                previous_hash: [1; 32]
            })
        );
        assert_eq!(read_link("{}"), None);
    }
}
