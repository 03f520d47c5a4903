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
//! - [`config::Config`]: defaults ← config file ← environment ← flags.

pub mod arn;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod compat;
pub mod config;
pub mod context;
pub mod http;
pub mod kms;
pub mod params;
mod seal;
pub mod secrets;
mod server;

pub use config::{Config, Mode};
pub use server::Server;
