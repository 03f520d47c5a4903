//! Who is calling, from where, in which request: what every operation receives.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use keyhold_proto::route::Operation;
use keyhold_proto::runtime::audit::{AuditSink, AuditView};

use crate::arn::Scope;

/// What kind of identity made a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrincipalKind {
    /// The account itself (`arn:aws:iam::ACCOUNT:root`).
    Root,
    /// An IAM user (`arn:aws:iam::ACCOUNT:user/PATH/NAME`).
    User { name: String, user_id: String },
    /// A session of a role assumed through STS
    /// (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`).
    AssumedRole {
        role_arn: String,
        role_id: String,
        session_name: String,
    },
}

/// The authenticated caller.
#[derive(Clone, Debug)]
pub struct Principal {
    pub account: String,
    pub arn: String,
    pub kind: PrincipalKind,
    /// The access key the request was signed with, when it was signed.
    pub access_key_id: Option<String>,
    /// Whether that key is temporary (STS `AssumeRole` or `GetSessionToken` credentials),
    /// which STS and IAM restrict: no `GetSessionToken`, role chaining capped at an hour.
    pub temporary_credentials: bool,
    /// The caller's identity-based policies (an IAM user's or role's inline policies),
    /// resolved when the caller was authenticated. The root has none and needs none.
    pub identity_policies: Arc<[Arc<keyhold_policy::Policy>]>,
    /// The tags of the IAM user or role behind the caller (`aws:PrincipalTag/<key>`).
    pub tags: Arc<[(String, String)]>,
}

impl PartialEq for Principal {
    fn eq(&self, other: &Self) -> bool {
        self.arn == other.arn
            && self.kind == other.kind
            && self.access_key_id == other.access_key_id
    }
}

impl Principal {
    /// This principal as the policy engine sees it.
    pub fn policy_principal(&self) -> keyhold_policy::Principal<'_> {
        let (kind, role_arn) = match &self.kind {
            PrincipalKind::Root => (keyhold_policy::PrincipalKind::Root, None),
            PrincipalKind::User { .. } => (keyhold_policy::PrincipalKind::User, None),
            PrincipalKind::AssumedRole { role_arn, .. } => (
                keyhold_policy::PrincipalKind::AssumedRole,
                Some(role_arn.as_str()),
            ),
        };
        keyhold_policy::Principal {
            arn: &self.arn,
            account: &self.account,
            kind,
            role_arn,
            service: None,
        }
    }

    pub fn root(scope: &Scope, access_key_id: Option<String>) -> Self {
        Self {
            account: scope.account.clone(),
            arn: scope.root_arn(),
            kind: PrincipalKind::Root,
            access_key_id,
            temporary_credentials: false,
            identity_policies: Arc::from(Vec::new()),
            tags: Arc::from(Vec::new()),
        }
    }
}

/// One request as the services see it.
#[derive(Debug)]
pub struct RequestContext {
    pub request_id: String,
    pub operation: Operation,
    /// Shared with every request of the same access key (authentication caches it).
    pub caller: Arc<Principal>,
    /// The caller's account in the request's region: where new resources are created.
    pub scope: Scope,
    pub source_ip: IpAddr,
    pub user_agent: String,
    /// Set when another Keyhold service calls on the caller's behalf: the calling service's
    /// endpoint name (`secretsmanager.us-east-1.amazonaws.com`), KMS's `kms:ViaService`.
    pub via_service: Option<String>,
    notes: Mutex<AuditNotes>,
    /// Every authorization decision made for this request: the action and the kind of
    /// resource it was made on (checked against the operation's declaration,
    /// [`crate::access`]).
    decisions: Mutex<Vec<(String, Option<crate::access::Resource>)>>,
    /// The durability receipts of every audit event of this request (outer and inner calls
    /// share them), awaited before the response goes out.
    receipts: Arc<crate::audit::Receipts>,
}

/// What an operation tells the audit trail beyond the request itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditNotes {
    /// `(type, ARN)` of the resources the call touched, e.g. `("AWS::KMS::Key", arn)`.
    pub resources: Vec<(&'static str, String)>,
    /// CloudTrail's `requestParameters` (sensitive members already left out).
    pub request_parameters: Option<serde_json::Value>,
    /// CloudTrail's `responseElements` (sensitive members already left out).
    pub response_elements: Option<serde_json::Value>,
}

