//! RotateSecret and CancelRotateSecret: the rotation configuration, and the start of a
//! rotation (the engine that runs it is [`super::rotate`]).
//!
//! Keyhold validates and stores the configuration (`RotationLambdaARN`, `RotationRules`:
//! `AutomaticallyAfterDays` 1–1000 or a `ScheduleExpression`, and a `Duration`) and reports
//! `RotationEnabled`, `NextRotationDate` and `LastRotatedDate` as AWS does. A RotateSecret
//! with `RotateImmediately` absent or true starts a rotation in the background with the
//! request's `ClientRequestToken` as the new version's id and answers that id; the function
//! must be one of the config's `[[rotation_functions]]` (otherwise AWS's answer for a
//! function it cannot invoke). While a rotation runs, or while a failed one left
//! `AWSPENDING` on a version other than `AWSCURRENT`'s, RotateSecret answers AWS's "A
//! previous rotation isn't complete. That rotation will be reattempted." — and reattempts
//! the failed one.

use keyhold_proto::Timestamp;
use keyhold_proto::secretsmanager::*;

use super::SecretsService;
use super::error::SecretsError;
use super::rotate::pending_version;
use super::schedule::Schedule;
use super::secret::{Meta, Rotation};
use crate::context::RequestContext;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

pub async fn rotate_secret(
    service: &SecretsService,
    ctx: &RequestContext,
    input: RotateSecretRequest,
) -> Result<RotateSecretResponse, SecretsError> {
    if input.client_request_token.is_none() {
        return Err(SecretsError::RotationTokenRequired);
    }
    let rules = input
        .rotation_rules
        .as_ref()
        .map(Rules::parse)
        .transpose()?;

    let _guard = service.writes.lock().await;
    let secret = service.resolve_writable(ctx, &input.secret_id).await?;
    let previous = secret.meta.rotation.clone().unwrap_or_default();
    let lambda_arn = input
        .rotation_lambda_arn
        .filter(|a| !a.is_empty())
        .or(previous.lambda_arn.clone());
    let external_role_arn = input
        .external_secret_rotation_role_arn
        .filter(|a| !a.is_empty())
        .or(previous.external_role_arn.clone());
    if lambda_arn.is_none() && external_role_arn.is_none() {
        return Err(SecretsError::NoRotationFunction);
    }
    let immediately = input.rotate_immediately != Some(false);
    let function = match (&lambda_arn, immediately) {
        (_, false) => None,
        (Some(lambda), true) => Some(
            service
                .rotation_function(lambda)
                .ok_or(SecretsError::LambdaNotInvokable)?,
        ),
        // Managed external secrets (a rotation role, no function): not run by Keyhold.
        (None, true) => return Err(SecretsError::RotationExecutionUnsupported),
    };
    if service.is_rotating(&secret.arn) {
        return Err(SecretsError::RotationInProgress);
    }
    if let Some(pending) = pending_version(&secret) {
        if let Some(function) = function {
            service.start_rotation(&secret.arn, pending, function);
        }
        return Err(SecretsError::RotationInProgress);
    }
    let rules = rules.unwrap_or(Rules {
        after_days: previous.after_days,
        schedule_expression: previous.schedule_expression.clone(),
        duration: previous.duration.clone(),
    });
    let now = service.now_ms();
    let mut next = (*secret).clone();
    let mut rotation = Rotation {
        enabled: true,
        lambda_arn,
        after_days: rules.after_days,
        schedule_expression: rules.schedule_expression,
        duration: rules.duration,
        last_rotated_ms: previous.last_rotated_ms,
        next_rotation_ms: None,
        due_ms: None,
        external_metadata: input
            .external_secret_rotation_metadata
            .map(|items| {
                items
                    .into_iter()
                    .map(|i| (i.key.unwrap_or_default(), i.value.unwrap_or_default()))
                    .collect()
            })
            .or(previous.external_metadata),
        external_role_arn,
    };
    schedule_next(&mut rotation, now);
    next.meta.rotation = Some(rotation);
    next.meta.last_changed_ms = now;
    let stored = service.save(ctx, secret, next).await?;
    let token = input.client_request_token.unwrap_or_default();
    let version_id = match function {
        Some(function) => {
            service.start_rotation(&stored.arn, &token, function);
            Some(token)
        }
        None => None,
    };
    Ok(RotateSecretResponse {
        arn: Some(stored.arn.clone()),
        name: Some(stored.name.clone()),
        version_id,
    })
}

