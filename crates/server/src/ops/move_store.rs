//! `keyhold migrate-store`: moves a node's state into another, empty store (SQLite →
//! PostgreSQL, or back) and proves the copy.
//!
//! The store crate copies the tables ([`keyhold_store::copy`]: every row, sealed blobs as
//! they are, checked per table by row count and digest). The audit trail is not in the
//! store: its events are the data directory's segment log (`audit/`), which the node keeps
//! using on the new store, and its anchor is a `meta` row, which moves with the tables.
//! So the trail continues on the target as it is — the next event is chained to the last
//! one — and is checked here the way `keyhold audit verify` checks it, against the anchor
//! the *target* now holds (and, with the root key file, through the domain key the target
//! now holds).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use keyhold_store::copy::{self, CopyOptions, CopyReport, Location};
use keyhold_store::segment::SegmentLog;

use crate::audit::offline::{self, KeyStore, RootSource, Verified};

/// The store's meta entry of a node's audit anchor (`audit.anchor.NODE` with a `node_id`).
const ANCHOR: &str = "audit.anchor";

/// What to move.
#[derive(Clone, Debug, Default)]
pub struct MoveRequest {
    /// The source: `sqlite:DIR` (or a data directory's path) or `postgres://...`.
    pub from: String,
    /// The target, empty: `postgres://...` or `sqlite:DIR`.
    pub to: String,
    /// The data directory whose audit trail goes with the state [default: the SQLite
    /// side's directory].
    pub data_dir: Option<PathBuf>,
    /// Between SQLite and PostgreSQL: the node's `node_id` on the PostgreSQL side. Its
    /// anchor is `audit.anchor.NODE` there and `audit.anchor` in SQLite, renamed in the copy.
    pub node_id: Option<String>,
    /// A root key file (key-file seal) to unseal the trail's signing key with, through the
    /// target's domain key [default: `<data_dir>/root.key` when it exists].
    pub key_file: Option<PathBuf>,
}

/// What [`migrate_store`] did.
pub struct MoveReport {
    pub copy: CopyReport,
    /// The `meta` rows renamed on the way (the audit anchor, for `node_id`).
    pub renamed: Vec<(String, String)>,
    pub audit: AuditCheck,
}

/// The audit trail's check on the target.
pub enum AuditCheck {
    /// The data directory's trail verified against the target's anchor.
    Verified {
        data_dir: PathBuf,
        verified: Box<Verified>,
    },
    /// The data directory has no trail (no server ever ran on it).
    NoTrail(PathBuf),
    /// No data directory to check (PostgreSQL to PostgreSQL without `data_dir`).
    NotChecked,
}

impl MoveReport {
    /// Whether the target matches the source in every table and its anchor holds the trail.
    pub fn ok(&self) -> bool {
        self.copy.ok()
            && match &self.audit {
                AuditCheck::Verified { verified, .. } => verified.report.ok(),
                AuditCheck::NoTrail(_) | AuditCheck::NotChecked => true,
            }
    }
}

/// Copies the store `from` into the empty store `to` (its schema migrated first) and
/// verifies the copy. Stop the server(s) on the source first: a SQLite store that a server
/// has open, or a PostgreSQL store on which a node holds a lease, is refused.
pub async fn migrate_store(request: &MoveRequest) -> anyhow::Result<MoveReport> {
    let source = Location::parse(&request.from).context("--from")?;
    let target = Location::parse(&request.to).context("--to")?;
    let data_dir = request
        .data_dir
        .clone()
        .or_else(|| sqlite_dir(&source))
        .or_else(|| sqlite_dir(&target));
    let renamed = anchor_renames(&source, &target, request.node_id.as_deref())?;
    if let Some(dir) = &data_dir {
        check_trail_format(dir)?;
    }
    if let Location::Sqlite(db) = &target
        && let Some(dir) = db.parent()
    {
        let key_file = dir.join("root.key");
        crate::data_dir::prepare(dir, &[key_file.as_path()])?;
        crate::data_dir::create_private_file(db)?;
    }
    let options = CopyOptions {
        rename_meta: renamed.clone(),
    };
    let copy = copy::copy_store(&source, &target, &options)
        .await
        .map_err(anyhow::Error::new)
        .with_context(|| format!("copying {} to {}", source.describe(), target.describe()))?;
    let key_store = match &target {
        Location::Sqlite(db) => KeyStore::Sqlite(db.clone()),
        Location::Postgres(url) => KeyStore::Postgres {
            url: url.clone(),
            node_id: request.node_id.clone(),
        },
    };
    let audit = match data_dir {
        Some(dir) if SegmentLog::exists(&dir.join("audit")) => {
            let verified =
                offline::verify_trail(&dir, &key_store, RootSource::KeyFile(request.key_file.clone()), None, &[])
                    .await
                    .with_context(|| {
                        format!(
                            "the store was copied, but the audit trail of {} could not be verified against the target",
                            dir.display()
                        )
                    })?;
            AuditCheck::Verified {
                data_dir: dir,
                verified: Box::new(verified),
            }
        }
        Some(dir) => AuditCheck::NoTrail(dir),
        None => AuditCheck::NotChecked,
    };
    Ok(MoveReport {
        copy,
        renamed,
        audit,
    })
}

/// The data directory of a SQLite location.
fn sqlite_dir(location: &Location) -> Option<PathBuf> {
    match location {
        Location::Sqlite(db) => db.parent().map(Path::to_path_buf),
        Location::Postgres(_) => None,
    }
}

/// The anchor's new name for a node that has a `node_id` on the PostgreSQL side.
fn anchor_renames(
    source: &Location,
    target: &Location,
    node_id: Option<&str>,
) -> anyhow::Result<Vec<(String, String)>> {
    let Some(node) = node_id else {
        return Ok(Vec::new());
    };
    if node.is_empty() {
        bail!("--node-id must not be empty");
    }
    let named = format!("{ANCHOR}.{node}");
    Ok(match (source, target) {
        (Location::Sqlite(_), Location::Postgres(_)) => vec![(ANCHOR.to_owned(), named)],
        (Location::Postgres(_), Location::Sqlite(_)) => vec![(named, ANCHOR.to_owned())],
        _ => bail!(
            "--node-id is for a copy between SQLite and PostgreSQL (the anchors of a PostgreSQL store are copied as they are)"
        ),
    })
}

/// Refuses a trail still in its first format before anything is copied: the check after
/// the copy could not read it.
fn check_trail_format(dir: &Path) -> anyhow::Result<()> {
    if dir.join("audit.db").exists() && !SegmentLog::exists(&dir.join("audit")) {
        bail!(
            "the audit trail of {} is still in its first format (audit.db): start the server on it once to convert it, then stop it and migrate",
            dir.display()
        );
    }
    Ok(())
}
