//! `keyhold envelope encrypt|decrypt`: files and pipes in the AWS Encryption SDK message
//! format, with data keys from KMS — Keyhold or AWS, chosen the standard AWS way
//! (`AWS_ENDPOINT_URL_KMS` / `AWS_ENDPOINT_URL`, `AWS_REGION`, profiles, credentials).
//!
//! Exit codes: 0 success, 1 I/O or other error, 2 usage, 3 KMS refused or no usable key,
//! 4 the message is malformed or was tampered with, 5 encryption context mismatch.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use keyhold_envelope::{
    AlgorithmSuite, EncryptOptions, EncryptionContext, Envelope, Error, ObjectId,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

#[derive(Subcommand)]
pub enum EnvelopeCommand {
    /// Encrypt IN (default stdin) to OUT (default stdout) under one or more KMS keys.
    Encrypt(EncryptArgs),
    /// Decrypt IN (default stdin) to OUT (default stdout).
    Decrypt(DecryptArgs),
}

#[derive(Args)]
pub struct Common {
    /// A KMS key id, ARN or alias; repeat for one encrypted data key per key. On decrypt,
    /// only entries for these keys are tried (use key ARNs or ids).
    #[arg(long = "key-id", value_name = "KEY")]
    key_ids: Vec<String>,
    /// Encryption context pair; repeat. On decrypt: pairs the message must contain.
    #[arg(long = "context", value_name = "K=V", value_parser = parse_pair)]
    context: Vec<(String, String)>,
    /// Input file, `-` or nothing for stdin.
    input: Option<PathBuf>,
    /// Output file, `-` or nothing for stdout. A file is written under a temporary name
    /// and renamed only when the whole message succeeded.
    output: Option<PathBuf>,
    /// Progress bar: auto (only on a terminal), always, never.
    #[arg(long, default_value = "auto")]
    progress: Progress,
}

#[derive(Args)]
pub struct EncryptArgs {
    #[command(flatten)]
    common: Common,
    /// Bucket-key mode: derive this object's key from the named bucket's key.
    #[arg(long, value_name = "NAME")]
    bucket_key: Option<String>,
    /// The object's identity in bucket-key mode [default: the input path].
    #[arg(long, value_name = "ID", requires = "bucket_key")]
    object_id: Option<String>,
    /// Sign the message (AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384).
    #[arg(long)]
    signed: bool,
    /// Frame length in bytes, 4096 to 1048576.
    #[arg(long, default_value_t = keyhold_envelope::DEFAULT_FRAME_LEN)]
    frame_length: u32,
}

