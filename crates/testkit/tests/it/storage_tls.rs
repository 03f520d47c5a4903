//! A server on a PostgreSQL store reached over TLS (`sslmode=require`, docs/storage.md):
//! KMS works, and the database reports every connection of the server encrypted.
//!
//! The database is `KEYHOLD_TEST_STORAGE`'s, else `KEYHOLD_TEST_POSTGRES`'s, else
//! `postgres://postgres@127.0.0.1:5432/test`. When it is unreachable or has SSL off, the test
//! says why it did not run (and fails under `CI` or when one of those variables is set).

use aws_sdk_kms::primitives::Blob;
use keyhold_testkit::{TestServer, new_key};

fn with_params(url: &str, params: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{params}")
}

/// A reachable database with SSL on and a connection to it, or `None` (the reason printed).
async fn postgres_with_ssl(test: &str) -> Option<(String, tokio_postgres::Client)> {
    let explicit =
        keyhold_testkit::test_storage().or_else(|| std::env::var("KEYHOLD_TEST_POSTGRES").ok());
    let url = explicit
        .clone()
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let must_run = explicit.is_some() || std::env::var_os("CI").is_some();
    let admin = keyhold_store::parse_postgres_url(&with_params(&url, "sslmode=disable")).unwrap();
    let why = match admin.connect().await {
        Ok((client, connection)) => {
            tokio::spawn(connection);
            let ssl: String = client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
            if ssl == "on" {
                return Some((url, client));
            }
            format!("the server has ssl = {ssl}")
        }
        Err(e) => format!("PostgreSQL is unreachable ({e})"),
    };
    assert!(
        !must_run,
        "{test}: {why} (and CI or a test database is set)"
    );
    eprintln!("{test}: not run: {why}");
    None
}

#[tokio::test]
async fn a_server_on_a_postgresql_store_over_tls_encrypts_and_decrypts() {
    let Some((url, admin)) = postgres_with_ssl("storage_tls").await else {
        return;
    };
    let app = format!("keyhold_it_tls_{}", std::process::id());
    let url = with_params(&url, &format!("sslmode=require&application_name={app}"));
    let dir = tempfile::tempdir().unwrap();
    let (storage, created) =
        keyhold_testkit::postgres_schema_for(&url, &dir.path().join("pg")).await;
    assert!(created, "a fresh schema");
    let server = TestServer::builder()
        .data_dir(&dir.path().join("node"))
        .configure(move |c| c.storage = Some(storage))
        .start()
        .await;

    let kms = server.kms();
    let key = new_key(&kms).await.id;
    let ciphertext = kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"over TLS".to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    let plaintext = kms
        .decrypt()
        .ciphertext_blob(ciphertext)
        .send()
        .await
        .unwrap()
        .plaintext
        .unwrap();
    assert_eq!(plaintext.as_ref(), b"over TLS");

    // The server's connections (pool, change feed, audit anchor) as the database sees them.
    let row = admin
        .query_one(
            "SELECT count(*), coalesce(bool_and(s.ssl), false) FROM pg_stat_ssl s \
             JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1",
            &[&app],
        )
        .await
        .unwrap();
    let (count, all_encrypted): (i64, bool) = (row.get(0), row.get(1));
    assert!(count >= 1, "the server's connections are seen");
    assert!(all_encrypted, "every connection of the server is encrypted");
}
