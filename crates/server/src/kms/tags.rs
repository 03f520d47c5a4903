//! Tags: TagResource, UntagResource, ListResourceTags, and the tag rules CreateKey shares.

use keyhold_proto::kms::*;
use keyhold_store::Tag as StoredTag;

use super::KmsService;
use super::authz::Facts;
use super::error::KmsError;
use super::pagination::{List, page};
use super::resolve::Aliases;
use crate::context::RequestContext;
use crate::tags::is_reserved;

/// A key can carry at most this many tags.
const TAGS_PER_KEY: usize = 50;

pub async fn tag_resource(
    kms: &KmsService,
    ctx: &RequestContext,
    input: TagResourceRequest,
) -> Result<(), KmsError> {
    let _guard = kms.writes.lock().await;
    let key = kms.resolve(ctx, &input.key_id, Aliases::NotAllowed).await?;
    kms.authorize(ctx, &key, "kms:TagResource", &Facts::default())?;
    key.check_not_pending_deletion()?;
    let merged = merge_tags(&key.tags, &input.tags)?;
    let new: Vec<StoredTag> = to_store_tags(&input.tags);
    kms.store.put_tags(&key.record.key_id, &new).await?;
    kms.update_key_tags(&key, to_store_tags(&merged));
    Ok(())
}

pub async fn untag_resource(
    kms: &KmsService,
    ctx: &RequestContext,
    input: UntagResourceRequest,
) -> Result<(), KmsError> {
    if input.tag_keys.iter().any(|k| is_reserved(k)) {
        return Err(KmsError::ReservedTagKey);
    }
    let _guard = kms.writes.lock().await;
    let key = kms.resolve(ctx, &input.key_id, Aliases::NotAllowed).await?;
    kms.authorize(ctx, &key, "kms:UntagResource", &Facts::default())?;
    key.check_not_pending_deletion()?;
    kms.store
        .remove_tags(&key.record.key_id, &input.tag_keys)
        .await?;
    let remaining = key
        .tags
        .iter()
        .filter(|t| !input.tag_keys.contains(&t.key))
        .cloned()
        .collect();
    kms.update_key_tags(&key, remaining);
    Ok(())
}

pub async fn list_resource_tags(
    kms: &KmsService,
    ctx: &RequestContext,
    input: ListResourceTagsRequest,
) -> Result<ListResourceTagsResponse, KmsError> {
    let key = kms.resolve(ctx, &input.key_id, Aliases::NotAllowed).await?;
    kms.authorize(ctx, &key, "kms:ListResourceTags", &Facts::default())?;
    let tags: Vec<Tag> = key
        .tags
        .iter()
        .map(|t| Tag {
            tag_key: t.key.clone(),
            tag_value: t.value.clone(),
        })
        .collect();
    let page = page(
        List::Tags,
        tags,
        |t| &t.tag_key,
        input.marker.as_deref(),
        input.limit,
    )?;
    Ok(ListResourceTagsResponse {
        truncated: Some(page.truncated()),
        next_marker: page.next_marker,
        tags: Some(page.items),
    })
}

impl KmsService {
    fn update_key_tags(&self, key: &super::key::Key, tags: Vec<StoredTag>) {
        if let Some(updated) = key.with_record(key.record.clone(), tags) {
            self.cache_put(std::sync::Arc::new(updated));
        }
    }
}

/// Applies AWS's tag rules to `new` tags added to `existing` ones and returns the result,
/// sorted by key: no duplicate keys in one request, no `aws:` prefix, at most 50 in all.
pub fn merge_tags(existing: &[StoredTag], new: &[Tag]) -> Result<Vec<Tag>, KmsError> {
    for (i, tag) in new.iter().enumerate() {
        if new.iter().skip(i + 1).any(|t| t.tag_key == tag.tag_key) {
            return Err(KmsError::DuplicateTagKeys);
        }
    }
    if new.iter().any(|t| is_reserved(&t.tag_key)) {
        return Err(KmsError::ReservedTagKey);
    }
    let mut merged: Vec<Tag> = existing
        .iter()
        .filter(|e| !new.iter().any(|n| n.tag_key == e.key))
        .map(|e| Tag {
            tag_key: e.key.clone(),
            tag_value: e.value.clone(),
        })
        .collect();
    merged.extend(new.iter().cloned());
    if merged.len() > TAGS_PER_KEY {
        return Err(KmsError::TooManyTags);
    }
    merged.sort_by(|a, b| a.tag_key.cmp(&b.tag_key));
    Ok(merged)
}

pub fn to_store_tags(tags: &[Tag]) -> Vec<StoredTag> {
    tags.iter()
        .map(|t| StoredTag {
            key: t.tag_key.clone(),
            value: t.tag_value.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(k: &str, v: &str) -> Tag {
        Tag {
            tag_key: k.into(),
            tag_value: v.into(),
        }
    }

    #[test]
    fn tag_rules() {
        assert_eq!(
            merge_tags(&[], &[tag("a", "1"), tag("a", "2")]),
            Err(KmsError::DuplicateTagKeys)
        );
        assert_eq!(
            merge_tags(&[], &[tag("AWS:x", "1")]),
            Err(KmsError::ReservedTagKey)
        );
        let existing = vec![StoredTag {
            key: "a".into(),
            value: "old".into(),
        }];
        assert_eq!(
            merge_tags(&existing, &[tag("a", "new")]).unwrap(),
            vec![tag("a", "new")]
        );
        let many: Vec<Tag> = (0..51).map(|i| tag(&format!("k{i}"), "")).collect();
        assert_eq!(merge_tags(&[], &many), Err(KmsError::TooManyTags));
    }
}
