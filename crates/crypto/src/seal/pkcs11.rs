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
//!
//! [`Pkcs11Token`] is that session handling for any key of a token: the root key's provider
//! uses it, and so do the keys of custom key stores (generated in their token, each labelled
//! by its KMS key id, and used there for AES-GCM; see `blob`'s token format). Each such
//! operation pays the module load and login, which keeps one code path and no session to
//! lose, at the price of throughput (a persistent session pool is the next step).

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
pub(crate) const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;

static MODULE_LOCK: Mutex<()> = Mutex::new(());

/// One PKCS#11 token and how to log in to it: the module, the token's label and the user
/// PIN (zeroized on drop). Every operation runs in a fresh session under the module lock
/// (see the module docs). Shared by the root key ([`Pkcs11Root`]) and the keys of custom key
/// stores, which live in the token, each labelled by its KMS key id.
pub struct Pkcs11Token {
    module: PathBuf,
    token_label: String,
    pin: Zeroizing<String>,
}

/// Why logging in to a token failed (`ConnectCustomKeyStore` reports it as AWS's
/// `ConnectionErrorCode`). Carries no PIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenLoginError {
    /// The module could not be loaded or initialized.
    Module,
    /// No token has the label.
    TokenNotFound,
    /// The token refused the PIN.
    PinIncorrect,
    /// The token locked the user (too many wrong PINs).
    PinLocked,
    /// Any other failure of the token.
    Other,
}

/// Where the root key lives and how to log in.
pub struct Pkcs11Root {
    token: Pkcs11Token,
    key_label: String,
}

/// What a token says about a key (for checks and tests).
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
            token: Pkcs11Token::new(module, token_label, pin),
            key_label: key_label.to_owned(),
        }
    }

    /// Finds the root key, or generates it in the token (CKA_TOKEN, CKA_SENSITIVE, not
    /// CKA_EXTRACTABLE, AES-256, encrypt/decrypt only). Returns whether it was created.
    pub fn ensure_key(&self) -> Result<bool, CryptoError> {
        self.token.ensure_aes_key(&self.key_label)
    }

    /// The root key's protection attributes as the token reports them.
    pub fn key_attributes(&self) -> Result<TokenKeyAttributes, CryptoError> {
        self.token.key_attributes(&self.key_label)
    }
}

impl Pkcs11Token {
    /// The token labelled `token_label` of `module`, logged in to with `pin`.
    pub fn new(module: &Path, token_label: &str, pin: Zeroizing<String>) -> Self {
        Self {
            module: module.to_owned(),
            token_label: token_label.to_owned(),
            pin,
        }
    }

