//! The proto crate's integration tests, one binary (one link instead of one per file).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod hostile_bodies;
mod sigv4_suite;
mod wire_fidelity;

use keyhold_proto::{cloudtrail, iam, kms, secretsmanager, ssm, sts};

/// A service of every API that implements no operation (each answers "unsupported"): what
/// the protocol layer does on its own.
struct Null;
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
