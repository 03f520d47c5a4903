//! The store contract, run against every backend: each case runs once on a fresh SQLite
//! file and once on a fresh PostgreSQL schema.
//!
//! PostgreSQL: `KEYHOLD_TEST_POSTGRES` (a `postgres://` URL; default
//! `postgres://postgres@127.0.0.1:5432/test`). Each case creates a schema of its own, points
//! the store's `search_path` at it and drops it afterwards. When the database cannot be
//! reached, the PostgreSQL half fails if `CI` or `KEYHOLD_TEST_POSTGRES` is set, and is
//! skipped with a notice otherwise.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use keyhold_store::audit::AuditAnchor;
use keyhold_store::*;

const ACCOUNT: &str = "111122223333";
const REGION: &str = "us-east-1";

/// One store under test, and what to clean up after it.
struct Fixture {
    store: Arc<dyn Store>,
    backend: Backend,
}

enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres {
        admin: tokio_postgres::Client,
        schema: String,
        config: Box<PgConfig>,
    },
}

impl Fixture {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("keyhold.db")).unwrap();
        Self {
            store: Arc::new(store),
            backend: Backend::Sqlite(dir),
        }
    }

    /// `None`: PostgreSQL is unreachable and may be skipped here.
    async fn postgres() -> Option<Self> {
        let explicit = std::env::var("KEYHOLD_TEST_POSTGRES").ok();
        let url = explicit
            .clone()
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let config = parse_postgres_url(&url).unwrap();
        let admin = match config.connect().await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                client
            }
            Err(e) => {
                if explicit.is_some() || std::env::var_os("CI").is_some() {
                    panic!(
                        "PostgreSQL is unreachable ({e}) and CI or KEYHOLD_TEST_POSTGRES is set"
                    );
                }
                eprintln!(
                    "NOTICE: PostgreSQL unreachable ({e}); the PostgreSQL half of the store suite is skipped"
                );
                return None;
            }
        };
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let schema = format!(
            "keyhold_suite_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap();
        let mut config = config;
        config
            .config_mut()
            .options(format!("-c search_path={schema}"));
        let store = PgStore::connect_config(config.clone()).await.unwrap();
        Some(Self {
            store: Arc::new(store),
            backend: Backend::Postgres {
                admin,
                schema,
                config: Box::new(config),
            },
        })
    }

    fn anchor(&self) -> Box<dyn AuditAnchor> {
        match &self.backend {
            Backend::Sqlite(dir) => {
                Box::new(SqliteAuditAnchor::open(&dir.path().join("keyhold.db")).unwrap())
            }
            Backend::Postgres { config, .. } => {
                Box::new(PgAuditAnchor::with_config((**config).clone()).unwrap())
            }
        }
    }

    /// A second store on the same database (another node, or a restart).
    async fn reopen(&self) -> Arc<dyn Store> {
        match &self.backend {
            Backend::Sqlite(dir) => {
                Arc::new(SqliteStore::open(&dir.path().join("keyhold.db")).unwrap())
            }
            Backend::Postgres { config, .. } => {
                Arc::new(PgStore::connect_config((**config).clone()).await.unwrap())
            }
        }
    }

    async fn finish(self) {
        drop(self.store);
        if let Backend::Postgres { admin, schema, .. } = self.backend {
            admin
                .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                .await
                .unwrap();
        }
    }
}

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let fixture = super::Fixture::sqlite().await;
                    super::$case(&fixture).await;
                    fixture.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(fixture) = super::Fixture::postgres().await else { return };
                    super::$case(&fixture).await;
                    fixture.finish().await;
                }
            )*
        }
    };
}

suite!(
    meta_inserts_once_and_replaces_only_the_expected_value,
    concurrent_conditional_meta_writes_have_one_winner,
    keys_round_trip_and_duplicates_change_nothing,
    key_listing_is_scoped_ordered_and_paginated,
    deletion_is_conditional_and_takes_everything_of_the_key,
    rotation_adds_material_and_schedule_together,
    multi_region_rows_are_found_by_key_id_and_carry_their_primary,
    aliases_are_unique_per_scope_and_report_missing_ones,
    tags_upsert_remove_and_list_in_order,
    grants_round_trip_and_go_with_their_key,
    imported_materials_upsert_in_place_and_expire,
    import_tokens_are_single_use_bounded_per_key_and_purged,
    secrets_and_versions_round_trip,
    secrets_due_for_rotation_read_the_metadata,
    params_and_versions_round_trip,
    iam_state_round_trips_and_names_are_unique_ignoring_case,
    iam_meta_markers_and_sessions_insert_once,
    erase_resources_keeps_server_values,
    the_audit_anchor_stores_loads_and_clears,
    cluster_digests_append_once_per_sequence_and_page_in_order,
    a_second_store_on_the_same_database_sees_every_write,
    lookups_of_names_with_a_nul_find_nothing,
    the_shared_audit_index_publishes_finds_newest_first_and_forgets,
);

fn key(key_id: &str) -> KeyRecord {
    key_in(key_id, ACCOUNT, REGION)
}

fn key_in(key_id: &str, account: &str, region: &str) -> KeyRecord {
    KeyRecord {
        key_id: key_id.into(),
        account: account.into(),
        region: region.into(),
        arn: format!("arn:aws:kms:{region}:{account}:key/{key_id}"),
        creation_ms: 1,
        description: "d".into(),
        key_usage: "ENCRYPT_DECRYPT".into(),
        key_spec: "SYMMETRIC_DEFAULT".into(),
        origin: "AWS_KMS".into(),
        key_manager: "CUSTOMER".into(),
        state: "Enabled".into(),
        deletion_ms: None,
        policy: "{}".into(),
        current_material_id: "00".repeat(32),
        rotation_period_days: None,
        next_rotation_ms: None,
        state_after_import: None,
        multi_region_primary: None,
    }
}

fn material(key_id: &str, id: &str, at: i64, rotation: Option<&str>) -> MaterialRecord {
    MaterialRecord {
        key_id: key_id.into(),
        material_id: id.repeat(32),
        sealed: vec![0, 1, 2, 255],
        creation_ms: at,
        rotation_type: rotation.map(str::to_owned),
    }
}

fn alias(name: &str, target: &str) -> AliasRecord {
    AliasRecord {
        account: ACCOUNT.into(),
        region: REGION.into(),
        name: name.into(),
        target_key_id: target.into(),
        creation_ms: 5,
        updated_ms: 5,
    }
}

fn tag(k: &str, v: &str) -> Tag {
    Tag {
        key: k.into(),
        value: v.into(),
    }
}

async fn insert(store: &dyn Store, key_id: &str) {
    store
        .insert_key(&key(key_id), &material(key_id, "00", 1, None), &[], None)
        .await
        .unwrap();
}

async fn meta_inserts_once_and_replaces_only_the_expected_value(f: &Fixture) {
    let s = f.store.as_ref();
    assert_eq!(s.get_meta("m").await.unwrap(), None);
    assert!(s.insert_meta_if_absent("m", b"one").await.unwrap());
    assert!(!s.insert_meta_if_absent("m", b"two").await.unwrap());
    assert_eq!(s.get_meta("m").await.unwrap(), Some(b"one".to_vec()));
    assert!(!s.replace_meta("m", b"two", b"three").await.unwrap());
    assert!(!s.replace_meta("absent", b"one", b"three").await.unwrap());
    assert!(s.replace_meta("m", b"one", b"three").await.unwrap());
    assert_eq!(s.get_meta("m").await.unwrap(), Some(b"three".to_vec()));
    // Binary values survive as they are.
    let bytes: Vec<u8> = (0..=255).collect();
    assert!(s.insert_meta_if_absent("bin", &bytes).await.unwrap());
    assert_eq!(s.get_meta("bin").await.unwrap(), Some(bytes));
}

