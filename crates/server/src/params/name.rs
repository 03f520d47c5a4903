//! Parameter names, paths, ARNs and selectors.
//!
//! A parameter is identified in its account and region by its *key*: the name without its
//! leading slash. `/TestParam1` and `TestParam1` are the same parameter (AWS's name rules say
//! so), and its ARN is `arn:aws:ssm:REGION:ACCOUNT:parameter/KEY` either way.

use crate::arn::{Arn, Scope};

use super::error::SsmError;

/// At most this many levels (`/a/b` has two).
pub const MAX_LEVELS: usize = 15;
/// The longest ARN a parameter can have: the name may use what the ARN prefix leaves.
const MAX_ARN_LEN: usize = 1011;
/// Where Secrets Manager secrets are read through Parameter Store.
pub const SECRETS_PREFIX: &str = "/aws/reference/secretsmanager/";

/// The key of a name: the name without its leading slash.
pub fn key_of(name: &str) -> &str {
    name.strip_prefix('/').unwrap_or(name)
}

/// A parameter's ARN.
pub fn arn_of(scope: &Scope, key: &str) -> String {
    scope.arn("ssm", format_args!("parameter/{key}"))
}

/// The scope and key of a parameter's ARN ([`arn_of`] undone); `None` if it is not one.
pub fn scope_and_key_of_arn(arn: &str) -> Option<(Scope, &str)> {
    let arn = crate::arn::Arn::parse(arn)?;
    let key = arn.resource.strip_prefix("parameter/")?;
    if arn.service != "ssm" || arn.region.is_empty() || arn.account.is_empty() || key.is_empty() {
        return None;
    }
    Some((Scope::new(arn.account, arn.region), key))
}

/// Validates the name of a parameter to create or update; returns it without the spaces
/// AWS removes from its ends.
pub fn validate_new(raw: &str, scope: &Scope) -> Result<String, SsmError> {
    let name = raw.trim_matches(' ');
    check_shape(name)?;
    let key = key_of(name);
    let lower = key.to_ascii_lowercase();
    if lower.starts_with("aws") || lower.starts_with("ssm") {
        let is_path = name.matches('/').count() > 1;
        return Err(match (is_path, lower.starts_with("aws")) {
            (true, true) => SsmError::ReservedAwsPath {
                name: name.to_owned(),
            },
            (true, false) => SsmError::ReservedSsmPath,
            (false, _) => SsmError::ReservedPrefix,
        });
    }
    if key.split('/').count() > MAX_LEVELS {
        return Err(SsmError::HierarchyTooDeep);
    }
    if arn_of(scope, key).len() > MAX_ARN_LEN {
        return Err(SsmError::NameTooLong);
    }
    Ok(name.to_owned())
}

/// The characters and the shape of a name: `a-zA-Z0-9_.-`, and `/` between levels of a
/// hierarchy that starts with `/` (no empty level, no trailing slash).
fn check_shape(name: &str) -> Result<(), SsmError> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/');
    if name.is_empty() || !name.bytes().all(allowed) {
        return Err(SsmError::InvalidName);
    }
    if name.contains('/')
        && (!name.starts_with('/') || name.len() == 1 || key_of(name).split('/').any(str::is_empty))
    {
        return Err(SsmError::InvalidName);
    }
    Ok(())
}

/// Which version of a parameter a reference selects (`name:3`, `name:prod`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    Version(i64),
    Label(String),
}

impl Selector {
    /// The selector as AWS echoes it back (`:3`, `:prod`).
    pub fn display(&self) -> String {
        match self {
            Selector::Version(v) => format!(":{v}"),
            Selector::Label(l) => format!(":{l}"),
        }
    }
}

/// A reference to a parameter in a read: a name or an ARN, with an optional selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// The parameter's key (its name without the leading slash).
    pub key: String,
    pub selector: Option<Selector>,
}

/// Parses a name or ARN (`/a/b`, `/a/b:2`, `arn:aws:ssm:r:a:parameter/a/b:prod`) in `scope`.
/// An ARN of another account or region, or of another service, names nothing here.
pub fn parse_reference(raw: &str, scope: &Scope) -> Result<Reference, SsmError> {
    let (name, selector) = if raw.starts_with("arn:") {
        let arn = Arn::parse(raw).ok_or(SsmError::NotFound)?;
        let resource = arn.resource.strip_prefix("parameter/");
        match resource {
            Some(resource)
                if arn.service == "ssm"
                    && arn.partition == scope.partition
                    && arn.region == scope.region
                    && arn.account == scope.account =>
            {
                let (key, selector) = split_selector(resource)?;
                (format!("/{key}"), selector)
            }
            _ => return Err(SsmError::NotFound),
        }
    } else {
        let (name, selector) = split_selector(raw)?;
        (name.to_owned(), selector)
    };
    if name.contains("//") || (name.contains('/') && !name.starts_with('/')) {
        return Err(SsmError::InvalidName);
    }
    Ok(Reference {
        key: key_of(&name).to_owned(),
        selector,
    })
}

/// Splits `name[:selector]`; a name never contains `:`.
fn split_selector(text: &str) -> Result<(&str, Option<Selector>), SsmError> {
    let Some((name, selector)) = text.split_once(':') else {
        return Ok((text, None));
    };
    if selector.is_empty() || selector.contains(':') || name.is_empty() {
        return Err(SsmError::SelectorSyntax);
    }
    if selector.bytes().all(|b| b.is_ascii_digit()) {
        let version = selector.parse().map_err(|_| SsmError::SelectorSyntax)?;
        return Ok((name, Some(Selector::Version(version))));
    }
    Ok((name, Some(Selector::Label(selector.to_owned()))))
}

