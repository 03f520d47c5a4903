//! Secret rotation that really rotates: RotateSecret runs AWS's four steps against a rotation
//! function from the config — here a Python Lambda handler in the shape of AWS's rotation
//! template, run through the command hook and calling back with boto3 — with AWS's
//! staging-label semantics, one rotation at a time, failures kept visible (audit trail) and
//! resumable, and schedules driven by the server's test clock.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_secretsmanager::types::RotationRulesType;
use keyhold_server::config::RotationFunction;
use keyhold_testkit::{TestServer, TestServerBuilder};
use serde_json::{Value, json};

const FUNCTION: &str = "arn:aws:lambda:us-east-1:000000000000:function:rotate-template";
const SLOW: &str = "arn:aws:lambda:us-east-1:000000000000:function:slow";
const DAY: i64 = 86_400;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The command hook running the template handler through the shim.
fn template_function(arn: &str, role_arn: Option<&str>) -> RotationFunction {
    let root = repo_root();
    RotationFunction {
        arn: arn.to_owned(),
        url: None,
        command: Some(vec![
            "python3".to_owned(),
            root.join("scripts/rotation/lambda_shim.py")
                .display()
                .to_string(),
            root.join("scripts/rotation/file_service_handler.py")
                .display()
                .to_string(),
        ]),
        builtin: None,
        role_arn: role_arn.map(str::to_owned),
        timeout_seconds: 60,
    }
}

fn with_functions(
    builder: TestServerBuilder,
    functions: Vec<RotationFunction>,
) -> TestServerBuilder {
    builder.configure(move |c| c.rotation_functions = functions)
}

/// The trail's rotation service events (`RotationStarted`, `RotationSucceeded`,
/// `RotationFailed`) for `arn`, parsed.
pub(crate) fn rotation_events(dir: &Path, arn: &str) -> Vec<Value> {
    keyhold_testkit::audit_files::records(dir)
        .into_iter()
        .filter(|r| {
            r["eventName"]
                .as_str()
                .is_some_and(|n| n.starts_with("Rotation"))
                && r.to_string().contains(arn)
        })
        .collect()
}

/// Waits (polling, at most a minute) until the trail has `n` events named `name` for `arn`.
pub(crate) async fn wait_for_events(dir: &Path, arn: &str, name: &str, n: usize) -> Vec<Value> {
    for _ in 0..600 {
        let events: Vec<Value> = rotation_events(dir, arn)
            .into_iter()
            .filter(|e| e["eventName"] == name)
            .collect();
        if events.len() >= n {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {name} event for {arn}: {:?}", rotation_events(dir, arn));
}

/// Version id → sorted labels.
async fn stages(sm: &aws_sdk_secretsmanager::Client, id: &str) -> Vec<(String, Vec<String>)> {
    let d = sm.describe_secret().secret_id(id).send().await.unwrap();
    let mut out: Vec<(String, Vec<String>)> = d
        .version_ids_to_stages()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let mut v = v.clone();
            v.sort();
            (k.clone(), v)
        })
        .collect();
    out.sort();
    out
}

fn labels_of(stages: &[(String, Vec<String>)], version: &str) -> Vec<String> {
    stages
        .iter()
        .find(|(v, _)| v == version)
        .map(|(_, l)| l.clone())
        .unwrap_or_default()
}

async fn value(sm: &aws_sdk_secretsmanager::Client, id: &str, stage: &str) -> (String, Value) {
    let got = sm
        .get_secret_value()
        .secret_id(id)
        .version_stage(stage)
        .send()
        .await
        .unwrap();
    (
        got.version_id().unwrap().to_owned(),
        serde_json::from_str(got.secret_string().unwrap()).unwrap(),
    )
}