async fn concurrent_conditional_meta_writes_have_one_winner(f: &Fixture) {
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let store = f.store.clone();
        tasks.push(tokio::spawn(async move {
            store.insert_meta_if_absent("race", &[i]).await.unwrap()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1);
    let start = f.store.get_meta("race").await.unwrap().unwrap();
    let mut tasks = Vec::new();
    for i in 100..116u8 {
        let (store, start) = (f.store.clone(), start.clone());
        tasks.push(tokio::spawn(async move {
            store.replace_meta("race", &start, &[i]).await.unwrap()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1, "a compare-and-swap has one winner");
}

async fn keys_round_trip_and_duplicates_change_nothing(f: &Fixture) {
    let s = f.store.as_ref();
    let mut k = key("k1");
    k.rotation_period_days = Some(90);
    k.next_rotation_ms = Some(1000);
    k.deletion_ms = None;
    s.insert_key(
        &k,
        &material("k1", "00", 1, None),
        &[tag("b", "2"), tag("a", "1")],
        Some(&alias("alias/aws/ebs", "k1")),
    )
    .await
    .unwrap();
    assert_eq!(s.get_key("k1").await.unwrap(), Some(k.clone()));
    assert_eq!(s.get_key("nope").await.unwrap(), None);
    assert_eq!(
        s.list_tags("k1").await.unwrap(),
        vec![tag("a", "1"), tag("b", "2")]
    );
    assert_eq!(
        s.get_alias(ACCOUNT, REGION, "alias/aws/ebs").await.unwrap(),
        Some(alias("alias/aws/ebs", "k1"))
    );
    let m = s.materials("k1").await.unwrap();
    assert_eq!(m, vec![material("k1", "00", 1, None)]);

    // The same id again fails as a whole: no alias or tag of the second attempt lands.
    let err = s
        .insert_key(
            &key("k1"),
            &material("k1", "11", 2, None),
            &[tag("c", "3")],
            Some(&alias("alias/other", "k1")),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists), "{err:?}");
    assert_eq!(
        s.get_alias(ACCOUNT, REGION, "alias/other").await.unwrap(),
        None
    );
    assert_eq!(s.list_tags("k1").await.unwrap().len(), 2);
    assert_eq!(s.materials("k1").await.unwrap().len(), 1);

    // update_key replaces the mutable fields only.
    let mut changed = k.clone();
    changed.description = "new".into();
    changed.state = "Disabled".into();
    changed.policy = "{\"Version\":\"2012-10-17\"}".into();
    changed.rotation_period_days = None;
    changed.next_rotation_ms = None;
    s.update_key(&changed).await.unwrap();
    assert_eq!(s.get_key("k1").await.unwrap(), Some(changed.clone()));
    assert!(matches!(
        s.update_key(&key("missing")).await,
        Err(StoreError::NotFound)
    ));

    // update_key_from writes only over the record it read: a change decided on the record
    // before `changed` (another node's, say) is refused and changes nothing.
    let mut enabled = changed.clone();
    enabled.state = "Enabled".into();
    let mut redescribed = k.clone();
    redescribed.description = "stale".into();
    let stale = s.update_key_from(&k, &redescribed).await;
    assert!(matches!(stale, Err(StoreError::Conflict)), "{stale:?}");
    assert_eq!(s.get_key("k1").await.unwrap(), Some(changed.clone()));
    s.update_key_from(&changed, &enabled).await.unwrap();
    assert_eq!(s.get_key("k1").await.unwrap(), Some(enabled));
    assert!(matches!(
        s.update_key_from(&key("missing"), &key("missing")).await,
        Err(StoreError::NotFound)
    ));
}

async fn key_listing_is_scoped_ordered_and_paginated(f: &Fixture) {
    let s = f.store.as_ref();
    for id in ["k3", "k1", "k5", "k2", "k4"] {
        insert(s, id).await;
    }
    let other = key_in("k0", "444455556666", REGION);
    s.insert_key(&other, &material("k0", "00", 1, None), &[], None)
        .await
        .unwrap();
    let elsewhere = key_in("k9", ACCOUNT, "eu-west-1");
    s.insert_key(&elsewhere, &material("k9", "00", 1, None), &[], None)
        .await
        .unwrap();
    let ids = |v: Vec<KeyRecord>| v.into_iter().map(|k| k.key_id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.list_keys(ACCOUNT, REGION, None, 100).await.unwrap()),
        ["k1", "k2", "k3", "k4", "k5"]
    );
    assert_eq!(
        ids(s.list_keys(ACCOUNT, REGION, None, 2).await.unwrap()),
        ["k1", "k2"]
    );
    assert_eq!(
        ids(s.list_keys(ACCOUNT, REGION, Some("k2"), 2).await.unwrap()),
        ["k3", "k4"]
    );
    assert_eq!(
        ids(s.list_keys(ACCOUNT, REGION, Some("k5"), 2).await.unwrap()),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(s
            .list_keys("444455556666", REGION, None, usize::MAX)
            .await
            .unwrap()),
        ["k0"]
    );
    assert_eq!(
        ids(s.list_keys(ACCOUNT, "eu-west-1", None, 10).await.unwrap()),
        ["k9"]
    );
}

async fn deletion_is_conditional_and_takes_everything_of_the_key(f: &Fixture) {
    let s = f.store.as_ref();
    insert(s, "k1").await;
    insert(s, "k2").await;
    s.put_tags("k1", &[tag("t", "v")]).await.unwrap();
    s.insert_alias(&alias("alias/one", "k1")).await.unwrap();
    s.insert_grant(&grant("g1", "k1", None)).await.unwrap();
    s.write_imported_materials(&key("k1"), &[imported("k1", "aa", 1, Some(50))], &[])
        .await
        .unwrap();

    assert!(
        !s.delete_key_if_due("k1", 100).await.unwrap(),
        "not pending"
    );
    let mut pending = key("k1");
    pending.state = "PendingDeletion".into();
    pending.deletion_ms = Some(10);
    s.update_key(&pending).await.unwrap();
    let mut later = key("k2");
    later.state = "PendingDeletion".into();
    later.deletion_ms = Some(5);
    s.update_key(&later).await.unwrap();
    assert!(s.keys_due_for_deletion(4).await.unwrap().is_empty());
    assert_eq!(s.keys_due_for_deletion(10).await.unwrap(), ["k2", "k1"]);
    assert!(!s.delete_key_if_due("k1", 9).await.unwrap(), "not yet due");
    assert!(!s.delete_key_if_due("absent", 9).await.unwrap());

    assert!(s.delete_key_if_due("k1", 10).await.unwrap());
    assert_eq!(s.get_key("k1").await.unwrap(), None);
    assert!(s.materials("k1").await.unwrap().is_empty());
    assert!(s.list_tags("k1").await.unwrap().is_empty());
    assert!(s.key_grants("k1").await.unwrap().is_empty());
    assert!(s.imported_materials("k1").await.unwrap().is_empty());
    assert_eq!(
        s.get_alias(ACCOUNT, REGION, "alias/one").await.unwrap(),
        None
    );
    assert!(!s.delete_key_if_due("k1", 10).await.unwrap(), "only once");
    assert_eq!(s.keys_due_for_deletion(10).await.unwrap(), ["k2"]);

    // A cancelled deletion is not carried out.
    s.update_key(&key("k2")).await.unwrap();
    assert!(!s.delete_key_if_due("k2", 10).await.unwrap());
    assert!(s.get_key("k2").await.unwrap().is_some());

    // Concurrent deletions of one due key: exactly one deletes it.
    let mut due = key("k2");
    due.state = "PendingDeletion".into();
    due.deletion_ms = Some(1);
    s.update_key(&due).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = f.store.clone();
        tasks.push(tokio::spawn(async move {
            store.delete_key_if_due("k2", 10).await.unwrap()
        }));
    }
    let mut deleted = 0;
    for t in tasks {
        deleted += usize::from(t.await.unwrap());
    }
    assert_eq!(deleted, 1);
}

async fn multi_region_rows_are_found_by_key_id_and_carry_their_primary(f: &Fixture) {
    let s = f.store.as_ref();
    let wire = format!("mrk-{}", "ab".repeat(16));
    let neighbour = format!("mrk-{}", "ac".repeat(16));
    let mut east = key_in(&format!("{wire}:us-east-1"), ACCOUNT, "us-east-1");
    east.multi_region_primary = Some("us-east-1".into());
    s.insert_key(&east, &material(&east.key_id, "00", 1, None), &[], None)
        .await
        .unwrap();
    let mut west = key_in(&format!("{wire}:eu-west-1"), ACCOUNT, "eu-west-1");
    west.multi_region_primary = Some("us-east-1".into());
    let materials = [
        material(&west.key_id, "00", 1, None),
        material(&west.key_id, "11", 2, Some("ON_DEMAND")),
    ];
    s.insert_key_with_materials(&west, &materials, &[tag("a", "1")])
        .await
        .unwrap();
    // Another multi-Region key, a single-Region key, and another account: not its rows.
    let other = key_in(&format!("{neighbour}:us-east-1"), ACCOUNT, "us-east-1");
    s.insert_key(&other, &material(&other.key_id, "00", 1, None), &[], None)
        .await
        .unwrap();
    s.insert_key(&key("k1"), &material("k1", "00", 1, None), &[], None)
        .await
        .unwrap();
    let foreign = key_in(&format!("{wire}:us-west-2"), "444455556666", "us-west-2");
    s.insert_key(
        &foreign,
        &material(&foreign.key_id, "00", 1, None),
        &[],
        None,
    )
    .await
    .unwrap();

    let rows = s.multi_region_keys(ACCOUNT, &wire).await.unwrap();
    assert_eq!(
        rows,
        vec![west.clone(), east.clone()],
        "ordered by storage id"
    );
    assert_eq!(s.materials(&west.key_id).await.unwrap(), materials);
    assert_eq!(s.list_tags(&west.key_id).await.unwrap(), [tag("a", "1")]);

    // The primary moves: every row is rewritten.
    west.multi_region_primary = Some("eu-west-1".into());
    s.update_key(&west).await.unwrap();
    assert_eq!(
        s.get_key(&west.key_id)
            .await
            .unwrap()
            .unwrap()
            .multi_region_primary
            .as_deref(),
        Some("eu-west-1")
    );
    assert!(
        s.multi_region_keys(ACCOUNT, "mrk-")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn rotation_adds_material_and_schedule_together(f: &Fixture) {
    let s = f.store.as_ref();
    let mut k = key("k1");
    k.rotation_period_days = Some(90);
    k.next_rotation_ms = Some(100);
    s.insert_key(&k, &material("k1", "00", 1, None), &[], None)
        .await
        .unwrap();
    let mut off = key("k2");
    off.rotation_period_days = Some(90);
    off.next_rotation_ms = Some(50);
    off.state = "Disabled".into();
    s.insert_key(&off, &material("k2", "00", 1, None), &[], None)
        .await
        .unwrap();
    assert!(s.keys_due_for_rotation(99).await.unwrap().is_empty());
    assert_eq!(s.keys_due_for_rotation(100).await.unwrap(), ["k1"]);

    let mut rotated = k.clone();
    rotated.current_material_id = "11".repeat(32);
    rotated.next_rotation_ms = Some(200);
    s.rotate_key(&rotated, &material("k1", "11", 150, Some("AUTOMATIC")))
        .await
        .unwrap();
    // Same creation time as the next one: the insertion order decides.
    let mut again = rotated.clone();
    again.current_material_id = "22".repeat(32);
    s.rotate_key(&again, &material("k1", "22", 150, Some("ON_DEMAND")))
        .await
        .unwrap();
    assert_eq!(s.get_key("k1").await.unwrap(), Some(again.clone()));
    let history: Vec<_> = s
        .materials("k1")
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.material_id, m.rotation_type))
        .collect();
    assert_eq!(
        history,
        [
            ("00".repeat(32), None),
            ("11".repeat(32), Some("AUTOMATIC".to_owned())),
            ("22".repeat(32), Some("ON_DEMAND".to_owned())),
        ]
    );
    assert!(s.keys_due_for_rotation(199).await.unwrap().is_empty());

    // A repeated material fails the whole rotation: the key is unchanged.
    let mut bad = again.clone();
    bad.next_rotation_ms = Some(5000);
    let err = s
        .rotate_key(&bad, &material("k1", "11", 160, Some("ON_DEMAND")))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists), "{err:?}");
    assert_eq!(s.get_key("k1").await.unwrap(), Some(again.clone()));
    // A rotation of a key that does not exist adds nothing.
    assert!(
        s.rotate_key(&key("ghost"), &material("ghost", "33", 1, None))
            .await
            .is_err()
    );
    assert!(s.materials("ghost").await.unwrap().is_empty());

    // Several keys rotate together or not at all (a multi-Region primary and its
    // replicas): k2's repeated material undoes k1's rotation too.
    let mut k1 = again.clone();
    k1.current_material_id = "33".repeat(32);
    let mut k2 = off.clone();
    k2.current_material_id = "00".repeat(32);
    let rotation = |read: &KeyRecord, key: &KeyRecord, id: &str, material_hex: &str| KeyRotation {
        read: read.clone(),
        key: key.clone(),
        material: material(id, material_hex, 170, Some("ON_DEMAND")),
    };
    let err = s
        .rotate_keys(&[
            rotation(&again, &k1, "k1", "33"),
            rotation(&off, &k2, "k2", "00"),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists), "{err:?}");
    assert_eq!(s.get_key("k1").await.unwrap(), Some(again.clone()));
    assert_eq!(s.materials("k1").await.unwrap().len(), 3);
    // Decided on a record another writer has changed since: refused, nothing written.
    let mut changed = off.clone();
    changed.description = "changed by another node".into();
    s.update_key(&changed).await.unwrap();
    k2.current_material_id = "33".repeat(32);
    let err = s
        .rotate_keys(&[
            rotation(&again, &k1, "k1", "33"),
            rotation(&off, &k2, "k2", "33"),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    assert_eq!(s.get_key("k1").await.unwrap(), Some(again.clone()));
    assert_eq!(s.materials("k1").await.unwrap().len(), 3);
    k2.description = changed.description.clone();
    s.rotate_keys(&[
        rotation(&again, &k1, "k1", "33"),
        rotation(&changed, &k2, "k2", "33"),
    ])
    .await
    .unwrap();
    assert_eq!(s.get_key("k1").await.unwrap(), Some(k1.clone()));
    assert_eq!(s.get_key("k2").await.unwrap(), Some(k2.clone()));
    assert_eq!(s.materials("k2").await.unwrap().len(), 2);
    // Several keys' fields in one transaction, each over the record read.
    let (read1, read2) = (k1.clone(), k2.clone());
    k1.description = "moved".into();
    k2.description = "moved too".into();
    let stale = key("k2");
    let err = s
        .update_keys(&[(read1.clone(), k1.clone()), (stale, k2.clone())])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    assert_eq!(s.get_key("k1").await.unwrap(), Some(read1.clone()));
    s.update_keys(&[(read1, k1.clone()), (read2, k2.clone())])
        .await
        .unwrap();
    assert_eq!(s.get_key("k1").await.unwrap(), Some(k1));
    assert_eq!(s.get_key("k2").await.unwrap(), Some(k2));
}

async fn aliases_are_unique_per_scope_and_report_missing_ones(f: &Fixture) {
    let s = f.store.as_ref();
    insert(s, "k1").await;
    insert(s, "k2").await;
    s.insert_alias(&alias("alias/b", "k1")).await.unwrap();
    s.insert_alias(&alias("alias/a", "k2")).await.unwrap();
    s.insert_alias(&alias("alias/c", "k1")).await.unwrap();
    assert!(matches!(
        s.insert_alias(&alias("alias/b", "k2")).await,
        Err(StoreError::AlreadyExists)
    ));
    let mut elsewhere = alias("alias/b", "k1");
    elsewhere.region = "eu-west-1".into();
    s.insert_alias(&elsewhere).await.unwrap();

    let names = |v: Vec<AliasRecord>| v.into_iter().map(|a| a.name).collect::<Vec<_>>();
    assert_eq!(
        names(s.list_aliases(ACCOUNT, REGION, None).await.unwrap()),
        ["alias/a", "alias/b", "alias/c"]
    );
    assert_eq!(
        names(s.list_aliases(ACCOUNT, REGION, Some("k1")).await.unwrap()),
        ["alias/b", "alias/c"]
    );

    // A move decided on another target than the alias has now is refused, unchanged.
    assert!(matches!(
        s.update_alias(ACCOUNT, REGION, "alias/b", "k2", "k2", 8)
            .await,
        Err(StoreError::Conflict)
    ));
    s.update_alias(ACCOUNT, REGION, "alias/b", "k1", "k2", 9)
        .await
        .unwrap();
    let moved = s
        .get_alias(ACCOUNT, REGION, "alias/b")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            moved.target_key_id.as_str(),
            moved.creation_ms,
            moved.updated_ms
        ),
        ("k2", 5, 9)
    );
    assert!(matches!(
        s.update_alias(ACCOUNT, REGION, "alias/none", "k1", "k2", 9)
            .await,
        Err(StoreError::NotFound)
    ));
    // An alias cannot point at a key that does not exist (and that is not "exists").
    let err = s
        .update_alias(ACCOUNT, REGION, "alias/b", "k2", "ghost", 10)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");

    // So is a deletion decided on another target; the alias stays.
    assert!(matches!(
        s.delete_alias(ACCOUNT, REGION, "alias/b", "k1").await,
        Err(StoreError::Conflict)
    ));
    assert!(
        s.get_alias(ACCOUNT, REGION, "alias/b")
            .await
            .unwrap()
            .is_some()
    );
    s.delete_alias(ACCOUNT, REGION, "alias/b", "k2")
        .await
        .unwrap();
    assert!(matches!(
        s.delete_alias(ACCOUNT, REGION, "alias/b", "k2").await,
        Err(StoreError::NotFound)
    ));
    assert!(
        s.get_alias("eu-west-1", ACCOUNT, "alias/b")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.get_alias(ACCOUNT, "eu-west-1", "alias/b")
            .await
            .unwrap()
            .is_some()
    );
}