/// A validated hierarchy path (GetParametersByPath, the `Path` filter): the keys below it
/// start with [`Path::prefix`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    /// `""` for `/`, else `a/b/` for `/a/b` and `/a/b/`.
    prefix: String,
}

impl Path {
    pub fn parse(raw: &str) -> Result<Self, SsmError> {
        let ok_chars = raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/'));
        if !raw.starts_with('/') || raw.contains("//") || !ok_chars {
            return Err(SsmError::InvalidPath);
        }
        let inner = raw.trim_start_matches('/').trim_end_matches('/');
        if !inner.is_empty() && inner.split('/').count() > MAX_LEVELS {
            return Err(SsmError::HierarchyTooDeep);
        }
        let prefix = if inner.is_empty() {
            String::new()
        } else {
            format!("{inner}/")
        };
        Ok(Self { prefix })
    }

    /// Whether the parameter with `key` sits below this path: directly, or at any depth.
    pub fn contains(&self, key: &str, recursive: bool) -> bool {
        match key.strip_prefix(self.prefix.as_str()) {
            Some(rest) if !rest.is_empty() => recursive || !rest.contains('/'),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn scope() -> Scope {
        Scope::new("111122223333", "us-east-2")
    }

    #[test]
    fn a_parameter_arn_names_its_scope_and_key() {
        let s = scope();
        for key in ["a", "a/b/c", "Dev.db-1_x"] {
            let arn = arn_of(&s, key);
            assert_eq!(scope_and_key_of_arn(&arn), Some((s.clone(), key)));
        }
        for bad in [
            "garbage",
            "arn:aws:ssm:us-east-2:111122223333:document/x",
            "arn:aws:kms:us-east-2:111122223333:parameter/x",
            "arn:aws:ssm::111122223333:parameter/x",
            "arn:aws:ssm:us-east-2:111122223333:parameter/",
        ] {
            assert_eq!(scope_and_key_of_arn(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_follow_aws_rules() {
        let s = scope();
        assert_eq!(validate_new("  /Dev/db-1  ", &s).unwrap(), "/Dev/db-1");
        assert_eq!(
            validate_new("MyParameter_1.x", &s).unwrap(),
            "MyParameter_1.x"
        );
        for bad in ["a b", "a/b", "/a//b", "/a/", "/", "", "a$", "é"] {
            assert_eq!(validate_new(bad, &s), Err(SsmError::InvalidName), "{bad}");
        }
        assert_eq!(validate_new("awsTest", &s), Err(SsmError::ReservedPrefix));
        assert_eq!(validate_new("SSM-test", &s), Err(SsmError::ReservedPrefix));
        assert_eq!(validate_new("/aws", &s), Err(SsmError::ReservedPrefix));
        assert!(matches!(
            validate_new("/aws/testparam1", &s),
            Err(SsmError::ReservedAwsPath { .. })
        ));
        assert_eq!(validate_new("/ssm/x", &s), Err(SsmError::ReservedSsmPath));
    }

    #[test]
    fn fifteen_levels_and_1011_characters() {
        let s = scope();
        let fifteen: String = (1..=15).map(|i| format!("/L{i}")).collect();
        assert!(validate_new(&fifteen, &s).is_ok());
        assert_eq!(
            validate_new(&format!("{fifteen}/x"), &s),
            Err(SsmError::HierarchyTooDeep)
        );
        // arn:aws:ssm:us-east-2:111122223333:parameter/ is 45 characters (AWS's example).
        assert_eq!(arn_of(&s, "").len(), 45);
        assert!(validate_new(&"a".repeat(1011 - 45), &s).is_ok());
        assert_eq!(
            validate_new(&"a".repeat(1011 - 44), &s),
            Err(SsmError::NameTooLong)
        );
    }

    #[test]
    fn references_and_selectors() {
        let s = scope();
        let r = parse_reference("/a/b:3", &s).unwrap();
        assert_eq!(r.key, "a/b");
        assert_eq!(r.selector, Some(Selector::Version(3)));
        let r = parse_reference("plain:prod", &s).unwrap();
        assert_eq!(r.key, "plain");
        assert_eq!(r.selector, Some(Selector::Label("prod".into())));
        let r = parse_reference("arn:aws:ssm:us-east-2:111122223333:parameter/a/b:x", &s).unwrap();
        assert_eq!(
            (r.key.as_str(), r.selector),
            ("a/b", Some(Selector::Label("x".into())))
        );
        let r = parse_reference("arn:aws:ssm:us-east-2:111122223333:parameter/top", &s).unwrap();
        assert_eq!(r.key, "top");
        assert_eq!(
            parse_reference("arn:aws:ssm:eu-west-1:111122223333:parameter/top", &s),
            Err(SsmError::NotFound)
        );
        assert_eq!(parse_reference("a:b:c", &s), Err(SsmError::SelectorSyntax));
        assert_eq!(parse_reference("a:", &s), Err(SsmError::SelectorSyntax));
        assert_eq!(parse_reference("a/b", &s), Err(SsmError::InvalidName));
    }

    #[test]
    fn paths() {
        let root = Path::parse("/").unwrap();
        assert!(root.contains("top", false));
        assert!(!root.contains("a/b", false));
        assert!(root.contains("a/b", true));
        let p = Path::parse("/a/").unwrap();
        assert_eq!(p, Path::parse("/a").unwrap());
        assert!(p.contains("a/b", false));
        assert!(!p.contains("a/b/c", false));
        assert!(p.contains("a/b/c", true));
        assert!(!p.contains("ab/c", true));
        assert!(!p.contains("a", true));
        for bad in ["a", "//a", "/a b", ""] {
            assert_eq!(Path::parse(bad), Err(SsmError::InvalidPath), "{bad}");
        }
    }
}
