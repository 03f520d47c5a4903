//! The rotators built into Keyhold (`builtin = "..."` in `[[rotation_functions]]`): AWS's
//! published rotation functions for PostgreSQL and MySQL/MariaDB
//! (aws-samples/aws-secrets-manager-rotation-lambdas, `SecretsManagerRDSPostgreSQLRotation*`
//! and `SecretsManagerRDSMySQLRotation*`), step for step, in Rust.
//!
//! They act as a Lambda function does: every Secrets Manager call (DescribeSecret,
//! GetSecretValue, GetRandomPassword, PutSecretValue, UpdateSecretVersionStage) goes through
//! the server's dispatcher as the function's principal — the session of its `role_arn`, or
//! in dev mode without one its account's root — so it is authorized and audited like any
//! call ([`Caller`]).
//!
//! The steps, for a secret in AWS's JSON format (`engine`, `host`, `port`, `username`,
//! `password`, `dbname`, and `masterarn` for alternating users):
//! - `createSecret`: unless the token's version has a value, put a copy of AWSCURRENT with
//!   a password from GetRandomPassword (and, alternating, the other user name: `_clone`
//!   appended or removed) as AWSPENDING.
//! - `setSecret`: nothing if AWSPENDING already logs in (by its password: on a server that
//!   also admits a wrong one, such as PostgreSQL with `trust`, the password is set anyway). Single user: log in with AWSCURRENT
//!   (or AWSPREVIOUS, after an interrupted rotation) and change the user's own password.
//!   Alternating users: check that AWSCURRENT logs in, then log in with the master secret
//!   (`masterarn`) and set the alternate user's password, creating it as a clone of the
//!   current user (its grants) when missing.
//! - `testSecret`: log in with AWSPENDING and run `SELECT NOW()`.
//! - `finishSecret`: move AWSCURRENT to the token's version.

use std::net::IpAddr;
use std::sync::Arc;

use keyhold_proto::route;
use serde_json::{Map, Value, json};
use zeroize::{Zeroize, Zeroizing};

use super::rotate_db::{Flavor, connect};
use crate::arn::Scope;
use crate::config::BuiltinRotator;
use crate::context::{Principal, RequestContext};
use crate::http::AppState;

/// The characters AWS's PostgreSQL functions exclude from generated passwords.
const POSTGRES_EXCLUDED: &str = ":/@\"'\\";
/// The characters AWS's MySQL functions exclude from generated passwords.
const MYSQL_EXCLUDED: &str = "/@\"'\\";
/// The suffix of the alternate user.
const CLONE_SUFFIX: &str = "_clone";

/// A built-in rotator's strategy and database.
#[derive(Clone, Copy)]
struct Rotator {
    flavor: Flavor,
    alternating: bool,
}

impl From<BuiltinRotator> for Rotator {
    fn from(kind: BuiltinRotator) -> Self {
        let (flavor, alternating) = match kind {
            BuiltinRotator::PostgresSingleUser => (Flavor::Postgres, false),
            BuiltinRotator::PostgresAlternatingUsers => (Flavor::Postgres, true),
            BuiltinRotator::MysqlSingleUser => (Flavor::Mysql, false),
            BuiltinRotator::MysqlAlternatingUsers => (Flavor::Mysql, true),
        };
        Self {
            flavor,
            alternating,
        }
    }
}

