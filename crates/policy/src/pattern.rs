//! Wildcard patterns: `*` (any run of characters) and `?` (exactly one character).
//!
//! A pattern is compiled once into [`Tok`]s so that a character that must be matched literally
//! (a `*` in a `StringEquals` value, the `${*}` policy variable, a value substituted from the
//! request context) can never be mistaken for a wildcard. Matching is iterative with a single
//! backtrack point: O(pattern × text) in the worst case, no recursion, no allocation.

/// One compiled pattern element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    /// A character matched literally (case-folded when the comparison ignores case).
    Char(char),
    /// `*`: any run of characters, including none.
    Any,
    /// `?`: exactly one character.
    One,
}

/// Appends `text` to `out`, reading `*` and `?` as wildcards when `wildcards` is set.
pub(crate) fn push_pattern(out: &mut Vec<Tok>, text: &str, wildcards: bool) {
    out.extend(text.chars().map(|c| match c {
        '*' if wildcards => Tok::Any,
        '?' if wildcards => Tok::One,
        c => Tok::Char(c),
    }));
}

/// Appends `text` to `out` as literal characters.
pub(crate) fn push_literal(out: &mut Vec<Tok>, text: &str) {
    out.extend(text.chars().map(Tok::Char));
}

/// Compiles `text`, reading `*` and `?` as wildcards when `wildcards` is set.
pub(crate) fn compile(text: &str, wildcards: bool) -> Vec<Tok> {
    let mut out = Vec::with_capacity(text.len());
    push_pattern(&mut out, text, wildcards);
    out
}

/// Whether `text` matches the whole of `pattern`.
pub(crate) fn matches(pattern: &[Tok], text: &str, ignore_case: bool) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    // After a `*`: the pattern index just past it and the text offset it currently absorbs to.
    let mut backtrack: Option<(usize, usize)> = None;
    loop {
        let tc = text.get(t..).and_then(|rest| rest.chars().next());
        match (pattern.get(p), tc) {
            (None, None) => return true,
            (Some(Tok::Any), _) => {
                p += 1;
                backtrack = Some((p, t));
                continue;
            }
            (Some(Tok::One), Some(c)) => {
                p += 1;
                t += c.len_utf8();
                continue;
            }
            (Some(Tok::Char(pc)), Some(c)) if chars_equal(*pc, c, ignore_case) => {
                p += 1;
                t += c.len_utf8();
                continue;
            }
            _ => {}
        }
        // Mismatch: let the last `*` absorb one more character, or fail.
        let Some((bp, bt)) = backtrack else {
            return false;
        };
        let Some(c) = text.get(bt..).and_then(|rest| rest.chars().next()) else {
            return false;
        };
        let next = bt + c.len_utf8();
        backtrack = Some((bp, next));
        p = bp;
        t = next;
    }
}

fn chars_equal(a: char, b: char, ignore_case: bool) -> bool {
    a == b || (ignore_case && a.to_lowercase().eq(b.to_lowercase()))
}

/// ARN-aware matching, as IAM does for `Resource` and the `Arn*` condition operators: the six
/// colon-separated components (`arn:partition:service:region:account:resource`) are matched
/// separately, so a wildcard never spans a colon except inside the final resource component.
///
/// A pattern of exactly `*` matches anything. A value with fewer than six components is not an
/// ARN and is compared as a plain string. A pattern with fewer than six components (such as
/// `arn:aws:kms:*`) matches its last component against the rest of the value; AWS does not
/// document this case.
pub(crate) fn arn_matches(pattern: &[Tok], text: &str) -> bool {
    if pattern == [Tok::Any] {
        return true;
    }
    let text_parts = split_text(text);
    if text_parts.len() < ARN_PARTS {
        return matches(pattern, text, false);
    }
    let pattern_parts = split_pattern(pattern);
    let last = pattern_parts.len() - 1;
    for (i, part) in pattern_parts.iter().enumerate() {
        let Some(&(start, end)) = text_parts.get(i) else {
            return false;
        };
        let value = if i == last {
            text.get(start..)
        } else {
            text.get(start..end)
        };
        match value {
            Some(value) if matches(part, value, false) => {}
            _ => return false,
        }
    }
    true
}

const ARN_PARTS: usize = 6;

/// Byte ranges of the (at most six) colon-separated components of `text`.
fn split_text(text: &str) -> Vec<(usize, usize)> {
    let mut parts = Vec::with_capacity(ARN_PARTS);
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if parts.len() == ARN_PARTS - 1 {
            break;
        }
        if c == ':' {
            parts.push((start, i));
            start = i + 1;
        }
    }
    parts.push((start, text.len()));
    parts
}

fn split_pattern(pattern: &[Tok]) -> Vec<&[Tok]> {
    let mut parts = Vec::with_capacity(ARN_PARTS);
    let mut rest = pattern;
    while parts.len() < ARN_PARTS - 1 {
        let Some(i) = rest.iter().position(|t| *t == Tok::Char(':')) else {
            break;
        };
        let (head, tail) = rest.split_at(i);
        parts.push(head);
        rest = tail.get(1..).unwrap_or_default();
    }
    parts.push(rest);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn like(p: &str, t: &str) -> bool {
        matches(&compile(p, true), t, false)
    }

    #[test]
    fn wildcards() {
        assert!(like("kms:Generate*", "kms:GenerateDataKey"));
        assert!(like("*", ""));
        assert!(like("a*b*c", "aXXbYYc"));
        assert!(!like("a*b*c", "aXXbYY"));
        assert!(like("a?c", "abc"));
        assert!(!like("a?c", "ac"));
        assert!(like("*é?", "ééé"));
        assert!(!like("abc", "abcd"));
        assert!(like("**", "x"));
    }

    #[test]
    fn literal_stars_are_not_wildcards() {
        assert!(!matches(&compile("a*", false), "abc", false));
        assert!(matches(&compile("a*", false), "a*", false));
    }

    #[test]
    fn ignore_case() {
        assert!(matches(&compile("KMS:decrypt", true), "kms:Decrypt", true));
        assert!(!matches(
            &compile("KMS:decrypt", true),
            "kms:Decrypt",
            false
        ));
    }

    #[test]
    fn arn_components_are_matched_separately() {
        // The IAM User Guide's example for ArnLike versus StringLike.
        let pattern = compile("arn:aws:someservice:*:111122223333:finance/*", true);
        let value = "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt";
        assert!(!arn_matches(&pattern, value));
        assert!(matches(&pattern, value, false));
        assert!(arn_matches(
            &pattern,
            "arn:aws:someservice:us-east-2:111122223333:finance/a:b"
        ));
    }

    #[test]
    fn short_arn_pattern_absorbs_the_rest() {
        let pattern = compile("arn:aws:kms:*", true);
        assert!(arn_matches(
            &pattern,
            "arn:aws:kms:us-east-1:111122223333:key/k"
        ));
        assert!(!arn_matches(&pattern, "arn:aws:sqs:us-east-1:1:q"));
    }

    #[test]
    fn pathological_pattern_terminates() {
        let pattern = compile(&"*a".repeat(200), true);
        assert!(!matches(&pattern, &"a".repeat(199), false));
    }
}
