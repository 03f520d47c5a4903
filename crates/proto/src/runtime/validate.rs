//! AWS's constraint validation, worded as AWS words it.
//!
//! The generated `validate` functions walk a decoded request and report every violated
//! constraint of the model (`required`, `min`/`max`, `pattern`, `enum`) to a [`Validator`],
//! which joins them the way AWS's front end does:
//!
//! ```text
//! 2 validation errors detected: Value null at 'keyId' failed to satisfy constraint: Member
//! must not be null; Value '0' at 'numberOfBytes' failed to satisfy constraint: Member must
//! have value greater than or equal to 1
//! ```
//!
//! Sensitive members never show their value (`Value at 'plaintext' failed ...`), binary
//! members show what AWS's Java front end prints for a byte buffer.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use super::error::ApiError;
use super::types::{Blob, SensitiveBlob, SensitiveString, Timestamp};

/// Where a value sits in a request, rendered only when a constraint fails:
/// `keyId`, `tags.1.member.tagKey`, `encryptionContext.purpose`.
#[derive(Clone, Copy)]
pub enum Path<'a> {
    Root,
    /// A structure member (the model's name; rendered with a lower-case first letter).
    Member(&'a Path<'a>, &'static str),
    /// A list element (0-based here, rendered 1-based).
    Index(&'a Path<'a>, usize),
    /// A map entry.
    Key(&'a Path<'a>, &'a str),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Member(parent, name) => {
                if !matches!(parent, Path::Root) {
                    write!(f, "{parent}.")?;
                }
                let mut chars = name.chars();
                if let Some(first) = chars.next() {
                    write!(f, "{}{}", first.to_ascii_lowercase(), chars.as_str())?;
                }
                Ok(())
            }
            Path::Index(parent, i) => write!(f, "{parent}.{}.member", i + 1),
            Path::Key(parent, key) => write!(f, "{parent}.{key}"),
        }
    }
}

/// How Java would print a value in a validation message (`[a, b]`, `{k=v}`).
pub trait Render {
    fn render(&self) -> String;
}

impl Render for String {
    fn render(&self) -> String {
        self.clone()
    }
}

impl Render for i32 {
    fn render(&self) -> String {
        self.to_string()
    }
}

impl Render for i64 {
    fn render(&self) -> String {
        self.to_string()
    }
}

impl Render for bool {
    fn render(&self) -> String {
        self.to_string()
    }
}

impl Render for Timestamp {
    fn render(&self) -> String {
        self.to_iso8601()
    }
}

impl Render for Blob {
    fn render(&self) -> String {
        let len = self.len();
        format!("java.nio.HeapByteBuffer[pos=0 lim={len} cap={len}]")
    }
}

impl Render for SensitiveBlob {
    fn render(&self) -> String {
        "***".into()
    }
}

impl Render for SensitiveString {
    fn render(&self) -> String {
        "***".into()
    }
}

impl<T: Render> Render for Vec<T> {
    fn render(&self) -> String {
        let items: Vec<String> = self.iter().map(Render::render).collect();
        render_list(&items)
    }
}

impl<T: Render> Render for BTreeMap<String, T> {
    fn render(&self) -> String {
        let items: Vec<(String, String)> =
            self.iter().map(|(k, v)| (k.clone(), v.render())).collect();
        render_map(items.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

/// How a value appears in a validation message.
pub enum Shown<'a> {
    /// `Value null at ...`
    Null,
    /// `Value at ...`: the value is secret.
    Hidden,
    /// `Value 'text' at ...`
    Text(&'a str),
    /// `Value 'text' at ...` for an owned rendering (numbers, lists, maps, buffers).
    Owned(String),
}

/// Which elements of a collection broke their constraints.
#[derive(Clone, Copy)]
pub enum Part {
    /// List members.
    Member,
    /// Map keys.
    MapKeys,
    /// Map values.
    MapValue,
}

/// The constraints of a list member, map key or map value of a simple type.
#[derive(Default)]
pub struct Rules<'r> {
    /// Length bounds (UTF-16 units of a string, bytes of a blob).
    pub length: (Option<u64>, Option<u64>),
    /// Value bounds of a number.
    pub range: (Option<i64>, Option<i64>),
    /// The compiled pattern and its source as the model spells it.
    pub pattern: Option<(&'r regex::Regex, &'r str)>,
    /// The enum's values.
    pub allowed: Option<&'r [&'r str]>,
}

impl Rules<'_> {
    /// Whether a string (or enum) element satisfies every rule.
    pub fn string_ok(&self, value: &str) -> bool {
        let (min, max) = self.length;
        let len_ok = if min.is_some() || max.is_some() {
            let len = value.encode_utf16().count() as u64;
            min.is_none_or(|m| len >= m) && max.is_none_or(|m| len <= m)
        } else {
            true
        };
        len_ok
            && self.pattern.is_none_or(|(re, _)| re.is_match(value))
            && self.allowed.is_none_or(|set| set.contains(&value))
    }

