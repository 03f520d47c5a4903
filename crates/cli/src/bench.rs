//! `keyhold bench`: a load generator for sizing a deployment and for measuring a build.
//!
//! Opens `--connections` keep-alive HTTP/1.1 connections; each sends requests drawn from
//! the `--mix` of operations as fast as its connection allows for `--warmup` plus
//! `--duration` seconds. Only requests sent after the warm-up count. It reports, per
//! operation and in total, requests/s, errors (by AWS error code) and latency p50, p99,
//! p99.9 and max — as a table, or as one JSON object with `--json`.
//!
//! Without `--endpoint` it starts a dev-mode server in this process (fresh temporary data
//! directory), so one command measures a build. With `--endpoint` it loads that server,
//! SigV4-signing every request with `--access-key-id`/`--secret-access-key` (or
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) in `--region`.
//!
//! Before the measured phase it creates, through the API, what the mix needs: `--keys`
//! symmetric KMS keys (with one ciphertext each for Decrypt), a signing key, a secret and
//! a SecureString parameter for the reads, and per-connection secrets and parameters for
//! the writes. Decrypt, Encrypt and GenerateDataKey pick one of the keys at random per
//! request, so `--keys` is the working set the server's key cache must hold.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use base64::Engine as _;
use clap::ValueEnum as _;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum BenchOperation {
    /// KMS Decrypt of a 32-byte ciphertext, over the `--keys` keys.
    Decrypt,
    /// KMS Encrypt of 32 bytes, over the `--keys` keys.
    Encrypt,
    /// KMS GenerateDataKey (AES_256), over the `--keys` keys.
    GenerateDataKey,
    /// Secrets Manager GetSecretValue of a 64-byte secret under the default key.
    GetSecretValue,
    /// Parameter Store GetParameter of a SecureString, with decryption.
    GetParameter,
    /// KMS Sign of a 32-byte message with a `--key-spec` key (RAW).
    Sign,
    /// KMS Verify of a valid signature with a `--key-spec` key (RAW).
    Verify,
    /// KMS CreateKey of a symmetric key (a durable write; every request adds a key).
    CreateKey,
    /// Secrets Manager PutSecretValue of a new 64-byte version (a durable write).
    PutSecretValue,
    /// Secrets Manager CreateSecret of a 64-byte secret (a durable write).
    CreateSecret,
    /// Parameter Store PutParameter (String, overwrite) of a 64-byte value (a durable write).
    PutParameter,
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
            Self::CreateKey => "TrentService.CreateKey",
            Self::PutSecretValue => "secretsmanager.PutSecretValue",
            Self::CreateSecret => "secretsmanager.CreateSecret",
            Self::PutParameter => "AmazonSSM.PutParameter",
        }
    }

    /// The command-line name (`get-secret-value`).
    fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default()
    }

    fn uses_keys(self) -> bool {
        matches!(self, Self::Decrypt | Self::Encrypt | Self::GenerateDataKey)
    }
}

/// `--mix decrypt=70,get-secret-value=30`: operations and their relative weights.
#[derive(Clone, Debug)]
pub struct Mix(Vec<(BenchOperation, u32)>);

fn parse_mix(s: &str) -> Result<Mix, String> {
    let mut mix: Vec<(BenchOperation, u32)> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
        let op = BenchOperation::from_str(name.trim(), true)
            .map_err(|_| format!("unknown operation `{name}`"))?;
        let weight: u32 = weight
            .trim()
            .parse()
            .map_err(|_| format!("`{part}`: the weight must be a whole number"))?;
        if mix.iter().any(|(o, _)| *o == op) {
            return Err(format!("`{name}` appears twice"));
        }
        if weight > 0 {
            mix.push((op, weight));
        }
    }
    if mix.is_empty() {
        return Err("the mix names no operation with a weight above 0".into());
    }
    Ok(Mix(mix))
}

impl Mix {
    fn pick(&self, rng: &mut Rng) -> BenchOperation {
        let total: u64 = self.0.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut r = rng.below(total);
        for (op, w) in &self.0 {
            if r < u64::from(*w) {
                return *op;
            }
            r -= u64::from(*w);
        }
        self.0[0].0
    }

