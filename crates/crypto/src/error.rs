//! The one error type of this crate.
//!
//! Decrypt and unseal failures deliberately carry no detail: a bad tag, a wrong encryption
//! context, a truncated blob and an unknown format version are indistinguishable, so a caller
//! cannot be turned into an oracle.

use std::path::PathBuf;

/// Every failure of `keyhold-crypto`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// A ciphertext blob could not be decrypted: bad tag, wrong key or encryption context,
    /// truncated, or an unknown format version. Maps to `InvalidCiphertextException`.
    #[error("invalid ciphertext")]
    InvalidCiphertext,

    /// A sealed blob could not be opened with this root or domain key (same rule: no detail).
    #[error("sealed data could not be opened with this key")]
    Unseal,

    /// Encryption failed. AES-GCM only refuses inputs far larger than any request can carry.
    #[error("encryption failed")]
    Encrypt,

    /// A signature could not be made (AWS-LC refused; never the caller's input).
    #[error("signing failed")]
    Sign,

    /// An input the key or algorithm does not take: another algorithm or message type, a
    /// digest of the wrong length, a peer public key that is not DER SubjectPublicKeyInfo on
    /// the key's curve, a plaintext over the RSAES-OAEP limit. The caller checks these first
    /// and answers AWS's own error; this is the boundary's refusal, without detail.
    #[error("invalid input for this key")]
    InvalidInput,

    /// A valid request this build cannot carry out (no safe interface in `aws-lc-rs`).
    #[error("not supported")]
    Unsupported,

    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,

    /// The root key file could not be read, created or synced.
    #[error("root key file {}: I/O error", .path.display())]
    KeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The root key file exists but is not a valid `keyhold-root-key-v1` file.
    #[error("root key file {} is malformed", .path.display())]
    KeyFileFormat { path: PathBuf },

    /// The root key file is readable or writable by users other than its owner.
    #[error(
        "root key file {} has mode {mode:o}; it must be accessible by its owner only (chmod 600)",
        .path.display()
    )]
    KeyFilePermissions { path: PathBuf, mode: u32 },

    /// Text that is not a `keyhold-share-v1` share (malformed, mistyped or truncated).
    #[error("not a Keyhold root key share (malformed, mistyped or truncated)")]
    ShareFormat,

    /// Shamir parameters out of range (1 <= threshold <= shares <= 255), or fewer distinct
    /// shares than the threshold.
    #[error("Shamir parameters out of range, or too few distinct shares")]
    ShamirParameters,

    /// A PKCS#11 token failed (module not loadable, token not found, login refused, key
    /// missing). The text comes from the token library and holds no key material.
    #[error("PKCS#11 token: {0}")]
    Token(String),
}