pub async fn cancel_rotate_secret(
    service: &SecretsService,
    ctx: &RequestContext,
    input: CancelRotateSecretRequest,
) -> Result<CancelRotateSecretResponse, SecretsError> {
    let _guard = service.writes.lock().await;
    let secret = service.resolve_writable(ctx, &input.secret_id).await?;
    let configured = secret
        .meta
        .rotation
        .as_ref()
        .is_some_and(|r| r.lambda_arn.is_some() || r.external_role_arn.is_some());
    if !configured {
        return Err(SecretsError::RotationNotConfigured);
    }
    let pending = pending_version(&secret).map(str::to_owned);
    let mut next = (*secret).clone();
    if let Some(rotation) = next.meta.rotation.as_mut() {
        rotation.enabled = false;
        rotation.next_rotation_ms = None;
        rotation.due_ms = None;
    }
    next.meta.last_changed_ms = service.now_ms();
    let stored = service.save(ctx, secret, next).await?;
    Ok(CancelRotateSecretResponse {
        arn: Some(stored.arn.clone()),
        name: Some(stored.name.clone()),
        version_id: pending,
    })
}

/// Validated `RotationRules`.
struct Rules {
    after_days: Option<i64>,
    schedule_expression: Option<String>,
    duration: Option<String>,
}

impl Rules {
    fn parse(rules: &RotationRulesType) -> Result<Self, SecretsError> {
        let schedule = rules.schedule_expression.as_deref();
        if rules.automatically_after_days.is_some() && schedule.is_some() {
            return Err(SecretsError::BothRotationSchedules);
        }
        let parsed = schedule
            .map(|expression| {
                Schedule::parse(expression).ok_or_else(|| SecretsError::InvalidSchedule {
                    expression: expression.to_owned(),
                })
            })
            .transpose()?;
        if let Some(duration) = &rules.duration {
            let hours = duration_hours(duration).ok_or(SecretsError::InvalidDuration)?;
            let max = match &parsed {
                Some(schedule) => schedule.max_window_hours(),
                None if rules.automatically_after_days.is_some() => 24,
                None => return Err(SecretsError::InvalidDuration),
            };
            if !(1..=max).contains(&hours) {
                return Err(SecretsError::InvalidDuration);
            }
        }
        Ok(Self {
            after_days: rules.automatically_after_days,
            schedule_expression: rules.schedule_expression.clone(),
            duration: rules.duration.clone(),
        })
    }
}

fn duration_hours(duration: &str) -> Option<i64> {
    duration.strip_suffix('h')?.parse().ok()
}

/// Sets the next window of an enabled rotation: `NextRotationDate` (its close) and when
/// the sweep rotates (its opening).
pub fn schedule_next(rotation: &mut Rotation, now: i64) {
    let window = next_window(rotation, now);
    rotation.due_ms = window.map(|(start, _)| start);
    rotation.next_rotation_ms = window.map(|(_, end)| end);
}

/// The close of the next rotation window: rotation happens "on or before" it.
#[cfg(test)]
fn next_window_end(rotation: &Rotation, now: i64) -> Option<i64> {
    next_window(rotation, now).map(|(_, end)| end)
}

/// The next rotation window (opening, close).
fn next_window(rotation: &Rotation, now: i64) -> Option<(i64, i64)> {
    if !rotation.enabled {
        return None;
    }
    let base = rotation.last_rotated_ms.unwrap_or(now);
    let duration = rotation
        .duration
        .as_deref()
        .and_then(duration_hours)
        .map(|h| h * HOUR_MS);
    if let Some(expression) = &rotation.schedule_expression {
        let schedule = Schedule::parse(expression)?;
        let start = schedule.next_start(base, now)?;
        let window = duration.unwrap_or(if schedule.is_hourly() {
            HOUR_MS
        } else {
            DAY_MS - start.rem_euclid(DAY_MS)
        });
        return Some((start, start + window));
    }
    let days = rotation.after_days?;
    let mut start = base - base.rem_euclid(DAY_MS) + days * DAY_MS;
    while start + DAY_MS <= now {
        start += days * DAY_MS;
    }
    Some((start, start + duration.unwrap_or(DAY_MS)))
}

