//! The audit hook: every call, success or failure, is handed to an [`Auditor`] exactly once.
//!
//! [`LogAuditor`] writes one structured log line per call (target `keyhold::audit`) with the
//! caller, the operation, the resources and the outcome — never a plaintext, a secret or a
//! signature. The tamper-evident, durable CloudTrail trail plugs in here.

use keyhold_proto::ApiError;

use crate::context::{AuditNotes, RequestContext};

/// One finished call.
pub struct AuditEvent<'a> {
    pub ctx: &'a RequestContext,
    pub notes: AuditNotes,
    pub error: Option<&'a ApiError>,
}

pub trait Auditor: Send + Sync {
    fn record(&self, event: AuditEvent<'_>);
}

/// Writes each event as a log line.
pub struct LogAuditor;

impl Auditor for LogAuditor {
    fn record(&self, event: AuditEvent<'_>) {
        let ctx = event.ctx;
        let resources: Vec<&str> = event
            .notes
            .resources
            .iter()
            .map(|(_, arn)| arn.as_str())
            .collect();
        tracing::info!(
            target: "keyhold::audit",
            request_id = %ctx.request_id,
            event_source = ctx.operation.service().event_source(),
            event_name = ctx.operation.name(),
            principal = %ctx.caller.arn,
            region = %ctx.scope.region,
            source_ip = %ctx.source_ip,
            resources = ?resources,
            error_code = event.error.map(ApiError::code),
        );
    }
}
