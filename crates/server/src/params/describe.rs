//! DescribeParameters: the metadata (never the values) of the parameters of the caller's
//! account and region, filtered, in name order.

use keyhold_proto::Timestamp;
use keyhold_proto::ssm::*;

use super::SsmService;
use super::error::SsmError;
use super::filters::{Filters, Operation};
use super::pagination::{List, page};
use super::param::{Param, Version};
use super::policies;
use crate::context::RequestContext;

pub async fn describe_parameters(
    svc: &SsmService,
    ctx: &RequestContext,
    input: DescribeParametersRequest,
) -> Result<DescribeParametersResult, SsmError> {
    svc.authorize_resource(ctx, "*")?;
    let legacy = input.filters.filter(|f| !f.is_empty());
    let modern = input.parameter_filters.filter(|f| !f.is_empty());
    let filters = match (legacy, modern) {
        (Some(_), Some(_)) => return Err(SsmError::BothFilterKinds),
        (Some(legacy), None) => Filters::from_legacy(legacy)?,
        (None, modern) => Filters::parse(modern, Operation::Describe)?,
    };
    // Keyhold shares no parameters across accounts: the shared list is empty.
    let params = if input.shared == Some(true) {
        Vec::new()
    } else {
        svc.all(&ctx.scope).await?
    };
    let mut matching = Vec::new();
    for param in params {
        let current = param.current()?.clone();
        if filters.matches(&param, &current) {
            matching.push((param.key.clone(), metadata(&param, &current)));
        }
    }
    let (items, next_token) = page(
        List::Describe,
        matching,
        |(key, _)| key.clone(),
        input.next_token.as_deref(),
        input.max_results,
    )?;
    Ok(DescribeParametersResult {
        next_token,
        parameters: Some(items.into_iter().map(|(_, m)| m).collect()),
    })
}

fn metadata(param: &Param, version: &Version) -> ParameterMetadata {
    ParameterMetadata {
        arn: Some(param.arn.clone()),
        allowed_pattern: version.allowed_pattern.clone(),
        data_type: Some(version.data_type.clone()),
        description: version.description.clone(),
        key_id: version.key_id.clone(),
        last_modified_date: Some(Timestamp::from_millis(version.modified_ms)),
        last_modified_user: Some(version.modified_user.clone()),
        name: Some(param.name.clone()),
        policies: Some(policies::to_wire(&version.policies)),
        tier: Some(version.tier),
        r#type: Some(version.kind),
        version: Some(version.number),
    }
}
