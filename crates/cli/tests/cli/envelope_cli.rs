//! `keyhold envelope encrypt|decrypt` against a running test server, configured the
//! standard AWS way: files and pipes round-trip, and each failure has its exit code (2
//! usage, 3 wrong key, 4 tampered, 5 context mismatch, 1 I/O) and leaves no output file.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use keyhold_testkit::TestServer;

const ACCOUNT: &str = "111122223333";
const REGION: &str = "eu-west-1";

struct Env {
    server: TestServer,
    dir: tempfile::TempDir,
}

impl Env {
    async fn start() -> Self {
        Self {
            server: TestServer::start().await,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    async fn key(&self) -> String {
        let kms = self.server.kms_for(ACCOUNT, REGION);
        let key = kms.create_key().send().await.unwrap();
        key.key_metadata.unwrap().arn.unwrap()
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    /// Runs `keyhold envelope ARGS` with `stdin`, off the async runtime.
    async fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyhold"));
        cmd.arg("envelope")
            .args(args)
            .env("AWS_ENDPOINT_URL_KMS", self.server.endpoint())
            .env("AWS_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", ACCOUNT)
            .env("AWS_SECRET_ACCESS_KEY", "envelope-secret")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let stdin = stdin.to_vec();
        tokio::task::spawn_blocking(move || {
            let mut child = cmd.spawn().unwrap();
            let mut input = child.stdin.take().unwrap();
            let writer = std::thread::spawn(move || {
                // A command that fails early closes its stdin: ignore the broken pipe.
                let _ = input.write_all(&stdin);
            });
            let out = child.wait_with_output().unwrap();
            writer.join().unwrap();
            out
        })
        .await
        .unwrap()
    }
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 253) as u8).collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_round_trip_and_only_complete_outputs_appear() {
    let env = Env::start().await;
    let key = env.key().await;
    let plain = data(300_001);
    std::fs::write(env.path("p"), &plain).unwrap();
    for signed in [false, true] {
        let mut args = vec![
            "encrypt",
            "--key-id",
            &key,
            "--context",
            "app=billing",
            "--frame-length",
            "4096",
        ];
        if signed {
            args.push("--signed");
        }
        let (p, c, d) = (env.path("p"), env.path("c"), env.path("d"));
        args.extend([p.as_str(), c.as_str()]);
        let out = env.run(&args, b"").await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        // Piped stderr: no progress bar, nothing at all.
        assert_eq!(stderr(&out), "");
        let message = std::fs::read(&c).unwrap();
        assert_eq!(message[0], 2, "an ESDK version 2 message");
        let out = env
            .run(
                &[
                    "decrypt",
                    "--key-id",
                    &key,
                    "--context",
                    "app=billing",
                    &c,
                    &d,
                ],
                b"",
            )
            .await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(std::fs::read(&d).unwrap(), plain);
        std::fs::remove_file(&d).unwrap();

        // A context the message lacks: exit 5, before any output.
        let out = env
            .run(
                &[
                    "decrypt",
                    "--key-id",
                    &key,
                    "--context",
                    "app=payroll",
                    &c,
                    &d,
                ],
                b"",
            )
            .await;
        assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
        assert!(stderr(&out).contains("encryption context does not match"));
        assert!(!Path::new(&d).exists());

        // Another key: exit 3, and the message names the failure without key material.
        let other = env.key().await;
        let out = env.run(&["decrypt", "--key-id", &other, &c, &d], b"").await;
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("could be decrypted with the allowed KMS keys"),
            "{}",
            stderr(&out)
        );
        assert!(!Path::new(&d).exists());

        // One flipped bit in the last frames: exit 4, and no partial output file.
        let mut tampered = message.clone();
        let at = tampered.len() - 150;
        tampered[at] ^= 0x20;
        std::fs::write(env.path("t"), &tampered).unwrap();
        let out = env
            .run(&["decrypt", "--key-id", &key, &env.path("t"), &d], b"")
            .await;
        assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
        assert!(stderr(&out).contains("tampered"), "{}", stderr(&out));
        assert!(!Path::new(&d).exists());
        let leftovers: Vec<_> = std::fs::read_dir(env.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".keyhold-envelope-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        // Truncated: exit 4 too.
        std::fs::write(env.path("t"), &message[..message.len() / 2]).unwrap();
        let out = env
            .run(&["decrypt", "--key-id", &key, &env.path("t"), &d], b"")
            .await;
        assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipes_stream_through_stdin_and_stdout() {
    let env = Env::start().await;
    let key = env.key().await;
    let plain = data(1 << 20);
    let enc = env
        .run(&["encrypt", "--key-id", &key, "--context", "k=v"], &plain)
        .await;
    assert_eq!(enc.status.code(), Some(0), "{}", stderr(&enc));
    assert!(enc.stdout.len() > plain.len());
    // `-` is stdin/stdout too; discovery finds the key without naming it.
    let dec = env
        .run(
            &["decrypt", "--discovery", "--context", "k=v", "-", "-"],
            &enc.stdout,
        )
        .await;
    assert_eq!(dec.status.code(), Some(0), "{}", stderr(&dec));
    assert!(dec.stdout == plain, "the round trip through pipes differs");
    assert_eq!(stderr(&dec), "");

    // Bucket-key mode from stdin needs an object id; with one, it round-trips.
    let out = env
        .run(
            &["encrypt", "--key-id", &key, "--bucket-key", "photos"],
            b"x",
        )
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let enc = env
        .run(
            &[
                "encrypt",
                "--key-id",
                &key,
                "--bucket-key",
                "photos",
                "--object-id",
                "img/1.jpg",
            ],
            b"a photo",
        )
        .await;
    assert_eq!(enc.status.code(), Some(0), "{}", stderr(&enc));
    let dec = env
        .run(
            &[
                "decrypt",
                "--key-id",
                &key,
                "--context",
                "keyhold:object=img/1.jpg",
            ],
            &enc.stdout,
        )
        .await;
    assert_eq!(dec.status.code(), Some(0), "{}", stderr(&dec));
    assert_eq!(dec.stdout, b"a photo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_io_errors_have_their_exit_codes() {
    let env = Env::start().await;
    let key = env.key().await;
    // No key: usage.
    let out = env.run(&["encrypt"], b"x").await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--key-id"), "{}", stderr(&out));
    let out = env.run(&["decrypt"], b"x").await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // A frame length out of range: usage.
    let out = env
        .run(
            &["encrypt", "--key-id", &key, "--frame-length", "100"],
            b"x",
        )
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // A missing input file: I/O.
    let missing = env.path("missing");
    let out = env.run(&["encrypt", "--key-id", &key, &missing], b"").await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot open"), "{}", stderr(&out));
    // Not a message at all: malformed.
    let out = env
        .run(
            &["decrypt", "--key-id", &key],
            b"definitely not an ESDK message",
        )
        .await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    // A key KMS does not know: exit 3 with KMS's error code.
    let out = env
        .run(&["encrypt", "--key-id", "alias/does-not-exist"], b"x")
        .await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("NotFoundException"),
        "{}",
        stderr(&out)
    );
}