/// Runs one step of a built-in rotator. `Err` says what failed, as the Lambda function's
/// exception would (never with a password).
pub(super) async fn run_step(
    kind: BuiltinRotator,
    caller: &Caller,
    step: &str,
    arn: &str,
    token: &str,
) -> Result<(), String> {
    let rotator = Rotator::from(kind);
    let metadata = caller
        .call_json("DescribeSecret", &json!({ "SecretId": arn }))
        .await?;
    if metadata.get("RotationEnabled") == Some(&Value::Bool(false)) {
        return Err(format!("Secret {arn} is not enabled for rotation"));
    }
    let stages = metadata
        .get("VersionIdsToStages")
        .and_then(|v| v.get(token))
        .and_then(Value::as_array);
    let Some(stages) = stages else {
        return Err(format!(
            "Secret version {token} has no stage for rotation of secret {arn}."
        ));
    };
    let has = |label: &str| stages.iter().any(|s| s == label);
    if has("AWSCURRENT") {
        return Ok(());
    }
    if !has("AWSPENDING") {
        return Err(format!(
            "Secret version {token} not set as AWSPENDING for rotation of secret {arn}."
        ));
    }
    match step {
        "createSecret" => create_secret(rotator, caller, arn, token).await,
        "setSecret" if rotator.alternating => set_alternate(rotator, caller, arn, token).await,
        "setSecret" => set_single(rotator, caller, arn, token).await,
        "testSecret" => test_secret(rotator, caller, arn, token).await,
        "finishSecret" => finish_secret(caller, arn, token, &metadata).await,
        _ => Err(format!("Invalid step parameter {step} for secret {arn}")),
    }
}

async fn create_secret(
    rotator: Rotator,
    caller: &Caller,
    arn: &str,
    token: &str,
) -> Result<(), String> {
    let mut current = caller
        .secret(rotator, arn, "AWSCURRENT", None)
        .await
        .map_err(CallError::into_message)?;
    match caller.secret(rotator, arn, "AWSPENDING", Some(token)).await {
        Ok(_) => return Ok(()),
        Err(CallError::NotFound(_)) => {}
        Err(e) => return Err(e.into_message()),
    }
    if rotator.alternating {
        let alternate = alternate_username(rotator.flavor, current.username())?;
        current
            .fields
            .insert("username".to_owned(), Value::String(alternate));
    }
    let excluded = match rotator.flavor {
        Flavor::Postgres => POSTGRES_EXCLUDED,
        Flavor::Mysql => MYSQL_EXCLUDED,
    };
    current.password = caller.random_password(excluded).await?;
    let body = current.put_request(arn, token)?;
    caller
        .call("PutSecretValue", &body)
        .await
        .map(|_| ())
        .map_err(CallError::into_message)
}

async fn set_single(
    rotator: Rotator,
    caller: &Caller,
    arn: &str,
    token: &str,
) -> Result<(), String> {
    let previous = caller.secret(rotator, arn, "AWSPREVIOUS", None).await.ok();
    let current = caller
        .secret(rotator, arn, "AWSCURRENT", None)
        .await
        .map_err(CallError::into_message)?;
    let pending = caller
        .secret(rotator, arn, "AWSPENDING", Some(token))
        .await
        .map_err(CallError::into_message)?;
    if password_logs_in(rotator.flavor, &pending).await {
        return Ok(());
    }
    if current.username() != pending.username() {
        return Err(format!(
            "Attempting to modify user {} other than current user {}",
            pending.username(),
            current.username()
        ));
    }
    if current.host() != pending.host() {
        return Err(format!(
            "Attempting to modify user for host {} other than current host {}",
            pending.host(),
            current.host()
        ));
    }
    let mut conn = match connect(rotator.flavor, &current).await {
        Ok(conn) => Some(conn),
        Err(e) => {
            tracing::info!(arn, error = %e, "setSecret: AWSCURRENT does not log in");
            None
        }
    };
    if conn.is_none()
        && let Some(mut previous) = previous
    {
        // AWSPREVIOUS with AWSCURRENT's TLS settings, as AWS's functions do.
        previous.fields.remove("ssl");
        if let Some(ssl) = current.fields.get("ssl") {
            previous.fields.insert("ssl".to_owned(), ssl.clone());
        }
        conn = connect(rotator.flavor, &previous).await.ok();
        if previous.username() != pending.username() {
            return Err(format!(
                "Attempting to modify user {} other than previous valid user {}",
                pending.username(),
                previous.username()
            ));
        }
        if previous.host() != pending.host() {
            return Err(format!(
                "Attempting to modify user for host {} other than previous host {}",
                pending.host(),
                previous.host()
            ));
        }
    }
    let Some(mut conn) = conn else {
        return Err(format!(
            "Unable to log into database with previous, current, or pending secret of secret \
             arn {arn}"
        ));
    };
    let done = conn
        .set_own_password(pending.username(), &pending.password)
        .await;
    conn.close().await;
    done
}

