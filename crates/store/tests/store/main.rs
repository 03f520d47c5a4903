//! The store crate's integration tests, one binary (one link instead of one per file).

#![allow(clippy::unwrap_used)]

mod copy;
mod postgres_tls;
mod store_suite;
