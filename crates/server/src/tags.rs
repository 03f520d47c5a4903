//! Tag rules the services share.

/// Whether `key` uses the prefix AWS reserves for its own tags (`aws:`, any case).
pub fn is_reserved(key: &str) -> bool {
    key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:"))
}

/// Adds `key = value` to `tags`, replacing the value of a tag with the same key in place.
pub fn upsert(tags: &mut Vec<(String, String)>, key: &str, value: &str) {
    match tags.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => value.clone_into(&mut slot.1),
        None => tags.push((key.to_owned(), value.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_prefix_and_upsert() {
        assert!(is_reserved("AWS:x") && is_reserved("aws:") && !is_reserved("awsx"));
        let mut tags = vec![("a".to_owned(), "1".to_owned())];
        upsert(&mut tags, "b", "2");
        upsert(&mut tags, "a", "3");
        assert_eq!(
            tags,
            [
                ("a".to_owned(), "3".to_owned()),
                ("b".to_owned(), "2".to_owned())
            ]
        );
    }
}
