//! `MaxResults` / `NextToken`, as Secrets Manager pages its lists.
//!
//! A token is [`crate::pagination`]'s, holding the position of the next item in the list's
//! order; one that does not decode for this list is `InvalidNextTokenException`.

use super::error::SecretsError;
use crate::pagination;

/// The lists Secrets Manager pages.
#[derive(Clone, Copy)]
pub enum List {
    Secrets,
    Versions,
    BatchValues,
    Policies,
}

impl List {
    fn tag(self) -> &'static str {
        match self {
            Self::Secrets => "s",
            Self::Versions => "v",
            Self::BatchValues => "b",
            Self::Policies => "p",
        }
    }

    fn encode(self, position: usize) -> String {
        pagination::encode(self.tag(), &position.to_string())
    }

    fn decode(self, token: Option<&str>) -> Result<usize, SecretsError> {
        let Some(token) = token else {
            return Ok(0);
        };
        pagination::decode(self.tag(), token)
            .and_then(|position| position.parse().ok())
            .ok_or(SecretsError::InvalidNextToken)
    }
}

/// One page of `items` (already in the list's order) from `token`, and the next token.
pub fn page<T>(
    list: List,
    items: Vec<T>,
    token: Option<&str>,
    size: usize,
) -> Result<(Vec<T>, Option<String>), SecretsError> {
    let start = list.decode(token)?;
    let size = size.max(1);
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(start).take(size).collect();
    let next = (start.saturating_add(size) < total).then(|| list.encode(start + size));
    Ok((page, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_tokens() {
        let items: Vec<u32> = (0..5).collect();
        let (p, next) = page(List::Secrets, items.clone(), None, 2).unwrap();
        assert_eq!(p, [0, 1]);
        let (p, next) = page(List::Secrets, items.clone(), next.as_deref(), 2).unwrap();
        assert_eq!(p, [2, 3]);
        let (p, next) = page(List::Secrets, items.clone(), next.as_deref(), 2).unwrap();
        assert_eq!(p, [4]);
        assert!(next.is_none());
        let token = List::Versions.encode(1);
        assert_eq!(
            page(List::Secrets, items, Some(&token), 2).err(),
            Some(SecretsError::InvalidNextToken)
        );
    }
}
