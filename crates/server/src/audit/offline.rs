//! The audit commands that run without a server: verifying a data directory's trail or
//! exported files, and exporting a trail.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use keyhold_crypto::digest::sha256;
use keyhold_crypto::seal::{DomainKey, KeyFileRoot};
use keyhold_store::audit::AuditLog;
use keyhold_store::{MetaStore, SqliteAuditLog, SqliteStore};

use super::verify::{self, FoundEvent, Report};
use super::{chain, export, trail};
use crate::seal::DOMAIN_KEY;

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
    /// The key the digests were checked with.
    pub public_key: Vec<u8>,
    /// Its SHA-256, as the digests name it.
    pub fingerprint: String,
    pub trust: KeyTrust,
}

impl Verified {
    fn new(report: Report, public_key: Vec<u8>, trust: KeyTrust) -> Self {
        Self {
            report,
            fingerprint: chain::fingerprint(&public_key),
            public_key,
            trust,
        }
    }

    /// The public key in hex: what `--public-key` takes to pin it.
    pub fn public_key_hex(&self) -> String {
        hex::encode(&self.public_key)
    }
}

/// Verifies the trail in `data_dir`. With a root key file (`key_file`, default
/// `<data_dir>/root.key`) the signing key is unsealed to prove the stored public key
/// genuine, and a key file that is there but does not open the trail is an error; without
/// one, the stored key is used, and `pinned` (the hex public key or its fingerprint) proves
/// it. A pinned key must be the key the trail is signed with. An event that cannot be read
/// is an error, not the trail's end.
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
    let stored = trail::stored_public_key(&mut log)?.context("the trail has no signing key")?;
    let pinned = pinned.map(Pin::parse).transpose()?;
    if pinned.as_ref().is_some_and(|p| !p.matches(&stored)) {
        bail!("the trail's stored public key is not the pinned one: the trail was re-signed");
    }
    let (public_key, trust) = match unsealed_public_key(data_dir, key_file, &mut log).await? {
        Some(key) => {
            if key != stored {
                bail!(
                    "the trail's stored public key is not the key sealed in this data directory: the trail was re-signed"
                );
            }
            (key, KeyTrust::Unsealed)
        }
        None if pinned.is_some() => (stored, KeyTrust::Pinned),
        None => (stored, KeyTrust::SelfDeclared),
    };
    let digests = log
        .digests()?
        .into_iter()
        .map(|d| verify::FoundDigest {
            document: d.document,
            signature: d.signature,
        })
        .collect::<Vec<_>>();
    let mut events = EventStream::new(&mut log);
    let report = verify::verify(&mut events, &digests, &public_key);
    if let Some(error) = events.error {
        return Err(error);
    }
    Ok(Verified::new(report, public_key, trust))
}

/// Verifies exported files (a directory written by `export`, or one events file).
pub fn verify_exported(path: &Path, pinned: Option<&str>) -> anyhow::Result<Verified> {
    let exported = export::read(path)?;
    let (public_key, trust) = match (pinned, exported.public_key) {
        (Some(pinned), declared) => {
            let pin = Pin::parse(pinned)?;
            let key = match declared {
                Some(declared) if pin.matches(&declared) => declared,
                Some(_) => {
                    bail!("the exported digests name another public key than the pinned one")
                }
                None => pin.0,
            };
            (key, KeyTrust::Pinned)
        }
        (None, Some(declared)) => (declared, KeyTrust::SelfDeclared),
        (None, None) => (Vec::new(), KeyTrust::SelfDeclared),
    };
    let report = verify::verify(exported.events, &exported.digests, &public_key);
    Ok(Verified::new(report, public_key, trust))
}

/// Exports the trail of `data_dir` to `out`; returns (files, events).
pub fn export_data_dir(data_dir: &Path, out: &Path) -> anyhow::Result<(usize, usize)> {
    let mut log = SqliteAuditLog::open_read_only(&data_dir.join("audit.db"))?;
    let public_key = trail::stored_public_key(&mut log)?.context("the trail has no signing key")?;
    export::export(&mut log, &public_key, out)
}

/// A `--public-key` value: the hex public key, or its fingerprint (hex SHA-256) as a
/// verification prints it.
struct Pin(Vec<u8>);

impl Pin {
    fn parse(text: &str) -> anyhow::Result<Self> {
        hex::decode(text.trim())
            .map(Self)
            .context("--public-key must be the hex public key or its fingerprint")
    }

    fn matches(&self, public_key: &[u8]) -> bool {
        self.0 == public_key || self.0 == sha256(public_key)
    }
}

/// The public half of the trail's signing key, unsealed with the root key file: `None` when
/// there is no key file (none given and none at `<data_dir>/root.key`); an error when there
/// is one but it does not lead to the signing key, rather than quietly trusting less.
async fn unsealed_public_key(
    data_dir: &Path,
    key_file: Option<PathBuf>,
    log: &mut SqliteAuditLog,
) -> anyhow::Result<Option<Vec<u8>>> {
    let key_file = match key_file {
        Some(given) => given,
        None => {
            let default = data_dir.join("root.key");
            if !default
                .try_exists()
                .with_context(|| format!("looking for {}", default.display()))?
            {
                return Ok(None);
            }
            default
        }
    };
    let root = KeyFileRoot::load(&key_file)
        .with_context(|| format!("opening the root key file {}", key_file.display()))?;
    let db = data_dir.join("keyhold.db");
    if !db.exists() {
        bail!(
            "{} has no keyhold.db, so the root key cannot unseal the trail's signing key",
            data_dir.display()
        );
    }
    let store = SqliteStore::open(&db).with_context(|| format!("opening {}", db.display()))?;
    let sealed_domain = store
        .get_meta(DOMAIN_KEY)
        .await?
        .with_context(|| format!("{} holds no domain key", db.display()))?;
    let domain = DomainKey::unseal(&root, &sealed_domain).map_err(|_| {
        anyhow::anyhow!(
            "the root key ({}) does not open this data directory's domain key: wrong root key or a damaged database",
            key_file.display()
        )
    })?;
    let key = trail::stored_signing_key(log, &domain)?
        .context("the trail has a public key but no sealed signing key")?;
    Ok(Some(key.public_key()))
}

/// The events of a trail in sequence order, read a page at a time. A read that fails ends
/// the stream and is kept in `error`: the caller must not take the end for the trail's end.
struct EventStream<'a> {
    log: &'a mut SqliteAuditLog,
    next: i64,
    buffer: std::vec::IntoIter<FoundEvent>,
    done: bool,
    error: Option<anyhow::Error>,
}

impl<'a> EventStream<'a> {
    fn new(log: &'a mut SqliteAuditLog) -> Self {
        Self {
            log,
            next: 1,
            buffer: Vec::new().into_iter(),
            done: false,
            error: None,
        }
    }
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
            let rows = match self.log.events_after(self.next - 1, 10_000) {
                Ok(rows) => rows,
                Err(e) => {
                    let after = self.next - 1;
                    self.error = Some(anyhow::Error::new(e).context(format!(
                        "reading the trail's events after stored position {after}"
                    )));
                    self.done = true;
                    return None;
                }
            };
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