async fn tags_upsert_remove_and_list_in_order(f: &Fixture) {
    let s = f.store.as_ref();
    insert(s, "k1").await;
    s.put_tags("k1", &[tag("z", "1"), tag("a", "1")])
        .await
        .unwrap();
    s.put_tags("k1", &[tag("a", "2"), tag("m", "3")])
        .await
        .unwrap();
    assert_eq!(
        s.list_tags("k1").await.unwrap(),
        vec![tag("a", "2"), tag("m", "3"), tag("z", "1")]
    );
    s.remove_tags("k1", &["z".into(), "absent".into(), "a".into()])
        .await
        .unwrap();
    assert_eq!(s.list_tags("k1").await.unwrap(), vec![tag("m", "3")]);
    s.remove_tags("k1", &[]).await.unwrap();
    s.put_tags("k1", &[]).await.unwrap();
    assert_eq!(s.list_tags("k1").await.unwrap().len(), 1);
    assert!(s.list_tags("nope").await.unwrap().is_empty());
}

fn grant(grant_id: &str, key_id: &str, retiring: Option<&str>) -> GrantRecord {
    GrantRecord {
        grant_id: grant_id.into(),
        key_id: key_id.into(),
        name: Some("n".into()),
        grantee_principal: "arn:aws:iam::444455556666:root".into(),
        retiring_principal: retiring.map(str::to_owned),
        operations: "Decrypt".into(),
        constraints: None,
        issuing_account: ACCOUNT.into(),
        creation_ms: 5,
    }
}

