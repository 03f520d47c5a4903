//! DeleteParameter, DeleteParameters: a parameter goes with all its versions, labels and
//! tags, at once.

use std::sync::Arc;

use keyhold_proto::ssm::*;

use super::error::SsmError;
use super::name::parse_reference;
use super::param::Param;
use super::{Change, SsmService};
use crate::context::RequestContext;

pub async fn delete_parameter(
    svc: &SsmService,
    ctx: &RequestContext,
    input: DeleteParameterRequest,
) -> Result<DeleteParameterResult, SsmError> {
    let _guard = svc.writes.lock().await;
    let param = named(svc, ctx, &input.name)
        .await?
        .ok_or(SsmError::NotFound)?;
    ctx.note_resource("AWS::SSM::Parameter", &param.arn);
    svc.commit(&ctx.scope, vec![Change::Delete(param)]).await?;
    Ok(DeleteParameterResult {})
}

pub async fn delete_parameters(
    svc: &SsmService,
    ctx: &RequestContext,
    input: DeleteParametersRequest,
) -> Result<DeleteParametersResult, SsmError> {
    let _guard = svc.writes.lock().await;
    let mut deleted = Vec::new();
    let mut invalid = Vec::new();
    let mut changes = Vec::new();
    for name in input.names {
        if deleted.contains(&name) || invalid.contains(&name) {
            continue;
        }
        match named(svc, ctx, &name).await? {
            Some(param) if !changes.iter().any(|c| same(c, &param)) => {
                ctx.note_resource("AWS::SSM::Parameter", &param.arn);
                changes.push(Change::Delete(param));
                deleted.push(name);
            }
            Some(_) => deleted.push(name),
            None => invalid.push(name),
        }
    }
    if !changes.is_empty() {
        svc.commit(&ctx.scope, changes).await?;
    }
    Ok(DeleteParametersResult {
        deleted_parameters: Some(deleted),
        invalid_parameters: Some(invalid),
    })
}

/// The parameter a name designates, if any (a selector or a malformed name designates none).
async fn named(
    svc: &SsmService,
    ctx: &RequestContext,
    name: &str,
) -> Result<Option<Arc<Param>>, SsmError> {
    match parse_reference(name, &ctx.scope) {
        Ok(r) if r.selector.is_none() => {
            svc.authorize_key(ctx, &r.key)?;
            svc.find(&ctx.scope, &r.key).await
        }
        _ => Ok(None),
    }
}

fn same(change: &Change, param: &Param) -> bool {
    matches!(change, Change::Delete(p) if p.arn == param.arn)
}
