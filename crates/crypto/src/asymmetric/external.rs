//! The two signing inputs KMS defines that AWS-LC offers no safe `aws-lc-rs` interface for:
//! Ed25519ph over a caller's SHA-512 digest (`ED25519_PH_SHA_512` with `MessageType: DIGEST`)
//! and ML-DSA over a caller's message representative μ (`MessageType: EXTERNAL_MU`, FIPS 204
//! §6.2). Both come from RustCrypto's maintained implementations (`ed25519-dalek`, `ml-dsa`),
//! fed the same key material AWS-LC parsed: the Ed25519 seed and the ML-DSA expanded key. The
//! derived public key is compared with AWS-LC's before the key is used, so the two libraries
//! can never disagree about which key signs.
//!
//! Everything else of these keys (RAW messages, generation, public keys) stays with AWS-LC.

use aws_lc_rs::encoding::{AsBigEndian, AsRawBytes};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _, PqdsaKeyPair};
use ed25519_dalek::{SigningKey as EdSigningKey, VerifyingKey as EdVerifyingKey};
use ml_dsa::{EncodedSignature, EncodedVerifyingKey, ExpandedSigningKey, MlDsaParams, Signature};
use zeroize::Zeroizing;

use super::KeySpec;
use crate::CryptoError;

/// Length of a SHA-512 digest, Ed25519ph's prehash.
const ED25519PH_DIGEST_LEN: usize = 64;

/// An Ed25519 key for Ed25519ph (RFC 8032 §5.1, empty context).
pub(super) struct Ed25519Ph {
    signing: EdSigningKey,
}

impl Ed25519Ph {
    /// The Ed25519ph form of an AWS-LC Ed25519 key pair.
    pub(super) fn new(pair: &Ed25519KeyPair) -> Result<Self, CryptoError> {
        let seed = pair.seed().map_err(|_| CryptoError::Unseal)?;
        let seed = seed.as_be_bytes().map_err(|_| CryptoError::Unseal)?;
        let seed: Zeroizing<[u8; 32]> =
            Zeroizing::new(seed.as_ref().try_into().map_err(|_| CryptoError::Unseal)?);
        let signing = EdSigningKey::from_bytes(&seed);
        if signing.verifying_key().as_bytes().as_slice() != pair.public_key().as_ref() {
            return Err(CryptoError::Unseal);
        }
        Ok(Self { signing })
    }

    /// The Ed25519ph signature of the message whose SHA-512 digest is `digest`.
    pub(super) fn sign(&self, digest: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let prehash = Prehashed::new(digest)?;
        let signature = self
            .signing
            .sign_prehashed(prehash, None)
            .map_err(|_| CryptoError::Sign)?;
        Ok(signature.to_bytes().to_vec())
    }

    /// Whether `signature` is this key's Ed25519ph signature of `digest` (strict: no
    /// small-order or non-canonical points).
    pub(super) fn verify(&self, digest: &[u8], signature: &[u8]) -> Result<bool, CryptoError> {
        let prehash = Prehashed::new(digest)?;
        let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
            return Ok(false);
        };
        let verifying: EdVerifyingKey = self.signing.verifying_key();
        Ok(verifying
            .verify_prehashed_strict(prehash, None, &signature)
            .is_ok())
    }
}

/// A SHA-512 digest the caller computed, handed to `ed25519-dalek` as the finished state of
/// the prehash function. It only ever yields the digest it was made with: absorbing more
/// input is ignored, and `ed25519-dalek` never asks it to (it calls `finalize` once).
#[derive(Clone)]
struct Prehashed([u8; ED25519PH_DIGEST_LEN]);

/// `Digest` wants a fresh state; an empty prehash is all zeros (never signed: [`Prehashed::new`]
/// is the only way a digest reaches a signature).
impl Default for Prehashed {
    fn default() -> Self {
        Self([0; ED25519PH_DIGEST_LEN])
    }
}

impl Prehashed {
    fn new(digest: &[u8]) -> Result<Self, CryptoError> {
        Ok(Self(
            digest.try_into().map_err(|_| CryptoError::InvalidInput)?,
        ))
    }
}

impl digest::HashMarker for Prehashed {}

impl digest::OutputSizeUser for Prehashed {
    type OutputSize = digest::typenum::U64;
}

impl digest::Update for Prehashed {
    fn update(&mut self, _data: &[u8]) {}
}

