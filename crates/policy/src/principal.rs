//! Principals: the caller of a request, and the `Principal` / `NotPrincipal` element that
//! names who a statement is for.
//!
//! Rules (IAM User Guide, "AWS JSON policy elements: Principal" and "NotPrincipal"):
//! - `"*"` and `{"AWS": "*"}` mean everyone, anonymous callers included.
//! - A 12-digit account id and `arn:PARTITION:iam::ACCOUNT:root` both name the *account*; this
//!   delegates to the account's IAM policies rather than granting any one identity.
//! - A user, role, assumed-role session or federated-user ARN names that identity exactly; a
//!   role ARN also covers every session of the role.
//! - Wildcards are not allowed in principal names, except the lone `"*"`.
//! - `Service` names an AWS service principal; `Federated` and `CanonicalUser` are accepted
//!   but never match, because Keyhold has no web-identity, SAML or S3 canonical users.

use crate::error::PolicyError;
use crate::json::Json;

/// The authenticated caller of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal<'a> {
    /// The caller's ARN: `arn:aws:iam::111122223333:user/alice`,
    /// `arn:aws:sts::111122223333:assumed-role/Admin/session`, `arn:aws:iam::111122223333:root`.
    /// Empty for anonymous callers; the service name for service principals.
    pub arn: &'a str,
    /// The caller's 12-digit account (empty for anonymous and service callers).
    pub account: &'a str,
    /// What kind of identity the caller is.
    pub kind: PrincipalKind,
    /// For an assumed-role session, the ARN of the role (`arn:aws:iam::ACCOUNT:role/NAME`):
    /// policies that name the role cover all its sessions.
    pub role_arn: Option<&'a str>,
    /// For a service principal, its name (`logs.amazonaws.com`); defaults to `arn`.
    pub service: Option<&'a str>,
}

/// The kind of an authenticated caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// The account root user.
    Root,
    /// An IAM user.
    User,
    /// A session of an assumed role (STS `AssumeRole`).
    AssumedRole,
    /// A role itself (as named in trust policy evaluation).
    Role,
    /// An AWS service principal.
    Service,
    /// An unauthenticated caller.
    Anonymous,
}

impl<'a> Principal<'a> {
    fn is_account_member(&self) -> bool {
        matches!(
            self.kind,
            PrincipalKind::Root
                | PrincipalKind::User
                | PrincipalKind::AssumedRole
                | PrincipalKind::Role
        )
    }

    fn service_name(&self) -> &'a str {
        self.service.unwrap_or(self.arn)
    }

    fn partition(&self) -> Option<&'a str> {
        let mut parts = self.arn.split(':');
        (parts.next() == Some("arn"))
            .then(|| parts.next())
            .flatten()
    }
}

/// One entry of a `Principal` or `NotPrincipal` element, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PrincipalSpec {
    /// `"*"` or `{"AWS": "*"}`.
    Everyone,
    /// A 12-digit account id, or `arn:PARTITION:iam::ACCOUNT:root`.
    Account {
        account: String,
        partition: Option<String>,
    },
    /// A user, role, assumed-role session or federated-user ARN.
    Arn(String),
    /// `{"Service": "name"}`.
    Service(String),
    /// `{"Federated": ...}`; never matches.
    Federated(String),
    /// `{"CanonicalUser": ...}`; never matches.
    CanonicalUser(String),
}

/// How well one principal entry fits the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Fit {
    No,
    Account,
    Direct,
}

impl PrincipalSpec {
    /// Parses a `Principal` / `NotPrincipal` element value.
    pub(crate) fn parse_element(value: &Json) -> Result<Vec<PrincipalSpec>, PolicyError> {
        match value {
            Json::String(s) if s == "*" => Ok(vec![PrincipalSpec::Everyone]),
            Json::Object(members) if !members.is_empty() => {
                let mut specs = Vec::new();
                for (kind, values) in members {
                    for text in string_list(values)? {
                        specs.push(match kind.as_str() {
                            "AWS" => parse_aws(text)?,
                            "Service" => PrincipalSpec::Service(plain_name(text)?.to_owned()),
                            "Federated" => PrincipalSpec::Federated(plain_name(text)?.to_owned()),
                            "CanonicalUser" => {
                                PrincipalSpec::CanonicalUser(plain_name(text)?.to_owned())
                            }
                            _ => return Err(PolicyError::InvalidPrincipal),
                        });
                    }
                }
                Ok(specs)
            }
            _ => Err(PolicyError::InvalidPrincipal),
        }
    }

