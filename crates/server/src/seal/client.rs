//! The client side of the seal endpoints, for `keyhold unseal|seal|status` (and tests):
//! one plain HTTP/1.1 request per connection to the server's loopback listener.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zeroize::Zeroizing;

use super::admin::{ADMIN_TOKEN_HEADER, SEAL_PATH, STATUS_PATH, UNSEAL_PATH};
use crate::config::Config;

/// An answer of a seal endpoint: the HTTP status and the JSON document.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
}

impl Answer {
    /// The `error` member, if the server refused.
    pub fn error(&self) -> Option<&str> {
        self.body.get("error").and_then(|e| e.as_str())
    }
}

/// Where the CLI reaches the server of `config`: its listen address, with an unspecified
/// address (`0.0.0.0`, `::`) replaced by loopback.
pub fn address(config: &Config) -> SocketAddr {
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

/// Reads the admin token the server wrote at start.
pub fn read_token(data_dir: &Path) -> anyhow::Result<Zeroizing<String>> {
    let path = data_dir.join("admin.token");
    let text = Zeroizing::new(std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading the admin token {} (run this as the user the server runs as, on its host)",
            path.display()
        )
    })?);
    Ok(Zeroizing::new(text.trim().to_owned()))
}

pub async fn status(addr: SocketAddr) -> anyhow::Result<Answer> {
    request(addr, "GET", STATUS_PATH, None, b"").await
}

pub async fn unseal(addr: SocketAddr, token: &str, share: &str) -> anyhow::Result<Answer> {
    request(
        addr,
        "POST",
        UNSEAL_PATH,
        Some(token),
        share.trim().as_bytes(),
    )
    .await
}

pub async fn seal(addr: SocketAddr, token: &str) -> anyhow::Result<Answer> {
    request(addr, "POST", SEAL_PATH, Some(token), b"").await
}

async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> anyhow::Result<Answer> {
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to the Keyhold server at {addr}"))?;
    let mut head = Zeroizing::new(format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\n",
        body.len()
    ));
    if let Some(token) = token {
        head.push_str(ADMIN_TOKEN_HEADER);
        head.push_str(": ");
        head.push_str(token);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").context(
        "the server's answer has no end of headers (is this a Keyhold server over plain HTTP?)",
    )?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("the server's answer has no status")?;
    let mut body = &raw[split + 4..];
    if head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    }) {
        // One chunk is all these endpoints send; take its payload.
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("a malformed chunk")?;
        let size = usize::from_str_radix(String::from_utf8_lossy(&body[..line_end]).trim(), 16)?;
        body = body
            .get(line_end + 2..line_end + 2 + size)
            .context("a truncated chunk")?;
    }
    let body = match serde_json::from_slice(body) {
        Ok(body) => body,
        Err(_) => bail!(
            "HTTP {status} from {addr}{path}: {}",
            String::from_utf8_lossy(body)
        ),
    };
    Ok(Answer { status, body })
}
