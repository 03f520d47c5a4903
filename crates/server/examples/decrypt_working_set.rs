//! Decrypt throughput over a working set of many keys, against a running dev-mode server.
//!
//! Creates `--keys` KMS keys (CreateKey, then one Encrypt under each), then sends unsigned
//! `Decrypt` requests for ciphertexts of keys chosen at random, over `--connections`
//! keep-alive connections, for `--seconds` after one second of warm-up, and prints
//! requests/s and latency percentiles. `keyhold bench` loads one key; this shows what a
//! large working set costs (the key cache's bound is the server's `[cache] kms_keys`).
//!
//! ```text
//! keyhold serve --config dev.toml   # mode = "dev", optionally [cache] kms_keys = N
//! cargo run --release -p keyhold-server --example decrypt_working_set -- \
//!     --endpoint 127.0.0.1:4566 --keys 100000 --connections 32 --seconds 8
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Args {
    endpoint: SocketAddr,
    keys: usize,
    connections: usize,
    seconds: u64,
    /// Seconds to wait after preparing the keys, before the Decrypt load starts (the audit
    /// index catches up on the preparation's CreateKey events meanwhile).
    settle: u64,
    /// The server's process id, to print its CPU time per Decrypt over the measured window
    /// (a figure that the host's speed swings less than requests/s).
    server_pid: Option<u32>,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        endpoint: "127.0.0.1:4566".parse()?,
        keys: 10,
        connections: 32,
        seconds: 8,
        settle: 0,
        server_pid: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--endpoint" => args.endpoint = value.parse()?,
            "--keys" => args.keys = value.parse()?,
            "--connections" => args.connections = value.parse()?,
            "--seconds" => args.seconds = value.parse()?,
            "--settle" => args.settle = value.parse()?,
            "--server-pid" => args.server_pid = Some(value.parse()?),
            _ => anyhow::bail!("unknown flag {flag}"),
        }
    }
    Ok(args)
}

/// One keep-alive HTTP/1.1 connection sending JSON 1.1 requests.
struct Connection {
    stream: BufReader<TcpStream>,
    endpoint: SocketAddr,
    buf: Vec<u8>,
}

impl Connection {
    async fn open(endpoint: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(endpoint).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::new(stream),
            endpoint,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Sends one request; returns the status and body.
    async fn call(&mut self, target: &str, body: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        let head = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: {target}\r\nContent-Length: {}\r\n\r\n",
            self.endpoint,
            body.len()
        );
        let stream = self.stream.get_mut();
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        self.buf.clear();
        // The head, up to the blank line.
        loop {
            let mut byte = [0u8; 1];
            self.stream.read_exact(&mut byte).await?;
            self.buf.push(byte[0]);
            if self.buf.ends_with(b"\r\n\r\n") {
                break;
            }
        }
        let head = String::from_utf8_lossy(&self.buf).to_ascii_lowercase();
        let status: u16 = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no status line"))?;
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no content-length"))?;
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body).await?;
        Ok((status, body))
    }
}

/// A process's CPU time so far (user and system) by thread name (threads of one name
/// summed), from `/proc/PID/task/*/stat`.
fn cpu_time(pid: u32) -> anyhow::Result<BTreeMap<String, Duration>> {
    let mut by_name = BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        // A thread that ended between the listing and the read is left out.
        let Ok(stat) = std::fs::read_to_string(task?.path().join("stat")) else {
            continue;
        };
        // The name is in parentheses (and may hold spaces); utime and stime are the 14th and
        // 15th fields of the line, in USER_HZ ticks (100 per second on Linux).
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            anyhow::bail!("no thread name in {stat}");
        };
        let mut fields = stat[close + 1..].split_ascii_whitespace().skip(11);
        let mut tick = || -> anyhow::Result<u64> {
            Ok(fields
                .next()
                .ok_or_else(|| anyhow::anyhow!("short stat line {stat}"))?
                .parse()?)
        };
        let ticks = tick()? + tick()?;
        *by_name
            .entry(stat[open + 1..close].to_owned())
            .or_insert(Duration::ZERO) += Duration::from_millis(ticks * 10);
    }
    Ok(by_name)
}