#[derive(Args)]
pub struct DecryptArgs {
    #[command(flatten)]
    common: Common,
    /// Try any `aws-kms` entry KMS will unwrap for these credentials.
    #[arg(long)]
    discovery: bool,
    /// Refuse messages with more encrypted data keys than this.
    #[arg(long, value_name = "N")]
    max_encrypted_data_keys: Option<u16>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Progress {
    Auto,
    Always,
    Never,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    Ok((k.to_owned(), v.to_owned()))
}

/// Runs the command and returns the process exit code.
pub async fn run(command: EnvelopeCommand) -> i32 {
    match execute(command).await {
        Ok(()) => 0,
        Err(Failure::Envelope(e)) => {
            eprintln!("keyhold envelope: {e}");
            match e {
                Error::Kms { .. } | Error::KmsResponse(_) | Error::NoDecryptableKey { .. } => 3,
                Error::InvalidCiphertext
                | Error::TooManyEncryptedDataKeys { .. }
                | Error::Unsupported(_) => 4,
                Error::ContextMismatch => 5,
                Error::InvalidInput(_) => 2,
                Error::Io(_) | Error::Crypto => 1,
            }
        }
        Err(Failure::Usage(m)) => {
            eprintln!("keyhold envelope: {m}");
            2
        }
        Err(Failure::Io(m, e)) => {
            eprintln!("keyhold envelope: {m}: {e}");
            1
        }
    }
}

enum Failure {
    Envelope(Error),
    Usage(String),
    Io(String, std::io::Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Self::Envelope(e)
    }
}

async fn execute(command: EnvelopeCommand) -> Result<(), Failure> {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let kms = aws_sdk_kms::Client::new(&sdk);
    match command {
        EnvelopeCommand::Encrypt(args) => {
            let c = &args.common;
            if c.key_ids.is_empty() {
                return Err(Failure::Usage("encrypt needs at least one --key-id".into()));
            }
            let mut b = Envelope::builder(kms).frame_len(args.frame_length);
            for k in &c.key_ids {
                b = b.key_id(k);
            }
            if args.signed {
                b = b.algorithm_suite(AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384);
            }
            let env = b.build()?;
            let context = EncryptionContext::try_from(c.context.clone())?;
            let object = match &args.bucket_key {
                None => None,
                Some(bucket) => {
                    let object = match (&args.object_id, stdio_path(&c.input)) {
                        (Some(id), _) => id.clone(),
                        (None, Some(p)) => p.to_string_lossy().into_owned(),
                        (None, None) => {
                            return Err(Failure::Usage(
                                "--bucket-key on stdin needs --object-id".into(),
                            ));
                        }
                    };
                    Some(ObjectId {
                        bucket: bucket.clone(),
                        object,
                    })
                }
            };
            let (mut input, len) = open_input(&c.input).await?;
            let options = EncryptOptions {
                context,
                plaintext_len: len,
                object,
            };
            with_output(
                &c.output,
                c.progress,
                len,
                &mut input,
                &Op::Encrypt(env, options),
            )
            .await
        }
        EnvelopeCommand::Decrypt(args) => {
            let c = &args.common;
            if c.key_ids.is_empty() && !args.discovery {
                return Err(Failure::Usage(
                    "decrypt needs --key-id (key ARN or id) or --discovery".into(),
                ));
            }
            let mut b = Envelope::builder(kms).discovery(args.discovery);
            for k in &c.key_ids {
                b = b.key_id(k);
            }
            if let Some(max) = args.max_encrypted_data_keys {
                b = b.max_encrypted_data_keys(max);
            }
            let env = b.build()?;
            let expected = EncryptionContext::try_from(c.context.clone())?;
            let (mut input, len) = open_input(&c.input).await?;
            with_output(
                &c.output,
                c.progress,
                len,
                &mut input,
                &Op::Decrypt(env, expected),
            )
            .await
        }
    }
}

/// `None` for stdin/stdout (`-` or absent).
fn stdio_path(p: &Option<PathBuf>) -> Option<&Path> {
    p.as_deref().filter(|p| p.as_os_str() != "-")
}

type Input = Box<dyn AsyncRead + Unpin + Send>;

async fn open_input(path: &Option<PathBuf>) -> Result<(Input, Option<u64>), Failure> {
    match stdio_path(path) {
        None => Ok((Box::new(SyncFile(stdio_file(StdStream::In)?)), None)),
        Some(p) => {
            let f = std::fs::File::open(p)
                .map_err(|e| Failure::Io(format!("cannot open {}", p.display()), e))?;
            let len = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
            let f = SyncFile(f);
            Ok((Box::new(f), len))
        }
    }
}

enum StdStream {
    In,
    Out,
}

/// A `File` on a duplicate of stdin or stdout (read and written through [`SyncFile`], which
/// works for pipes, terminals and files alike).
#[cfg(unix)]
fn stdio_file(which: StdStream) -> Result<std::fs::File, Failure> {
    use std::os::fd::AsFd;
    let fd = match which {
        StdStream::In => std::io::stdin().as_fd().try_clone_to_owned(),
        StdStream::Out => std::io::stdout().as_fd().try_clone_to_owned(),
    };
    fd.map(std::fs::File::from)
        .map_err(|e| Failure::Io("cannot use stdin/stdout".into(), e))
}

#[cfg(not(unix))]
fn stdio_file(_: StdStream) -> Result<std::fs::File, Failure> {
    Err(Failure::Usage(
        "stdin/stdout are supported on Unix only; name the files".into(),
    ))
}

/// Runs `op` from `input` to the output; a file output appears only on success.
enum Op {
    Encrypt(Envelope, EncryptOptions),
    Decrypt(Envelope, EncryptionContext),
}

impl Op {
    async fn run<W: AsyncWrite + Unpin>(
        &self,
        r: &mut Counting<'_>,
        w: &mut W,
    ) -> Result<(), Error> {
        match self {
            Op::Encrypt(env, options) => env.encrypt_stream(r, w, options).await.map(|_| ()),
            Op::Decrypt(env, expected) => env.decrypt_stream(r, w, expected).await.map(|_| ()),
        }
    }
}

async fn with_output(
    out: &Option<PathBuf>,
    progress: Progress,
    len: Option<u64>,
    input: &mut Input,
    op: &Op,
) -> Result<(), Failure> {
    let bar = progress_bar(progress, len);
    let mut counting = Counting {
        inner: input,
        bar: bar.clone(),
    };
    let result = match stdio_path(out) {
        None => {
            let mut stdout = SyncFile(stdio_file(StdStream::Out)?);
            let result = op
                .run(&mut counting, &mut stdout)
                .await
                .map_err(Failure::from);
            match stdout.flush().await {
                Ok(()) => result,
                Err(e) => result.and(Err(Failure::Io("cannot write to stdout".into(), e))),
            }
        }
        Some(path) => {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let tmp = tempfile::Builder::new()
                .prefix(".keyhold-envelope-")
                .tempfile_in(dir)
                .map_err(|e| {
                    Failure::Io(format!("cannot create a file in {}", dir.display()), e)
                })?;
            let std_file = tmp
                .reopen()
                .map_err(|e| Failure::Io("cannot open the temporary file".into(), e))?;
            let mut file = SyncFile(std_file);
            match op.run(&mut counting, &mut file).await {
                Ok(()) => {
                    file.0
                        .sync_all()
                        .map_err(|e| Failure::Io("cannot write the output".into(), e))?;
                    tmp.persist(path).map_err(|e| {
                        Failure::Io(format!("cannot write {}", path.display()), e.error)
                    })?;
                    Ok(())
                }
                // The temporary file is deleted on drop: nothing partial is left behind.
                Err(e) => Err(Failure::Envelope(e)),
            }
        }
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    result
}

fn progress_bar(progress: Progress, len: Option<u64>) -> Option<ProgressBar> {
    use std::io::IsTerminal;
    let show = match progress {
        Progress::Always => true,
        Progress::Never => false,
        Progress::Auto => std::io::stderr().is_terminal(),
    };
    if !show {
        return None;
    }
    let bar = match len {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {bytes} {binary_bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}

/// Counts the bytes read into the progress bar.
pub struct Counting<'a> {
    inner: &'a mut Input,
    bar: Option<ProgressBar>,
}

impl AsyncRead for Counting<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let poll = Pin::new(&mut **this.inner).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(bar)) = (&poll, &this.bar) {
            bar.inc((buf.filled().len() - before) as u64);
        }
        poll
    }
}

/// A file, pipe or terminal read and written with plain blocking system calls behind the
/// async traits the envelope library takes.
///
/// Why blocking is right here: the command runs exactly one task on a current-thread
/// runtime, and its KMS calls happen before the stream (encrypt) or after the header and
/// before the body (decrypt), never while a read or write is pending, so a blocking call
/// stalls nothing. `tokio::fs::File` would instead send every read and write to the
/// blocking thread pool and copy it through a buffer of its own: one thread hop and one
/// extra copy per 64 KiB frame (docs/performance.md, "Envelope encryption, 1 GiB").
struct SyncFile(std::fs::File);

impl AsyncRead for SyncFile {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        use std::io::Read as _;
        let n = loop {
            match self.0.read(buf.initialize_unfilled()) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for SyncFile {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        use std::io::Write as _;
        loop {
            match self.0.write(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        use std::io::Write as _;
        Poll::Ready(self.0.flush())
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}