    fn has(&self, pred: impl Fn(BenchOperation) -> bool) -> bool {
        self.0.iter().any(|(op, _)| pred(*op))
    }
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The server to load (`http://HOST:PORT`); default: a dev-mode server started in this
    /// process.
    #[arg(long)]
    endpoint: Option<String>,
    /// Operations and their weights, e.g. `decrypt=70,get-secret-value=20,get-parameter=10`
    /// (names as for --operation).
    #[arg(long, value_parser = parse_mix, conflicts_with = "operation")]
    mix: Option<Mix>,
    /// One operation only (the same as `--mix OPERATION=1`) [default: decrypt].
    #[arg(long, value_enum)]
    operation: Option<BenchOperation>,
    /// The working set: how many KMS keys Decrypt, Encrypt and GenerateDataKey spread over.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    keys: u32,
    /// The key spec of `sign` and `verify` (`RSA_2048`, `ECC_NIST_P256`, `ML_DSA_65`, ...).
    #[arg(long, default_value = "ECC_NIST_P256")]
    key_spec: String,
    /// The signing algorithm of `sign` and `verify`; default: the spec's first (PSS for RSA).
    #[arg(long)]
    signing_algorithm: Option<String>,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    connections: u32,
    /// Seconds of measured load (fractions allowed).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before the measurement starts (not counted).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Region of the requests [default: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1].
    #[arg(long)]
    region: Option<String>,
    /// Sign requests with this access key id (with --secret-access-key).
    #[arg(
        long,
        alias = "access-key",
        env = "AWS_ACCESS_KEY_ID",
        requires = "secret_access_key"
    )]
    access_key_id: Option<String>,
    #[arg(
        long,
        alias = "secret-key",
        env = "AWS_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    secret_access_key: Option<String>,
    /// The session token of temporary credentials.
    #[arg(long, env = "AWS_SESSION_TOKEN", hide_env_values = true)]
    session_token: Option<String>,
    /// Print one JSON object (per-operation counts, errors, requests/s, latency
    /// percentiles in milliseconds) instead of a table.
    #[arg(long)]
    json: bool,
    /// The in-process server's audit mode (`durable`: every response waits for its event to
    /// be on disk; `spool`: it does not). Ignored with --endpoint.
    #[arg(long, value_enum, default_value = "durable")]
    audit: AuditModeArg,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum AuditModeArg {
    Durable,
    Spool,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if !(args.duration > 0.0 && args.duration.is_finite()) {
        bail!("--duration must be more than 0 seconds");
    }
    if !(args.warmup >= 0.0 && args.warmup.is_finite()) {
        bail!("--warmup must be 0 or more seconds");
    }
    let mix = match (&args.mix, args.operation) {
        (Some(mix), _) => mix.clone(),
        (None, op) => Mix(vec![(op.unwrap_or(BenchOperation::Decrypt), 1)]),
    };
    let (target, _server) = match &args.endpoint {
        Some(url) => (Target::parse(url)?, None),
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
            (
                Target {
                    addr,
                    host: addr.to_string(),
                },
                Some((dir, task)),
            )
        }
    };
    let signer = Signer::new(&args);
    let run_id = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let prepared = Arc::new(prepare(&target, &args, &mix, &signer, run_id).await?);

    let warmup = Duration::from_secs_f64(args.warmup);
    let measure = Duration::from_secs_f64(args.duration);
    let start = Instant::now();
    let (measure_from, end) = (start + warmup, start + warmup + measure);
    let mut workers = Vec::new();
    for worker in 0..args.connections {
        let (target, signer, mix, prepared) = (
            target.clone(),
            signer.clone(),
            mix.clone(),
            prepared.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut rng = Rng::new(run_id ^ (u64::from(worker) + 1).wrapping_mul(0x9E37_79B9));
            let mut writes = Writes::new(worker, run_id);
            let mut tally = Tally::default();
            let mut conn = None;
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let op = mix.pick(&mut rng);
                let request = prepared.request(op, &mut rng, &mut writes);
                let c = match &mut conn {
                    Some(c) => c,
                    None => match Connection::open(&target).await {
                        Ok(c) => conn.insert(c),
                        Err(e) => {
                            if sent >= measure_from {
                                tally.error(op, format!("connect: {e}"));
                            }
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    },
                };
                let outcome = c.call(&signer, request.0.target(), &request.1).await;
                let elapsed = sent.elapsed();
                match outcome {
                    Ok((200, _)) => {
                        if let Some(then) = request.2 {
                            writes.created(then);
                        }
                        if sent >= measure_from {
                            tally.ok(request.0, elapsed);
                        }
                    }
                    Ok((status, body)) => {
                        if sent >= measure_from {
                            tally.error(request.0, error_code(status, &body));
                        }
                    }
                    Err(e) => {
                        conn = None;
                        if sent >= measure_from {
                            tally.error(request.0, format!("I/O: {e}"));
                        }
                    }
                }
            }
            tally
        }));
    }
    let mut all = Tally::default();
    for w in workers {
        all.merge(w.await?);
    }
    let report = Report {
        endpoint: args.endpoint.clone(),
        audit: match args.endpoint {
            Some(_) => "server's".to_owned(),
            None => format!("{:?}", args.audit).to_lowercase(),
        },
        connections: args.connections,
        warmup,
        measure,
        keys: args.keys,
        mix: &mix,
        key_spec: mix
            .has(|op| matches!(op, BenchOperation::Sign | BenchOperation::Verify))
            .then_some(args.key_spec.as_str()),
        tally: all,
    };
    let errors = report.tally.total_errors();
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.table());
    }
    if errors > 0 {
        bail!("{errors} requests failed");
    }
    Ok(())
}

