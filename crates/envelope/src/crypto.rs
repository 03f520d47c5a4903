//! Key derivation, AES-GCM on frames and the header, and the ECDSA P-384 signature — the
//! ESDK's `framework/transitive-requirements.md` and `client-apis/encrypt.md`.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest;
use aws_lc_rs::encoding::{AsBigEndian, EcPublicKeyCompressedBin};
use aws_lc_rs::hkdf;
use aws_lc_rs::signature::{
    ECDSA_P384_SHA384_ASN1, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use base64::Engine as _;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::Error;
use crate::suite::{AlgorithmSuite, IV_LEN, KEY_LEN, KdfHash, TAG_LEN};

/// A plaintext data key: 32 bytes that are never cloned implicitly, never printed and
/// zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct DataKey([u8; KEY_LEN]);

impl DataKey {
    pub(crate) fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let array: [u8; KEY_LEN] = bytes.try_into().map_err(|_| Error::InvalidCiphertext)?;
        Ok(Self(array))
    }

    #[cfg(test)]
    pub(crate) fn random() -> Result<Self, Error> {
        let mut k = [0u8; KEY_LEN];
        aws_lc_rs::rand::fill(&mut k).map_err(|_| Error::Crypto)?;
        let out = Self(k);
        k.zeroize();
        Ok(out)
    }

    pub(crate) fn duplicate(&self) -> Self {
        Self(self.0)
    }

    pub(crate) fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn hkdf_alg(hash: KdfHash) -> hkdf::Algorithm {
    match hash {
        KdfHash::Sha256 => hkdf::HKDF_SHA256,
        KdfHash::Sha384 => hkdf::HKDF_SHA384,
        KdfHash::Sha512 => hkdf::HKDF_SHA512,
    }
}

/// HKDF with one info string, output `out.len()` bytes.
pub(crate) fn hkdf(
    hash: KdfHash,
    salt: &[u8],
    ikm: &[u8],
    info: &[&[u8]],
    out: &mut [u8],
) -> Result<(), Error> {
    let prk = hkdf::Salt::new(hkdf_alg(hash), salt).extract(ikm);
    let okm = prk
        .expand(info, Len(out.len()))
        .map_err(|_| Error::Crypto)?;
    okm.fill(out).map_err(|_| Error::Crypto)
}

/// The message's content key, derived from the data key, plus (version 2) its commit key.
pub(crate) struct MessageKey {
    key: LessSafeKey,
    pub(crate) commitment: Option<Zeroizing<[u8; KEY_LEN]>>,
}

impl MessageKey {
    pub(crate) fn derive(
        suite: AlgorithmSuite,
        data_key: &DataKey,
        message_id: &[u8],
    ) -> Result<Self, Error> {
        let mut derived = Zeroizing::new([0u8; KEY_LEN]);
        let id = suite.id().to_be_bytes();
        let commitment = if suite.is_committing() {
            // One extract (salt = the 32-byte message id), two expands.
            let prk =
                hkdf::Salt::new(hkdf_alg(suite.kdf_hash()), message_id).extract(data_key.expose());
            prk.expand(&[&id, b"DERIVEKEY"], Len(KEY_LEN))
                .and_then(|okm| okm.fill(derived.as_mut_slice()))
                .map_err(|_| Error::Crypto)?;
            let mut commit = Zeroizing::new([0u8; KEY_LEN]);
            prk.expand(&[b"COMMITKEY"], Len(KEY_LEN))
                .and_then(|okm| okm.fill(commit.as_mut_slice()))
                .map_err(|_| Error::Crypto)?;
            Some(commit)
        } else {
            let zeros = [0u8; 64];
            let salt_len = match suite.kdf_hash() {
                KdfHash::Sha256 => 32,
                KdfHash::Sha384 => 48,
                KdfHash::Sha512 => 64,
            };
            hkdf(
                suite.kdf_hash(),
                &zeros[..salt_len],
                data_key.expose(),
                &[&id, message_id],
                derived.as_mut_slice(),
            )?;
            None
        };
        let unbound =
            UnboundKey::new(&AES_256_GCM, derived.as_slice()).map_err(|_| Error::Crypto)?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
            commitment,
        })
    }

    /// Checks the header's commit key in constant time.
    pub(crate) fn check_commitment(&self, stored: &[u8]) -> Result<(), Error> {
        match &self.commitment {
            Some(c) => {
                verify_slices_are_equal(c.as_slice(), stored).map_err(|_| Error::InvalidCiphertext)
            }
            None => Ok(()),
        }
    }

    /// Encrypts in place and returns the tag.
    pub(crate) fn seal(
        &self,
        iv: [u8; IV_LEN],
        aad: &[u8],
        data: &mut [u8],
    ) -> Result<[u8; TAG_LEN], Error> {
        let tag = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(iv), Aad::from(aad), data)
            .map_err(|_| Error::Crypto)?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Encrypts `plaintext` into `ciphertext` (same length) and its tag into `tag`, leaving
    /// the input untouched: one pass over the data, no copy.
    pub(crate) fn seal_into(
        &self,
        iv: [u8; IV_LEN],
        aad: &[u8],
        plaintext: &[u8],
        ciphertext: &mut [u8],
        tag: &mut [u8],
    ) -> Result<(), Error> {
        self.key
            .seal_out_of_place_scatter(
                Nonce::assume_unique_for_key(iv),
                Aad::from(aad),
                plaintext,
                ciphertext,
                &[],
                tag,
            )
            .map_err(|_| Error::Crypto)
    }

    /// Decrypts `ciphertext || tag` in place after checking the tag; returns the
    /// plaintext length (the first bytes of `in_out`). On failure `in_out` is zeroed.
    pub(crate) fn open(
        &self,
        iv: [u8; IV_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<usize, Error> {
        match self
            .key
            .open_in_place(Nonce::assume_unique_for_key(iv), Aad::from(aad), in_out)
        {
            Ok(plain) => Ok(plain.len()),
            Err(_) => {
                in_out.zeroize();
                Err(Error::InvalidCiphertext)
            }
        }
    }
}

/// The IV of frame `seq`: the sequence number, big-endian, left-padded with zeros.
pub(crate) fn frame_iv(seq: u32) -> [u8; IV_LEN] {
    let mut iv = [0u8; IV_LEN];
    iv[IV_LEN - 4..].copy_from_slice(&seq.to_be_bytes());
    iv
}

/// The message body AAD of one frame, on the stack: at most a 32-byte message id, the
/// 34-byte final-frame label, the sequence number and the 8-byte content length.
pub(crate) struct BodyAad {
    bytes: [u8; 32 + 34 + 4 + 8],
    len: usize,
}

impl AsRef<[u8]> for BodyAad {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

pub(crate) fn body_aad(message_id: &[u8], final_frame: bool, seq: u32, len: u64) -> BodyAad {
    let label: &[u8] = if final_frame {
        b"AWSKMSEncryptionClient Final Frame"
    } else {
        b"AWSKMSEncryptionClient Frame"
    };
    let mut aad = BodyAad {
        bytes: [0u8; 32 + 34 + 4 + 8],
        len: 0,
    };
    // Message ids are 16 or 32 bytes (checked when a header is parsed or made).
    for part in [message_id, label, &seq.to_be_bytes(), &len.to_be_bytes()] {
        aad.bytes[aad.len..aad.len + part.len()].copy_from_slice(part);
        aad.len += part.len();
    }
    aad
}

/// The signing half of a signed suite: a fresh P-384 key per message (or per cached data
/// key), fed the message bytes as they are written.
pub(crate) struct Signer {
    key: EcdsaKeyPair,
    digest: digest::Context,
}

impl Signer {
    pub(crate) fn generate() -> Result<(Self, String), Error> {
        let key =
            EcdsaKeyPair::generate(&ECDSA_P384_SHA384_ASN1_SIGNING).map_err(|_| Error::Crypto)?;
        let public = Self::public_key_b64(&key)?;
        Ok((
            Self {
                key,
                digest: digest::Context::new(&digest::SHA384),
            },
            public,
        ))
    }

    pub(crate) fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, Error> {
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, pkcs8)
            .map_err(|_| Error::Crypto)?;
        Ok(Self {
            key,
            digest: digest::Context::new(&digest::SHA384),
        })
    }

    pub(crate) fn generate_pkcs8() -> Result<(Zeroizing<Vec<u8>>, String), Error> {
        let key =
            EcdsaKeyPair::generate(&ECDSA_P384_SHA384_ASN1_SIGNING).map_err(|_| Error::Crypto)?;
        let public = Self::public_key_b64(&key)?;
        let doc = key.to_pkcs8v1().map_err(|_| Error::Crypto)?;
        Ok((Zeroizing::new(doc.as_ref().to_vec()), public))
    }

    fn public_key_b64(key: &EcdsaKeyPair) -> Result<String, Error> {
        let compressed: EcPublicKeyCompressedBin<'_> =
            key.public_key().as_be_bytes().map_err(|_| Error::Crypto)?;
        Ok(base64::engine::general_purpose::STANDARD.encode(compressed.as_ref()))
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.digest.update(bytes);
    }

    pub(crate) fn finish(self) -> Result<Vec<u8>, Error> {
        let digest = self.digest.finish();
        let sig = self.key.sign_digest(&digest).map_err(|_| Error::Crypto)?;
        Ok(sig.as_ref().to_vec())
    }
}

/// The verifying half: the public key from the encryption context.
pub(crate) struct Verifier {
    public: Vec<u8>,
    digest: digest::Context,
}

impl Verifier {
    pub(crate) fn new(public_b64: &str) -> Result<Self, Error> {
        let public = base64::engine::general_purpose::STANDARD
            .decode(public_b64)
            .map_err(|_| Error::InvalidCiphertext)?;
        Ok(Self {
            public,
            digest: digest::Context::new(&digest::SHA384),
        })
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.digest.update(bytes);
    }

    pub(crate) fn verify(self, signature: &[u8]) -> Result<(), Error> {
        let digest = self.digest.finish();
        UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, &self.public)
            .verify_digest(&digest, signature)
            .map_err(|_| Error::InvalidCiphertext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let dk = DataKey::random().unwrap();
        let id = [7u8; 32];
        let key =
            MessageKey::derive(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey, &dk, &id).unwrap();
        let mut data = b"hello".to_vec();
        let tag = key.seal(frame_iv(1), b"aad", &mut data).unwrap();
        data.extend_from_slice(&tag);
        let mut copy = data.clone();
        let n = key.open(frame_iv(1), b"aad", &mut copy).unwrap();
        assert_eq!(&copy[..n], b"hello");
        let mut copy = data.clone();
        assert!(key.open(frame_iv(1), b"aae", &mut copy).is_err());
        let other = MessageKey::derive(
            AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
            &dk,
            &[8u8; 32],
        )
        .unwrap();
        assert!(
            other
                .check_commitment(key.commitment.as_ref().unwrap().as_slice())
                .is_err()
        );
    }

    #[test]
    fn signatures_verify_and_fail_on_change() {
        let (mut signer, public) = Signer::generate().unwrap();
        signer.update(b"message");
        let sig = signer.finish().unwrap();
        let mut v = Verifier::new(&public).unwrap();
        v.update(b"message");
        v.verify(&sig).unwrap();
        let mut v = Verifier::new(&public).unwrap();
        v.update(b"messagf");
        assert!(v.verify(&sig).is_err());
    }
}
