//! The symmetric ciphertext blob (`keyhold_crypto::blob`): `parse_header` and `decrypt` of
//! arbitrary bytes, and an encrypt → decrypt round trip of the input as plaintext.
//!
//! The key, key id, material id and encryption context are the golden vector's
//! (`crates/crypto/tests/data/blob_v1.json`), so the seed corpus (real blobs made with them)
//! decrypts and the fuzzer starts from the success path.

#![no_main]

use keyhold_crypto::blob::{self, OVERHEAD};
use keyhold_crypto::{CryptoError, EncryptionContext};
use keyhold_fuzz::keys;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = keys::blob_key();
    let ctx = keys::blob_context();

    let header = blob::parse_header(data);
    match blob::decrypt(&key, data, &ctx) {
        Ok(plaintext) => {
            // Only a genuine blob opens: its header parses and names the golden key.
            let header = header.expect("a blob that decrypts has a header");
            assert_eq!(header.key_id, keys::blob_key_id());
            assert_eq!(plaintext.len(), data.len() - OVERHEAD);
        }
        Err(e) => assert!(matches!(e, CryptoError::InvalidCiphertext), "{e:?}"),
    }
    // Another context never opens a blob made under the golden one.
    if data.len() >= OVERHEAD {
        assert!(blob::decrypt(&key, data, &EncryptionContext::empty()).is_err());
    }

    // The input as plaintext, under a context built from it.
    let text = String::from_utf8_lossy(data);
    let pairs: Vec<(&str, &str)> = text
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .collect();
    let own_ctx = EncryptionContext::new(pairs);
    let sealed = blob::encrypt(
        &key,
        keys::blob_key_id(),
        keys::blob_material_id(),
        &own_ctx,
        data,
    )
    .expect("encrypt");
    assert_eq!(sealed.len(), data.len() + OVERHEAD);
    let opened = blob::decrypt(&key, &sealed, &own_ctx).expect("round trip");
    assert_eq!(opened.expose_secret(), data);
});
