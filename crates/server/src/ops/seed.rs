//! Seed files: the resources a test suite expects to find, created at start
//! (`keyhold serve --seed FILE`) and again on `POST /_keyhold/reset?reseed=true`.
//!
//! ```yaml
//! keys:
//!   - id: 11111111-2222-3333-4444-555555555555   # optional: a fixed key id
//!     material: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=   # optional, dev mode only:
//!                                                # 32 bytes, base64 — fixture ciphertexts
//!                                                # stay valid across fresh data dirs
//!     description: app key
//!     aliases: [alias/app]
//!     tags: {team: payments}
//!     policy: {Version: "2012-10-17", Statement: [...]}   # optional, else the default
//!     account: "000000000000"                    # optional: the default account
//!     region: us-east-1                          # optional: us-east-1
//! secrets:
//!   - name: app/db
//!     secret_string: '{"user":"app","pass":"hunter2"}'   # or secret_binary (base64)
//!     kms_key_id: alias/app                      # optional
//! parameters:
//!   - name: /app/url
//!     type: String                               # String | StringList | SecureString
//!     value: https://example.com
//! users:
//!   - name: ci
//!     policies: {all: {Version: "2012-10-17", Statement: [{Effect: Allow, Action: "*", Resource: "*"}]}}
//!     access_keys: [{id: AKIAIOSFODNN7EXAMPLE, secret: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY}]
//! ```
//!
//! Everything but a key's fixed id and material and a user's fixed access keys is created
//! through the AWS operations themselves, as the account's root, so the usual validation
//! applies and every call is audited. Seeding is idempotent: what exists already (a key
//! id, an alias, a secret or parameter name, a user) is left as it is, so a server may be
//! started with the same seed file on every start.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine as _;
use keyhold_proto::ApiError;
use keyhold_proto::route::{self, Operation};
use keyhold_proto::runtime::query::QueryParams;
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::arn::Scope;
use crate::config::Mode;
use crate::context::{Principal, RequestContext};
use crate::http::AppState;
use crate::kms::seed::{SeedKey, SeedKeyOutcome};

/// The region of seeded resources that do not name one.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The user agent of the calls a seed file makes (in the audit trail).
pub const USER_AGENT: &str = "keyhold-seed";

/// A parsed seed file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedFile {
    #[serde(default)]
    pub keys: Vec<KeyEntry>,
    #[serde(default)]
    pub secrets: Vec<SecretEntry>,
    #[serde(default)]
    pub parameters: Vec<ParameterEntry>,
    #[serde(default)]
    pub users: Vec<UserEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub id: Option<String>,
    /// Base64 of 32 bytes; dev mode only.
    pub material: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// A policy document (as JSON text or as a structure).
    pub policy: Option<Value>,
    pub account: Option<String>,
    pub region: Option<String>,
}

impl std::fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEntry")
            .field("id", &self.id)
            .field("material", &self.material.as_ref().map(|_| "[redacted]"))
            .field("aliases", &self.aliases)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretEntry {
    pub name: String,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    pub secret_string: Option<String>,
    /// Base64.
    pub secret_binary: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub account: Option<String>,
    pub region: Option<String>,
}

impl std::fmt::Debug for SecretEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretEntry")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParameterEntry {
    pub name: String,
    #[serde(rename = "type", default = "string_type")]
    pub kind: String,
    pub value: String,
    pub key_id: Option<String>,
    pub description: Option<String>,
    pub tier: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
}

fn string_type() -> String {
    "String".to_owned()
}

impl std::fmt::Debug for ParameterEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParameterEntry")
            .field("name", &self.name)
            .field("type", &self.kind)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    pub name: String,
    pub path: Option<String>,
    /// Inline policies by name (documents as JSON text or as structures).
    #[serde(default)]
    pub policies: BTreeMap<String, Value>,
    #[serde(default)]
    pub access_keys: Vec<AccessKeyEntry>,
    pub account: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKeyEntry {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for AccessKeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKeyEntry")
            .field("id", &self.id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

impl SeedFile {
    /// Reads a seed file: JSON when its name ends in `.json`, YAML otherwise.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading seed file {}", path.display()))?;
        let json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        Self::parse(&text, json).with_context(|| format!("in seed file {}", path.display()))
    }

    pub fn parse(text: &str, json: bool) -> anyhow::Result<Self> {
        Ok(if json {
            serde_json::from_str(text)?
        } else {
            serde_norway::from_str(text)?
        })
    }

    /// Refuses what `mode` does not allow: fixed key material outside dev mode.
    pub fn check(&self, mode: Mode) -> anyhow::Result<()> {
        for (i, key) in self.keys.iter().enumerate() {
            if key.material.is_some() && mode != Mode::Dev {
                bail!(
                    "keys[{i}].material: fixed key material is refused in strict mode (it is \
                     for test fixtures; a production key's material never leaves the server)"
                );
            }
        }
        Ok(())
    }
}

/// What applying a seed file did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub created: usize,
    pub existing: usize,
}

