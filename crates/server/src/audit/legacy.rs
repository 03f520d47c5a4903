//! The first format of the trail (one SQLite file, `audit.db`), converted to the segment
//! log at the first start of a Keyhold that writes segments.
//!
//! The conversion copies every event, digest and meta value (the sealed signing key, its
//! public half, the prune record) as they are — nothing is re-signed, so the converted
//! trail verifies against the same digests and anchor — into a fresh directory, which is
//! renamed into place only when complete; the old file is kept as `audit.db.converted`.

use std::path::Path;

use anyhow::Context as _;
use keyhold_store::SqliteAuditLog;
use keyhold_store::audit::{AuditLog, PRUNE_RECORD};
use keyhold_store::segment::{Mode, SegmentLog};

use super::trail::{PUBLIC_KEY, SIGNING_KEY};

/// Converts the trail in `legacy` into a segment log at `dir`, unless `dir` holds one or
/// `legacy` holds nothing.
pub fn convert_if_needed(legacy: &Path, dir: &Path) -> anyhow::Result<()> {
    if SegmentLog::exists(dir) || !legacy.exists() {
        return Ok(());
    }
    let mut old = SqliteAuditLog::open(legacy)
        .with_context(|| format!("opening the audit trail to convert, {}", legacy.display()))?;
    let has_content = old.last_event()?.is_some() || old.get_meta(PUBLIC_KEY)?.is_some();
    if has_content {
        let staging = dir.with_extension("converting");
        if staging.exists() {
            std::fs::remove_dir_all(&staging)
                .with_context(|| format!("removing {}", staging.display()))?;
        }
        let events = copy(&mut old, &staging)?;
        std::fs::rename(&staging, dir)
            .with_context(|| format!("moving the converted trail into {}", dir.display()))?;
        tracing::info!(events, from = %legacy.display(), to = %dir.display(), "converted the audit trail to the segment log");
    }
    drop(old);
    let mut kept = legacy.as_os_str().to_owned();
    kept.push(".converted");
    std::fs::rename(legacy, &kept).with_context(|| format!("renaming {}", legacy.display()))?;
    for suffix in ["-wal", "-shm"] {
        let mut side = legacy.as_os_str().to_owned();
        side.push(suffix);
        let _ = std::fs::remove_file(side);
    }
    Ok(())
}

fn copy(old: &mut SqliteAuditLog, staging: &Path) -> anyhow::Result<usize> {
    let mut log = SegmentLog::open(staging, Mode::Write)?;
    for name in [SIGNING_KEY, PUBLIC_KEY, PRUNE_RECORD] {
        if let Some(value) = old.get_meta(name)? {
            log.put_meta(name, &value)?;
        }
    }
    let mut after = 0;
    let mut total = 0;
    loop {
        let rows = old.events_after(after, 10_000)?;
        let Some(last) = rows.last().map(|r| r.seq) else {
            break;
        };
        log.append(&rows, None)?;
        total += rows.len();
        after = last;
    }
    for digest in old.digests()? {
        log.append_digest(&digest)?;
    }
    Ok(total)
}
