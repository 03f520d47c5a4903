//! The built-in database rotators against the real local servers: PostgreSQL on
//! 127.0.0.1:5432 (user `postgres`, database `test`) and MariaDB on 127.0.0.1:3306 (`root`
//! with an empty password, database `test`), rotated through the SDK's RotateSecret.
//!
//! Each test creates its own login role or user (a unique name) with a password, stores it
//! in AWS's secret JSON format, rotates, and drops what it created.
//!
//! The local PostgreSQL trusts every connection from 127.0.0.1 (pg_hba.conf `trust`), so a
//! login there proves nothing about a password: the PostgreSQL tests check the role's
//! stored SCRAM-SHA-256 verifier in `pg_authid` instead — it verifies the new password and
//! no longer the old one. MariaDB checks passwords, so there the new one logs in and the
//! old one is refused.

use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use keyhold_server::config::{BuiltinRotator, RotationFunction};
use keyhold_testkit::TestServer;
use mysql_async::prelude::Queryable;
use serde_json::{Value, json};

const PG_SINGLE: &str = "arn:aws:lambda:us-east-1:000000000000:function:pg-single";
const PG_ALTERNATING: &str = "arn:aws:lambda:us-east-1:000000000000:function:pg-alternating";
const MYSQL_SINGLE: &str = "arn:aws:lambda:us-east-1:000000000000:function:mysql-single";
const MYSQL_ALTERNATING: &str = "arn:aws:lambda:us-east-1:000000000000:function:mysql-alternating";

fn builtin(arn: &str, kind: BuiltinRotator) -> RotationFunction {
    RotationFunction {
        arn: arn.to_owned(),
        url: None,
        command: None,
        builtin: Some(kind),
        role_arn: None,
        timeout_seconds: 30,
    }
}

async fn server() -> TestServer {
    let functions = vec![
        builtin(PG_SINGLE, BuiltinRotator::PostgresSingleUser),
        builtin(PG_ALTERNATING, BuiltinRotator::PostgresAlternatingUsers),
        builtin(MYSQL_SINGLE, BuiltinRotator::MysqlSingleUser),
        builtin(MYSQL_ALTERNATING, BuiltinRotator::MysqlAlternatingUsers),
    ];
    TestServer::builder()
        .configure(move |c| c.rotation_functions = functions)
        .start()
        .await
}

/// A fresh user name: `prefix` and 8 random hex digits (10 characters with a two-letter
/// prefix, so that `_clone` still fits MySQL's 16).
fn unique(prefix: &str) -> String {
    let mut bytes = [0u8; 4];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    format!("{prefix}{}", hex::encode(bytes))
}

async fn create(sm: &Client, name: &str, value: &Value) -> String {
    sm.create_secret()
        .name(name)
        .secret_string(value.to_string())
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned()
}

async fn rotate(sm: &Client, id: &str, function: &str, token: &str) {
    let r = sm
        .rotate_secret()
        .secret_id(id)
        .client_request_token(token)
        .rotation_lambda_arn(function)
        .send()
        .await
        .unwrap();
    assert_eq!(r.version_id(), Some(token));
}

