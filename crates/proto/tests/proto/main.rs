//! The proto crate's integration tests, one binary (one link instead of one per file).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod hostile_bodies;
mod sigv4_suite;
mod wire_fidelity;