impl digest::FixedOutput for Prehashed {
    fn finalize_into(self, out: &mut digest::Output<Self>) {
        out.copy_from_slice(&self.0);
    }
}

/// An ML-DSA key for signing and verifying over an external μ.
pub(super) enum MlDsaMu {
    MlDsa44(MuKey<ml_dsa::MlDsa44>),
    MlDsa65(MuKey<ml_dsa::MlDsa65>),
    MlDsa87(MuKey<ml_dsa::MlDsa87>),
}

pub(super) struct MuKey<P: MlDsaParams> {
    signing: Box<ExpandedSigningKey<P>>,
    verifying: ml_dsa::VerifyingKey<P>,
}

impl MlDsaMu {
    /// The external-μ form of an AWS-LC ML-DSA key pair of `spec`.
    pub(super) fn new(spec: KeySpec, pair: &PqdsaKeyPair) -> Result<Self, CryptoError> {
        let private = pair
            .private_key()
            .as_raw_bytes()
            .map_err(|_| CryptoError::Unseal)?;
        let expanded = Zeroizing::new(private.as_ref().to_vec());
        let public = pair.public_key().as_ref();
        Ok(match spec {
            KeySpec::MlDsa44 => Self::MlDsa44(MuKey::new(&expanded, public)?),
            KeySpec::MlDsa65 => Self::MlDsa65(MuKey::new(&expanded, public)?),
            KeySpec::MlDsa87 => Self::MlDsa87(MuKey::new(&expanded, public)?),
            _ => return Err(CryptoError::Unseal),
        })
    }

    /// A hedged ML-DSA signature over `mu` (FIPS 204 Algorithm 2 with a precomputed μ).
    pub(super) fn sign(&self, mu: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match self {
            Self::MlDsa44(key) => key.sign(mu),
            Self::MlDsa65(key) => key.sign(mu),
            Self::MlDsa87(key) => key.sign(mu),
        }
    }

    /// Whether `signature` is this key's signature over `mu`.
    pub(super) fn verify(&self, mu: &[u8], signature: &[u8]) -> Result<bool, CryptoError> {
        match self {
            Self::MlDsa44(key) => key.verify(mu, signature),
            Self::MlDsa65(key) => key.verify(mu, signature),
            Self::MlDsa87(key) => key.verify(mu, signature),
        }
    }
}

impl<P: MlDsaParams> MuKey<P> {
    fn new(expanded: &[u8], public: &[u8]) -> Result<Self, CryptoError> {
        let expanded = expanded.try_into().map_err(|_| CryptoError::Unseal)?;
        // The expanded (FIPS 204 skEncode) form is what AWS-LC gives back; `ml-dsa` prefers
        // the seed but reads this form exactly.
        #[allow(deprecated)]
        let signing = Box::new(ExpandedSigningKey::<P>::from_expanded(expanded));
        let encoded: &EncodedVerifyingKey<P> =
            public.try_into().map_err(|_| CryptoError::Unseal)?;
        let verifying = ml_dsa::VerifyingKey::<P>::decode(encoded);
        if signing.verifying_key().encode() != *encoded {
            return Err(CryptoError::Unseal);
        }
        Ok(Self { signing, verifying })
    }

    fn sign(&self, mu: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mu = mu.try_into().map_err(|_| CryptoError::InvalidInput)?;
        let signature = self
            .signing
            .sign_mu_randomized(mu, &mut AwsLcRng)
            .map_err(|_| CryptoError::Sign)?;
        Ok(signature.encode().to_vec())
    }

    fn verify(&self, mu: &[u8], signature: &[u8]) -> Result<bool, CryptoError> {
        let mu = mu.try_into().map_err(|_| CryptoError::InvalidInput)?;
        let Ok(encoded) = <&EncodedSignature<P>>::try_from(signature) else {
            return Ok(false);
        };
        let Some(signature) = Signature::<P>::decode(encoded) else {
            return Ok(false);
        };
        Ok(self.verifying.verify_mu(mu, &signature))
    }
}

/// AWS-LC's random generator, for `ml-dsa`'s hedged signing.
struct AwsLcRng;

impl rand_core::TryRng for AwsLcRng {
    type Error = aws_lc_rs::error::Unspecified;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut bytes = [0u8; 4];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut bytes = [0u8; 8];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        SystemRandom::new().fill(dst)
    }
}

impl rand_core::TryCryptoRng for AwsLcRng {}
