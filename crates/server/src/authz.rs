//! AWS's policy evaluation across layers, shared by every service: which policies must
//! allow a call, and which layer to blame when none does.
//!
//! Evaluation (AWS IAM User Guide, "Policy evaluation logic"; KMS Developer Guide,
//! "Determining access"):
//!
//! 1. An explicit `Deny` in any applicable policy (the caller's identity policies, the
//!    resource's policy) refuses the call.
//! 2. **KMS keys** ([`ResourceRule::KeyPolicy`]): the key policy is the root of trust. It
//!    must allow — naming the caller (or `*`) directly, or naming the caller's account,
//!    which delegates to IAM so that an identity policy must allow too (the account root
//!    needs none). Across accounts the caller's identity policy must always allow as well.
//! 3. **Other resources** ([`ResourceRule::Optional`], e.g. a secret and its resource
//!    policy): in the resource's own account an identity policy allow *or* a resource
//!    policy allow naming the caller suffices; across accounts both are needed.
//!
//! The account root has every permission its account has, so its "identity policy" always
//! allows; it is still bound by resource policies and explicit denies.

use std::borrow::Cow;

use keyhold_policy::{ConditionContext, Evaluation, Policy, PrincipalMatch, Request};
use keyhold_proto::Timestamp;

use crate::context::{Principal, PrincipalKind, RequestContext};

/// How the resource's own policy takes part.
#[derive(Clone, Copy)]
pub enum ResourceRule<'a> {
    /// A KMS key policy: required. `None` when the stored policy cannot be read (deny all).
    KeyPolicy(Option<&'a Policy>),
    /// An optional resource policy (Secrets Manager secrets, ...).
    Optional(Option<&'a Policy>),
    /// No resource policy exists for this kind of resource (IAM, STS, SSM parameters).
    None,
}

/// Why a call was refused, worded as AWS words it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied {
    pub principal: String,
    pub action: String,
    pub resource: String,
    pub reason: DenyReason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenyReason {
    ExplicitDenyInIdentityPolicy,
    ExplicitDenyInResourcePolicy,
    NoIdentityPolicyAllows,
    NoResourcePolicyAllows,
}

impl Denied {
    /// AWS's current access-denied message, naming the layer that denied.
    pub fn message(&self) -> String {
        let (p, a, r) = (&self.principal, &self.action, &self.resource);
        let why = match self.reason {
            DenyReason::ExplicitDenyInIdentityPolicy => {
                "with an explicit deny in an identity-based policy".to_owned()
            }
            DenyReason::ExplicitDenyInResourcePolicy => {
                "with an explicit deny in a resource-based policy".to_owned()
            }
            DenyReason::NoIdentityPolicyAllows => {
                format!("because no identity-based policy allows the {a} action")
            }
            DenyReason::NoResourcePolicyAllows => {
                format!("because no resource-based policy allows the {a} action")
            }
        };
        format!("User: {p} is not authorized to perform: {a} on resource: {r} {why}")
    }
}

/// One access decision.
pub struct Access<'a> {
    pub principal: &'a Principal,
    /// `kms:Decrypt`, `secretsmanager:GetSecretValue`, ...
    pub action: &'a str,
    pub resource: &'a str,
    /// The account that owns the resource.
    pub resource_account: &'a str,
    pub rule: ResourceRule<'a>,
    pub context: &'a dyn ConditionContext,
}

/// Decides one call for the request `ctx`, and records in its ledger that the decision was
/// made (what [`crate::access`] checks every operation's declaration against). Every
/// service decides through this.
pub fn decide(ctx: &RequestContext, access: &Access<'_>) -> Result<(), Denied> {
    ctx.note_decision(access.action, access.resource);
    authorize(access)
}

