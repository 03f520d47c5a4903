//! Partitions, scopes and ARNs.

use std::fmt;

/// The AWS partition of a region: `aws`, `aws-cn` for `cn-*`, `aws-us-gov` for `us-gov-*`.
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else {
        "aws"
    }
}

pub use keyhold_proto::region::is_region_name;

/// Whether `account` is a 12-digit AWS account id.
pub fn is_account_id(account: &str) -> bool {
    account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
}

/// Where a resource lives: an account in a region (and so a partition).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Scope {
    pub account: String,
    pub region: String,
    pub partition: &'static str,
}

impl Scope {
    pub fn new(account: impl Into<String>, region: impl Into<String>) -> Self {
        let region = region.into();
        Self {
            account: account.into(),
            partition: partition_of(&region),
            region,
        }
    }

    /// `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
    pub fn arn(&self, service: &str, resource: impl fmt::Display) -> String {
        format!(
            "arn:{}:{service}:{}:{}:{resource}",
            self.partition, self.region, self.account
        )
    }

    /// The account root: `arn:PARTITION:iam::ACCOUNT:root`.
    pub fn root_arn(&self) -> String {
        format!("arn:{}:iam::{}:root", self.partition, self.account)
    }
}

/// A parsed ARN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    pub fn parse(text: &'a str) -> Option<Self> {
        let mut parts = text.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        let arn = Self {
            partition: parts.next()?,
            service: parts.next()?,
            region: parts.next()?,
            account: parts.next()?,
            resource: parts.next()?,
        };
        (!arn.partition.is_empty() && !arn.service.is_empty()).then_some(arn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions() {
        assert_eq!(partition_of("us-east-1"), "aws");
        assert_eq!(partition_of("cn-north-1"), "aws-cn");
        assert_eq!(partition_of("us-gov-west-1"), "aws-us-gov");
        let s = Scope::new("111122223333", "cn-north-1");
        assert_eq!(
            s.arn("kms", "key/x"),
            "arn:aws-cn:kms:cn-north-1:111122223333:key/x"
        );
    }

    #[test]
    fn arns() {
        let a = Arn::parse("arn:aws:kms:us-east-1:111122223333:alias/a:b").unwrap();
        assert_eq!(a.resource, "alias/a:b");
        assert!(Arn::parse("arn:aws:kms").is_none());
        assert!(Arn::parse("nope:aws:kms:r:a:x").is_none());
    }
}