async fn grants_round_trip_and_go_with_their_key(f: &Fixture) {
    let s = f.store.as_ref();
    insert(s, "k1").await;
    s.insert_key(
        &key_in("k2", ACCOUNT, "eu-west-1"),
        &material("k2", "00", 1, None),
        &[],
        None,
    )
    .await
    .unwrap();
    let admin = "arn:aws:iam::111122223333:user/admin";
    let mut b = grant("aa", "k1", None);
    b.constraints = Some("{\"EncryptionContextEquals\":{}}".into());
    b.name = None;
    let (a, c) = (
        grant("bb", "k1", Some(admin)),
        grant("cc", "k2", Some(admin)),
    );
    for g in [&a, &b, &c] {
        s.insert_grant(g).await.unwrap();
    }
    assert!(matches!(
        s.insert_grant(&a).await,
        Err(StoreError::AlreadyExists)
    ));
    assert_eq!(
        s.key_grants("k1").await.unwrap(),
        vec![b.clone(), a.clone()]
    );
    assert_eq!(
        s.retirable_grants(admin, REGION).await.unwrap(),
        vec![a.clone()]
    );
    assert_eq!(
        s.retirable_grants(admin, "eu-west-1").await.unwrap(),
        vec![c.clone()]
    );
    assert!(
        s.retirable_grants("nobody", REGION)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        s.delete_grant("k2", "aa").await,
        Err(StoreError::NotFound)
    ));
    s.delete_grant("k1", "aa").await.unwrap();
    assert_eq!(s.key_grants("k1").await.unwrap(), vec![a]);
}

fn imported(key_id: &str, id: &str, at: i64, valid_to: Option<i64>) -> ImportedMaterialRecord {
    ImportedMaterialRecord {
        key_id: key_id.into(),
        material_id: id.repeat(32),
        sealed: Some(vec![9, 9]),
        creation_ms: at,
        expiration_model: if valid_to.is_some() {
            "KEY_MATERIAL_EXPIRES".into()
        } else {
            "KEY_MATERIAL_DOES_NOT_EXPIRE".into()
        },
        valid_to_ms: valid_to,
        description: Some("first".into()),
        pending_rotation: false,
        rotation_type: None,
        rotation_ms: None,
    }
}

async fn imported_materials_upsert_in_place_and_expire(f: &Fixture) {
    let s = f.store.as_ref();
    let mut k = key("ext");
    k.origin = "EXTERNAL".into();
    k.state = "PendingImport".into();
    s.insert_key_without_material(&k, &[tag("t", "1")])
        .await
        .unwrap();
    assert_eq!(s.get_key("ext").await.unwrap(), Some(k.clone()));
    assert_eq!(s.list_tags("ext").await.unwrap(), vec![tag("t", "1")]);
    assert!(s.materials("ext").await.unwrap().is_empty());
    assert!(matches!(
        s.insert_key_without_material(&k, &[]).await,
        Err(StoreError::AlreadyExists)
    ));

    let first = imported("ext", "aa", 10, Some(100));
    let mut second = imported("ext", "bb", 10, None);
    second.pending_rotation = true;
    k.state = "Enabled".into();
    s.write_imported_materials(&k, &[first.clone(), second.clone()], &[])
        .await
        .unwrap();
    assert_eq!(s.get_key("ext").await.unwrap().unwrap().state, "Enabled");
    assert_eq!(
        s.imported_materials("ext").await.unwrap(),
        vec![first.clone(), second.clone()]
    );
    assert!(s.keys_with_expired_imports(99).await.unwrap().is_empty());
    assert_eq!(s.keys_with_expired_imports(100).await.unwrap(), ["ext"]);

    // Re-importing the first keeps its place; deleting a material keeps its row unsealed.
    let mut reimported = first.clone();
    reimported.sealed = None;
    reimported.description = Some("again".into());
    reimported.rotation_type = Some("ON_DEMAND".into());
    reimported.rotation_ms = Some(77);
    s.write_imported_materials(&k, &[reimported.clone()], &[])
        .await
        .unwrap();
    assert_eq!(
        s.imported_materials("ext").await.unwrap(),
        vec![reimported.clone(), second.clone()]
    );
    assert!(s.keys_with_expired_imports(1000).await.unwrap().is_empty());

    s.write_imported_materials(&k, &[], &["bb".repeat(32)])
        .await
        .unwrap();
    assert_eq!(s.imported_materials("ext").await.unwrap(), vec![reimported]);
    // The key must exist: the whole write fails otherwise.
    let ghost = key("ghost");
    assert!(matches!(
        s.write_imported_materials(&ghost, &[], &[]).await,
        Err(StoreError::NotFound)
    ));
}

fn import_token(key_id: &str, n: u8, created_ms: i64, expires_ms: i64) -> ImportTokenRecord {
    ImportTokenRecord {
        token_sha256: vec![n; 32],
        key_id: key_id.into(),
        wrapping_key_spec: "RSA_2048".into(),
        wrapping_algorithm: "RSAES_OAEP_SHA_256".into(),
        created_ms,
        expires_ms,
        sealed_private_key: vec![n, 7, 7],
    }
}

fn external(key_id: &str) -> KeyRecord {
    let mut k = key(key_id);
    k.origin = "EXTERNAL".into();
    k.state = "PendingImport".into();
    k
}

