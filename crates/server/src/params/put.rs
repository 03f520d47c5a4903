//! PutParameter: create a parameter, or (with `Overwrite`) add a version to it.
//!
//! What an overwrite leaves out it inherits from the current version: type, description,
//! allowed pattern, KMS key, data type, tier and policies. Every put makes a new version; the
//! oldest of 100 goes, unless a label holds it (`ParameterMaxVersionLimitExceeded`).
//!
//! An `aws:ec2:image` value is validated as AWS does it, after the fact: the call succeeds
//! either way, and a value that is no AMI id makes no version (nor a new parameter); the
//! failure is recorded in the audit trail (`record_failed_image_validation`).

use std::sync::Arc;

use keyhold_proto::ssm::{ParameterTier, ParameterType, PutParameterRequest, PutParameterResult};

use super::error::SsmError;
use super::name::{self, key_of};
use super::param::{MAX_VERSIONS, Param, Stored, Version};
use super::policies::{self, Policy};
use super::tags;
use super::value::DEFAULT_KEY;
use super::{Change, SsmService};
use crate::audit::ServiceEvent;
use crate::context::RequestContext;
use crate::write_locks::WriteGuard;

/// Largest value of a standard parameter, and of an advanced one (characters).
const STANDARD_MAX_CHARS: usize = 4096;
const ADVANCED_MAX_CHARS: usize = 8192;
/// Parameters per account and region, by tier.
const STANDARD_LIMIT: usize = 10_000;
const ADVANCED_LIMIT: usize = 100_000;
/// The data types Parameter Store accepts.
const DATA_TYPES: &[&str] = &["text", IMAGE_DATA_TYPE, "aws:ssm:integration"];
const IMAGE_DATA_TYPE: &str = "aws:ec2:image";
/// The audit trail's name for a failed validation of an `aws:ec2:image` value, and the
/// reason it gives (the `exception` of AWS's EventBridge event).
pub const IMAGE_VALIDATION_EVENT: &str = "ParameterDataTypeValidation";
const IMAGE_VALIDATION_FAILURE: &str = "Unable to Describe Resource";

pub async fn put_parameter(
    svc: &SsmService,
    ctx: &RequestContext,
    input: PutParameterRequest,
) -> Result<PutParameterResult, SsmError> {
    // Another node may add a version between this node's read and its write: the store
    // refuses the write, and the version is numbered again on what is stored then.
    crate::write_locks::retry_conflicts(|| put_once(svc, ctx, &input)).await
}

