//! `keyhold audit verify` and `keyhold audit reanchor` as an operator runs them: a trail
//! truncated at its end fails verification (against the key store's anchor and against
//! digest files kept elsewhere), the server refuses to continue it, and `reanchor` is the
//! way back.

use std::path::Path;
use std::process::{Command, Output};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One server session on `dir` with `calls` audited calls; stopping it seals the trail.
async fn session(dir: &Path, digests: &Path, calls: usize) {
    let mut config = keyhold_server::Config {
        data_dir: dir.to_path_buf(),
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        ..keyhold_server::Config::default()
    };
    config.audit.digest_dir = Some(digests.to_path_buf());
    let server = keyhold_server::Server::bind(config).await.unwrap();
    let addr = server.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async move {
        let _ = rx.await;
    }));
    for _ in 0..calls {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST / HTTP/1.1\r\nhost: {addr}\r\nx-amz-target: TrentService.ListKeys\r\ncontent-type: application/x-amz-json-1.1\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{{}}"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.unwrap();
        assert!(raw.starts_with(b"HTTP/1.1 200"));
    }
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
}

fn keyhold(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyhold"))
        .args(args)
        .env("KEYHOLD_LOG", "error")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_catches_a_truncated_tail_and_reanchor_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let digests = elsewhere.path().to_str().unwrap();
    session(dir.path(), elsewhere.path(), 3).await;
    session(dir.path(), elsewhere.path(), 3).await;

    let ok = keyhold(&["audit", "verify", "--data-dir", data, "--digest", digests]);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(
        text(&ok).contains("newest digest: 2 over events up to 6"),
        "{}",
        text(&ok)
    );

    // Delete the second session's events and its digest.
    let trail = dir.path().join("audit");
    let mut events = keyhold_store::segment::read_events(&trail).unwrap();
    events.retain(|e| e.seq <= 3);
    keyhold_store::segment::replace_events(&trail, &events).unwrap();
    let mut log =
        keyhold_store::segment::SegmentLog::open(&trail, keyhold_store::segment::Mode::Read)
            .unwrap();
    let mut kept = keyhold_store::audit::AuditLog::digests(&mut log).unwrap();
    kept.retain(|d| d.seq <= 1);
    keyhold_store::segment::replace_digests(&trail, &kept).unwrap();
    let failed = keyhold(&["audit", "verify", "--data-dir", data, "--digest", digests]);
    assert!(!failed.status.success());
    let out = text(&failed);
    assert!(out.contains("FAILED: the trail was truncated"), "{out}");
    assert!(out.contains("000002-digest.json"), "{out}");

    // The server refuses to continue it...
    let serve = Command::new(env!("CARGO_BIN_EXE_keyhold"))
        .args(["serve", "--data-dir", data, "--listen", "127.0.0.1:0"])
        .env("KEYHOLD_LOG", "error")
        .output()
        .unwrap();
    assert!(!serve.status.success());
    let stderr = String::from_utf8_lossy(&serve.stderr);
    assert!(stderr.contains("keyhold audit reanchor"), "{stderr}");

    // ... until the operator accepts the loss; digest files still show it.
    let re = keyhold(&["audit", "reanchor", "--data-dir", data]);
    assert!(re.status.success(), "{}", text(&re));
    let ok = keyhold(&["audit", "verify", "--data-dir", data]);
    assert!(ok.status.success(), "{}", text(&ok));
    let still = keyhold(&["audit", "verify", "--data-dir", data, "--digest", digests]);
    assert!(!still.status.success());
}
