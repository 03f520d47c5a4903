//! The opaque pagination token every service hands out (`Marker`, `NextToken`): the base64
//! of a tag naming the list and the sort key of the last item returned, so that a token of
//! one list is refused by another and a page starts right after where the last one ended
//! even if items were added or removed meanwhile. Each service maps a refused token to its
//! own error (`InvalidMarkerException`, `InvalidNextToken`, ...).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The token of list `tag` positioned at `key`.
pub fn encode(tag: &str, key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{tag}:{key}"))
}

/// The key in a token of list `tag`; `None` for a token that is not one.
pub fn decode(tag: &str, token: &str) -> Option<String> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
    let (found, key) = text.split_once(':')?;
    (found == tag).then(|| key.to_owned())
}

/// One page of at most `size` of `items` (sorted by `sort_key`) after the key `after`
/// (exclusive), and whether more follow (then the next page starts after the page's last
/// item).
pub fn page_after<T>(
    items: Vec<T>,
    sort_key: impl Fn(&T) -> &str,
    after: Option<&str>,
    size: usize,
) -> (Vec<T>, bool) {
    let mut rest: Vec<T> = items
        .into_iter()
        .filter(|item| after.is_none_or(|a| sort_key(item) > a))
        .collect();
    let more = rest.len() > size;
    rest.truncate(size);
    (rest, more)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_list() {
        let token = encode("k", "b:c");
        assert_eq!(decode("k", &token).as_deref(), Some("b:c"));
        assert_eq!(decode("a", &token), None);
        assert_eq!(decode("k", "!!"), None);
        assert_eq!(decode("k", &URL_SAFE_NO_PAD.encode("no separator")), None);
    }

    #[test]
    fn pages_resume_after_the_last_key() {
        let items: Vec<String> = (0..5).map(|i| format!("n{i}")).collect();
        let page = |after| page_after(items.clone(), String::as_str, after, 2);
        assert_eq!(page(None), (items[0..2].to_vec(), true));
        assert_eq!(page(Some("n1")), (items[2..4].to_vec(), true));
        assert_eq!(page(Some("n3")), (items[4..].to_vec(), false));
    }
}
