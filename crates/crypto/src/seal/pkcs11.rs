//! The PKCS#11 root key: a non-extractable, sensitive AES-256 key inside a token. The
//! domain key is sealed and unsealed by the token itself (CKM_AES_GCM with a random 96-bit
//! IV and the caller's AAD), in the same sealed format as the software providers:
//! `0x01 ‖ IV (12) ‖ ciphertext ‖ tag (16)`. The root key never leaves the token.
//!
//! Every operation loads the module, opens a fresh session, logs in, works and closes
//! (finalizing the module): the seal is used at start and at unseal only, so there is no
//! long-lived session to lose, and a token that was restarted or re-plugged in between is
//! simply found again. A process-wide lock serializes this (C_Initialize/C_Finalize are
//! process-global).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use super::RootKeyProvider;
use crate::{CryptoError, SecretBytes, random};

const SEALED_VERSION: u8 = 0x01;
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;

static MODULE_LOCK: Mutex<()> = Mutex::new(());

/// Where the root key lives and how to log in. The PIN is zeroized on drop.
pub struct Pkcs11Root {
    module: PathBuf,
    token_label: String,
    key_label: String,
    pin: Zeroizing<String>,
}

/// What a token says about the root key (for checks and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenKeyAttributes {
    pub extractable: bool,
    pub sensitive: bool,
    pub value_len: u64,
}

impl Pkcs11Root {
    /// A provider for `key_label` in the token labelled `token_label` of `module`.
    pub fn new(module: &Path, token_label: &str, key_label: &str, pin: Zeroizing<String>) -> Self {
        Self {
            module: module.to_owned(),
            token_label: token_label.to_owned(),
            key_label: key_label.to_owned(),
            pin,
        }
    }

    /// Finds the root key, or generates it in the token (CKA_TOKEN, CKA_SENSITIVE, not
    /// CKA_EXTRACTABLE, AES-256, encrypt/decrypt only). Returns whether it was created.
    pub fn ensure_key(&self) -> Result<bool, CryptoError> {
        self.with_session(|session| {
            if find_key(session, &self.key_label)?.is_some() {
                return Ok(false);
            }
            let template = [
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::ValueLen(32.into()),
                Attribute::Label(self.key_label.as_bytes().to_vec()),
            ];
            session
                .generate_key(&Mechanism::AesKeyGen, &template)
                .map_err(token_error)?;
            Ok(true)
        })
    }

    /// The root key's protection attributes as the token reports them.
    pub fn key_attributes(&self) -> Result<TokenKeyAttributes, CryptoError> {
        self.with_session(|session| {
            let key = find_key(session, &self.key_label)?.ok_or_else(|| {
                CryptoError::Token(format!("no key labelled {:?} in the token", self.key_label))
            })?;
            let attributes = session
                .get_attributes(
                    key,
                    &[
                        AttributeType::Extractable,
                        AttributeType::Sensitive,
                        AttributeType::ValueLen,
                    ],
                )
                .map_err(token_error)?;
            let mut out = TokenKeyAttributes {
                extractable: true,
                sensitive: false,
                value_len: 0,
            };
            for attribute in attributes {
                match attribute {
                    Attribute::Extractable(v) => out.extractable = v,
                    Attribute::Sensitive(v) => out.sensitive = v,
                    Attribute::ValueLen(v) => out.value_len = v.into(),
                    _ => {}
                }
            }
            Ok(out)
        })
    }

    fn with_session<T>(
        &self,
        work: impl FnOnce(&Session) -> Result<T, CryptoError>,
    ) -> Result<T, CryptoError> {
        let _guard = MODULE_LOCK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let pkcs11 = Finalizing(Pkcs11::new(&self.module).map_err(|e| {
            CryptoError::Token(format!(
                "loading the PKCS#11 module {}: {e}",
                self.module.display()
            ))
        })?);
        let pkcs11 = &pkcs11.0;
        match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) => {}
            Err(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::CryptokiAlreadyInitialized,
                _,
            )) => {}
            Err(e) => return Err(token_error(e)),
        }
        let slot = pkcs11
            .get_slots_with_token()
            .map_err(token_error)?
            .into_iter()
            .find(|slot| {
                pkcs11
                    .get_token_info(*slot)
                    .is_ok_and(|info| info.label().trim_end() == self.token_label)
            })
            .ok_or_else(|| {
                CryptoError::Token(format!("no token labelled {:?}", self.token_label))
            })?;
        let session = pkcs11.open_rw_session(slot).map_err(token_error)?;
        let pin = AuthPin::from(self.pin.as_str().to_owned());
        match session.login(UserType::User, Some(&pin)) {
            Ok(())
            | Err(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::UserAlreadyLoggedIn,
                _,
            )) => {}
            Err(e) => return Err(token_error(e)),
        }
        let result = work(&session);
        let _ = session.logout();
        drop(session);
        result
    }
}

/// Finalizes the module when the operation is over, whatever happened (C_Finalize is
/// process-wide; the next operation initializes it again and sees the token as it is then).
struct Finalizing(Pkcs11);

impl Drop for Finalizing {
    fn drop(&mut self) {
        let _ = self.0.clone().finalize();
    }
}

fn find_key(session: &Session, label: &str) -> Result<Option<ObjectHandle>, CryptoError> {
    let found = session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .map_err(token_error)?;
    match found.as_slice() {
        [] => Ok(None),
        [key] => Ok(Some(*key)),
        _ => Err(CryptoError::Token(format!(
            "several keys are labelled {label:?} in the token"
        ))),
    }
}

fn token_error(e: cryptoki::error::Error) -> CryptoError {
    CryptoError::Token(e.to_string())
}

impl RootKeyProvider for Pkcs11Root {
    fn kind(&self) -> &'static str {
        "pkcs11"
    }

    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut iv: [u8; IV_LEN] = random::array()?;
        let nonce = iv;
        let sealed = self.with_session(|session| {
            let key = find_key(session, &self.key_label)?
                .ok_or_else(|| CryptoError::Token("the root key is not in the token".into()))?;
            let params = GcmParams::new(&mut iv, aad, 128.into()).map_err(token_error)?;
            session
                .encrypt(&Mechanism::AesGcm(params), key, plaintext)
                .map_err(token_error)
        })?;
        let mut out = Vec::with_capacity(1 + IV_LEN + sealed.len());
        out.push(SEALED_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn unseal(&self, sealed: &[u8], aad: &[u8]) -> Result<SecretBytes, CryptoError> {
        let Some((&SEALED_VERSION, rest)) = sealed.split_first() else {
            return Err(CryptoError::Unseal);
        };
        if rest.len() < IV_LEN + TAG_LEN {
            return Err(CryptoError::Unseal);
        }
        let (nonce, ciphertext) = rest.split_at(IV_LEN);
        let mut iv = [0u8; IV_LEN];
        iv.copy_from_slice(nonce);
        self.with_session(|session| {
            let key = find_key(session, &self.key_label)?
                .ok_or_else(|| CryptoError::Token("the root key is not in the token".into()))?;
            let params = GcmParams::new(&mut iv, aad, 128.into()).map_err(token_error)?;
            let plain = session
                .decrypt(&Mechanism::AesGcm(params), key, ciphertext)
                .map_err(|_| CryptoError::Unseal)?;
            Ok(SecretBytes::from_zeroizing(Zeroizing::new(plain)))
        })
    }
}

impl std::fmt::Debug for Pkcs11Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Root")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("key_label", &self.key_label)
            .field("pin", &format_args!("[redacted]"))
            .finish()
    }
}
