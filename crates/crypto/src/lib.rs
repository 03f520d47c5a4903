//! Keyhold's HSM boundary: every plaintext key lives inside this crate.
//!
//! # Map
//!
//! | type | what it is |
//! |---|---|
//! | [`SymmetricKey`] | 256-bit backing key material of one KMS key version |
//! | [`SecretBytes`] | variable-length plaintext: decrypt output, data keys, random bytes |
//! | [`MaterialId`], [`KeyId`] | public identifiers of a key version and of a KMS key |
//! | [`EncryptionContext`] | the canonical form of an encryption context, used as AAD |
//! | [`blob`] | the symmetric ciphertext blob (version 1) that `Encrypt` returns |
//! | [`envelope::DataKey`] | a KMS data key's plaintext; [`envelope`] seals stored values with it |
//! | [`seal::RootKeyProvider`] | the root of the hierarchy; [`seal::KeyFileRoot`] in dev mode |
//! | [`asymmetric::PrivateKey`] | the material of an RSA, ECC, Ed25519, ML-DSA, ML-KEM or HMAC key |
//! | [`asymmetric::generate_data_key_pair`] | data key pairs (PKCS#8 and SubjectPublicKeyInfo DER) |
//! | [`seal::DomainKey`] | seals backing key material and other stored secrets |
//! | [`import::WrappingKey`] | the RSA key of one import token; unwraps imported material |
//! | [`token::TokenKey`] | tags tokens the server hands out (KMS grant tokens) |
//! | [`CryptoError`] | every failure; decrypt and unseal failures carry no detail |
//!
//! The key hierarchy: root key → [`seal::DomainKey`] → [`SymmetricKey`] of every key version
//! → customers' ciphertexts ([`blob`]). Only sealed bytes ever leave this crate for storage.
//!
//! # Threat model
//!
//! - **Protected:** confidentiality and integrity of everything at rest (the store, backups,
//!   logs) as long as the root key is not compromised; a ciphertext is bound to its KMS key,
//!   key version and encryption context; a sealed blob is bound to the key ARN and version it
//!   belongs to. Failures say nothing (no oracle): every bad ciphertext is
//!   [`CryptoError::InvalidCiphertext`], every bad sealed blob is [`CryptoError::Unseal`].
//! - **Hygiene, not a guarantee:** plaintext keys are not `Clone`, print as `[redacted]` and
//!   are zeroized on drop, which shrinks what a crash dump or a stray log line can leak.
//! - **Not protected:** an attacker who can read the memory of a running, unsealed server; a
//!   dev-mode [`seal::KeyFileRoot`] stored beside the data it protects (it protects nothing at
//!   rest, and says so). All primitives come from AWS-LC via `aws-lc-rs`; none is hand-rolled.

pub mod asymmetric;
pub mod blob;
pub mod context;
pub mod digest;
pub mod envelope;
pub mod error;
pub mod import;
pub mod material;
pub mod random;
pub mod seal;
pub mod signing;
pub mod token;

pub use context::EncryptionContext;
pub use error::CryptoError;
pub use material::{KeyId, MaterialId, SecretBytes, SymmetricKey};
