//! IAM's names and their spellings: ARNs, name keys (IAM names ignore case), the
//! URL-encoded policy documents IAM returns, and tag-list checks.
//!
//! IAM is global: ARNs carry the partition of the request's region but no region.

use keyhold_proto::iam::Tag;

use super::error::IamError;

/// `arn:PARTITION:iam::ACCOUNT:user/PATH/NAME` (the path starts and ends with `/`).
pub fn user_arn(partition: &str, account: &str, path: &str, name: &str) -> String {
    format!("arn:{partition}:iam::{account}:user{path}{name}")
}

/// `arn:PARTITION:iam::ACCOUNT:role/PATH/NAME`.
pub fn role_arn(partition: &str, account: &str, path: &str, name: &str) -> String {
    format!("arn:{partition}:iam::{account}:role{path}{name}")
}

/// `arn:PARTITION:sts::ACCOUNT:assumed-role/ROLE/SESSION` (no path, as AWS writes it).
pub fn assumed_role_arn(partition: &str, account: &str, role: &str, session: &str) -> String {
    format!("arn:{partition}:sts::{account}:assumed-role/{role}/{session}")
}

/// The key a name is unique under in its account: IAM user and role names ignore case.
pub fn name_key(account: &str, name: &str) -> (String, String) {
    (account.to_owned(), name.to_lowercase())
}

/// A policy document as IAM returns it: percent-encoded (RFC 3986, every byte but the
/// unreserved characters), which botocore and the AWS CLI decode and the other SDKs pass
/// through.
pub fn url_encode(document: &str) -> String {
    let mut out = String::with_capacity(document.len() * 2);
    keyhold_proto::sigv4::percent_encode(document.as_bytes(), false, &mut out);
    out
}

/// The size IAM counts against its policy quotas: characters other than whitespace.
pub fn policy_size(document: &str) -> usize {
    document.chars().filter(|c| !c.is_whitespace()).count()
}

/// Refuses tag lists with a key twice (ignoring case, as IAM compares tag keys).
pub fn check_tags(tags: &[Tag]) -> Result<(), IamError> {
    let mut seen = std::collections::HashSet::new();
    for tag in tags {
        if !seen.insert(tag.key.to_lowercase()) {
            return Err(IamError::DuplicateTagKeys);
        }
    }
    Ok(())
}

/// A tag as stored in an entity's metadata.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredTag {
    pub key: String,
    pub value: String,
}

impl StoredTag {
    pub fn from_wire(tags: &[Tag]) -> Vec<Self> {
        tags.iter()
            .map(|t| Self {
                key: t.key.clone(),
                value: t.value.clone(),
            })
            .collect()
    }

    pub fn to_wire(tags: &[Self]) -> Option<Vec<Tag>> {
        (!tags.is_empty()).then(|| {
            tags.iter()
                .map(|t| Tag {
                    key: t.key.clone(),
                    value: t.value.clone(),
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_carry_the_path() {
        assert_eq!(
            user_arn("aws", "111122223333", "/", "alice"),
            "arn:aws:iam::111122223333:user/alice"
        );
        assert_eq!(
            role_arn("aws-cn", "111122223333", "/ops/", "admin"),
            "arn:aws-cn:iam::111122223333:role/ops/admin"
        );
    }

    #[test]
    fn documents_are_percent_encoded() {
        assert_eq!(
            url_encode(r#"{"Version": "2012-10-17"}"#),
            "%7B%22Version%22%3A%20%222012-10-17%22%7D"
        );
        assert_eq!(url_encode("é"), "%C3%A9");
    }

    #[test]
    fn policy_size_ignores_whitespace() {
        assert_eq!(policy_size("{ \"a\" :\n 1 }"), 7);
    }

    #[test]
    fn duplicate_tag_keys_ignore_case() {
        let tag = |k: &str| Tag {
            key: k.into(),
            value: String::new(),
        };
        assert!(check_tags(&[tag("a"), tag("b")]).is_ok());
        assert_eq!(
            check_tags(&[tag("Team"), tag("team")]),
            Err(IamError::DuplicateTagKeys)
        );
    }
}
