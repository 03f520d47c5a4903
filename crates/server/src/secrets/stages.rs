//! UpdateSecretVersionStage: move a staging label from one version to another, attach it,
//! or remove it.
//!
//! A label that is attached elsewhere can only be moved by naming the version it leaves
//! (`RemoveFromVersionId`); moving `AWSCURRENT` moves `AWSPREVIOUS` to the version it left;
//! `AWSCURRENT` cannot be removed without a destination. A version left without labels is
//! deprecated (and eventually pruned).

use keyhold_proto::secretsmanager::*;

use super::SecretsService;
use super::error::SecretsError;
use super::labels::{attach, check_label_count, detach};
use super::secret::{AWSCURRENT, Secret};
use crate::context::RequestContext;

pub async fn update_secret_version_stage(
    service: &SecretsService,
    ctx: &RequestContext,
    input: UpdateSecretVersionStageRequest,
) -> Result<UpdateSecretVersionStageResponse, SecretsError> {
    // A label moved on another node meanwhile makes the store refuse this write; the move is
    // then decided again on what is stored.
    crate::write_locks::retry_conflicts(|| update_once(service, ctx, &input)).await
}

async fn update_once(
    service: &SecretsService,
    ctx: &RequestContext,
    input: &UpdateSecretVersionStageRequest,
) -> Result<UpdateSecretVersionStageResponse, SecretsError> {
    let _guard = service.writes.lock().await;
    let secret = service.resolve_writable(ctx, &input.secret_id).await?;
    let mut next = (*secret).clone();
    apply(
        &mut next,
        &input.version_stage,
        input.remove_from_version_id.as_deref(),
        input.move_to_version_id.as_deref(),
    )?;
    let now = service.now_ms();
    next.meta.last_changed_ms = now;
    if input.version_stage == AWSCURRENT && input.move_to_version_id.is_some() {
        super::rotation::value_changed(&mut next.meta, now);
    }
    let stored = service.save(ctx, secret, next).await?;
    Ok(UpdateSecretVersionStageResponse {
        arn: Some(stored.arn.clone()),
        name: Some(stored.name.clone()),
    })
}

/// Applies one label change to `secret`.
fn apply(
    secret: &mut Secret,
    label: &str,
    remove_from: Option<&str>,
    move_to: Option<&str>,
) -> Result<(), SecretsError> {
    for id in [remove_from, move_to].into_iter().flatten() {
        if secret.version(id).is_none() {
            return Err(SecretsError::NoSuchVersion {
                version_id: id.to_owned(),
            });
        }
    }
    if let Some(from) = remove_from
        && !secret.labels(from).iter().any(|l| l == label)
    {
        return Err(SecretsError::StageNotOnVersion {
            stage: label.to_owned(),
            version_id: from.to_owned(),
        });
    }
    match move_to {
        Some(to) => {
            if let Some(holder) = secret.version_with(label)
                && holder != to
                && remove_from != Some(holder)
            {
                return Err(SecretsError::RemoveFromRequired {
                    stage: label.to_owned(),
                    version_id: holder.to_owned(),
                });
            }
            attach(&mut secret.meta.stages, to, &[label.to_owned()]);
        }
        None => {
            let from = remove_from.ok_or(SecretsError::NoVersionToChange)?;
            if label == AWSCURRENT {
                return Err(SecretsError::CurrentCannotBeRemoved);
            }
            detach(&mut secret.meta.stages, from, label);
        }
    }
    check_label_count(secret)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use keyhold_store::SecretVersionRecord;

    use super::*;
    use crate::secrets::secret::Meta;

    fn secret(stages: &[(&str, &[&str])]) -> Secret {
        let versions = stages
            .iter()
            .enumerate()
            .map(|(i, (id, _))| {
                Arc::new(SecretVersionRecord {
                    secret_arn: "arn".into(),
                    version_id: (*id).into(),
                    created_ms: i64::try_from(i).unwrap(),
                    last_accessed_ms: None,
                    kms_key_id: None,
                    kms_key_arn: String::new(),
                    data_key: Vec::new(),
                    sealed_value: Vec::new(),
                })
            })
            .collect();
        let stages: BTreeMap<String, Vec<String>> = stages
            .iter()
            .filter(|(_, l)| !l.is_empty())
            .map(|(id, l)| ((*id).into(), l.iter().map(|s| (*s).into()).collect()))
            .collect();
        Secret {
            arn: "arn".into(),
            account: "a".into(),
            region: "r".into(),
            name: "n".into(),
            created_ms: 0,
            deletion_ms: None,
            meta: Meta {
                stages,
                ..Meta::default()
            },
            versions,
            revision: 1,
        }
    }

    #[test]
    fn moving_a_label_held_elsewhere_needs_remove_from() {
        let mut s = secret(&[("v1", &["AWSCURRENT"]), ("v2", &["AWSPENDING"])]);
        assert_eq!(
            apply(&mut s, "AWSCURRENT", None, Some("v2")),
            Err(SecretsError::RemoveFromRequired {
                stage: "AWSCURRENT".into(),
                version_id: "v1".into()
            })
        );
        apply(&mut s, "AWSCURRENT", Some("v1"), Some("v2")).unwrap();
        assert_eq!(s.labels("v1"), ["AWSPREVIOUS"]);
        assert_eq!(s.labels("v2"), ["AWSCURRENT", "AWSPENDING"]);
    }

    #[test]
    fn removing_labels() {
        let mut s = secret(&[("v1", &["AWSCURRENT"]), ("v2", &["AWSPENDING"])]);
        apply(&mut s, "AWSPENDING", Some("v2"), None).unwrap();
        assert!(s.labels("v2").is_empty());
        assert_eq!(
            apply(&mut s, "AWSCURRENT", Some("v1"), None),
            Err(SecretsError::CurrentCannotBeRemoved)
        );
        assert_eq!(
            apply(&mut s, "X", Some("v1"), None),
            Err(SecretsError::StageNotOnVersion {
                stage: "X".into(),
                version_id: "v1".into()
            })
        );
        assert_eq!(
            apply(&mut s, "X", Some("nope"), None),
            Err(SecretsError::NoSuchVersion {
                version_id: "nope".into()
            })
        );
        assert_eq!(
            apply(&mut s, "X", None, None),
            Err(SecretsError::NoVersionToChange)
        );
    }

    #[test]
    fn custom_label_attaches_freely_when_unused() {
        let mut s = secret(&[("v1", &["AWSCURRENT"]), ("v2", &[])]);
        apply(&mut s, "mine", None, Some("v2")).unwrap();
        assert_eq!(s.labels("v2"), ["mine"]);
    }
}