async fn import_tokens_are_single_use_bounded_per_key_and_purged(f: &Fixture) {
    let s = f.store.as_ref();
    let mut k = external("ext");
    s.insert_key_without_material(&k, &[]).await.unwrap();
    s.insert_key_without_material(&external("other"), &[])
        .await
        .unwrap();
    assert!(matches!(
        s.insert_import_token(&import_token("ghost", 9, 1, 100), 1, 3)
            .await,
        Err(StoreError::NotFound)
    ));

    let t1 = import_token("ext", 1, 10, 1000);
    s.insert_import_token(&t1, 10, 3).await.unwrap();
    assert_eq!(s.import_token(&[1; 32]).await.unwrap(), Some(t1.clone()));
    assert_eq!(s.import_token(&[2; 32]).await.unwrap(), None);
    // Another node on the same database (or this one after a restart) sees it.
    let second = f.reopen().await;
    assert_eq!(second.import_token(&[1; 32]).await.unwrap(), Some(t1));

    // At most 3 per key: a fourth drops that key's oldest, and no other key's.
    s.insert_import_token(&import_token("other", 5, 5, 1000), 30, 3)
        .await
        .unwrap();
    for (n, at) in [(2, 20), (3, 30), (4, 40)] {
        s.insert_import_token(&import_token("ext", n, at, 1000), at, 3)
            .await
            .unwrap();
    }
    let present = |n: u8| async move { s.import_token(&[n; 32]).await.unwrap().is_some() };
    assert!(!present(1).await);
    for n in [2, 3, 4, 5] {
        assert!(present(n).await, "token {n}");
    }

    // Expired tokens go in the purge, and whenever a token is issued.
    s.insert_import_token(&import_token("other", 6, 41, 50), 41, 3)
        .await
        .unwrap();
    s.insert_import_token(&import_token("other", 7, 41, 60), 41, 3)
        .await
        .unwrap();
    assert_eq!(s.purge_import_tokens(49).await.unwrap(), 0);
    assert_eq!(s.purge_import_tokens(50).await.unwrap(), 1);
    assert!(!present(6).await && present(7).await);
    s.insert_import_token(&import_token("ext", 8, 60, 1000), 60, 10)
        .await
        .unwrap();
    assert!(!present(7).await && present(5).await);

    // Single use, together with the import's write. Another key's token writes nothing.
    let m = imported("ext", "aa", 50, None);
    k.state = "Enabled".into();
    assert!(
        !s.import_with_token(&k, std::slice::from_ref(&m), &[5; 32])
            .await
            .unwrap()
    );
    assert!(s.imported_materials("ext").await.unwrap().is_empty());
    assert_eq!(
        s.get_key("ext").await.unwrap().unwrap().state,
        "PendingImport"
    );
    assert!(present(5).await);
    // The same token used twice at once, from two stores (two nodes): exactly one wins.
    let (a, b) = tokio::join!(
        s.import_with_token(&k, std::slice::from_ref(&m), &[2; 32]),
        second.import_with_token(&k, std::slice::from_ref(&m), &[2; 32])
    );
    assert_eq!(u8::from(a.unwrap()) + u8::from(b.unwrap()), 1);
    assert!(!present(2).await && present(3).await);
    assert_eq!(s.imported_materials("ext").await.unwrap(), vec![m.clone()]);
    assert_eq!(s.get_key("ext").await.unwrap().unwrap().state, "Enabled");
    assert!(!s.import_with_token(&k, &[m], &[2; 32]).await.unwrap());

    // The state a key returns to after a re-import round-trips.
    k.state = "PendingImport".into();
    k.state_after_import = Some("Disabled".into());
    s.write_imported_materials(&k, &[], &[]).await.unwrap();
    assert_eq!(s.get_key("ext").await.unwrap(), Some(k.clone()));

    // Deleting the key deletes its tokens.
    k.state = "PendingDeletion".into();
    k.deletion_ms = Some(100);
    s.update_key(&k).await.unwrap();
    assert!(s.delete_key_if_due("ext", 100).await.unwrap());
    assert!(!present(3).await && !present(4).await && present(5).await);
}

fn secret(arn: &str, name: &str, created: i64) -> SecretRecord {
    SecretRecord {
        arn: arn.into(),
        account: ACCOUNT.into(),
        region: REGION.into(),
        name: name.into(),
        created_ms: created,
        deletion_ms: None,
        meta: "{}".into(),
        revision: 1,
    }
}

fn version(arn: &str, id: &str, created_ms: i64) -> SecretVersionRecord {
    SecretVersionRecord {
        secret_arn: arn.into(),
        version_id: id.into(),
        created_ms,
        last_accessed_ms: None,
        kms_key_id: Some("alias/k".into()),
        kms_key_arn: "arn:aws:kms:us-east-1:111122223333:key/k".into(),
        data_key: vec![1, 2, 3],
        sealed_value: vec![4, 5, 6, 0],
    }
}

fn put_secret(
    s: SecretRecord,
    versions: Vec<SecretVersionRecord>,
    removed: &[&str],
) -> SecretWrite {
    SecretWrite::Put {
        secret: s,
        versions,
        removed_versions: removed.iter().map(|s| (*s).to_owned()).collect(),
    }
}

async fn secrets_and_versions_round_trip(f: &Fixture) {
    let s = f.store.as_ref();
    let a = secret("arn:a-AAAAAA", "a", 2);
    let z = secret("arn:z-ZZZZZZ", "z", 1);
    s.write_secrets(&[
        put_secret(
            a.clone(),
            vec![version(&a.arn, "v2", 2), version(&a.arn, "v1", 1)],
            &[],
        ),
        put_secret(z.clone(), vec![], &[]),
    ])
    .await
    .unwrap();
    assert_eq!(s.get_secret(&a.arn).await.unwrap(), Some(a.clone()));
    assert_eq!(s.get_secret("arn:none").await.unwrap(), None);
    assert_eq!(
        s.find_secret(ACCOUNT, REGION, "a").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        s.find_secret(ACCOUNT, "eu-west-1", "a").await.unwrap(),
        None
    );
    let ids: Vec<String> = s
        .secret_versions(&a.arn)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.version_id)
        .collect();
    assert_eq!(ids, ["v1", "v2"]);
    assert_eq!(
        s.list_secrets(ACCOUNT, REGION).await.unwrap(),
        vec![z.clone(), a.clone()],
        "ordered by creation"
    );

    // Another secret with the same name is refused, and nothing of that batch lands.
    let b = secret("arn:a-BBBBBB", "a", 3);
    let c = secret("arn:c-CCCCCC", "c", 3);
    let err = s
        .write_secrets(&[
            put_secret(c.clone(), vec![], &[]),
            put_secret(b.clone(), vec![version(&b.arn, "v9", 9)], &[]),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists), "{err:?}");
    assert_eq!(s.get_secret(&b.arn).await.unwrap(), None);
    assert_eq!(s.get_secret(&c.arn).await.unwrap(), None);

    // A put replaces the row and named versions, and removes others.
    let mut scheduled = a.clone();
    scheduled.deletion_ms = Some(50);
    scheduled.meta = "{\"description\":\"x\"}".into();
    scheduled.revision = 2;
    let mut v2 = version(&a.arn, "v2", 2);
    v2.last_accessed_ms = Some(86_400_000);
    v2.kms_key_id = None;
    s.write_secrets(&[put_secret(
        scheduled.clone(),
        vec![v2.clone()],
        &["v1", "absent"],
    )])
    .await
    .unwrap();
    assert_eq!(s.secret_versions(&a.arn).await.unwrap(), vec![v2]);
    assert!(s.secrets_due_for_deletion(49).await.unwrap().is_empty());
    assert_eq!(
        s.secrets_due_for_deletion(50).await.unwrap(),
        [a.arn.as_str()]
    );
    assert_eq!(s.get_secret(&a.arn).await.unwrap(), Some(scheduled.clone()));

    // A write decided on an older revision (two nodes moved AWSCURRENT from what each
    // read) is refused whole; so is a second creation of one ARN.
    let mut stale = a.clone();
    stale.revision = 2;
    let err = s
        .write_secrets(&[put_secret(stale, vec![version(&a.arn, "v3", 3)], &[])])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    let err = s
        .write_secrets(&[put_secret(z.clone(), vec![], &[])])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    assert_eq!(s.secret_versions(&a.arn).await.unwrap().len(), 1);
    assert_eq!(s.get_secret(&a.arn).await.unwrap(), Some(scheduled));

    s.write_secrets(&[
        SecretWrite::Delete { arn: a.arn.clone() },
        SecretWrite::Delete {
            arn: "arn:none".into(),
        },
    ])
    .await
    .unwrap();
    assert_eq!(s.get_secret(&a.arn).await.unwrap(), None);
    assert!(s.secret_versions(&a.arn).await.unwrap().is_empty());
    // The name is free again.
    s.write_secrets(&[put_secret(b.clone(), vec![], &[])])
        .await
        .unwrap();
    assert_eq!(s.find_secret(ACCOUNT, REGION, "a").await.unwrap(), Some(b));
}

