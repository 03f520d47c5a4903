//! The data directory's permissions: the directory is `0700` and every file in it `0600`,
//! whatever the umask.
//!
//! The databases hold sealed key material, secrets and the audit trail; SQLite creates its
//! files `0644` less the umask, so before opening a database its file is created here with
//! `0600` (SQLite gives the `-wal` and `-shm` files the database file's mode). At every
//! start the directory and the files already in it are tightened, so a directory created
//! by an older version, or copied with the wrong mode, is fixed rather than trusted.
//!
//! The one exception is the root key file: the seal creates it `0600` itself and refuses
//! to start when it is readable by others (it may have leaked, which an operator must
//! hear about), so it is left alone here rather than silently tightened.

use std::path::Path;

use anyhow::Context;

#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (`0700`) if missing, and tightens it and the files directly in it except
/// `leave` (the root key file).
pub fn prepare(dir: &Path, leave: &[&Path]) -> anyhow::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating directory {}", parent.display()))?;
    }
    if !dir.is_dir() {
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        builder.mode(DIR_MODE);
        builder
            .create(dir)
            .with_context(|| format!("creating the data directory {}", dir.display()))?;
    }
    tighten(dir, leave)
}

/// Sets `dir` to `0700` and each regular file in it but `leave` to `0600`.
#[cfg(unix)]
pub fn tighten(dir: &Path, leave: &[&Path]) -> anyhow::Result<()> {
    set_mode(dir, DIR_MODE)?;
    let entries = std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_file())
            && !leave.contains(&path.as_path())
            && let Err(e) = set_mode(&path, FILE_MODE)
            // A file may go between the listing and its mode change (SQLite removes a
            // -wal/-shm when a connection closes): only one still there is an error.
            && path.exists()
        {
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(not(unix))]
pub fn tighten(_dir: &Path, _leave: &[&Path]) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    let metadata =
        std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let current = metadata.permissions().mode() & 0o7777;
    if current != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting the mode of {} to {mode:o}", path.display()))?;
        if current & !mode != 0 {
            tracing::info!(path = %path.display(), from = format!("{current:o}"), to = format!("{mode:o}"), "tightened permissions");
        }
    }
    Ok(())
}

/// Creates `path` empty with mode `0600` if it does not exist, so that the database opened
/// on it next (and its `-wal`/`-shm` files) is private from the start.
pub fn create_private_file(path: &Path) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    options.mode(FILE_MODE);
    options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    #[cfg(unix)]
    set_mode(path, FILE_MODE)?;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o7777
    }

    #[test]
    fn creates_private_and_tightens_existing() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("nested").join("data");
        prepare(&dir, &[]).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let db = dir.join("keyhold.db");
        create_private_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);

        let loose = dir.join("old.db-wal");
        std::fs::write(&loose, b"x").unwrap();
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
        let key = dir.join("root.key");
        std::fs::write(&key, b"k").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare(&dir, &[&key]).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&loose), 0o600);
        assert_eq!(mode(&key), 0o644, "the root key is the seal's to judge");
    }
}
