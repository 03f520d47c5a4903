//! The Shamir root key: a 256-bit key that exists only as K-of-N shares held by operators,
//! rebuilt in memory when K of them are entered (unseal) and dropped (zeroized) at seal.
//!
//! Shares come from `blahaj` (Shamir's secret sharing over GF(256), a maintained fork of
//! `sharks` without its coefficient bias). A share says nothing about the set it belongs to:
//! a wrong or mixed combination of shares interpolates to *some* key, so whoever combines
//! shares must check the result — the server does so by opening the sealed domain key (an
//! AES-256-GCM tag check) before it accepts a combination.
//!
//! Share text format (`keyhold-share-v1`):
//!
//! ```text
//! keyhold-share-v1-<base64url, no padding, of: x (1) ‖ y (32) ‖ SHA-256(x ‖ y)[..4]>
//! ```
//!
//! The four checksum bytes catch a mistyped or truncated share before it is counted.

use std::fmt;

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

use super::{RootKeyProvider, seal_with_key, unseal_with_key};
use crate::material::{KEY_LEN, Key256};
use crate::{CryptoError, SecretBytes};

const PREFIX: &str = "keyhold-share-v1-";
const CHECKSUM_LEN: usize = 4;
/// x ‖ y: one byte of x coordinate and one y byte per key byte.
const SHARE_LEN: usize = 1 + KEY_LEN;
/// The most shares GF(256) allows (x = 1..=255).
pub const MAX_SHARES: u8 = 255;

/// One operator's share of a Shamir root key. Not `Clone`; zeroized on drop; its `Debug`
/// shows only its index.
pub struct RootShare(Zeroizing<[u8; SHARE_LEN]>);

impl RootShare {
    /// Parses a share in the `keyhold-share-v1` text format (surrounding whitespace is
    /// ignored); [`CryptoError::ShareFormat`] for anything else, including a wrong checksum.
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        let encoded = text
            .trim()
            .strip_prefix(PREFIX)
            .ok_or(CryptoError::ShareFormat)?;
        let mut decoded = Zeroizing::new([0u8; SHARE_LEN + CHECKSUM_LEN + 3]);
        let n = URL_SAFE_NO_PAD
            .decode_slice(encoded, decoded.as_mut_slice())
            .map_err(|_| CryptoError::ShareFormat)?;
        if n != SHARE_LEN + CHECKSUM_LEN {
            return Err(CryptoError::ShareFormat);
        }
        let (share, checksum) = decoded[..n].split_at(SHARE_LEN);
        if checksum != &digest(&SHA256, share).as_ref()[..CHECKSUM_LEN] || share[0] == 0 {
            return Err(CryptoError::ShareFormat);
        }
        let mut bytes = Zeroizing::new([0u8; SHARE_LEN]);
        bytes.copy_from_slice(share);
        Ok(Self(bytes))
    }

    /// The share in the `keyhold-share-v1` text format.
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut raw = Zeroizing::new([0u8; SHARE_LEN + CHECKSUM_LEN]);
        raw[..SHARE_LEN].copy_from_slice(self.0.as_slice());
        raw[SHARE_LEN..]
            .copy_from_slice(&digest(&SHA256, self.0.as_slice()).as_ref()[..CHECKSUM_LEN]);
        let mut text = Zeroizing::new(String::with_capacity(PREFIX.len() + 50));
        text.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(raw.as_slice(), &mut text);
        text
    }

    /// The share's x coordinate (1..=255): two shares with the same index are the same share
    /// or from different sets.
    pub fn index(&self) -> u8 {
        self.0[0]
    }
}

impl fmt::Debug for RootShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RootShare(#{}, [redacted])", self.index())
    }
}

/// A root key rebuilt from (or split into) Shamir shares.
pub struct ShamirRoot {
    key: Key256,
}

impl ShamirRoot {
    /// A fresh random root key and its `shares` shares, any `threshold` of which rebuild it.
    /// [`CryptoError::ShamirParameters`] unless `1 <= threshold <= shares <= 255`.
    pub fn generate(shares: u8, threshold: u8) -> Result<(Self, Vec<RootShare>), CryptoError> {
        let root = Self {
            key: Key256::generate()?,
        };
        let split = root.split(shares, threshold)?;
        Ok((root, split))
    }

    /// Splits this root key into `shares` shares, any `threshold` of which rebuild it.
    pub fn split(&self, shares: u8, threshold: u8) -> Result<Vec<RootShare>, CryptoError> {
        if threshold == 0 || threshold > shares {
            return Err(CryptoError::ShamirParameters);
        }
        let dealer = blahaj::Sharks(threshold).dealer(self.key.expose());
        let out: Vec<RootShare> = dealer
            .take(usize::from(shares))
            .map(|share| {
                let bytes = Zeroizing::new(Vec::from(&share));
                let mut fixed = Zeroizing::new([0u8; SHARE_LEN]);
                fixed.copy_from_slice(&bytes);
                RootShare(fixed)
            })
            .collect();
        if out.len() != usize::from(shares) {
            return Err(CryptoError::ShamirParameters);
        }
        Ok(out)
    }

