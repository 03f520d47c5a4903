//! Policy variables: `${aws:username}`, `${aws:PrincipalTag/team, 'default'}`, `${*}`.
//!
//! As documented in the IAM User Guide, "IAM policy elements: Variables and tags":
//! - variables are recognized only when the document's `Version` is `2012-10-17`; otherwise
//!   `${...}` is literal text;
//! - they may appear in `Resource`/`NotResource` and in the values of the string and ARN
//!   condition operators (elsewhere they stay literal);
//! - `${*}`, `${?}` and `${$}` stand for a literal `*`, `?` and `$`;
//! - `${key, 'default'}` uses `default` when the request has no value for `key`;
//! - a variable whose key is absent (and has no default) "causes the statement to be
//!   invalid": the statement does not apply ([`Unresolved`]). A multi-valued key cannot be a
//!   variable, so a key with several values is unresolved too.
//!
//! A value substituted from the request is always matched literally: a user named `a*` does
//! not get a wildcard. AWS allows variables only in the resource part of a `Resource` ARN
//! (after the fifth colon); Keyhold substitutes them anywhere in the string.

use crate::context::{ConditionContext, canonical_key};
use crate::pattern::{self, Tok};

/// A string that contains at least one policy variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    pieces: Vec<Piece>,
    wildcards: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Policy text; `*` and `?` are wildcards when the template allows them.
    Text(String),
    /// A character from `${*}`, `${?}` or `${$}`, always literal.
    Literal(char),
    /// A context key, with its optional default.
    Variable {
        key: String,
        default: Option<String>,
    },
}

/// A policy variable had no value in the request: the statement does not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unresolved;

/// A string value of a policy, either fixed or with variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Text {
    /// No variables: compiled once.
    Fixed(Vec<Tok>),
    /// Compiled per request, after substitution.
    Template(Template),
}

impl Text {
    /// Compiles `text`; `variables` says whether `${...}` is recognized, `wildcards` whether
    /// `*` and `?` are.
    pub(crate) fn new(text: &str, variables: bool, wildcards: bool) -> Text {
        if variables && let Some(template) = Template::parse(text, wildcards) {
            return Text::Template(template);
        }
        Text::Fixed(pattern::compile(text, wildcards))
    }

    /// The compiled pattern, when it has no variables.
    pub(crate) fn fixed_tokens(&self) -> Option<&[Tok]> {
        match self {
            Text::Fixed(tokens) => Some(tokens),
            Text::Template(_) => None,
        }
    }

    /// The compiled pattern for this request.
    pub(crate) fn resolve(
        &self,
        context: &dyn ConditionContext,
    ) -> Result<Resolved<'_>, Unresolved> {
        match self {
            Text::Fixed(tokens) => Ok(Resolved::Borrowed(tokens)),
            Text::Template(template) => template.resolve(context).map(Resolved::Owned),
        }
    }
}

/// A pattern ready to match: borrowed when fixed, built when it had variables.
pub(crate) enum Resolved<'a> {
    Borrowed(&'a [Tok]),
    Owned(Vec<Tok>),
}

impl Resolved<'_> {
    pub(crate) fn tokens(&self) -> &[Tok] {
        match self {
            Resolved::Borrowed(tokens) => tokens,
            Resolved::Owned(tokens) => tokens,
        }
    }
}

impl Template {
    /// Splits `text` into pieces, or `None` if it holds no well-formed `${...}`.
    fn parse(text: &str, wildcards: bool) -> Option<Template> {
        let mut pieces = Vec::new();
        let mut rest = text;
        let mut found = false;
        while let Some(start) = rest.find("${") {
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                break;
            };
            let inner = &after[..end];
            let Some(piece) = parse_variable(inner) else {
                // Not a variable: keep the `${` as text and look further on.
                push_text(&mut pieces, &rest[..start + 2]);
                rest = after;
                continue;
            };
            found = true;
            push_text(&mut pieces, &rest[..start]);
            pieces.push(piece);
            rest = &after[end + 1..];
        }
        push_text(&mut pieces, rest);
        found.then_some(Template { pieces, wildcards })
    }

    fn resolve(&self, context: &dyn ConditionContext) -> Result<Vec<Tok>, Unresolved> {
        let mut out = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => pattern::push_pattern(&mut out, text, self.wildcards),
                Piece::Literal(c) => out.push(Tok::Char(*c)),
                Piece::Variable { key, default } => {
                    let values = context.values(key);
                    match (values.as_deref(), default) {
                        (Some([value]), _) => pattern::push_literal(&mut out, value),
                        (Some([]) | None, Some(default)) => {
                            pattern::push_literal(&mut out, default)
                        }
                        _ => return Err(Unresolved),
                    }
                }
            }
        }
        Ok(out)
    }
}

fn push_text(pieces: &mut Vec<Piece>, text: &str) {
    if text.is_empty() {
        return;
    }
    if let Some(Piece::Text(last)) = pieces.last_mut() {
        last.push_str(text);
    } else {
        pieces.push(Piece::Text(text.to_owned()));
    }
}

/// Reads the inside of `${...}`.
fn parse_variable(inner: &str) -> Option<Piece> {
    match inner {
        "*" => return Some(Piece::Literal('*')),
        "?" => return Some(Piece::Literal('?')),
        "$" => return Some(Piece::Literal('$')),
        _ => {}
    }
    let (key, default) = match inner.split_once(',') {
        Some((key, default)) => {
            let default = default.trim();
            let default = default.strip_prefix('\'')?.strip_suffix('\'')?;
            (key.trim(), Some(default.to_owned()))
        }
        None => (inner.trim(), None),
    };
    let valid = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || ":/-_.@+=".contains(c));
    valid.then(|| Piece::Variable {
        key: canonical_key(key),
        default,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Context;
    use crate::pattern::matches;

    fn check(text: &str, ctx: &Context, value: &str) -> Result<bool, Unresolved> {
        let text = Text::new(text, true, true);
        let resolved = text.resolve(ctx)?;
        Ok(matches(resolved.tokens(), value, false))
    }

    #[test]
    fn substitutes_context_values_literally() {
        let ctx = Context::new().with("aws:username", "a*");
        assert_eq!(check("home/${aws:username}/*", &ctx, "home/a*/x"), Ok(true));
        assert_eq!(
            check("home/${aws:username}/*", &ctx, "home/ab/x"),
            Ok(false)
        );
        assert_eq!(check("home/${AWS:UserName}", &ctx, "home/a*"), Ok(true));
    }

    #[test]
    fn special_variables_and_defaults() {
        let ctx = Context::new();
        assert_eq!(check("a${*}b", &ctx, "a*b"), Ok(true));
        assert_eq!(check("a${*}b", &ctx, "axb"), Ok(false));
        assert_eq!(
            check("${aws:userid, 'anonymous'}", &ctx, "anonymous"),
            Ok(true)
        );
        assert_eq!(check("${aws:userid}", &ctx, "x"), Err(Unresolved));
    }

    #[test]
    fn multi_valued_keys_do_not_resolve() {
        let ctx = Context::new().with_values("aws:TagKeys", ["a", "b"]);
        assert_eq!(check("${aws:TagKeys}", &ctx, "a"), Err(Unresolved));
    }

    #[test]
    fn malformed_variables_stay_literal() {
        let text = Text::new("a${b", true, false);
        assert!(matches!(text, Text::Fixed(_)));
        let text = Text::new("${ not a key }x${aws:username}", true, false);
        let ctx = Context::new().with("aws:username", "u");
        let resolved = text.resolve(&ctx).unwrap();
        assert!(matches(resolved.tokens(), "${ not a key }xu", false));
    }
}
