//! The rotation engine: AWS's four-step rotation protocol, run against the rotation function
//! a secret's `RotationLambdaARN` names in the config (`[[rotation_functions]]`).
//!
//! A rotation, started by RotateSecret or by the schedule (the background sweep):
//!
//! 1. Keyhold makes sure the version whose id is the rotation's `ClientRequestToken` exists
//!    and carries `AWSPENDING`, as AWS does before it invokes the function: a new rotation
//!    creates it *empty* (no value: GetSecretValue on it answers ResourceNotFoundException
//!    until the function's `createSecret` step fills it with PutSecretValue).
//! 2. It invokes the function once per step — `createSecret`, `setSecret`, `testSecret`,
//!    `finishSecret` — with the Lambda invocation event (`SecretId`, `ClientRequestToken`,
//!    `Step`, `RotationToken`). The function calls back into Keyhold, signed with its own
//!    credentials (temporary credentials of its `role_arn`), and Keyhold authorizes those
//!    calls like any other: the function does the label work itself (PutSecretValue with
//!    `AWSPENDING`, UpdateSecretVersionStage moving `AWSCURRENT`).
//! 3. It succeeds when the token's version carries `AWSCURRENT` after `finishSecret`: then
//!    `LastRotatedDate` is set and the next window computed from it.
//!
//! A step that fails (a non-zero exit, an HTTP error status, a time-out) ends the attempt:
//! `AWSCURRENT` stays where it was and `AWSPENDING` stays on the token's version, so the next
//! attempt — a RotateSecret (which answers "A previous rotation isn't complete. That rotation
//! will be reattempted." and reattempts it) or the schedule, an hour later — resumes it with
//! the same token, as AWS's functions expect. Every failure is in the audit trail (a
//! `RotationFailed` service event with the step and the error), in the server log, and in
//! the counters ([`RotationCounters`]).
//!
//! One rotation at a time per secret: the secrets being rotated are held in memory.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use keyhold_proto::route::Operation;
use keyhold_proto::secretsmanager::SecretsManagerOperation;
use keyhold_store::SecretVersionRecord;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zeroize::Zeroizing;

use super::SecretsService;
use super::error::SecretsError;
use super::labels::attach;
use super::secret::{AWSCURRENT, AWSPENDING, Secret};
use crate::arn::Scope;
use crate::audit::{Auditor, ServiceEvent};
use crate::auth::{CredentialSource, Lookup};
use crate::config::RotationFunction;
use crate::context::{Principal, RequestContext};
use crate::http::AppState;
use crate::iam::IamService;
use crate::iam::directory::SessionKind;

/// AWS's four rotation steps, in order.
pub const STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];
/// How long after a failed scheduled attempt the schedule tries again.
const RETRY_MS: i64 = 3_600_000;
/// The session length of a function's temporary credentials (STS's minimum).
const SESSION_SECONDS: i64 = 900;
/// At most this much of an error (the last line of a command's stderr, an HTTP body) is
/// kept for the log and the audit trail.
const ERROR_CHARS: usize = 512;
/// The environment a command keeps from the server's (everything else is cleared, as a
/// Lambda function starts with a clean environment).
const KEPT_ENV: [&str; 5] = ["PATH", "HOME", "LANG", "TMPDIR", "PYTHONPATH"];

/// What the engine needs from the server: set once at start ([`SecretsService::install_rotation`]).
pub struct RotationSetup {
    pub functions: Vec<RotationFunction>,
    pub iam: Arc<IamService>,
    pub audit: Arc<dyn Auditor>,
    /// The server's own endpoint (`http://127.0.0.1:4566`): what functions call back.
    pub endpoint: String,
}

pub(super) struct Engine {
    functions: Vec<RotationFunction>,
    iam: Arc<IamService>,
    audit: Arc<dyn Auditor>,
    endpoint: String,
    service: Weak<SecretsService>,
    /// The server the built-in rotators call in process (set once it exists:
    /// [`SecretsService::attach_rotation_dispatcher`]).
    app: OnceLock<Weak<AppState>>,
}

/// Rotations counted since start.
#[derive(Debug, Default)]
pub struct RotationCounters {
    pub started: AtomicU64,
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
}

/// Why an attempt failed: the step and what went wrong (never a secret value).
struct Failure {
    step: &'static str,
    error: String,
}

impl SecretsService {
    /// Connects the rotation engine (the server calls this once, after binding).
    pub fn install_rotation(self: &Arc<Self>, setup: RotationSetup) {
        let _ = self.rotation.set(Engine {
            functions: setup.functions,
            iam: setup.iam,
            audit: setup.audit,
            endpoint: setup.endpoint,
            service: Arc::downgrade(self),
            app: OnceLock::new(),
        });
    }

