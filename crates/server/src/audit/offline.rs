//! The audit commands that run without a server: verifying a data directory's trail or
//! exported files, and exporting a trail.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use keyhold_crypto::seal::{DomainKey, KeyFileRoot};
use keyhold_crypto::signing::SigningKey;
use keyhold_store::audit::AuditLog;
use keyhold_store::{MetaStore, SqliteAuditLog, SqliteStore};

use super::chain;
use super::export;
use super::verify::{self, FoundEvent, Report};

/// How the public key that signs the digests was established.
pub enum KeyTrust {
    /// Derived from the sealed private key, opened with the data directory's root key.
    Unsealed,
    /// Equal to the key pinned on the command line.
    Pinned,
    /// Taken from the trail itself: it proves the digests consistent, not authentic.
    SelfDeclared,
}

pub struct Verified {
    pub report: Report,
    pub fingerprint: String,
    pub trust: KeyTrust,
}

/// Verifies the trail in `data_dir`. With a readable root key file (`key_file`, default
/// `<data_dir>/root.key`) the signing key is unsealed to prove the stored public key
/// genuine; otherwise `pinned` (a hex public key) or the stored key is used.
pub async fn verify_data_dir(
    data_dir: &Path,
    key_file: Option<PathBuf>,
    pinned: Option<&str>,
) -> anyhow::Result<Verified> {
    let path = data_dir.join("audit.db");
    if !path.exists() {
        bail!("no audit trail at {}", path.display());
    }
    let mut log = SqliteAuditLog::open_read_only(&path)?;
    let stored =
        super::trail::stored_public_key(&mut log)?.context("the trail has no signing key")?;
    let (public_key, trust) = match unsealed_public_key(data_dir, key_file, &mut log).await {
        Some(key) => {
            if key != stored {
                bail!(
                    "the trail's stored public key is not the key sealed in this data directory: the trail was re-signed"
                );
            }
            (key, KeyTrust::Unsealed)
        }
        None => match pinned {
            Some(hex_key) => {
                let key = hex::decode(hex_key).context("--public-key must be hex")?;
                (key, KeyTrust::Pinned)
            }
            None => (stored, KeyTrust::SelfDeclared),
        },
    };
    let digests = log
        .digests()?
        .into_iter()
        .map(|d| verify::FoundDigest {
            document: d.document,
            signature: d.signature,
        })
        .collect::<Vec<_>>();
    let events = EventStream {
        log: &mut log,
        next: 1,
        buffer: Vec::new().into_iter(),
        done: false,
    };
    let report = verify::verify(events, &digests, &public_key);
    Ok(Verified {
        report,
        fingerprint: chain::fingerprint(&public_key),
        trust,
    })
}

/// Verifies exported files (a directory written by `export`, or one events file).
pub fn verify_exported(path: &Path, pinned: Option<&str>) -> anyhow::Result<Verified> {
    let exported = export::read(path)?;
    let (public_key, trust) = match (pinned, exported.public_key) {
        (Some(hex_key), declared) => {
            let key = hex::decode(hex_key).context("--public-key must be hex")?;
            if declared.is_some_and(|d| d != key) {
                bail!("the exported digests name another public key than the pinned one");
            }
            (key, KeyTrust::Pinned)
        }
        (None, Some(declared)) => (declared, KeyTrust::SelfDeclared),
        (None, None) => (Vec::new(), KeyTrust::SelfDeclared),
    };
    let report = verify::verify(exported.events, &exported.digests, &public_key);
    Ok(Verified {
        report,
        fingerprint: chain::fingerprint(&public_key),
        trust,
    })
}

/// Exports the trail of `data_dir` to `out`; returns (files, events).
pub fn export_data_dir(data_dir: &Path, out: &Path) -> anyhow::Result<(usize, usize)> {
    let mut log = SqliteAuditLog::open_read_only(&data_dir.join("audit.db"))?;
    let public_key =
        super::trail::stored_public_key(&mut log)?.context("the trail has no signing key")?;
    export::export(&mut log, &public_key, out)
}

async fn unsealed_public_key(
    data_dir: &Path,
    key_file: Option<PathBuf>,
    log: &mut SqliteAuditLog,
) -> Option<Vec<u8>> {
    let key_file = key_file.unwrap_or_else(|| data_dir.join("root.key"));
    let root = KeyFileRoot::load(&key_file).ok()?;
    let db = data_dir.join("keyhold.db");
    if !db.exists() {
        return None;
    }
    let store = SqliteStore::open(&db).ok()?;
    let sealed_domain = store.get_meta("domain_key.v1").await.ok()??;
    let domain = DomainKey::unseal(&root, &sealed_domain).ok()?;
    let sealed = log.get_meta("signing_key.sealed").ok()??;
    let pkcs8 = domain
        .unseal_secret("audit-signing-key", "ed25519", &sealed)
        .ok()?;
    Some(
        SigningKey::from_pkcs8(pkcs8.expose_secret())
            .ok()?
            .public_key(),
    )
}

/// The events of a trail in sequence order, read a page at a time.
struct EventStream<'a> {
    log: &'a mut SqliteAuditLog,
    next: i64,
    buffer: std::vec::IntoIter<FoundEvent>,
    done: bool,
}

impl Iterator for EventStream<'_> {
    type Item = FoundEvent;

    fn next(&mut self) -> Option<FoundEvent> {
        loop {
            if let Some(e) = self.buffer.next() {
                return Some(e);
            }
            if self.done {
                return None;
            }
            // Pages by stored position, so gaps and out-of-place rows are seen as stored.
            let rows = self.log.events_after(self.next - 1, 10_000).ok()?;
            if rows.is_empty() {
                self.done = true;
                return None;
            }
            self.next = rows.last().map_or(self.next, |r| r.seq + 1);
            self.buffer = rows
                .into_iter()
                .map(|r| FoundEvent {
                    stored_seq: Some(r.seq),
                    record: r.record,
                })
                .collect::<Vec<_>>()
                .into_iter();
        }
    }
}