    /// How this entry fits `caller`.
    pub(crate) fn fit(&self, caller: &Principal<'_>) -> Fit {
        match self {
            PrincipalSpec::Everyone => Fit::Direct,
            PrincipalSpec::Account { account, partition } => {
                let partition_ok = match (partition, caller.partition()) {
                    (Some(expected), Some(actual)) => expected == actual,
                    _ => true,
                };
                if caller.is_account_member() && caller.account == account && partition_ok {
                    Fit::Account
                } else {
                    Fit::No
                }
            }
            PrincipalSpec::Arn(arn) => {
                let direct = caller.is_account_member() && caller.arn == arn;
                let via_role = caller.kind == PrincipalKind::AssumedRole
                    && caller.role_arn == Some(arn.as_str());
                if direct || via_role {
                    Fit::Direct
                } else {
                    Fit::No
                }
            }
            PrincipalSpec::Service(name) => {
                if caller.kind == PrincipalKind::Service && caller.service_name() == name {
                    Fit::Direct
                } else {
                    Fit::No
                }
            }
            PrincipalSpec::Federated(_) | PrincipalSpec::CanonicalUser(_) => Fit::No,
        }
    }

    /// Whether this entry names the one identity `identity` exactly (used by `NotPrincipal`).
    fn covers(&self, identity: Identity<'_>) -> bool {
        match (self, identity) {
            (PrincipalSpec::Everyone, _) => true,
            (PrincipalSpec::Account { account, .. }, Identity::Account(a)) => account == a,
            (PrincipalSpec::Arn(arn), Identity::Arn(a)) => arn == a,
            (PrincipalSpec::Service(name), Identity::Service(s)) => name == s,
            _ => false,
        }
    }

    /// The text of an `AWS` entry (account id or ARN), for callers that check existence.
    pub(crate) fn aws_name(&self) -> Option<String> {
        match self {
            PrincipalSpec::Account {
                account,
                partition: Some(partition),
            } => Some(format!("arn:{partition}:iam::{account}:root")),
            PrincipalSpec::Account { account, .. } => Some(account.clone()),
            PrincipalSpec::Arn(arn) => Some(arn.clone()),
            _ => None,
        }
    }
}

/// One link of the chain of identities a caller stands for: its account, its role, itself.
#[derive(Debug, Clone, Copy)]
enum Identity<'a> {
    Account(&'a str),
    Arn(&'a str),
    Service(&'a str),
    Anonymous,
}

fn identity_chain<'a>(caller: &Principal<'a>) -> Vec<Identity<'a>> {
    match caller.kind {
        PrincipalKind::Root => vec![Identity::Account(caller.account)],
        PrincipalKind::User | PrincipalKind::Role => {
            vec![Identity::Account(caller.account), Identity::Arn(caller.arn)]
        }
        PrincipalKind::AssumedRole => {
            let mut chain = vec![Identity::Account(caller.account)];
            if let Some(role) = caller.role_arn {
                chain.push(Identity::Arn(role));
            }
            chain.push(Identity::Arn(caller.arn));
            chain
        }
        PrincipalKind::Service => vec![Identity::Service(caller.service_name())],
        PrincipalKind::Anonymous => vec![Identity::Anonymous],
    }
}

/// Whether a `NotPrincipal` list excludes `caller` from a statement.
///
/// The NotPrincipal guide says AWS may check the account, then the role, then the session,
/// and that a `Deny` with `NotPrincipal` must list the account (and the role) too, or the
/// caller "might" still be denied. We resolve "might" towards refusing access:
/// - for `Deny`, the caller escapes only if *every* link of its chain is listed;
/// - for `Allow`, the caller is excluded if *any* link is listed.
pub(crate) fn not_principal_excludes(
    specs: &[PrincipalSpec],
    caller: &Principal<'_>,
    deny: bool,
) -> bool {
    let chain = identity_chain(caller);
    let listed = |identity: &Identity<'_>| specs.iter().any(|spec| spec.covers(*identity));
    if deny {
        chain.iter().all(listed)
    } else {
        chain.iter().any(listed)
    }
}