async fn set_alternate(
    rotator: Rotator,
    caller: &Caller,
    arn: &str,
    token: &str,
) -> Result<(), String> {
    let current = caller
        .secret(rotator, arn, "AWSCURRENT", None)
        .await
        .map_err(CallError::into_message)?;
    let pending = caller
        .secret(rotator, arn, "AWSPENDING", Some(token))
        .await
        .map_err(CallError::into_message)?;
    if password_logs_in(rotator.flavor, &pending).await {
        return Ok(());
    }
    if alternate_username(rotator.flavor, current.username())? != pending.username() {
        return Err(format!(
            "Attempting to modify user {} other than current user or clone {}",
            pending.username(),
            current.username()
        ));
    }
    if current.host() != pending.host() {
        return Err(format!(
            "Attempting to modify user for host {} other than current host {}",
            pending.host(),
            current.host()
        ));
    }
    // The credential being rotated must be valid (against a confused deputy).
    match connect(rotator.flavor, &current).await {
        Ok(conn) => conn.close().await,
        Err(e) => {
            tracing::info!(arn, error = %e, "setSecret: AWSCURRENT does not log in");
            return Err(format!(
                "Unable to log into database using current credentials for secret {arn}"
            ));
        }
    }
    let master_arn = current
        .str_field("masterarn")
        .ok_or("masterarn key is missing from secret JSON")?
        .to_owned();
    let mut master = caller
        .secret(rotator, &master_arn, "AWSCURRENT", None)
        .await
        .map_err(CallError::into_message)?;
    if rotator.flavor == Flavor::Postgres {
        // The master logs in to the user's database.
        let dbname = current.fields.get("dbname").cloned().unwrap_or(Value::Null);
        master.fields.insert("dbname".to_owned(), dbname);
    }
    if current.host() != master.host() {
        return Err(format!(
            "Current database host {} is not the same host as/rds replica of master {}",
            current.host(),
            master.host()
        ));
    }
    let mut conn = match connect(rotator.flavor, &master).await {
        Ok(conn) => conn,
        Err(e) => {
            tracing::info!(arn, error = %e, "setSecret: the master secret does not log in");
            return Err(format!(
                "Unable to log into database using credentials in master secret {master_arn}"
            ));
        }
    };
    let done = conn
        .set_alternate_password(current.username(), pending.username(), &pending.password)
        .await;
    conn.close().await;
    done
}

async fn test_secret(
    rotator: Rotator,
    caller: &Caller,
    arn: &str,
    token: &str,
) -> Result<(), String> {
    let pending = caller
        .secret(rotator, arn, "AWSPENDING", Some(token))
        .await
        .map_err(CallError::into_message)?;
    let mut conn = match connect(rotator.flavor, &pending).await {
        Ok(conn) => conn,
        Err(e) => {
            tracing::info!(arn, error = %e, "testSecret: AWSPENDING does not log in");
            return Err(format!(
                "Unable to log into database with pending secret of secret ARN {arn}"
            ));
        }
    };
    let checked = conn.select_now().await;
    conn.close().await;
    checked
}

async fn finish_secret(
    caller: &Caller,
    arn: &str,
    token: &str,
    metadata: &Value,
) -> Result<(), String> {
    let current = metadata
        .get("VersionIdsToStages")
        .and_then(Value::as_object)
        .and_then(|versions| {
            versions.iter().find(|(_, stages)| {
                stages
                    .as_array()
                    .is_some_and(|s| s.iter().any(|l| l == "AWSCURRENT"))
            })
        })
        .map(|(version, _)| version.clone());
    if current.as_deref() == Some(token) {
        return Ok(());
    }
    let mut input = json!({
        "SecretId": arn,
        "VersionStage": "AWSCURRENT",
        "MoveToVersionId": token,
    });
    if let (Some(map), Some(current)) = (input.as_object_mut(), current) {
        map.insert("RemoveFromVersionId".to_owned(), Value::String(current));
    }
    caller.call_json("UpdateSecretVersionStage", &input).await?;
    Ok(())
}