/// Creates what `seed` describes and does not exist yet.
pub async fn apply(
    state: &AppState,
    seed: &SeedFile,
    default_account: &str,
) -> anyhow::Result<Applied> {
    seed.check(state.mode)?;
    let mut applied = Applied::default();
    let place = |account: &Option<String>, region: &Option<String>| {
        Scope::new(
            account.as_deref().unwrap_or(default_account),
            region.as_deref().unwrap_or(DEFAULT_REGION),
        )
    };
    for (i, key) in seed.keys.iter().enumerate() {
        let scope = place(&key.account, &key.region);
        seed_key(state, &scope, key, &mut applied)
            .await
            .with_context(|| format!("keys[{i}]"))?;
    }
    for (i, user) in seed.users.iter().enumerate() {
        let scope = place(&user.account, &None);
        seed_user(state, &scope, user, &mut applied)
            .await
            .with_context(|| format!("users[{i}] ({})", user.name))?;
    }
    for (i, secret) in seed.secrets.iter().enumerate() {
        let scope = place(&secret.account, &secret.region);
        // As the SDKs do: a fresh idempotency token for the first version.
        let token = uuid::Uuid::new_v4().to_string();
        let mut input = json!({"Name": secret.name, "ClientRequestToken": token});
        let fields = [
            ("Description", secret.description.clone()),
            ("KmsKeyId", secret.kms_key_id.clone()),
            ("SecretString", secret.secret_string.clone()),
            ("SecretBinary", secret.secret_binary.clone()),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                input[name] = Value::String(value);
            }
        }
        if !secret.tags.is_empty() {
            input["Tags"] = tag_list(&secret.tags, "Key", "Value");
        }
        let result = call(state, &scope, "secretsmanager.CreateSecret", &input).await;
        count(result, "ResourceExistsException", &mut applied)
            .with_context(|| format!("secrets[{i}] ({})", secret.name))?;
    }
    for (i, param) in seed.parameters.iter().enumerate() {
        let scope = place(&param.account, &param.region);
        let mut input = json!({"Name": param.name, "Type": param.kind, "Value": param.value});
        let fields = [
            ("KeyId", param.key_id.clone()),
            ("Description", param.description.clone()),
            ("Tier", param.tier.clone()),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                input[name] = Value::String(value);
            }
        }
        let result = call(state, &scope, "AmazonSSM.PutParameter", &input).await;
        count(result, "ParameterAlreadyExists", &mut applied)
            .with_context(|| format!("parameters[{i}] ({})", param.name))?;
    }
    tracing::info!(
        created = applied.created,
        existing = applied.existing,
        "applied the seed file"
    );
    Ok(applied)
}

async fn seed_key(
    state: &AppState,
    scope: &Scope,
    key: &KeyEntry,
    applied: &mut Applied,
) -> anyhow::Result<()> {
    // A key without a fixed id is known by its first alias: if that exists, so does the key.
    if key.id.is_none()
        && let Some(alias) = key.aliases.first()
    {
        let found = call(
            state,
            scope,
            "TrentService.DescribeKey",
            &json!({"KeyId": alias}),
        )
        .await;
        if found.is_ok() {
            applied.existing += 1;
            return Ok(());
        }
    }
    let key_id = key
        .id
        .as_deref()
        .map(|id| uuid::Uuid::parse_str(id).context("id: not a key id (a UUID)"))
        .transpose()?;
    let material = key
        .material
        .as_deref()
        .map(|text| -> anyhow::Result<Zeroizing<[u8; 32]>> {
            let bytes = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .ok()
                    .filter(|b| b.len() == 32)
                    .context("material: must be 32 bytes, base64-encoded")?,
            );
            let mut fixed = Zeroizing::new([0u8; 32]);
            fixed.copy_from_slice(&bytes);
            Ok(fixed)
        })
        .transpose()?;
    let outcome = state
        .kms
        .seed_key(
            scope,
            SeedKey {
                key_id,
                material,
                description: key.description.clone().unwrap_or_default(),
            },
        )
        .await
        .map_err(|e| api(ApiError::from(e)))
        .context("creating the key")?;
    let key_id = match outcome {
        SeedKeyOutcome::Exists(_) => {
            applied.existing += 1;
            return Ok(());
        }
        SeedKeyOutcome::Created(id) => id,
    };
    applied.created += 1;
    if let Some(policy) = &key.policy {
        let input = json!({"KeyId": key_id, "PolicyName": "default", "Policy": document(policy)?});
        call(state, scope, "TrentService.PutKeyPolicy", &input)
            .await
            .map_err(api)
            .context("policy")?;
    }
    if !key.tags.is_empty() {
        let input = json!({"KeyId": key_id, "Tags": tag_list(&key.tags, "TagKey", "TagValue")});
        call(state, scope, "TrentService.TagResource", &input)
            .await
            .map_err(api)
            .context("tags")?;
    }
    for alias in &key.aliases {
        let input = json!({"AliasName": alias, "TargetKeyId": key_id});
        let result = call(state, scope, "TrentService.CreateAlias", &input).await;
        count(result, "AlreadyExistsException", applied).with_context(|| alias.clone())?;
    }
    Ok(())
}

