//! The audit commands that run without a server: verifying a data directory's trail or
//! exported files, and exporting a trail.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use keyhold_crypto::digest::sha256;
use keyhold_crypto::seal::{DomainKey, KeyFileRoot, RootKeyProvider};
use keyhold_store::audit::{AuditAnchor, AuditLog, PRUNE_RECORD};
use keyhold_store::segment::{Mode, Position, SegmentLog};
use keyhold_store::{MetaStore, PgAuditAnchor, PgStore, SqliteAuditAnchor, SqliteStore};

use super::anchor::{self, Anchor, Signed};
use super::verify::{self, Evidence, FoundDigest, FoundEvent, Report};
use super::{chain, export, trail};
use crate::seal::DOMAIN_KEY;

/// Where the root key that unseals the trail's signing key comes from.
pub enum RootSource<'a> {
    /// A root key file: the one given, else `<data_dir>/root.key` if it is there.
    KeyFile(Option<PathBuf>),
    /// A seal opened by the caller (a PKCS#11 token, combined Shamir shares), with the words
    /// that name it in errors.
    Provider(&'a dyn RootKeyProvider, &'a str),
}

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
    /// What could not be checked, and why (not failures).
    pub warnings: Vec<String>,
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
            warnings: Vec::new(),
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
    verify_data_dir_with(data_dir, key_file, pinned, &[]).await
}

/// [`verify_data_dir`], also against digest files kept elsewhere (`--digest`: files or
/// directories of them). The key store's anchor (`keyhold.db` next to the trail) is always
/// checked when the key store is there.
pub async fn verify_data_dir_with(
    data_dir: &Path,
    key_file: Option<PathBuf>,
    pinned: Option<&str>,
    digest_paths: &[PathBuf],
) -> anyhow::Result<Verified> {
    let key_store = KeyStore::Sqlite(data_dir.join("keyhold.db"));
    let root = RootSource::KeyFile(key_file);
    verify_trail(data_dir, &key_store, root, pinned, digest_paths).await
}

/// [`verify_data_dir_with`] with the root key from `root`: a key file, or a seal the caller
/// opened (what `keyhold restore` checks a backup with under a PKCS#11 or Shamir seal).
pub async fn verify_data_dir_under(
    data_dir: &Path,
    root: RootSource<'_>,
    pinned: Option<&str>,
    digest_paths: &[PathBuf],
) -> anyhow::Result<Verified> {
    let key_store = KeyStore::Sqlite(data_dir.join("keyhold.db"));
    verify_trail(data_dir, &key_store, root, pinned, digest_paths).await
}

/// The key store a trail is checked against: where its anchor and the sealed domain key
/// (which opens the trail's signing key) are.
#[derive(Clone, Debug)]
pub enum KeyStore {
    /// A SQLite key store: its database file (`<data_dir>/keyhold.db` for a node on SQLite).
    Sqlite(PathBuf),
    /// A PostgreSQL key store (`storage`), and the node whose anchor to check
    /// (`audit.anchor.NODE` for `node_id = "NODE"`, `audit.anchor` for `None`).
    Postgres {
        url: String,
        node_id: Option<String>,
    },
}

impl KeyStore {
    /// Names it without credentials.
    fn describe(&self) -> String {
        match self {
            Self::Sqlite(db) => db.display().to_string(),
            Self::Postgres { url, .. } => {
                keyhold_store::copy::Location::Postgres(url.clone()).describe()
            }
        }
    }
}

/// [`verify_data_dir_with`] against the anchor and the domain key of `key_store` — for a
/// node whose store is PostgreSQL (`keyhold audit verify --storage`), or the target of
/// `keyhold migrate-store`.
pub async fn verify_trail(
    data_dir: &Path,
    key_store: &KeyStore,
    root: RootSource<'_>,
    pinned: Option<&str>,
    digest_paths: &[PathBuf],
) -> anyhow::Result<Verified> {
    verify_trail_against(data_dir, key_store, root, pinned, digest_paths, Vec::new()).await
}

