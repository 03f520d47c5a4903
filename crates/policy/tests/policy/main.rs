//! The policy crate's integration tests, one binary (one link instead of one per file).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod evaluation;
mod parse;