async fn create(
    sm: &aws_sdk_secretsmanager::Client,
    name: &str,
    value: &Value,
) -> (String, String) {
    let c = sm
        .create_secret()
        .name(name)
        .secret_string(value.to_string())
        .send()
        .await
        .unwrap();
    (
        c.arn().unwrap().to_owned(),
        c.version_id().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_python_lambda_handler_rotates_through_the_command_hook() {
    let scratch = tempfile::tempdir().unwrap();
    let password_file = scratch.path().join("service-password");
    let server = with_functions(
        TestServer::builder(),
        vec![template_function(FUNCTION, None)],
    )
    .start()
    .await;
    let sm = server.secrets_manager();
    let initial = json!({"username": "app", "password": "initial-password",
                         "password_file": password_file});
    let (arn, first) = create(&sm, "rotating/app", &initial).await;

    let token = "00000000-0000-4000-8000-000000000001";
    let r = sm
        .rotate_secret()
        .secret_id("rotating/app")
        .client_request_token(token)
        .rotation_lambda_arn(FUNCTION)
        .rotation_rules(
            RotationRulesType::builder()
                .automatically_after_days(30)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.version_id(),
        Some(token),
        "the token is the new version's id"
    );
    assert_eq!(r.arn(), Some(arn.as_str()));

    let events = wait_for_events(server.data_dir(), &arn, "RotationSucceeded", 1).await;
    assert_eq!(events[0]["serviceEventDetails"]["versionId"], token);
    assert_eq!(
        rotation_events(server.data_dir(), &arn)
            .iter()
            .map(|e| e["eventName"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>(),
        ["RotationStarted", "RotationSucceeded"]
    );

    // AWSPENDING went to the token's version, AWSCURRENT followed it at finishSecret, and
    // AWSPREVIOUS to the version that was current. AWS may leave AWSPENDING on the new
    // current version; it is nowhere else.
    let s = stages(&sm, "rotating/app").await;
    assert_eq!(labels_of(&s, &first), ["AWSPREVIOUS"]);
    assert!(
        labels_of(&s, token).contains(&"AWSCURRENT".to_owned()),
        "{s:?}"
    );
    assert_eq!(s.len(), 2, "{s:?}");
    let (current_id, current) = value(&sm, "rotating/app", "AWSCURRENT").await;
    assert_eq!(current_id, token);
    let new_password = current["password"].as_str().unwrap().to_owned();
    assert_eq!(new_password.len(), 32, "GetRandomPassword's default length");
    assert_ne!(new_password, "initial-password");
    assert_eq!(current["username"], "app");
    let (_, previous) = value(&sm, "rotating/app", "AWSPREVIOUS").await;
    assert_eq!(previous["password"], "initial-password");
    // setSecret and testSecret ran: the "service" has the new password.
    assert_eq!(
        std::fs::read_to_string(&password_file).unwrap(),
        new_password
    );

    // DescribeSecret reports the rotation.
    let d = sm
        .describe_secret()
        .secret_id("rotating/app")
        .send()
        .await
        .unwrap();
    assert_eq!(d.rotation_enabled(), Some(true));
    assert_eq!(d.rotation_lambda_arn(), Some(FUNCTION));
    assert_eq!(
        d.rotation_rules().unwrap().automatically_after_days(),
        Some(30)
    );
    let last = d.last_rotated_date().expect("LastRotatedDate").secs();
    let next = d.next_rotation_date().expect("NextRotationDate").secs();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - last).abs() < 120, "{last} vs {now}");
    // The window of the 30th day after the rotation closes at the end of that UTC day.
    assert_eq!(next, last - last.rem_euclid(DAY) + 31 * DAY);
    let listed = sm.list_secrets().send().await.unwrap();
    let entry = listed
        .secret_list()
        .iter()
        .find(|e| e.arn() == Some(arn.as_str()))
        .unwrap();
    assert_eq!(entry.rotation_enabled(), Some(true));
    assert_eq!(entry.last_rotated_date().map(|d| d.secs()), Some(last));
    assert_eq!(entry.next_rotation_date().map(|d| d.secs()), Some(next));

    // A second rotation (the configuration is kept): the first version is deprecated.
    let token2 = "00000000-0000-4000-8000-000000000002";
    sm.rotate_secret()
        .secret_id(&arn)
        .client_request_token(token2)
        .send()
        .await
        .unwrap();
    wait_for_events(server.data_dir(), &arn, "RotationSucceeded", 2).await;
    let s = stages(&sm, &arn).await;
    assert_eq!(labels_of(&s, token), ["AWSPREVIOUS"]);
    assert!(labels_of(&s, token2).contains(&"AWSCURRENT".to_owned()));
    assert!(labels_of(&s, &first).is_empty());
}

#[tokio::test]
async fn a_failed_step_keeps_awscurrent_and_leaves_awspending_for_the_retry() {
    let scratch = tempfile::tempdir().unwrap();
    let password_file = scratch.path().join("service-password");
    let marker = scratch.path().join("refuse");
    std::fs::write(&marker, "").unwrap();
    std::fs::write(&password_file, "initial-password").unwrap();
    let server = with_functions(
        TestServer::builder()
            .configure(|cfg| cfg.metrics_listen = Some("127.0.0.1:0".parse().unwrap())),
        vec![template_function(FUNCTION, None)],
    )
    .start()
    .await;
    let sm = server.secrets_manager();
    let initial = json!({"username": "app", "password": "initial-password",
                         "password_file": password_file, "fail_marker": marker});
    let (arn, first) = create(&sm, "rotating/failing", &initial).await;

    let token = "00000000-0000-4000-8000-00000000000a";
    sm.rotate_secret()
        .secret_id(&arn)
        .client_request_token(token)
        .rotation_lambda_arn(FUNCTION)
        .rotation_rules(
            RotationRulesType::builder()
                .automatically_after_days(7)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let failed = wait_for_events(server.data_dir(), &arn, "RotationFailed", 1).await;
    let details = &failed[0]["serviceEventDetails"];
    assert_eq!(details["step"], "setSecret");
    assert_eq!(details["versionId"], token);
    assert!(
        details["error"]
            .as_str()
            .unwrap()
            .contains("RuntimeError: setSecret: the service refused the new password"),
        "{details}"
    );
    assert_eq!(failed[0]["eventType"], "AwsServiceEvent");
    // ... and counted.
    let metrics =
        keyhold_testkit::raw::request(server.metrics_addr().unwrap(), "GET", "/metrics", &[], b"")
            .await
            .body_text();
    assert!(
        metrics.contains("keyhold_secret_rotations_total{outcome=\"failed\"} 1"),
        "{metrics}"
    );

    // AWSCURRENT is untouched and still the one that works; AWSPENDING holds the new value.
    let (current_id, current) = value(&sm, &arn, "AWSCURRENT").await;
    assert_eq!((current_id.as_str(), &current), (first.as_str(), &initial));
    assert_eq!(
        std::fs::read_to_string(&password_file).unwrap(),
        "initial-password"
    );
    let (pending_id, pending) = value(&sm, &arn, "AWSPENDING").await;
    assert_eq!(pending_id, token);
    assert_ne!(pending["password"], "initial-password");
    let pending_password = pending["password"].clone();
    assert!(
        sm.describe_secret()
            .secret_id(&arn)
            .send()
            .await
            .unwrap()
            .last_rotated_date()
            .is_none()
    );

    // The next RotateSecret answers AWS's error and reattempts that rotation, with its
    // token: createSecret finds the pending value and keeps it.
    std::fs::remove_file(&marker).unwrap();
    let e = sm
        .rotate_secret()
        .secret_id(&arn)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "InvalidRequestException".to_owned(),
            "A previous rotation isn't complete. That rotation will be reattempted.".to_owned()
        )
    );
    wait_for_events(server.data_dir(), &arn, "RotationSucceeded", 1).await;
    let (current_id, current) = value(&sm, &arn, "AWSCURRENT").await;
    assert_eq!(current_id, token);
    assert_eq!(
        current["password"], pending_password,
        "resumed, not restarted"
    );
    assert_eq!(
        std::fs::read_to_string(&password_file).unwrap(),
        pending_password.as_str().unwrap()
    );
    assert_eq!(labels_of(&stages(&sm, &arn).await, &first), ["AWSPREVIOUS"]);
}

#[tokio::test]
async fn one_rotation_at_a_time_and_a_lambda_like_time_limit() {
    let slow = RotationFunction {
        arn: SLOW.to_owned(),
        url: None,
        command: Some(vec!["sleep".to_owned(), "30".to_owned()]),
        builtin: None,
        role_arn: None,
        timeout_seconds: 2,
    };
    let server = with_functions(TestServer::builder(), vec![slow])
        .start()
        .await;
    let sm = server.secrets_manager();
    let (arn, first) = create(&sm, "slow", &json!({"password": "p"})).await;
    let started = std::time::Instant::now();
    sm.rotate_secret()
        .secret_id(&arn)
        .rotation_lambda_arn(SLOW)
        .send()
        .await
        .unwrap();
    // While it runs: AWS's error, for RotateSecret with or without RotateImmediately.
    for immediately in [true, false] {
        let e = sm
            .rotate_secret()
            .secret_id(&arn)
            .rotate_immediately(immediately)
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert_eq!(
            keyhold_testkit::code_and_message(&e).1,
            "A previous rotation isn't complete. That rotation will be reattempted."
        );
    }
    let failed = wait_for_events(server.data_dir(), &arn, "RotationFailed", 1).await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "killed at the limit"
    );
    let details = &failed[0]["serviceEventDetails"];
    assert_eq!(details["step"], "createSecret");
    assert_eq!(details["error"], "Task timed out after 2.00 seconds");
    // The empty pending version AWS leaves: labelled, without a value.
    let s = stages(&sm, &arn).await;
    assert_eq!(labels_of(&s, &first), ["AWSCURRENT"]);
    let pending = s
        .iter()
        .find(|(_, l)| l == &["AWSPENDING"])
        .expect("AWSPENDING stays")
        .0
        .clone();
    let e = sm
        .get_secret_value()
        .secret_id(&arn)
        .version_stage("AWSPENDING")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_resource_not_found_exception(), "{e:?}");
    // CancelRotateSecret answers the pending version.
    let c = sm
        .cancel_rotate_secret()
        .secret_id(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(c.version_id(), Some(pending.as_str()));
}

