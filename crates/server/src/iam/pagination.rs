//! IAM's `Marker` / `MaxItems` pagination. A marker is [`crate::pagination`]'s token,
//! holding the sort key of the first item of the next page.

use super::error::IamError;
use crate::pagination;

/// The tag of IAM's markers.
const TAG: &str = "i";

/// The default and largest `MaxItems` (the model bounds it to 1..=1000).
const DEFAULT_MAX_ITEMS: usize = 100;

/// One page of items.
pub struct Page<T> {
    pub items: Vec<T>,
    /// The marker of the next page, when there is one.
    pub marker: Option<String>,
}

impl<T> Page<T> {
    pub fn is_truncated(&self) -> bool {
        self.marker.is_some()
    }
}

/// The page of `items` (any order) that starts at `marker`, sorted by `key`.
pub fn page<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> String,
    marker: Option<&str>,
    max_items: Option<i32>,
) -> Result<Page<T>, IamError> {
    items.sort_by_key(|item| key(item));
    let start = match marker {
        None => 0,
        Some(marker) => {
            let from = decode(marker)?;
            items.partition_point(|item| key(item) < from)
        }
    };
    let limit = max_items
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_MAX_ITEMS);
    let mut rest = items.split_off(start.min(items.len()));
    let next = rest.get(limit).map(|item| encode(&key(item)));
    rest.truncate(limit);
    Ok(Page {
        items: rest,
        marker: next,
    })
}

fn encode(key: &str) -> String {
    pagination::encode(TAG, key)
}

fn decode(marker: &str) -> Result<String, IamError> {
    pagination::decode(TAG, marker).ok_or(IamError::InvalidMarker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_through_everything_once() {
        let items: Vec<String> = (0..7).map(|i| format!("n{i}")).collect();
        let mut seen = Vec::new();
        let mut marker = None;
        loop {
            let p = page(items.clone(), Clone::clone, marker.as_deref(), Some(3)).unwrap();
            seen.extend(p.items.clone());
            match p.marker {
                Some(m) => marker = Some(m),
                None => break,
            }
        }
        assert_eq!(seen, items);
    }

    #[test]
    fn bad_markers_are_refused() {
        let items = vec!["a".to_owned()];
        assert_eq!(
            page(items, Clone::clone, Some("!!"), None).err(),
            Some(IamError::InvalidMarker)
        );
    }
}