/// Decides one call: the pure engine. Services decide through [`decide`], whose record
/// the dispatcher checks; a decision made here alone does not count as the declared check.
pub fn authorize(access: &Access<'_>) -> Result<(), Denied> {
    let principal = access.principal;
    let policy_principal = principal.policy_principal();
    let request = Request {
        principal: &policy_principal,
        action: access.action,
        resource: access.resource,
        context: access.context,
    };
    let denied = |reason| Denied {
        principal: principal.arn.clone(),
        action: access.action.to_owned(),
        resource: access.resource.to_owned(),
        reason,
    };

    let identity = identity_decision(principal, &request);
    if identity == Decision::Deny {
        return Err(denied(DenyReason::ExplicitDenyInIdentityPolicy));
    }
    let identity_allows = identity == Decision::Allow;
    let same_account = principal.account == access.resource_account;

    match access.rule {
        ResourceRule::KeyPolicy(policy) => {
            let Some(policy) = policy else {
                return Err(denied(DenyReason::NoResourcePolicyAllows));
            };
            match policy.evaluate(&request) {
                Evaluation::ExplicitDeny => Err(denied(DenyReason::ExplicitDenyInResourcePolicy)),
                Evaluation::NotApplicable => Err(denied(DenyReason::NoResourcePolicyAllows)),
                Evaluation::Allow {
                    principal_match: PrincipalMatch::Direct,
                } if same_account => Ok(()),
                Evaluation::Allow { .. } if identity_allows => Ok(()),
                Evaluation::Allow { .. } => Err(denied(DenyReason::NoIdentityPolicyAllows)),
            }
        }
        ResourceRule::Optional(policy) => {
            let resource = policy.map_or(Evaluation::NotApplicable, |p| p.evaluate(&request));
            match resource {
                Evaluation::ExplicitDeny => Err(denied(DenyReason::ExplicitDenyInResourcePolicy)),
                _ if same_account && identity_allows => Ok(()),
                Evaluation::Allow {
                    principal_match: PrincipalMatch::Direct,
                } if same_account => Ok(()),
                _ if same_account => Err(denied(DenyReason::NoIdentityPolicyAllows)),
                Evaluation::Allow { .. } if identity_allows => Ok(()),
                Evaluation::Allow { .. } => Err(denied(DenyReason::NoIdentityPolicyAllows)),
                Evaluation::NotApplicable => Err(denied(DenyReason::NoResourcePolicyAllows)),
            }
        }
        ResourceRule::None if same_account && identity_allows => Ok(()),
        ResourceRule::None if same_account => Err(denied(DenyReason::NoIdentityPolicyAllows)),
        ResourceRule::None => Err(denied(DenyReason::NoResourcePolicyAllows)),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Decision {
    Allow,
    Deny,
    Neither,
}

/// What the caller's identity policies say: the root's implicitly allow everything.
fn identity_decision(principal: &Principal, request: &Request<'_>) -> Decision {
    let mut allowed = matches!(principal.kind, PrincipalKind::Root);
    for policy in principal.identity_policies.iter() {
        match policy.evaluate(request) {
            Evaluation::ExplicitDeny => return Decision::Deny,
            Evaluation::Allow { .. } => allowed = true,
            Evaluation::NotApplicable => {}
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::Neither
    }
}

/// The global condition keys of a request (`aws:PrincipalArn`, `aws:SourceIp`,
/// `aws:PrincipalTag/<key>`, ...) and any service-specific ones a caller adds
/// (`sts:ExternalId`), computed only when a policy asks. Every service's condition context
/// falls back on it, so the global keys mean the same everywhere.
pub(crate) struct RequestConditions<'a> {
    ctx: &'a RequestContext,
    now: Timestamp,
    /// Extra keys, canonical (lower-case) names.
    extra: &'a [(&'static str, String)],
}

impl<'a> RequestConditions<'a> {
    pub(crate) fn new(
        ctx: &'a RequestContext,
        now: Timestamp,
        extra: &'a [(&'static str, String)],
    ) -> Self {
        Self { ctx, now, extra }
    }
}