/// Where the requests go: the address to connect to and the `host` header to sign.
#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    host: String,
}

impl Target {
    fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url.strip_prefix("http://").context(
            "--endpoint must be http://HOST:PORT (HTTPS is not supported by the load generator)",
        )?;
        let host = rest.trim_end_matches('/');
        if host.contains('/') {
            bail!("--endpoint must be http://HOST:PORT, without a path");
        }
        let with_port = if host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            host.to_owned()
        } else {
            format!("{host}:80")
        };
        use std::net::ToSocketAddrs as _;
        let addr = with_port
            .to_socket_addrs()
            .with_context(|| format!("resolving {host}"))?
            .next()
            .with_context(|| format!("{host} does not resolve"))?;
        Ok(Self {
            addr,
            host: host.to_owned(),
        })
    }
}

/// What the set-up created: the bodies (or their parts) each operation sends.
struct Prepared {
    /// Per key: Encrypt, GenerateDataKey and Decrypt bodies (those the mix needs).
    encrypt: Vec<String>,
    generate: Vec<String>,
    decrypt: Vec<String>,
    sign: String,
    verify: String,
    get_secret: String,
    get_parameter: String,
    /// Names the write operations use (unique to this run).
    run: String,
}

/// One request: the operation, its body, and for the CreateSecret that opens a secret for
/// PutSecretValue, the secret's index.
type Request = (BenchOperation, String, Option<u64>);

/// Secrets Manager keeps at most 100 versions of a secret younger than 24 hours (and so
/// does AWS), so PutSecretValue moves on to a new secret of its connection every
/// `PUTS_PER_SECRET` versions; the CreateSecret that opens it counts as `create-secret`.
const PUTS_PER_SECRET: u64 = 90;

/// A connection's write state.
struct Writes {
    worker: u32,
    run_id: u64,
    count: u64,
    /// The PutSecretValue secret in use (created), and how many versions it has.
    secret: Option<u64>,
    secret_versions: u64,
    next_secret: u64,
}

impl Writes {
    fn new(worker: u32, run_id: u64) -> Self {
        Self {
            worker,
            run_id,
            count: 0,
            secret: None,
            secret_versions: 0,
            next_secret: 0,
        }
    }

    /// A version-4-shaped UUID unique to this run, connection and request.
    fn token(&mut self) -> String {
        self.count += 1;
        let a = self.run_id;
        let b = (u64::from(self.worker) << 40) | self.count;
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (a >> 32) as u32,
            (a >> 16) as u16,
            (a & 0xfff) as u16,
            (b >> 48) & 0xfff,
            b & 0xffff_ffff_ffff
        )
    }

    fn created(&mut self, secret: u64) {
        self.secret = Some(secret);
        self.secret_versions = 1;
    }
}