async fn secrets_due_for_rotation_read_the_metadata(f: &Fixture) {
    let s = f.store.as_ref();
    let with = |arn: &str, created: i64, meta: &str| {
        let mut r = secret(arn, arn, created);
        r.meta = meta.into();
        r
    };
    let next = with(
        "arn:next",
        1,
        r#"{"rotation":{"enabled":true,"next_rotation_ms":100}}"#,
    );
    let due = with(
        "arn:due",
        2,
        r#"{"rotation":{"enabled":true,"due_ms":50,"next_rotation_ms":500}}"#,
    );
    let off = with(
        "arn:off",
        3,
        r#"{"rotation":{"enabled":false,"next_rotation_ms":10}}"#,
    );
    let none = with("arn:none", 4, r#"{"description":"no rotation"}"#);
    let mut deleting = with(
        "arn:deleting",
        5,
        r#"{"rotation":{"enabled":true,"next_rotation_ms":10}}"#,
    );
    deleting.deletion_ms = Some(1000);
    let writes: Vec<_> = [next, due, off, none, deleting]
        .into_iter()
        .map(|r| put_secret(r, vec![], &[]))
        .collect();
    s.write_secrets(&writes).await.unwrap();
    assert!(s.secrets_due_for_rotation(49).await.unwrap().is_empty());
    assert_eq!(s.secrets_due_for_rotation(50).await.unwrap(), ["arn:due"]);
    assert_eq!(
        s.secrets_due_for_rotation(100).await.unwrap(),
        ["arn:next", "arn:due"]
    );
}

fn param(name: &str, expires: Option<i64>) -> ParamRecord {
    ParamRecord {
        arn: format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{name}"),
        account: ACCOUNT.into(),
        region: REGION.into(),
        name: name.into(),
        created_ms: 1,
        expires_ms: expires,
        meta: "{}".into(),
        revision: 1,
    }
}

fn param_version(p: &ParamRecord, version: i64) -> ParamVersionRecord {
    ParamVersionRecord {
        param_arn: p.arn.clone(),
        version,
        modified_ms: version * 10,
        value: format!("value {version}").into_bytes(),
        meta: "{\"type\":\"String\"}".into(),
    }
}

async fn params_and_versions_round_trip(f: &Fixture) {
    let s = f.store.as_ref();
    let a = param("a", None);
    let b = param("b", Some(500));
    let mut other = param("o", None);
    other.region = "eu-west-1".into();
    other.arn = "arn:aws:ssm:eu-west-1:111122223333:parameter/o".into();
    s.write_params(&[
        ParamWrite::Put {
            param: b.clone(),
            versions: vec![param_version(&b, 1)],
            removed_versions: vec![],
        },
        ParamWrite::Put {
            param: a.clone(),
            versions: vec![param_version(&a, 2), param_version(&a, 1)],
            removed_versions: vec![],
        },
        ParamWrite::Put {
            param: other.clone(),
            versions: vec![param_version(&other, 1)],
            removed_versions: vec![],
        },
    ])
    .await
    .unwrap();
    let (params, versions) = s.load_params(ACCOUNT, REGION).await.unwrap();
    assert_eq!(params, vec![a.clone(), b.clone()]);
    assert_eq!(
        versions,
        vec![
            param_version(&a, 1),
            param_version(&a, 2),
            param_version(&b, 1)
        ]
    );

    assert_eq!(
        s.load_param(&a.arn).await.unwrap(),
        Some((a.clone(), vec![param_version(&a, 1), param_version(&a, 2)]))
    );
    assert_eq!(s.load_param("arn:aws:ssm:none").await.unwrap(), None);

    let mut v2 = param_version(&a, 2);
    v2.value = vec![0, 159, 146, 150];
    let a2 = ParamRecord {
        revision: 2,
        ..a.clone()
    };
    s.write_params(&[ParamWrite::Put {
        param: a2.clone(),
        versions: vec![v2.clone()],
        removed_versions: vec![1, 99],
    }])
    .await
    .unwrap();
    let (_, versions) = s.load_params(ACCOUNT, REGION).await.unwrap();
    assert_eq!(versions, vec![v2.clone(), param_version(&b, 1)]);

    // Two writers that both read revision 1 and both made version 3: the second is
    // refused whole (and decides again on what it reads then); so is a second creation.
    let stale = s
        .write_params(&[
            ParamWrite::Put {
                param: b.clone(),
                versions: vec![],
                removed_versions: vec![],
            },
            ParamWrite::Put {
                param: a2.clone(),
                versions: vec![param_version(&a, 3)],
                removed_versions: vec![],
            },
        ])
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict)), "{stale:?}");
    assert_eq!(
        s.load_param(&a.arn).await.unwrap(),
        Some((a2.clone(), vec![v2]))
    );

    assert!(s.params_due_for_expiration(499).await.unwrap().is_empty());
    assert_eq!(
        s.params_due_for_expiration(500).await.unwrap(),
        vec![b.clone()]
    );

    s.write_params(&[ParamWrite::Delete { arn: b.arn.clone() }])
        .await
        .unwrap();
    let (params, versions) = s.load_params(ACCOUNT, REGION).await.unwrap();
    assert_eq!(params, vec![a2]);
    assert_eq!(versions.len(), 1);
    let (params, _) = s.load_params(ACCOUNT, "eu-west-1").await.unwrap();
    assert_eq!(params, vec![other]);
}

fn user(id: &str, name: &str) -> IamUserRecord {
    IamUserRecord {
        user_id: id.into(),
        account: ACCOUNT.into(),
        name: name.into(),
        path: "/".into(),
        created_ms: 1,
        meta: "{}".into(),
    }
}

fn role(id: &str, name: &str) -> IamRoleRecord {
    IamRoleRecord {
        role_id: id.into(),
        account: ACCOUNT.into(),
        name: name.into(),
        path: "/svc/".into(),
        created_ms: 1,
        trust_policy: "{}".into(),
        meta: "{}".into(),
    }
}

fn access_key(id: &str, user_id: &str) -> AccessKeyRecord {
    AccessKeyRecord {
        access_key_id: id.into(),
        account: ACCOUNT.into(),
        user_id: user_id.into(),
        status: "Active".into(),
        created_ms: 2,
        sealed_secret: vec![1, 2, 3],
    }
}

fn session(id: &str) -> SessionRecord {
    SessionRecord {
        access_key_id: id.into(),
        account: ACCOUNT.into(),
        owner_id: "AROA1".into(),
        created_ms: 1,
        expires_ms: 3_600_000,
        token_sha256: vec![7; 32],
        sealed_secret: vec![8; 40],
        meta: "{}".into(),
    }
}

async fn iam_state_round_trips_and_names_are_unique_ignoring_case(f: &Fixture) {
    let s = f.store.as_ref();
    let alice = user("AIDA1", "Alice");
    let policy = InlinePolicyRecord {
        owner_id: "AIDA1".into(),
        account: ACCOUNT.into(),
        name: "p".into(),
        document: "{}".into(),
    };
    s.write_iam(&[
        IamWrite::PutUser(alice.clone()),
        IamWrite::PutRole(role("AROA1", "Deployer")),
        IamWrite::PutAccessKey(access_key("AKIA2", "AIDA1")),
        IamWrite::PutAccessKey(access_key("AKIA1", "AIDA1")),
        IamWrite::PutPolicy(policy.clone()),
        IamWrite::PutSession(session("ASIA1")),
    ])
    .await
    .unwrap();
    let snap = s.load_iam().await.unwrap();
    assert_eq!(snap.users, vec![alice.clone()]);
    assert_eq!(snap.roles, vec![role("AROA1", "Deployer")]);
    assert_eq!(
        snap.access_keys,
        vec![access_key("AKIA1", "AIDA1"), access_key("AKIA2", "AIDA1")]
    );
    assert_eq!(snap.policies, vec![policy.clone()]);
    assert_eq!(snap.sessions, vec![session("ASIA1")]);

    // Names are unique per account ignoring case; a failed transaction changes nothing.
    for clash in [
        IamWrite::PutUser(user("AIDA2", "ALICE")),
        IamWrite::PutRole(role("AROA2", "deployer")),
    ] {
        let e = s
            .write_iam(&[
                IamWrite::PutPolicy(InlinePolicyRecord {
                    name: "q".into(),
                    ..policy.clone()
                }),
                clash,
            ])
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::AlreadyExists), "{e:?}");
    }
    assert_eq!(s.load_iam().await.unwrap().policies.len(), 1);
    // Another account may use the name; a rename of the same user is an update.
    let mut elsewhere = user("AIDA3", "alice");
    elsewhere.account = "444455556666".into();
    let mut renamed = alice.clone();
    renamed.name = "ALICE".into();
    renamed.meta = "{\"tags\":[]}".into();
    let mut inactive = access_key("AKIA1", "AIDA1");
    inactive.status = "Inactive".into();
    s.write_iam(&[
        IamWrite::PutUser(elsewhere.clone()),
        IamWrite::PutUser(renamed.clone()),
        IamWrite::PutAccessKey(inactive.clone()),
        IamWrite::PutPolicy(InlinePolicyRecord {
            document: "{\"v\":2}".into(),
            ..policy.clone()
        }),
    ])
    .await
    .unwrap();
    let snap = s.load_iam().await.unwrap();
    assert_eq!(snap.users, vec![renamed, elsewhere]);
    assert_eq!(snap.access_keys[0], inactive);
    assert_eq!(snap.policies[0].document, "{\"v\":2}");

    // An access key needs its user.
    assert!(
        s.write_iam(&[IamWrite::PutAccessKey(access_key("AKIA9", "AIDA9"))])
            .await
            .is_err()
    );

    s.write_iam(&[
        IamWrite::DeleteAccessKey {
            access_key_id: "AKIA1".into(),
        },
        IamWrite::DeleteAccessKey {
            access_key_id: "AKIA2".into(),
        },
        IamWrite::Retire {
            access_key_id: "AKIA1".into(),
            retired_ms: 3,
        },
        IamWrite::Retire {
            access_key_id: "AKIA1".into(),
            retired_ms: 4,
        },
        IamWrite::DeletePolicy {
            owner_id: "AIDA1".into(),
            name: "p".into(),
        },
        IamWrite::DeleteUser {
            user_id: "AIDA1".into(),
        },
        IamWrite::DeleteRole {
            role_id: "AROA1".into(),
        },
        IamWrite::DeleteSession {
            access_key_id: "ASIA1".into(),
        },
    ])
    .await
    .unwrap();
    let snap = s.load_iam().await.unwrap();
    assert_eq!(snap.users.len(), 1);
    assert!(snap.roles.is_empty() && snap.access_keys.is_empty());
    assert!(snap.policies.is_empty() && snap.sessions.is_empty());
    assert_eq!(snap.retired, vec!["AKIA1".to_owned()]);
}

