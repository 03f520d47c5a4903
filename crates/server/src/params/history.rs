//! GetParameterHistory: every kept version of a parameter (at most 100), oldest first.

use keyhold_proto::Timestamp;
use keyhold_proto::ssm::*;

use super::SsmService;
use super::error::SsmError;
use super::name::parse_reference;
use super::pagination::{List, page, version_key};
use super::policies;
use crate::context::RequestContext;

pub async fn get_parameter_history(
    svc: &SsmService,
    ctx: &RequestContext,
    input: GetParameterHistoryRequest,
) -> Result<GetParameterHistoryResult, SsmError> {
    let reference = parse_reference(&input.name, &ctx.scope)
        .ok()
        .filter(|r| r.selector.is_none())
        .ok_or(SsmError::NotFound)?;
    svc.authorize_key(ctx, &reference.key)?;
    let param = svc
        .find(&ctx.scope, &reference.key)
        .await?
        .ok_or(SsmError::NotFound)?;
    ctx.note_resource("AWS::SSM::Parameter", &param.arn);
    let decrypt = input.with_decryption.unwrap_or(false);
    let (versions, next_token) = page(
        List::History,
        param.versions.clone(),
        |v| version_key(v.number),
        input.next_token.as_deref(),
        input.max_results,
    )?;
    let mut parameters = Vec::with_capacity(versions.len());
    for v in versions {
        parameters.push(ParameterHistory {
            allowed_pattern: v.allowed_pattern.clone(),
            data_type: Some(v.data_type.clone()),
            description: v.description.clone(),
            key_id: v.key_id.clone(),
            labels: Some(v.labels.clone()),
            last_modified_date: Some(Timestamp::from_millis(v.modified_ms)),
            last_modified_user: Some(v.modified_user.clone()),
            name: Some(param.name.clone()),
            policies: Some(policies::to_wire(&v.policies)),
            tier: Some(v.tier),
            r#type: Some(v.kind),
            value: Some(svc.value_of(ctx, &param, &v, decrypt).await?),
            version: Some(v.number),
        });
    }
    Ok(GetParameterHistoryResult {
        next_token,
        parameters: Some(parameters),
    })
}
