//! `Limit` / `Marker` / `NextMarker` / `Truncated`, as KMS pages its lists.
//!
//! A marker is [`crate::pagination`]'s token; one that does not decode for this list is
//! `InvalidMarkerException`.

use super::error::KmsError;
use crate::pagination;

/// The lists KMS pages, each with its own marker tag and default page size.
#[derive(Clone, Copy)]
pub enum List {
    Keys,
    Aliases,
    Tags,
    Policies,
    Grants,
    RetirableGrants,
    Rotations,
    CustomKeyStores,
}

impl List {
    fn tag(self) -> &'static str {
        match self {
            Self::Keys => "k",
            Self::Aliases => "a",
            Self::Tags => "t",
            Self::Policies => "p",
            Self::Grants => "g",
            Self::RetirableGrants => "r",
            Self::Rotations => "o",
            Self::CustomKeyStores => "c",
        }
    }

    /// AWS's default and largest page size for this list (docs/reference §6).
    fn limits(self) -> (usize, usize) {
        match self {
            Self::Keys | Self::Policies | Self::Rotations | Self::CustomKeyStores => (100, 1000),
            Self::Aliases => (50, 100),
            Self::Tags => (50, 50),
            Self::Grants | Self::RetirableGrants => (50, 100),
        }
    }

    pub fn page_size(self, limit: Option<i32>) -> usize {
        let (default, max) = self.limits();
        limit
            .and_then(|l| usize::try_from(l).ok())
            .map_or(default, |l| l.clamp(1, max))
    }

    pub fn encode(self, last: &str) -> String {
        pagination::encode(self.tag(), last)
    }

    pub fn decode(self, marker: Option<&str>) -> Result<Option<String>, KmsError> {
        marker
            .map(|m| pagination::decode(self.tag(), m).ok_or(KmsError::InvalidMarker))
            .transpose()
    }
}

/// One page of `items` (sorted by `sort_key`) after `after`.
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_marker: Option<String>,
}

impl<T> Page<T> {
    pub fn truncated(&self) -> bool {
        self.next_marker.is_some()
    }
}

/// Pages an already sorted, complete list.
pub fn page<T>(
    list: List,
    items: Vec<T>,
    sort_key: impl Fn(&T) -> &str,
    marker: Option<&str>,
    limit: Option<i32>,
) -> Result<Page<T>, KmsError> {
    let after = list.decode(marker)?;
    let (items, more) =
        pagination::page_after(items, &sort_key, after.as_deref(), list.page_size(limit));
    let next_marker = more
        .then(|| items.last().map(|last| list.encode(sort_key(last))))
        .flatten();
    Ok(Page { items, next_marker })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_markers() {
        let items: Vec<String> = (0..5).map(|i| format!("a{i}")).collect();
        let p = page(List::Aliases, items.clone(), |s| s, None, Some(2)).unwrap();
        assert_eq!(p.items, ["a0", "a1"]);
        let next = p.next_marker.unwrap();
        let p = page(List::Aliases, items.clone(), |s| s, Some(&next), Some(2)).unwrap();
        assert_eq!(p.items, ["a2", "a3"]);
        let p = page(
            List::Aliases,
            items.clone(),
            |s| s,
            p.next_marker.as_deref(),
            Some(2),
        )
        .unwrap();
        assert_eq!(p.items, ["a4"]);
        assert!(!p.truncated());
        assert_eq!(
            page(List::Keys, items, |s| s, Some(&next), None).err(),
            Some(KmsError::InvalidMarker)
        );
    }
}