/// Waits (at most a minute) until version `token` carries AWSCURRENT.
async fn wait_current(sm: &Client, id: &str, token: &str) {
    let mut stages = None;
    for _ in 0..600 {
        let d = sm.describe_secret().secret_id(id).send().await.unwrap();
        let current = d
            .version_ids_to_stages()
            .and_then(|v| v.get(token))
            .is_some_and(|l| l.iter().any(|l| l == "AWSCURRENT"));
        if current {
            return;
        }
        stages = d.version_ids_to_stages().cloned();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("version {token} of {id} never became AWSCURRENT: {stages:?}");
}

async fn value(sm: &Client, id: &str, stage: &str) -> Value {
    let got = sm
        .get_secret_value()
        .secret_id(id)
        .version_stage(stage)
        .send()
        .await
        .unwrap();
    serde_json::from_str(got.secret_string().unwrap()).unwrap()
}

fn password(v: &Value) -> &str {
    v["password"].as_str().unwrap()
}

/// A generated password: GetRandomPassword's 32 characters without the characters AWS's
/// functions exclude.
fn assert_generated(password: &str, excluded: &str) {
    assert_eq!(password.len(), 32, "GetRandomPassword's length");
    assert!(
        !password.chars().any(|c| excluded.contains(c)),
        "{excluded:?} excluded"
    );
}

// --- PostgreSQL ---------------------------------------------------------------------------

async fn pg_admin() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(5432)
        .user("postgres")
        .dbname("test")
        .connect(tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (.ci/run starts it)");
    tokio::spawn(connection);
    client
}

/// The role's stored password verifier.
async fn pg_verifier(admin: &tokio_postgres::Client, role: &str) -> String {
    admin
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&role],
        )
        .await
        .unwrap()
        .get(0)
}

/// Whether a SCRAM-SHA-256 verifier (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`,
/// RFC 5802/7677 as PostgreSQL stores it) was made from `password`.
fn scram_verifies(verifier: &str, password: &str) -> bool {
    use aws_lc_rs::{digest, hmac, pbkdf2};
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let rest = verifier
        .strip_prefix("SCRAM-SHA-256$")
        .expect("a SCRAM-SHA-256 verifier");
    let (iterations_salt, keys) = rest.split_once('$').unwrap();
    let (iterations, salt) = iterations_salt.split_once(':').unwrap();
    let (stored_key, server_key) = keys.split_once(':').unwrap();
    let iterations: std::num::NonZeroU32 = iterations.parse().unwrap();
    let mut salted = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &b64.decode(salt).unwrap(),
        password.as_bytes(),
        &mut salted,
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, &salted);
    let client_key = hmac::sign(&key, b"Client Key");
    let stored = digest::digest(&digest::SHA256, client_key.as_ref());
    let server = hmac::sign(&key, b"Server Key");
    stored.as_ref() == b64.decode(stored_key).unwrap().as_slice()
        && server.as_ref() == b64.decode(server_key).unwrap().as_slice()
}

const PG_EXCLUDED: &str = ":/@\"'\\";

