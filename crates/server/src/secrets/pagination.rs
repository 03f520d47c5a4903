//! `MaxResults` / `NextToken`, as Secrets Manager pages its lists.
//!
//! A token is opaque to clients: base64 of a tag naming the list plus the position of the
//! next item in the list's order. A token that does not decode for this list is
//! `InvalidNextTokenException`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::error::SecretsError;

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
        URL_SAFE_NO_PAD.encode(format!("{}:{position}", self.tag()))
    }

    fn decode(self, token: Option<&str>) -> Result<usize, SecretsError> {
        let Some(token) = token else {
            return Ok(0);
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| SecretsError::InvalidNextToken)?;
        let text = String::from_utf8(bytes).map_err(|_| SecretsError::InvalidNextToken)?;
        let (tag, position) = text.split_once(':').ok_or(SecretsError::InvalidNextToken)?;
        if tag != self.tag() {
            return Err(SecretsError::InvalidNextToken);
        }
        position.parse().map_err(|_| SecretsError::InvalidNextToken)
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