    /// Loads the module, finds the token and logs in, then logs out: whether the token is
    /// there and takes the PIN.
    pub fn check_login(&self) -> Result<(), TokenLoginError> {
        let _guard = lock_module();
        let pkcs11 = Finalizing(Pkcs11::new(&self.module).map_err(|_| TokenLoginError::Module)?);
        let pkcs11 = &pkcs11.0;
        initialize(pkcs11).map_err(|_| TokenLoginError::Module)?;
        let slot = self
            .find_slot(pkcs11)
            .map_err(|_| TokenLoginError::TokenNotFound)?;
        let session = pkcs11
            .open_rw_session(slot)
            .map_err(|_| TokenLoginError::Other)?;
        let pin = AuthPin::from(self.pin.as_str().to_owned());
        let outcome = match session.login(UserType::User, Some(&pin)) {
            Ok(())
            | Err(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::UserAlreadyLoggedIn,
                _,
            )) => Ok(()),
            Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::PinIncorrect, _)) => {
                Err(TokenLoginError::PinIncorrect)
            }
            Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::PinLocked, _)) => {
                Err(TokenLoginError::PinLocked)
            }
            Err(_) => Err(TokenLoginError::Other),
        };
        let _ = session.logout();
        outcome
    }

    /// Finds the AES-256 key labelled `label`, or generates it in the token (CKA_TOKEN,
    /// CKA_PRIVATE, CKA_SENSITIVE, not CKA_EXTRACTABLE, encrypt/decrypt only). Returns
    /// whether it was created.
    pub fn ensure_aes_key(&self, label: &str) -> Result<bool, CryptoError> {
        self.with_session(|session| {
            if find_key(session, label)?.is_some() {
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
                Attribute::Label(label.as_bytes().to_vec()),
            ];
            session
                .generate_key(&Mechanism::AesKeyGen, &template)
                .map_err(token_error)?;
            Ok(true)
        })
    }

    /// `n` random bytes from the token's generator.
    pub fn generate_random(&self, n: usize) -> Result<SecretBytes, CryptoError> {
        let n = u32::try_from(n).map_err(|_| CryptoError::Random)?;
        self.with_session(|session| {
            let bytes = session.generate_random_vec(n).map_err(token_error)?;
            Ok(SecretBytes::from_zeroizing(Zeroizing::new(bytes)))
        })
    }

    /// Destroys the key labelled `label`; returns whether there was one.
    pub fn destroy_key(&self, label: &str) -> Result<bool, CryptoError> {
        self.with_session(|session| match find_key(session, label)? {
            Some(key) => session
                .destroy_object(key)
                .map(|()| true)
                .map_err(token_error),
            None => Ok(false),
        })
    }

    /// A key's protection attributes as the token reports them.
    pub fn key_attributes(&self, label: &str) -> Result<TokenKeyAttributes, CryptoError> {
        self.with_session(|session| {
            let key = find_key(session, label)?.ok_or_else(|| {
                CryptoError::Token(format!("no key labelled {label:?} in the token"))
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

    /// AES-256-GCM encryption inside the token with the key labelled `label`: returns
    /// ciphertext ‖ tag (16 bytes). `iv` must never repeat under the key.
    pub fn gcm_encrypt(
        &self,
        label: &str,
        iv: [u8; IV_LEN],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut iv = iv;
        self.with_session(|session| {
            let key = find_key(session, label)?
                .ok_or_else(|| CryptoError::Token(format!("no key labelled {label:?}")))?;
            let params = GcmParams::new(&mut iv, aad, 128.into()).map_err(token_error)?;
            session
                .encrypt(&Mechanism::AesGcm(params), key, plaintext)
                .map_err(token_error)
        })
    }

    /// Opens what [`Pkcs11Token::gcm_encrypt`] produced. A wrong tag, IV or AAD is
    /// [`CryptoError::InvalidCiphertext`]; a token that cannot be reached is
    /// [`CryptoError::Token`].
    pub fn gcm_decrypt(
        &self,
        label: &str,
        iv: [u8; IV_LEN],
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<SecretBytes, CryptoError> {
        let mut iv = iv;
        self.with_session(|session| {
            let key = find_key(session, label)?
                .ok_or_else(|| CryptoError::Token(format!("no key labelled {label:?}")))?;
            let params = GcmParams::new(&mut iv, aad, 128.into()).map_err(token_error)?;
            let plain = session
                .decrypt(&Mechanism::AesGcm(params), key, sealed)
                .map_err(|_| CryptoError::InvalidCiphertext)?;
            Ok(SecretBytes::from_zeroizing(Zeroizing::new(plain)))
        })
    }

    fn find_slot(&self, pkcs11: &Pkcs11) -> Result<cryptoki::slot::Slot, CryptoError> {
        pkcs11
            .get_slots_with_token()
            .map_err(token_error)?
            .into_iter()
            .find(|slot| {
                pkcs11
                    .get_token_info(*slot)
                    .is_ok_and(|info| info.label().trim_end() == self.token_label)
            })
            .ok_or_else(|| CryptoError::Token(format!("no token labelled {:?}", self.token_label)))
    }

    fn with_session<T>(
        &self,
        work: impl FnOnce(&Session) -> Result<T, CryptoError>,
    ) -> Result<T, CryptoError> {
        let _guard = lock_module();
        let pkcs11 = Finalizing(Pkcs11::new(&self.module).map_err(|e| {
            CryptoError::Token(format!(
                "loading the PKCS#11 module {}: {e}",
                self.module.display()
            ))
        })?);
        let pkcs11 = &pkcs11.0;
        initialize(pkcs11)?;
        let slot = self.find_slot(pkcs11)?;
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

fn lock_module() -> std::sync::MutexGuard<'static, ()> {
    MODULE_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn initialize(pkcs11: &Pkcs11) -> Result<(), CryptoError> {
    match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(
            cryptoki::error::RvError::CryptokiAlreadyInitialized,
            _,
        )) => Ok(()),
        Err(e) => Err(token_error(e)),
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
        let iv: [u8; IV_LEN] = random::array()?;
        let nonce = iv;
        let sealed = self
            .token
            .gcm_encrypt(&self.key_label, iv, aad, plaintext)?;
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
        match self.token.gcm_decrypt(&self.key_label, iv, aad, ciphertext) {
            Err(CryptoError::InvalidCiphertext) => Err(CryptoError::Unseal),
            other => other,
        }
    }
}

impl std::fmt::Debug for Pkcs11Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Root")
            .field("token", &self.token)
            .field("key_label", &self.key_label)
            .finish()
    }
}

impl std::fmt::Debug for Pkcs11Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Token")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("pin", &format_args!("[redacted]"))
            .finish()
    }
}