    /// Gives the built-in rotators the dispatcher they call Secrets Manager through, as a
    /// Lambda function calls its endpoint (the server calls this once its state exists).
    pub fn attach_rotation_dispatcher(&self, app: Weak<AppState>) {
        if let Some(engine) = self.rotation.get() {
            let _ = engine.app.set(app);
        }
    }

    /// The rotation counters (started, succeeded, failed).
    pub fn rotation_counters(&self) -> &RotationCounters {
        &self.rotation_counters
    }

    /// The configured function of this Lambda ARN.
    pub(super) fn rotation_function(&self, lambda_arn: &str) -> Option<RotationFunction> {
        self.rotation
            .get()?
            .functions
            .iter()
            .find(|f| f.arn == lambda_arn)
            .cloned()
    }

    pub(super) fn is_rotating(&self, arn: &str) -> bool {
        self.running.lock().is_ok_and(|r| r.contains(arn))
    }

    /// Starts rotating `arn` with `token` in the background, unless a rotation of it runs.
    /// Returns whether it started.
    pub(super) fn start_rotation(
        &self,
        arn: &str,
        token: &str,
        function: RotationFunction,
    ) -> bool {
        let Some(service) = self.rotation.get().and_then(|e| e.service.upgrade()) else {
            return false;
        };
        let Ok(mut running) = self.running.lock() else {
            return false;
        };
        if !running.insert(arn.to_owned()) {
            return false;
        }
        drop(running);
        self.rotation_counters
            .started
            .fetch_add(1, Ordering::Relaxed);
        self.note_rotation("started");
        let (arn, token) = (arn.to_owned(), token.to_owned());
        tokio::spawn(async move {
            service.run_rotation(&arn, &token, &function).await;
        });
        true
    }

    /// Starts the scheduled rotations that are due. Returns how many it started.
    pub async fn sweep_rotations(&self) -> Result<usize, SecretsError> {
        let now = self.now_ms();
        let due = self.store.secrets_due_for_rotation(now).await?;
        let mut started = 0;
        for arn in due {
            let Some(secret) = self.load_arn(&arn).await? else {
                continue;
            };
            let Some(rotation) = secret.meta.rotation.as_ref().filter(|r| r.enabled) else {
                continue;
            };
            if secret.is_deleted() || self.is_rotating(&arn) {
                continue;
            }
            let function = rotation
                .lambda_arn
                .as_deref()
                .and_then(|l| self.rotation_function(l));
            let token = pending_version(&secret)
                .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
            let Some(function) = function else {
                let error = format!(
                    "no rotation function is configured for {}",
                    rotation.lambda_arn.as_deref().unwrap_or("(none)")
                );
                self.record_failure(&secret, &token, "createSecret", &error);
                self.postpone(&arn).await;
                continue;
            };
            if self.start_rotation(&arn, &token, function) {
                started += 1;
            }
        }
        Ok(started)
    }

    /// One attempt, from the pending version to the bookkeeping of its outcome. The secret
    /// is free for the next rotation before the outcome is announced (trail, log).
    async fn run_rotation(&self, arn: &str, token: &str, function: &RotationFunction) {
        let outcome = self.attempt(arn, token, function).await;
        let bookkeeping = match &outcome {
            Ok(()) => self.finish(arn).await,
            Err(_) => {
                self.postpone(arn).await;
                Ok(())
            }
        };
        if let Ok(mut running) = self.running.lock() {
            running.remove(arn);
        }
        if let Err(e) = bookkeeping {
            tracing::warn!(arn, error = ?e, "recording a finished rotation failed");
        }
        let Ok(Some(secret)) = self.load_arn(arn).await else {
            return;
        };
        match outcome {
            Ok(()) => {
                self.rotation_counters
                    .succeeded
                    .fetch_add(1, Ordering::Relaxed);
                self.note_rotation("succeeded");
                self.service_event(&secret, "RotationSucceeded", token, None);
                tracing::info!(arn, version_id = token, "rotated secret");
            }
            Err(Failure { step, error }) => self.record_failure(&secret, token, step, &error),
        }
    }

