//! JSON 1.1 bodies: decoding requests and encoding responses.

use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, Deserializer, MapAccess, Visitor};

use super::error::{ApiError, CommonError};

/// Decodes a request body. An empty body is an empty object, as AWS treats it. A body that is
/// not valid JSON for the shape is AWS's bodiless `SerializationException`: nothing of the
/// input is echoed, since it may hold a secret.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return serde_json::from_slice(b"{}")
            .map_err(|_| ApiError::bare(CommonError::Serialization));
    }
    // Structures decode from objects only (see [`structure`]); every other type mismatch
    // (a string for a number, an object for a list, bad base64) serde refuses itself.
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

/// A request structure's fields, decoded by serde's derive (`#[serde(remote = "Self")]`
/// names that decoder `Self::deserialize`; this trait hands it to [`structure`]).
pub trait Fields: Sized {
    fn from_fields<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error>;
}

/// Decodes a structure from a JSON object only. serde's derived decoder also takes a JSON
/// array (the fields in order), which AWS refuses with a `SerializationException`:
/// `"Constraints": []` where a structure belongs is an error, not an empty structure.
pub fn structure<'de, D: Deserializer<'de>, T: Fields>(d: D) -> Result<T, D::Error> {
    d.deserialize_map(ObjectOnly(PhantomData))
}

struct ObjectOnly<T>(PhantomData<T>);

impl<'de, T: Fields> Visitor<'de> for ObjectOnly<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::from_fields(MapAccessDeserializer::new(map))
    }
}
