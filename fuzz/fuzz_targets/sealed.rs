//! The sealed-record formats of `keyhold_crypto`: the domain key sealed under the root key,
//! backing key material and other secrets sealed under the domain key, values sealed under a
//! data key (envelope), the root key file, and token tags.
//!
//! The first byte picks the format; the rest is the sealed bytes (or file contents). Keys
//! are fixed (`keyhold_fuzz::keys`) so that the seed corpus holds records that open.

#![no_main]

use keyhold_crypto::envelope;
use keyhold_crypto::seal::{DomainKey, KeyFileRoot};
use keyhold_crypto::token::TokenKey;
use keyhold_crypto::{CryptoError, SymmetricKey};
use keyhold_fuzz::keys;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let fixture = keys::sealed_fixture();
    match selector % 6 {
        0 => {
            if let Err(e) = DomainKey::unseal(&fixture.root, rest) {
                assert!(matches!(e, CryptoError::Unseal), "{e:?}");
            }
        }
        1 => match fixture.domain.unseal_material(
            rest,
            keys::MATERIAL_ARN,
            &keys::blob_material_id(),
        ) {
            Ok(material) => {
                // Sealed material opens to a key that re-seals and opens again.
                let again = fixture
                    .domain
                    .seal_material(&material, keys::MATERIAL_ARN, &keys::blob_material_id())
                    .expect("seal");
                let reopened: SymmetricKey = fixture
                    .domain
                    .unseal_material(&again, keys::MATERIAL_ARN, &keys::blob_material_id())
                    .expect("reopen");
                drop(reopened);
                // ...and not under another ARN.
                assert!(
                    fixture
                        .domain
                        .unseal_material(rest, "arn:other", &keys::blob_material_id())
                        .is_err()
                );
            }
            Err(e) => assert!(matches!(e, CryptoError::Unseal), "{e:?}"),
        },
        2 => {
            match fixture
                .domain
                .unseal_secret(keys::SECRET_PURPOSE, keys::SECRET_ID, rest)
            {
                Ok(_) => assert!(
                    fixture
                        .domain
                        .unseal_secret(keys::SECRET_PURPOSE, "other-id", rest)
                        .is_err()
                ),
                Err(e) => assert!(matches!(e, CryptoError::Unseal), "{e:?}"),
            }
            // The input as a secret round-trips.
            let sealed = fixture
                .domain
                .seal_secret(keys::SECRET_PURPOSE, keys::SECRET_ID, rest)
                .expect("seal");
            let opened = fixture
                .domain
                .unseal_secret(keys::SECRET_PURPOSE, keys::SECRET_ID, &sealed)
                .expect("open");
            assert_eq!(opened.expose_secret(), rest);
        }
        3 => {
            let aad = envelope::aad(&[keys::ENVELOPE_AAD.as_bytes()]);
            if let Err(e) = envelope::open(&fixture.data_key, rest, &aad) {
                assert!(matches!(e, CryptoError::InvalidCiphertext), "{e:?}");
            }
            let sealed = envelope::seal(&fixture.data_key, rest, &aad).expect("seal");
            let opened = envelope::open(&fixture.data_key, &sealed, &aad).expect("open");
            assert_eq!(opened.expose_secret(), rest);
        }
        4 => {
            // The root key file format, read through the real loader.
            match keys::with_key_file("scratch.key", rest, KeyFileRoot::load) {
                Ok(root) => {
                    assert_eq!(rest.len(), 65);
                    drop(root);
                }
                Err(e) => assert!(matches!(e, CryptoError::KeyFileFormat { .. }), "{e:?}"),
            }
        }
        _ => {
            let token = TokenKey::from_bytes(keys::TOKEN_KEY).expect("token key");
            let split = rest.len().saturating_sub(32);
            let (message, tag) = rest.split_at(split);
            let genuine = token.verify(message, tag);
            assert_eq!(genuine, token.tag(message).as_slice() == tag);
            assert!(token.verify(rest, &token.tag(rest)));
        }
    }
});