/// [`verify_trail`], also against signed digests found elsewhere (`extra`: where each was
/// found, and the digest): what the cluster chain recorded for the node.
pub(super) async fn verify_trail_against(
    data_dir: &Path,
    key_store: &KeyStore,
    root: RootSource<'_>,
    pinned: Option<&str>,
    digest_paths: &[PathBuf],
    extra: Vec<(String, Signed)>,
) -> anyhow::Result<Verified> {
    let mut log = open_trail(data_dir)?;
    let stored = trail::stored_public_key(&mut log)?.context("the trail has no signing key")?;
    let pinned = pinned.map(Pin::parse).transpose()?;
    if pinned.as_ref().is_some_and(|p| !p.matches(&stored)) {
        bail!("the trail's stored public key is not the pinned one: the trail was re-signed");
    }
    let (public_key, trust) = match unsealed_public_key(data_dir, key_store, root, &mut log).await?
    {
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
    let mut evidence = Evidence {
        outside: outside_digests(digest_paths)?,
        ..Evidence::default()
    };
    evidence
        .outside
        .extend(extra.into_iter().map(|(source, d)| (source, found(d))));
    if let Some(prune) = log.get_meta(PRUNE_RECORD)? {
        evidence.prunes.push(parse_prune(&prune)?);
    }
    let mut warnings = Vec::new();
    let mut anchor_lost = false;
    match key_store_anchor(key_store).await? {
        KeyStoreAnchor::Found(anchor) => {
            evidence.outside.push((
                "the key store's anchor".to_owned(),
                found(anchor.digest),
            ));
            evidence.prunes.extend(anchor.prune.map(found));
        }
        KeyStoreAnchor::Missing if !digests.is_empty() => anchor_lost = true,
        KeyStoreAnchor::Missing => {}
        KeyStoreAnchor::NoKeyStore => warnings.push(format!(
            "{} does not exist: the trail's end cannot be checked against the key store's anchor (give --digest files)",
            key_store.describe()
        )),
    }
    let mut events = EventStream::new(&mut log);
    let mut report = verify::verify(&mut events, &digests, &public_key, &evidence);
    if let Some(error) = events.error {
        return Err(error);
    }
    if anchor_lost {
        // The writer anchors every digest: a trail with digests and no anchor lost it.
        report.problems.push(
            "the key store holds no anchor for this trail although the trail has digests: the anchor was removed, so a truncated tail cannot be ruled out"
                .to_owned(),
        );
    }
    let mut verified = Verified::new(report, public_key, trust);
    verified.warnings = warnings;
    Ok(verified)
}

enum KeyStoreAnchor {
    Found(Anchor),
    Missing,
    NoKeyStore,
}

/// The anchor the key store holds.
async fn key_store_anchor(key_store: &KeyStore) -> anyhow::Result<KeyStoreAnchor> {
    let loaded = match key_store {
        KeyStore::Sqlite(db) => {
            if !db.exists() {
                return Ok(KeyStoreAnchor::NoKeyStore);
            }
            let mut store = SqliteAuditAnchor::open_read_only(db)
                .with_context(|| format!("opening {}", db.display()))?;
            store.load()?
        }
        KeyStore::Postgres { url, node_id } => {
            let mut store = PgAuditAnchor::connect_node(url, node_id.as_deref())?;
            // The anchor's client is synchronous (a thread of its own, for the trail's
            // writer): wait for it off the async runtime.
            tokio::task::spawn_blocking(move || store.load())
                .await?
                .with_context(|| format!("reading the audit anchor in {}", key_store.describe()))?
        }
    };
    Ok(match loaded {
        Some(bytes) => KeyStoreAnchor::Found(Anchor::parse(&bytes)?),
        None => KeyStoreAnchor::Missing,
    })
}

fn found(signed: Signed) -> FoundDigest {
    FoundDigest {
        document: signed.document,
        signature: signed.signature,
    }
}

/// A prune record as the trail stores it (`{"record", "signature"}`).
fn parse_prune(bytes: &[u8]) -> anyhow::Result<FoundDigest> {
    Ok(found(export::parse_prune_record(bytes)?))
}

/// The digests of `--digest` arguments, each named by its file.
fn outside_digests(paths: &[PathBuf]) -> anyhow::Result<Vec<(String, FoundDigest)>> {
    let mut out = Vec::new();
    for path in paths {
        for file in anchor::digest_files(path)? {
            let (signed, _) = anchor::read_digest_file(&file)?;
            out.push((format!("the digest file {}", file.display()), found(signed)));
        }
    }
    Ok(out)
}

/// Verifies exported files (a directory written by `export`, or one events file).
pub fn verify_exported(path: &Path, pinned: Option<&str>) -> anyhow::Result<Verified> {
    verify_exported_with(path, pinned, &[])
}

/// [`verify_exported`], also against digest files kept elsewhere.
pub fn verify_exported_with(
    path: &Path,
    pinned: Option<&str>,
    digest_paths: &[PathBuf],
) -> anyhow::Result<Verified> {
    let exported = export::read(path)?;
    let evidence = Evidence {
        prunes: exported.prune.into_iter().map(found).collect(),
        outside: outside_digests(digest_paths)?,
    };
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
    let report = verify::verify(exported.events, &exported.digests, &public_key, &evidence);
    Ok(Verified::new(report, public_key, trust))
}

/// What `reanchor` did.
pub enum Reanchored {
    /// The anchor now records this digest (sequence, last event).
    To { digest: i64, last_event: i64 },
    /// The trail has no digest: the anchor was removed.
    Cleared,
}

/// Accepts the trail of `data_dir` as it is now: the key store's anchor is set to the
/// trail's last digest (or removed if it has none), so that the writer starts again after
/// the trail lost events. The operator's recovery after a truncation, once the damaged
/// trail is preserved; it is the one way to make a truncated trail acceptable again, and
/// digest files kept elsewhere still show what was lost. Run it with the server stopped.
pub fn reanchor(data_dir: &Path) -> anyhow::Result<Reanchored> {
    let db = data_dir.join("keyhold.db");
    if !db.exists() {
        bail!("{} has no keyhold.db", data_dir.display());
    }
    let mut store =
        SqliteAuditAnchor::open(&db).with_context(|| format!("opening {}", db.display()))?;
    let mut log = if SegmentLog::exists(&data_dir.join("audit")) {
        Some(open_trail(data_dir)?)
    } else {
        None
    };
    let last = match log.as_mut() {
        Some(log) => log.last_digest()?,
        None => None,
    };
    let Some(last) = last else {
        store.clear()?;
        return Ok(Reanchored::Cleared);
    };
    let prune = match log.as_mut() {
        Some(log) => log
            .get_meta(PRUNE_RECORD)?
            .map(|b| export::parse_prune_record(&b))
            .transpose()?,
        None => None,
    };
    let anchor = Anchor {
        digest: Signed {
            document: last.document,
            signature: last.signature,
        },
        prune,
    };
    store.store(&anchor.to_bytes())?;
    Ok(Reanchored::To {
        digest: last.seq,
        last_event: last.last_seq,
    })
}

/// Exports the trail of `data_dir` to `out`; returns (files, events).
pub fn export_data_dir(data_dir: &Path, out: &Path) -> anyhow::Result<(usize, usize)> {
    let mut log = open_trail(data_dir)?;
    let public_key = trail::stored_public_key(&mut log)?.context("the trail has no signing key")?;
    export::export(&mut log, &public_key, out)
}

/// A `--public-key` value: the hex public key, or its fingerprint (hex SHA-256) as a
/// verification prints it.
pub(super) struct Pin(Vec<u8>);

impl Pin {
    pub(super) fn parse(text: &str) -> anyhow::Result<Self> {
        hex::decode(text.trim())
            .map(Self)
            .context("--public-key must be the hex public key or its fingerprint")
    }

    pub(super) fn matches(&self, public_key: &[u8]) -> bool {
        self.0 == public_key || self.0 == sha256(public_key)
    }
}

/// The public half of the trail's signing key, unsealed with the root key file: `None` when
/// there is no key file (none given and none at `<data_dir>/root.key`); an error when there
/// is one but it does not lead to the signing key, rather than quietly trusting less.
async fn unsealed_public_key(
    data_dir: &Path,
    key_store: &KeyStore,
    root: RootSource<'_>,
    log: &mut SegmentLog,
) -> anyhow::Result<Option<Vec<u8>>> {
    let loaded;
    let (root, describe): (&dyn RootKeyProvider, String) = match root {
        RootSource::Provider(root, describe) => (root, describe.to_owned()),
        RootSource::KeyFile(given) => {
            let key_file = match given {
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
            loaded = KeyFileRoot::load(&key_file)
                .with_context(|| format!("opening the root key file {}", key_file.display()))?;
            (&loaded, key_file.display().to_string())
        }
    };
    let sealed_domain = match key_store {
        KeyStore::Sqlite(db) => {
            if !db.exists() {
                bail!(
                    "{} does not exist, so the root key cannot unseal the trail's signing key",
                    db.display()
                );
            }
            let store =
                SqliteStore::open(db).with_context(|| format!("opening {}", db.display()))?;
            store.get_meta(DOMAIN_KEY).await?
        }
        KeyStore::Postgres { url, .. } => {
            let store = PgStore::connect_without_migrating(url)?;
            store
                .get_meta(DOMAIN_KEY)
                .await
                .with_context(|| format!("reading {}", key_store.describe()))?
        }
    }
    .with_context(|| format!("{} holds no domain key", key_store.describe()))?;
    let domain = DomainKey::unseal(root, &sealed_domain).map_err(|_| {
        anyhow::anyhow!(
            "the root key ({describe}) does not open this data directory's domain key: wrong root key or a damaged database"
        )
    })?;
    let key = trail::stored_signing_key(log, &domain)?
        .context("the trail has a public key but no sealed signing key")?;
    Ok(Some(key.public_key()))
}

/// The trail of `data_dir`, opened to read.
pub(super) fn open_trail(data_dir: &Path) -> anyhow::Result<SegmentLog> {
    let dir = data_dir.join("audit");
    if !SegmentLog::exists(&dir) {
        if data_dir.join("audit.db").exists() {
            bail!(
                "the audit trail of {} is still in its first format (audit.db): start the server once to convert it",
                data_dir.display()
            );
        }
        bail!("no audit trail at {}", dir.display());
    }
    SegmentLog::open(&dir, Mode::Read).with_context(|| format!("opening {}", dir.display()))
}

/// Rebuilds the lookup index of `data_dir`'s trail from its segments (`keyhold audit
/// reindex`, server stopped); returns how many events it indexed.
pub fn reindex(data_dir: &Path) -> anyhow::Result<usize> {
    open_trail(data_dir)?;
    super::index::rebuild(&data_dir.join("audit"))
}

/// The events of a trail in stored order, read a page at a time. A read that fails ends
/// the stream and is kept in `error`: the caller must not take the end for the trail's end.
struct EventStream<'a> {
    log: &'a mut SegmentLog,
    next: Position,
    buffer: std::vec::IntoIter<FoundEvent>,
    done: bool,
    error: Option<anyhow::Error>,
}

impl<'a> EventStream<'a> {
    fn new(log: &'a mut SegmentLog) -> Self {
        Self {
            log,
            next: Position::default(),
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
            // Pages by stored position, so gaps and out-of-place events are seen as stored.
            let (rows, next) = match self.log.read_page(self.next, 10_000) {
                Ok(page) => page,
                Err(e) => {
                    self.error = Some(
                        anyhow::Error::new(e).context("reading the trail's events in stored order"),
                    );
                    self.done = true;
                    return None;
                }
            };
            if rows.is_empty() {
                self.done = true;
                return None;
            }
            self.next = next;
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
