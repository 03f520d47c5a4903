//! Reading a request body: capped in size and in time, and the three ways it can fail
//! mapped to the wire here.
//!
//! - Over `max_body_bytes` (by `Content-Length` or by what arrived): 413
//!   `RequestEntityTooLargeException`, as before.
//! - Malformed (bad chunked encoding) or incomplete (the client closed before sending
//!   `Content-Length` bytes): 400 `IncompleteBody`.
//! - Not complete within `body_read_timeout`: 400 `RequestTimeout`.
//!
//! AWS does not document what the front end of its JSON and Query services answers to a
//! broken body (its load balancers usually drop such connections first). The codes and
//! messages are the ones S3, the one AWS service that documents them, sends for the same
//! conditions; both are client faults, so SDKs do not retry them as server errors.

use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use keyhold_proto::{ApiError, CommonError, ErrorCode};

/// Why a request body could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    TooLarge,
    Incomplete,
    Timeout,
}

/// The transport's own error codes (those [`CommonError`] does not have).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TransportCode {
    IncompleteBody,
    RequestTimeout,
}

impl ErrorCode for TransportCode {
    fn code(self) -> &'static str {
        match self {
            Self::IncompleteBody => "IncompleteBody",
            Self::RequestTimeout => "RequestTimeout",
        }
    }

    fn http_status(self) -> u16 {
        400
    }

    fn sender_fault(self) -> bool {
        true
    }
}

impl BodyError {
    pub fn to_api_error(self) -> ApiError {
        match self {
            Self::TooLarge => ApiError::new(
                CommonError::RequestEntityTooLarge,
                "Request entity too large",
            ),
            Self::Incomplete => ApiError::new(
                TransportCode::IncompleteBody,
                "The request body is malformed or shorter than its Content-Length.",
            ),
            Self::Timeout => ApiError::new(
                TransportCode::RequestTimeout,
                "Your socket connection to the server was not read from or written to within the timeout period.",
            ),
        }
    }
}

/// Reads the whole body, at most `max` bytes, within `timeout`.
pub async fn read(body: Body, max: usize, timeout: Duration) -> Result<Bytes, BodyError> {
    let collected = tokio::time::timeout(timeout, Limited::new(body, max).collect())
        .await
        .map_err(|_| BodyError::Timeout)?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::Incomplete),
    }
}
