//! Connection deadlines and the connection limit, with real sockets: slow heads, idle
//! keep-alive connections and stalled bodies are cut off while SDK requests keep being
//! served; connections beyond `max_connections` wait and are served once a slot frees.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use keyhold_testkit::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Short deadlines: head 1 s, idle 2 s, body 1 s.
async fn server_with_short_deadlines() -> TestServer {
    TestServer::builder()
        .configure(|c| {
            c.header_read_timeout = Duration::from_secs(1);
            c.idle_timeout = Duration::from_secs(2);
            c.body_read_timeout = Duration::from_secs(1);
        })
        .start()
        .await
}

/// Reads until the server closes the connection (or `limit` passes: then `None`).
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(received),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

async fn health_request(stream: &mut TcpStream, addr: SocketAddr) -> String {
    let head = format!("GET /_keyhold/health HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// The SDK path works: a key is created and used.
async fn sdk_round_trip(server: &TestServer) {
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap();
    let id = key.key_metadata().unwrap().key_id().to_owned();
    kms.encrypt()
        .key_id(id)
        .plaintext(aws_sdk_kms::primitives::Blob::new(
            b"still serving".to_vec(),
        ))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_slow_head_is_cut_off_after_the_header_timeout() {
    let server = server_with_short_deadlines().await;
    let addr = server.addr();
    // Ten clients sending their head one byte every 200 ms: never complete in 1 s.
    let mut slow = Vec::new();
    for _ in 0..10 {
        slow.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let started = Instant::now();
            let head = format!(
                "POST / HTTP/1.1\r\nHost: {addr}\r\nX-Amz-Target: TrentService.ListKeys\r\n\r\n"
            );
            for byte in head.bytes() {
                if stream.write_all(&[byte]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                // The server closing shows as EOF on a non-blocking peek.
                let mut probe = [0u8; 1];
                if let Ok(Ok(0)) =
                    tokio::time::timeout(Duration::from_millis(1), stream.peek(&mut probe)).await
                {
                    break;
                }
            }
            let closed = read_until_closed(&mut stream, Duration::from_secs(5)).await;
            (started.elapsed(), closed)
        }));
    }
    // Meanwhile the SDK is served normally.
    for _ in 0..5 {
        let t = Instant::now();
        sdk_round_trip(&server).await;
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    }
    for client in slow {
        let (elapsed, closed) = client.await.unwrap();
        let received = closed.expect("the server closed the slow connection");
        assert!(
            received.is_empty(),
            "no response to a head that never completed"
        );
        assert!(
            elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3),
            "closed after {elapsed:?}, header timeout 1 s"
        );
    }
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let server = server_with_short_deadlines().await;
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    let started = Instant::now();
    let received = read_until_closed(&mut stream, Duration::from_secs(5))
        .await
        .expect("closed");
    assert!(received.is_empty());
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = server_with_short_deadlines().await;
    let addr = server.addr();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // Two requests on one connection: keep-alive works.
    for _ in 0..2 {
        let response = health_request(&mut stream, addr).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
    let idle_from = Instant::now();
    // Past the header timeout (1 s) the idle connection is still open: idle is 2 s.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let response = health_request(&mut stream, addr).await;
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "still open after 1.5 s idle: {response}"
    );
    let idle_from_2 = Instant::now();
    let received = read_until_closed(&mut stream, Duration::from_secs(5))
        .await
        .expect("the idle connection is closed");
    assert!(received.is_empty());
    let idle = idle_from_2.elapsed();
    assert!(
        idle >= Duration::from_millis(1900) && idle < Duration::from_secs(3),
        "closed after {idle:?} idle, idle timeout 2 s (first idle period began {:?} ago)",
        idle_from.elapsed()
    );
}

#[tokio::test]
async fn a_body_that_stops_halfway_is_answered_and_cut_off() {
    let server = server_with_short_deadlines().await;
    let addr = server.addr();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nX-Amz-Target: TrentService.ListKeys\r\n\
         Content-Type: application/x-amz-json-1.1\r\nContent-Length: 100\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[b' '; 50]).await.unwrap();
    let started = Instant::now();
    // The SDK is still served while the body hangs.
    sdk_round_trip(&server).await;
    let received = read_until_closed(&mut stream, Duration::from_secs(5))
        .await
        .expect("the connection is closed");
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains(r#""__type":"RequestTimeout""#), "{text}");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_and_are_served_when_a_slot_frees() {
    let server = TestServer::builder()
        .configure(|c| {
            c.max_connections = 4;
            c.header_read_timeout = Duration::from_secs(30);
        })
        .start()
        .await;
    let addr = server.addr();
    // Four connections take every slot (they send nothing).
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    // Make sure the server has accepted them all before the fifth arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A fifth client connects (the kernel completes the handshake) but is not served:
    // it waits in the listen backlog, it is not refused.
    let waiting = tokio::spawn(async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let response = health_request(&mut stream, addr).await;
        (Instant::now(), response)
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!waiting.is_finished(), "served beyond the connection limit");
    let freed_at = Instant::now();
    drop(held.pop());
    let (served_at, response) = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served once a slot freed")
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(served_at.duration_since(freed_at) < Duration::from_secs(1));
    // Everything freed: the server is back to normal.
    held.clear();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..8 {
        sdk_round_trip(&server).await;
    }
}
