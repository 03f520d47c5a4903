//! `keyhold migrate-store` (docs/ha.md, "Moving data"): a node's state moved from SQLite to
//! PostgreSQL serves there as it did — old ciphertext decrypts, secrets, parameters,
//! aliases and grants work — and its audit trail verifies against the anchor the
//! PostgreSQL store now holds and goes on there; the copy back to SQLite verifies too. A
//! target that holds state, and a source a server has open, are refused.
//!
//! The node moves with a `node_id`, so its audit anchor is renamed on the way there and
//! back. The PostgreSQL tests use `KEYHOLD_TEST_STORAGE`'s database, else `KEYHOLD_TEST_POSTGRES`,
//! else `postgres://postgres@127.0.0.1:5432/test`; unreachable, they say why they did not
//! run (and fail under `CI`).

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::GrantOperation;
use aws_sdk_ssm::types::ParameterType;
use keyhold_server::audit::offline::{self, KeyStore, KeyTrust};
use keyhold_server::ops::move_store::{AuditCheck, MoveReport, MoveRequest, migrate_store};
use keyhold_testkit::{DEFAULT_REGION, TestServer};

const OWNER: &str = "111122223333";
const PARTNER: &str = "444455556666";

/// A reachable PostgreSQL database, or `None` (with the reason printed).
async fn postgres(test: &str) -> Option<String> {
    let url = keyhold_testkit::test_storage()
        .or_else(|| std::env::var("KEYHOLD_TEST_POSTGRES").ok())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let config = keyhold_store::parse_postgres_url(&url).unwrap();
    match config.connect().await {
        Ok(_) => Some(url),
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none() && keyhold_testkit::test_storage().is_none(),
                "PostgreSQL is unreachable ({e})"
            );
            eprintln!("{test}: not run: PostgreSQL is unreachable ({e})");
            None
        }
    }
}

/// The trail's verification in a report (it must have been checked).
fn audit_of(report: &MoveReport) -> &offline::Verified {
    match &report.audit {
        AuditCheck::Verified { verified, .. } => verified,
        AuditCheck::NoTrail(dir) => panic!("no trail found in {}", dir.display()),
        AuditCheck::NotChecked => panic!("the trail was not checked"),
    }
}