async fn iam_meta_markers_and_sessions_insert_once(f: &Fixture) {
    let s = f.store.as_ref();
    let mark = || IamWrite::InsertMeta {
        name: "m".into(),
        value: b"1".to_vec(),
    };
    s.write_iam(&[mark()]).await.unwrap();
    assert_eq!(s.get_meta("m").await.unwrap(), Some(b"1".to_vec()));
    assert!(matches!(
        s.write_iam(&[mark()]).await.unwrap_err(),
        StoreError::AlreadyExists
    ));
    s.write_iam(&[IamWrite::PutSession(session("ASIA1"))])
        .await
        .unwrap();
    assert!(matches!(
        s.write_iam(&[IamWrite::PutSession(session("ASIA1"))])
            .await
            .unwrap_err(),
        StoreError::AlreadyExists
    ));
}

async fn erase_resources_keeps_server_values(f: &Fixture) {
    let s = f.store.as_ref();
    s.insert_meta_if_absent("domain", b"sealed").await.unwrap();
    let mut anchor = f.anchor();
    tokio::task::block_in_place(|| anchor.store(b"anchor")).unwrap();
    s.insert_key(
        &key("k1"),
        &material("k1", "00", 1, None),
        &[tag("a", "1")],
        Some(&alias("alias/x", "k1")),
    )
    .await
    .unwrap();
    s.insert_grant(&grant("g", "k1", None)).await.unwrap();
    s.write_imported_materials(&key("k1"), &[imported("k1", "aa", 1, None)], &[])
        .await
        .unwrap();
    s.insert_import_token(&import_token("k1", 1, 1, 100), 1, 10)
        .await
        .unwrap();
    let sec = secret("arn:s", "s", 1);
    s.write_secrets(&[put_secret(
        sec.clone(),
        vec![version(&sec.arn, "v", 1)],
        &[],
    )])
    .await
    .unwrap();
    let p = param("p", None);
    s.write_params(&[ParamWrite::Put {
        param: p.clone(),
        versions: vec![param_version(&p, 1)],
        removed_versions: vec![],
    }])
    .await
    .unwrap();
    s.write_iam(&[
        IamWrite::PutUser(user("AIDA1", "u")),
        IamWrite::PutRole(role("AROA1", "r")),
        IamWrite::PutAccessKey(access_key("AKIA1", "AIDA1")),
        IamWrite::PutPolicy(InlinePolicyRecord {
            owner_id: "AIDA1".into(),
            account: ACCOUNT.into(),
            name: "p".into(),
            document: "{}".into(),
        }),
        IamWrite::PutSession(session("ASIA1")),
        IamWrite::Retire {
            access_key_id: "AKIA0".into(),
            retired_ms: 1,
        },
    ])
    .await
    .unwrap();
    // key, material, tag, alias, grant, imported, import token; secret, version; param,
    // version; user, role, access key, policy, session, retired.
    assert_eq!(s.erase_resources().await.unwrap(), 17);
    assert_eq!(s.get_key("k1").await.unwrap(), None);
    assert_eq!(s.import_token(&[1; 32]).await.unwrap(), None);
    assert!(s.list_secrets(ACCOUNT, REGION).await.unwrap().is_empty());
    assert!(s.load_params(ACCOUNT, REGION).await.unwrap().0.is_empty());
    let snap = s.load_iam().await.unwrap();
    assert!(snap.users.is_empty() && snap.retired.is_empty() && snap.sessions.is_empty());
    assert_eq!(
        s.get_meta("domain").await.unwrap(),
        Some(b"sealed".to_vec())
    );
    assert_eq!(
        tokio::task::block_in_place(|| anchor.load()).unwrap(),
        Some(b"anchor".to_vec())
    );
    assert_eq!(s.erase_resources().await.unwrap(), 0);
}

async fn the_audit_anchor_stores_loads_and_clears(f: &Fixture) {
    let mut anchor = f.anchor();
    tokio::task::block_in_place(|| {
        assert_eq!(anchor.load().unwrap(), None);
        anchor.store(b"first").unwrap();
        anchor.store(&[0, 255, 1]).unwrap();
        assert_eq!(anchor.load().unwrap(), Some(vec![0, 255, 1]));
    });
    // It is the store's meta entry, seen by the store and by a second anchor.
    assert_eq!(
        f.store.get_meta("audit.anchor").await.unwrap(),
        Some(vec![0, 255, 1])
    );
    let mut other = f.anchor();
    tokio::task::block_in_place(|| {
        assert_eq!(other.load().unwrap(), Some(vec![0, 255, 1]));
        anchor.clear().unwrap();
        assert_eq!(other.load().unwrap(), None);
        anchor.clear().unwrap();
    });
}

async fn a_second_store_on_the_same_database_sees_every_write(f: &Fixture) {
    insert(f.store.as_ref(), "k1").await;
    f.store.insert_meta_if_absent("m", b"1").await.unwrap();
    // Opening again (a restart, or another node) applies no migration twice and loses
    // nothing.
    let second = f.reopen().await;
    assert_eq!(second.get_key("k1").await.unwrap(), Some(key("k1")));
    assert!(!second.insert_meta_if_absent("m", b"2").await.unwrap());
    assert!(matches!(
        second
            .insert_key(&key("k1"), &material("k1", "11", 1, None), &[], None)
            .await,
        Err(StoreError::AlreadyExists)
    ));
}

async fn lookups_of_names_with_a_nul_find_nothing(f: &Fixture) {
    let s = f.store.as_ref();
    insert(s, "k1").await;
    let nul = "alias/\u{0}";
    assert_eq!(s.get_alias(ACCOUNT, REGION, nul).await.unwrap(), None);
    assert_eq!(s.get_key("k\u{0}").await.unwrap(), None);
    assert!(
        s.list_aliases(ACCOUNT, REGION, Some(nul))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.get_meta(nul).await.unwrap(), None);
    assert!(s.materials(nul).await.unwrap().is_empty());
    assert!(s.list_tags(nul).await.unwrap().is_empty());
    assert!(s.key_grants(nul).await.unwrap().is_empty());
    assert!(s.imported_materials(nul).await.unwrap().is_empty());
    assert_eq!(s.get_secret(nul).await.unwrap(), None);
    assert_eq!(s.find_secret(ACCOUNT, REGION, nul).await.unwrap(), None);
    assert!(s.secret_versions(nul).await.unwrap().is_empty());
    assert!(s.load_params(ACCOUNT, nul).await.unwrap().0.is_empty());
    assert!(s.list_keys(nul, REGION, None, 10).await.unwrap().is_empty());
}

fn cluster_digest(seq: i64) -> ClusterDigestRow {
    ClusterDigestRow {
        seq,
        time_ms: 1000 + seq,
        document: format!("{{\"clusterDigestSequence\":{seq}}}"),
        signature: vec![u8::try_from(seq).unwrap(); 64],
    }
}

