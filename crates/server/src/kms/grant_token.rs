//! Grant tokens: what `CreateGrant` returns so a new grant can be named before it is known
//! everywhere (`RetireGrant` by token, `GrantTokens` in requests).
//!
//! A token is `base64url(body ‖ tag)`, where `body` = version (1) ‖ key id (16 bytes) ‖
//! grant id (32 bytes) ‖ a random nonce (16 bytes, so every `CreateGrant` returns a new
//! token, as AWS does) and `tag` = HMAC-SHA256 of a label and `body` under a token key
//! that is stored sealed under the domain key. Nothing is stored per token; a token that
//! does not verify is `InvalidGrantTokenException`, and one that does only *names* a grant:
//! the permissions always come from the stored grant, which must still exist.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyhold_crypto::token::{TAG_LEN, TokenKey};

use super::KmsService;
use super::error::KmsError;
use super::key::{Key, format_key_uuid};

/// Where the sealed token key is kept (the store's meta table).
const META_NAME: &str = "kms_grant_token_key.v1";
/// The purpose the token key is sealed under.
const SEAL_PURPOSE: &str = "kms-grant-token-key";
/// What a tag covers besides the body, so these tags can never be confused with others.
const TAG_LABEL: &[u8] = b"keyhold-kms-grant-token-v1";
const VERSION: u8 = 1;
const BODY_LEN: usize = 1 + 16 + 32 + 16;

/// What a verified token names.
#[derive(Debug, PartialEq, Eq)]
pub struct Named {
    pub key_id: String,
    pub grant_id: String,
}

impl KmsService {
    /// A new token for grant `grant_id` of `key`.
    pub(super) async fn mint_grant_token(
        &self,
        key: &Key,
        grant_id: &str,
    ) -> Result<String, KmsError> {
        let token_key = self.token_key().await?;
        let grant = hex::decode(grant_id).map_err(|_| KmsError::Internal)?;
        let mut nonce = [0u8; 16];
        keyhold_crypto::random::fill(&mut nonce).map_err(|_| KmsError::Internal)?;
        let mut body = Vec::with_capacity(BODY_LEN + TAG_LEN);
        body.push(VERSION);
        body.extend_from_slice(key.id.as_bytes());
        body.extend_from_slice(&grant);
        body.extend_from_slice(&nonce);
        if body.len() != BODY_LEN {
            return Err(KmsError::Internal);
        }
        let tag = token_key.tag(&tagged(&body));
        body.extend_from_slice(&tag);
        Ok(URL_SAFE_NO_PAD.encode(body))
    }

    /// The key and grant a token names; `InvalidGrantTokenException` unless it is a token
    /// this server minted, unaltered.
    pub(super) async fn open_grant_token(&self, token: &str) -> Result<Named, KmsError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| KmsError::InvalidGrantToken)?;
        if bytes.len() != BODY_LEN + TAG_LEN {
            return Err(KmsError::InvalidGrantToken);
        }
        let (body, tag) = bytes.split_at(BODY_LEN);
        if !self.token_key().await?.verify(&tagged(body), tag) {
            return Err(KmsError::InvalidGrantToken);
        }
        let (version, rest) = body.split_first().ok_or(KmsError::InvalidGrantToken)?;
        if *version != VERSION {
            return Err(KmsError::InvalidGrantToken);
        }
        let (key_bytes, rest) = rest.split_at(16);
        let grant_bytes = rest.get(..32).ok_or(KmsError::InvalidGrantToken)?;
        let key_id = format_key_uuid(&keyhold_crypto::KeyId::from_bytes(
            key_bytes
                .try_into()
                .map_err(|_| KmsError::InvalidGrantToken)?,
        ));
        Ok(Named {
            key_id,
            grant_id: hex::encode(grant_bytes),
        })
    }

    /// Checks a request's `GrantTokens`. Grants take effect in Keyhold as soon as
    /// `CreateGrant` returns, so a valid token adds nothing to what the grant already
    /// allows; an invalid one fails the request, as on AWS.
    pub(super) async fn check_grant_tokens(
        &self,
        tokens: Option<&[String]>,
    ) -> Result<(), KmsError> {
        for token in tokens.unwrap_or_default() {
            self.open_grant_token(token).await?;
        }
        Ok(())
    }

    /// The token key: unsealed from the store, or generated and stored on first use.
    async fn token_key(&self) -> Result<&TokenKey, KmsError> {
        self.token_key
            .get_or_try_init(|| async {
                let sealed = match self.store.get_meta(META_NAME).await? {
                    Some(sealed) => sealed,
                    None => {
                        let (_, bytes) = TokenKey::generate().map_err(|_| KmsError::Internal)?;
                        let sealed = self
                            .domain
                            .seal_secret(SEAL_PURPOSE, META_NAME, bytes.expose_secret())
                            .map_err(|_| KmsError::Internal)?;
                        // Another request may have stored one first: theirs wins.
                        self.store.insert_meta_if_absent(META_NAME, &sealed).await?;
                        self.store
                            .get_meta(META_NAME)
                            .await?
                            .ok_or(KmsError::Internal)?
                    }
                };
                let bytes = self
                    .domain
                    .unseal_secret(SEAL_PURPOSE, META_NAME, &sealed)
                    .map_err(|_| {
                        tracing::error!("the stored grant token key does not unseal");
                        KmsError::Internal
                    })?;
                TokenKey::from_bytes(bytes.expose_secret()).map_err(|_| KmsError::Internal)
            })
            .await
    }
}

fn tagged(body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(TAG_LABEL.len() + body.len());
    message.extend_from_slice(TAG_LABEL);
    message.extend_from_slice(body);
    message
}