impl ConditionContext for RequestConditions<'_> {
    fn values(&self, name: &str) -> Option<Cow<'_, [String]>> {
        let one = |value: String| Some(Cow::Owned(vec![value]));
        if let Some((_, value)) = self.extra.iter().find(|(key, _)| *key == name) {
            return one(value.clone());
        }
        let caller = &self.ctx.caller;
        match name {
            // For a role session, the role's ARN (AWS never puts session ARNs here).
            "aws:principalarn" => one(match &caller.kind {
                PrincipalKind::AssumedRole { role_arn, .. } => role_arn.clone(),
                _ => caller.arn.clone(),
            }),
            "aws:principalaccount" => one(caller.account.clone()),
            "aws:principaltype" => one(match caller.kind {
                PrincipalKind::Root => "Account",
                PrincipalKind::User { .. } => "User",
                PrincipalKind::AssumedRole { .. } => "AssumedRole",
            }
            .to_owned()),
            "aws:userid" => one(match &caller.kind {
                PrincipalKind::Root => caller.account.clone(),
                PrincipalKind::User { user_id, .. } => user_id.clone(),
                PrincipalKind::AssumedRole {
                    role_id,
                    session_name,
                    ..
                } => format!("{role_id}:{session_name}"),
            }),
            "aws:username" => match &caller.kind {
                PrincipalKind::User { name, .. } => one(name.clone()),
                _ => None,
            },
            "aws:sourceip" => one(self.ctx.source_ip.to_string()),
            "aws:currenttime" => one(self.now.to_iso8601_seconds()),
            "aws:epochtime" => one(self.now.as_secs().to_string()),
            "aws:securetransport" => one("false".to_owned()),
            "aws:requestedregion" => one(self.ctx.scope.region.clone()),
            "aws:viaawsservice" => one(self.ctx.via_service.is_some().to_string()),
            _ => {
                // Tag keys compare case-insensitively, as condition key names do.
                let tag = name.strip_prefix("aws:principaltag/")?;
                let (_, value) = caller
                    .tags
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(tag))?;
                one(value.clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use keyhold_policy::{Context, Policy, PolicyKind};

    use super::*;

    const KEY: &str = "arn:aws:kms:us-east-1:111111111111:key/k";

    fn user(account: &str, name: &str, policies: &[&str]) -> Principal {
        let identity: Vec<Arc<Policy>> = policies
            .iter()
            .map(|p| Arc::new(Policy::parse(p, PolicyKind::Identity).unwrap()))
            .collect();
        Principal {
            account: account.into(),
            arn: format!("arn:aws:iam::{account}:user/{name}"),
            kind: PrincipalKind::User {
                name: name.into(),
                user_id: "AIDAEXAMPLE".into(),
            },
            access_key_id: None,
            identity_policies: Arc::from(identity),
            temporary_credentials: false,
            tags: Arc::from(vec![("team".to_owned(), "payments".to_owned())]),
        }
    }

    fn root(account: &str) -> Principal {
        crate::context::Principal::root(&crate::arn::Scope::new(account, "us-east-1"), None)
    }

    fn resource(text: &str) -> Policy {
        Policy::parse(text, PolicyKind::Resource).unwrap()
    }

    fn decide(principal: &Principal, rule: ResourceRule<'_>) -> Result<(), DenyReason> {
        let context = Context::default();
        authorize(&Access {
            principal,
            action: "kms:Decrypt",
            resource: KEY,
            resource_account: "111111111111",
            rule,
            context: &context,
        })
        .map_err(|d| d.reason)
    }

    const ALLOW_DECRYPT: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*"}]}"#;
    const DENY_DECRYPT: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"kms:*","Resource":"*"}]}"#;
    const DELEGATE_111: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":"kms:*","Resource":"*"}]}"#;
    const ALICE_DIRECT: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:user/alice"},"Action":"kms:Decrypt","Resource":"*"}]}"#;
    const DELEGATE_222: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"222222222222"},"Action":"kms:Decrypt","Resource":"*"}]}"#;

    #[test]
    fn key_policy_delegation_needs_an_identity_allow() {
        let delegate = resource(DELEGATE_111);
        let rule = ResourceRule::KeyPolicy(Some(&delegate));
        assert_eq!(
            decide(&root("111111111111"), rule),
            Ok(()),
            "the root needs no identity policy"
        );
        assert_eq!(
            decide(&user("111111111111", "alice", &[]), rule),
            Err(DenyReason::NoIdentityPolicyAllows)
        );
        assert_eq!(
            decide(&user("111111111111", "alice", &[ALLOW_DECRYPT]), rule),
            Ok(())
        );
        assert_eq!(
            decide(
                &user("111111111111", "alice", &[ALLOW_DECRYPT, DENY_DECRYPT]),
                rule
            ),
            Err(DenyReason::ExplicitDenyInIdentityPolicy)
        );
    }

    #[test]
    fn a_key_policy_naming_the_user_suffices_in_its_account() {
        let direct = resource(ALICE_DIRECT);
        assert_eq!(
            decide(
                &user("111111111111", "alice", &[]),
                ResourceRule::KeyPolicy(Some(&direct))
            ),
            Ok(())
        );
        assert_eq!(
            decide(
                &user("111111111111", "bob", &[ALLOW_DECRYPT]),
                ResourceRule::KeyPolicy(Some(&direct))
            ),
            Err(DenyReason::NoResourcePolicyAllows),
            "an identity policy alone never opens a key"
        );
        assert_eq!(
            decide(&root("111111111111"), ResourceRule::KeyPolicy(None)),
            Err(DenyReason::NoResourcePolicyAllows)
        );
    }

    #[test]
    fn cross_account_needs_both_halves() {
        let open = resource(DELEGATE_222);
        let rule = ResourceRule::KeyPolicy(Some(&open));
        assert_eq!(decide(&root("222222222222"), rule), Ok(()));
        assert_eq!(
            decide(&user("222222222222", "carol", &[]), rule),
            Err(DenyReason::NoIdentityPolicyAllows)
        );
        assert_eq!(
            decide(&user("222222222222", "carol", &[ALLOW_DECRYPT]), rule),
            Ok(())
        );
        let closed = resource(DELEGATE_111);
        assert_eq!(
            decide(
                &user("222222222222", "carol", &[ALLOW_DECRYPT]),
                ResourceRule::KeyPolicy(Some(&closed))
            ),
            Err(DenyReason::NoResourcePolicyAllows)
        );
    }

    #[test]
    fn optional_resource_policies() {
        let none = ResourceRule::Optional(None);
        assert_eq!(
            decide(&user("111111111111", "alice", &[ALLOW_DECRYPT]), none),
            Ok(())
        );
        assert_eq!(
            decide(&user("111111111111", "alice", &[]), none),
            Err(DenyReason::NoIdentityPolicyAllows)
        );
        assert_eq!(
            decide(&root("222222222222"), none),
            Err(DenyReason::NoResourcePolicyAllows)
        );
        let direct = resource(ALICE_DIRECT);
        assert_eq!(
            decide(
                &user("111111111111", "alice", &[]),
                ResourceRule::Optional(Some(&direct))
            ),
            Ok(())
        );
        let deny = resource(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*"}]}"#,
        );
        assert_eq!(
            decide(&root("111111111111"), ResourceRule::Optional(Some(&deny))),
            Err(DenyReason::ExplicitDenyInResourcePolicy)
        );
    }

    #[test]
    fn messages_name_the_layer() {
        let d = Denied {
            principal: "arn:aws:iam::1:user/a".into(),
            action: "kms:Decrypt".into(),
            resource: KEY.into(),
            reason: DenyReason::NoIdentityPolicyAllows,
        };
        assert_eq!(
            d.message(),
            format!(
                "User: arn:aws:iam::1:user/a is not authorized to perform: kms:Decrypt on resource: {KEY} because no identity-based policy allows the kms:Decrypt action"
            )
        );
    }
}