    async fn attempt(
        &self,
        arn: &str,
        token: &str,
        function: &RotationFunction,
    ) -> Result<(), Failure> {
        let fail = |step: &'static str| move |error: String| Failure { step, error };
        let secret = self
            .prepare_pending(arn, token)
            .await
            .map_err(|e| fail("createSecret")(format!("{e:?}")))?;
        self.service_event(&secret, "RotationStarted", token, None);
        for step in STEPS {
            let event = serde_json::json!({
                "SecretId": arn,
                "ClientRequestToken": token,
                "Step": step,
                "RotationToken": uuid::Uuid::new_v4().to_string(),
            });
            self.invoke(function, &secret, &event)
                .await
                .map_err(fail(step))?;
        }
        let after = self.load_arn(arn).await.ok().flatten();
        let current = after
            .as_ref()
            .is_some_and(|s| s.labels(token).iter().any(|l| l == AWSCURRENT));
        if !current {
            return Err(Failure {
                step: "finishSecret",
                error: format!("the rotation function did not move AWSCURRENT to version {token}"),
            });
        }
        Ok(())
    }

    /// The version `token` with `AWSPENDING` (created empty for a new rotation).
    async fn prepare_pending(&self, arn: &str, token: &str) -> Result<Arc<Secret>, SecretsError> {
        let _guard = self.writes.lock().await;
        let secret = self.load_arn(arn).await?.ok_or(SecretsError::Internal)?;
        let labels = secret.labels(token);
        let has = |l: &str| labels.iter().any(|x| x == l);
        if secret.version(token).is_some() && (has(AWSPENDING) || has(AWSCURRENT)) {
            return Ok(secret);
        }
        let mut next = (*secret).clone();
        if next.version(token).is_none() {
            next.put_version(SecretVersionRecord {
                secret_arn: secret.arn.clone(),
                version_id: token.to_owned(),
                created_ms: self.now_ms(),
                last_accessed_ms: None,
                kms_key_id: secret.meta.kms_key_id.clone(),
                kms_key_arn: String::new(),
                data_key: Vec::new(),
                sealed_value: Vec::new(),
            });
        }
        attach(&mut next.meta.stages, token, &[AWSPENDING.to_owned()]);
        let ctx = service_context(&secret);
        self.save(&ctx, secret, next).await
    }

    /// Records a successful rotation: `LastRotatedDate` now, the next window from it.
    async fn finish(&self, arn: &str) -> Result<(), SecretsError> {
        let _guard = self.writes.lock().await;
        let Some(secret) = self.load_arn(arn).await? else {
            return Ok(());
        };
        let now = self.now_ms();
        let mut next = (*secret).clone();
        if let Some(rotation) = next.meta.rotation.as_mut() {
            rotation.last_rotated_ms = Some(now);
            super::rotation::schedule_next(rotation, now);
        }
        let ctx = service_context(&secret);
        self.save(&ctx, secret, next).await.map(|_| ())
    }

    /// After a failed attempt: the schedule tries again in an hour.
    async fn postpone(&self, arn: &str) {
        let _guard = self.writes.lock().await;
        let Ok(Some(secret)) = self.load_arn(arn).await else {
            return;
        };
        let now = self.now_ms();
        let mut next = (*secret).clone();
        let Some(rotation) = next.meta.rotation.as_mut().filter(|r| r.enabled) else {
            return;
        };
        if rotation.due_ms.is_some_and(|d| d > now) {
            return;
        }
        rotation.due_ms = Some(now + RETRY_MS);
        let ctx = service_context(&secret);
        if let Err(e) = self.save(&ctx, secret, next).await {
            tracing::warn!(arn, error = ?e, "postponing a failed rotation failed");
        }
    }

    fn record_failure(&self, secret: &Secret, token: &str, step: &str, error: &str) {
        self.rotation_counters
            .failed
            .fetch_add(1, Ordering::Relaxed);
        self.note_rotation("failed");
        tracing::warn!(
            arn = secret.arn,
            version_id = token,
            step,
            error,
            "secret rotation failed; AWSCURRENT is unchanged and AWSPENDING stays for the retry"
        );
        self.service_event(
            secret,
            "RotationFailed",
            token,
            Some(serde_json::json!({ "step": step, "error": error })),
        );
    }

    fn service_event(
        &self,
        secret: &Secret,
        name: &'static str,
        token: &str,
        failure: Option<serde_json::Value>,
    ) {
        let Some(engine) = self.rotation.get() else {
            return;
        };
        let mut details = serde_json::json!({
            "arn": secret.arn,
            "versionId": token,
        });
        if let (Some(map), Some(serde_json::Value::Object(extra))) =
            (details.as_object_mut(), failure)
        {
            map.extend(extra);
        }
        engine.audit.record_service_event(ServiceEvent {
            source: "secretsmanager.amazonaws.com",
            invoked_by: "secretsmanager.amazonaws.com",
            name,
            account: &secret.account,
            region: &secret.region,
            resources: vec![("AWS::SecretsManager::Secret", secret.arn.clone())],
            details,
            receipts: None,
        });
    }

