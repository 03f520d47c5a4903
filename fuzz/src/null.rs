//! A service implementation whose every operation is the generated default ("unsupported"):
//! what the dispatch targets call after decoding and validating a request.

use keyhold_proto::{cloudtrail, iam, kms, secretsmanager, ssm, sts};

pub struct Null;

impl kms::KmsApi for Null {
    type Context = ();
}
impl secretsmanager::SecretsManagerApi for Null {
    type Context = ();
}
impl ssm::SsmApi for Null {
    type Context = ();
}
impl cloudtrail::CloudTrailApi for Null {
    type Context = ();
}
impl sts::StsApi for Null {
    type Context = ();
}
impl iam::IamApi for Null {
    type Context = ();
}