#[tokio::test]
async fn postgres_single_user_rotation_changes_the_users_own_password() {
    let admin = pg_admin().await;
    let user = unique("kp");
    let old = "old-Password-1";
    admin
        .batch_execute(&format!("CREATE ROLE {user} LOGIN PASSWORD '{old}'"))
        .await
        .unwrap();
    assert!(scram_verifies(&pg_verifier(&admin, &user).await, old));

    let server = server().await;
    let sm = server.secrets_manager();
    let name = format!("db/{user}");
    create(
        &sm,
        &name,
        &json!({"engine": "postgres", "host": "127.0.0.1", "port": 5432,
                "username": user, "password": old, "dbname": "test", "note": "kept"}),
    )
    .await;
    let token = "11111111-0000-4000-8000-000000000001";
    rotate(&sm, &name, PG_SINGLE, token).await;
    wait_current(&sm, &name, token).await;

    let current = value(&sm, &name, "AWSCURRENT").await;
    let new = password(&current);
    assert_generated(new, PG_EXCLUDED);
    assert_eq!(current["username"], user.as_str());
    assert_eq!(
        current["note"], "kept",
        "every field of the secret is carried on"
    );
    assert_eq!(password(&value(&sm, &name, "AWSPREVIOUS").await), old);
    let verifier = pg_verifier(&admin, &user).await;
    assert!(
        scram_verifies(&verifier, new),
        "the role has the new password"
    );
    assert!(!scram_verifies(&verifier, old), "the old password is gone");

    admin
        .batch_execute(&format!("DROP ROLE {user}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn postgres_alternating_users_clone_the_user_and_keep_the_previous_one_working() {
    let admin = pg_admin().await;
    let user = unique("ka");
    let clone = format!("{user}_clone");
    let old = "old-Password-2";
    admin
        .batch_execute(&format!(
            "CREATE ROLE {user} LOGIN PASSWORD '{old}'; \
             CREATE TABLE {user}_t (x int); GRANT SELECT ON {user}_t TO {user}"
        ))
        .await
        .unwrap();

    let server = server().await;
    let sm = server.secrets_manager();
    let master_arn = create(
        &sm,
        &format!("db/master-{user}"),
        &json!({"engine": "postgres", "host": "127.0.0.1", "port": 5432,
                "username": "postgres", "password": ""}),
    )
    .await;
    let name = format!("db/{user}");
    create(
        &sm,
        &name,
        &json!({"engine": "postgres", "host": "127.0.0.1", "port": "5432",
                "username": user, "password": old, "dbname": "test",
                "masterarn": master_arn}),
    )
    .await;

    // First rotation: the clone is created with the user's grants and a new password; the
    // user itself (AWSPREVIOUS now) keeps its password.
    let first = "22222222-0000-4000-8000-000000000001";
    rotate(&sm, &name, PG_ALTERNATING, first).await;
    wait_current(&sm, &name, first).await;
    let current = value(&sm, &name, "AWSCURRENT").await;
    assert_eq!(current["username"], clone.as_str());
    assert_eq!(current["masterarn"], master_arn.as_str());
    let new1 = password(&current).to_owned();
    assert_generated(&new1, PG_EXCLUDED);
    assert!(scram_verifies(&pg_verifier(&admin, &clone).await, &new1));
    let previous = value(&sm, &name, "AWSPREVIOUS").await;
    assert_eq!(previous["username"], user.as_str());
    assert!(scram_verifies(
        &pg_verifier(&admin, &user).await,
        password(&previous)
    ));
    let member: bool = admin
        .query_one("SELECT pg_has_role($1, $2, 'MEMBER')", &[&clone, &user])
        .await
        .unwrap()
        .get(0);
    assert!(
        member,
        "the clone has the user's privileges (GRANT user TO clone)"
    );
    let can_select: bool = admin
        .query_one(
            "SELECT has_table_privilege($1, $2, 'SELECT')",
            &[&clone, &format!("{user}_t")],
        )
        .await
        .unwrap()
        .get(0);
    assert!(can_select);

    // Second rotation: back to the user, with a new password; the clone (AWSPREVIOUS)
    // keeps working.
    let second = "22222222-0000-4000-8000-000000000002";
    rotate(&sm, &name, PG_ALTERNATING, second).await;
    wait_current(&sm, &name, second).await;
    let current = value(&sm, &name, "AWSCURRENT").await;
    assert_eq!(current["username"], user.as_str());
    let new2 = password(&current);
    let verifier = pg_verifier(&admin, &user).await;
    assert!(scram_verifies(&verifier, new2));
    assert!(!scram_verifies(&verifier, old));
    let previous = value(&sm, &name, "AWSPREVIOUS").await;
    assert_eq!(previous["username"], clone.as_str());
    assert_eq!(password(&previous), new1);
    assert!(scram_verifies(&pg_verifier(&admin, &clone).await, &new1));

    admin
        .batch_execute(&format!(
            "DROP TABLE {user}_t; DROP ROLE {clone}; DROP ROLE {user}"
        ))
        .await
        .unwrap();
}

// --- MySQL / MariaDB ----------------------------------------------------------------------

const MYSQL_EXCLUDED: &str = "/@\"'\\";

fn mysql_opts(user: &str, password: &str) -> mysql_async::Opts {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(3306)
        .user(Some(user))
        .pass(Some(password))
        .db_name(Some("test"))
        .prefer_socket(false)
        .into()
}

async fn mysql_root() -> mysql_async::Conn {
    mysql_async::Conn::new(mysql_opts("root", ""))
        .await
        .expect("MariaDB on 127.0.0.1:3306 (.ci/run starts it)")
}

/// Whether `user` logs in with `password` (to the database `test`, so it needs a grant there).
async fn mysql_logs_in(user: &str, password: &str) -> bool {
    match mysql_async::Conn::new(mysql_opts(user, password)).await {
        Ok(mut conn) => {
            let ok = conn.query_drop("SELECT NOW()").await.is_ok();
            let _ = conn.disconnect().await;
            ok
        }
        Err(_) => false,
    }
}

#[tokio::test]
async fn mysql_single_user_rotation_the_new_password_logs_in_and_the_old_does_not() {
    let mut root = mysql_root().await;
    let user = unique("ms");
    let old = "old-Password-3";
    root.query_drop(format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY '{old}'; GRANT SELECT ON test.* TO '{user}'@'%'"
    ))
    .await
    .unwrap();
    assert!(mysql_logs_in(&user, old).await);

    let server = server().await;
    let sm = server.secrets_manager();
    let name = format!("db/{user}");
    create(
        &sm,
        &name,
        &json!({"engine": "mysql", "host": "127.0.0.1", "port": 3306,
                "username": user, "password": old, "dbname": "test"}),
    )
    .await;
    let token = "33333333-0000-4000-8000-000000000001";
    rotate(&sm, &name, MYSQL_SINGLE, token).await;
    wait_current(&sm, &name, token).await;

    let new = password(&value(&sm, &name, "AWSCURRENT").await).to_owned();
    assert_generated(&new, MYSQL_EXCLUDED);
    assert!(mysql_logs_in(&user, &new).await, "the new password logs in");
    assert!(
        !mysql_logs_in(&user, old).await,
        "the old password does not"
    );
    assert_eq!(password(&value(&sm, &name, "AWSPREVIOUS").await), old);

    root.query_drop(format!("DROP USER '{user}'@'%'"))
        .await
        .unwrap();
    root.disconnect().await.unwrap();
}

#[tokio::test]
async fn mysql_alternating_users_a_client_holding_awsprevious_keeps_working() {
    let mut root = mysql_root().await;
    let user = unique("ma");
    let clone = format!("{user}_clone");
    let old = "old-Password-4";
    root.query_drop(format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY '{old}'; GRANT SELECT ON test.* TO '{user}'@'%'"
    ))
    .await
    .unwrap();

    let server = server().await;
    let sm = server.secrets_manager();
    let master_arn = create(
        &sm,
        &format!("db/master-{user}"),
        &json!({"engine": "mysql", "host": "127.0.0.1", "port": 3306,
                "username": "root", "password": ""}),
    )
    .await;
    let name = format!("db/{user}");
    create(
        &sm,
        &name,
        &json!({"engine": "mysql", "host": "127.0.0.1", "port": 3306, "dbname": "test",
                "username": user, "password": old, "masterarn": master_arn}),
    )
    .await;

    let first = "44444444-0000-4000-8000-000000000001";
    rotate(&sm, &name, MYSQL_ALTERNATING, first).await;
    wait_current(&sm, &name, first).await;
    let current = value(&sm, &name, "AWSCURRENT").await;
    assert_eq!(current["username"], clone.as_str());
    let new1 = password(&current).to_owned();
    assert_generated(&new1, MYSQL_EXCLUDED);
    assert!(
        mysql_logs_in(&clone, &new1).await,
        "the new current logs in"
    );
    assert!(
        mysql_logs_in(&user, old).await,
        "a client holding AWSPREVIOUS keeps working"
    );
    let grants: Vec<String> = root
        .query(format!("SHOW GRANTS FOR '{clone}'@'%'"))
        .await
        .unwrap();
    assert!(
        grants.iter().any(|g| g.contains("SELECT ON `test`.*")),
        "the clone has the user's grants: {grants:?}"
    );

    let second = "44444444-0000-4000-8000-000000000002";
    rotate(&sm, &name, MYSQL_ALTERNATING, second).await;
    wait_current(&sm, &name, second).await;
    let current = value(&sm, &name, "AWSCURRENT").await;
    assert_eq!(current["username"], user.as_str());
    assert!(mysql_logs_in(&user, password(&current)).await);
    assert!(
        !mysql_logs_in(&user, old).await,
        "the first password is gone"
    );
    let previous = value(&sm, &name, "AWSPREVIOUS").await;
    assert_eq!(previous["username"], clone.as_str());
    assert!(
        mysql_logs_in(&clone, &new1).await,
        "a client holding AWSPREVIOUS keeps working"
    );

    root.query_drop(format!("DROP USER '{user}'@'%'; DROP USER '{clone}'@'%'"))
        .await
        .unwrap();
    root.disconnect().await.unwrap();
}

