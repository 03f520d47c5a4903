//! A minimal file encryptor on `keyhold-envelope`, configured from the environment without
//! aws-config: `KMS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`.
//!
//! ```sh
//! cargo run -p keyhold-envelope --example envelope_file -- encrypt KEY_ARN IN OUT [signed] [k=v ...]
//! cargo run -p keyhold-envelope --example envelope_file -- decrypt KEY_ARN IN OUT [k=v ...]
//! ```

use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use keyhold_envelope::{AlgorithmSuite, EncryptOptions, EncryptionContext, Envelope};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        eprintln!("usage: envelope_file encrypt|decrypt KEY_ARN IN OUT [signed] [k=v ...]");
        std::process::exit(2);
    }
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let mut conf = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(env("AWS_REGION")))
        .credentials_provider(Credentials::new(
            env("AWS_ACCESS_KEY_ID"),
            env("AWS_SECRET_ACCESS_KEY"),
            None,
            None,
            "env",
        ));
    if let Ok(endpoint) = std::env::var("KMS_ENDPOINT") {
        conf = conf.endpoint_url(endpoint);
    }
    let kms = aws_sdk_kms::Client::from_conf(conf.build());
    let signed = args.iter().any(|a| a == "signed");
    let mut ec = EncryptionContext::new();
    for pair in args[4..].iter().filter_map(|a| a.split_once('=')) {
        if let Err(e) = ec.insert(pair.0, pair.1) {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }
    let mut builder = Envelope::builder(kms).key_id(&args[1]);
    if signed {
        builder = builder.algorithm_suite(AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384);
    }
    let result = async {
        let envelope = builder.build()?;
        let mut input =
            Blocking(std::fs::File::open(&args[2]).map_err(keyhold_envelope::Error::Io)?);
        let mut output =
            Blocking(std::fs::File::create(&args[3]).map_err(keyhold_envelope::Error::Io)?);
        if args[0] == "encrypt" {
            let options = EncryptOptions {
                context: ec,
                ..EncryptOptions::default()
            };
            envelope
                .encrypt_stream(&mut input, &mut output, &options)
                .await
                .map(|_| ())
        } else {
            envelope
                .decrypt_stream(&mut input, &mut output, &ec)
                .await
                .map(|_| ())
        }
    }
    .await;
    if let Err(e) = result {
        eprintln!("envelope_file: {e}");
        std::process::exit(1);
    }
}

/// Blocking file I/O behind the async traits: fine for a one-file command-line example.
struct Blocking(std::fs::File);

impl tokio::io::AsyncRead for Blocking {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::io::Read as _;
        let n = self.0.read(buf.initialize_unfilled())?;
        buf.advance(n);
        std::task::Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for Blocking {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::io::Write as _;
        std::task::Poll::Ready(self.0.write(buf))
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::io::Write as _;
        std::task::Poll::Ready(self.0.flush())
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}
