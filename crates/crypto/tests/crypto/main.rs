//! The crypto crate's integration tests, one binary (one link instead of one per file).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod blob_props;
mod blob_vector;
mod redaction;
mod seal;