/// Whether `secret` logs in *by its password* — setSecret's "already set" check. A server
/// that also lets a wrong password in (PostgreSQL's `trust` authentication) proves nothing
/// by a login, so there the password is set anyway (AWS's functions would skip it).
async fn password_logs_in(flavor: Flavor, secret: &DbSecret) -> bool {
    let Ok(conn) = connect(flavor, secret).await else {
        return false;
    };
    conn.close().await;
    let wrong = secret.with_password(Zeroizing::new(uuid::Uuid::new_v4().to_string()));
    match connect(flavor, &wrong).await {
        Ok(conn) => {
            conn.close().await;
            false
        }
        Err(_) => true,
    }
}

/// The other user of the pair: `_clone` removed, or appended within the database's limit
/// on user names (PostgreSQL 63, MySQL 16, as AWS's functions check).
fn alternate_username(flavor: Flavor, username: &str) -> Result<String, String> {
    if let Some(original) = username.strip_suffix(CLONE_SUFFIX) {
        return Ok(original.to_owned());
    }
    let limit = match flavor {
        Flavor::Postgres => 63,
        Flavor::Mysql => 16,
    };
    let alternate = format!("{username}{CLONE_SUFFIX}");
    if alternate.len() > limit {
        return Err(format!(
            "Unable to clone user, username length with _clone appended would exceed {limit} \
             characters"
        ));
    }
    Ok(alternate)
}

/// A database secret in AWS's JSON format: its fields, the password kept apart (zeroized).
pub(super) struct DbSecret {
    /// Every field but `password`, kept so that a new version carries them on.
    fields: Map<String, Value>,
    password: Zeroizing<String>,
}

impl DbSecret {
    /// Parses and checks a secret's JSON text as AWS's function for `flavor` does.
    fn parse(flavor: Flavor, text: &str, arn: &str) -> Result<Self, String> {
        let mut fields: Map<String, Value> = serde_json::from_str(text)
            .map_err(|_| format!("the value of secret {arn} is not valid JSON"))?;
        let password = match fields.remove("password") {
            Some(Value::String(p)) => Zeroizing::new(p),
            Some(_) | None => return Err("password key is missing from secret JSON".to_owned()),
        };
        for field in ["host", "username", "engine"] {
            if !fields.contains_key(field) {
                return Err(format!("{field} key is missing from secret JSON"));
            }
        }
        let engine = fields.get("engine").and_then(Value::as_str).unwrap_or("");
        match flavor {
            Flavor::Postgres if !matches!(engine, "postgres" | "aurora-postgresql") => Err(
                "Database engine must be set to 'postgres' in order to use this rotation lambda"
                    .to_owned(),
            ),
            Flavor::Mysql if !matches!(engine, "mysql" | "mariadb" | "aurora-mysql") => Err(
                "Database engine must be set to 'mysql' in order to use this rotation lambda"
                    .to_owned(),
            ),
            _ => Ok(Self { fields, password }),
        }
    }

    /// The same secret with another password.
    fn with_password(&self, password: Zeroizing<String>) -> Self {
        Self {
            fields: self.fields.clone(),
            password,
        }
    }