    /// Whether a number element is within range.
    pub fn number_ok(&self, value: i64) -> bool {
        let (min, max) = self.range;
        min.is_none_or(|m| value >= m) && max.is_none_or(|m| value <= m)
    }

    /// Whether a binary element's length is within bounds.
    pub fn blob_ok(&self, len: usize) -> bool {
        let (min, max) = self.length;
        let len = len as u64;
        min.is_none_or(|m| len >= m) && max.is_none_or(|m| len <= m)
    }

    /// Every constraint, in AWS's order: upper bound before lower bound, then the pattern,
    /// then the enum set.
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(max) = self.length.1 {
            parts.push(format!(
                "Member must have length less than or equal to {max}"
            ));
        }
        if let Some(min) = self.length.0 {
            parts.push(format!(
                "Member must have length greater than or equal to {min}"
            ));
        }
        if let Some(max) = self.range.1 {
            parts.push(format!(
                "Member must have value less than or equal to {max}"
            ));
        }
        if let Some(min) = self.range.0 {
            parts.push(format!(
                "Member must have value greater than or equal to {min}"
            ));
        }
        if let Some((_, source)) = self.pattern {
            parts.push(format!(
                "Member must satisfy regular expression pattern: {source}"
            ));
        }
        if let Some(set) = self.allowed {
            parts.push(format!(
                "Member must satisfy enum value set: [{}]",
                set.join(", ")
            ));
        }
        parts.join(", ")
    }
}

/// Collects the constraint violations of one request.
#[derive(Default)]
pub struct Validator {
    errors: Vec<String>,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a violation of one of the value's own constraints (`Member must ...`).
    pub fn fail(&mut self, shown: Shown<'_>, path: &Path<'_>, constraint: fmt::Arguments<'_>) {
        self.push(shown, path, format_args!("Member must {constraint}"));
    }

    fn push(&mut self, shown: Shown<'_>, path: &Path<'_>, constraint: fmt::Arguments<'_>) {
        let mut line = String::with_capacity(80);
        match shown {
            Shown::Null => line.push_str("Value null at '"),
            Shown::Hidden => line.push_str("Value at '"),
            Shown::Text(text) => {
                let _ = write!(line, "Value '{text}' at '");
            }
            Shown::Owned(text) => {
                let _ = write!(line, "Value '{text}' at '");
            }
        }
        let _ = write!(line, "{path}' failed to satisfy constraint: {constraint}");
        self.errors.push(line);
    }

    /// Records that some element of a collection broke the element constraints `rules`.
    /// AWS reports this once, on the whole collection, listing every constraint of the
    /// element shape (not only the broken ones):
    /// `Value '[a, ]' at 'labels' failed to satisfy constraint: Member must satisfy
    /// constraint: [Member must have length less than or equal to 100, Member must have
    /// length greater than or equal to 1]`.
    pub fn elements(&mut self, shown: Shown<'_>, path: &Path<'_>, part: Part, rules: &Rules<'_>) {
        let subject = match part {
            Part::Member => "Member",
            Part::MapKeys => "Map keys",
            Part::MapValue => "Map value",
        };
        self.push(
            shown,
            path,
            format_args!("{subject} must satisfy constraint: [{}]", rules.describe()),
        );
    }

