//! GetParameter, GetParameters, GetParametersByPath.
//!
//! Reads touch no storage: parameters come from the scope's cache, and a SecureString read
//! with `WithDecryption` asks KMS (itself cached) to decrypt its data key as the caller.
//! Without `WithDecryption` a SecureString's value is its ciphertext, base64-encoded.

use std::sync::Arc;

use keyhold_proto::Timestamp;
use keyhold_proto::ssm::*;

use super::SsmService;
use super::error::SsmError;
use super::filters::{Filters, Operation};
use super::name::{self, Path, Reference, SECRETS_PREFIX, Selector};
use super::pagination::{List, page};
use super::param::{Param, Stored, Version};
use super::reference;
use super::value::ciphertext_base64;
use crate::context::RequestContext;

pub async fn get_parameter(
    svc: &SsmService,
    ctx: &RequestContext,
    input: GetParameterRequest,
) -> Result<GetParameterResult, SsmError> {
    let decrypt = input.with_decryption.unwrap_or(false);
    if input.name.starts_with(SECRETS_PREFIX) {
        let parameter = reference::get(svc, ctx, &input.name, decrypt).await?;
        return Ok(GetParameterResult {
            parameter: Some(parameter),
        });
    }
    let reference = name::parse_reference(&input.name, &ctx.scope)?;
    svc.authorize_key(ctx, &reference.key)?;
    let (param, version) = resolve(svc, ctx, &reference).await?;
    let parameter = svc
        .to_parameter(ctx, &param, &version, reference.selector.as_ref(), decrypt)
        .await?;
    Ok(GetParameterResult {
        parameter: Some(parameter),
    })
}

pub async fn get_parameters(
    svc: &SsmService,
    ctx: &RequestContext,
    input: GetParametersRequest,
) -> Result<GetParametersResult, SsmError> {
    let decrypt = input.with_decryption.unwrap_or(false);
    let mut parameters = Vec::new();
    let mut invalid: Vec<String> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for requested in input.names {
        if seen.contains(&requested) {
            continue;
        }
        seen.push(requested.clone());
        if requested.starts_with(SECRETS_PREFIX) {
            match reference::get(svc, ctx, &requested, decrypt).await {
                Ok(p) => parameters.push(p),
                Err(e) if reference::is_unanswerable(&e) => invalid.push(requested),
                Err(e) => return Err(e),
            }
            continue;
        }
        let found = match name::parse_reference(&requested, &ctx.scope) {
            Ok(r) => {
                svc.authorize_key(ctx, &r.key)?;
                resolve(svc, ctx, &r).await.map(|(p, v)| (r, p, v))
            }
            Err(e) => Err(e),
        };
        match found {
            Ok((r, param, version)) => parameters.push(
                svc.to_parameter(ctx, &param, &version, r.selector.as_ref(), decrypt)
                    .await?,
            ),
            Err(e) if is_missing(&e) => invalid.push(requested),
            Err(e) => return Err(e),
        }
    }
    Ok(GetParametersResult {
        invalid_parameters: Some(invalid),
        parameters: Some(parameters),
    })
}

pub async fn get_parameters_by_path(
    svc: &SsmService,
    ctx: &RequestContext,
    input: GetParametersByPathRequest,
) -> Result<GetParametersByPathResult, SsmError> {
    let path = Path::parse(&input.path)?;
    let recursive = input.recursive.unwrap_or(false);
    svc.authorize_with(
        ctx,
        &name::arn_of(&ctx.scope, name::key_of(&input.path)),
        &[("ssm:recursive", recursive.to_string())],
    )?;
    let filters = Filters::parse(input.parameter_filters, Operation::ByPath)?;
    let decrypt = input.with_decryption.unwrap_or(false);
    let mut matching = Vec::new();
    for param in svc.all(&ctx.scope).await? {
        if !path.contains(&param.key, recursive) {
            continue;
        }
        // With a Label filter, the version carrying the label is the one returned.
        let version = match filters.labels() {
            Some(labels) => match labels.iter().find_map(|l| param.labelled(l)) {
                Some(v) => v.clone(),
                None => continue,
            },
            None => param.current()?.clone(),
        };
        if filters.matches(&param, &version) {
            matching.push((param, version));
        }
    }
    let (items, next_token) = page(
        List::ByPath,
        matching,
        |(p, _)| p.key.clone(),
        input.next_token.as_deref(),
        input.max_results,
    )?;
    let mut parameters = Vec::with_capacity(items.len());
    for (param, version) in items {
        parameters.push(
            svc.to_parameter(ctx, &param, &version, None, decrypt)
                .await?,
        );
    }
    Ok(GetParametersByPathResult {
        next_token,
        parameters: Some(parameters),
    })
}

/// The parameter and version a reference selects.
pub async fn resolve(
    svc: &SsmService,
    ctx: &RequestContext,
    reference: &Reference,
) -> Result<(Arc<Param>, Arc<Version>), SsmError> {
    let param = svc
        .find(&ctx.scope, &reference.key)
        .await?
        .ok_or(SsmError::NotFound)?;
    let version = match &reference.selector {
        None => param.current()?.clone(),
        Some(Selector::Version(number)) => param
            .version(*number)
            .ok_or_else(|| SsmError::VersionNotFound {
                name: param.name.clone(),
                version: *number,
            })?
            .clone(),
        Some(Selector::Label(label)) => param
            .labelled(label)
            .ok_or_else(|| SsmError::LabelNotFound {
                name: param.name.clone(),
                label: label.clone(),
            })?
            .clone(),
    };
    Ok((param, version))
}

/// A lookup that found nothing: GetParameters lists it as invalid rather than failing.
fn is_missing(e: &SsmError) -> bool {
    matches!(
        e,
        SsmError::NotFound
            | SsmError::VersionNotFound { .. }
            | SsmError::LabelNotFound { .. }
            | SsmError::InvalidName
            | SsmError::SelectorSyntax
    )
}

impl SsmService {
    /// A version as GetParameter answers it.
    pub(super) async fn to_parameter(
        &self,
        ctx: &RequestContext,
        param: &Param,
        version: &Version,
        selector: Option<&Selector>,
        decrypt: bool,
    ) -> Result<Parameter, SsmError> {
        ctx.note_resource("AWS::SSM::Parameter", &param.arn);
        Ok(Parameter {
            arn: Some(param.arn.clone()),
            data_type: Some(version.data_type.clone()),
            last_modified_date: Some(Timestamp::from_millis(version.modified_ms)),
            name: Some(param.name.clone()),
            selector: selector.map(Selector::display),
            source_result: None,
            r#type: Some(version.kind),
            value: Some(self.value_of(ctx, param, version, decrypt).await?),
            version: Some(version.number),
        })
    }

    /// A version's value: its text, or a SecureString's plaintext (with decryption) or
    /// ciphertext (without).
    pub(super) async fn value_of(
        &self,
        ctx: &RequestContext,
        param: &Param,
        version: &Version,
        decrypt: bool,
    ) -> Result<keyhold_proto::SensitiveString, SsmError> {
        match &version.value {
            Stored::Text(text) => Ok(keyhold_proto::SensitiveString::new(text.clone())),
            Stored::Sealed(sealed) if decrypt => {
                self.open_value(ctx, &param.arn, version.number, sealed)
                    .await
            }
            Stored::Sealed(sealed) => Ok(ciphertext_base64(sealed)),
        }
    }
}
