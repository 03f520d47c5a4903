//! JSON 1.1 bodies: decoding requests and encoding responses.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{ApiError, CommonError};

/// Decodes a request body. An empty body is an empty object, as AWS treats it. A body that is
/// not valid JSON for the shape is AWS's bodiless `SerializationException`: nothing of the
/// input is echoed, since it may hold a secret.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let Some(first) = body.iter().find(|b| !b.is_ascii_whitespace()) else {
        return serde_json::from_slice(b"{}")
            .map_err(|_| ApiError::bare(CommonError::Serialization));
    };
    // serde accepts a structure written as an array; AWS wants an object.
    if *first != b'{' {
        return Err(ApiError::bare(CommonError::Serialization));
    }
    serde_json::from_slice(body).map_err(|_| ApiError::bare(CommonError::Serialization))
}

/// Encodes a response body.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(value).map_err(|_| ApiError::internal())
}

/// The body of an operation without output: an empty object.
pub fn empty() -> Vec<u8> {
    b"{}".to_vec()
}
