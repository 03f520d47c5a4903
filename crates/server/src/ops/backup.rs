//! `keyhold backup` and `keyhold restore`: an online, consistent snapshot of a data
//! directory's state (`keyhold.db`) and audit trail (the files of `audit/` but its index)
//! in one file, and its checked restoration.
//!
//! A backup holds what the databases hold: metadata and *sealed* blobs. It never holds the
//! root key (the key file, the Shamir shares or the HSM key): a backup without its seal
//! decrypts nothing, and restoring needs the seal the data directory was created with.
//!
//! The file: the line `KEYHOLD-BACKUP 1`, one line of JSON (the manifest: each member's
//! name, length and SHA-256, and when and from where the backup was taken), then the
//! members' bytes in manifest order. `keyhold.db` is copied first (with SQLite's online
//! backup API, while the server runs), then the trail's meta files, its digests, and its
//! segments, oldest first: so the trail in the backup reaches at least as far as the anchor
//! the key store holds, and every digest in it covers events it holds. (The newest segment
//! may end in a record being appended during the copy: it was not acknowledged when the
//! copy began, and the restored trail cuts it at start.) A backup of the first format
//! (`KEYHOLD-BACKUP 1`: `keyhold.db` and `audit.db`) still restores; the trail is converted.
//!
//! Restore checks everything before it replaces anything: the members' hashes, the audit
//! trail (hash chain, signed digests, the anchor) and the seal (the configured root of
//! trust — the key file, the PKCS#11 token's key, or the Shamir shares the operator enters —
//! must unseal the backup's domain key and the trail's signing key). Only then are the
//! current databases moved aside (`<data_dir>/pre-restore-<time>/`) and the backup's put in
//! their place. Run it with the server stopped.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use keyhold_crypto::seal::{RootShare, ShamirRoot};
use serde::{Deserialize, Serialize};

use crate::audit::offline::{self, RootSource, Verified};
use crate::config::{Config, SealConfig};

const MAGIC: &str = "KEYHOLD-BACKUP 2";
/// The first format: the trail was one SQLite file.
const MAGIC_V1: &str = "KEYHOLD-BACKUP 1";
const MEMBERS_V1: [&str; 2] = ["keyhold.db", "audit.db"];
/// The key store, the first member; the rest are the trail's files under [`AUDIT`].
const STORE: &str = "keyhold.db";
const AUDIT: &str = "audit";

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    created: String,
    source: String,
    members: Vec<Member>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Member {
    name: String,
    len: u64,
    sha256: String,
}

/// What a backup holds.
#[derive(Debug)]
pub struct Summary {
    pub members: Vec<(String, u64)>,
}

/// Takes a backup of `data_dir` into `out` (which must not exist).
pub async fn backup(data_dir: &Path, out: &Path) -> anyhow::Result<Summary> {
    let (data_dir, out) = (data_dir.to_path_buf(), out.to_path_buf());
    tokio::task::spawn_blocking(move || backup_blocking(&data_dir, &out)).await?
}