impl Prepared {
    fn request(&self, op: BenchOperation, rng: &mut Rng, w: &mut Writes) -> Request {
        let pick = |v: &Vec<String>, rng: &mut Rng| v[rng.below(v.len() as u64) as usize].clone();
        let value = "v".repeat(64);
        let body = match op {
            BenchOperation::Decrypt => pick(&self.decrypt, rng),
            BenchOperation::Encrypt => pick(&self.encrypt, rng),
            BenchOperation::GenerateDataKey => pick(&self.generate, rng),
            BenchOperation::Sign => self.sign.clone(),
            BenchOperation::Verify => self.verify.clone(),
            BenchOperation::GetSecretValue => self.get_secret.clone(),
            BenchOperation::GetParameter => self.get_parameter.clone(),
            BenchOperation::CreateKey => r#"{"Description":"keyhold bench"}"#.to_owned(),
            BenchOperation::CreateSecret => {
                let token = w.token();
                serde_json::json!({"Name": format!("keyhold-bench-{}-c{}-{}", self.run, w.worker, w.count), "SecretString": value, "ClientRequestToken": token}).to_string()
            }
            BenchOperation::PutSecretValue => match w.secret {
                Some(s) if w.secret_versions < PUTS_PER_SECRET => {
                    w.secret_versions += 1;
                    let token = w.token();
                    serde_json::json!({"SecretId": self.write_secret(w.worker, s), "SecretString": value, "ClientRequestToken": token}).to_string()
                }
                _ => {
                    let s = w.next_secret;
                    w.next_secret += 1;
                    let token = w.token();
                    let body = serde_json::json!({"Name": self.write_secret(w.worker, s), "SecretString": value, "ClientRequestToken": token}).to_string();
                    return (BenchOperation::CreateSecret, body, Some(s));
                }
            },
            BenchOperation::PutParameter => serde_json::json!({
                "Name": format!("/keyhold-bench/{}/{}", self.run, w.worker),
                "Type": "String", "Value": value, "Overwrite": true,
            })
            .to_string(),
        };
        (op, body, None)
    }

    fn write_secret(&self, worker: u32, index: u64) -> String {
        format!("keyhold-bench-{}-w{worker}-{index}", self.run)
    }
}

/// Creates what the mix needs, through the API, before the clock starts.
async fn prepare(
    target: &Target,
    args: &BenchArgs,
    mix: &Mix,
    signer: &Signer,
    run_id: u64,
) -> anyhow::Result<Prepared> {
    let mut conn = Connection::open(target).await?;
    let mut prepared = Prepared {
        encrypt: Vec::new(),
        generate: Vec::new(),
        decrypt: Vec::new(),
        sign: String::new(),
        verify: String::new(),
        get_secret: String::new(),
        get_parameter: String::new(),
        run: format!("{:x}", run_id & 0xffff_ffff_ffff),
    };
    if mix.has(BenchOperation::uses_keys) {
        let keys = create_keys(
            target,
            args,
            signer,
            mix.has(|op| op == BenchOperation::Decrypt),
        )
        .await?;
        let context = serde_json::json!({"purpose": "bench"});
        let plaintext = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        for (key_id, blob) in keys {
            if mix.has(|op| op == BenchOperation::Encrypt) {
                prepared.encrypt.push(serde_json::json!({"KeyId": key_id, "Plaintext": plaintext, "EncryptionContext": context}).to_string());
            }
            if mix.has(|op| op == BenchOperation::GenerateDataKey) {
                prepared.generate.push(serde_json::json!({"KeyId": key_id, "KeySpec": "AES_256", "EncryptionContext": context}).to_string());
            }
            if let Some(blob) = blob {
                prepared.decrypt.push(
                    serde_json::json!({"CiphertextBlob": blob, "EncryptionContext": context})
                        .to_string(),
                );
            }
        }
    }
    if mix.has(|op| matches!(op, BenchOperation::Sign | BenchOperation::Verify)) {
        (prepared.sign, prepared.verify) = prepare_signature(&mut conn, args, signer).await?;
    }
    if mix.has(|op| op == BenchOperation::GetSecretValue) {
        let create = serde_json::json!({"Name": "keyhold-bench", "SecretString": "s".repeat(64), "ClientRequestToken": "00000000-0000-4000-8000-000000000001"});
        let (status, body) = conn
            .call(signer, "secretsmanager.CreateSecret", &create.to_string())
            .await?;
        // A persistent --endpoint keeps the secret of an earlier run: read that one.
        if status != 200 && error_code(status, &body) != "ResourceExistsException" {
            bail!("CreateSecret failed: {status} {body}");
        }
        prepared.get_secret = serde_json::json!({"SecretId": "keyhold-bench"}).to_string();
    }
    if mix.has(|op| op == BenchOperation::GetParameter) {
        let put = serde_json::json!({"Name": "/keyhold/bench", "Type": "SecureString", "Value": "p".repeat(64), "Overwrite": true});
        let (status, body) = conn
            .call(signer, "AmazonSSM.PutParameter", &put.to_string())
            .await?;
        if status != 200 {
            bail!("PutParameter failed: {status} {body}");
        }
        prepared.get_parameter =
            serde_json::json!({"Name": "/keyhold/bench", "WithDecryption": true}).to_string();
    }
    Ok(prepared)
}