#[tokio::test]
async fn a_failing_database_rotation_leaves_awscurrent_and_awspending_for_the_retry() {
    let mut root = mysql_root().await;
    let user = unique("mf");
    root.query_drop(format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY 'the-real-password'; \
         GRANT SELECT ON test.* TO '{user}'@'%'"
    ))
    .await
    .unwrap();

    let server = server().await;
    let sm = server.secrets_manager();
    let name = format!("db/{user}");
    // The stored password is wrong: setSecret cannot log in with any version.
    let arn = create(
        &sm,
        &name,
        &json!({"engine": "mysql", "host": "127.0.0.1", "username": user,
                "password": "not-the-password"}),
    )
    .await;
    let token = "55555555-0000-4000-8000-000000000001";
    rotate(&sm, &name, MYSQL_SINGLE, token).await;
    let failed =
        crate::secrets_rotation::wait_for_events(server.data_dir(), &arn, "RotationFailed", 1)
            .await;
    let details = &failed[0]["serviceEventDetails"];
    assert_eq!(details["step"], "setSecret");
    assert_eq!(
        details["error"],
        format!(
            "Unable to log into database with previous, current, or pending secret of secret \
             arn {arn}"
        )
    );
    assert!(
        !failed[0].to_string().contains("not-the-password"),
        "no password in the trail"
    );

    // AWSCURRENT is untouched; AWSPENDING holds the generated password for the retry.
    assert_eq!(
        password(&value(&sm, &name, "AWSCURRENT").await),
        "not-the-password"
    );
    let pending = sm
        .get_secret_value()
        .secret_id(&name)
        .version_id(token)
        .version_stage("AWSPENDING")
        .send()
        .await
        .unwrap();
    let pending: Value = serde_json::from_str(pending.secret_string().unwrap()).unwrap();
    assert_generated(password(&pending), MYSQL_EXCLUDED);
    assert!(mysql_logs_in(&user, "the-real-password").await);

    // Fix the stored credentials (as an operator would) and retry: the same pending version
    // is resumed and finished.
    sm.put_secret_value()
        .secret_id(&name)
        .secret_string(
            json!({"engine": "mysql", "host": "127.0.0.1", "username": user,
                   "password": "the-real-password"})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let retry = sm
        .rotate_secret()
        .secret_id(&name)
        .client_request_token("55555555-0000-4000-8000-000000000002")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_secretsmanager::error::ProvideErrorMetadata::message(&retry),
        Some("A previous rotation isn't complete. That rotation will be reattempted.")
    );
    wait_current(&sm, &name, token).await;
    assert!(mysql_logs_in(&user, password(&pending)).await);
    assert!(!mysql_logs_in(&user, "the-real-password").await);

    root.query_drop(format!("DROP USER '{user}'@'%'"))
        .await
        .unwrap();
    root.disconnect().await.unwrap();
}

