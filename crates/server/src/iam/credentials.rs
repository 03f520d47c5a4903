//! Identifiers and secrets IAM and STS hand out, from the system CSPRNG, in AWS's shapes:
//! unique ids `AIDA…` / `AROA…` (21 characters), access key ids `AKIA…` / `ASIA…` (20),
//! secret access keys of 40 characters, and session tokens.
//!
//! Secrets live in memory only in [`Secret`] (zeroized on drop, never printed) and in the
//! store only sealed under the domain key ([`SECRET_PURPOSE`], [`SESSION_PURPOSE`]); of a
//! session token only its SHA-256 is kept.

use std::fmt;

use base64::Engine as _;
use keyhold_crypto::random;
use zeroize::Zeroizing;

use super::error::IamError;

/// The sealing purpose of IAM users' secret access keys (`DomainKey::seal_secret`).
pub const SECRET_PURPOSE: &str = "iam-secret-access-key";
/// The sealing purpose of STS sessions' secret access keys.
pub const SESSION_PURPOSE: &str = "sts-session-secret-access-key";

/// The characters of AWS's unique ids and access key ids (RFC 4648 base32).
const ID_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A secret access key (or other credential secret) in memory.
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// `prefix` followed by random base32 characters up to `len` characters.
pub fn random_id(prefix: &str, len: usize) -> Result<String, IamError> {
    let mut bytes = vec![0u8; len.saturating_sub(prefix.len())];
    random::fill(&mut bytes).map_err(|_| IamError::Internal)?;
    let mut id = String::with_capacity(len);
    id.push_str(prefix);
    id.extend(
        bytes
            .iter()
            .map(|b| char::from(ID_ALPHABET[usize::from(b & 31)])),
    );
    Ok(id)
}

/// A user's unique id: `AIDA` + 17 characters.
pub fn user_id() -> Result<String, IamError> {
    random_id("AIDA", 21)
}

/// A role's unique id: `AROA` + 17 characters.
pub fn role_id() -> Result<String, IamError> {
    random_id("AROA", 21)
}

/// A long-term access key id: `AKIA` + 16 characters.
pub fn access_key_id() -> Result<String, IamError> {
    random_id("AKIA", 20)
}

/// A temporary access key id: `ASIA` + 16 characters.
pub fn session_key_id() -> Result<String, IamError> {
    random_id("ASIA", 20)
}

/// A secret access key: 40 characters of base64 over 30 random bytes.
pub fn secret_access_key() -> Result<Zeroizing<String>, IamError> {
    random_text(30)
}

/// A session token: base64 over 96 random bytes (128 characters).
pub fn session_token() -> Result<Zeroizing<String>, IamError> {
    random_text(96)
}

fn random_text(bytes: usize) -> Result<Zeroizing<String>, IamError> {
    let mut raw = Zeroizing::new(vec![0u8; bytes]);
    random::fill(&mut raw).map_err(|_| IamError::Internal)?;
    let mut out = Zeroizing::new(String::with_capacity(bytes * 4 / 3 + 4));
    base64::engine::general_purpose::STANDARD.encode_string(raw.as_slice(), &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let id = user_id().unwrap();
        assert_eq!(id.len(), 21);
        assert!(id.starts_with("AIDA"));
        assert!(id.bytes().all(|b| ID_ALPHABET.contains(&b)));
        assert_eq!(access_key_id().unwrap().len(), 20);
        assert!(session_key_id().unwrap().starts_with("ASIA"));
        assert_eq!(secret_access_key().unwrap().len(), 40);
        assert_ne!(*secret_access_key().unwrap(), *secret_access_key().unwrap());
        assert_eq!(session_token().unwrap().len(), 128);
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new(Zeroizing::new(b"hunter2".to_vec()));
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
    }
}
