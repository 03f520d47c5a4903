//! Evaluating one policy against one request.
//!
//! IAM User Guide, "Policy evaluation logic": a statement *applies* when its principal, action,
//! resource and every condition match; an applicable `Deny` is final (explicit deny); otherwise
//! an applicable `Allow` allows; otherwise the policy says nothing (implicit deny). Combining
//! several policies (key policy, IAM policies, grants) is the caller's job; see the crate docs.

use crate::condition::Condition;
use crate::context::ConditionContext;
use crate::pattern::{self, Tok};
use crate::policy::{Clause, Effect, Policy, PrincipalClause, ResourceClause, Statement};
use crate::principal::{Fit, Principal, not_principal_excludes};
use crate::variables::Unresolved;

/// One request to authorize.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// Who is calling.
    pub principal: &'a Principal<'a>,
    /// The action, `service:Operation` (`kms:Decrypt`); matched case-insensitively.
    pub action: &'a str,
    /// The resource ARN (`arn:aws:kms:us-east-1:111122223333:key/...`); matched
    /// case-sensitively, component by component.
    pub resource: &'a str,
    /// The condition keys of the request.
    pub context: &'a dyn ConditionContext,
}

/// What one policy says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evaluation {
    /// An applicable `Deny` statement: refuse, whatever else allows.
    ExplicitDeny,
    /// An applicable `Allow` statement and no applicable `Deny`.
    Allow {
        /// How the allowing statement named the caller (the strongest match wins).
        principal_match: PrincipalMatch,
    },
    /// No statement applies: an implicit deny unless another policy allows.
    NotApplicable,
}

/// How an allowing statement named the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalMatch {
    /// The statement names this principal, its role, or `*`: the allow is sufficient on its own
    /// (for a caller in the resource's account).
    Direct,
    /// The statement names the caller's *account* (`ACCOUNT` or `arn:aws:iam::ACCOUNT:root`).
    /// On a key policy this delegates to IAM: an identity policy must also allow, except for
    /// the account root user.
    Account,
    /// An identity policy: there is no `Principal` element.
    NotApplicable,
}

/// An [`Evaluation`] with the index of the statement that decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The outcome.
    pub evaluation: Evaluation,
    /// The deciding statement: the `Deny`, or the strongest `Allow` (first in document order
    /// among equals). `None` when nothing applied.
    pub statement: Option<usize>,
}

impl Policy {
    /// Evaluates this policy for `request`.
    pub fn evaluate(&self, request: &Request<'_>) -> Evaluation {
        self.decide(request).evaluation
    }

    /// Like [`Policy::evaluate`], also naming the deciding statement (for diagnostics and
    /// "which statement denied" messages).
    pub fn decide(&self, request: &Request<'_>) -> Decision {
        let mut best: Option<(usize, PrincipalMatch)> = None;
        for (index, statement) in self.statements.iter().enumerate() {
            let Some(principal_match) = statement.applies(request) else {
                continue;
            };
            match statement.effect {
                Effect::Deny => {
                    return Decision {
                        evaluation: Evaluation::ExplicitDeny,
                        statement: Some(index),
                    };
                }
                Effect::Allow => {
                    if best.is_none_or(|(_, held)| rank(principal_match) > rank(held)) {
                        best = Some((index, principal_match));
                    }
                }
            }
        }
        match best {
            Some((index, principal_match)) => Decision {
                evaluation: Evaluation::Allow { principal_match },
                statement: Some(index),
            },
            None => Decision {
                evaluation: Evaluation::NotApplicable,
                statement: None,
            },
        }
    }
}

fn rank(principal_match: PrincipalMatch) -> u8 {
    match principal_match {
        PrincipalMatch::NotApplicable => 0,
        PrincipalMatch::Account => 1,
        PrincipalMatch::Direct => 2,
    }
}

impl Statement {
    /// How the statement names the caller, if it applies to `request` at all. A policy
    /// variable without a value makes the statement not apply.
    fn applies(&self, request: &Request<'_>) -> Option<PrincipalMatch> {
        let principal_match = self.principal_match(request.principal)?;
        if !action_matches(&self.action, request.action) {
            return None;
        }
        match resource_matches(&self.resource, request) {
            Ok(true) => {}
            Ok(false) | Err(Unresolved) => return None,
        }
        match conditions_hold(&self.conditions, request.context) {
            Ok(true) => Some(principal_match),
            Ok(false) | Err(Unresolved) => None,
        }
    }

    fn principal_match(&self, caller: &Principal<'_>) -> Option<PrincipalMatch> {
        match &self.principal {
            PrincipalClause::Implicit => Some(PrincipalMatch::NotApplicable),
            PrincipalClause::Principal(specs) => {
                match specs
                    .iter()
                    .map(|spec| spec.fit(caller))
                    .max()
                    .unwrap_or(Fit::No)
                {
                    Fit::Direct => Some(PrincipalMatch::Direct),
                    Fit::Account => Some(PrincipalMatch::Account),
                    Fit::No => None,
                }
            }
            PrincipalClause::NotPrincipal(specs) => {
                let deny = self.effect == Effect::Deny;
                (!not_principal_excludes(specs, caller, deny)).then_some(PrincipalMatch::Direct)
            }
        }
    }
}

fn action_matches(clause: &Clause<Vec<Tok>>, action: &str) -> bool {
    let listed = |patterns: &[Vec<Tok>]| patterns.iter().any(|p| pattern::matches(p, action, true));
    match clause {
        Clause::Is(patterns) => listed(patterns),
        Clause::IsNot(patterns) => !listed(patterns),
    }
}

fn resource_matches(clause: &ResourceClause, request: &Request<'_>) -> Result<bool, Unresolved> {
    let listed = |texts: &[crate::variables::Text]| -> Result<bool, Unresolved> {
        for text in texts {
            let resolved = text.resolve(request.context)?;
            if pattern::arn_matches(resolved.tokens(), request.resource) {
                return Ok(true);
            }
        }
        Ok(false)
    };
    match clause {
        ResourceClause::Any => Ok(true),
        ResourceClause::Nothing => Ok(false),
        ResourceClause::Listed(Clause::Is(texts)) => listed(texts),
        ResourceClause::Listed(Clause::IsNot(texts)) => listed(texts).map(|found| !found),
    }
}

fn conditions_hold(
    conditions: &[Condition],
    context: &dyn ConditionContext,
) -> Result<bool, Unresolved> {
    for condition in conditions {
        if !condition.evaluate(context)? {
            return Ok(false);
        }
    }
    Ok(true)
}
