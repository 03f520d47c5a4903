//! `keyhold backup` and `keyhold restore`: an online, consistent snapshot of a data
//! directory's state (`keyhold.db`) and audit trail (`audit.db`) in one file, and its
//! checked restoration.
//!
//! A backup holds what the databases hold: metadata and *sealed* blobs. It never holds the
//! root key (the key file, the Shamir shares or the HSM key): a backup without its seal
//! decrypts nothing, and restoring needs the seal the data directory was created with.
//!
//! The file: the line `KEYHOLD-BACKUP 1`, one line of JSON (the manifest: each member's
//! name, length and SHA-256, and when and from where the backup was taken), then the
//! members' bytes in manifest order. `keyhold.db` is copied before `audit.db` (each with
//! SQLite's online backup API, while the server runs), so the trail in the backup reaches
//! at least as far as the anchor the key store holds.
//!
//! Restore checks everything before it replaces anything: the members' hashes, the audit
//! trail (hash chain, signed digests, the anchor) and the seal (the configured root key
//! must unseal the backup's domain key and the trail's signing key). Only then are the
//! current databases moved aside (`<data_dir>/pre-restore-<time>/`) and the backup's put in
//! their place. Run it with the server stopped.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::config::Config;

const MAGIC: &str = "KEYHOLD-BACKUP 1";
/// The members of a backup, in the order they are taken.
const MEMBERS: [&str; 2] = ["keyhold.db", "audit.db"];

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
    let mut members = Vec::new();
    for name in MEMBERS {
        let source = data_dir.join(name);
        if !source.exists() {
            bail!("{} has no {name}", data_dir.display());
        }
        let copy = staging.path().join(name);
        keyhold_store::snapshot_sqlite(&source, &copy)
            .with_context(|| format!("taking a snapshot of {}", source.display()))?;
        let bytes = std::fs::read(&copy)?;
        members.push((name, bytes));
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
                name: (*name).to_owned(),
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
            .map(|(n, b)| ((*n).to_owned(), b.len() as u64))
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
/// the data directory's state. The server must be stopped.
pub async fn restore(config: &Config, input: &Path) -> anyhow::Result<Restored> {
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let staging = tempfile::tempdir_in(&data_dir)?;
    let input = input.to_path_buf();
    let dir = staging.path().to_path_buf();
    tokio::task::spawn_blocking(move || unpack(&input, &dir)).await??;

    // The seal: the configured root key must be there (never created here) and open the
    // backup; the audit trail must verify, its signing key unsealed by that root key.
    let Some(key_file) = config.key_file_path() else {
        bail!(
            "restore works under a key-file seal only (a Shamir or PKCS#11 seal keeps no root key file)"
        );
    };
    if !key_file.exists() {
        bail!(
            "the root key file {} does not exist: a backup restores only under the seal it was taken with",
            key_file.display()
        );
    }
    let verified =
        crate::audit::offline::verify_data_dir_with(staging.path(), Some(key_file), None, &[])
            .await
            .context("checking the backup's audit trail and seal")?;
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
    if !matches!(verified.trust, crate::audit::offline::KeyTrust::Unsealed) {
        bail!("the root key could not unseal the backup's signing key");
    }

    // Everything holds: move the current databases aside, then put the backup's in place.
    let stamp = keyhold_proto::Timestamp::now().as_millis();
    let aside = data_dir.join(format!("pre-restore-{stamp}"));
    let mut moved = false;
    for name in MEMBERS {
        for suffix in ["", "-wal", "-shm"] {
            let current = data_dir.join(format!("{name}{suffix}"));
            if current.exists() {
                std::fs::create_dir_all(&aside)?;
                std::fs::rename(&current, aside.join(format!("{name}{suffix}")))?;
                moved = true;
            }
        }
    }
    for name in MEMBERS {
        std::fs::rename(staging.path().join(name), data_dir.join(name))?;
    }
    Ok(Restored {
        previous: moved.then_some(aside),
        audit_events: verified.report.events,
    })
}

/// Reads a backup file into `dir`, checking its format and every member's hash.
fn unpack(input: &Path, dir: &Path) -> anyhow::Result<()> {
    let file =
        std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?;
    let mut r = BufReader::new(file);
    let mut line = String::new();
    r.read_line(&mut line)?;
    if line.trim_end() != MAGIC {
        bail!("{} is not a Keyhold backup", input.display());
    }
    line.clear();
    r.read_line(&mut line)?;
    let manifest: Manifest = serde_json::from_str(&line).context("the backup's manifest")?;
    let names: Vec<&str> = manifest.members.iter().map(|m| m.name.as_str()).collect();
    if names != MEMBERS {
        bail!("the backup holds {names:?}, not {MEMBERS:?}");
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
        crate::data_dir::create_private_file(&path)?;
        std::fs::write(&path, &bytes)?;
    }
    if r.read(&mut [0u8; 1])? != 0 {
        bail!("the backup has bytes after its last member");
    }
    Ok(())
}