async fn put_once(
    svc: &SsmService,
    ctx: &RequestContext,
    input: &PutParameterRequest,
) -> Result<PutParameterResult, SsmError> {
    let name = name::validate_new(&input.name, &ctx.scope)?;
    let overwrite = input.overwrite.unwrap_or(false);
    svc.authorize_with(
        ctx,
        &name::arn_of(&ctx.scope, key_of(&name)),
        &[("ssm:overwrite", overwrite.to_string())],
    )?;
    let value = input.value.expose_secret();
    if value.is_empty() {
        return Err(SsmError::EmptyValue);
    }
    let new_tags = input.tags.clone().unwrap_or_default();
    if overwrite && !new_tags.is_empty() {
        return Err(SsmError::TagsWithOverwrite);
    }
    // Tags given with a new parameter follow the rules of AddTagsToResource.
    let new_tags = tags::merge(&[], &new_tags)?;

    let key = key_of(&name);
    let _guard = lock_for_put(svc, ctx, key, input.tier.as_ref()).await?;
    let existing = svc.find(&ctx.scope, key).await?;
    if existing.is_some() && !overwrite {
        return Err(SsmError::AlreadyExists);
    }
    let current = existing.as_ref().map(|p| p.current()).transpose()?;

    let kind = input
        .r#type
        .or(current.map(|c| c.kind))
        .ok_or(SsmError::TypeRequired)?;
    if input.key_id.is_some() && kind != ParameterType::SecureString {
        return Err(SsmError::KeyIdOnlyForSecureString);
    }
    let data_type = non_empty(input.data_type.clone())
        .or_else(|| current.map(|c| c.data_type.clone()))
        .unwrap_or_else(|| "text".to_owned());
    check_data_type(&data_type, kind)?;
    let allowed_pattern = match &input.allowed_pattern {
        Some(p) => non_empty(Some(p.clone())),
        None => current.and_then(|c| c.allowed_pattern.clone()),
    };
    if let Some(pattern) = &allowed_pattern {
        check_pattern(pattern, kind, value)?;
    }
    let policies: Vec<Policy> = match &input.policies {
        Some(document) => policies::parse(document, svc.now_ms())?,
        None => current.map(|c| c.policies.clone()).unwrap_or_default(),
    };

    let counts = svc.tier_counts(&ctx.scope).await?;
    let current_tier = current.map(|c| c.tier);
    let tier = resolve_tier(
        input.tier,
        current_tier,
        value.chars().count(),
        !policies.is_empty(),
        existing.is_none() && counts.standard >= STANDARD_LIMIT,
    )?;
    match tier {
        ParameterTier::Standard if existing.is_none() && counts.standard >= STANDARD_LIMIT => {
            return Err(SsmError::StandardParameterLimit);
        }
        ParameterTier::Advanced
            if current_tier != Some(ParameterTier::Advanced)
                && counts.advanced >= ADVANCED_LIMIT =>
        {
            return Err(SsmError::AdvancedParameterLimit);
        }
        _ => {}
    }

    let mut versions: Vec<Arc<Version>> = existing
        .as_ref()
        .map(|p| p.versions.clone())
        .unwrap_or_default();
    if versions.len() >= MAX_VERSIONS {
        let oldest = versions.first().ok_or(SsmError::Internal)?;
        if !oldest.labels.is_empty() {
            return Err(SsmError::MaxVersions {
                name: name.clone(),
                oldest: oldest.number,
            });
        }
        versions.remove(0);
    }
    let number = current.map_or(1, |c| c.number + 1);
    let arn = existing
        .as_ref()
        .map_or_else(|| name::arn_of(&ctx.scope, key), |p| p.arn.clone());
    if data_type == IMAGE_DATA_TYPE && !is_image_id(value) {
        // AWS validates an AMI id after answering: the call succeeds with the version it
        // would have made, and a failed validation leaves the parameter as it was.
        record_failed_image_validation(svc, ctx, &arn, &name, number, existing.is_none());
        ctx.note_resource("AWS::SSM::Parameter", &arn);
        return Ok(PutParameterResult {
            tier: Some(tier),
            version: Some(number),
        });
    }
    let key_id = (kind == ParameterType::SecureString).then(|| {
        input
            .key_id
            .clone()
            .or_else(|| {
                current
                    .filter(|c| c.kind == ParameterType::SecureString)
                    .and_then(|c| c.key_id.clone())
            })
            .unwrap_or_else(|| DEFAULT_KEY.to_owned())
    });
    let stored = match &key_id {
        Some(key_id) => Stored::Sealed(svc.seal_value(ctx, key_id, &arn, number, value).await?),
        None => Stored::Text(value.to_owned()),
    };
    let now = svc.now_ms();
    versions.push(Arc::new(Version {
        number,
        kind,
        value: stored,
        description: input
            .description
            .clone()
            .or_else(|| current.and_then(|c| c.description.clone())),
        allowed_pattern,
        key_id,
        data_type,
        tier,
        policies,
        labels: Vec::new(),
        modified_ms: now,
        modified_user: ctx.caller.arn.clone(),
    }));
    let new = Param {
        arn: arn.clone(),
        name: existing.as_ref().map_or(name.clone(), |p| p.name.clone()),
        key: key.to_owned(),
        created_ms: existing.as_ref().map_or(now, |p| p.created_ms),
        tags: existing.as_ref().map_or(new_tags, |p| p.tags.clone()),
        versions,
        revision: existing.as_ref().map_or(0, |p| p.revision),
    };
    svc.commit(&ctx.scope, vec![Change::Put { old: existing, new }])
        .await?;
    ctx.note_resource("AWS::SSM::Parameter", &arn);
    Ok(PutParameterResult {
        tier: Some(tier),
        version: Some(number),
    })
}

