//! TLS to the PostgreSQL store (docs/storage.md, "TLS"): each `sslmode` against a server
//! with `ssl = on`, as the server itself reports it (`pg_stat_ssl`).
//!
//! The database is `KEYHOLD_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/test`,
//! the address `.ci/run` starts PostgreSQL on). The trusted root for `verify-ca` and
//! `verify-full` is the server's own certificate (`ssl_cert_file`; on Debian the self-signed
//! "snakeoil" certificate the `postgresql` package turns SSL on with, named for the machine,
//! never for an IP address). When the database is unreachable, SSL is off or that certificate
//! is unreadable, the test fails if `CI` or `KEYHOLD_TEST_POSTGRES` is set and otherwise says
//! why it did not run.

use std::path::PathBuf;

use keyhold_store::{MetaStore, PgConfig, PgStore, SslMode, parse_postgres_url};

/// The database's URL, and whether it was given explicitly.
fn base_url() -> (String, bool) {
    match std::env::var("KEYHOLD_TEST_POSTGRES") {
        Ok(url) => (url, true),
        Err(_) => ("postgres://postgres@127.0.0.1:5432/test".to_owned(), false),
    }
}

fn with_params(url: &str, params: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{params}")
}

/// Fails under `CI` (or an explicit database), else says why the test did not run.
fn not_run(explicit: bool, why: &str) {
    assert!(
        !explicit && std::env::var_os("CI").is_none(),
        "postgres_tls: {why} (and CI or KEYHOLD_TEST_POSTGRES is set)"
    );
    eprintln!("NOTICE: postgres_tls not run: {why}");
}

/// An error and its causes.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn client(config: &PgConfig) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = config.connect().await?;
    tokio::spawn(connection);
    Ok(client)
}

/// Whether the server says this connection is encrypted.
async fn encrypted(client: &tokio_postgres::Client) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// The server's certificate file, when SSL is on and the file is readable here.
async fn server_certificate(admin: &tokio_postgres::Client) -> Result<PathBuf, String> {
    let ssl: String = admin.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    if ssl != "on" {
        return Err(format!("the server has ssl = {ssl}"));
    }
    let file: String = admin
        .query_one("SHOW ssl_cert_file", &[])
        .await
        .unwrap()
        .get(0);
    let mut path = PathBuf::from(&file);
    if path.is_relative() {
        let data: String = admin
            .query_one("SHOW data_directory", &[])
            .await
            .unwrap()
            .get(0);
        path = PathBuf::from(data).join(path);
    }
    std::fs::read(&path).map_err(|e| {
        format!(
            "the server's certificate {} is unreadable: {e}",
            path.display()
        )
    })?;
    Ok(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sslmode_against_a_server_with_ssl_on() {
    let (url, explicit) = base_url();
    let plain = parse_postgres_url(&with_params(&url, "sslmode=disable")).unwrap();
    let admin = match client(&plain).await {
        Ok(admin) => admin,
        Err(e) => return not_run(explicit, &format!("PostgreSQL is unreachable ({e})")),
    };
    let cert = match server_certificate(&admin).await {
        Ok(cert) => cert,
        Err(why) => return not_run(explicit, &why),
    };
    let root = format!("sslrootcert={}", cert.display());

    // disable: plain TCP.
    assert_eq!(plain.ssl_mode(), SslMode::Disable);
    assert!(!encrypted(&admin).await, "sslmode=disable is not encrypted");

    // prefer (the default) and require: encrypted, the certificate unchecked.
    for params in [
        "application_name=keyhold_tls_test",
        "sslmode=prefer",
        "sslmode=require",
    ] {
        let config = parse_postgres_url(&with_params(&url, params)).unwrap();
        let c = client(&config).await.unwrap();
        assert!(encrypted(&c).await, "{params} is encrypted");
    }

    // verify-ca against the server's certificate: the chain is checked, the name is not.
    // require with sslrootcert is verify-ca too.
    for mode in ["verify-ca", "require"] {
        let config =
            parse_postgres_url(&with_params(&url, &format!("sslmode={mode}&{root}"))).unwrap();
        let c = client(&config).await.unwrap();
        assert!(encrypted(&c).await, "{mode} with {root} is encrypted");
    }

    // verify-full on an IP address: the certificate names the machine, not 127.0.0.1.
    let host_is_ip = plain.config().get_hosts().iter().all(|h| {
        matches!(h, tokio_postgres::config::Host::Tcp(name) if name.parse::<std::net::IpAddr>().is_ok())
    });
    if host_is_ip {
        let config =
            parse_postgres_url(&with_params(&url, &format!("sslmode=verify-full&{root}"))).unwrap();
        let Err(e) = client(&config).await else {
            panic!("verify-full refuses the host");
        };
        let text = chain(&e);
        assert!(
            text.contains("TLS") && text.contains("not valid for name"),
            "a clear error: {text}"
        );
        // Through the store, as an operator sees it.
        let store_url = with_params(&url, &format!("sslmode=verify-full&{root}"));
        let Err(e) = PgStore::connect(&store_url).await else {
            panic!("the store refuses the host");
        };
        let text = chain(&e);
        assert!(
            text.contains("TLS handshake") && text.contains("not valid for name"),
            "{text}"
        );
        assert!(
            !text.contains("sslrootcert="),
            "no URL in the error: {text}"
        );
    }

    // A bundle the server's certificate does not chain to (the system's CAs).
    let system = std::path::Path::new("/etc/ssl/certs/ca-certificates.crt");
    if system.is_file() {
        let config = parse_postgres_url(&with_params(
            &url,
            &format!("sslmode=verify-ca&sslrootcert={}", system.display()),
        ))
        .unwrap();
        let Err(e) = client(&config).await else {
            panic!("an unknown issuer is refused");
        };
        assert!(chain(&e).contains("UnknownIssuer"), "{}", chain(&e));
    }

    // The store itself over TLS: its pool (migrations, writes) and its change feed, in a
    // schema of its own; the server reports every one of its connections encrypted.
    let schema = format!("keyhold_tls_{}", std::process::id());
    admin
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .await
        .unwrap();
    let app = format!("keyhold_tls_{}", std::process::id());
    let store_url = with_params(
        &url,
        &format!("sslmode=require&application_name={app}&options=-c%20search_path%3D{schema}"),
    );
    let store = PgStore::connect(&store_url).await.unwrap();
    assert!(
        store
            .insert_meta_if_absent("tls.test", b"yes")
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_meta("tls.test").await.unwrap().as_deref(),
        Some(&b"yes"[..])
    );
    let row = admin
        .query_one(
            "SELECT count(*), coalesce(bool_and(s.ssl), false) FROM pg_stat_ssl s \
             JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1",
            &[&app],
        )
        .await
        .unwrap();
    let (count, all_encrypted): (i64, bool) = (row.get(0), row.get(1));
    assert!(count >= 1, "the store's connections are seen");
    assert!(all_encrypted, "every connection of the store is encrypted");
    drop(store);
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

#[test]
fn a_missing_root_bundle_is_refused_when_the_url_is_read() {
    let e = parse_postgres_url(
        "postgres://u:hunter2@127.0.0.1/test?sslmode=verify-full&sslrootcert=/nonexistent/root.pem",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("/nonexistent/root.pem"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
}
