//! Exporting a trail to files in CloudTrail's shape, and reading them back for
//! verification.
//!
//! One pair of files per digest period: `NNNNNN-events.json` (`{"Records": [...]}`, each
//! record byte for byte as hashed) and `NNNNNN-digest.json` (`{"digest": "<document>",
//! "signature": "<base64>", "publicKey": "<base64>"}`); events after the last digest go to
//! `unsealed-events.json`.

use std::path::Path;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use keyhold_store::audit::{AuditLog, AuditRow, PRUNE_RECORD};
use serde_json::value::RawValue;

use super::anchor::Signed;
use super::verify::{FoundDigest, FoundEvent};

/// The file holding the latest prune record, when retention pruned the trail's head.
const PRUNE_FILE: &str = "prune-record.json";

/// A prune record as stored and exported: `{"record": "<document>", "signature": "<base64>"}`.
pub fn prune_record_json(prune: &Signed) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "record": prune.document,
        "signature": STANDARD.encode(&prune.signature),
    }))
    .unwrap_or_default()
}

/// Reads what [`prune_record_json`] wrote.
pub fn parse_prune_record(bytes: &[u8]) -> anyhow::Result<Signed> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).context("the prune record is not readable")?;
    Ok(Signed {
        document: value["record"].as_str().unwrap_or_default().to_owned(),
        signature: STANDARD
            .decode(value["signature"].as_str().unwrap_or_default())
            .context("the prune record's signature is not base64")?,
    })
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
        let digest = serde_json::json!({
            "digest": d.document,
            "signature": STANDARD.encode(&d.signature),
            "publicKey": STANDARD.encode(public_key),
        });
        std::fs::write(
            out.join(format!("{:06}-digest.json", d.seq)),
            serde_json::to_vec_pretty(&digest)?,
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
        let value: serde_json::Value = serde_json::from_slice(&std::fs::read(file)?)
            .with_context(|| format!("{} is not a digest file", file.display()))?;
        let document = value["digest"].as_str().unwrap_or_default().to_owned();
        let signature = STANDARD
            .decode(value["signature"].as_str().unwrap_or_default())
            .unwrap_or_default();
        if public_key.is_none() {
            public_key = value["publicKey"]
                .as_str()
                .and_then(|k| STANDARD.decode(k).ok());
        }
        digests.push(FoundDigest {
            document,
            signature,
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