#[tokio::test]
async fn an_unknown_function_is_refused_as_aws_refuses_one_it_cannot_invoke() {
    let server = TestServer::start().await;
    let sm = server.secrets_manager();
    create(&sm, "nofn", &json!({"password": "p"})).await;
    let e = sm
        .rotate_secret()
        .secret_id("nofn")
        .rotation_lambda_arn("arn:aws:lambda:us-east-1:000000000000:function:missing")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "AccessDeniedException".to_owned(),
            "Secrets Manager cannot invoke the specified Lambda function. Ensure that the \
             function policy grants access to the principal secretsmanager.amazonaws.com."
                .to_owned()
        )
    );
    let d = sm.describe_secret().secret_id("nofn").send().await.unwrap();
    assert!(d.rotation_enabled().is_none());
}

#[tokio::test]
async fn the_function_calls_back_with_its_roles_credentials_and_keyhold_enforces_them() {
    const ACCOUNT: &str = "111122223333";
    let good_role = format!("arn:aws:iam::{ACCOUNT}:role/rotator");
    let weak_role = format!("arn:aws:iam::{ACCOUNT}:role/reader");
    let good_fn = format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:rotate");
    let weak_fn = format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:weak");
    let server = with_functions(
        TestServer::builder().strict(&[(
            "AKIAROTATIONTEST01",
            "rotation-test-secret-key",
            ACCOUNT,
        )]),
        vec![
            template_function(&good_fn, Some(&good_role)),
            template_function(&weak_fn, Some(&weak_role)),
        ],
    )
    .start()
    .await;
    let admin = keyhold_testkit::Creds::new("AKIAROTATIONTEST01", "rotation-test-secret-key");
    let clients = server.clients(&admin);
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
    let scratch = tempfile::tempdir().unwrap();
    for (name, function) in [("strict/good", &good_fn), ("strict/weak", &weak_fn)] {
        let file = scratch.path().join(name.replace('/', "-"));
        let (arn, first) =
            create(sm, name, &json!({"password": "p0", "password_file": file})).await;
        sm.rotate_secret()
            .secret_id(&arn)
            .rotation_lambda_arn(function)
            .send()
            .await
            .unwrap();
        if name == "strict/good" {
            wait_for_events(server.data_dir(), &arn, "RotationSucceeded", 1).await;
            let (current, _) = value(sm, &arn, "AWSCURRENT").await;
            assert_ne!(current, first);
            // The callbacks were made by the role's session, named after the function.
            let put: Value = keyhold_testkit::audit_files::rows(server.data_dir())
                .into_iter()
                .rev()
                .find(|r| r.record.contains("\"PutSecretValue\"") && r.record.contains(&arn))
                .map(|r| serde_json::from_str(&r.record).unwrap())
                .unwrap();
            assert_eq!(
                put["userIdentity"]["arn"],
                format!("arn:aws:sts::{ACCOUNT}:assumed-role/rotator/rotate")
            );
        } else {
            // The reader role may not PutSecretValue: createSecret fails, nothing moves.
            let failed = wait_for_events(server.data_dir(), &arn, "RotationFailed", 1).await;
            let details = &failed[0]["serviceEventDetails"];
            assert_eq!(details["step"], "createSecret");
            assert!(
                details["error"].as_str().unwrap().contains("AccessDenied"),
                "{details}"
            );
            let (current, _) = value(sm, &arn, "AWSCURRENT").await;
            assert_eq!(current, first);
        }
    }
}

