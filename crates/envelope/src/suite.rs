//! The algorithm suites this crate reads and writes (the ESDK's "Supported Algorithm Suites").

use crate::Error;

/// An ESDK algorithm suite. New messages use one of the two committing version-2 suites;
/// the version-1 suites are read so that messages made by older ESDK configurations
/// (commitment policy `forbid-encrypt-allow-decrypt`) still decrypt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlgorithmSuite {
    /// `0x0478`: AES-256-GCM, HKDF-SHA512 with key commitment, no signature. The default.
    Aes256GcmHkdfSha512CommitKey,
    /// `0x0578`: as `0x0478` plus an ECDSA P-384 / SHA-384 signature over the whole message.
    Aes256GcmHkdfSha512CommitKeyEcdsaP384,
    /// `0x0178`: version 1, AES-256-GCM with HKDF-SHA256, no commitment. Decrypt only.
    Aes256GcmIv12Tag16HkdfSha256,
    /// `0x0378`: version 1, AES-256-GCM with HKDF-SHA384 and ECDSA P-384. Decrypt only.
    Aes256GcmIv12Tag16HkdfSha384EcdsaP384,
}

/// Which hash HKDF uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KdfHash {
    Sha256,
    Sha384,
    Sha512,
}

impl AlgorithmSuite {
    pub const fn id(self) -> u16 {
        match self {
            Self::Aes256GcmHkdfSha512CommitKey => 0x0478,
            Self::Aes256GcmHkdfSha512CommitKeyEcdsaP384 => 0x0578,
            Self::Aes256GcmIv12Tag16HkdfSha256 => 0x0178,
            Self::Aes256GcmIv12Tag16HkdfSha384EcdsaP384 => 0x0378,
        }
    }

    /// The suite with this identifier, if this crate implements it.
    pub fn from_id(id: u16) -> Result<Self, Error> {
        Ok(match id {
            0x0478 => Self::Aes256GcmHkdfSha512CommitKey,
            0x0578 => Self::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
            0x0178 => Self::Aes256GcmIv12Tag16HkdfSha256,
            0x0378 => Self::Aes256GcmIv12Tag16HkdfSha384EcdsaP384,
            _ => return Err(Error::Unsupported("algorithm suite")),
        })
    }

    /// The message format version (1 or 2) that carries this suite.
    pub const fn message_version(self) -> u8 {
        if self.is_committing() { 2 } else { 1 }
    }

    pub const fn is_committing(self) -> bool {
        matches!(
            self,
            Self::Aes256GcmHkdfSha512CommitKey | Self::Aes256GcmHkdfSha512CommitKeyEcdsaP384
        )
    }

    pub const fn is_signed(self) -> bool {
        matches!(
            self,
            Self::Aes256GcmHkdfSha512CommitKeyEcdsaP384
                | Self::Aes256GcmIv12Tag16HkdfSha384EcdsaP384
        )
    }

    /// The name the ESDK and its CLI use for the suite.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Aes256GcmHkdfSha512CommitKey => "AES_256_GCM_HKDF_SHA512_COMMIT_KEY",
            Self::Aes256GcmHkdfSha512CommitKeyEcdsaP384 => {
                "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384"
            }
            Self::Aes256GcmIv12Tag16HkdfSha256 => "AES_256_GCM_IV12_TAG16_HKDF_SHA256",
            Self::Aes256GcmIv12Tag16HkdfSha384EcdsaP384 => {
                "AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384"
            }
        }
    }

    pub(crate) const fn kdf_hash(self) -> KdfHash {
        match self {
            Self::Aes256GcmHkdfSha512CommitKey | Self::Aes256GcmHkdfSha512CommitKeyEcdsaP384 => {
                KdfHash::Sha512
            }
            Self::Aes256GcmIv12Tag16HkdfSha256 => KdfHash::Sha256,
            Self::Aes256GcmIv12Tag16HkdfSha384EcdsaP384 => KdfHash::Sha384,
        }
    }

    /// Length of the message id: 16 bytes in version 1, 32 in version 2.
    pub(crate) const fn message_id_len(self) -> usize {
        if self.is_committing() { 32 } else { 16 }
    }
}

/// Bytes of the data key, the derived key, the commit key (all suites here use AES-256).
pub(crate) const KEY_LEN: usize = 32;
pub(crate) const IV_LEN: usize = 12;
pub(crate) const TAG_LEN: usize = 16;
