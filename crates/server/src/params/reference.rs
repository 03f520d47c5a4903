//! `/aws/reference/secretsmanager/SECRET[:SELECTOR]`: a Secrets Manager secret read through
//! GetParameter and GetParameters, as AWS serves it.
//!
//! Parameter Store is a pass-through here: it keeps nothing about the secret. The read is a
//! Secrets Manager `GetSecretValue` made on the caller's behalf (so the caller needs
//! `secretsmanager:GetSecretValue`, and `kms:Decrypt` on the secret's key), audited as its own
//! Secrets Manager event, and it needs `WithDecryption`. A selector picks a version by id
//! (32–64 letters, digits and hyphens, as version ids are) or else by staging label.
//!
//! The answer: `Type` `SecureString`, `Value` the `SecretString` (a binary secret has no
//! value), `Version` 0, `ARN` the secret's, `LastModifiedDate` the version's creation date,
//! and `SourceResult` the Secrets Manager answer as JSON.

use keyhold_proto::ApiError;
use keyhold_proto::route::Operation;
use keyhold_proto::secretsmanager::{
    GetSecretValueRequest, GetSecretValueResponse, SecretsManagerApi, SecretsManagerOperation,
};
use keyhold_proto::ssm::{Parameter, ParameterType};

use super::SsmService;
use super::error::SsmError;
use super::name::SECRETS_PREFIX;
use crate::audit::AuditEvent;
use crate::context::RequestContext;

/// Reads the secret a reference names.
pub async fn get(
    svc: &SsmService,
    ctx: &RequestContext,
    name: &str,
    decrypt: bool,
) -> Result<Parameter, SsmError> {
    let rest = name
        .strip_prefix(SECRETS_PREFIX)
        .ok_or(SsmError::NotFound)?;
    let (secret_id, selector) = match rest.split(':').collect::<Vec<_>>()[..] {
        [id] if !id.is_empty() => (id, None),
        [id, selector] if !id.is_empty() && !selector.is_empty() => (id, Some(selector)),
        _ => return Err(SsmError::SelectorSyntax),
    };
    // `ssm:GetParameter(s)` on the reference's own name first, as on AWS; then Secrets
    // Manager decides `secretsmanager:GetSecretValue`. (Regression: found by the
    // every-operation authorization check, references skipped the Parameter Store half.)
    let key = super::name::key_of(name.split(':').next().unwrap_or(name));
    svc.authorize_key(ctx, key)?;
    if !decrypt {
        return Err(SsmError::ReferenceNeedsDecryption);
    }
    let (version_id, version_stage) = match selector {
        Some(s) if is_version_id(s) => (Some(s.to_owned()), None),
        Some(s) => (None, Some(s.to_owned())),
        None => (None, None),
    };
    let request = GetSecretValueRequest {
        secret_id: secret_id.to_owned(),
        version_id,
        version_stage,
    };
    let inner = ctx.on_behalf(
        Operation::SecretsManager(SecretsManagerOperation::GetSecretValue),
        "ssm",
    );
    inner.note_request(&request);
    let result = SecretsManagerApi::get_secret_value(&*svc.secrets, &inner, request).await;
    svc.audit.record(AuditEvent {
        ctx: &inner,
        notes: inner.take_notes(),
        error: result.as_ref().err(),
    });
    let secret = result.map_err(|e| upstream(e, name, selector))?;
    let base = name.split(':').next().unwrap_or(name);
    Ok(Parameter {
        arn: secret.arn.clone(),
        data_type: None,
        last_modified_date: secret.created_date,
        name: Some(base.to_owned()),
        selector: selector.map(|s| format!(":{s}")),
        source_result: Some(source_result(&secret)),
        r#type: Some(ParameterType::SecureString),
        value: secret.secret_string,
        version: Some(0),
    })
}

/// The failures GetParameters reports as `InvalidParameters` rather than failing the call.
pub fn is_unanswerable(e: &SsmError) -> bool {
    matches!(
        e,
        SsmError::ReferenceNeedsDecryption
            | SsmError::ReferenceNotFound { .. }
            | SsmError::ReferenceInvalidRequest
            | SsmError::SelectorSyntax
            | SsmError::NotFound
    )
}

/// A version id, as opposed to a staging label.
fn is_version_id(selector: &str) -> bool {
    (32..=64).contains(&selector.len())
        && selector
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn upstream(e: ApiError, name: &str, selector: Option<&str>) -> SsmError {
    match e.code() {
        "ResourceNotFoundException" => SsmError::ReferenceNotFound {
            reference: format!(
                "{}{}",
                name.split(':')
                    .next()
                    .unwrap_or(name)
                    .trim_start_matches('/'),
                selector.map_or_else(|| "null".to_owned(), |s| format!(":{s}"))
            ),
        },
        "InvalidRequestException" => SsmError::ReferenceInvalidRequest,
        _ => SsmError::SecretsManager(e),
    }
}

/// The Secrets Manager answer as Parameter Store passes it on (`SourceResult`).
fn source_result(secret: &GetSecretValueResponse) -> String {
    let json = |v: &str| serde_json::to_string(v).unwrap_or_else(|_| "\"\"".to_owned());
    let mut fields = Vec::new();
    if let Some(arn) = &secret.arn {
        fields.push(format!("\"ARN\":{}", json(arn)));
    }
    if let Some(name) = &secret.name {
        fields.push(format!("\"name\":{}", json(name)));
    }
    if let Some(id) = &secret.version_id {
        fields.push(format!("\"versionId\":{}", json(id)));
    }
    if let Some(s) = &secret.secret_string {
        fields.push(format!("\"secretString\":{}", json(s.expose_secret())));
    }
    if let Some(b) = &secret.secret_binary {
        fields.push(format!("\"secretBinary\":{}", json(&b.to_base64())));
    }
    if let Some(stages) = &secret.version_stages {
        let stages: Vec<String> = stages.iter().map(|s| json(s)).collect();
        fields.push(format!("\"versionStages\":[{}]", stages.join(",")));
    }
    if let Some(created) = secret.created_date {
        fields.push(format!("\"createdDate\":{}", json(&created.to_iso8601())));
    }
    format!("{{{}}}", fields.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ids_and_labels() {
        assert!(is_version_id("EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE"));
        assert!(!is_version_id("AWSPREVIOUS"));
        assert!(!is_version_id(&"x".repeat(65)));
    }

    #[test]
    fn missing_secret_message_names_the_reference() {
        let e = upstream(
            ApiError::bare(
                keyhold_proto::secretsmanager::SecretsManagerErrorCode::ResourceNotFoundException,
            ),
            "/aws/reference/secretsmanager/app",
            None,
        );
        assert_eq!(
            e,
            SsmError::ReferenceNotFound {
                reference: "aws/reference/secretsmanager/appnull".into()
            }
        );
    }
}