fn backup_blocking(data_dir: &Path, out: &Path) -> anyhow::Result<Summary> {
    if out.exists() {
        bail!("{} exists already: give a new file", out.display());
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let staging = tempfile::tempdir_in(parent)
        .with_context(|| format!("creating a staging directory in {}", parent.display()))?;
    let source = data_dir.join(STORE);
    if !source.exists() {
        bail!("{} has no {STORE}", data_dir.display());
    }
    let copy = staging.path().join(STORE);
    keyhold_store::snapshot_sqlite(&source, &copy)
        .with_context(|| format!("taking a snapshot of {}", source.display()))?;
    let mut members = vec![(STORE.to_owned(), std::fs::read(&copy)?)];
    let trail = data_dir.join(AUDIT);
    if !keyhold_store::segment::SegmentLog::exists(&trail) {
        bail!(
            "{} has no audit trail in {AUDIT}/ (a data directory of the first format is converted when the server starts)",
            data_dir.display()
        );
    }
    for name in keyhold_store::segment::files_in_copy_order(&trail)? {
        let bytes = std::fs::read(trail.join(&name)).with_context(|| {
            format!(
                "copying {} (was the trail pruned during the backup? retry)",
                name.display()
            )
        })?;
        members.push((format!("{AUDIT}/{}", name.display()), bytes));
    }
    let manifest = Manifest {
        created: keyhold_proto::Timestamp::now().to_iso8601(),
        source: std::path::absolute(data_dir)
            .unwrap_or_else(|_| data_dir.to_path_buf())
            .display()
            .to_string(),
        members: members
            .iter()
            .map(|(name, bytes)| Member {
                name: name.clone(),
                len: bytes.len() as u64,
                sha256: hex::encode(keyhold_crypto::digest::sha256(bytes)),
            })
            .collect(),
    };
    let partial = staging.path().join("backup.partial");
    {
        let file = crate::data_dir::create_private_file(&partial)
            .and_then(|()| Ok(std::fs::OpenOptions::new().write(true).open(&partial)?))?;
        let mut w = std::io::BufWriter::new(file);
        writeln!(w, "{MAGIC}")?;
        writeln!(w, "{}", serde_json::to_string(&manifest)?)?;
        for (_, bytes) in &members {
            w.write_all(bytes)?;
        }
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
    }
    std::fs::rename(&partial, out)
        .with_context(|| format!("moving the backup to {}", out.display()))?;
    Ok(Summary {
        members: members
            .iter()
            .map(|(n, b)| (n.clone(), b.len() as u64))
            .collect(),
    })
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    /// Where the databases it replaced were moved (if there were any).
    pub previous: Option<PathBuf>,
    pub audit_events: u64,
}

/// Checks the backup at `input` against `config`'s seal and, if everything holds, makes it
/// the data directory's state. The server must be stopped. `shares` are the Shamir shares
/// that open a Shamir-sealed backup (at least its threshold); other seals take none.
pub async fn restore(
    config: &Config,
    input: &Path,
    shares: &[RootShare],
) -> anyhow::Result<Restored> {
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let staging = tempfile::tempdir_in(&data_dir)?;
    let input = input.to_path_buf();
    let dir = staging.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        unpack(&input, &dir)?;
        crate::audit::convert_first_format(&dir.join("audit.db"), &dir.join(AUDIT))
    })
    .await??;

    // The seal: the configured root of trust must open the backup's domain key, and the
    // audit trail must verify with the signing key it unseals.
    let verified = verify_under_seal(config, staging.path(), shares).await?;
    if !verified.report.ok() {
        bail!(
            "the backup's audit trail does not verify: {}",
            verified
                .report
                .problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    if !matches!(verified.trust, offline::KeyTrust::Unsealed) {
        bail!("the root key could not unseal the backup's signing key");
    }

    // Everything holds: move the current databases aside, then put the backup's in place.
    let stamp = keyhold_proto::Timestamp::now().as_millis();
    let aside = data_dir.join(format!("pre-restore-{stamp}"));
    let mut moved = false;
    for name in [STORE, "audit.db", AUDIT] {
        for suffix in ["", "-wal", "-shm"] {
            let current = data_dir.join(format!("{name}{suffix}"));
            if current.exists() {
                std::fs::create_dir_all(&aside)?;
                std::fs::rename(&current, aside.join(format!("{name}{suffix}")))?;
                moved = true;
            }
        }
    }
    for name in [STORE, AUDIT] {
        std::fs::rename(staging.path().join(name), data_dir.join(name))?;
    }
    Ok(Restored {
        previous: moved.then_some(aside),
        audit_events: verified.report.events,
    })
}

/// Verifies the unpacked backup in `dir` with the root key of `config`'s seal: the key file
/// (never created here), the PKCS#11 token's key, or the root key `shares` combine into
/// under the backup's own Shamir share set.
async fn verify_under_seal(
    config: &Config,
    dir: &Path,
    shares: &[RootShare],
) -> anyhow::Result<Verified> {
    let checking = "checking the backup's audit trail and seal";
    match &config.seal {
        Some(SealConfig::Pkcs11(token)) => {
            let root = crate::seal::pkcs11_root(token)?;
            let describe = format!(
                "key {} in the PKCS#11 token {}",
                token.key_label, token.token_label
            );
            let root = RootSource::Provider(&root, &describe);
            offline::verify_data_dir_under(dir, root, None, &[])
                .await
                .context(checking)
        }
        Some(SealConfig::Shamir) => {
            let backup = keyhold_store::SqliteStore::open(&dir.join(STORE))
                .context("opening the backup's key store")?;
            let set = crate::seal::shamir_set(&backup)
                .await
                .context("the backup was not taken under a Shamir seal")?;
            drop(backup);
            // A data directory that is Shamir-sealed already is protected by its own set:
            // the shares must open its domain key under its own threshold, so a backup cannot
            // bring in a set (or a threshold) of its own making.
            let current = current_shamir_seal(config).await?;
            let threshold = current.as_ref().map_or(set.threshold, |(s, _)| s.threshold);
            if shares.len() < usize::from(threshold) {
                bail!(
                    "the backup is sealed by {} of {} Shamir shares: {} given",
                    threshold,
                    set.shares,
                    shares.len()
                );
            }
            let root = ShamirRoot::combine(shares, threshold)
                .map_err(|_| anyhow::anyhow!("the shares given do not combine into a root key"))?;
            if let Some((_, sealed)) = current {
                keyhold_crypto::seal::DomainKey::unseal(&root, &sealed).map_err(|_| {
                    anyhow::anyhow!(
                        "the shares given do not open this data directory's seal: a backup restores only under the seal it was taken with"
                    )
                })?;
            }
            let root = RootSource::Provider(&root, "the Shamir shares given");
            offline::verify_data_dir_under(dir, root, None, &[])
                .await
                .context(checking)
        }
        None | Some(SealConfig::KeyFile { .. }) => {
            let key_file = config
                .key_file_path()
                .context("a key-file seal names its key file")?;
            if !key_file.exists() {
                bail!(
                    "the root key file {} does not exist: a backup restores only under the seal it was taken with",
                    key_file.display()
                );
            }
            let root = RootSource::KeyFile(Some(key_file));
            offline::verify_data_dir_under(dir, root, None, &[])
                .await
                .context(checking)
        }
    }
}

/// The share set and sealed domain key of the data directory being restored into, if it
/// holds a Shamir-sealed key store already.
async fn current_shamir_seal(
    config: &Config,
) -> anyhow::Result<Option<(crate::seal::ShamirSet, Vec<u8>)>> {
    let db = config.database_path();
    if !db.exists() {
        return Ok(None);
    }
    let store = keyhold_store::SqliteStore::open(&db)
        .with_context(|| format!("opening {}", db.display()))?;
    let Ok(set) = crate::seal::shamir_set(&store).await else {
        return Ok(None);
    };
    let sealed = keyhold_store::MetaStore::get_meta(&store, crate::seal::DOMAIN_KEY)
        .await?
        .with_context(|| format!("{} has a share set but no domain key", db.display()))?;
    Ok(Some((set, sealed)))
}

/// Reads a backup file into `dir`, checking its format and every member's hash.
fn unpack(input: &Path, dir: &Path) -> anyhow::Result<()> {
    let file =
        std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?;
    let mut r = BufReader::new(file);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let first_format = match line.trim_end() {
        MAGIC => false,
        MAGIC_V1 => true,
        _ => bail!("{} is not a Keyhold backup", input.display()),
    };
    line.clear();
    r.read_line(&mut line)?;
    let manifest: Manifest = serde_json::from_str(&line).context("the backup's manifest")?;
    let names: Vec<&str> = manifest.members.iter().map(|m| m.name.as_str()).collect();
    let well_formed = if first_format {
        names == MEMBERS_V1
    } else {
        names.first() == Some(&STORE) && names[1..].iter().all(|n| is_trail_member(n))
    };
    if !well_formed {
        bail!("the backup holds members this Keyhold does not restore: {names:?}");
    }
    for member in &manifest.members {
        let mut bytes = Vec::new();
        (&mut r).take(member.len).read_to_end(&mut bytes)?;
        if bytes.len() as u64 != member.len {
            bail!("the backup is truncated in {}", member.name);
        }
        if hex::encode(keyhold_crypto::digest::sha256(&bytes)) != member.sha256 {
            bail!("{} in the backup does not match its hash", member.name);
        }
        let path = dir.join(&member.name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        crate::data_dir::create_private_file(&path)?;
        std::fs::write(&path, &bytes)?;
    }
    if r.read(&mut [0u8; 1])? != 0 {
        bail!("the backup has bytes after its last member");
    }
    Ok(())
}

/// Whether a backup member names a trail file as `files_in_copy_order` lists them (no other path
/// is written on restore).
fn is_trail_member(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("audit/") else {
        return false;
    };
    let plain = |n: &str| {
        !n.is_empty()
            && n != "."
            && n != ".."
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    rest == "digests.log"
        || rest
            .split_once('/')
            .is_some_and(|(dir, n)| matches!(dir, "meta" | "segments") && plain(n))
}
