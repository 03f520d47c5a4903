//! HTTPS: the Rust SDK talks to a TLS listener trusting a test CA (made here with rcgen),
//! a client that does not trust it is refused, plain HTTP gets no answer on a TLS port,
//! and a reloaded certificate applies to new connections without a restart.

use std::path::Path;

use aws_config::{BehaviorVersion, Region};
use keyhold_server::transport::tls::TlsFiles;
use keyhold_testkit::TestServer;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A new CA and a `localhost` certificate it signs, written to `dir`: (files, CA PEM).
fn make_ca_and_cert(dir: &Path, ca_name: &str) -> (TlsFiles, String) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let files = TlsFiles {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    (files, ca.pem())
}

/// A KMS client for `server`'s endpoint that trusts only `ca_pem` (a new connection pool).
fn kms_trusting(server: &TestServer, ca_pem: Option<&str>) -> aws_sdk_kms::Client {
    let mut builder = aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(server.endpoint())
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new(
                    "000000000000",
                    "dev-mode-secret",
                    None,
                    None,
                    "test",
                ),
            ),
        );
    if let Some(ca) = ca_pem {
        builder = builder.http_client(TestServer::http_client_trusting(ca.as_bytes()));
    }
    aws_sdk_kms::Client::new(&builder.build())
}

#[tokio::test]
async fn the_sdk_speaks_https_to_a_server_it_trusts() {
    let temp = tempfile::tempdir().unwrap();
    let (files, ca) = make_ca_and_cert(temp.path(), "Test CA one");
    let server = TestServer::builder().tls(files, ca.clone()).start().await;
    assert!(server.endpoint().starts_with("https://localhost:"));

    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap();
    let id = key.key_metadata().unwrap().key_id();
    let sealed = kms
        .encrypt()
        .key_id(id)
        .plaintext(aws_sdk_kms::primitives::Blob::new(b"over tls".to_vec()))
        .send()
        .await
        .unwrap();
    let opened = kms
        .decrypt()
        .ciphertext_blob(sealed.ciphertext_blob().unwrap().clone())
        .send()
        .await
        .unwrap();
    assert_eq!(opened.plaintext().unwrap().as_ref(), b"over tls");
    server
        .secrets_manager()
        .create_secret()
        .name("tls")
        .secret_string("v")
        .send()
        .await
        .unwrap();

    // A client with the system's roots does not trust the test CA.
    let untrusting = kms_trusting(&server, None);
    let err = untrusting.list_keys().send().await.unwrap_err();
    assert!(
        format!("{err:?}").to_lowercase().contains("certificate"),
        "{err:?}"
    );

    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    stream
        .write_all(b"GET /_keyhold/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut raw),
    )
    .await
    .expect("the server closes the connection");
    assert!(!raw.starts_with(b"HTTP/1.1 200"), "{raw:?}");
}

#[tokio::test]
async fn a_reloaded_certificate_applies_to_new_connections() {
    let temp = tempfile::tempdir().unwrap();
    let (files, ca_one) = make_ca_and_cert(&temp.path().join("one"), "Test CA one");
    let server = TestServer::builder()
        .tls(files.clone(), ca_one.clone())
        .start()
        .await;
    kms_trusting(&server, Some(&ca_one))
        .list_keys()
        .send()
        .await
        .unwrap();

    // New files in place, then the reload (what SIGHUP does).
    let (new_files, ca_two) = make_ca_and_cert(&temp.path().join("two"), "Test CA two");
    std::fs::copy(&new_files.cert, &files.cert).unwrap();
    std::fs::copy(&new_files.key, &files.key).unwrap();
    server.reload_tls().unwrap();

    kms_trusting(&server, Some(&ca_two))
        .list_keys()
        .send()
        .await
        .expect("new connections get the new certificate");
    let err = kms_trusting(&server, Some(&ca_one))
        .list_keys()
        .send()
        .await
        .unwrap_err();
    assert!(
        format!("{err:?}").to_lowercase().contains("certificate"),
        "{err:?}"
    );

    // A broken file is refused and the current certificate stays.
    std::fs::write(&files.key, "not a key").unwrap();
    assert!(server.reload_tls().is_err());
    kms_trusting(&server, Some(&ca_two))
        .list_keys()
        .send()
        .await
        .expect("still the second certificate");
}
