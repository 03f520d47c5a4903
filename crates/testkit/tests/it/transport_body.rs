//! Body-read failures over raw sockets: only a body over the cap is a 413; a malformed or
//! incomplete body is a 400 `IncompleteBody`, a body that does not arrive in time a 400
//! `RequestTimeout`.

use std::time::Duration;

use keyhold_testkit::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server() -> TestServer {
    TestServer::builder()
        .configure(|c| c.body_read_timeout = Duration::from_secs(1))
        .start()
        .await
}

/// Sends `head` (request line and headers, without the blank line) and `body`, optionally
/// half-closes, and returns the status and body of the response.
async fn exchange(server: &TestServer, head: &str, body: &[u8], half_close: bool) -> (u16, String) {
    let addr = server.addr();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nX-Amz-Target: TrentService.ListKeys\r\n\
         Content-Type: application/x-amz-json-1.1\r\nConnection: close\r\n{head}\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (and stop reading) before the whole body is sent.
    let _ = stream.write_all(body).await;
    if half_close {
        let _ = stream.shutdown().await;
    }
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw))
        .await
        .expect("the server answers and closes")
        .ok();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn error_type(body: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("JSON ({e}): {body}"));
    v["__type"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn malformed_chunked_encoding_is_a_400() {
    let server = server().await;
    let (status, body) = exchange(
        &server,
        "Transfer-Encoding: chunked\r\n",
        b"zz\r\n{}\r\n0\r\n\r\n",
        false,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_type(&body), "IncompleteBody");
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_then_closed_is_a_400() {
    let server = server().await;
    let (status, body) = exchange(&server, "Content-Length: 100\r\n", b"{}", true).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_type(&body), "IncompleteBody");
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_left_open_times_out_with_a_400() {
    let server = server().await;
    let (status, body) = exchange(&server, "Content-Length: 100\r\n", b"{}", false).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_type(&body), "RequestTimeout");
}

#[tokio::test]
async fn only_a_body_over_the_cap_is_a_413() {
    let server = server().await;
    let big = vec![b' '; keyhold_server::config::DEFAULT_MAX_BODY + 1];
    let (status, body) = exchange(
        &server,
        &format!("Content-Length: {}\r\n", big.len()),
        &big,
        false,
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(error_type(&body), "RequestEntityTooLargeException");
    // The same size in chunks, without a Content-Length.
    let mut chunked = Vec::new();
    for piece in big.chunks(64 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (status, body) = exchange(&server, "Transfer-Encoding: chunked\r\n", &chunked, false).await;
    assert_eq!(status, 413, "{body}");
    // A well-formed chunked body within the cap is served.
    let (status, body) = exchange(
        &server,
        "Transfer-Encoding: chunked\r\n",
        b"2\r\n{}\r\n0\r\n\r\n",
        false,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}
