//! The data directory is 0700 and every file in it 0600: on creation, after use (WAL and
//! SHM files included), and tightened at start when they were left looser.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use keyhold_testkit::TestServer;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Checks `dir` is 0700 and everything in it 0600 (directories 0700, recursively); returns
/// the names directly in it.
fn assert_private(dir: &Path) -> Vec<String> {
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().unwrap().is_dir() {
            assert_private(&entry.path());
        } else {
            assert_eq!(mode(&entry.path()), 0o600, "{}", entry.path().display());
        }
        names.push(name);
    }
    names.sort();
    names
}

/// Loosens everything under `dir` but the root key file.
fn loosen(dir: &Path) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            loosen(&path);
        } else if path.file_name().is_some_and(|n| n != "root.key") {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}

async fn use_everything(server: &TestServer) {
    let key = server.kms().create_key().send().await.unwrap();
    assert!(key.key_metadata().is_some());
    server
        .secrets_manager()
        .create_secret()
        .name("perm")
        .secret_string("v")
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn the_data_directory_and_its_files_are_private() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    let server = TestServer::builder().data_dir(&dir).start().await;
    use_everything(&server).await;
    let names = assert_private(&dir);
    for expected in [
        "keyhold.db",
        "keyhold.db-wal",
        "keyhold.db-shm",
        "audit",
        "root.key",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    server.stop().await;

    // Loosened behind the server's back: the next start tightens them.
    loosen(&dir);
    let server = TestServer::builder().data_dir(&dir).start().await;
    use_everything_again(&server).await;
    assert_private(&dir);
    server.stop().await;
}

async fn use_everything_again(server: &TestServer) {
    server.kms().list_keys().send().await.unwrap();
}
