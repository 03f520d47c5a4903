//! Exporting a trail to files in CloudTrail's shape, and reading them back for
//! verification.
//!
//! One pair of files per digest period: `NNNNNN-events.json` (`{"Records": [...]}`, each
//! record byte for byte as hashed) and `NNNNNN-digest.json` (`{"digest": "<document>",
//! "signature": "<base64>", "publicKey": "<base64>"}`); events after the last digest go to
//! `unsealed-events.json`.

use std::path::Path;

use anyhow::Context as _;
use keyhold_store::audit::{AuditLog, AuditRow, PRUNE_RECORD};
use serde_json::value::RawValue;

use super::anchor::{PruneJson, Signed, digest_file_json, digest_file_name, read_digest_file};
use super::verify::{FoundDigest, FoundEvent};

/// The file holding the latest prune record, when retention pruned the trail's head.
const PRUNE_FILE: &str = "prune-record.json";

/// A prune record as stored and exported: `{"record": "<document>", "signature": "<base64>"}`.
pub fn prune_record_json(prune: &Signed) -> Vec<u8> {
    serde_json::to_vec(&PruneJson::from(prune)).unwrap_or_default()
}

/// Reads what [`prune_record_json`] wrote.
pub fn parse_prune_record(bytes: &[u8]) -> anyhow::Result<Signed> {
    let json: PruneJson =
        serde_json::from_slice(bytes).context("the prune record is not readable")?;
    json.try_into()
}

/// Writes the trail of `log` under `out`; returns (files written, events written).
pub fn export(
    log: &mut dyn AuditLog,
    public_key: &[u8],
    out: &Path,
) -> anyhow::Result<(usize, usize)> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut files = 0;
    let mut events = 0;
    let digests = log.digests()?;
    for d in &digests {
        let rows = log.events(d.first_seq, d.last_seq)?;
        events += rows.len();
        write_events(&out.join(format!("{:06}-events.json", d.seq)), &rows)?;
        let digest = Signed {
            document: d.document.clone(),
            signature: d.signature.clone(),
        };
        std::fs::write(
            out.join(digest_file_name(d.seq)),
            digest_file_json(&digest, public_key),
        )?;
        files += 2;
    }
    if let Some(prune) = log.get_meta(PRUNE_RECORD)? {
        std::fs::write(out.join(PRUNE_FILE), prune)?;
        files += 1;
    }
    let after = digests.last().map_or(1, |d| d.last_seq + 1);
    let tail = log.events(after, i64::MAX)?;
    if !tail.is_empty() {
        events += tail.len();
        write_events(&out.join("unsealed-events.json"), &tail)?;
        files += 1;
    }
    Ok((files, events))
}

fn write_events(path: &Path, rows: &[AuditRow]) -> anyhow::Result<()> {
    let mut text = String::from("{\"Records\": [\n");
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            text.push_str(",\n");
        }
        text.push_str(&row.record);
    }
    text.push_str("\n]}\n");
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// A trail read back from exported files.
pub struct Exported {
    /// Events in file order.
    pub events: Vec<FoundEvent>,
    /// Digests in order.
    pub digests: Vec<FoundDigest>,
    /// The public key the digest files name.
    pub public_key: Option<Vec<u8>>,
    /// The latest prune record, if the trail's head was pruned.
    pub prune: Option<Signed>,
}

/// Reads exported files (a directory as [`export`] writes it, or one events file) back.
pub fn read(path: &Path) -> anyhow::Result<Exported> {
    let mut event_files = Vec::new();
    let mut digest_files = Vec::new();
    if path.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        names.sort();
        for p in names {
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            if name.ends_with("-digest.json") {
                digest_files.push(p);
            } else if name.ends_with("events.json") && name != "unsealed-events.json" {
                event_files.push(p);
            }
        }
        let tail = path.join("unsealed-events.json");
        if tail.exists() {
            event_files.push(tail);
        }
    } else {
        event_files.push(path.to_path_buf());
    }

    let mut events = Vec::new();
    for file in &event_files {
        #[derive(serde::Deserialize)]
        struct Records<'a> {
            #[serde(rename = "Records", borrow)]
            records: Vec<&'a RawValue>,
        }
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let parsed: Records<'_> = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a CloudTrail file", file.display()))?;
        events.extend(parsed.records.into_iter().map(|r| FoundEvent {
            stored_seq: None,
            record: r.get().to_owned(),
        }));
    }

    let mut digests = Vec::new();
    let mut public_key = None;
    for file in &digest_files {
        let (digest, key) = read_digest_file(file)?;
        public_key = public_key.or(key);
        digests.push(FoundDigest {
            document: digest.document,
            signature: digest.signature,
        });
    }
    let prune_file = path.join(PRUNE_FILE);
    let prune = if path.is_dir() && prune_file.exists() {
        Some(parse_prune_record(&std::fs::read(&prune_file)?)?)
    } else {
        None
    };
    Ok(Exported {
        events,
        digests,
        public_key,
        prune,
    })
}
