//! The operator side of the `keyhold` binary: `--version` with the git revision, shell
//! completions, `keyhold health`, and JSON log lines that carry the request id.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn keyhold() -> Command {
    Command::new(env!("CARGO_BIN_EXE_keyhold"))
}

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

#[test]
fn version_names_the_git_revision() {
    let out = keyhold().arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let (version, rest) = text
        .trim()
        .strip_prefix("keyhold ")
        .unwrap()
        .split_once(' ')
        .unwrap();
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    let rev = rest.strip_prefix('(').unwrap().strip_suffix(')').unwrap();
    assert!(
        rev == "unknown"
            || rev
                .trim_end_matches("-dirty")
                .bytes()
                .all(|b| b.is_ascii_hexdigit()),
        "{rev}"
    );
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = keyhold().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        for word in ["keyhold", "backup", "restore", "log-format"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    assert!(
        !keyhold()
            .args(["completions", "tcsh"])
            .status()
            .unwrap()
            .success()
    );
}

/// Sends an unsigned JSON request with curl; returns the response's request id.
fn curl_target(port: u16, target: &str, body: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "-D", "-", "-o", "/dev/null", "--max-time", "5"])
        .args(["-H", &format!("X-Amz-Target: {target}")])
        .args([
            "-H",
            "Content-Type: application/x-amz-json-1.1",
            "--data",
            body,
        ])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .unwrap();
    let head = String::from_utf8(out.stdout).unwrap();
    head.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("x-amzn-requestid")
                .then(|| value.trim().to_owned())
        })
        .expect("a request id header")
}

#[test]
fn json_logs_carry_the_request_id_and_health_reports_ready() {
    let temp = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = temp.path().join("keyhold.toml");
    std::fs::write(
        &config,
        format!(
            "mode = \"dev\"\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n\
             [quotas]\nenabled = true\n[quotas.rates]\n\"kms:CryptographicOperationsSymmetric\" = 1\n",
            temp.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = keyhold()
        .args(["--log-format", "json", "serve", "--config"])
        .arg(&config)
        .env("KEYHOLD_LOG", "info,keyhold_server=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let _server = Running(child);
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    while !lines
        .iter()
        .any(|l: &String| l.contains("keyhold is serving"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        lines.push(rx.recv_timeout(left).expect("the server starts"));
    }

    let health = keyhold()
        .args(["health", "--url", &format!("http://127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(health.status.success(), "{health:?}");
    assert!(String::from_utf8_lossy(&health.stdout).contains("\"ready\""));

    // The second call is over the 1/s quota: its throttling is logged in its span.
    let body = r#"{"NumberOfBytes":8}"#;
    curl_target(port, "TrentService.GenerateRandom", body);
    let throttled = curl_target(port, "TrentService.GenerateRandom", body);
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).expect("the throttling is logged");
        if line.contains("request throttled") {
            break line;
        }
        lines.push(line);
    };
    lines.push(line.clone());
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["span"]["request_id"], throttled.as_str(), "{line}");
    for line in &lines {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
    }
}