fn string_list(value: &Json) -> Result<Vec<&str>, PolicyError> {
    match value {
        Json::String(s) => Ok(vec![s.as_str()]),
        Json::Array(items) if !items.is_empty() => items
            .iter()
            .map(|item| match item {
                Json::String(s) => Ok(s.as_str()),
                _ => Err(PolicyError::InvalidPrincipal),
            })
            .collect(),
        _ => Err(PolicyError::InvalidPrincipal),
    }
}

/// A service, federated provider or canonical user name: non-empty, no wildcards, no spaces.
fn plain_name(text: &str) -> Result<&str, PolicyError> {
    let ok =
        !text.is_empty() && !text.contains(['*', '?']) && !text.chars().any(char::is_whitespace);
    if ok {
        Ok(text)
    } else {
        Err(PolicyError::InvalidPrincipal)
    }
}

fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// Parses one `AWS` principal value.
fn parse_aws(text: &str) -> Result<PrincipalSpec, PolicyError> {
    if text == "*" {
        return Ok(PrincipalSpec::Everyone);
    }
    if is_account_id(text) {
        return Ok(PrincipalSpec::Account {
            account: text.to_owned(),
            partition: None,
        });
    }
    if text.contains(['*', '?']) || text.chars().any(char::is_whitespace) {
        return Err(PolicyError::InvalidPrincipal);
    }
    let parts: Vec<&str> = text.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts[..] else {
        return Err(PolicyError::InvalidPrincipal);
    };
    let partition_ok = partition.starts_with("aws")
        && partition
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-');
    if arn != "arn" || !partition_ok || !region.is_empty() || !is_account_id(account) {
        return Err(PolicyError::InvalidPrincipal);
    }
    let valid = match service {
        "iam" if resource == "root" => {
            return Ok(PrincipalSpec::Account {
                account: account.to_owned(),
                partition: Some(partition.to_owned()),
            });
        }
        "iam" => ["user/", "role/"]
            .iter()
            .any(|prefix| named_path(resource, prefix)),
        "sts" => {
            if let Some(rest) = resource.strip_prefix("assumed-role/") {
                matches!(rest.split_once('/'), Some((role, session))
                    if !role.is_empty() && !session.is_empty() && !session.contains('/'))
            } else {
                named_path(resource, "federated-user/")
            }
        }
        _ => false,
    };
    if valid {
        Ok(PrincipalSpec::Arn(text.to_owned()))
    } else {
        Err(PolicyError::InvalidPrincipal)
    }
}

/// `prefix` followed by an optional path and a non-empty name.
fn named_path(resource: &str, prefix: &str) -> bool {
    resource
        .strip_prefix(prefix)
        .is_some_and(|rest| !rest.is_empty() && !rest.ends_with('/') && !rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PrincipalSpec, PolicyError> {
        parse_aws(text)
    }

    #[test]
    fn accepted_forms() {
        assert_eq!(parse("*"), Ok(PrincipalSpec::Everyone));
        assert!(matches!(
            parse("111122223333"),
            Ok(PrincipalSpec::Account { .. })
        ));
        assert!(matches!(
            parse("arn:aws:iam::111122223333:root"),
            Ok(PrincipalSpec::Account { .. })
        ));
        for arn in [
            "arn:aws:iam::111122223333:user/alice",
            "arn:aws:iam::111122223333:user/division/alice",
            "arn:aws:iam::111122223333:role/service-role/Admin",
            "arn:aws:sts::111122223333:assumed-role/Admin/session",
            "arn:aws:sts::111122223333:federated-user/bob",
            "arn:aws-cn:iam::111122223333:user/alice",
        ] {
            assert_eq!(parse(arn), Ok(PrincipalSpec::Arn(arn.to_owned())), "{arn}");
        }
    }

    #[test]
    fn refused_forms() {
        for bad in [
            "arn:aws:iam::111122223333:user/*",
            "arn:aws:iam::*:root",
            "arn:aws:iam::11112222333:root",
            "arn:aws:iam::111122223333:group/admins",
            "arn:aws:iam:us-east-1:111122223333:user/alice",
            "arn:aws:sts::111122223333:assumed-role/Admin",
            "arn:aws:kms:us-east-1:111122223333:key/k",
            "alice",
            "",
            "arn:aws:iam::111122223333:user/",
        ] {
            assert_eq!(parse(bad), Err(PolicyError::InvalidPrincipal), "{bad}");
        }
    }
}
