//! The Keyhold server: the services behind the AWS APIs, the HTTP front end, configuration,
//! authentication, and background work.
//!
//! - [`Server`] opens a data directory (store + seal), binds, and serves until shutdown.
//! - [`http`] turns requests into operations of the services and answers in AWS's shapes.
//! - [`auth`] authenticates (SigV4) into a [`context::Principal`]; [`context::RequestContext`]
//!   is what every operation receives.
//! - [`kms`] is the KMS service; every operation authorizes once (`kms::authz`) and every
//!   request is audited once ([`audit`]).
//! - [`secrets`] is the Secrets Manager service; it encrypts every value through [`kms`] on
//!   the caller's behalf.
//! - [`params`] is the SSM Parameter Store service; it encrypts SecureString values through
//!   [`kms`] on the caller's behalf.
//! - [`iam`] is the IAM service (users, access keys, roles, inline policies); it keeps every
//!   identity and issued credential in memory, which [`auth`] resolves on each request.
//! - [`sts`] is the STS service (GetCallerIdentity, AssumeRole, GetSessionToken).
//! - [`access`] declares, once per operation, the authorization it must pass; [`authz`] is
//!   the one engine every decision goes through, recorded per request and checked against
//!   that declaration before an answer goes out.
//! - [`ops`]: what operators and test suites use beside the AWS APIs (seed files, reset).
//! - [`config::Config`]: defaults ← config file ← environment ← flags.

pub mod access;
pub mod arn;
pub mod audit;
pub mod auth;
pub mod authz;
pub mod cache;
pub mod clock;
pub mod coherence;
pub mod compat;
pub mod config;
pub mod context;
pub mod data_dir;
pub mod http;
pub mod iam;
pub mod kms;
pub mod ops;
pub mod pagination;
pub mod params;
pub mod seal;
pub mod secrets;
mod server;
pub mod sts;
pub mod tags;
pub mod transport;
mod write_locks;

pub use config::{Config, Mode};
pub use server::{Server, initialize, initialize_shamir, migrate_store, rekey_shamir};