/// Creates `--keys` symmetric keys over `--connections` connections; with `ciphertexts`,
/// encrypts 32 bytes under each. Returns (key id, CiphertextBlob) pairs.
async fn create_keys(
    target: &Target,
    args: &BenchArgs,
    signer: &Signer,
    ciphertexts: bool,
) -> anyhow::Result<Vec<(String, Option<String>)>> {
    let total = args.keys;
    if total >= 1000 && !args.json {
        eprintln!("keyhold bench: creating {total} keys…");
    }
    let workers = args.connections.min(total).min(64);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (target, signer) = (target.clone(), signer.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Connection::open(&target).await?;
            let mut out = Vec::new();
            let context = serde_json::json!({"purpose": "bench"});
            let plaintext = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
            for _ in (w..total).step_by(workers as usize) {
                let (status, body) = conn
                    .call(&signer, "TrentService.CreateKey", r#"{"Description":"keyhold bench"}"#)
                    .await?;
                if status != 200 {
                    bail!("CreateKey failed: {status} {body}");
                }
                let created: serde_json::Value = serde_json::from_str(&body)?;
                let key_id = created["KeyMetadata"]["KeyId"]
                    .as_str()
                    .context("CreateKey returned no KeyId")?
                    .to_owned();
                let blob = if ciphertexts {
                    let encrypt = serde_json::json!({"KeyId": key_id, "Plaintext": plaintext, "EncryptionContext": context});
                    let (status, body) = conn
                        .call(&signer, "TrentService.Encrypt", &encrypt.to_string())
                        .await?;
                    if status != 200 {
                        bail!("Encrypt failed: {status} {body}");
                    }
                    let out: serde_json::Value = serde_json::from_str(&body)?;
                    Some(
                        out["CiphertextBlob"]
                            .as_str()
                            .context("Encrypt returned no CiphertextBlob")?
                            .to_owned(),
                    )
                } else {
                    None
                };
                out.push((key_id, blob));
            }
            anyhow::Ok(out)
        }));
    }
    let mut keys = Vec::with_capacity(total as usize);
    for t in tasks {
        keys.extend(t.await??);
    }
    Ok(keys)
}

/// Creates a `--key-spec` signing key and builds the Sign and Verify bodies.
async fn prepare_signature(
    conn: &mut Connection,
    args: &BenchArgs,
    signer: &Signer,
) -> anyhow::Result<(String, String)> {
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
    let (status, body) = conn.call(signer, "TrentService.Sign", &sign).await?;
    if status != 200 {
        bail!("Sign failed: {status} {body}");
    }
    let out: serde_json::Value = serde_json::from_str(&body)?;
    let signature = out["Signature"]
        .as_str()
        .context("Sign returned no Signature")?;
    let verify = serde_json::json!({"KeyId": key_id, "Message": message, "Signature": signature, "SigningAlgorithm": algorithm}).to_string();
    Ok((sign, verify))
}

/// The AWS error code of a failed response (`__type` without its namespace), else the
/// HTTP status.
fn error_code(status: u16, body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["__type"].as_str().map(str::to_owned))
        .map(|t| t.rsplit('#').next().unwrap_or_default().to_owned())
        .unwrap_or_else(|| format!("HTTP {status}"))
}

/// What the connections measured, per operation.
#[derive(Default)]
struct Tally {
    ops: BTreeMap<BenchOperation, OpTally>,
}

#[derive(Default)]
struct OpTally {
    latencies_us: Vec<u32>,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn ok(&mut self, op: BenchOperation, elapsed: Duration) {
        let us = u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX);
        self.ops.entry(op).or_default().latencies_us.push(us);
    }

    fn error(&mut self, op: BenchOperation, code: String) {
        *self
            .ops
            .entry(op)
            .or_default()
            .errors
            .entry(code)
            .or_default() += 1;
    }

    fn merge(&mut self, other: Tally) {
        for (op, t) in other.ops {
            let mine = self.ops.entry(op).or_default();
            mine.latencies_us.extend(t.latencies_us);
            for (code, n) in t.errors {
                *mine.errors.entry(code).or_default() += n;
            }
        }
    }

    fn total_errors(&self) -> u64 {
        self.ops.values().flat_map(|t| t.errors.values()).sum()
    }
}