async fn seed_user(
    state: &AppState,
    scope: &Scope,
    user: &UserEntry,
    applied: &mut Applied,
) -> anyhow::Result<()> {
    let mut params = vec![("UserName", user.name.clone())];
    if let Some(path) = &user.path {
        params.push(("Path", path.clone()));
    }
    let result = call_query(state, scope, "CreateUser", &params).await;
    count(result, "EntityAlreadyExists", applied)?;
    for (name, policy) in &user.policies {
        let params = [
            ("UserName", user.name.clone()),
            ("PolicyName", name.clone()),
            ("PolicyDocument", document(policy)?),
        ];
        call_query(state, scope, "PutUserPolicy", &params)
            .await
            .map_err(api)
            .with_context(|| format!("policy {name}"))?;
    }
    for key in &user.access_keys {
        let created = state
            .iam
            .seed_access_key(&scope.account, &user.name, &key.id, &key.secret)
            .await?;
        if created {
            applied.created += 1;
        } else {
            applied.existing += 1;
        }
    }
    Ok(())
}

/// Counts a creation, or an existing resource when the call failed with `exists`.
fn count(
    result: Result<Vec<u8>, ApiError>,
    exists: &str,
    applied: &mut Applied,
) -> anyhow::Result<()> {
    match result {
        Ok(_) => applied.created += 1,
        Err(e) if e.code() == exists || e.query_code() == exists => applied.existing += 1,
        Err(e) => return Err(api(e)),
    }
    Ok(())
}

fn api(e: ApiError) -> anyhow::Error {
    anyhow::anyhow!("{}: {}", e.code(), e.message().unwrap_or(""))
}

/// A policy document as JSON text.
fn document(policy: &Value) -> anyhow::Result<String> {
    Ok(match policy {
        Value::String(text) => text.clone(),
        other => serde_json::to_string(other)?,
    })
}

fn tag_list(tags: &BTreeMap<String, String>, key: &str, value: &str) -> Value {
    tags.iter()
        .map(|(k, v)| json!({key: k, value: v}))
        .collect()
}

/// Calls a JSON-protocol operation (`X-Amz-Target`) as the root of `scope`'s account.
async fn call(
    state: &AppState,
    scope: &Scope,
    target: &str,
    input: &Value,
) -> Result<Vec<u8>, ApiError> {
    let operation = route::resolve_target(target)?;
    let body = serde_json::to_vec(input).map_err(|_| ApiError::internal())?;
    let ctx = context(scope, operation);
    crate::http::call_in_process(state, &ctx, &body, None).await
}

/// Calls an IAM (awsQuery) action as the root of `scope`'s account.
async fn call_query(
    state: &AppState,
    scope: &Scope,
    action: &str,
    params: &[(&str, String)],
) -> Result<Vec<u8>, ApiError> {
    let body = {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("Action", action)
            .append_pair("Version", keyhold_proto::iam::API_VERSION);
        for (name, value) in params {
            form.append_pair(name, value);
        }
        form.finish()
    };
    let query = QueryParams::parse(body.as_bytes());
    let operation = route::resolve_action(query.action(), query.version(), Some("iam"))?;
    let ctx = context(scope, operation);
    crate::http::call_in_process(state, &ctx, body.as_bytes(), Some(&query)).await
}

fn context(scope: &Scope, operation: Operation) -> RequestContext {
    RequestContext::new(
        crate::context::new_request_id(),
        operation,
        Principal::root(scope, None),
        scope.clone(),
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        USER_AGENT.to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_and_json_parse_alike() {
        let yaml = "keys:\n  - id: 11111111-2222-3333-4444-555555555555\n    aliases: [alias/a]\n\
                    users:\n  - name: ci\n    access_keys: [{id: AKIAEXAMPLE000000001, secret: s}]\n";
        let json = r#"{"keys":[{"id":"11111111-2222-3333-4444-555555555555","aliases":["alias/a"]}],
                       "users":[{"name":"ci","access_keys":[{"id":"AKIAEXAMPLE000000001","secret":"s"}]}]}"#;
        let (a, b) = (
            SeedFile::parse(yaml, false).unwrap(),
            SeedFile::parse(json, true).unwrap(),
        );
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert!(!format!("{a:?}").contains("secret: \"s\""));
        assert!(SeedFile::parse("kyes: []", false).is_err());
    }

    #[test]
    fn material_is_refused_in_strict_mode() {
        let seed = SeedFile::parse("keys: [{material: AAAA}]", false).unwrap();
        seed.check(Mode::Dev).unwrap();
        let err = seed.check(Mode::Strict).unwrap_err().to_string();
        assert!(err.contains("refused in strict mode"), "{err}");
    }
}
