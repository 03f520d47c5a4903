//! `keyhold bench`: a load generator for Keyhold's hot path.
//!
//! Opens `--connections` keep-alive HTTP/1.1 connections and sends one operation as fast as
//! each connection allows for `--duration` seconds, then reports throughput and latency
//! percentiles. Without `--endpoint` it starts a dev-mode server in this process (fresh
//! temporary data directory), so one command measures a build. With `--access-key` and
//! `--secret-key`, requests are SigV4-signed (needed for strict mode, and a fairer load).

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum BenchOperation {
    Decrypt,
    Encrypt,
    GenerateDataKey,
    /// Secrets Manager GetSecretValue of a 64-byte secret under the default key.
    GetSecretValue,
    /// Parameter Store GetParameter of a SecureString, with decryption.
    GetParameter,
    /// KMS Sign of a 32-byte message with a `--key-spec` key (RAW).
    Sign,
    /// KMS Verify of a valid signature with a `--key-spec` key (RAW).
    Verify,
}

impl BenchOperation {
    fn target(self) -> &'static str {
        match self {
            Self::Decrypt => "TrentService.Decrypt",
            Self::Encrypt => "TrentService.Encrypt",
            Self::GenerateDataKey => "TrentService.GenerateDataKey",
            Self::GetSecretValue => "secretsmanager.GetSecretValue",
            Self::GetParameter => "AmazonSSM.GetParameter",
            Self::Sign => "TrentService.Sign",
            Self::Verify => "TrentService.Verify",
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The server to load (`http://127.0.0.1:4566`); default: an in-process dev server.
    #[arg(long)]
    endpoint: Option<String>,
    #[arg(long, value_enum, default_value = "decrypt")]
    operation: BenchOperation,
    /// The key spec of `sign` and `verify` (`RSA_2048`, `ECC_NIST_P256`, `ML_DSA_65`, ...).
    #[arg(long, default_value = "ECC_NIST_P256")]
    key_spec: String,
    /// The signing algorithm of `sign` and `verify`; default: the spec's first (PSS for RSA).
    #[arg(long)]
    signing_algorithm: Option<String>,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Seconds of measured load (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Region of the requests.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Sign requests with this access key (with --secret-key).
    #[arg(long, requires = "secret_key")]
    access_key: Option<String>,
    #[arg(long)]
    secret_key: Option<String>,
    /// The in-process server's audit mode (`durable`: every response waits for its event to
    /// be on disk; `spool`: it does not).
    #[arg(long, value_enum, default_value = "durable")]
    audit: AuditModeArg,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum AuditModeArg {
    Durable,
    Spool,
}

/// What one connection measured.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let (addr, _server) = match &args.endpoint {
        Some(url) => (endpoint_addr(url)?, None),
        None => {
            let dir = tempfile::tempdir()?;
            let mut audit = keyhold_server::audit::trail::TrailConfig::default();
            audit.mode = match args.audit {
                AuditModeArg::Durable => keyhold_server::audit::trail::AuditMode::Durable,
                AuditModeArg::Spool => keyhold_server::audit::trail::AuditMode::Spool,
            };
            let config = keyhold_server::Config {
                data_dir: dir.path().to_path_buf(),
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                audit,
                ..keyhold_server::Config::default()
            };
            let server = keyhold_server::Server::bind(config).await?;
            let addr = server.local_addr()?;
            let task = tokio::spawn(server.serve(std::future::pending()));
            (addr, Some((dir, task)))
        }
    };
    let signer = Signer::new(&args);
    let body = prepare(addr, &args, &signer).await?;
    let target = args.operation.target();

    let warmup = Duration::from_secs(1);
    let measure = Duration::from_secs(args.duration.max(1));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.connections.max(1) {
        let (body, signer, target) = (body.clone(), signer.clone(), target.to_owned());
        workers.push(tokio::spawn(async move {
            let mut conn = Connection::open(addr).await?;
            let mut tally = Tally::default();
            loop {
                let sent = Instant::now();
                if sent >= start + warmup + measure {
                    break;
                }
                let status = conn.call(&signer, &target, &body).await?.0;
                if sent >= start + warmup {
                    if status == 200 {
                        tally
                            .latencies_us
                            .push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
                    } else {
                        tally.errors += 1;
                    }
                }
            }
            anyhow::Ok(tally)
        }));
    }
    let mut all = Tally::default();
    for w in workers {
        let t = w.await??;
        all.latencies_us.extend(t.latencies_us);
        all.errors += t.errors;
    }
    all.latencies_us.sort_unstable();
    let n = all.latencies_us.len();
    let pct = |p: f64| {
        let i = ((n as f64 * p) as usize).min(n.saturating_sub(1));
        all.latencies_us.get(i).copied().unwrap_or(0) as f64 / 1000.0
    };
    let audit = if args.endpoint.is_some() {
        "server's".to_owned()
    } else {
        format!("{:?}", args.audit).to_lowercase()
    };
    let label = match args.operation {
        BenchOperation::Sign | BenchOperation::Verify => {
            format!("{:?} {}", args.operation, args.key_spec)
        }
        other => format!("{other:?}"),
    };
    println!(
        "{label} ({audit} audit): {:.0} requests/s over {}s, {} connections; latency ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}; {} errors",
        n as f64 / measure.as_secs_f64(),
        measure.as_secs(),
        args.connections,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0),
        all.errors
    );
    if all.errors > 0 {
        bail!("{} requests failed", all.errors);
    }
    Ok(())
}

