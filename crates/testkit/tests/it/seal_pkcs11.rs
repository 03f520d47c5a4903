//! The PKCS#11 seal against SoftHSM2 (`apt-get install softhsm2`; `.ci/run` installs it):
//! the root key is generated non-extractable in the token, the server unseals itself at
//! start with the PIN from a file or the environment, and restarts unattended.
//!
//! Each test initializes its own token with a unique label (and deletes it afterwards) in
//! SoftHSM's configured token directory. A per-test `SOFTHSM2_CONF` would need setting the
//! process environment, which is `unsafe` in Rust 2024 and forbidden here.

use std::path::{Path, PathBuf};
use std::process::Command;

use aws_sdk_kms::error::ProvideErrorMetadata as _;
use aws_sdk_kms::primitives::Blob;
use keyhold_server::config::{PinSource, Pkcs11Config, SealConfig};
use keyhold_testkit::TestServer;

pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
pub const PIN: &str = "1234-user-pin";

/// A SoftHSM token of its own, deleted when dropped.
pub struct Token {
    pub label: String,
    _dir: tempfile::TempDir,
    pub pin_file: PathBuf,
}

impl Token {
    pub fn new() -> Self {
        let label = format!("kh-{}", &uuid_like()[..12]);
        let output = softhsm2_util(&[
            "--init-token",
            "--free",
            "--label",
            &label,
            "--pin",
            PIN,
            "--so-pin",
            "9876-so-pin",
        ]);
        assert!(
            output.status.success(),
            "softhsm2-util --init-token: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let dir = tempfile::tempdir().unwrap();
        let pin_file = dir.path().join("pin");
        std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
        Self {
            label,
            _dir: dir,
            pin_file,
        }
    }

    pub fn seal(&self) -> SealConfig {
        SealConfig::Pkcs11(Pkcs11Config {
            module: MODULE.into(),
            token_label: self.label.clone(),
            key_label: "keyhold-root".into(),
            pin: PinSource::File(self.pin_file.clone()),
        })
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        let _ = softhsm2_util(&["--delete-token", "--token", &self.label]);
    }
}

/// Runs `softhsm2-util`, one at a time in this process: SoftHSM keeps each token in a
/// directory of the shared token directory, and an `--init-token` that scans the slots while
/// another test's `--delete-token` removes a directory fails with "Could not get info about
/// the token in slot N" (seen in CI). Other processes are not expected to touch the tokens.
fn softhsm2_util(args: &[&str]) -> std::process::Output {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Command::new("softhsm2-util")
        .args(args)
        .output()
        .expect("softhsm2-util (apt-get install softhsm2)")
}

fn uuid_like() -> String {
    let bytes = keyhold_crypto::SecretBytes::random(16).unwrap();
    hex::encode(bytes.expose_secret())
}

async fn start(token: &Token, dir: &Path) -> TestServer {
    TestServer::builder()
        .seal(token.seal())
        .data_dir(dir)
        .start()
        .await
}

#[tokio::test]
async fn the_root_key_is_generated_in_the_token_and_cannot_be_read_out() {
    let token = Token::new();
    let dir = tempfile::tempdir().unwrap();
    let server = start(&token, dir.path()).await;
    server.kms().list_keys().send().await.unwrap();
    let status = server.seal_status().await;
    assert_eq!(status.body["sealed"], false);
    assert_eq!(status.body["kind"], "pkcs11");
    let SealConfig::Pkcs11(config) = token.seal() else {
        unreachable!()
    };
    let root = keyhold_server::seal::pkcs11_root(&config).unwrap();
    let attributes = root.key_attributes().unwrap();
    assert!(!attributes.extractable);
    assert!(attributes.sensitive);
    assert_eq!(attributes.value_len, 32);
    // No root key file anywhere near the data.
    assert!(!dir.path().join("root.key").exists());
}

#[tokio::test]
async fn a_pkcs11_sealed_server_restarts_unattended_and_decrypts_old_ciphertexts() {
    let token = Token::new();
    let dir = tempfile::tempdir().unwrap();
    let server = start(&token, dir.path()).await;
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap();
    let blob = kms
        .encrypt()
        .key_id(key.key_metadata().unwrap().key_id())
        .plaintext(Blob::new("before restart"))
        .send()
        .await
        .unwrap()
        .ciphertext_blob()
        .unwrap()
        .clone();
    server
        .secrets_manager()
        .create_secret()
        .name("app")
        .secret_string("v1")
        .send()
        .await
        .unwrap();
    server.stop().await;

    let server = start(&token, dir.path()).await;
    let decrypted = server
        .kms()
        .decrypt()
        .ciphertext_blob(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(decrypted.plaintext().unwrap().as_ref(), b"before restart");
    let value = server
        .secrets_manager()
        .get_secret_value()
        .secret_id("app")
        .send()
        .await
        .unwrap();
    assert_eq!(value.secret_string(), Some("v1"));

    // `keyhold seal`: refused until unsealed again, which the token does by itself.
    assert_eq!(server.seal().await.body["sealed"], true);
    let no_retry = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::config::Builder::from(&server.sdk_config(
            "000000000000",
            "dev-mode-secret",
            "us-east-1",
        ))
        .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())
        .build(),
    );
    let error = no_retry
        .decrypt()
        .ciphertext_blob(blob.clone())
        .send()
        .await
        .expect_err("sealed");
    assert_eq!(error.code(), Some("ServiceUnavailable"));
    let answer = server.unseal("").await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.body["sealed"], false);
    server
        .kms()
        .decrypt()
        .ciphertext_blob(blob)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_wrong_pin_or_token_refuses_to_start() {
    let token = Token::new();
    let dir = tempfile::tempdir().unwrap();
    let SealConfig::Pkcs11(good) = token.seal() else {
        unreachable!()
    };
    let wrong_pin = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(wrong_pin.path(), "0000").unwrap();
    for (seal, expect) in [
        (
            Pkcs11Config {
                pin: PinSource::File(wrong_pin.path().to_path_buf()),
                ..good.clone()
            },
            "PIN",
        ),
        (
            Pkcs11Config {
                token_label: "no-such-token".into(),
                ..good.clone()
            },
            "no token labelled \"no-such-token\"",
        ),
        (
            Pkcs11Config {
                pin: PinSource::Env("KEYHOLD_TEST_NO_SUCH_PIN_VARIABLE".into()),
                ..good.clone()
            },
            "KEYHOLD_TEST_NO_SUCH_PIN_VARIABLE is not set",
        ),
    ] {
        let config = keyhold_server::Config {
            data_dir: dir.path().to_path_buf(),
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            seal: Some(SealConfig::Pkcs11(seal)),
            ..keyhold_server::Config::default()
        };
        let error = keyhold_server::Server::bind(config).await.err().unwrap();
        let message = format!("{error:#}");
        assert!(message.contains(expect), "{expect}: {message}");
        assert!(!message.contains(PIN));
    }
}