#[tokio::test]
async fn a_builtin_rotator_calls_as_its_role_and_keyhold_enforces_it() {
    const ACCOUNT: &str = "111122223333";
    let good_fn = format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:db-rotator");
    let weak_fn = format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:db-reader");
    let with_role = |arn: &str, role: &str| RotationFunction {
        role_arn: Some(format!("arn:aws:iam::{ACCOUNT}:role/{role}")),
        ..builtin(arn, BuiltinRotator::MysqlSingleUser)
    };
    let functions = vec![
        with_role(&good_fn, "rotator"),
        with_role(&weak_fn, "reader"),
    ];
    let server = TestServer::builder()
        .strict(&[("AKIADBROTATIONTEST", "db-rotation-test-secret", ACCOUNT)])
        .configure(move |c| c.rotation_functions = functions)
        .start()
        .await;
    let clients = server.clients(&keyhold_testkit::Creds::new(
        "AKIADBROTATIONTEST",
        "db-rotation-test-secret",
    ));
    let trust = keyhold_testkit::identity::trust(ACCOUNT);
    for (role, actions) in [
        (
            "rotator",
            r#"["secretsmanager:DescribeSecret","secretsmanager:GetSecretValue","secretsmanager:PutSecretValue","secretsmanager:UpdateSecretVersionStage","secretsmanager:GetRandomPassword"]"#,
        ),
        (
            "reader",
            r#"["secretsmanager:DescribeSecret","secretsmanager:GetSecretValue","secretsmanager:GetRandomPassword"]"#,
        ),
    ] {
        clients
            .iam
            .create_role()
            .role_name(role)
            .assume_role_policy_document(&trust)
            .send()
            .await
            .unwrap();
        clients
            .iam
            .put_role_policy()
            .role_name(role)
            .policy_name("rotation")
            .policy_document(format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":{actions},"Resource":"*"}}]}}"#
            ))
            .send()
            .await
            .unwrap();
    }
    let sm = &clients.secrets_manager;
    let mut root = mysql_root().await;
    let user = unique("mr");
    let old = "old-Password-5";
    root.query_drop(format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY '{old}'; GRANT SELECT ON test.* TO '{user}'@'%'"
    ))
    .await
    .unwrap();
    let secret = json!({"engine": "mysql", "host": "127.0.0.1", "username": user, "password": old});

    // The reader role may not PutSecretValue: createSecret is refused, nothing changes.
    let weak = create(sm, &format!("db/weak-{user}"), &secret).await;
    rotate(sm, &weak, &weak_fn, "66666666-0000-4000-8000-000000000001").await;
    let failed =
        crate::secrets_rotation::wait_for_events(server.data_dir(), &weak, "RotationFailed", 1)
            .await;
    let details = &failed[0]["serviceEventDetails"];
    assert_eq!(details["step"], "createSecret");
    assert!(
        details["error"].as_str().unwrap().starts_with(
            "An error occurred (AccessDeniedException) when calling the PutSecretValue operation"
        ),
        "{details}"
    );
    assert!(mysql_logs_in(&user, old).await);

    // The rotator role may: the password changes, and the calls were the role's session.
    let good = create(sm, &format!("db/good-{user}"), &secret).await;
    let token = "66666666-0000-4000-8000-000000000002";
    rotate(sm, &good, &good_fn, token).await;
    wait_current(sm, &good, token).await;
    let new = password(&value(sm, &good, "AWSCURRENT").await).to_owned();
    assert!(mysql_logs_in(&user, &new).await);
    assert!(!mysql_logs_in(&user, old).await);
    let put: Value = keyhold_testkit::audit_files::rows(server.data_dir())
        .into_iter()
        .rev()
        .find(|r| r.record.contains("\"PutSecretValue\"") && r.record.contains(&good))
        .map(|r| serde_json::from_str(&r.record).unwrap())
        .unwrap();
    assert_eq!(
        put["userIdentity"]["arn"],
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/rotator/db-rotator")
    );
    assert_eq!(put["userAgent"], "keyhold-rotator/mysql-single-user");
    assert!(!put.to_string().contains(&new), "no password in the trail");

    root.query_drop(format!("DROP USER '{user}'@'%'"))
        .await
        .unwrap();
    root.disconnect().await.unwrap();
}
