//! Property tests of the ciphertext blob: round trips, and every kind of damage — bit flips,
//! truncation, another context, another key, arbitrary bytes — fails with the one
//! `InvalidCiphertext` and never panics.

use std::collections::BTreeMap;

use keyhold_crypto::blob::{self, BlobHeader};
use keyhold_crypto::{CryptoError, EncryptionContext, KeyId, MaterialId, SymmetricKey};
use proptest::prelude::*;
use proptest::sample::Index;

type Context = BTreeMap<String, String>;

fn context_strategy() -> impl Strategy<Value = Context> {
    prop::collection::btree_map("\\PC{0,12}", "\\PC{0,12}", 0..6)
}

fn canonical(ctx: &Context) -> EncryptionContext {
    EncryptionContext::new(ctx.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn ids() -> (KeyId, MaterialId) {
    let material_id = MaterialId::random().expect("system RNG works");
    (KeyId::from_bytes([0x42; 16]), material_id)
}

fn is_invalid<T>(result: Result<T, CryptoError>) -> bool {
    matches!(result, Err(CryptoError::InvalidCiphertext))
}

/// A change to a context that must make decryption fail.
#[derive(Debug, Clone)]
enum Mutation {
    Add(String, String),
    Remove(Index),
    AlterValue(Index, String),
    AlterKey(Index, String),
}

fn mutation_strategy() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        ("\\PC{0,12}", "\\PC{0,12}").prop_map(|(k, v)| Mutation::Add(k, v)),
        any::<Index>().prop_map(Mutation::Remove),
        (any::<Index>(), "\\PC{1,12}").prop_map(|(i, s)| Mutation::AlterValue(i, s)),
        (any::<Index>(), "\\PC{1,12}").prop_map(|(i, s)| Mutation::AlterKey(i, s)),
    ]
}

/// Applies `m`; `None` if it would not change the context (nothing to remove, or the new key
/// already exists), in which case the case is skipped.
fn mutate(ctx: &Context, m: &Mutation) -> Option<Context> {
    let mut out = ctx.clone();
    let nth_key = |i: &Index| {
        if ctx.is_empty() {
            return None;
        }
        ctx.keys().nth(i.index(ctx.len())).cloned()
    };
    match m {
        Mutation::Add(k, v) => {
            if ctx.contains_key(k) {
                return None;
            }
            out.insert(k.clone(), v.clone());
        }
        Mutation::Remove(i) => {
            out.remove(&nth_key(i)?);
        }
        Mutation::AlterValue(i, suffix) => {
            out.get_mut(&nth_key(i)?)?.push_str(suffix);
        }
        Mutation::AlterKey(i, suffix) => {
            let key = nth_key(i)?;
            let value = out.remove(&key)?;
            let new_key = format!("{key}{suffix}");
            if ctx.contains_key(&new_key) {
                return None;
            }
            out.insert(new_key, value);
        }
    }
    (out != *ctx).then_some(out)
}