async fn cluster_digests_append_once_per_sequence_and_page_in_order(f: &Fixture) {
    let s = f.store.as_ref();
    assert_eq!(s.last_cluster_digest().await.unwrap(), None);
    for seq in 1..=3 {
        assert!(s.append_cluster_digest(&cluster_digest(seq)).await.unwrap());
    }
    // A second node appending the same sequence loses, and changes nothing.
    let mut rival = cluster_digest(3);
    rival.document = "rival".into();
    assert!(!s.append_cluster_digest(&rival).await.unwrap());
    assert_eq!(
        s.last_cluster_digest().await.unwrap(),
        Some(cluster_digest(3))
    );
    let page = s.cluster_digests(0, 2).await.unwrap();
    assert_eq!(page, vec![cluster_digest(1), cluster_digest(2)]);
    let rest = s.cluster_digests(2, 2).await.unwrap();
    assert_eq!(rest, vec![cluster_digest(3)]);

    // The anchors are the meta rows `audit.anchor` and `audit.anchor.NODE`, nothing else.
    for name in [
        "audit.anchor",
        "audit.anchor.n1",
        "audit.anchorage",
        "audit.anchor.",
        "domain",
    ] {
        assert!(
            s.insert_meta_if_absent(name, name.as_bytes())
                .await
                .unwrap()
        );
    }
    let anchors = s.audit_anchors().await.unwrap();
    let names: Vec<&str> = anchors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["audit.anchor", "audit.anchor.n1"]);
    assert_eq!(anchors[1].1, b"audit.anchor.n1");
}

/// An event of `node`'s trail for the shared lookup index.
fn shared_event(seq: i64, time_ms: i64, name: &str, resource: &str) -> audit::AuditRow {
    audit::AuditRow {
        seq,
        event_id: format!("id-{time_ms}-{seq}"),
        account: ACCOUNT.into(),
        recipient_account: if name == "Shared" {
            "444455556666".into()
        } else {
            ACCOUNT.into()
        },
        region: REGION.into(),
        time_ms,
        event_name: name.into(),
        event_source: "kms.amazonaws.com".into(),
        read_only: name != "CreateKey",
        username: Some(format!("user-{seq}")),
        access_key_id: Some(format!("AKIA{seq}")),
        resources: vec![
            ("AWS::KMS::Key".into(), resource.into()),
            ("AWS::KMS::Alias".into(), format!("alias/{resource}")),
        ],
        record: format!("{{\"eventName\":\"{name}\",\"seq\":{seq}}}"),
        hash: [0; 32],
    }
}

/// (node, seq) of each event found.
async fn found(
    index: &dyn SharedAuditIndex,
    query: &audit_lookup::SharedQuery,
) -> Vec<(String, i64)> {
    index
        .lookup(query)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.node, e.seq))
        .collect()
}

async fn the_shared_audit_index_publishes_finds_newest_first_and_forgets(f: &Fixture) {
    use audit::AuditAttribute as A;
    use audit_lookup::SharedQuery;
    let Some(index) = f.store.shared_audit_index() else {
        assert!(
            matches!(f.backend, Backend::Sqlite(_)),
            "a store several nodes share has a shared lookup index"
        );
        return;
    };
    let index = index.as_ref();
    assert_eq!(index.published("a").await.unwrap(), None);
    // Node a: events at 1000, 3000, 5000; node b: at 2000, 3000 (a tie with a's 2nd).
    let a = [
        shared_event(1, 1000, "CreateKey", "k1"),
        shared_event(2, 3000, "Decrypt", "k1"),
        shared_event(3, 5000, "Shared", "k2"),
    ];
    let b = [
        shared_event(1, 2000, "Decrypt", "k2"),
        shared_event(2, 3000, "Decrypt", "k1"),
    ];
    index.publish("a", 0, &a[..2]).await.unwrap();
    index.publish("a", 2, &a[2..]).await.unwrap();
    index.publish("b", 0, &b).await.unwrap();
    // A publisher whose progress is stale writes nothing.
    assert!(matches!(
        index.publish("a", 2, &a[2..]).await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        index.publish("b", 0, &b[..1]).await,
        Err(StoreError::Conflict)
    ));
    let progress = index.published("a").await.unwrap().unwrap();
    assert_eq!(progress.through, 3);
    assert_eq!(progress.event_id.as_deref(), Some("id-5000-3"));

    let all = SharedQuery {
        account: ACCOUNT.into(),
        region: REGION.into(),
        limit: 10,
        ..SharedQuery::default()
    };
    let n = |node: &str, seq: i64| (node.to_owned(), seq);
    // Newest first by time; the tie at 3000 broken by node (descending), then sequence.
    assert_eq!(
        found(index, &all).await,
        [n("a", 3), n("b", 2), n("a", 2), n("b", 1), n("a", 1)]
    );
    let by = |a: A, v: &str| SharedQuery {
        attribute: Some((a, v.to_owned())),
        ..all.clone()
    };
    assert_eq!(
        found(index, &by(A::EventName, "Decrypt")).await,
        [n("b", 2), n("a", 2), n("b", 1)]
    );
    assert_eq!(
        found(index, &by(A::ResourceName, "k1")).await,
        [n("b", 2), n("a", 2), n("a", 1)]
    );
    assert_eq!(
        found(index, &by(A::ResourceName, "alias/k2")).await,
        [n("a", 3), n("b", 1)]
    );
    assert_eq!(
        found(index, &by(A::EventId, "id-2000-1")).await,
        [n("b", 1)]
    );
    assert_eq!(found(index, &by(A::ReadOnly, "false")).await, [n("a", 1)]);
    assert_eq!(found(index, &by(A::ReadOnly, "true")).await.len(), 4);
    assert_eq!(
        found(index, &by(A::Username, "user-2")).await,
        [n("b", 2), n("a", 2)]
    );
    assert_eq!(
        found(index, &by(A::AccessKeyId, "AKIA3")).await,
        [n("a", 3)]
    );
    assert_eq!(
        found(index, &by(A::EventSource, "kms.amazonaws.com"))
            .await
            .len(),
        5
    );
    assert_eq!(
        found(index, &by(A::EventSource, "ssm.amazonaws.com")).await,
        []
    );
    assert_eq!(
        found(index, &by(A::ResourceType, "AWS::KMS::Alias"))
            .await
            .len(),
        5
    );
    assert_eq!(
        found(index, &by(A::ResourceType, "AWS::SSM::Parameter")).await,
        []
    );
    assert_eq!(found(index, &by(A::EventName, "De\0crypt")).await, []);
    // The time range is inclusive.
    let range = SharedQuery {
        start_ms: Some(2000),
        end_ms: Some(3000),
        ..all.clone()
    };
    assert_eq!(
        found(index, &range).await,
        [n("b", 2), n("a", 2), n("b", 1)]
    );
    // The recipient account finds the event too; another Region finds nothing.
    let partner = SharedQuery {
        account: "444455556666".into(),
        ..all.clone()
    };
    assert_eq!(found(index, &partner).await, [n("a", 3)]);
    let elsewhere = SharedQuery {
        region: "eu-west-1".into(),
        ..all.clone()
    };
    assert_eq!(found(index, &elsewhere).await, []);

    // Pages continue after the last event of the previous one, across the tie.
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = index
            .lookup(&SharedQuery {
                page: after.clone(),
                limit: 2,
                ..all.clone()
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(audit_lookup::SharedEvent::position);
        pages.push(
            page.iter()
                .map(|e| (e.node.clone(), e.seq))
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(
        pages,
        [
            vec![n("a", 3), n("b", 2)],
            vec![n("a", 2), n("b", 1)],
            vec![n("a", 1)]
        ]
    );
    let by_resource_page = SharedQuery {
        page: Some(audit_lookup::LookupPosition {
            time_ms: 3000,
            node: "b".into(),
            seq: 2,
        }),
        ..by(A::ResourceName, "k1")
    };
    assert_eq!(
        found(index, &by_resource_page).await,
        [n("a", 2), n("a", 1)]
    );

    // An event comes back whole: its columns, its resources in order, its record.
    let got = index.lookup(&by(A::EventId, "id-5000-3")).await.unwrap();
    let e = &got[0];
    assert_eq!(
        (e.event_name.as_str(), e.read_only, e.time_ms),
        ("Shared", true, 5000)
    );
    assert_eq!(e.username.as_deref(), Some("user-3"));
    assert_eq!(e.access_key_id.as_deref(), Some("AKIA3"));
    assert_eq!(e.resources, a[2].resources);
    assert_eq!(e.record, a[2].record);

    // Retention: node a's events below 3 go, with their resources; b's stay.
    assert_eq!(index.forget_before("a", 3).await.unwrap(), 2);
    assert_eq!(index.forget_before("a", 3).await.unwrap(), 0);
    assert_eq!(found(index, &all).await, [n("a", 3), n("b", 2), n("b", 1)]);
    assert_eq!(found(index, &by(A::ResourceName, "k1")).await, [n("b", 2)]);
    // A node forgotten entirely starts again from nothing.
    index.forget_node("b").await.unwrap();
    assert_eq!(index.published("b").await.unwrap(), None);
    assert_eq!(found(index, &all).await, [n("a", 3)]);
    index.publish("b", 0, &b[..1]).await.unwrap();
    assert_eq!(found(index, &all).await, [n("a", 3), n("b", 1)]);
}
