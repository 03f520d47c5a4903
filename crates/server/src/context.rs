//! Who is calling, from where, in which request: what every operation receives.

use std::net::IpAddr;
use std::sync::Mutex;

use keyhold_proto::route::Operation;

use crate::arn::Scope;

/// What kind of identity made a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrincipalKind {
    /// The account itself (`arn:aws:iam::ACCOUNT:root`).
    Root,
}

/// The authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub account: String,
    pub arn: String,
    pub kind: PrincipalKind,
    /// The access key the request was signed with, when it was signed.
    pub access_key_id: Option<String>,
}

impl Principal {
    /// This principal as the policy engine sees it.
    pub fn policy_principal(&self) -> keyhold_policy::Principal<'_> {
        let kind = match self.kind {
            PrincipalKind::Root => keyhold_policy::PrincipalKind::Root,
        };
        keyhold_policy::Principal {
            arn: &self.arn,
            account: &self.account,
            kind,
            role_arn: None,
            service: None,
        }
    }

    pub fn root(scope: &Scope, access_key_id: Option<String>) -> Self {
        Self {
            account: scope.account.clone(),
            arn: scope.root_arn(),
            kind: PrincipalKind::Root,
            access_key_id,
        }
    }
}

/// One request as the services see it.
#[derive(Debug)]
pub struct RequestContext {
    pub request_id: String,
    pub operation: Operation,
    pub caller: Principal,
    /// The caller's account in the request's region: where new resources are created.
    pub scope: Scope,
    pub source_ip: IpAddr,
    pub user_agent: String,
    /// Set when another Keyhold service calls on the caller's behalf: the calling service's
    /// endpoint name (`secretsmanager.us-east-1.amazonaws.com`), KMS's `kms:ViaService`.
    pub via_service: Option<String>,
    notes: Mutex<AuditNotes>,
}

/// What an operation tells the audit trail beyond the request itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditNotes {
    /// `(type, ARN)` of the resources the call touched, e.g. `("AWS::KMS::Key", arn)`.
    pub resources: Vec<(&'static str, String)>,
}

impl RequestContext {
    pub fn new(
        request_id: String,
        operation: Operation,
        caller: Principal,
        scope: Scope,
        source_ip: IpAddr,
        user_agent: String,
    ) -> Self {
        Self {
            request_id,
            operation,
            caller,
            scope,
            source_ip,
            user_agent,
            via_service: None,
            notes: Mutex::default(),
        }
    }

    /// The context of a call another service (`secretsmanager`, `ssm`) makes on this
    /// caller's behalf: same caller and region, its own request id, `via_service` set.
    pub fn on_behalf(&self, operation: Operation, service: &str) -> Self {
        Self {
            request_id: uuid::Uuid::new_v4().to_string(),
            operation,
            caller: self.caller.clone(),
            scope: self.scope.clone(),
            source_ip: self.source_ip,
            user_agent: format!("{service}.amazonaws.com"),
            via_service: Some(format!("{service}.{}.amazonaws.com", self.scope.region)),
            notes: Mutex::default(),
        }
    }

    /// Records a resource the call touched (once per ARN).
    pub fn note_resource(&self, kind: &'static str, arn: &str) {
        if let Ok(mut notes) = self.notes.lock()
            && !notes.resources.iter().any(|(_, a)| a == arn)
        {
            notes.resources.push((kind, arn.to_owned()));
        }
    }

    pub fn take_notes(&self) -> AuditNotes {
        self.notes
            .lock()
            .map(|mut n| std::mem::take(&mut *n))
            .unwrap_or_default()
    }
}
