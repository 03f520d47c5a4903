//! The change feed: how Keyhold nodes sharing one database hear of each other's writes, so
//! that what each caches in memory stays coherent with the store.
//!
//! A store shared by several processes (PostgreSQL) announces every committed write as
//! [`Change`]s on a [`ChangeFeed`] ([`crate::MetaStore::change_feed`]); a store only one
//! process opens (SQLite) has no feed: its one process sees every write it makes.
//!
//! A feed never hands out a change it cannot vouch for: whenever it may have missed one (it
//! lost its database connection, a sequence number it saw issued never arrived, a
//! notification did not parse), it says [`Change::Everything`], and keeps saying it while
//! it is disconnected, so a node drops its whole cache instead of serving a stale entry.

/// What changed in the store; each names the cached entries to forget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A KMS key by id: its record, materials, tags, grants or imported materials (a key
    /// created, changed or deleted).
    Key(String),
    /// A KMS alias (created, moved or deleted). A key it pointed to is named by its own
    /// [`Change::Key`] when its list of aliases changed.
    Alias {
        account: String,
        region: String,
        name: String,
    },
    /// A Secrets Manager secret by ARN, with its versions.
    Secret(String),
    /// A Parameter Store parameter by ARN, with its versions (created, changed or
    /// deleted).
    Param(String),
    /// Anything in IAM (users, roles, policies, access keys, STS sessions).
    Iam,
    /// Anything at all: forget every cached entry.
    Everything,
}

impl Change {
    /// One line of a notification: fields separated by tabs. A field holding a tab or a
    /// line break (no valid name does) makes the change [`Change::Everything`].
    pub(crate) fn encode(&self) -> String {
        let fields: Vec<&str> = match self {
            Self::Key(id) => vec!["key", id],
            Self::Alias {
                account,
                region,
                name,
            } => vec!["alias", account, region, name],
            Self::Secret(arn) => vec!["secret", arn],
            Self::Param(arn) => vec!["param", arn],
            Self::Iam => vec!["iam"],
            Self::Everything => vec!["all"],
        };
        if fields.iter().any(|f| f.contains(['\t', '\n'])) {
            return "all".to_owned();
        }
        fields.join("\t")
    }

    /// The change one line names; `None` if it does not parse.
    pub(crate) fn decode(line: &str) -> Option<Self> {
        let fields: Vec<&str> = line.split('\t').collect();
        let owned = |s: &&str| (*s).to_owned();
        Some(match fields.as_slice() {
            ["key", id] => Self::Key(owned(id)),
            ["alias", account, region, name] => Self::Alias {
                account: owned(account),
                region: owned(region),
                name: owned(name),
            },
            ["secret", arn] => Self::Secret(owned(arn)),
            ["param", arn] => Self::Param(owned(arn)),
            ["iam"] => Self::Iam,
            ["all"] => Self::Everything,
            _ => return None,
        })
    }
}

/// The receiving end of a store's change feed. Dropping it stops the feed (and closes its
/// database connection) within one poll interval.
pub struct ChangeFeed {
    pub(crate) changes: tokio::sync::mpsc::UnboundedReceiver<Change>,
}

impl ChangeFeed {
    /// The next change; `None` once the feed has stopped.
    pub async fn next(&mut self) -> Option<Change> {
        self.changes.recv().await
    }

    /// A change already waiting, without waiting for one.
    pub fn try_next(&mut self) -> Option<Change> {
        self.changes.try_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_survives_its_encoding() {
        let changes = [
            Change::Key("1234abcd-12ab-34cd-56ef-1234567890ab".into()),
            Change::Alias {
                account: "111122223333".into(),
                region: "eu-west-1".into(),
                name: "alias/app".into(),
            },
            Change::Secret("arn:aws:secretsmanager:us-east-1:111122223333:secret:db-AbCdEf".into()),
            Change::Param("arn:aws:ssm:us-east-1:111122223333:parameter/a/b".into()),
            Change::Iam,
            Change::Everything,
        ];
        for change in changes {
            assert_eq!(Change::decode(&change.encode()), Some(change));
        }
    }

    #[test]
    fn a_field_with_a_separator_becomes_everything() {
        assert_eq!(Change::Key("a\tb".into()).encode(), "all");
        assert_eq!(Change::Secret("a\nb".into()).encode(), "all");
        assert_eq!(Change::decode("key"), None);
        assert_eq!(Change::decode("nonsense\tx"), None);
    }

    #[test]
    fn a_scope_change_of_an_older_node_is_not_understood() {
        // Nodes before per-parameter changes announced a whole scope: a node that hears
        // one drops everything rather than ignore it.
        assert_eq!(Change::decode("params\t111122223333\tus-east-1"), None);
    }
}