#[tokio::test]
async fn schedules_rotate_when_due_and_a_missed_rotation_runs_once_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let builder = || {
        with_functions(
            TestServer::builder()
                .data_dir(dir.path())
                .deletion_sweep_interval(Duration::from_millis(200)),
            vec![template_function(FUNCTION, None)],
        )
    };
    let server = builder().start().await;
    let sm = server.secrets_manager();
    let file = scratch.path().join("pw");
    let (arn, first) = create(
        &sm,
        "scheduled",
        &json!({"password": "p0", "password_file": file}),
    )
    .await;
    sm.rotate_secret()
        .secret_id(&arn)
        .rotation_lambda_arn(FUNCTION)
        .rotation_rules(
            RotationRulesType::builder()
                .schedule_expression("rate(2 days)")
                .duration("3h")
                .build(),
        )
        .rotate_immediately(false)
        .send()
        .await
        .unwrap();
    let d = sm.describe_secret().secret_id(&arn).send().await.unwrap();
    let next = d.next_rotation_date().unwrap().secs();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // rate(2 days): midnight two days on, and a 3-hour window.
    assert_eq!(next, now - now.rem_euclid(DAY) + 2 * DAY + 3 * 3600);
    assert_eq!(
        d.rotation_rules().unwrap().automatically_after_days(),
        Some(2)
    );
    server.stop().await;

    // NextRotationDate is the same after a restart (stored, not recomputed).
    let server = builder().start().await;
    let sm = server.secrets_manager();
    let d = sm.describe_secret().secret_id(&arn).send().await.unwrap();
    assert_eq!(d.next_rotation_date().unwrap().secs(), next);
    assert!(
        rotation_events(server.data_dir(), &arn).is_empty(),
        "not due yet"
    );
    server.stop().await;

    // Down for ten days (five missed windows): one rotation at start, not five.
    let server = builder()
        .clock_ahead(Duration::from_secs(10 * DAY as u64))
        .start()
        .await;
    let sm = server.secrets_manager();
    wait_for_events(server.data_dir(), &arn, "RotationSucceeded", 1).await;
    let (current, _) = value(&sm, &arn, "AWSCURRENT").await;
    assert_ne!(current, first);
    let d = sm.describe_secret().secret_id(&arn).send().await.unwrap();
    let last = d.last_rotated_date().unwrap().secs();
    assert!(last >= now + 10 * DAY - 5, "on the server's clock");
    assert_eq!(
        d.next_rotation_date().unwrap().secs(),
        last - last.rem_euclid(DAY) + 2 * DAY + 3 * 3600,
        "counted from the rotation"
    );
    // Sweeps before the next window open rotate nothing; the next window's opening does.
    server.clock().advance(Duration::from_secs(DAY as u64));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let started = |events: &[Value]| {
        events
            .iter()
            .filter(|e| e["eventName"] == "RotationStarted")
            .count()
    };
    assert_eq!(started(&rotation_events(server.data_dir(), &arn)), 1);
    server.clock().advance(Duration::from_secs(DAY as u64));
    wait_for_events(server.data_dir(), &arn, "RotationSucceeded", 2).await;
    assert_eq!(started(&rotation_events(server.data_dir(), &arn)), 2);
    server.stop().await;
}
