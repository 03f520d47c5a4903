//! Three Keyhold nodes on one PostgreSQL store (docs/ha.md): any node serves any request,
//! a change made on one is seen on every other within the documented bound (one second),
//! and background jobs run once across the nodes.
//!
//! Needs `KEYHOLD_TEST_STORAGE=postgres://...` (as `.ci/run` sets for its PostgreSQL pass);
//! without it each test says why it did not run and passes.

use std::time::{Duration, Instant};

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::GrantOperation as Op;
use keyhold_testkit::{DEFAULT_REGION, TestServer, code_and_message, new_key, raw};

/// How soon a change on one node must be seen on the others (docs/ha.md).
const BOUND: Duration = Duration::from_secs(1);

/// A partner account the tests grant to.
const PARTNER: &str = "444455556666";

struct Cluster {
    nodes: Vec<TestServer>,
    _dir: tempfile::TempDir,
}

/// Three nodes sharing a fresh schema and one root key file, each with its own data
/// directory (its audit trail) and `node_id`; `None` (with the reason printed) without
/// PostgreSQL.
async fn cluster(test: &str, sweep: Duration) -> Option<Cluster> {
    let Some(url) = keyhold_testkit::test_storage() else {
        eprintln!(
            "{test}: not run: the cluster tests need a PostgreSQL store (KEYHOLD_TEST_STORAGE=postgres://...)"
        );
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let (storage, _) = keyhold_testkit::postgres_schema_for(&url, &dir.path().join("shared")).await;
    let seal = keyhold_server::config::SealConfig::KeyFile {
        path: dir.path().join("root.key"),
    };
    let mut nodes = Vec::new();
    for i in 0..3 {
        let (storage, seal) = (storage.clone(), seal.clone());
        let node = TestServer::builder()
            .data_dir(&dir.path().join(format!("node{i}")))
            .deletion_sweep_interval(sweep)
            .configure(move |c| {
                c.storage = Some(storage);
                c.seal = Some(seal);
                c.node_id = Some(format!("node{i}"));
                c.metrics_listen = Some(([127, 0, 0, 1], 0).into());
            })
            .start()
            .await;
        nodes.push(node);
    }
    Some(Cluster { nodes, _dir: dir })
}

/// Retries `check` until it holds; fails when it still does not after `bound`. Returns how
/// long it took.
async fn within<F, Fut>(bound: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() <= bound,
            "{what}: not seen within {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn encrypt(kms: &aws_sdk_kms::Client, key: &str) -> Result<Vec<u8>, String> {
    kms.encrypt()
        .key_id(key)
        .plaintext(Blob::new(b"cluster".to_vec()))
        .send()
        .await
        .map(|out| out.ciphertext_blob.unwrap().into_inner())
        .map_err(|e| code_and_message(&e).0)
}

/// The value of the metric `name` (summed over its label sets) on `node`.
async fn metric(node: &TestServer, name: &str) -> f64 {
    let answer = raw::request(node.metrics_addr().unwrap(), "GET", "/metrics", &[], b"").await;
    assert_eq!(answer.status, 200, "{}", answer.body_text());
    answer
        .body_text()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let base = series.split('{').next()?;
            (base == name).then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

#[tokio::test]
async fn a_key_made_on_one_node_serves_on_all_and_disabling_it_reaches_every_node_within_a_second()
{
    let Some(c) = cluster("cluster::keys", Duration::from_secs(60)).await else {
        return;
    };
    let kms: Vec<_> = c.nodes.iter().map(TestServer::kms).collect();
    let key = new_key(&kms[0]).await.id;
    let blob = encrypt(&kms[0], &key).await.unwrap();
    // Decrypted on B; and every node has the key in its cache before it changes.
    for node in &kms {
        let out = node
            .decrypt()
            .ciphertext_blob(Blob::new(blob.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(out.plaintext.unwrap().into_inner(), b"cluster");
        encrypt(node, &key).await.unwrap();
    }

    kms[0].disable_key().key_id(&key).send().await.unwrap();
    for (i, node) in kms.iter().enumerate().skip(1) {
        let took = within(
            BOUND,
            &format!("the disabled key refused on node {i}"),
            || async { encrypt(node, &key).await == Err("DisabledException".into()) },
        )
        .await;
        eprintln!("disabled on node 0, refused on node {i} after {took:?}");
    }
    // And back, from another node.
    kms[2].enable_key().key_id(&key).send().await.unwrap();
    within(BOUND, "the enabled key serving on node 0", || async {
        encrypt(&kms[0], &key).await.is_ok()
    })
    .await;

    // An alias moved on one node is followed by another that had it cached.
    let other = new_key(&kms[0]).await.id;
    kms[0]
        .create_alias()
        .alias_name("alias/cluster")
        .target_key_id(&key)
        .send()
        .await
        .unwrap();
    let key_of = |node: &aws_sdk_kms::Client| {
        let node = node.clone();
        async move {
            node.encrypt()
                .key_id("alias/cluster")
                .plaintext(Blob::new(b"x".to_vec()))
                .send()
                .await
                .unwrap()
                .key_id
                .unwrap()
        }
    };
    assert!(key_of(&kms[1]).await.ends_with(&key));
    kms[2]
        .update_alias()
        .alias_name("alias/cluster")
        .target_key_id(&other)
        .send()
        .await
        .unwrap();
    within(BOUND, "the moved alias on node 1", || async {
        key_of(&kms[1]).await.ends_with(&other)
    })
    .await;
    let listed = kms[1].list_aliases().key_id(&other).send().await.unwrap();
    assert_eq!(
        listed.aliases().len(),
        1,
        "node 1 lists the alias on its new key"
    );
}

#[tokio::test]
async fn a_grant_revoked_on_one_node_stops_working_on_another_within_a_second() {
    let Some(c) = cluster("cluster::grants", Duration::from_secs(60)).await else {
        return;
    };
    let owner = c.nodes[0].kms();
    let arn = new_key(&owner).await.arn;
    let grant = c.nodes[0]
        .kms()
        .create_grant()
        .key_id(&arn)
        .grantee_principal(format!("arn:aws:iam::{PARTNER}:root"))
        .operations(Op::Encrypt)
        .send()
        .await
        .unwrap()
        .grant_id
        .unwrap();
    // The partner uses the grant on node 0 (which caches the key and its grants) and 2.
    let partner: Vec<_> = c
        .nodes
        .iter()
        .map(|n| n.kms_for(PARTNER, DEFAULT_REGION))
        .collect();
    encrypt(&partner[0], &arn).await.unwrap();
    encrypt(&partner[2], &arn).await.unwrap();

    c.nodes[1]
        .kms()
        .revoke_grant()
        .key_id(&arn)
        .grant_id(&grant)
        .send()
        .await
        .unwrap();
    for i in [0, 2] {
        let took = within(
            BOUND,
            &format!("the revoked grant refused on node {i}"),
            || async { encrypt(&partner[i], &arn).await == Err("AccessDeniedException".into()) },
        )
        .await;
        eprintln!("revoked on node 1, refused on node {i} after {took:?}");
    }
}

#[tokio::test]
async fn secrets_parameters_and_iam_changed_on_one_node_are_seen_on_the_others() {
    let Some(c) = cluster("cluster::services", Duration::from_secs(60)).await else {
        return;
    };
    // A secret's new value, read where the old one was cached.
    let sm: Vec<_> = c.nodes.iter().map(TestServer::secrets_manager).collect();
    sm[0]
        .create_secret()
        .name("db")
        .secret_string("one")
        .send()
        .await
        .unwrap();
    let value = |i: usize| {
        let client = sm[i].clone();
        async move {
            client
                .get_secret_value()
                .secret_id("db")
                .send()
                .await
                .map(|out| out.secret_string.unwrap())
                .map_err(|e| code_and_message(&e).0)
        }
    };
    assert_eq!(value(1).await.unwrap(), "one");
    sm[2]
        .put_secret_value()
        .secret_id("db")
        .secret_string("two")
        .send()
        .await
        .unwrap();
    within(BOUND, "the new secret value on node 1", || async {
        value(1).await == Ok("two".into())
    })
    .await;
    sm[0]
        .delete_secret()
        .secret_id("db")
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    within(BOUND, "the deleted secret on node 1", || async {
        value(1).await == Err("ResourceNotFoundException".into())
    })
    .await;

    // A parameter likewise.
    let ssm: Vec<_> = c.nodes.iter().map(TestServer::ssm).collect();
    ssm[0]
        .put_parameter()
        .name("/app/mode")
        .value("blue")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
    let param = |i: usize| {
        let client = ssm[i].clone();
        async move {
            client
                .get_parameter()
                .name("/app/mode")
                .send()
                .await
                .map(|out| out.parameter.unwrap().value.unwrap())
                .map_err(|e| code_and_message(&e).0)
        }
    };
    assert_eq!(param(2).await.unwrap(), "blue");
    ssm[1]
        .put_parameter()
        .name("/app/mode")
        .value("green")
        .overwrite(true)
        .send()
        .await
        .unwrap();
    within(BOUND, "the new parameter value on node 2", || async {
        param(2).await == Ok("green".into())
    })
    .await;

    // IAM: a user made on one node exists on the others; deleted, it is gone everywhere.
    let iam: Vec<_> = c.nodes.iter().map(TestServer::iam).collect();
    iam[0].create_user().user_name("ops").send().await.unwrap();
    let user = |i: usize| {
        let client = iam[i].clone();
        async move {
            client
                .get_user()
                .user_name("ops")
                .send()
                .await
                .map(|_| ())
                .map_err(|e| code_and_message(&e).0)
        }
    };
    for i in [1, 2] {
        within(BOUND, &format!("the new user on node {i}"), || async {
            user(i).await.is_ok()
        })
        .await;
    }
    iam[2].delete_user().user_name("ops").send().await.unwrap();
    within(BOUND, "the deleted user on node 0", || async {
        user(0).await == Err("NoSuchEntity".into())
    })
    .await;
}

#[tokio::test]
async fn a_scheduled_deletion_runs_once_on_the_node_that_holds_the_sweep_lease() {
    let Some(c) = cluster("cluster::deletion", Duration::from_millis(200)).await else {
        return;
    };
    let kms: Vec<_> = c.nodes.iter().map(TestServer::kms).collect();
    let key = new_key(&kms[0]).await.id;
    // Cached on every node before it goes.
    for node in &kms {
        encrypt(node, &key).await.unwrap();
    }
    kms[1]
        .schedule_key_deletion()
        .key_id(&key)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    for node in &c.nodes {
        node.clock().advance(Duration::from_secs(8 * 86_400));
    }
    for (i, node) in kms.iter().enumerate() {
        within(
            Duration::from_secs(10),
            &format!("the deleted key gone on node {i}"),
            || async {
                let described = node.describe_key().key_id(&key).send().await;
                matches!(described, Err(e) if code_and_message(&e).0 == "NotFoundException")
            },
        )
        .await;
    }
    let mut deleted = Vec::new();
    let mut swept = Vec::new();
    for node in &c.nodes {
        deleted.push(metric(node, "keyhold_kms_keys_deleted_total").await);
        swept.push(metric(node, "keyhold_background_sweeps_total").await);
    }
    assert_eq!(
        deleted.iter().sum::<f64>(),
        1.0,
        "deleted once: {deleted:?}"
    );
    assert_eq!(
        swept.iter().filter(|&&n| n > 0.0).count(),
        1,
        "one node sweeps, the lease holder: {swept:?}"
    );
    let holder = swept.iter().position(|&n| n > 0.0).unwrap();
    assert_eq!(deleted[holder], 1.0, "the lease holder deleted it");

    // The holder stops: another node takes the lease over (at once: it is given up).
    let mut nodes = c.nodes;
    let stopped = nodes.remove(holder);
    stopped.stop().await;
    let key = new_key(&nodes[0].kms()).await.id;
    nodes[1]
        .kms()
        .schedule_key_deletion()
        .key_id(&key)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    for node in &nodes {
        node.clock().advance(Duration::from_secs(8 * 86_400));
    }
    within(
        Duration::from_secs(20),
        "the second key deleted",
        || async {
            let described = nodes[0].kms().describe_key().key_id(&key).send().await;
            matches!(described, Err(e) if code_and_message(&e).0 == "NotFoundException")
        },
    )
    .await;
    let mut after = 0.0;
    for node in &nodes {
        after += metric(node, "keyhold_kms_keys_deleted_total").await;
    }
    assert_eq!(after, 1.0, "the new holder deleted the second key once");
}

#[tokio::test]
async fn an_import_token_from_one_node_imports_once_on_another() {
    use aws_sdk_kms::types::{AlgorithmSpec, ExpirationModelType, OriginType, WrappingKeySpec};
    let Some(c) = cluster(
        "an_import_token_from_one_node_imports_once_on_another",
        Duration::from_secs(3600),
    )
    .await
    else {
        return;
    };
    let kms: Vec<_> = c.nodes.iter().map(TestServer::kms).collect();
    let key = kms[0]
        .create_key()
        .origin(OriginType::External)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let params = kms[0]
        .get_parameters_for_import()
        .key_id(&key)
        .wrapping_algorithm(AlgorithmSpec::RsaAesKeyWrapSha256)
        .wrapping_key_spec(WrappingKeySpec::Rsa2048)
        .send()
        .await
        .unwrap();
    let wrapped = keyhold_crypto::import::wrap_for_import(
        params.public_key.unwrap().as_ref(),
        keyhold_crypto::import::WrappingAlgorithm::RsaAesKeyWrapSha256,
        &[0x77; 32],
    )
    .unwrap();
    let token = params.import_token.unwrap();
    // The same token on two other nodes at once: one import, one refusal.
    let import = |node: usize| {
        kms[node]
            .import_key_material()
            .key_id(&key)
            .import_token(token.clone())
            .encrypted_key_material(Blob::new(wrapped.clone()))
            .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
            .send()
    };
    let (a, b) = tokio::join!(import(1), import(2));
    let refused: Vec<_> = [a, b]
        .into_iter()
        .filter_map(Result::err)
        .map(|e| code_and_message(&e.into_service_error()).0)
        .collect();
    assert_eq!(refused, ["InvalidImportTokenException"]);
    // The issuing node sees the material within the bound.
    within(
        BOUND,
        "the imported material on the issuing node",
        || async { encrypt(&kms[0], &key).await.is_ok() },
    )
    .await;
}

#[tokio::test]
async fn a_parameter_changed_on_one_node_is_read_again_alone_on_the_others() {
    let Some(c) = cluster("cluster::param_refresh", Duration::from_secs(60)).await else {
        return;
    };
    let ssm: Vec<_> = c.nodes.iter().map(TestServer::ssm).collect();
    let put = |node: usize, name: &'static str, value: &'static str| {
        ssm[node]
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .overwrite(true)
            .send()
    };
    put(0, "/app/a", "1").await.unwrap();
    put(0, "/app/b", "1").await.unwrap();
    // Node 1 loads the scope; what a path query lists follows changes made on node 0.
    let listed = |node: usize| {
        let client = ssm[node].clone();
        async move {
            let out = client
                .get_parameters_by_path()
                .path("/app")
                .recursive(true)
                .send()
                .await
                .unwrap();
            out.parameters()
                .iter()
                .map(|p| format!("{}={}", p.name().unwrap(), p.value().unwrap()))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(1).await, ["/app/a=1", "/app/b=1"]);
    let heard = metric(&c.nodes[1], "keyhold_cache_invalidations_total").await;
    put(0, "/app/c", "1").await.unwrap();
    put(2, "/app/b", "2").await.unwrap();
    ssm[0]
        .delete_parameter()
        .name("/app/a")
        .send()
        .await
        .unwrap();
    within(
        BOUND,
        "node 0's and 2's changes in node 1's path query",
        || async { listed(1).await == ["/app/b=2", "/app/c=1"] },
    )
    .await;
    assert!(
        metric(&c.nodes[1], "keyhold_cache_invalidations_total").await >= heard + 3.0,
        "node 1 heard one change per parameter write"
    );
    // A version made on node 1 after it read the parameter again follows node 2's.
    let out = put(1, "/app/b", "3").await.unwrap();
    assert_eq!(out.version, 3);
}

#[tokio::test]
async fn parameter_versions_and_secret_labels_written_on_two_nodes_at_once_stay_consistent() {
    let Some(c) = cluster("cluster::races", Duration::from_secs(60)).await else {
        return;
    };
    // PutParameter: four writers on each of two nodes add versions to one parameter.
    let ssm: Vec<_> = c.nodes.iter().map(TestServer::ssm).collect();
    ssm[0]
        .put_parameter()
        .name("/race/p")
        .value("start")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
    let mut writers = Vec::new();
    for (node, client) in ssm.iter().take(2).enumerate() {
        for w in 0..4 {
            let client = client.clone();
            writers.push(tokio::spawn(async move {
                let mut made = Vec::new();
                for i in 0..8 {
                    let value = format!("n{node}w{w}i{i}");
                    let out = client
                        .put_parameter()
                        .name("/race/p")
                        .value(&value)
                        .overwrite(true)
                        .send()
                        .await
                        .unwrap();
                    made.push((out.version, value));
                }
                made
            }));
        }
    }
    let mut made = Vec::new();
    for w in writers {
        made.extend(w.await.unwrap());
    }
    made.sort();
    let numbers: Vec<i64> = made.iter().map(|(v, _)| *v).collect();
    assert_eq!(
        numbers,
        (2..=65).collect::<Vec<i64>>(),
        "each version numbered once"
    );
    let history = |node: usize| {
        let client = ssm[node].clone();
        async move {
            let mut history = Vec::new();
            let mut token = None;
            loop {
                let page = client
                    .get_parameter_history()
                    .name("/race/p")
                    .set_next_token(token)
                    .send()
                    .await
                    .unwrap();
                history.extend(
                    page.parameters()
                        .iter()
                        .map(|p| (p.version, p.value().unwrap().to_owned())),
                );
                token = page.next_token;
                if token.is_none() {
                    return history;
                }
            }
        }
    };
    let mut expected = vec![(1, "start".to_owned())];
    expected.extend(made.iter().cloned());
    for node in [0, 1] {
        // Within the bound: the other node's last writes may still be on their way.
        within(
            BOUND,
            &format!("node {node} holds every version made"),
            || async { history(node).await == expected },
        )
        .await;
    }

    // PutSecretValue: three writers on each of two nodes, each version with a label of its
    // own besides AWSCURRENT; every label stays on its version, one AWSCURRENT, one
    // AWSPREVIOUS, both on versions of the load.
    let sm: Vec<_> = c.nodes.iter().map(TestServer::secrets_manager).collect();
    let first = sm[0]
        .create_secret()
        .name("race")
        .secret_string("start")
        .send()
        .await
        .unwrap()
        .version_id
        .unwrap();
    let mut writers = Vec::new();
    for (node, client) in sm.iter().take(2).enumerate() {
        for w in 0..3 {
            let client = client.clone();
            writers.push(tokio::spawn(async move {
                let mut made = Vec::new();
                for i in 0..3 {
                    let label = format!("n{node}w{w}i{i}");
                    let out = client
                        .put_secret_value()
                        .secret_id("race")
                        .secret_string(&label)
                        .version_stages("AWSCURRENT")
                        .version_stages(&label)
                        .send()
                        .await
                        .unwrap();
                    made.push((out.version_id.unwrap(), label));
                }
                made
            }));
        }
    }
    let mut made = Vec::new();
    for w in writers {
        made.extend(w.await.unwrap());
    }
    for node in [0, 1] {
        let list = || async {
            sm[node]
                .list_secret_version_ids()
                .secret_id("race")
                .include_deprecated(true)
                .send()
                .await
                .unwrap()
        };
        within(
            BOUND,
            &format!("node {node} lists every version"),
            || async { list().await.versions().len() == made.len() + 1 },
        )
        .await;
        let listed = list().await;
        let stages = |id: &str| {
            listed
                .versions()
                .iter()
                .find(|v| v.version_id() == Some(id))
                .map(|v| v.version_stages().to_vec())
        };
        for (id, label) in &made {
            let labels = stages(id).unwrap_or_else(|| panic!("node {node}: version {id} lost"));
            assert!(
                labels.contains(label),
                "node {node}: version {id} lost its label {label}: {labels:?}"
            );
        }
        let holders = |label: &str| {
            listed
                .versions()
                .iter()
                .filter(|v| v.version_stages().iter().any(|s| s == label))
                .map(|v| v.version_id().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        let (current, previous) = (holders("AWSCURRENT"), holders("AWSPREVIOUS"));
        assert_eq!(current.len(), 1, "node {node}: {current:?}");
        assert_eq!(previous.len(), 1, "node {node}: {previous:?}");
        assert!(made.iter().any(|(id, _)| *id == current[0]));
        assert!(previous[0] != first && made.iter().any(|(id, _)| *id == previous[0]));
    }
}

#[tokio::test]
async fn two_nodes_changing_one_key_at_once_keep_both_changes() {
    let Some(c) = cluster("cluster::key_race", Duration::from_secs(60)).await else {
        return;
    };
    let kms: Vec<_> = c.nodes.iter().map(TestServer::kms).collect();
    let key = new_key(&kms[0]).await.id;
    for node in &kms {
        encrypt(node, &key).await.unwrap(); // cached everywhere
    }
    for round in 0..8 {
        // Node 0 disables the key while node 1 changes its description: each writes the
        // key's record, and neither may put back the other's field as it read it. A write
        // refused for that is decided again by its node on the record as it is then.
        let description = format!("round {round}");
        let (disabled, described) = tokio::join!(
            kms[0].disable_key().key_id(&key).send(),
            kms[1]
                .update_key_description()
                .key_id(&key)
                .description(&description)
                .send()
        );
        disabled.unwrap();
        described.unwrap();
        for (i, node) in kms.iter().enumerate() {
            within(
                BOUND,
                &format!("round {round}: both changes on node {i}"),
                || async {
                    let meta = node
                        .describe_key()
                        .key_id(&key)
                        .send()
                        .await
                        .unwrap()
                        .key_metadata
                        .unwrap();
                    !meta.enabled && meta.description.as_deref() == Some(description.as_str())
                },
            )
            .await;
        }
        kms[2].enable_key().key_id(&key).send().await.unwrap();
        within(BOUND, "the key enabled again on node 0", || async {
            encrypt(&kms[0], &key).await.is_ok()
        })
        .await;
    }
}

#[tokio::test]
async fn a_rotation_on_one_node_does_not_undo_a_disable_on_another() {
    let Some(c) = cluster("cluster::rotation_race", Duration::from_secs(60)).await else {
        return;
    };
    let kms: Vec<_> = c.nodes.iter().map(TestServer::kms).collect();
    let key = new_key(&kms[0]).await.id;
    for node in &kms {
        encrypt(node, &key).await.unwrap(); // cached everywhere
    }
    let mut rotated = 0;
    for round in 0..6 {
        // Node 0 rotates the key while node 1 disables it: the rotation writes the key's
        // record too, and must not put back the state it read. Decided again after the
        // disable, it is refused (a disabled key does not rotate), or it ran first. The
        // window for the lost update is the rotation's own few hundred microseconds, so
        // this end-to-end check rarely meets it; the store suite's rotate_keys case
        // refuses a stale record deterministically on both backends.
        let (rotation, disabled) = tokio::join!(
            kms[0].rotate_key_on_demand().key_id(&key).send(),
            kms[1].disable_key().key_id(&key).send()
        );
        disabled.unwrap();
        match rotation {
            Ok(_) => rotated += 1,
            Err(e) => assert_eq!(code_and_message(&e).0, "DisabledException", "round {round}"),
        }
        for (i, node) in kms.iter().enumerate() {
            within(
                BOUND,
                &format!("round {round}: disabled on node {i}"),
                || async {
                    let meta = node
                        .describe_key()
                        .key_id(&key)
                        .send()
                        .await
                        .unwrap()
                        .key_metadata
                        .unwrap();
                    !meta.enabled
                },
            )
            .await;
        }
        kms[2].enable_key().key_id(&key).send().await.unwrap();
        within(BOUND, "the key enabled again on node 0", || async {
            encrypt(&kms[0], &key).await.is_ok()
        })
        .await;
    }
    // Every rotation that answered is in the key's history.
    let listed = kms[1]
        .list_key_rotations()
        .key_id(&key)
        .send()
        .await
        .unwrap()
        .rotations()
        .len();
    assert_eq!(listed, rotated);
}