    /// Checks presence; returns the value when present.
    pub fn required<T>(&mut self, value: Option<T>, path: &Path<'_>) -> Option<T> {
        if value.is_none() {
            self.fail(Shown::Null, path, format_args!("not be null"));
        }
        value
    }

    /// Length (in UTF-16 code units, as AWS's Java front end counts) and pattern of a string.
    pub fn string(
        &mut self,
        value: &str,
        path: &Path<'_>,
        min: Option<u64>,
        max: Option<u64>,
        pattern: Option<(&regex::Regex, &str)>,
        sensitive: bool,
    ) {
        let shown = || {
            if sensitive {
                Shown::Hidden
            } else {
                Shown::Text(value)
            }
        };
        if min.is_some() || max.is_some() {
            let len = value.encode_utf16().count() as u64;
            self.length(len, path, min, max, shown);
        }
        if let Some((regex, source)) = pattern
            && !regex.is_match(value)
        {
            self.fail(
                shown(),
                path,
                format_args!("satisfy regular expression pattern: {source}"),
            );
        }
    }

    /// Membership of a string in an enum; returns whether it is a member.
    pub fn enumeration(&mut self, value: &str, path: &Path<'_>, allowed: &[&str]) -> bool {
        if allowed.contains(&value) {
            return true;
        }
        let set = allowed.join(", ");
        self.fail(
            Shown::Text(value),
            path,
            format_args!("satisfy enum value set: [{set}]"),
        );
        false
    }

    /// Range of a number.
    pub fn number(&mut self, value: i64, path: &Path<'_>, min: Option<i64>, max: Option<i64>) {
        if let Some(min) = min
            && value < min
        {
            self.fail(
                Shown::Owned(value.to_string()),
                path,
                format_args!("have value greater than or equal to {min}"),
            );
        }
        if let Some(max) = max
            && value > max
        {
            self.fail(
                Shown::Owned(value.to_string()),
                path,
                format_args!("have value less than or equal to {max}"),
            );
        }
    }

    /// Length of a binary value, shown as AWS's Java front end prints a byte buffer.
    pub fn blob(
        &mut self,
        len: usize,
        path: &Path<'_>,
        min: Option<u64>,
        max: Option<u64>,
        sensitive: bool,
    ) {
        let shown = || {
            if sensitive {
                Shown::Hidden
            } else {
                Shown::Owned(format!(
                    "java.nio.HeapByteBuffer[pos=0 lim={len} cap={len}]"
                ))
            }
        };
        self.length(len as u64, path, min, max, shown);
    }

    /// Number of entries of a list or map; `render` shows it as Java would print it.
    pub fn collection(
        &mut self,
        len: usize,
        path: &Path<'_>,
        min: Option<u64>,
        max: Option<u64>,
        render: impl Fn() -> String,
    ) {
        self.length(len as u64, path, min, max, || Shown::Owned(render()));
    }

    fn length<'a>(
        &mut self,
        len: u64,
        path: &Path<'_>,
        min: Option<u64>,
        max: Option<u64>,
        shown: impl Fn() -> Shown<'a>,
    ) {
        if let Some(min) = min
            && len < min
        {
            self.fail(
                shown(),
                path,
                format_args!("have length greater than or equal to {min}"),
            );
        }
        if let Some(max) = max
            && len > max
        {
            self.fail(
                shown(),
                path,
                format_args!("have length less than or equal to {max}"),
            );
        }
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// `Ok` when nothing failed, else AWS's joined `ValidationException`.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            return Ok(());
        }
        Err(ApiError::validation(join_errors(&self.errors)))
    }
}

/// `N validation error(s) detected: a; b`.
pub fn join_errors(errors: &[String]) -> String {
    let n = errors.len();
    let plural = if n == 1 { "" } else { "s" };
    format!(
        "{n} validation error{plural} detected: {}",
        errors.join("; ")
    )
}

/// Renders a list of strings as Java's `List.toString` does: `[a, b]`.
pub fn render_list<T: AsRef<str>>(items: &[T]) -> String {
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(item.as_ref());
    }
    out.push(']');
    out
}

