//! LabelParameterVersion, UnlabelParameterVersion.
//!
//! A label names one version of a parameter at a time: labelling a version moves the label
//! there. A version carries at most 10 labels. A label is 1–100 letters, digits, `.`, `-` or
//! `_`, and can't begin with a digit, `aws` or `ssm` (any case); labels that break these rules
//! are returned as `InvalidLabels` and not attached. Labels change no version number.

use std::sync::Arc;

use keyhold_proto::ssm::*;

use super::error::SsmError;
use super::name::parse_reference;
use super::param::{Param, Version};
use super::{Change, SsmService};
use crate::context::RequestContext;

/// A version carries at most this many labels.
const MAX_LABELS: usize = 10;

pub async fn label_parameter_version(
    svc: &SsmService,
    ctx: &RequestContext,
    input: LabelParameterVersionRequest,
) -> Result<LabelParameterVersionResult, SsmError> {
    // Labels are unique within a parameter: a label moved on another node meanwhile makes
    // the store refuse this write, and the move is decided again on what is stored then.
    crate::write_locks::retry_conflicts(|| label_once(svc, ctx, &input)).await
}

async fn label_once(
    svc: &SsmService,
    ctx: &RequestContext,
    input: &LabelParameterVersionRequest,
) -> Result<LabelParameterVersionResult, SsmError> {
    let _guard = svc.writes.lock().await;
    let param = named(svc, ctx, &input.name).await?;
    let target = match input.parameter_version {
        Some(number) => {
            param
                .version(number)
                .ok_or_else(|| SsmError::VersionNotFound {
                    name: param.name.clone(),
                    version: number,
                })?
                .number
        }
        None => param.current()?.number,
    };
    let (valid, invalid): (Vec<String>, Vec<String>) =
        input.labels.iter().cloned().partition(|l| is_valid(l));
    let mut attached = param
        .version(target)
        .map(|v| v.labels.clone())
        .unwrap_or_default();
    for label in &valid {
        if !attached.contains(label) {
            attached.push(label.clone());
        }
    }
    if attached.len() > MAX_LABELS {
        return Err(SsmError::LabelLimit);
    }
    let versions = relabel(&param, |v| {
        if v.number == target {
            attached.clone()
        } else {
            v.labels
                .iter()
                .filter(|l| !valid.contains(l))
                .cloned()
                .collect()
        }
    });
    save(svc, ctx, param, versions).await?;
    Ok(LabelParameterVersionResult {
        invalid_labels: Some(invalid),
        parameter_version: Some(target),
    })
}

pub async fn unlabel_parameter_version(
    svc: &SsmService,
    ctx: &RequestContext,
    input: UnlabelParameterVersionRequest,
) -> Result<UnlabelParameterVersionResult, SsmError> {
    let _guard = svc.writes.lock().await;
    let param = named(svc, ctx, &input.name).await?;
    let target = input.parameter_version;
    let version = param
        .version(target)
        .ok_or_else(|| SsmError::VersionNotFound {
            name: param.name.clone(),
            version: target,
        })?;
    let (removed, invalid): (Vec<String>, Vec<String>) = input
        .labels
        .into_iter()
        .partition(|l| version.labels.contains(l));
    let versions = relabel(&param, |v| {
        v.labels
            .iter()
            .filter(|l| v.number != target || !removed.contains(l))
            .cloned()
            .collect()
    });
    save(svc, ctx, param, versions).await?;
    Ok(UnlabelParameterVersionResult {
        invalid_labels: Some(invalid),
        removed_labels: Some(removed),
    })
}

/// Whether `label` may be attached (its length is checked by the model).
pub fn is_valid(label: &str) -> bool {
    let lower = label.to_ascii_lowercase();
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_');
    !label.is_empty()
        && label.bytes().all(allowed)
        && !label.starts_with(|c: char| c.is_ascii_digit())
        && !lower.starts_with("aws")
        && !lower.starts_with("ssm")
}

/// The parameter a label call names (a selector names none).
async fn named(svc: &SsmService, ctx: &RequestContext, name: &str) -> Result<Arc<Param>, SsmError> {
    let reference = parse_reference(name, &ctx.scope)
        .ok()
        .filter(|r| r.selector.is_none())
        .ok_or(SsmError::NotFound)?;
    svc.authorize_key(ctx, &reference.key)?;
    let param = svc
        .find(&ctx.scope, &reference.key)
        .await?
        .ok_or(SsmError::NotFound)?;
    ctx.note_resource("AWS::SSM::Parameter", &param.arn);
    Ok(param)
}

/// The versions of `param` with the labels `labels_of` gives them; versions whose labels do
/// not change stay shared (and are not written again).
fn relabel(param: &Param, labels_of: impl Fn(&Version) -> Vec<String>) -> Vec<Arc<Version>> {
    param
        .versions
        .iter()
        .map(|v| {
            let labels = labels_of(v);
            if labels == v.labels {
                v.clone()
            } else {
                Arc::new(Version {
                    labels,
                    ..(**v).clone()
                })
            }
        })
        .collect()
}

async fn save(
    svc: &SsmService,
    ctx: &RequestContext,
    param: Arc<Param>,
    versions: Vec<Arc<Version>>,
) -> Result<(), SsmError> {
    let changed = versions
        .iter()
        .zip(&param.versions)
        .any(|(new, old)| !Arc::ptr_eq(new, old));
    if changed {
        let new = Param {
            versions,
            ..(*param).clone()
        };
        svc.commit(
            &ctx.scope,
            vec![Change::Put {
                old: Some(param),
                new,
            }],
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_rules() {
        for ok in ["prod", "Release-1.2_x", "a"] {
            assert!(is_valid(ok), "{ok}");
        }
        for bad in [
            "1abc",
            "awsLabel",
            "AWS",
            "ssm-x",
            "SsmY",
            "has space",
            "a/b",
            "é",
            "",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
    }
}
