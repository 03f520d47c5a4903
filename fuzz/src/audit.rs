//! The audit trail's record decoder and chain verifier, compiled from `keyhold-server`'s own
//! source files (`crates/server/src/audit/chain.rs` and `verify.rs`), not copies of them.
//!
//! Both files are pure: they need only `keyhold-crypto`, `serde`, `serde_json` and `hex`,
//! and reach each other as `super::chain`. Linking all of `keyhold-server` for them would make
//! every instrumented build compile axum, tokio and SQLite. If either file grows a
//! dependency on the rest of the server, this module stops compiling and says so: then move
//! the decoder into a small crate rather than widening this list.

#[path = "../../crates/server/src/audit/chain.rs"]
pub mod chain;
#[path = "../../crates/server/src/audit/verify.rs"]
pub mod verify;