/// Renders a map of strings as Java's `Map.toString` does: `{k=v, k2=v2}`.
pub fn render_map<'a>(entries: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in entries.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_error_wording() {
        let mut v = Validator::new();
        v.string(
            "",
            &Path::Member(&Path::Root, "KeyId"),
            Some(1),
            Some(2048),
            None,
            false,
        );
        let e = v.finish().unwrap_err();
        assert_eq!(e.code(), "ValidationException");
        assert_eq!(
            e.message().unwrap(),
            "1 validation error detected: Value '' at 'keyId' failed to satisfy constraint: \
             Member must have length greater than or equal to 1"
        );
    }

    #[test]
    fn errors_are_joined() {
        let mut v = Validator::new();
        let _ = v.required::<String>(None, &Path::Member(&Path::Root, "KeyId"));
        v.number(
            0,
            &Path::Member(&Path::Root, "NumberOfBytes"),
            Some(1),
            Some(1024),
        );
        v.blob(
            4097,
            &Path::Member(&Path::Root, "Plaintext"),
            Some(1),
            Some(4096),
            true,
        );
        assert_eq!(
            v.finish().unwrap_err().message().unwrap(),
            "3 validation errors detected: Value null at 'keyId' failed to satisfy constraint: \
             Member must not be null; Value '0' at 'numberOfBytes' failed to satisfy constraint: \
             Member must have value greater than or equal to 1; Value at 'plaintext' failed to \
             satisfy constraint: Member must have length less than or equal to 4096"
        );
    }

    #[test]
    fn string_length_counts_utf16_units() {
        let mut v = Validator::new();
        v.string("😀", &Path::Root, None, Some(1), None, false);
        assert!(!v.is_empty(), "an astral character is two UTF-16 units");
    }

    #[test]
    fn collections_are_reported_whole_with_every_element_rule() {
        let re = regex::Regex::new("^[a-z]+$").unwrap();
        let rules = Rules {
            length: (Some(1), Some(8)),
            pattern: Some((&re, "[a-z]+")),
            ..Rules::default()
        };
        assert!(rules.string_ok("abc"));
        assert!(!rules.string_ok(""));
        assert!(!rules.string_ok("ABC"));
        let mut v = Validator::new();
        let root = Path::Root;
        let labels = Path::Member(&root, "Labels");
        v.elements(
            Shown::Owned("[abc, ]".into()),
            &labels,
            Part::Member,
            &rules,
        );
        let ctx = Path::Member(&root, "Context");
        let numbers = Rules {
            range: (Some(0), Some(1)),
            ..Rules::default()
        };
        assert!(numbers.number_ok(1) && !numbers.number_ok(2));
        v.elements(Shown::Owned("{a=2}".into()), &ctx, Part::MapValue, &numbers);
        v.elements(Shown::Hidden, &ctx, Part::MapKeys, &rules);
        assert_eq!(
            v.finish().unwrap_err().message().unwrap(),
            "3 validation errors detected: Value '[abc, ]' at 'labels' failed to satisfy \
             constraint: Member must satisfy constraint: [Member must have length less than or \
             equal to 8, Member must have length greater than or equal to 1, Member must satisfy \
             regular expression pattern: [a-z]+]; Value '{a=2}' at 'context' failed to satisfy \
             constraint: Map value must satisfy constraint: [Member must have value less than or \
             equal to 1, Member must have value greater than or equal to 0]; Value at 'context' \
             failed to satisfy constraint: Map keys must satisfy constraint: [Member must have \
             length less than or equal to 8, Member must have length greater than or equal to 1, \
             Member must satisfy regular expression pattern: [a-z]+]"
        );
    }

    #[test]
    fn paths() {
        let root = Path::Root;
        let tags = Path::Member(&root, "Tags");
        let item = Path::Index(&tags, 0);
        assert_eq!(
            Path::Member(&item, "TagKey").to_string(),
            "tags.1.member.tagKey"
        );
        assert_eq!(Path::Member(&root, "KeyId").to_string(), "keyId");
        let ctx = Path::Member(&root, "EncryptionContext");
        assert_eq!(
            Path::Key(&ctx, "purpose").to_string(),
            "encryptionContext.purpose"
        );
    }
}