#[tokio::test]
async fn a_sqlite_node_moved_to_postgresql_serves_its_state_and_continues_its_audit_trail() {
    let Some(url) = postgres("migrate_store::sqlite_to_postgresql").await else {
        return;
    };
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("node");
    let (storage, created) =
        keyhold_testkit::postgres_schema_for(&url, &temp.path().join("pg")).await;
    assert!(created, "a fresh schema");

    // A node on SQLite with a key (and its alias and a grant to another account), a
    // ciphertext, a secret and a SecureString parameter.
    let source = TestServer::builder().data_dir(&dir).sqlite().start().await;
    let owner = source.kms_for(OWNER, DEFAULT_REGION);
    let key = owner
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let (key_id, key_arn) = (key.key_id, key.arn.unwrap());
    owner
        .create_alias()
        .alias_name("alias/moved")
        .target_key_id(&key_id)
        .send()
        .await
        .unwrap();
    let ciphertext = owner
        .encrypt()
        .key_id("alias/moved")
        .plaintext(Blob::new(b"sealed before the move".to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    let grant_id = owner
        .create_grant()
        .key_id(&key_id)
        .grantee_principal(format!("arn:aws:iam::{PARTNER}:root"))
        .operations(GrantOperation::Decrypt)
        .send()
        .await
        .unwrap()
        .grant_id
        .unwrap();
    source
        .secrets_manager()
        .create_secret()
        .name("moved/db")
        .secret_string("hunter2")
        .send()
        .await
        .unwrap();
    source
        .ssm()
        .put_parameter()
        .name("/moved/param")
        .value("parameter value")
        .r#type(ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    source.stop().await;

    // The node joins PostgreSQL as `n1` (as every node of a cluster has a `node_id`): its
    // anchor is renamed on the way.
    let report = migrate_store(&MoveRequest {
        from: format!("sqlite:{}", dir.display()),
        to: storage.as_str().to_owned(),
        node_id: Some("n1".into()),
        ..MoveRequest::default()
    })
    .await
    .unwrap();
    assert!(report.ok(), "{}", report.copy);
    let rows = |table: &str| {
        report
            .copy
            .tables
            .iter()
            .find(|t| t.table == table)
            .unwrap()
            .target_rows
    };
    assert_eq!(rows("kms_grants"), 1);
    assert!(rows("kms_aliases") >= 1);
    assert_eq!(rows("sm_secrets"), 1);
    assert_eq!(rows("ssm_params"), 1);
    assert!(
        rows("meta") >= 2,
        "the sealed domain key and the audit anchor"
    );
    assert_eq!(
        report.renamed,
        vec![("audit.anchor".to_owned(), "audit.anchor.n1".to_owned())]
    );
    let moved = audit_of(&report);
    assert!(moved.report.ok(), "{:?}", moved.report.problems);
    assert!(
        matches!(moved.trust, KeyTrust::Unsealed),
        "the root key opens the domain key the target holds"
    );
    let events_at_move = moved.report.events;
    assert!(events_at_move > 0);

    // The same data directory (its root key file and audit trail) on the PostgreSQL store.
    let storage_url = storage.as_str().to_owned();
    let target = TestServer::builder()
        .data_dir(&dir)
        .configure(move |c| {
            c.storage = Some(storage);
            c.node_id = Some("n1".into());
        })
        .start()
        .await;
    let owner = target.kms_for(OWNER, DEFAULT_REGION);
    let plaintext = owner
        .decrypt()
        .ciphertext_blob(ciphertext.clone())
        .send()
        .await
        .unwrap()
        .plaintext
        .unwrap();
    assert_eq!(plaintext.into_inner(), b"sealed before the move");
    let described = owner
        .describe_key()
        .key_id("alias/moved")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(described.key_id, key_id);
    owner
        .encrypt()
        .key_id("alias/moved")
        .plaintext(Blob::new(b"after".to_vec()))
        .send()
        .await
        .unwrap();
    let grants = owner.list_grants().key_id(&key_id).send().await.unwrap();
    assert_eq!(grants.grants().len(), 1);
    assert_eq!(grants.grants()[0].grant_id(), Some(grant_id.as_str()));
    // The grant still lets the partner account decrypt with the owner's key.
    let partner = target
        .kms_for(PARTNER, DEFAULT_REGION)
        .decrypt()
        .key_id(&key_arn)
        .ciphertext_blob(ciphertext)
        .send()
        .await
        .unwrap();
    assert_eq!(
        partner.plaintext.unwrap().into_inner(),
        b"sealed before the move"
    );
    let secret = target
        .secrets_manager()
        .get_secret_value()
        .secret_id("moved/db")
        .send()
        .await
        .unwrap();
    assert_eq!(secret.secret_string(), Some("hunter2"));
    let parameter = target
        .ssm()
        .get_parameter()
        .name("/moved/param")
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        parameter.parameter.unwrap().value(),
        Some("parameter value")
    );
    target
        .secrets_manager()
        .put_secret_value()
        .secret_id("moved/db")
        .secret_string("rotated on PostgreSQL")
        .send()
        .await
        .unwrap();
    target.stop().await;

    // The trail went on from where it was, anchored in PostgreSQL now.
    let on_postgres = offline::verify_trail(
        &dir,
        &KeyStore::Postgres {
            url: storage_url.clone(),
            node_id: Some("n1".into()),
        },
        offline::RootSource::KeyFile(None),
        None,
        &[],
    )
    .await
    .unwrap();
    assert!(on_postgres.report.ok(), "{:?}", on_postgres.report.problems);
    assert!(matches!(on_postgres.trust, KeyTrust::Unsealed));
    assert!(
        on_postgres.report.events > events_at_move,
        "{} events after the move, {events_at_move} at it",
        on_postgres.report.events
    );

    // And back: PostgreSQL to a new SQLite data directory, checked the same way.
    let back = temp.path().join("back");
    let report = migrate_store(&MoveRequest {
        from: storage_url,
        to: format!("sqlite:{}", back.display()),
        data_dir: Some(dir.clone()),
        node_id: Some("n1".into()),
        ..MoveRequest::default()
    })
    .await
    .unwrap();
    assert!(report.ok(), "{}", report.copy);
    assert_eq!(
        report
            .copy
            .tables
            .iter()
            .find(|t| t.table == "sm_versions")
            .unwrap()
            .target_rows,
        2
    );
    assert!(audit_of(&report).report.ok());
}

#[tokio::test]
async fn a_target_with_state_and_a_source_in_use_are_refused() {
    let temp = tempfile::tempdir().unwrap();
    let (a, b) = (temp.path().join("a"), temp.path().join("b"));
    let first = TestServer::builder().data_dir(&a).sqlite().start().await;
    first.kms().create_key().send().await.unwrap();
    let second = TestServer::builder().data_dir(&b).sqlite().start().await;
    second.kms().create_key().send().await.unwrap();
    second.stop().await;

    // A server has the source open.
    let fresh = temp.path().join("fresh");
    let error = migrate_store(&MoveRequest {
        from: format!("sqlite:{}", a.display()),
        to: format!("sqlite:{}", fresh.display()),
        ..MoveRequest::default()
    })
    .await
    .err()
    .expect("a source a server has open is refused");
    assert!(
        format!("{error:#}").contains("the source store is in use"),
        "{error:#}"
    );
    first.stop().await;

    // The target holds another node's state: refused, and left as it was.
    let error = migrate_store(&MoveRequest {
        from: format!("sqlite:{}", a.display()),
        to: format!("sqlite:{}", b.display()),
        ..MoveRequest::default()
    })
    .await
    .err()
    .expect("a target with state is refused");
    assert!(
        format!("{error:#}").contains("the target store is not empty: table meta"),
        "{error:#}"
    );
    let second = TestServer::builder().data_dir(&b).sqlite().start().await;
    let keys = second.kms().list_keys().send().await.unwrap();
    assert_eq!(keys.keys().len(), 1, "the target's own key, and no other");
    second.stop().await;

    // Into an empty store the same copy goes through.
    let report = migrate_store(&MoveRequest {
        from: format!("sqlite:{}", a.display()),
        to: format!("sqlite:{}", fresh.display()),
        ..MoveRequest::default()
    })
    .await
    .unwrap();
    assert!(report.ok(), "{}", report.copy);
}
