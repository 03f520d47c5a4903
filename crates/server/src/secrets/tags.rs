//! TagResource, UntagResource, and the tag rules CreateSecret shares: at most 50 tags, no
//! key twice in one request, no `aws:` prefix. Tags keep the order they were added in.

use keyhold_proto::secretsmanager::*;

use super::SecretsService;
use super::error::SecretsError;
use crate::context::RequestContext;

/// A secret can carry at most this many tags.
const MAX_TAGS: usize = 50;

pub async fn tag_resource(
    service: &SecretsService,
    ctx: &RequestContext,
    input: TagResourceRequest,
) -> Result<(), SecretsError> {
    let new = checked_tags(&input.tags)?;
    let _guard = service.writes.lock().await;
    let secret = service.resolve_writable(ctx, &input.secret_id).await?;
    let mut next = (*secret).clone();
    let merged = merge(next.meta.tags.as_deref().unwrap_or_default(), &new)?;
    next.meta.tags = Some(merged);
    next.meta.last_changed_ms = service.now_ms();
    service.save(ctx, secret, next).await?;
    Ok(())
}

pub async fn untag_resource(
    service: &SecretsService,
    ctx: &RequestContext,
    input: UntagResourceRequest,
) -> Result<(), SecretsError> {
    let _guard = service.writes.lock().await;
    let secret = service.resolve_writable(ctx, &input.secret_id).await?;
    let mut next = (*secret).clone();
    if let Some(tags) = next.meta.tags.as_mut() {
        tags.retain(|(k, _)| !input.tag_keys.contains(k));
    }
    next.meta.last_changed_ms = service.now_ms();
    service.save(ctx, secret, next).await?;
    Ok(())
}

/// The tags of a request as pairs, checked: a key each, no duplicate, none reserved.
pub fn checked_tags(tags: &[Tag]) -> Result<Vec<(String, String)>, SecretsError> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(tags.len());
    for tag in tags {
        let key = tag.key.clone().ok_or(SecretsError::InvalidTag)?;
        if out.iter().any(|(k, _)| *k == key) {
            return Err(SecretsError::DuplicateTagKeys);
        }
        if crate::tags::is_reserved(&key) {
            return Err(SecretsError::ReservedTagKey);
        }
        out.push((key, tag.value.clone().unwrap_or_default()));
    }
    if out.len() > MAX_TAGS {
        return Err(SecretsError::TooManyTags);
    }
    Ok(out)
}

/// `existing` with `new` added (a key already present keeps its place, with the new value).
pub fn merge(
    existing: &[(String, String)],
    new: &[(String, String)],
) -> Result<Vec<(String, String)>, SecretsError> {
    let mut merged = existing.to_vec();
    for (key, value) in new {
        crate::tags::upsert(&mut merged, key, value);
    }
    if merged.len() > MAX_TAGS {
        return Err(SecretsError::TooManyTags);
    }
    Ok(merged)
}

/// Pairs as the wire's `Tag` list.
pub fn to_wire(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(k: &str, v: &str) -> Tag {
        Tag {
            key: Some(k.into()),
            value: Some(v.into()),
        }
    }

    #[test]
    fn rules() {
        assert_eq!(
            checked_tags(&[tag("a", "1"), tag("a", "2")]),
            Err(SecretsError::DuplicateTagKeys)
        );
        assert_eq!(
            checked_tags(&[tag("AWS:x", "1")]),
            Err(SecretsError::ReservedTagKey)
        );
        let many: Vec<Tag> = (0..51).map(|i| tag(&format!("k{i}"), "")).collect();
        assert_eq!(checked_tags(&many), Err(SecretsError::TooManyTags));
        let merged = merge(
            &[("a".into(), "1".into()), ("b".into(), "2".into())],
            &[("a".into(), "3".into()), ("c".into(), "4".into())],
        )
        .unwrap();
        assert_eq!(
            merged,
            [
                ("a".to_owned(), "3".to_owned()),
                ("b".to_owned(), "2".to_owned()),
                ("c".to_owned(), "4".to_owned())
            ]
        );
    }
}