/// The tier a put lands in. Without `Tier`, a parameter keeps its tier (a new one is
/// standard); `Intelligent-Tiering` picks advanced when the value, the policies or the
/// standard-parameter limit need it, or when the parameter already is advanced.
/// The write lock a PutParameter needs: only the parameter's own when it exists and keeps
/// its tier (so that no tier count can change), the whole service's otherwise — a new
/// parameter or a tier change is checked against the counts of every parameter.
async fn lock_for_put<'a>(
    svc: &'a SsmService,
    ctx: &RequestContext,
    key: &str,
    requested: Option<&ParameterTier>,
) -> Result<WriteGuard<'a>, SsmError> {
    let keeps_tier = |param: &Param| {
        param.current().is_ok_and(|current| {
            current.tier == ParameterTier::Advanced
                || matches!(requested, None | Some(ParameterTier::Standard))
        })
    };
    if svc
        .find(&ctx.scope, key)
        .await?
        .is_some_and(|p| keeps_tier(&p))
    {
        let guard = svc
            .writes
            .lock_resource(&super::resource_of(&ctx.scope, key))
            .await;
        // Deletions lock the whole service, so the parameter found now stays.
        if svc
            .find(&ctx.scope, key)
            .await?
            .is_some_and(|p| keeps_tier(&p))
        {
            return Ok(guard);
        }
    }
    Ok(svc.writes.lock().await)
}

fn resolve_tier(
    requested: Option<ParameterTier>,
    current: Option<ParameterTier>,
    value_chars: usize,
    has_policies: bool,
    standard_full: bool,
) -> Result<ParameterTier, SsmError> {
    let tier = match requested {
        None => current.unwrap_or(ParameterTier::Standard),
        Some(ParameterTier::IntelligentTiering) => {
            let needs_advanced = current == Some(ParameterTier::Advanced)
                || value_chars > STANDARD_MAX_CHARS
                || has_policies
                || standard_full;
            if needs_advanced {
                ParameterTier::Advanced
            } else {
                ParameterTier::Standard
            }
        }
        Some(tier) => tier,
    };
    if tier == ParameterTier::Standard {
        if current == Some(ParameterTier::Advanced) {
            return Err(SsmError::TierDowngrade);
        }
        if value_chars > STANDARD_MAX_CHARS {
            return Err(SsmError::StandardValueTooLong);
        }
        if has_policies {
            return Err(SsmError::PoliciesNeedAdvancedTier);
        }
    }
    if value_chars > ADVANCED_MAX_CHARS {
        return Err(SsmError::AdvancedValueTooLong);
    }
    Ok(tier)
}

/// The data type must be known; `aws:ec2:image` is for `String` parameters. (The value of
/// an `aws:ec2:image` parameter is validated after the call is answered, as AWS does it.)
fn check_data_type(data_type: &str, kind: ParameterType) -> Result<(), SsmError> {
    if !DATA_TYPES.contains(&data_type) {
        return Err(SsmError::UnsupportedDataType {
            data_type: data_type.to_owned(),
        });
    }
    if data_type == IMAGE_DATA_TYPE && kind != ParameterType::String {
        return Err(SsmError::ImageDataTypeNeedsString);
    }
    Ok(())
}

/// Records, in the audit trail, that the AMI id of a put did not validate and the version
/// `number` was not made (a new parameter was not created). AWS sends this as an EventBridge
/// "Parameter Store Change" event whose `exception` says why; Keyhold has no EventBridge,
/// so it is a service event in the trail, with that event's fields in
/// `serviceEventDetails`. It is handed to the trail with the request's receipts, so it is
/// durable before the PutParameter response is sent.
fn record_failed_image_validation(
    svc: &SsmService,
    ctx: &RequestContext,
    arn: &str,
    name: &str,
    number: i64,
    create: bool,
) {
    svc.audit.record_service_event(ServiceEvent {
        source: "ssm.amazonaws.com",
        invoked_by: "ssm.amazonaws.com",
        name: IMAGE_VALIDATION_EVENT,
        account: &ctx.scope.account,
        region: &ctx.scope.region,
        resources: vec![("AWS::SSM::Parameter", arn.to_owned())],
        details: serde_json::json!({
            "operation": if create { "Create" } else { "Update" },
            "name": name,
            "type": "String",
            "dataType": IMAGE_DATA_TYPE,
            "version": number,
            "status": "Failed",
            "exception": IMAGE_VALIDATION_FAILURE,
        }),
        receipts: Some(ctx.receipts()),
    });
}