    pub(super) fn str_field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }

    pub(super) fn password(&self) -> &str {
        &self.password
    }

    fn username(&self) -> &str {
        self.str_field("username").unwrap_or_default()
    }

    fn host(&self) -> &str {
        self.str_field("host").unwrap_or_default()
    }

    /// `port` as a number or a numeric string; `None` when absent.
    pub(super) fn port(&self) -> Result<Option<u16>, String> {
        match self.fields.get("port") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .map(Some)
                .ok_or_else(|| format!("port {n} is not a port number")),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| format!("port {s:?} is not a port number")),
            Some(_) => Err("port is not a port number".to_owned()),
        }
    }

    /// Whether the secret asks for TLS without fallback (`"ssl": true` or `"true"`).
    pub(super) fn requires_tls(&self) -> bool {
        match self.fields.get("ssl") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
            _ => false,
        }
    }

    /// The PutSecretValue request that stores this secret as `token`'s AWSPENDING version.
    fn put_request(&self, arn: &str, token: &str) -> Result<Zeroizing<Vec<u8>>, String> {
        let mut fields = self.fields.clone();
        fields.insert(
            "password".to_owned(),
            Value::String(self.password.to_string()),
        );
        let mut value = Value::Object(fields);
        let text = Zeroizing::new(value.to_string());
        wipe(value.get_mut("password"));
        let mut request = json!({
            "SecretId": arn,
            "ClientRequestToken": token,
            "SecretString": text.as_str(),
            "VersionStages": ["AWSPENDING"],
        });
        let mut body = Zeroizing::new(Vec::with_capacity(text.len() * 2 + 256));
        let written = serde_json::to_writer(&mut *body, &request);
        wipe(request.get_mut("SecretString"));
        written.map_err(|_| "encoding the pending secret failed".to_owned())?;
        Ok(body)
    }
}

/// Zeroizes a JSON string in place.
fn wipe(value: Option<&mut Value>) {
    if let Some(Value::String(s)) = value {
        s.zeroize();
    }
}

/// Why a call into Secrets Manager failed.
pub(super) enum CallError {
    NotFound(String),
    Other(String),
}

impl CallError {
    fn into_message(self) -> String {
        match self {
            CallError::NotFound(m) | CallError::Other(m) => m,
        }
    }
}

/// Calls Secrets Manager in process as a rotation function's principal: through the
/// dispatcher (authorization, audit) like a request over the wire.
pub(super) struct Caller {
    state: Arc<AppState>,
    principal: Principal,
    scope: Scope,
    user_agent: String,
}

impl Caller {
    pub(super) fn new(
        state: Arc<AppState>,
        principal: Principal,
        scope: Scope,
        kind: BuiltinRotator,
    ) -> Self {
        Self {
            state,
            principal,
            scope,
            user_agent: format!("keyhold-rotator/{}", kind.name()),
        }
    }

    /// Calls `operation` with a JSON `body`; the answer's bytes are zeroized after use.
    async fn call(&self, operation: &str, body: &[u8]) -> Result<Zeroizing<Vec<u8>>, CallError> {
        let other = |m: String| CallError::Other(m);
        let resolved = route::resolve_target(&format!("secretsmanager.{operation}"))
            .map_err(|_| other(format!("{operation} is not a Secrets Manager operation")))?;
        let ctx = RequestContext::new(
            crate::context::new_request_id(),
            resolved,
            self.principal.clone(),
            self.scope.clone(),
            IpAddr::from([127, 0, 0, 1]),
            self.user_agent.clone(),
        );
        match crate::http::call_in_process(&self.state, &ctx, body, None).await {
            Ok(answer) => Ok(Zeroizing::new(answer)),
            Err(e) => {
                let message = format!(
                    "An error occurred ({}) when calling the {operation} operation: {}",
                    e.code(),
                    e.message().unwrap_or_default()
                );
                Err(if e.code() == "ResourceNotFoundException" {
                    CallError::NotFound(message)
                } else {
                    CallError::Other(message)
                })
            }
        }
    }

    /// Calls an operation whose input and answer hold no secret.
    async fn call_json(&self, operation: &str, input: &Value) -> Result<Value, String> {
        let answer = self
            .call(operation, input.to_string().as_bytes())
            .await
            .map_err(CallError::into_message)?;
        serde_json::from_slice(&answer)
            .map_err(|_| format!("the answer of {operation} is not JSON"))
    }