/// `server_cpu_us=TOTAL (NAME=µs ...)`: the server's CPU time per request over the window,
/// in all and by thread name.
fn cpu_per_request(
    before: &BTreeMap<String, Duration>,
    after: &BTreeMap<String, Duration>,
    requests: usize,
) -> String {
    let per_request = |d: Duration| d.as_secs_f64() * 1e6 / requests.max(1) as f64;
    let mut total = Duration::ZERO;
    let mut threads = Vec::new();
    for (name, spent) in after {
        let spent = spent.saturating_sub(before.get(name).copied().unwrap_or_default());
        total += spent;
        threads.push(format!("{name}={:.1}", per_request(spent)));
    }
    format!(
        " server_cpu_us={:.1} ({})",
        per_request(total),
        threads.join(" ")
    )
}

fn field(body: &[u8], name: &str) -> anyhow::Result<String> {
    let value: serde_json::Value = serde_json::from_slice(body)?;
    value
        .pointer(name)
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no {name} in {}", String::from_utf8_lossy(body)))
}

/// Creates `count` keys and one ciphertext under each (a Decrypt request body).
async fn prepare(args: &Args) -> anyhow::Result<Vec<String>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let (next, endpoint, keys) = (next.clone(), args.endpoint, args.keys);
        tasks.push(tokio::spawn(async move {
            let mut conn = Connection::open(endpoint).await?;
            let mut bodies = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < keys {
                let (status, body) = conn.call("TrentService.CreateKey", "{}").await?;
                anyhow::ensure!(
                    status == 200,
                    "CreateKey: {}",
                    String::from_utf8_lossy(&body)
                );
                let key_id = field(&body, "/KeyMetadata/KeyId")?;
                let request = format!(
                    r#"{{"KeyId":"{key_id}","Plaintext":"{}"}}"#,
                    base64::engine::general_purpose::STANDARD.encode([7u8; 32])
                );
                let (status, body) = conn.call("TrentService.Encrypt", &request).await?;
                anyhow::ensure!(status == 200, "Encrypt: {}", String::from_utf8_lossy(&body));
                let blob = field(&body, "/CiphertextBlob")?;
                bodies.push(format!(r#"{{"CiphertextBlob":"{blob}"}}"#));
            }
            anyhow::Ok(bodies)
        }));
    }
    let mut all = Vec::with_capacity(args.keys);
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(all)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let started = Instant::now();
    let bodies = Arc::new(prepare(&args).await?);
    let prepared = started.elapsed();
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for worker in 0..args.connections {
        let (bodies, measuring, stop) = (bodies.clone(), measuring.clone(), stop.clone());
        let endpoint = args.endpoint;
        tasks.push(tokio::spawn(async move {
            let mut conn = Connection::open(endpoint).await?;
            // xorshift64*, seeded per worker: which key each request uses.
            let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (worker as u64 + 1).wrapping_mul(0xD1B5);
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            while !stop.load(Ordering::Relaxed) {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                let pick =
                    (state.wrapping_mul(0x2545_F491_4F6C_DD1D) % bodies.len() as u64) as usize;
                let body = bodies.get(pick).map_or("", String::as_str);
                let t = Instant::now();
                let (status, _) = conn.call("TrentService.Decrypt", body).await?;
                if measuring.load(Ordering::Relaxed) {
                    if status == 200 {
                        latencies.push(t.elapsed());
                    } else {
                        errors += 1;
                    }
                }
            }
            anyhow::Ok((latencies, errors))
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    measuring.store(true, Ordering::Relaxed);
    let window = Instant::now();
    let cpu_before = args.server_pid.map(cpu_time).transpose()?;
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = window.elapsed();
    let cpu_after = args.server_pid.map(cpu_time).transpose()?;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await??;
        latencies.extend(l);
        errors += e;
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1));
        latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let server_cpu = match (cpu_before, cpu_after) {
        (Some(before), Some(after)) => cpu_per_request(&before, &after, latencies.len()),
        _ => String::new(),
    };
    println!(
        "keys={} connections={} prepared_in={:.1}s decrypt/s={:.0} p50_ms={:.2} p99_ms={:.2} errors={}{server_cpu}",
        args.keys,
        args.connections,
        prepared.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        errors
    );
    Ok(())
}