    /// Invokes one step of the function; `Err` carries what went wrong.
    async fn invoke(
        &self,
        function: &RotationFunction,
        secret: &Secret,
        event: &serde_json::Value,
    ) -> Result<(), String> {
        let engine = self
            .rotation
            .get()
            .ok_or("the rotation engine is not running")?;
        let body = event.to_string();
        let limit = Duration::from_secs(function.timeout_seconds);
        let timed_out = || {
            format!(
                "Task timed out after {}.00 seconds",
                function.timeout_seconds
            )
        };
        if let Some(url) = &function.url {
            return tokio::time::timeout(limit, post(url, &body))
                .await
                .map_err(|_| timed_out())?;
        }
        if let Some(kind) = function.builtin {
            let caller = self.builtin_caller(engine, function, secret, kind).await?;
            let field = |name: &str| event.get(name).and_then(|v| v.as_str()).unwrap_or("");
            let step = super::rotate_builtin::run_step(
                kind,
                &caller,
                field("Step"),
                field("SecretId"),
                field("ClientRequestToken"),
            );
            return tokio::time::timeout(limit, step)
                .await
                .map_err(|_| timed_out())?;
        }
        let argv = function.command.clone().unwrap_or_default();
        let env = self.environment(engine, function, secret).await?;
        let run = tokio::task::spawn_blocking(move || run_command(&argv, &env, &body, limit));
        match run.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(CommandError::TimedOut)) => Err(timed_out()),
            Ok(Err(CommandError::Failed(e))) => Err(e),
            Err(_) => Err("the rotation function's runner panicked".to_owned()),
        }
    }

    /// What a built-in rotator calls Secrets Manager as: the session of the function's role
    /// (as Lambda runs a function with its execution role), or in dev mode without one the
    /// root of the function's account; in the function's Region.
    async fn builtin_caller(
        &self,
        engine: &Engine,
        function: &RotationFunction,
        secret: &Secret,
        kind: crate::config::BuiltinRotator,
    ) -> Result<super::rotate_builtin::Caller, String> {
        let app = engine
            .app
            .get()
            .and_then(Weak::upgrade)
            .ok_or("the server is not running")?;
        let parts: Vec<&str> = function.arn.split(':').collect();
        let field = |i: usize| parts.get(i).copied().unwrap_or_default();
        let region = if field(3).is_empty() {
            secret.region.as_str()
        } else {
            field(3)
        };
        let (principal, account) = match &function.role_arn {
            Some(role_arn) => {
                let issued = role_session(&engine.iam, role_arn, field(6)).await?;
                match engine.iam.lookup(&issued.access_key_id, field(1)) {
                    Lookup::Found(found) => {
                        let account = found.principal.account.clone();
                        (found.principal, account)
                    }
                    Lookup::Unknown | Lookup::Refused => {
                        return Err(format!(
                            "the credentials of the rotation function's role {role_arn} were refused"
                        ));
                    }
                }
            }
            None => {
                let scope = Scope::new(field(4), region);
                (Principal::root(&scope, None), field(4).to_owned())
            }
        };
        Ok(super::rotate_builtin::Caller::new(
            app,
            principal,
            Scope::new(account, region),
            kind,
        ))
    }

    /// The environment of a command: the endpoint, the Region, and credentials.
    async fn environment(
        &self,
        engine: &Engine,
        function: &RotationFunction,
        secret: &Secret,
    ) -> Result<Vec<(String, Zeroizing<String>)>, String> {
        let region = function.arn.split(':').nth(3).unwrap_or(&secret.region);
        let name = function.arn.rsplit(':').next().unwrap_or_default();
        let mut env: Vec<(String, Zeroizing<String>)> = KEPT_ENV
            .iter()
            .filter_map(|k| {
                std::env::var(k)
                    .ok()
                    .map(|v| ((*k).to_owned(), Zeroizing::new(v)))
            })
            .collect();
        let mut set = |k: &str, v: String| env.push((k.to_owned(), Zeroizing::new(v)));
        set("AWS_ENDPOINT_URL", engine.endpoint.clone());
        set("SECRETS_MANAGER_ENDPOINT", engine.endpoint.clone());
        set("AWS_REGION", region.to_owned());
        set("AWS_DEFAULT_REGION", region.to_owned());
        set("AWS_LAMBDA_FUNCTION_NAME", name.to_owned());
        set(
            "AWS_LAMBDA_FUNCTION_TIMEOUT",
            function.timeout_seconds.to_string(),
        );
        match &function.role_arn {
            Some(role_arn) => {
                let issued = role_session(&engine.iam, role_arn, name).await?;
                set("AWS_ACCESS_KEY_ID", issued.access_key_id.clone());
                env.push((
                    "AWS_SECRET_ACCESS_KEY".to_owned(),
                    issued.secret_access_key.clone(),
                ));
                env.push(("AWS_SESSION_TOKEN".to_owned(), issued.session_token.clone()));
            }
            None => {
                // Dev mode only (strict mode requires a role): the function's account.
                let account = function.arn.split(':').nth(4).unwrap_or_default();
                set("AWS_ACCESS_KEY_ID", account.to_owned());
                set("AWS_SECRET_ACCESS_KEY", "keyhold-dev-mode".to_owned());
            }
        }
        Ok(env)
    }
}