/// Creates a key and builds the body the benchmark sends.
async fn prepare(addr: SocketAddr, args: &BenchArgs, signer: &Signer) -> anyhow::Result<String> {
    let mut conn = Connection::open(addr).await?;
    if matches!(
        args.operation,
        BenchOperation::Sign | BenchOperation::Verify
    ) {
        return prepare_signature(&mut conn, args, signer).await;
    }
    let (status, body) = conn
        .call(
            signer,
            "TrentService.CreateKey",
            "{\"Description\":\"keyhold bench\"}",
        )
        .await?;
    if status != 200 {
        bail!("CreateKey failed: {status} {body}");
    }
    let created: serde_json::Value = serde_json::from_str(&body)?;
    let key_id = created["KeyMetadata"]["KeyId"]
        .as_str()
        .context("CreateKey returned no KeyId")?
        .to_owned();
    let plaintext = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let context = serde_json::json!({"purpose": "bench"});
    let encrypt =
        serde_json::json!({"KeyId": key_id, "Plaintext": plaintext, "EncryptionContext": context})
            .to_string();
    Ok(match args.operation {
        BenchOperation::GetSecretValue => {
            let create = serde_json::json!({"Name": "keyhold-bench", "SecretString": "s".repeat(64), "ClientRequestToken": "00000000-0000-4000-8000-000000000001"});
            let (status, body) = conn
                .call(signer, "secretsmanager.CreateSecret", &create.to_string())
                .await?;
            // A persistent --endpoint keeps the secret of an earlier run: read that one.
            let exists = serde_json::from_str::<serde_json::Value>(&body)
                .is_ok_and(|e| e["__type"] == "ResourceExistsException");
            if status != 200 && !exists {
                bail!("CreateSecret failed: {status} {body}");
            }
            serde_json::json!({"SecretId": "keyhold-bench"}).to_string()
        }
        BenchOperation::GetParameter => {
            let put = serde_json::json!({"Name": "/keyhold/bench", "Type": "SecureString", "Value": "p".repeat(64), "Overwrite": true});
            let (status, body) = conn
                .call(signer, "AmazonSSM.PutParameter", &put.to_string())
                .await?;
            if status != 200 {
                bail!("PutParameter failed: {status} {body}");
            }
            serde_json::json!({"Name": "/keyhold/bench", "WithDecryption": true}).to_string()
        }
        BenchOperation::Sign | BenchOperation::Verify => unreachable!("prepared above"),
        BenchOperation::Encrypt => encrypt,
        BenchOperation::GenerateDataKey => {
            serde_json::json!({"KeyId": key_id, "KeySpec": "AES_256", "EncryptionContext": context})
                .to_string()
        }
        BenchOperation::Decrypt => {
            let (status, body) = conn.call(signer, "TrentService.Encrypt", &encrypt).await?;
            if status != 200 {
                bail!("Encrypt failed: {status} {body}");
            }
            let out: serde_json::Value = serde_json::from_str(&body)?;
            let blob = out["CiphertextBlob"]
                .as_str()
                .context("Encrypt returned no CiphertextBlob")?;
            serde_json::json!({"CiphertextBlob": blob, "EncryptionContext": context}).to_string()
        }
    })
}