/// `ami-` and 8 or 17 lowercase hexadecimal digits.
fn is_image_id(value: &str) -> bool {
    value.strip_prefix("ami-").is_some_and(|hex| {
        matches!(hex.len(), 8 | 17) && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// The whole value must match the pattern; each item of a `StringList` must.
fn check_pattern(pattern: &str, kind: ParameterType, value: &str) -> Result<(), SsmError> {
    let regex = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|_| {
        SsmError::InvalidAllowedPattern {
            pattern: pattern.to_owned(),
        }
    })?;
    let matches = match kind {
        ParameterType::StringList => list_items(value).into_iter().all(|i| regex.is_match(i)),
        _ => regex.is_match(value),
    };
    if matches {
        Ok(())
    } else {
        Err(SsmError::PatternMismatch {
            pattern: pattern.to_owned(),
        })
    }
}

/// The items of a `StringList` as Parameter Store splits it: at every comma, dropping
/// trailing empty items (so `a,b,` is `a` and `b`, while `a,,b` has an empty item).
fn list_items(value: &str) -> Vec<&str> {
    let mut items: Vec<&str> = value.split(',').collect();
    while items.last().is_some_and(|i| i.is_empty()) {
        items.pop();
    }
    items
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    use ParameterTier::{Advanced, IntelligentTiering, Standard};

    #[test]
    fn tiers() {
        assert_eq!(resolve_tier(None, None, 10, false, false), Ok(Standard));
        assert_eq!(
            resolve_tier(None, Some(Advanced), 10, false, false),
            Ok(Advanced)
        );
        assert_eq!(
            resolve_tier(Some(IntelligentTiering), None, 4096, false, false),
            Ok(Standard)
        );
        assert_eq!(
            resolve_tier(Some(IntelligentTiering), None, 4097, false, false),
            Ok(Advanced)
        );
        assert_eq!(
            resolve_tier(Some(IntelligentTiering), None, 5, true, false),
            Ok(Advanced)
        );
        assert_eq!(
            resolve_tier(Some(IntelligentTiering), None, 5, false, true),
            Ok(Advanced)
        );
        assert_eq!(
            resolve_tier(Some(IntelligentTiering), Some(Advanced), 5, false, false),
            Ok(Advanced)
        );
        assert_eq!(
            resolve_tier(Some(Standard), Some(Advanced), 5, false, false),
            Err(SsmError::TierDowngrade)
        );
        assert_eq!(
            resolve_tier(None, None, 4097, false, false),
            Err(SsmError::StandardValueTooLong)
        );
        assert_eq!(
            resolve_tier(Some(Standard), None, 5, true, false),
            Err(SsmError::PoliciesNeedAdvancedTier)
        );
        assert_eq!(
            resolve_tier(Some(Advanced), None, 8193, false, false),
            Err(SsmError::AdvancedValueTooLong)
        );
    }

    #[test]
    fn string_list_items_split_as_aws_does() {
        assert_eq!(list_items("a,b,c,"), ["a", "b", "c"]);
        assert_eq!(list_items("a,,b"), ["a", "", "b"]);
        assert!(check_pattern("[a-z]{1}", ParameterType::StringList, "a,b,c,").is_ok());
        assert!(check_pattern("[a-z]{1}", ParameterType::StringList, "aaa,b").is_err());
        assert!(check_pattern("[a-z]*", ParameterType::String, "abcdef").is_ok());
        assert_eq!(
            check_pattern("[a-z]*", ParameterType::String, "ABCDEF"),
            Err(SsmError::PatternMismatch {
                pattern: "[a-z]*".into()
            })
        );
        assert!(matches!(
            check_pattern("(", ParameterType::String, "x"),
            Err(SsmError::InvalidAllowedPattern { .. })
        ));
    }

    #[test]
    fn data_types() {
        let string = ParameterType::String;
        assert!(check_data_type("text", string).is_ok());
        assert!(check_data_type("aws:ec2:image", string).is_ok());
        assert_eq!(
            check_data_type("aws:ec2:image", ParameterType::SecureString),
            Err(SsmError::ImageDataTypeNeedsString)
        );
        assert!(matches!(
            check_data_type("Text", string),
            Err(SsmError::UnsupportedDataType { .. })
        ));
    }

    #[test]
    fn image_ids() {
        assert!(is_image_id("ami-12345678"));
        assert!(is_image_id("ami-0123456789abcdef0"));
        for bad in [
            "ami-xyz",
            "ami-1234567",
            "ami-ABCDEF12",
            "12345678",
            "ami-",
            "ami-123456789",
        ] {
            assert!(!is_image_id(bad), "{bad}");
        }
    }
}