/// Latency percentiles of sorted microsecond samples, in milliseconds.
struct Percentiles {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl Percentiles {
    fn of(sorted: &[u32]) -> Self {
        let at = |p: f64| {
            let n = sorted.len();
            // Nearest rank: the smallest sample with at least p of the samples at or below.
            let rank = ((n as f64 * p).ceil() as usize).clamp(1, n.max(1));
            sorted.get(rank - 1).copied().unwrap_or(0) as f64 / 1000.0
        };
        Self {
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: sorted.last().copied().unwrap_or(0) as f64 / 1000.0,
        }
    }

    fn json(&self) -> serde_json::Value {
        let r = |v: f64| (v * 1000.0).round() / 1000.0;
        serde_json::json!({"p50": r(self.p50), "p99": r(self.p99), "p99_9": r(self.p999), "max": r(self.max)})
    }
}

struct Report<'a> {
    endpoint: Option<String>,
    audit: String,
    connections: u32,
    warmup: Duration,
    measure: Duration,
    keys: u32,
    mix: &'a Mix,
    key_spec: Option<&'a str>,
    tally: Tally,
}

/// One line of the report: an operation, or the total.
struct Line {
    name: String,
    requests: u64,
    errors: u64,
    errors_by_code: BTreeMap<String, u64>,
    per_second: f64,
    latency: Percentiles,
}

impl Report<'_> {
    fn lines(&mut self) -> Vec<Line> {
        let secs = self.measure.as_secs_f64();
        let mut lines = Vec::new();
        let mut everything = Vec::new();
        let mut all_errors = BTreeMap::new();
        // Every operation of the mix, plus any it led to (create-secret for put-secret-value).
        let mut ops: Vec<BenchOperation> = self.mix.0.iter().map(|(op, _)| *op).collect();
        ops.extend(
            self.tally
                .ops
                .keys()
                .filter(|op| !ops.contains(op))
                .copied()
                .collect::<Vec<_>>(),
        );
        for op in ops {
            let t = self.tally.ops.entry(op).or_default();
            t.latencies_us.sort_unstable();
            everything.extend_from_slice(&t.latencies_us);
            for (code, n) in &t.errors {
                *all_errors.entry(code.clone()).or_default() += n;
            }
            lines.push(Line {
                name: op.name(),
                requests: t.latencies_us.len() as u64,
                errors: t.errors.values().sum(),
                errors_by_code: t.errors.clone(),
                per_second: t.latencies_us.len() as f64 / secs,
                latency: Percentiles::of(&t.latencies_us),
            });
        }
        everything.sort_unstable();
        lines.push(Line {
            name: "total".into(),
            requests: everything.len() as u64,
            errors: all_errors.values().sum(),
            errors_by_code: all_errors,
            per_second: everything.len() as f64 / secs,
            latency: Percentiles::of(&everything),
        });
        lines
    }

    fn json(mut self) -> String {
        let mut lines = self.lines();
        let total = lines.pop();
        let line = |l: &Line| {
            serde_json::json!({
                "requests": l.requests,
                "errors": l.errors,
                "errors_by_code": l.errors_by_code,
                "requests_per_second": l.per_second.round(),
                "latency_ms": l.latency.json(),
            })
        };
        let operations: serde_json::Map<String, serde_json::Value> =
            lines.iter().map(|l| (l.name.clone(), line(l))).collect();
        let mix: serde_json::Map<String, serde_json::Value> = self
            .mix
            .0
            .iter()
            .map(|(op, w)| (op.name(), (*w).into()))
            .collect();
        serde_json::json!({
            "endpoint": self.endpoint.as_deref().unwrap_or("in-process"),
            "audit": self.audit,
            "connections": self.connections,
            "warmup_seconds": self.warmup.as_secs_f64(),
            "duration_seconds": self.measure.as_secs_f64(),
            "keys": self.keys,
            "key_spec": self.key_spec,
            "mix": mix,
            "operations": operations,
            "total": total.as_ref().map(line),
        })
        .to_string()
    }

    fn table(mut self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "keyhold bench: {} ({} audit), {} connections, {:.1}s measured after {:.1}s warm-up, {} key{}{}",
            self.endpoint.as_deref().unwrap_or("in-process dev server"),
            self.audit,
            self.connections,
            self.measure.as_secs_f64(),
            self.warmup.as_secs_f64(),
            self.keys,
            if self.keys == 1 { "" } else { "s" },
            self.key_spec
                .map(|s| format!(", signing key {s}"))
                .unwrap_or_default(),
        );
        let _ = writeln!(
            out,
            "{:<18} {:>10} {:>10} {:>8} {:>8} {:>9} {:>8} {:>7}",
            "operation", "requests", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "errors"
        );
        for l in self.lines() {
            let _ = writeln!(
                out,
                "{:<18} {:>10} {:>10.0} {:>8.2} {:>8.2} {:>9.2} {:>8.2} {:>7}",
                l.name,
                l.requests,
                l.per_second,
                l.latency.p50,
                l.latency.p99,
                l.latency.p999,
                l.latency.max,
                l.errors
            );
            for (code, n) in &l.errors_by_code {
                let _ = writeln!(out, "  {n} × {code}");
            }
        }
        out
    }
}

