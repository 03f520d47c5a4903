//! Crash test: `kill -9` the server in the middle of a load of audited calls; after a
//! restart, every call that received a response has its event and the chain verifies —
//! with direct appends into room made ahead (the default), with buffered appends to
//! segments that grow as they are written, and with buffered appends into room made ahead.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a dev-mode server on `dir`, with `config` (a TOML file) when given.
fn start(dir: &std::path::Path, port: u16, config: Option<&std::path::Path>) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keyhold"));
    command.args(["serve", "--data-dir"]).arg(dir);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    command
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("KEYHOLD_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// One request on its own connection: (status, request id, body).
pub(crate) async fn call(
    addr: SocketAddr,
    target: &str,
    body: &str,
) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect(addr).await?;
    let head = format!(
        "POST / HTTP/1.1\r\nhost: {addr}\r\nx-amz-target: {target}\r\ncontent-type: application/x-amz-json-1.1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body.as_bytes()).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or(std::io::ErrorKind::UnexpectedEof)?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let id = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-amzn-requestid:")
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    Ok((status, id, body.to_owned()))
}

async fn wait_up(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if call(addr, "TrentService.ListKeys", "{}")
            .await
            .is_ok_and(|r| r.0 == 200)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the server did not come up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_calls_survive_kill_9() {
    acknowledged_calls_survive_kill_9_with(None, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_calls_survive_kill_9_with_buffered_appends() {
    let config = "mode = \"dev\"\n[audit]\ndirect_appends = false\n";
    acknowledged_calls_survive_kill_9_with(Some(config), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_calls_survive_kill_9_with_buffered_appends_into_room_made_ahead() {
    let config = "mode = \"dev\"\n[audit]\ndirect_appends = false\nroom_ahead = true\n";
    acknowledged_calls_survive_kill_9_with(Some(config), true).await;
}

/// `room_ahead`: whether the newest segment ends in room made ahead (zeros).
async fn acknowledged_calls_survive_kill_9_with(config: Option<&str>, room_ahead: bool) {
    let dir = tempfile::tempdir().unwrap();
    let config_dir = tempfile::tempdir().unwrap();
    let config = config.map(|text| {
        let path = config_dir.path().join("keyhold.toml");
        std::fs::write(&path, text).unwrap();
        path
    });
    let config = config.as_deref();
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut server = start(dir.path(), port, config);
    wait_up(addr).await;

    let (_, _, body) = call(addr, "TrentService.CreateKey", "{}").await.unwrap();
    let key_id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let request = serde_json::json!({"KeyId": key_id, "Plaintext": "aGVsbG8="}).to_string();

    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (acknowledged, request) = (acknowledged.clone(), request.clone());
        workers.push(tokio::spawn(async move {
            while let Ok((status, id, _)) = call(addr, "TrentService.Encrypt", &request).await {
                if status == 200 {
                    acknowledged.lock().unwrap().insert(id);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    for w in workers {
        let _ = w.await;
    }
    // Room made ahead leaves the newest segment ending in zeros; without it the file ends
    // with the last frame written.
    let newest = std::fs::read_dir(dir.path().join("audit/segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .max()
        .unwrap();
    let bytes = std::fs::read(&newest).unwrap();
    let zero_tail = bytes.len() > 4096 && bytes[bytes.len() - 4096..].iter().all(|b| *b == 0);
    assert_eq!(zero_tail, room_ahead, "room ahead in {}", newest.display());
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 20,
        "the load reached the server ({} calls)",
        acknowledged.len()
    );

    // Restart, make one more call (the chain continues), stop cleanly.
    let mut server = start(dir.path(), port, config);
    wait_up(addr).await;
    assert_eq!(
        call(addr, "TrentService.ListKeys", "{}").await.unwrap().0,
        200
    );
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    server.wait().unwrap();

    let recorded: HashSet<String> = keyhold_store::segment::read_events(&dir.path().join("audit"))
        .unwrap()
        .into_iter()
        .map(|r| {
            serde_json::from_str::<serde_json::Value>(&r.record).unwrap()["requestID"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !recorded.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged calls have no event",
        missing.len()
    );

    let verified = keyhold_server::audit::offline::verify_data_dir(dir.path(), None, None)
        .await
        .unwrap();
    assert!(verified.report.ok(), "{:?}", verified.report.problems);
}