impl RequestContext {
    pub fn new(
        request_id: String,
        operation: Operation,
        caller: impl Into<Arc<Principal>>,
        scope: Scope,
        source_ip: IpAddr,
        user_agent: String,
    ) -> Self {
        Self {
            request_id,
            operation,
            caller: caller.into(),
            scope,
            source_ip,
            user_agent,
            via_service: None,
            notes: Mutex::default(),
            decisions: Mutex::default(),
            receipts: Arc::default(),
        }
    }

    /// The context of a call another service (`secretsmanager`, `ssm`) makes on this
    /// caller's behalf: same caller and region, its own request id, `via_service` set.
    pub fn on_behalf(&self, operation: Operation, service: &str) -> Self {
        Self {
            request_id: new_request_id(),
            operation,
            caller: self.caller.clone(),
            scope: self.scope.clone(),
            source_ip: self.source_ip,
            user_agent: format!("{service}.amazonaws.com"),
            via_service: Some(format!("{service}.{}.amazonaws.com", self.scope.region)),
            notes: Mutex::default(),
            decisions: Mutex::default(),
            receipts: self.receipts.clone(),
        }
    }

    /// This request acting in another scope (a replica's Region): same caller, request id
    /// and audit receipts, so the events of its inner calls are awaited like its own.
    pub fn in_scope(&self, scope: Scope) -> Self {
        Self {
            request_id: self.request_id.clone(),
            operation: self.operation,
            caller: self.caller.clone(),
            scope,
            source_ip: self.source_ip,
            user_agent: self.user_agent.clone(),
            via_service: self.via_service.clone(),
            notes: Mutex::default(),
            decisions: Mutex::default(),
            receipts: self.receipts.clone(),
        }
    }

    /// Where this request's audit receipts go.
    pub fn receipts(&self) -> &crate::audit::Receipts {
        &self.receipts
    }

    /// Records a resource the call touched (once per ARN).
    pub fn note_resource(&self, kind: &'static str, arn: &str) {
        if let Ok(mut notes) = self.notes.lock()
            && !notes.resources.iter().any(|(_, a)| a == arn)
        {
            notes.resources.push((kind, arn.to_owned()));
        }
    }

    /// Records the audit view of the request of a call made in code (another service's call
    /// on the caller's behalf), as the generated dispatch records a wire request's.
    pub fn note_request(&self, input: &impl AuditView) {
        self.audit_request(input);
    }

    /// Records that an authorization decision on `action` was made on `resource`, whatever
    /// its outcome (an operation whose check refuses does not answer successfully).
    pub fn note_decision(&self, action: &str, resource: &str) {
        let kind = crate::access::kind_of(resource);
        if let Ok(mut decisions) = self.decisions.lock()
            && !decisions.iter().any(|(a, k)| a == action && *k == kind)
        {
            decisions.push((action.to_owned(), kind));
        }
    }

    /// Whether a decision on `action` was recorded on a resource `kind` accepts.
    pub fn decided(
        &self,
        action: &str,
        kind: impl Fn(Option<crate::access::Resource>) -> bool,
    ) -> bool {
        self.decisions
            .lock()
            .is_ok_and(|d| d.iter().any(|(a, k)| a == action && kind(*k)))
    }

    pub fn take_notes(&self) -> AuditNotes {
        self.notes
            .lock()
            .map(|mut n| std::mem::take(&mut *n))
            .unwrap_or_default()
    }
}

/// What the generated dispatch reports of the call: the request always; the response only
/// of calls that change something (CloudTrail's `responseElements` are null for reads).
impl AuditSink for RequestContext {
    fn audit_request(&self, request: &dyn AuditView) {
        let view = request.audit_view();
        if let Ok(mut notes) = self.notes.lock() {
            notes.request_parameters = Some(view);
        }
    }

    fn audit_response(&self, response: &dyn AuditView) {
        if crate::audit::record::is_read_only(self.operation) {
            return;
        }
        let view = response.audit_view();
        if let Ok(mut notes) = self.notes.lock() {
            notes.response_elements = Some(view);
        }
    }
}

/// A fresh request id (a random UUID, as AWS's are), written once into a string of its size.
pub fn new_request_id() -> String {
    let mut text = uuid::Uuid::encode_buffer();
    uuid::Uuid::new_v4()
        .hyphenated()
        .encode_lower(&mut text)
        .to_owned()
}
