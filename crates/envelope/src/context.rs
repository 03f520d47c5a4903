//! The encryption context: a map of UTF-8 strings, serialized as the ESDK specifies
//! (`framework/structures.md#serialization`): a count, then the pairs sorted by key, each
//! part length-prefixed with a big-endian `u16`.

use std::collections::BTreeMap;

use crate::Error;

/// Keys with this prefix are reserved for the ESDK itself (the signing key's public half).
pub const RESERVED_PREFIX: &str = "aws-crypto-";
/// Where signed suites carry the base64 compressed ECDSA public key.
pub const PUBLIC_KEY_KEY: &str = "aws-crypto-public-key";

/// An encryption context. Keys and values are non-empty-checked only where the ESDK does
/// (it allows empty values); ordering is by key bytes, as serialization needs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pair a caller chose; the reserved `aws-crypto-` prefix is refused.
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<(), Error> {
        let key = key.into();
        if key.starts_with(RESERVED_PREFIX) {
            return Err(Error::InvalidInput(
                "encryption context keys may not start with aws-crypto-",
            ));
        }
        self.0.insert(key, value.into());
        Ok(())
    }

    pub(crate) fn insert_reserved(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when every pair of `expected` is in `self` with the same value (the ESDK CLI's
    /// check of a decrypt-time `--encryption-context`).
    pub fn contains_all(&self, expected: &EncryptionContext) -> bool {
        expected.iter().all(|(k, v)| self.get(k) == Some(v))
    }

    pub(crate) fn to_map(&self) -> std::collections::HashMap<String, String> {
        self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The serialization: empty for an empty context, else count and sorted pairs.
    pub fn serialize(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        if self.0.is_empty() {
            return Ok(out);
        }
        let count = u16::try_from(self.0.len())
            .map_err(|_| Error::InvalidInput("encryption context has too many pairs"))?;
        out.extend_from_slice(&count.to_be_bytes());
        for (k, v) in &self.0 {
            for part in [k.as_bytes(), v.as_bytes()] {
                let len = u16::try_from(part.len()).map_err(|_| {
                    Error::InvalidInput("encryption context entry longer than 65535 bytes")
                })?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(part);
            }
        }
        if out.len() > usize::from(u16::MAX) {
            return Err(Error::InvalidInput(
                "encryption context longer than 65535 bytes",
            ));
        }
        Ok(out)
    }

    /// Parses a serialization; duplicates, bad UTF-8, unsorted or trailing bytes fail.
    pub fn deserialize(bytes: &[u8]) -> Result<Self, Error> {
        let mut map = BTreeMap::new();
        if bytes.is_empty() {
            return Ok(Self(map));
        }
        let mut r = Cursor { bytes, pos: 0 };
        let count = r.u16()?;
        if count == 0 {
            return Err(Error::InvalidCiphertext);
        }
        for _ in 0..count {
            let k = r.string()?;
            let v = r.string()?;
            if map.insert(k, v).is_some() {
                return Err(Error::InvalidCiphertext);
            }
        }
        if r.pos != bytes.len() {
            return Err(Error::InvalidCiphertext);
        }
        Ok(Self(map))
    }
}

impl TryFrom<Vec<(String, String)>> for EncryptionContext {
    type Error = Error;

    fn try_from(pairs: Vec<(String, String)>) -> Result<Self, Error> {
        let mut ec = Self::new();
        for (k, v) in pairs {
            ec.insert(k, v)?;
        }
        Ok(ec)
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Error> {
        let end = self.pos.checked_add(n).ok_or(Error::InvalidCiphertext)?;
        let out = self
            .bytes
            .get(self.pos..end)
            .ok_or(Error::InvalidCiphertext)?;
        self.pos = end;
        Ok(out)
    }

    fn u16(&mut self) -> Result<u16, Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn string(&mut self) -> Result<String, Error> {
        let len = usize::from(self.u16()?);
        let b = self.take(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| Error::InvalidCiphertext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialization_is_sorted_and_round_trips() {
        let mut ec = EncryptionContext::new();
        ec.insert("b", "2").unwrap();
        ec.insert("a", "1").unwrap();
        let bytes = ec.serialize().unwrap();
        assert_eq!(
            bytes,
            [0, 2, 0, 1, b'a', 0, 1, b'1', 0, 1, b'b', 0, 1, b'2']
        );
        assert_eq!(EncryptionContext::deserialize(&bytes).unwrap(), ec);
        assert!(EncryptionContext::new().serialize().unwrap().is_empty());
    }

    #[test]
    fn malformed_serializations_fail() {
        for bad in [
            &[0u8, 1, 0][..],
            &[0, 0],
            &[0, 1, 0, 1, b'a', 0, 1, b'1', 9],
        ] {
            assert!(EncryptionContext::deserialize(bad).is_err());
        }
        assert!(
            EncryptionContext::new()
                .insert("aws-crypto-x", "y")
                .is_err()
        );
    }
}