    /// GetSecretValue of `stage` (and `token`), parsed as a database secret.
    async fn secret(
        &self,
        rotator: Rotator,
        arn: &str,
        stage: &str,
        token: Option<&str>,
    ) -> Result<DbSecret, CallError> {
        let mut input = json!({ "SecretId": arn, "VersionStage": stage });
        if let (Some(map), Some(token)) = (input.as_object_mut(), token) {
            map.insert("VersionId".to_owned(), Value::String(token.to_owned()));
        }
        let answer = self
            .call("GetSecretValue", input.to_string().as_bytes())
            .await?;
        let text = secret_string(&answer).ok_or_else(|| {
            CallError::Other(format!("secret {arn} ({stage}) has no SecretString"))
        })?;
        DbSecret::parse(rotator.flavor, &text, arn).map_err(CallError::Other)
    }

    /// A 32-character password from GetRandomPassword without `excluded`.
    async fn random_password(&self, excluded: &str) -> Result<Zeroizing<String>, String> {
        let input = json!({ "ExcludeCharacters": excluded, "PasswordLength": 32 });
        let answer = self
            .call("GetRandomPassword", input.to_string().as_bytes())
            .await
            .map_err(CallError::into_message)?;
        let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(&answer) else {
            return Err("the answer of GetRandomPassword is not JSON".to_owned());
        };
        match map.remove("RandomPassword") {
            Some(Value::String(p)) => Ok(Zeroizing::new(p)),
            _ => Err("GetRandomPassword answered no RandomPassword".to_owned()),
        }
    }
}

/// The `SecretString` of a GetSecretValue answer.
fn secret_string(answer: &[u8]) -> Option<Zeroizing<String>> {
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(answer) else {
        return None;
    };
    match map.remove("SecretString") {
        Some(Value::String(s)) => Some(Zeroizing::new(s)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternate_usernames_toggle_the_clone_suffix() {
        assert_eq!(
            alternate_username(Flavor::Postgres, "app").unwrap(),
            "app_clone"
        );
        assert_eq!(
            alternate_username(Flavor::Postgres, "app_clone").unwrap(),
            "app"
        );
        assert_eq!(
            alternate_username(Flavor::Mysql, "ten_chars_").unwrap(),
            "ten_chars__clone"
        );
        assert!(alternate_username(Flavor::Mysql, "eleven_char").is_err());
    }

    #[test]
    fn secrets_are_checked_as_aws_functions_check_them() {
        let ok = r#"{"engine":"postgres","host":"h","username":"u","password":"p","port":"5433"}"#;
        let s = DbSecret::parse(Flavor::Postgres, ok, "a").unwrap();
        assert_eq!(s.port().unwrap(), Some(5433));
        assert_eq!(s.password(), "p");
        assert!(!s.fields.contains_key("password"));
        assert!(DbSecret::parse(Flavor::Mysql, ok, "a").is_err());
        let missing = r#"{"engine":"mysql","host":"h","password":"p"}"#;
        assert_eq!(
            DbSecret::parse(Flavor::Mysql, missing, "a").err().unwrap(),
            "username key is missing from secret JSON"
        );
        let tls = r#"{"engine":"mysql","host":"h","username":"u","password":"p","ssl":"TRUE"}"#;
        assert!(
            DbSecret::parse(Flavor::Mysql, tls, "a")
                .unwrap()
                .requires_tls()
        );
    }

    #[test]
    fn the_pending_request_carries_every_field() {
        let text = r#"{"engine":"mysql","host":"h","username":"u","password":"p","dbname":"d"}"#;
        let s = DbSecret::parse(Flavor::Mysql, text, "a").unwrap();
        let body = s.put_request("arn", "tok").unwrap();
        let request: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(request["ClientRequestToken"], "tok");
        assert_eq!(request["VersionStages"], json!(["AWSPENDING"]));
        let value: Value = serde_json::from_str(request["SecretString"].as_str().unwrap()).unwrap();
        assert_eq!(value["password"], "p");
        assert_eq!(value["dbname"], "d");
    }
}