/// A new current value counts as a rotation for `AutomaticallyAfterDays` schedules: the
/// next window is counted from it.
pub fn value_changed(meta: &mut Meta, now: i64) {
    if let Some(rotation) = meta.rotation.as_mut()
        && rotation.enabled
        && rotation.schedule_expression.is_none()
    {
        let mut counted = Rotation {
            last_rotated_ms: Some(now),
            ..rotation.clone()
        };
        schedule_next(&mut counted, now);
        rotation.next_rotation_ms = counted.next_rotation_ms;
        rotation.due_ms = counted.due_ms;
    }
}

/// `RotationRules` as DescribeSecret and ListSecrets report them (with
/// `AutomaticallyAfterDays` derived from a schedule expression, as AWS does).
pub fn rules_of(meta: &Meta) -> Option<RotationRulesType> {
    let rotation = meta.rotation.as_ref()?;
    if rotation.after_days.is_none() && rotation.schedule_expression.is_none() {
        return None;
    }
    let after_days = rotation.after_days.or_else(|| {
        rotation
            .schedule_expression
            .as_deref()
            .and_then(Schedule::parse)
            .and_then(|s| s.interval_days())
    });
    Some(RotationRulesType {
        automatically_after_days: after_days,
        duration: rotation.duration.clone(),
        schedule_expression: rotation.schedule_expression.clone(),
    })
}

pub fn next_rotation_of(meta: &Meta) -> Option<Timestamp> {
    let rotation = meta.rotation.as_ref()?;
    rotation
        .enabled
        .then_some(rotation.next_rotation_ms)
        .flatten()
        .map(Timestamp::from_millis)
}

pub fn external_metadata_of(meta: &Meta) -> Option<Vec<ExternalSecretRotationMetadataItem>> {
    let items = meta.rotation.as_ref()?.external_metadata.as_ref()?;
    Some(
        items
            .iter()
            .map(|(k, v)| ExternalSecretRotationMetadataItem {
                key: Some(k.clone()),
                value: Some(v.clone()),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(
        after: Option<i64>,
        schedule: Option<&str>,
        duration: Option<&str>,
    ) -> RotationRulesType {
        RotationRulesType {
            automatically_after_days: after,
            schedule_expression: schedule.map(str::to_owned),
            duration: duration.map(str::to_owned),
        }
    }

    #[test]
    fn rule_validation() {
        assert!(Rules::parse(&rules(Some(30), None, None)).is_ok());
        assert!(matches!(
            Rules::parse(&rules(Some(30), Some("rate(10 days)"), None)),
            Err(SecretsError::BothRotationSchedules)
        ));
        assert!(matches!(
            Rules::parse(&rules(None, Some("every day"), None)),
            Err(SecretsError::InvalidSchedule { .. })
        ));
        assert!(Rules::parse(&rules(None, Some("rate(12 hours)"), Some("3h"))).is_ok());
        assert!(matches!(
            Rules::parse(&rules(None, Some("rate(4 hours)"), Some("5h"))),
            Err(SecretsError::InvalidDuration)
        ));
        assert!(matches!(
            Rules::parse(&rules(None, Some("cron(0 22 * * ? *)"), Some("3h"))),
            Err(SecretsError::InvalidDuration)
        ));
        assert!(matches!(
            Rules::parse(&rules(None, None, Some("3h"))),
            Err(SecretsError::InvalidDuration)
        ));
    }

    #[test]
    fn next_rotation_for_days() {
        let now = 10 * DAY_MS + 5 * HOUR_MS;
        let rotation = Rotation {
            enabled: true,
            after_days: Some(30),
            ..Rotation::default()
        };
        assert_eq!(next_window_end(&rotation, now), Some(41 * DAY_MS));
    }
}