/// The version a failed rotation left `AWSPENDING` on (not the current one).
pub(super) fn pending_version(secret: &Secret) -> Option<&str> {
    secret
        .version_with(AWSPENDING)
        .filter(|p| Some(*p) != secret.version_with(AWSCURRENT))
}

/// The context the service acts in for its own writes: the secret's account root.
fn service_context(secret: &Secret) -> RequestContext {
    let scope = Scope::new(secret.account.clone(), secret.region.clone());
    RequestContext::new(
        crate::context::new_request_id(),
        Operation::SecretsManager(SecretsManagerOperation::RotateSecret),
        Principal::root(&scope, None),
        scope,
        IpAddr::from([127, 0, 0, 1]),
        "secretsmanager.amazonaws.com".to_owned(),
    )
}

/// Temporary credentials of `role_arn` for the function `name`, as Lambda gets its
/// execution role's.
async fn role_session(
    iam: &IamService,
    role_arn: &str,
    name: &str,
) -> Result<crate::iam::IssuedSession, String> {
    let unknown = || format!("the rotation function's role {role_arn} does not exist");
    let account = role_arn.split(':').nth(4).ok_or_else(unknown)?;
    let role_name = role_arn.rsplit('/').next().ok_or_else(unknown)?;
    let role = iam
        .role(account, role_name)
        .map_err(|e| format!("{e:?}"))?
        .ok_or_else(unknown)?;
    iam.issue_session(
        account,
        &role.record.role_id,
        SessionKind::AssumedRole {
            session_name: name.to_owned(),
        },
        SESSION_SECONDS,
    )
    .await
    .map_err(|e| format!("issuing the rotation function's credentials failed: {e:?}"))
}

enum CommandError {
    TimedOut,
    Failed(String),
}

/// Runs `argv` with `env`, `event` on its stdin, for at most `limit`.
fn run_command(
    argv: &[String],
    env: &[(String, Zeroizing<String>)],
    event: &str,
    limit: Duration,
) -> Result<(), CommandError> {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| CommandError::Failed("the command is empty".to_owned()))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v.as_str());
    }
    let mut child = command
        .spawn()
        .map_err(|e| CommandError::Failed(format!("starting {program} failed: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A function that does not read its event is its own business.
        let _ = stdin.write_all(event.as_bytes());
    }
    let stderr = child.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = pipe.read_to_end(&mut out);
            out
        })
    });
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CommandError::TimedOut);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(CommandError::Failed(format!("waiting for {program}: {e}"))),
        }
    };
    if status.success() {
        return Ok(());
    }
    let stderr = stderr
        .and_then(|t| t.join().ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    Err(CommandError::Failed(format!(
        "{program} exited with {status}: {}",
        truncate(last.trim())
    )))
}

/// POSTs `body` (JSON) to an `http://` URL; a 2xx status is success.
async fn post(url: &str, body: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url} is not an http:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| format!("connecting to {authority} failed: {e}"))?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("sending to {url} failed: {e}"))?;
    let mut response = Vec::new();
    stream
        .take(64 * 1024)
        .read_to_end(&mut response)
        .await
        .map_err(|e| format!("reading from {url} failed: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{url} answered no HTTP status"))?;
    if (200..300).contains(&status) {
        return Ok(());
    }
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Err(format!(
        "{url} answered HTTP {status}: {}",
        truncate(body.trim())
    ))
}

fn truncate(text: &str) -> String {
    text.chars().take(ERROR_CHARS).collect()
}

/// The secrets being rotated (by ARN).
pub(super) type Running = Mutex<HashSet<String>>;
