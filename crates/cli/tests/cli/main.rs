//! The `keyhold` binary as an operator runs it, one test binary: each module was once its
//! own test crate, and each linked the AWS SDKs through the test kit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audit_anchor;
mod audit_cluster_cli;
mod audit_crash;
mod bench_cli;
mod cluster_crash;
mod envelope_cli;
mod ops_cli;
mod serve_transport;