/// Creates a `--key-spec` signing key and builds the Sign (or Verify) body.
async fn prepare_signature(
    conn: &mut Connection,
    args: &BenchArgs,
    signer: &Signer,
) -> anyhow::Result<String> {
    let spec = args.key_spec.as_str();
    let create = serde_json::json!({"Description": "keyhold bench", "KeySpec": spec, "KeyUsage": "SIGN_VERIFY"});
    let (status, body) = conn
        .call(signer, "TrentService.CreateKey", &create.to_string())
        .await?;
    if status != 200 {
        bail!("CreateKey of a {spec} signing key failed: {status} {body}");
    }
    let created: serde_json::Value = serde_json::from_str(&body)?;
    let key_id = created["KeyMetadata"]["KeyId"]
        .as_str()
        .context("CreateKey returned no KeyId")?
        .to_owned();
    let algorithm = match &args.signing_algorithm {
        Some(a) => a.clone(),
        None => created["KeyMetadata"]["SigningAlgorithms"][0]
            .as_str()
            .context("the key has no signing algorithm")?
            .to_owned(),
    };
    let message = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let sign =
        serde_json::json!({"KeyId": key_id, "Message": message, "SigningAlgorithm": algorithm})
            .to_string();
    if matches!(args.operation, BenchOperation::Sign) {
        return Ok(sign);
    }
    let (status, body) = conn.call(signer, "TrentService.Sign", &sign).await?;
    if status != 200 {
        bail!("Sign failed: {status} {body}");
    }
    let out: serde_json::Value = serde_json::from_str(&body)?;
    let signature = out["Signature"]
        .as_str()
        .context("Sign returned no Signature")?;
    Ok(serde_json::json!({"KeyId": key_id, "Message": message, "Signature": signature, "SigningAlgorithm": algorithm}).to_string())
}

fn endpoint_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url
        .strip_prefix("http://")
        .context("--endpoint must be http://HOST:PORT")?;
    let host_port = rest.trim_end_matches('/');
    use std::net::ToSocketAddrs as _;
    host_port
        .to_socket_addrs()?
        .next()
        .context("--endpoint does not resolve")
}

/// One keep-alive connection.
struct Connection {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
}

impl Connection {
    async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            addr,
            reader: BufReader::new(stream),
        })
    }

    async fn call(
        &mut self,
        signer: &Signer,
        target: &str,
        body: &str,
    ) -> anyhow::Result<(u16, String)> {
        let host = self.addr.to_string();
        let mut head = format!(
            "POST / HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/x-amz-json-1.1\r\nx-amz-target: {target}\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (name, value) in signer.headers(&host, target, body)? {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;

        let mut line = String::new();
        self.reader.read_line(&mut line).await?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("bad status line")?;
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).await?;
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            if let Some((k, v)) = trimmed.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse()?;
            }
        }
        let mut buf = vec![0; length];
        self.reader.read_exact(&mut buf).await?;
        Ok((status, String::from_utf8_lossy(&buf).into_owned()))
    }
}

/// The SigV4 signing name of the service `target` (`TrentService.Decrypt`) belongs to.
fn signing_name(target: &str) -> &'static str {
    keyhold_proto::route::resolve_target(target).map_or("kms", |op| op.service().signing_name())
}

/// Signs requests with SigV4 when credentials are given.
#[derive(Clone)]
struct Signer {
    credentials: Option<aws_credential_types::Credentials>,
    region: String,
}

impl Signer {
    fn new(args: &BenchArgs) -> Self {
        let credentials =
            args.access_key
                .as_ref()
                .zip(args.secret_key.as_ref())
                .map(|(id, secret)| {
                    aws_credential_types::Credentials::new(id, secret, None, None, "keyhold-bench")
                });
        Self {
            credentials,
            region: args.region.clone(),
        }
    }

    fn headers(
        &self,
        host: &str,
        target: &str,
        body: &str,
    ) -> anyhow::Result<Vec<(String, String)>> {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        let Some(credentials) = &self.credentials else {
            return Ok(Vec::new());
        };
        let identity = credentials.clone().into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(signing_name(target))
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()?
            .into();
        let headers = [
            ("host", host),
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target),
        ];
        let request = SignableRequest::new(
            "POST",
            format!("http://{host}/"),
            headers.into_iter(),
            SignableBody::Bytes(body.as_bytes()),
        )?;
        let (instructions, _) = sign(request, &params)?.into_parts();
        Ok(instructions
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }
}