    /// Interpolates a root key from `shares` with `threshold` as the polynomial's degree + 1.
    /// This cannot tell a right combination from a wrong one: the caller checks the result
    /// by opening something sealed under the real root key (the domain key).
    /// [`CryptoError::ShamirParameters`] with fewer than `threshold` distinct shares.
    pub fn combine(shares: &[RootShare], threshold: u8) -> Result<Self, CryptoError> {
        let parsed: Vec<blahaj::Share> = shares
            .iter()
            .map(|s| blahaj::Share::try_from(s.0.as_slice()))
            .collect::<Result<_, _>>()
            .map_err(|_| CryptoError::ShareFormat)?;
        let secret = Zeroizing::new(
            blahaj::Sharks(threshold)
                .recover(parsed.iter())
                .map_err(|_| CryptoError::ShamirParameters)?,
        );
        let key = Key256::from_slice(&secret).ok_or(CryptoError::ShareFormat)?;
        Ok(Self { key })
    }
}

impl RootKeyProvider for ShamirRoot {
    fn kind(&self) -> &'static str {
        "shamir"
    }

    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        seal_with_key(&self.key, plaintext, aad)
    }

    fn unseal(&self, sealed: &[u8], aad: &[u8]) -> Result<SecretBytes, CryptoError> {
        unseal_with_key(&self.key, sealed, aad)
    }
}

impl fmt::Debug for ShamirRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ShamirRoot([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::DomainKey;

    fn reparse(shares: &[RootShare]) -> Vec<RootShare> {
        shares
            .iter()
            .map(|s| RootShare::parse(&s.to_text()).unwrap())
            .collect()
    }

    #[test]
    fn any_k_shares_rebuild_the_key_and_fewer_do_not() {
        let (root, shares) = ShamirRoot::generate(5, 3).unwrap();
        let sealed = DomainKey::generate().unwrap().seal(&root).unwrap();
        let shares = reparse(&shares);
        for combo in [[0, 1, 2], [0, 2, 4], [4, 3, 1]] {
            let picked: Vec<RootShare> = combo
                .iter()
                .map(|&i| RootShare::parse(&shares[i].to_text()).unwrap())
                .collect();
            let rebuilt = ShamirRoot::combine(&picked, 3).unwrap();
            assert!(DomainKey::unseal(&rebuilt, &sealed).is_ok());
        }
        assert!(matches!(
            ShamirRoot::combine(&shares[..2], 3),
            Err(CryptoError::ShamirParameters)
        ));
        // Two shares with a threshold of 2 interpolate to a different key: the AEAD check
        // catches it.
        let wrong = ShamirRoot::combine(&shares[..2], 2).unwrap();
        assert!(DomainKey::unseal(&wrong, &sealed).is_err());
    }

    #[test]
    fn mixed_sets_fail_the_check() {
        let (root, a) = ShamirRoot::generate(3, 2).unwrap();
        let (_, b) = ShamirRoot::generate(3, 2).unwrap();
        let sealed = DomainKey::generate().unwrap().seal(&root).unwrap();
        let a = reparse(&a);
        let b = reparse(&b);
        let mixed = vec![
            RootShare::parse(&a[0].to_text()).unwrap(),
            RootShare::parse(&b[1].to_text()).unwrap(),
        ];
        let rebuilt = ShamirRoot::combine(&mixed, 2).unwrap();
        assert!(DomainKey::unseal(&rebuilt, &sealed).is_err());
    }

    #[test]
    fn share_text_is_checked() {
        let (_, shares) = ShamirRoot::generate(2, 2).unwrap();
        let text = shares[0].to_text();
        assert!(text.starts_with(PREFIX));
        assert_eq!(
            RootShare::parse(&format!("  {}\n", text.as_str()))
                .unwrap()
                .index(),
            1
        );
        let mut typo = text.to_string();
        let last = typo.pop().unwrap();
        typo.push(if last == 'A' { 'B' } else { 'A' });
        for bad in [
            typo.as_str(),
            &text[..text.len() - 1],
            &text[PREFIX.len()..],
            "",
            "keyhold-share-v1-",
        ] {
            assert!(
                matches!(RootShare::parse(bad), Err(CryptoError::ShareFormat)),
                "accepted {bad:?}"
            );
        }
    }

    #[test]
    fn parameters_are_checked() {
        assert!(ShamirRoot::generate(2, 3).is_err());
        assert!(ShamirRoot::generate(2, 0).is_err());
        assert_eq!(ShamirRoot::generate(255, 255).unwrap().1.len(), 255);
        assert_eq!(ShamirRoot::generate(1, 1).unwrap().1.len(), 1);
    }

    #[test]
    fn debug_is_redacted() {
        let (root, shares) = ShamirRoot::generate(2, 2).unwrap();
        assert_eq!(format!("{root:?}"), "ShamirRoot([redacted])");
        assert_eq!(format!("{:?}", shares[1]), "RootShare(#2, [redacted])");
    }
}