/// A small xorshift64* generator: picks operations and keys (no cryptographic use).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        if n == 0 { 0 } else { x % n }
    }
}

/// One keep-alive connection.
struct Connection {
    host: String,
    reader: BufReader<TcpStream>,
}

impl Connection {
    async fn open(target: &Target) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(target.addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            host: target.host.clone(),
            reader: BufReader::new(stream),
        })
    }

    async fn call(
        &mut self,
        signer: &Signer,
        target: &str,
        body: &str,
    ) -> anyhow::Result<(u16, String)> {
        let mut head = format!(
            "POST / HTTP/1.1\r\nhost: {}\r\ncontent-type: application/x-amz-json-1.1\r\nx-amz-target: {target}\r\ncontent-length: {}\r\n",
            self.host,
            body.len()
        );
        for (name, value) in signer.headers(&self.host, target, body)? {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        head.push_str("\r\n");
        head.push_str(body);
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes()).await?;

        let mut line = String::new();
        if self.reader.read_line(&mut line).await? == 0 {
            bail!("the server closed the connection");
        }
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("bad status line")?;
        let mut length = 0usize;
        loop {
            line.clear();
            if self.reader.read_line(&mut line).await? == 0 {
                bail!("the server closed the connection");
            }
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
        let credentials = args
            .access_key_id
            .as_ref()
            .zip(args.secret_access_key.as_ref())
            .map(|(id, secret)| {
                aws_credential_types::Credentials::new(
                    id,
                    secret,
                    args.session_token.clone(),
                    None,
                    "keyhold-bench",
                )
            });
        let region = args
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "us-east-1".to_owned());
        Self {
            credentials,
            region,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parses_names_and_weights() {
        let mix = parse_mix("decrypt=70,get-secret-value=20,get-parameter=10").unwrap();
        assert_eq!(
            mix.0,
            vec![
                (BenchOperation::Decrypt, 70),
                (BenchOperation::GetSecretValue, 20),
                (BenchOperation::GetParameter, 10)
            ]
        );
        assert!(parse_mix("decrypt=70,nope=1").is_err());
        assert!(parse_mix("decrypt=x").is_err());
        assert!(parse_mix("decrypt=0").is_err());
        assert!(parse_mix("decrypt=1,decrypt=2").is_err());
    }

    #[test]
    fn picks_follow_the_weights() {
        let mix = parse_mix("decrypt=3,put-parameter=1").unwrap();
        let mut rng = Rng::new(42);
        let n = 100_000;
        let decrypts = (0..n)
            .filter(|_| mix.pick(&mut rng) == BenchOperation::Decrypt)
            .count();
        assert!((73_000..77_000).contains(&decrypts), "{decrypts}");
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let samples: Vec<u32> = (1..=1000).map(|i| i * 1000).collect();
        let p = Percentiles::of(&samples);
        assert_eq!((p.p50, p.p99, p.p999, p.max), (500.0, 990.0, 999.0, 1000.0));
        let none = Percentiles::of(&[]);
        assert_eq!(none.max, 0.0);
    }

    #[test]
    fn write_tokens_are_uuid_shaped_and_unique() {
        let mut w = Writes::new(3, 0x1234_5678_9abc_def0);
        let (a, b) = (w.token(), w.token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(
            a.split('-').map(str::len).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
    }
}
