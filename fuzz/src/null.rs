//! A service implementation whose every operation is the generated default ("unsupported"):
//! what the dispatch targets call after decoding and validating a request.

use keyhold_proto::{cloudtrail, iam, kms, secretsmanager, ssm, sts};

pub struct Null;

impl kms::KmsApi for Null {
    type Context = Viewer;
}
impl secretsmanager::SecretsManagerApi for Null {
    type Context = Viewer;
}
impl ssm::SsmApi for Null {
    type Context = Viewer;
}
impl cloudtrail::CloudTrailApi for Null {
    type Context = Viewer;
}
impl sts::StsApi for Null {
    type Context = Viewer;
}
impl iam::IamApi for Null {
    type Context = Viewer;
}

/// The context of [`Null`]: builds the audit view of every request and response the
/// generated dispatch reports, as the server's context does, and drops it.
pub struct Viewer;

impl keyhold_proto::runtime::audit::AuditSink for Viewer {
    fn audit_request(&self, request: &dyn keyhold_proto::runtime::audit::AuditView) {
        let _ = request.audit_view();
    }
    fn audit_response(&self, response: &dyn keyhold_proto::runtime::audit::AuditView) {
        let _ = response.audit_view();
    }
}
