//! Hand-written support for the generated protocol code.

pub mod audit;
pub mod error;
pub mod json;
pub mod query;
pub mod types;
pub mod validate;
pub mod xml;
