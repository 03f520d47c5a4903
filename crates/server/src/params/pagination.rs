//! `MaxResults` / `NextToken`, as Parameter Store pages its lists.
//!
//! A token is [`crate::pagination`]'s; one that does not decode for this list is
//! `InvalidNextToken`.

use super::error::SsmError;
use crate::pagination;

/// The lists Parameter Store pages, each with its own token tag and page sizes.
#[derive(Clone, Copy)]
pub enum List {
    /// GetParametersByPath: 1–10, default 10.
    ByPath,
    /// DescribeParameters: 1–50, default 10.
    Describe,
    /// GetParameterHistory: 1–50, default 50.
    History,
}

impl List {
    fn tag(self) -> &'static str {
        match self {
            Self::ByPath => "p",
            Self::Describe => "d",
            Self::History => "h",
        }
    }

    fn page_size(self, max_results: Option<i32>) -> usize {
        let (default, max) = match self {
            Self::ByPath => (10, 10),
            Self::Describe => (10, 50),
            Self::History => (50, 50),
        };
        max_results
            .and_then(|m| usize::try_from(m).ok())
            .map_or(default, |m| m.clamp(1, max))
    }

    fn encode(self, last: &str) -> String {
        pagination::encode(self.tag(), last)
    }

    fn decode(self, token: Option<&str>) -> Result<Option<String>, SsmError> {
        token
            .map(|t| pagination::decode(self.tag(), t).ok_or(SsmError::InvalidNextToken))
            .transpose()
    }
}

/// One page of `items`, already sorted by `sort_key`, after the token's position.
pub fn page<T>(
    list: List,
    items: Vec<T>,
    sort_key: impl Fn(&T) -> String,
    token: Option<&str>,
    max_results: Option<i32>,
) -> Result<(Vec<T>, Option<String>), SsmError> {
    let after = list.decode(token)?;
    let keyed: Vec<(String, T)> = items.into_iter().map(|t| (sort_key(&t), t)).collect();
    let size = list.page_size(max_results);
    let (keyed, more) = pagination::page_after(keyed, |(key, _)| key, after.as_deref(), size);
    let next = more
        .then(|| keyed.last().map(|(key, _)| list.encode(key)))
        .flatten();
    Ok((keyed.into_iter().map(|(_, t)| t).collect(), next))
}

/// A sort key for version numbers that orders as the numbers do.
pub fn version_key(version: i64) -> String {
    format!("{version:020}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn pages_follow_tokens() {
        let items: Vec<String> = (0..25).map(|i| format!("k{i:02}")).collect();
        let (first, next) = page(List::ByPath, items.clone(), Clone::clone, None, None).unwrap();
        assert_eq!(first.len(), 10);
        let (second, next) = page(
            List::ByPath,
            items.clone(),
            Clone::clone,
            next.as_deref(),
            Some(10),
        )
        .unwrap();
        assert_eq!(second.first().map(String::as_str), Some("k10"));
        let (third, next) = page(
            List::ByPath,
            items.clone(),
            Clone::clone,
            next.as_deref(),
            None,
        )
        .unwrap();
        assert_eq!(third.len(), 5);
        assert!(next.is_none());
        assert_eq!(
            page(List::History, items.clone(), Clone::clone, Some("!!"), None).err(),
            Some(SsmError::InvalidNextToken)
        );
        let token = List::ByPath.encode("k03");
        assert_eq!(
            page(List::Describe, items, Clone::clone, Some(&token), None).err(),
            Some(SsmError::InvalidNextToken)
        );
        assert!(version_key(9) < version_key(10));
    }
}
