//! AddTagsToResource, RemoveTagsFromResource, ListTagsForResource (resource type
//! `Parameter`; Keyhold holds no other SSM resource), and the tag rules PutParameter shares.

use std::sync::Arc;

use keyhold_proto::ssm::*;

use super::error::SsmError;
use super::name::parse_reference;
use super::param::Param;
use super::{Change, SsmService};
use crate::context::RequestContext;

/// A parameter can carry at most this many tags.
pub const MAX_TAGS: usize = 50;

pub async fn add_tags_to_resource(
    svc: &SsmService,
    ctx: &RequestContext,
    input: AddTagsToResourceRequest,
) -> Result<AddTagsToResourceResult, SsmError> {
    let _guard = svc.writes.lock().await;
    let param = resource(svc, ctx, input.resource_type, &input.resource_id).await?;
    let tags = merge(&param.tags, &input.tags)?;
    let new = Param {
        tags,
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
    Ok(AddTagsToResourceResult {})
}

pub async fn remove_tags_from_resource(
    svc: &SsmService,
    ctx: &RequestContext,
    input: RemoveTagsFromResourceRequest,
) -> Result<RemoveTagsFromResourceResult, SsmError> {
    let _guard = svc.writes.lock().await;
    let param = resource(svc, ctx, input.resource_type, &input.resource_id).await?;
    let tags: Vec<(String, String)> = param
        .tags
        .iter()
        .filter(|(k, _)| !input.tag_keys.contains(k))
        .cloned()
        .collect();
    if tags.len() != param.tags.len() {
        let new = Param {
            tags,
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
    Ok(RemoveTagsFromResourceResult {})
}

pub async fn list_tags_for_resource(
    svc: &SsmService,
    ctx: &RequestContext,
    input: ListTagsForResourceRequest,
) -> Result<ListTagsForResourceResult, SsmError> {
    let param = resource(svc, ctx, input.resource_type, &input.resource_id).await?;
    Ok(ListTagsForResourceResult {
        tag_list: Some(
            param
                .tags
                .iter()
                .map(|(key, value)| Tag {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
        ),
    })
}

/// The parameter a tagging call names (by name or ARN).
async fn resource(
    svc: &SsmService,
    ctx: &RequestContext,
    resource_type: ResourceTypeForTagging,
    resource_id: &str,
) -> Result<Arc<Param>, SsmError> {
    if resource_type != ResourceTypeForTagging::Parameter {
        return Err(SsmError::InvalidResourceId);
    }
    let reference = parse_reference(resource_id, &ctx.scope)
        .ok()
        .filter(|r| r.selector.is_none())
        .ok_or(SsmError::InvalidResourceId)?;
    svc.authorize_key(ctx, &reference.key)?;
    let param = svc
        .find(&ctx.scope, &reference.key)
        .await?
        .ok_or(SsmError::InvalidResourceId)?;
    ctx.note_resource("AWS::SSM::Parameter", &param.arn);
    Ok(param)
}

/// `existing` tags with `new` ones added or replacing those of the same key (the last of a
/// key in `new` wins), sorted by key; at most [`MAX_TAGS`].
pub fn merge(
    existing: &[(String, String)],
    new: &[Tag],
) -> Result<Vec<(String, String)>, SsmError> {
    let mut merged: Vec<(String, String)> = existing.to_vec();
    for tag in new {
        crate::tags::upsert(&mut merged, &tag.key, &tag.value);
    }
    if merged.len() > MAX_TAGS {
        return Err(SsmError::TooManyTags);
    }
    merged.sort();
    Ok(merged)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn tag(k: &str, v: &str) -> Tag {
        Tag {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn merging_replaces_and_limits() {
        let existing = vec![("b".to_owned(), "1".to_owned())];
        assert_eq!(
            merge(&existing, &[tag("a", "x"), tag("b", "2")]).unwrap(),
            vec![("a".into(), "x".into()), ("b".into(), "2".into())]
        );
        let many: Vec<Tag> = (0..51).map(|i| tag(&format!("k{i}"), "")).collect();
        assert_eq!(merge(&[], &many), Err(SsmError::TooManyTags));
        assert_eq!(merge(&[], &many[..50]).unwrap().len(), 50);
    }
}
