//! `keyhold serve` as a process: `--tls-self-signed` with a certificate swap and SIGHUP
//! (checked with curl), data directory modes under `umask 000`, and strict mode refusing
//! plain HTTP off loopback.

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `curl` the health endpoint over HTTPS trusting `ca`: did it succeed?
fn curl_ok(port: u16, ca: &Path) -> bool {
    Command::new("curl")
        .args(["-fsS", "-o", "/dev/null", "--max-time", "5", "--cacert"])
        .arg(ca)
        .arg(format!("https://localhost:{port}/_keyhold/health"))
        .status()
        .is_ok_and(|s| s.success())
}

fn wait_for(mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("not ready in time");
}

#[test]
fn self_signed_tls_and_a_sighup_reload() {
    let temp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyhold"))
        .args(["serve", "--tls-self-signed", "--data-dir"])
        .arg(temp.path().join("data"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("KEYHOLD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Running(child);
    let mut ca = None;
    let mut fingerprint = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(f) = line.trim().strip_prefix("CA SHA-256:") {
            fingerprint = Some(f.trim().to_owned());
        }
        if let Some(path) = line.strip_prefix("Trust it with:  export AWS_CA_BUNDLE=") {
            ca = Some(std::path::PathBuf::from(path));
            break;
        }
    }
    let ca = ca.expect("the CA path is printed");
    assert_eq!(fingerprint.expect("a fingerprint").len(), 95);
    assert!(ca.is_absolute(), "{}", ca.display());
    wait_for(|| curl_ok(port, &ca));

    // Another CA and certificate, swapped in; SIGHUP.
    let other =
        keyhold_server::transport::tls::self_signed(&temp.path().join("other"), &[]).unwrap();
    let tls_dir = temp.path().join("data").join("tls");
    std::fs::copy(&other.files.cert, tls_dir.join("server.pem")).unwrap();
    std::fs::copy(&other.files.key, tls_dir.join("server.key")).unwrap();
    assert!(curl_ok(port, &ca), "no reload before SIGHUP");
    let pid = server.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_for(|| curl_ok(port, &other.ca_cert));
    assert!(
        !curl_ok(port, &ca),
        "the old certificate is gone after SIGHUP"
    );
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn the_data_directory_is_private_under_umask_000() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    let port = free_port();
    let _server = Running(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "umask 000; exec \"$0\" serve --data-dir '{}' --listen 127.0.0.1:{port}",
                dir.display()
            ))
            .arg(env!("CARGO_BIN_EXE_keyhold"))
            .env("KEYHOLD_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(|| {
        Command::new("curl")
            .args(["-fsS", "-o", "/dev/null", "-X", "POST"])
            .args(["-H", "X-Amz-Target: TrentService.CreateKey"])
            .args(["-H", "Content-Type: application/x-amz-json-1.1", "-d", "{}"])
            .arg(format!("http://127.0.0.1:{port}/"))
            .status()
            .is_ok_and(|s| s.success())
    });
    let names = assert_private(&dir);
    assert!(names.iter().any(|n| n == "keyhold.db-wal"), "{names:?}");
    assert!(names.iter().any(|n| n == "audit"), "{names:?}");
}

/// Checks `dir` is 0700 and everything under it 0600 (directories 0700); returns the names
/// directly in it.
fn assert_private(dir: &std::path::Path) -> Vec<String> {
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        names.push(entry.file_name().to_string_lossy().into_owned());
        if entry.file_type().unwrap().is_dir() {
            assert_private(&entry.path());
        } else {
            assert_eq!(mode(&entry.path()), 0o600, "{}", entry.path().display());
        }
    }
    names
}

#[test]
fn strict_mode_refuses_plain_http_off_loopback() {
    let temp = tempfile::tempdir().unwrap();
    let config = temp.path().join("keyhold.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"0.0.0.0:{}\"\ndata_dir = \"{}\"\n",
            free_port(),
            temp.path().join("data").display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_keyhold"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("strict mode refuses plain HTTP on 0.0.0.0:"),
        "{err}"
    );
    assert!(err.contains("allow_plain_http = true"), "{err}");
}