proptest! {
    #[test]
    fn round_trips_any_plaintext_and_context(
        plaintext in prop::collection::vec(any::<u8>(), 0..=4096),
        ctx in context_strategy(),
    ) {
        let key = SymmetricKey::generate().unwrap();
        let (key_id, material_id) = ids();
        let ctx = canonical(&ctx);
        let blob = blob::encrypt(&key, key_id, material_id, &ctx, &plaintext).unwrap();
        prop_assert_eq!(blob.len(), plaintext.len() + blob::OVERHEAD);
        prop_assert_eq!(blob::parse_header(&blob).unwrap(), BlobHeader { key_id, material_id, in_token: false });
        let decrypted = blob::decrypt(&key, &blob, &ctx).unwrap();
        prop_assert_eq!(decrypted.expose_secret(), plaintext.as_slice());
    }

    #[test]
    fn any_single_bit_flip_is_rejected(
        plaintext in prop::collection::vec(any::<u8>(), 0..64),
        ctx in context_strategy(),
        position in any::<Index>(),
        bit in 0u8..8,
    ) {
        let key = SymmetricKey::generate().unwrap();
        let (key_id, material_id) = ids();
        let ctx = canonical(&ctx);
        let mut blob = blob::encrypt(&key, key_id, material_id, &ctx, &plaintext).unwrap();
        let i = position.index(blob.len());
        blob[i] ^= 1 << bit;
        prop_assert!(is_invalid(blob::decrypt(&key, &blob, &ctx)), "byte {} bit {}", i, bit);
    }

    #[test]
    fn any_change_of_the_context_is_rejected(
        plaintext in prop::collection::vec(any::<u8>(), 0..64),
        ctx in context_strategy(),
        mutation in mutation_strategy(),
    ) {
        let Some(changed) = mutate(&ctx, &mutation) else {
            return Err(TestCaseError::reject("mutation leaves the context unchanged"));
        };
        let key = SymmetricKey::generate().unwrap();
        let (key_id, material_id) = ids();
        let blob = blob::encrypt(&key, key_id, material_id, &canonical(&ctx), &plaintext).unwrap();
        prop_assert!(is_invalid(blob::decrypt(&key, &blob, &canonical(&changed))));
    }

    #[test]
    fn two_encryptions_of_the_same_plaintext_differ(
        plaintext in prop::collection::vec(any::<u8>(), 0..256),
        ctx in context_strategy(),
    ) {
        let key = SymmetricKey::generate().unwrap();
        let (key_id, material_id) = ids();
        let ctx = canonical(&ctx);
        let a = blob::encrypt(&key, key_id, material_id, &ctx, &plaintext).unwrap();
        let b = blob::encrypt(&key, key_id, material_id, &ctx, &plaintext).unwrap();
        prop_assert_ne!(&a[49..81], &b[49..81], "the salt must be fresh");
        prop_assert_ne!(&a[81..93], &b[81..93], "the nonce must be fresh");
        prop_assert_ne!(&a[93..], &b[93..]);
    }

    #[test]
    fn truncation_at_every_length_is_rejected(
        plaintext in prop::collection::vec(any::<u8>(), 0..48),
        ctx in context_strategy(),
    ) {
        let key = SymmetricKey::generate().unwrap();
        let (key_id, material_id) = ids();
        let ctx = canonical(&ctx);
        let blob = blob::encrypt(&key, key_id, material_id, &ctx, &plaintext).unwrap();
        for len in 0..blob.len() {
            prop_assert!(is_invalid(blob::decrypt(&key, &blob[..len], &ctx)), "length {}", len);
        }
    }

    #[test]
    fn appended_bytes_are_rejected(
        plaintext in prop::collection::vec(any::<u8>(), 0..48),
        extra in prop::collection::vec(any::<u8>(), 1..32),
    ) {
        let key = SymmetricKey::generate().unwrap();
        let (key_id, material_id) = ids();
        let ctx = EncryptionContext::empty();
        let mut blob = blob::encrypt(&key, key_id, material_id, &ctx, &plaintext).unwrap();
        blob.extend_from_slice(&extra);
        prop_assert!(is_invalid(blob::decrypt(&key, &blob, &ctx)));
    }

    #[test]
    fn parse_header_and_decrypt_never_panic_on_arbitrary_bytes(
        mut bytes in prop::collection::vec(any::<u8>(), 0..400),
        force_version in any::<bool>(),
    ) {
        if force_version && !bytes.is_empty() {
            bytes[0] = blob::VERSION;
        }
        let header = blob::parse_header(&bytes);
        prop_assert_eq!(
            header.is_ok(),
            bytes.len() >= blob::OVERHEAD
                && (bytes[0] == blob::VERSION || bytes[0] == blob::VERSION_TOKEN)
        );
        let key = SymmetricKey::generate().unwrap();
        prop_assert!(is_invalid(blob::decrypt(&key, &bytes, &EncryptionContext::empty())));
    }

    #[test]
    fn decrypt_with_another_key_is_rejected(
        plaintext in prop::collection::vec(any::<u8>(), 0..256),
        ctx in context_strategy(),
    ) {
        let key = SymmetricKey::generate().unwrap();
        let other = SymmetricKey::generate().unwrap();
        let (key_id, material_id) = ids();
        let ctx = canonical(&ctx);
        let blob = blob::encrypt(&key, key_id, material_id, &ctx, &plaintext).unwrap();
        prop_assert!(is_invalid(blob::decrypt(&other, &blob, &ctx)));
    }
}

#[test]
fn unknown_versions_are_rejected_even_with_a_valid_tag_length() {
    let key = SymmetricKey::generate().unwrap();
    let (key_id, material_id) = ids();
    let ctx = EncryptionContext::empty();
    let blob = blob::encrypt(&key, key_id, material_id, &ctx, b"x").unwrap();
    for version in (0..=u8::MAX).filter(|v| *v != blob::VERSION) {
        let mut other = blob.clone();
        other[0] = version;
        // Version 2 is a token key's blob: its header parses, but it never opens here.
        if version == blob::VERSION_TOKEN {
            assert!(blob::parse_header(&other).unwrap().in_token);
        } else {
            assert!(is_invalid(blob::parse_header(&other)));
        }
        assert!(is_invalid(blob::decrypt(&key, &other, &ctx)));
    }
}

#[test]
fn empty_and_absent_contexts_are_the_same_but_differ_from_an_empty_entry() {
    let key = SymmetricKey::generate().unwrap();
    let (key_id, material_id) = ids();
    let blob = blob::encrypt(&key, key_id, material_id, &EncryptionContext::new([]), b"x").unwrap();
    assert!(blob::decrypt(&key, &blob, &EncryptionContext::empty()).is_ok());
    assert!(is_invalid(blob::decrypt(
        &key,
        &blob,
        &EncryptionContext::new([("", "")])
    )));
}
