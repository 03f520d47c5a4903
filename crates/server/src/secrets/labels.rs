//! Staging labels and version retention, as AWS documents them:
//!
//! - a label is attached to one version at a time: attaching it moves it;
//! - moving `AWSCURRENT` moves `AWSPREVIOUS` to the version `AWSCURRENT` left;
//! - a secret carries at most 20 labels across all its versions;
//! - versions without labels are deprecated: they stay listable (`IncludeDeprecated`) until
//!   pruned, which removes them once they are beyond the 100 most recent versions, but never
//!   one younger than 24 hours; a secret never has more than 100 versions.

use std::collections::BTreeMap;

use super::error::SecretsError;
use super::secret::{AWSCURRENT, AWSPREVIOUS, Secret};

/// Labels across all versions of one secret.
pub const MAX_LABELS: usize = 20;
/// Versions of one secret.
pub const MAX_VERSIONS: usize = 100;
/// A deprecated version younger than this is never pruned.
const KEEP_YOUNG_MS: i64 = 24 * 3_600_000;

/// Attaches `labels` to `version_id`, moving each from wherever it was (and `AWSPREVIOUS`
/// along with `AWSCURRENT`).
pub fn attach(stages: &mut BTreeMap<String, Vec<String>>, version_id: &str, labels: &[String]) {
    for label in labels {
        let holder = holder_of(stages, label);
        if holder.as_deref() == Some(version_id) {
            continue;
        }
        if let Some(holder) = &holder {
            detach(stages, holder, label);
        }
        if label == AWSCURRENT
            && let Some(previous_current) = holder
        {
            let previous = AWSPREVIOUS.to_owned();
            if let Some(p) = holder_of(stages, &previous) {
                detach(stages, &p, &previous);
            }
            add(stages, &previous_current, &previous);
        }
        add(stages, version_id, label);
    }
    // AWSCURRENT and AWSPREVIOUS never share a version.
    if labels.iter().any(|l| l == AWSCURRENT) {
        detach(stages, version_id, AWSPREVIOUS);
    }
}

/// Removes one label from one version (a no-op if it is not there).
pub fn detach(stages: &mut BTreeMap<String, Vec<String>>, version_id: &str, label: &str) {
    if let Some(labels) = stages.get_mut(version_id) {
        labels.retain(|l| l != label);
        if labels.is_empty() {
            stages.remove(version_id);
        }
    }
}

fn add(stages: &mut BTreeMap<String, Vec<String>>, version_id: &str, label: &str) {
    let labels = stages.entry(version_id.to_owned()).or_default();
    if !labels.iter().any(|l| l == label) {
        labels.push(label.to_owned());
        labels.sort();
    }
}

fn holder_of(stages: &BTreeMap<String, Vec<String>>, label: &str) -> Option<String> {
    stages
        .iter()
        .find(|(_, labels)| labels.iter().any(|l| l == label))
        .map(|(id, _)| id.clone())
}

/// Checks the label quota after a change.
pub fn check_label_count(secret: &Secret) -> Result<(), SecretsError> {
    if secret.label_count() > MAX_LABELS {
        return Err(SecretsError::TooManyLabels);
    }
    Ok(())
}

/// The deprecated versions to remove now (AWS's retention rule), and whether the secret
/// then still has more versions than allowed.
pub fn prune(secret: &Secret, now_ms: i64) -> Result<Vec<String>, SecretsError> {
    let mut newest_first: Vec<_> = secret.versions.iter().collect();
    newest_first.sort_by(|a, b| (b.created_ms, &b.version_id).cmp(&(a.created_ms, &a.version_id)));
    let removed: Vec<String> = newest_first
        .iter()
        .skip(MAX_VERSIONS)
        .filter(|v| secret.labels(&v.version_id).is_empty())
        .filter(|v| now_ms - v.created_ms >= KEEP_YOUNG_MS)
        .map(|v| v.version_id.clone())
        .collect();
    if secret.versions.len() - removed.len() > MAX_VERSIONS {
        return Err(SecretsError::TooManyVersions);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stages(entries: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        entries
            .iter()
            .map(|(id, labels)| {
                (
                    (*id).to_owned(),
                    labels.iter().map(|l| (*l).to_owned()).collect(),
                )
            })
            .collect()
    }

    fn labels(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn moving_current_moves_previous() {
        let mut s = stages(&[("v1", &["AWSPREVIOUS"]), ("v2", &["AWSCURRENT"])]);
        attach(&mut s, "v3", &labels(&["AWSCURRENT"]));
        assert_eq!(
            s,
            stages(&[("v2", &["AWSPREVIOUS"]), ("v3", &["AWSCURRENT"])])
        );
    }

    #[test]
    fn pending_then_promoted_keeps_pending() {
        // The rotation dance: v2 gets AWSPENDING, then AWSCURRENT moves to it.
        let mut s = stages(&[("v1", &["AWSCURRENT"])]);
        attach(&mut s, "v2", &labels(&["AWSPENDING"]));
        attach(&mut s, "v2", &labels(&["AWSCURRENT"]));
        assert_eq!(
            s,
            stages(&[
                ("v1", &["AWSPREVIOUS"]),
                ("v2", &["AWSCURRENT", "AWSPENDING"])
            ])
        );
    }

    #[test]
    fn custom_labels_move_alone() {
        // AWS's answer to PutSecretValue with [four, one, two] after [one, three, two].
        let mut s = stages(&[("v1", &["AWSCURRENT"]), ("v2", &["one", "three", "two"])]);
        attach(&mut s, "v3", &labels(&["four", "one", "two"]));
        assert_eq!(
            s,
            stages(&[
                ("v1", &["AWSCURRENT"]),
                ("v2", &["three"]),
                ("v3", &["four", "one", "two"])
            ])
        );
    }

    #[test]
    fn current_onto_previous_holder() {
        let mut s = stages(&[("v1", &["AWSPREVIOUS"]), ("v2", &["AWSCURRENT"])]);
        attach(&mut s, "v1", &labels(&["AWSCURRENT"]));
        assert_eq!(
            s,
            stages(&[("v1", &["AWSCURRENT"]), ("v2", &["AWSPREVIOUS"])])
        );
    }

    #[test]
    fn detach_drops_empty_versions() {
        let mut s = stages(&[("v1", &["x"])]);
        detach(&mut s, "v1", "x");
        assert!(s.is_empty());
    }
}
