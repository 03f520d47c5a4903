//! Custom key stores: CreateCustomKeyStore, ConnectCustomKeyStore, DisconnectCustomKeyStore,
//! DescribeCustomKeyStores, UpdateCustomKeyStore, DeleteCustomKeyStore, and the keys that live
//! in them.
//!
//! - **`AWS_CLOUDHSM`** maps onto a PKCS#11 token: `CloudHsmClusterId` must name a
//!   `[[custom_key_stores]]` entry of the config (its `module` and `token_label`), else
//!   `CloudHsmClusterNotFoundException`. `KeyStorePassword` is the token's user PIN; it is
//!   kept sealed under the domain key (bound to the store id) and never logged.
//!   `TrustAnchorCertificate` must be a PEM certificate, and the entry's `trust_anchor` file
//!   when the entry names one (else `IncorrectTrustAnchorException`).
//! - **`EXTERNAL_KEY_STORE`** is answered as AWS answers a proxy it cannot reach
//!   (`XksProxyUriUnreachableException`): Keyhold does not speak the XKS proxy protocol.
//! - **Connection states** are AWS's. `ConnectCustomKeyStore` logs in to the token within
//!   the call (the state is `CONNECTING` meanwhile) and leaves the store `CONNECTED`, or
//!   `FAILED` with a `ConnectionErrorCode` (`INVALID_CREDENTIALS` for a PIN the token refuses,
//!   `USER_LOCKED_OUT`, `INSUFFICIENT_CLOUDHSM_HSMS` when the token is absent,
//!   `NETWORK_ERRORS` when the module does not load, `CLUSTER_NOT_FOUND` when the config no
//!   longer has the entry). The state is stored; each process keeps the unsealed PIN of
//!   the stores it found connected, and reads the state again after [`STATE_TTL`], so that
//!   several processes sharing one database follow a connect or disconnect within it.
//! - **Keys** (`CreateKey` with `CustomKeyStoreId` and `Origin` `AWS_CLOUDHSM`,
//!   `SYMMETRIC_DEFAULT` only) are AES-256 keys generated inside the token (CKA_SENSITIVE,
//!   not CKA_EXTRACTABLE), labelled by their key id. Their Encrypt, Decrypt, ReEncrypt and
//!   GenerateDataKey* run inside the token (AES-GCM), with Keyhold's ciphertext format
//!   (version 2, see `keyhold_crypto::blob`). While their store is not connected, their key
//!   state reads `Unavailable` and cryptographic operations answer
//!   `KMSInvalidStateException`. They do not rotate.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use keyhold_crypto::seal::{Pkcs11Token, TokenLoginError};
use keyhold_crypto::{EncryptionContext, SecretBytes, blob};
use keyhold_proto::kms::KmsErrorCode as Code;
use keyhold_proto::kms::*;
use keyhold_proto::{ApiError, Timestamp};
use keyhold_store::{CustomKeyStoreRecord, KeyRecord, StoreError};
use zeroize::Zeroizing;

use super::KmsService;
use super::error::KmsError;
use super::key::{Key, KeyAliases, Materials, format_key_uuid};
use super::managed::default_key_policy;
use super::pagination::List;
use super::policies::validate_new_policy;
use super::tags::{merge_tags, to_store_tags};
use crate::config::CustomKeyStoreConfig;
use crate::context::RequestContext;

/// How long a process trusts the connection state it read of a store.
pub const STATE_TTL: Duration = Duration::from_secs(5);

/// What the domain key seals a store's password for (the AAD's purpose).
const PASSWORD_PURPOSE: &str = "kms-custom-key-store-password";

/// The failures particular to custom key stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CksError {
    NotFound,
    NameInUse {
        name: String,
    },
    ClusterNotFound {
        cluster_id: String,
    },
    ClusterInUse {
        cluster_id: String,
    },
    ClusterNotRelated {
        cluster_id: String,
    },
    IncorrectTrustAnchor,
    /// The operation is not valid in the store's connection state (AWS's conditions).
    InvalidState {
        message: &'static str,
    },
    HasKeys,
    /// A key of a store that is not connected.
    KeyUnavailable {
        arn: String,
    },
    XksProxyUnreachable,
    /// A parameter the store type requires is missing, or one it does not take is given.
    Parameter {
        message: &'static str,
    },
    /// `CreateKey` in a custom key store with a key spec other than `SYMMETRIC_DEFAULT`.
    SymmetricOnly,
}

impl From<CksError> for KmsError {
    fn from(e: CksError) -> Self {
        KmsError::CustomKeyStore(e)
    }
}

impl From<CksError> for ApiError {
    fn from(e: CksError) -> Self {
        use CksError as E;
        match e {
            E::NotFound => ApiError::bare(Code::CustomKeyStoreNotFoundException),
            E::NameInUse { name } => ApiError::new(
                Code::CustomKeyStoreNameInUseException,
                format!("Custom key store name '{name}' is already in use."),
            ),
            E::ClusterNotFound { cluster_id } => ApiError::new(
                Code::CloudHsmClusterNotFoundException,
                format!("Cluster {cluster_id} was not found."),
            ),
            E::ClusterInUse { cluster_id } => ApiError::new(
                Code::CloudHsmClusterInUseException,
                format!("Cluster {cluster_id} is already associated with a custom key store."),
            ),
            E::ClusterNotRelated { cluster_id } => ApiError::new(
                Code::CloudHsmClusterNotRelatedException,
                format!(
                    "Cluster {cluster_id} is not related to the cluster of the custom key store."
                ),
            ),
            E::IncorrectTrustAnchor => ApiError::new(
                Code::IncorrectTrustAnchorException,
                "The trust anchor certificate is not the trust anchor certificate of the cluster.",
            ),
            E::InvalidState { message } => {
                ApiError::new(Code::CustomKeyStoreInvalidStateException, message)
            }
            E::HasKeys => ApiError::new(
                Code::CustomKeyStoreHasCMKsException,
                "The custom key store has KMS keys. Delete them first.",
            ),
            E::KeyUnavailable { arn } => ApiError::new(
                Code::KMSInvalidStateException,
                format!("{arn} is unavailable: its custom key store is not connected."),
            ),
            E::XksProxyUnreachable => ApiError::new(
                Code::XksProxyUriUnreachableException,
                "KMS was unable to reach the external key store proxy. Keyhold does not \
                 connect to external key store proxies.",
            ),
            E::Parameter { message } => ApiError::validation(message),
            E::SymmetricOnly => ApiError::new(
                Code::UnsupportedOperationException,
                "KMS keys in a custom key store must be symmetric encryption keys \
                 (SYMMETRIC_DEFAULT).",
            ),
        }
    }
}

/// The custom key stores a process knows of: the configured tokens, and the stores it read.
#[derive(Default)]
pub struct CustomKeyStores {
    clusters: std::sync::OnceLock<Vec<CustomKeyStoreConfig>>,
    live: RwLock<HashMap<String, Live>>,
}

/// One store as this process last read it: connected (with its token, PIN unsealed) or not.
#[derive(Clone)]
struct Live {
    token: Option<Arc<Pkcs11Token>>,
    cluster_id: String,
    read_at: Instant,
}

impl CustomKeyStores {
    fn cluster(&self, cluster_id: &str) -> Option<&CustomKeyStoreConfig> {
        self.clusters
            .get()
            .and_then(|c| c.iter().find(|e| e.cluster_id == cluster_id))
    }

    fn fresh(&self, id: &str) -> Option<Live> {
        let live = self.live.read().ok()?;
        live.get(id)
            .filter(|l| l.read_at.elapsed() < STATE_TTL)
            .cloned()
    }

    fn put(&self, id: &str, live: Live) {
        if let Ok(mut map) = self.live.write() {
            map.insert(id.to_owned(), live);
        }
    }
}

impl KmsService {
    /// The tokens custom key stores may use (`[[custom_key_stores]]`); set once at start.
    pub fn attach_custom_key_stores(&self, clusters: Vec<CustomKeyStoreConfig>) {
        let _ = self.custom_key_stores.clusters.set(clusters);
    }

    /// The token of a connected store (read again after [`STATE_TTL`]); `None` while the
    /// store is not connected.
    async fn store_token(&self, store_id: &str) -> Result<Option<Live>, KmsError> {
        if let Some(live) = self.custom_key_stores.fresh(store_id) {
            return Ok(Some(live));
        }
        let Some(record) = self.store.get_custom_key_store(store_id).await? else {
            return Ok(None);
        };
        let live = self.live_of(&record)?;
        self.custom_key_stores.put(store_id, live.clone());
        Ok(Some(live))
    }

    /// What a stored record means for this process: its token when it is connected.
    fn live_of(&self, record: &CustomKeyStoreRecord) -> Result<Live, KmsError> {
        let connected = record.connection_state == ConnectionStateType::Connected.as_str();
        let token = match (
            connected,
            self.custom_key_stores.cluster(&record.cluster_id),
        ) {
            (true, Some(cluster)) => Some(Arc::new(self.token_of(record, cluster)?)),
            _ => None,
        };
        Ok(Live {
            token,
            cluster_id: record.cluster_id.clone(),
            read_at: Instant::now(),
        })
    }

    fn token_of(
        &self,
        record: &CustomKeyStoreRecord,
        cluster: &CustomKeyStoreConfig,
    ) -> Result<Pkcs11Token, KmsError> {
        let pin = self
            .domain
            .unseal_secret(PASSWORD_PURPOSE, &record.id, &record.sealed_password)
            .map_err(|_| super::corrupt("custom key store password", &record.id))?;
        let pin = String::from_utf8(pin.expose_secret().to_vec())
            .map_err(|_| super::corrupt("custom key store password", &record.id))?;
        Ok(Pkcs11Token::new(
            &cluster.module,
            &cluster.token_label,
            Zeroizing::new(pin),
        ))
    }

    /// The token of a key of a custom key store, or `KMSInvalidStateException` while the
    /// store is not connected. `None` for every other key.
    pub(super) async fn key_token(&self, key: &Key) -> Result<Option<Arc<Pkcs11Token>>, KmsError> {
        // Only a key with `AWS_CLOUDHSM` origin lives in a custom key store (its materials
        // name the store): the origin, on the key's first cache line, answers for the rest
        // without reading the materials.
        if key.origin != OriginType::AwsCloudhsm {
            return Ok(None);
        }
        let Some(store_id) = key.materials.custom_key_store.as_deref() else {
            return Ok(None);
        };
        match self.store_token(store_id).await? {
            Some(Live {
                token: Some(token), ..
            }) => Ok(Some(token)),
            _ => Err(CksError::KeyUnavailable {
                arn: key.arn().to_owned(),
            }
            .into()),
        }
    }

    /// `DescribeKey`'s and `CreateKey`'s metadata: a key of a custom key store names its
    /// store and cluster, and reads `Unavailable` while the store is not connected.
    pub(super) async fn key_metadata(&self, key: &Key) -> Result<KeyMetadata, KmsError> {
        let mut metadata = key.metadata();
        if key.record.multi_region_primary.is_some() {
            metadata.multi_region_configuration = self.multi_region_configuration(key).await?;
        }
        let Some(store_id) = key.materials.custom_key_store.as_deref() else {
            return Ok(metadata);
        };
        metadata.custom_key_store_id = Some(store_id.to_owned());
        let live = self.store_token(store_id).await?;
        metadata.cloud_hsm_cluster_id = live.as_ref().map(|l| l.cluster_id.clone());
        let connected = live.is_some_and(|l| l.token.is_some());
        if !connected && key.state == KeyState::Enabled {
            metadata.key_state = Some(KeyState::Unavailable);
        }
        Ok(metadata)
    }

    /// Symmetric encryption inside the token of a key of a custom key store.
    pub(super) async fn token_encrypt(
        &self,
        key: &Key,
        token: Arc<Pkcs11Token>,
        context: EncryptionContext,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let (label, key_id, material) = (key.record.key_id.clone(), key.id, key.current_material);
        let plaintext = Zeroizing::new(plaintext.to_vec());
        tokio::task::spawn_blocking(move || {
            blob::encrypt_in_token(&token, &label, key_id, material, &context, &plaintext)
        })
        .await
        .map_err(|_| KmsError::Internal)?
        .map_err(|e| token_failure(key, &e))
    }

    /// Symmetric decryption inside the token; every failure of the blob is
    /// `InvalidCiphertextException`.
    pub(super) async fn token_decrypt(
        &self,
        key: &Key,
        token: Arc<Pkcs11Token>,
        context: EncryptionContext,
        ciphertext: &[u8],
    ) -> Result<SecretBytes, KmsError> {
        let label = key.record.key_id.clone();
        let ciphertext = ciphertext.to_vec();
        tokio::task::spawn_blocking(move || {
            blob::decrypt_in_token(&token, &label, &ciphertext, &context)
        })
        .await
        .map_err(|_| KmsError::Internal)?
        .map_err(|e| match e {
            keyhold_crypto::CryptoError::InvalidCiphertext => KmsError::InvalidCiphertext,
            other => token_failure(key, &other),
        })
    }

    /// `GenerateRandom` with a `CustomKeyStoreId`: random bytes from the store's token.
    pub(super) async fn token_random(
        &self,
        ctx: &RequestContext,
        store_id: &str,
        n: usize,
    ) -> Result<SecretBytes, KmsError> {
        let record = self.own_store(ctx, store_id).await?;
        let live = self.store_token(&record.id).await?;
        let Some(token) = live.and_then(|l| l.token) else {
            return Err(CksError::InvalidState {
                message: "The custom key store is not connected.",
            }
            .into());
        };
        tokio::task::spawn_blocking(move || token.generate_random(n))
            .await
            .map_err(|_| KmsError::Internal)?
            .map_err(|e| {
                tracing::error!(custom_key_store = %record.id, error = %e, "token random failed");
                KmsError::Internal
            })
    }

    /// A store of the caller's account and region, or `CustomKeyStoreNotFoundException`.
    async fn own_store(
        &self,
        ctx: &RequestContext,
        store_id: &str,
    ) -> Result<CustomKeyStoreRecord, KmsError> {
        match self.store.get_custom_key_store(store_id).await? {
            Some(r) if r.account == ctx.scope.account && r.region == ctx.scope.region => Ok(r),
            _ => Err(CksError::NotFound.into()),
        }
    }
}

fn token_failure(key: &Key, e: &keyhold_crypto::CryptoError) -> KmsError {
    tracing::error!(key = %key.arn(), error = %e, "the custom key store's token failed");
    KmsError::Internal
}

pub async fn create_custom_key_store(
    kms: &KmsService,
    ctx: &RequestContext,
    input: CreateCustomKeyStoreRequest,
) -> Result<CreateCustomKeyStoreResponse, KmsError> {
    kms.authorize_account(ctx, "kms:CreateCustomKeyStore")?;
    let store_type = input
        .custom_key_store_type
        .unwrap_or(CustomKeyStoreType::AwsCloudhsm);
    if store_type == CustomKeyStoreType::ExternalKeyStore {
        if input.xks_proxy_uri_endpoint.is_none()
            || input.xks_proxy_uri_path.is_none()
            || input.xks_proxy_authentication_credential.is_none()
        {
            return Err(CksError::Parameter {
                message: "XksProxyUriEndpoint, XksProxyUriPath and \
                          XksProxyAuthenticationCredential are required for a custom key store \
                          of type EXTERNAL_KEY_STORE.",
            }
            .into());
        }
        return Err(CksError::XksProxyUnreachable.into());
    }
    let has_xks = input.xks_proxy_uri_endpoint.is_some()
        || input.xks_proxy_uri_path.is_some()
        || input.xks_proxy_authentication_credential.is_some()
        || input.xks_proxy_connectivity.is_some()
        || input.xks_proxy_vpc_endpoint_service_name.is_some()
        || input.xks_proxy_vpc_endpoint_service_owner.is_some();
    if has_xks {
        return Err(CksError::Parameter {
            message: "The XksProxy parameters are valid only for a custom key store of type \
                      EXTERNAL_KEY_STORE.",
        }
        .into());
    }
    let (Some(cluster_id), Some(anchor), Some(password)) = (
        input.cloud_hsm_cluster_id,
        input.trust_anchor_certificate,
        input.key_store_password,
    ) else {
        return Err(CksError::Parameter {
            message: "CloudHsmClusterId, TrustAnchorCertificate and KeyStorePassword are \
                      required for a custom key store of type AWS_CLOUDHSM.",
        }
        .into());
    };
    let cluster =
        kms.custom_key_stores
            .cluster(&cluster_id)
            .ok_or_else(|| CksError::ClusterNotFound {
                cluster_id: cluster_id.clone(),
            })?;
    check_trust_anchor(cluster, &anchor)?;
    let _guard = kms.writes.lock().await;
    let existing = kms
        .store
        .list_custom_key_stores(&ctx.scope.account, &ctx.scope.region)
        .await?;
    if existing
        .iter()
        .any(|s| s.name == input.custom_key_store_name)
    {
        return Err(CksError::NameInUse {
            name: input.custom_key_store_name,
        }
        .into());
    }
    if existing.iter().any(|s| {
        kms.custom_key_stores
            .cluster(&s.cluster_id)
            .is_some_and(|other| same_token(other, cluster))
            || s.cluster_id == cluster_id
    }) {
        return Err(CksError::ClusterInUse { cluster_id }.into());
    }
    let id = new_store_id()?;
    let sealed_password = kms
        .domain
        .seal_secret(PASSWORD_PURPOSE, &id, password.expose_secret().as_bytes())
        .map_err(|_| KmsError::Internal)?;
    let record = CustomKeyStoreRecord {
        id: id.clone(),
        account: ctx.scope.account.clone(),
        region: ctx.scope.region.clone(),
        name: input.custom_key_store_name.clone(),
        store_type: store_type.as_str().to_owned(),
        cluster_id,
        trust_anchor: anchor,
        sealed_password,
        connection_state: ConnectionStateType::Disconnected.as_str().to_owned(),
        connection_error: None,
        creation_ms: kms.clock.now().as_millis(),
    };
    match kms.store.insert_custom_key_store(&record).await {
        Ok(()) => {}
        Err(StoreError::AlreadyExists) => {
            return Err(CksError::NameInUse {
                name: input.custom_key_store_name,
            }
            .into());
        }
        Err(e) => return Err(e.into()),
    }
    Ok(CreateCustomKeyStoreResponse {
        custom_key_store_id: Some(id),
    })
}

pub async fn connect_custom_key_store(
    kms: &KmsService,
    ctx: &RequestContext,
    input: ConnectCustomKeyStoreRequest,
) -> Result<ConnectCustomKeyStoreResponse, KmsError> {
    kms.authorize_account(ctx, "kms:ConnectCustomKeyStore")?;
    let _guard = kms.writes.lock().await;
    let mut record = kms.own_store(ctx, &input.custom_key_store_id).await?;
    match state_of(&record) {
        ConnectionStateType::Connected | ConnectionStateType::Connecting => {
            return Ok(ConnectCustomKeyStoreResponse {});
        }
        ConnectionStateType::Disconnecting | ConnectionStateType::Failed => {
            return Err(CksError::InvalidState {
                message: "ConnectCustomKeyStore is not valid while the custom key store is \
                          DISCONNECTING or FAILED. To reconnect a FAILED store, disconnect it, \
                          then connect it.",
            }
            .into());
        }
        ConnectionStateType::Disconnected => {}
    }
    set_state(kms, &mut record, ConnectionStateType::Connecting, None).await?;
    let outcome = match kms.custom_key_stores.cluster(&record.cluster_id) {
        None => Err(ConnectionErrorCodeType::ClusterNotFound),
        Some(cluster) => {
            let token = kms.token_of(&record, cluster)?;
            tokio::task::spawn_blocking(move || token.check_login())
                .await
                .map_err(|_| KmsError::Internal)?
                .map_err(|e| match e {
                    TokenLoginError::Module => ConnectionErrorCodeType::NetworkErrors,
                    TokenLoginError::TokenNotFound => {
                        ConnectionErrorCodeType::InsufficientCloudhsmHsms
                    }
                    TokenLoginError::PinIncorrect => ConnectionErrorCodeType::InvalidCredentials,
                    TokenLoginError::PinLocked => ConnectionErrorCodeType::UserLockedOut,
                    TokenLoginError::Other => ConnectionErrorCodeType::InternalError,
                })
        }
    };
    match outcome {
        Ok(()) => set_state(kms, &mut record, ConnectionStateType::Connected, None).await?,
        Err(code) => {
            tracing::warn!(custom_key_store = %record.id, error = code.as_str(), "connecting the custom key store failed");
            set_state(kms, &mut record, ConnectionStateType::Failed, Some(code)).await?;
        }
    }
    Ok(ConnectCustomKeyStoreResponse {})
}

pub async fn disconnect_custom_key_store(
    kms: &KmsService,
    ctx: &RequestContext,
    input: DisconnectCustomKeyStoreRequest,
) -> Result<DisconnectCustomKeyStoreResponse, KmsError> {
    kms.authorize_account(ctx, "kms:DisconnectCustomKeyStore")?;
    let _guard = kms.writes.lock().await;
    let mut record = kms.own_store(ctx, &input.custom_key_store_id).await?;
    if matches!(
        state_of(&record),
        ConnectionStateType::Disconnected | ConnectionStateType::Disconnecting
    ) {
        return Err(CksError::InvalidState {
            message: "DisconnectCustomKeyStore is not valid while the custom key store is \
                      DISCONNECTING or DISCONNECTED.",
        }
        .into());
    }
    set_state(kms, &mut record, ConnectionStateType::Disconnected, None).await?;
    Ok(DisconnectCustomKeyStoreResponse {})
}

pub async fn describe_custom_key_stores(
    kms: &KmsService,
    ctx: &RequestContext,
    input: DescribeCustomKeyStoresRequest,
) -> Result<DescribeCustomKeyStoresResponse, KmsError> {
    kms.authorize_account(ctx, "kms:DescribeCustomKeyStores")?;
    if input.custom_key_store_id.is_some() && input.custom_key_store_name.is_some() {
        return Err(CksError::Parameter {
            message: "Specify either CustomKeyStoreId or CustomKeyStoreName, not both.",
        }
        .into());
    }
    let after = List::CustomKeyStores.decode(input.marker.as_deref())?;
    let size = List::CustomKeyStores.page_size(input.limit);
    let mut stores = kms
        .store
        .list_custom_key_stores(&ctx.scope.account, &ctx.scope.region)
        .await?;
    if let Some(id) = &input.custom_key_store_id {
        stores.retain(|s| &s.id == id);
    }
    if let Some(name) = &input.custom_key_store_name {
        stores.retain(|s| &s.name == name);
    }
    if stores.is_empty()
        && (input.custom_key_store_id.is_some() || input.custom_key_store_name.is_some())
    {
        return Err(CksError::NotFound.into());
    }
    let mut page: Vec<_> = stores
        .into_iter()
        .filter(|s| after.as_deref().is_none_or(|a| s.id.as_str() > a))
        .take(size + 1)
        .collect();
    let truncated = page.len() > size;
    page.truncate(size);
    let next_marker = if truncated {
        page.last().map(|s| List::CustomKeyStores.encode(&s.id))
    } else {
        None
    };
    Ok(DescribeCustomKeyStoresResponse {
        custom_key_stores: Some(page.iter().map(entry).collect()),
        next_marker,
        truncated: Some(truncated),
    })
}

pub async fn update_custom_key_store(
    kms: &KmsService,
    ctx: &RequestContext,
    input: UpdateCustomKeyStoreRequest,
) -> Result<UpdateCustomKeyStoreResponse, KmsError> {
    kms.authorize_account(ctx, "kms:UpdateCustomKeyStore")?;
    let _guard = kms.writes.lock().await;
    let mut record = kms.own_store(ctx, &input.custom_key_store_id).await?;
    let has_xks = input.xks_proxy_uri_endpoint.is_some()
        || input.xks_proxy_uri_path.is_some()
        || input.xks_proxy_authentication_credential.is_some()
        || input.xks_proxy_connectivity.is_some()
        || input.xks_proxy_vpc_endpoint_service_name.is_some()
        || input.xks_proxy_vpc_endpoint_service_owner.is_some();
    if has_xks {
        return Err(CksError::Parameter {
            message: "The XksProxy parameters are valid only for a custom key store of type \
                      EXTERNAL_KEY_STORE.",
        }
        .into());
    }
    if state_of(&record) != ConnectionStateType::Disconnected {
        return Err(CksError::InvalidState {
            message: "UpdateCustomKeyStore is valid only while the custom key store is \
                      DISCONNECTED.",
        }
        .into());
    }
    if let Some(cluster_id) = input.cloud_hsm_cluster_id
        && cluster_id != record.cluster_id
    {
        let new = kms.custom_key_stores.cluster(&cluster_id).ok_or_else(|| {
            CksError::ClusterNotFound {
                cluster_id: cluster_id.clone(),
            }
        })?;
        let related = kms
            .custom_key_stores
            .cluster(&record.cluster_id)
            .is_some_and(|old| same_token(old, new));
        if !related {
            return Err(CksError::ClusterNotRelated { cluster_id }.into());
        }
        record.cluster_id = cluster_id;
    }
    if let Some(password) = input.key_store_password {
        record.sealed_password = kms
            .domain
            .seal_secret(
                PASSWORD_PURPOSE,
                &record.id,
                password.expose_secret().as_bytes(),
            )
            .map_err(|_| KmsError::Internal)?;
    }
    if let Some(name) = input.new_custom_key_store_name {
        let taken = kms
            .store
            .list_custom_key_stores(&ctx.scope.account, &ctx.scope.region)
            .await?
            .iter()
            .any(|s| s.name == name && s.id != record.id);
        if taken {
            return Err(CksError::NameInUse { name }.into());
        }
        record.name = name;
    }
    match kms.store.update_custom_key_store(&record).await {
        Ok(()) => {}
        Err(StoreError::AlreadyExists) => {
            return Err(CksError::NameInUse { name: record.name }.into());
        }
        Err(StoreError::NotFound) => return Err(CksError::NotFound.into()),
        Err(e) => return Err(e.into()),
    }
    let live = kms.live_of(&record)?;
    kms.custom_key_stores.put(&record.id, live);
    Ok(UpdateCustomKeyStoreResponse {})
}

pub async fn delete_custom_key_store(
    kms: &KmsService,
    ctx: &RequestContext,
    input: DeleteCustomKeyStoreRequest,
) -> Result<DeleteCustomKeyStoreResponse, KmsError> {
    kms.authorize_account(ctx, "kms:DeleteCustomKeyStore")?;
    let _guard = kms.writes.lock().await;
    let record = kms.own_store(ctx, &input.custom_key_store_id).await?;
    if state_of(&record) != ConnectionStateType::Disconnected {
        return Err(CksError::InvalidState {
            message: "DeleteCustomKeyStore is valid only while the custom key store is \
                      DISCONNECTED.",
        }
        .into());
    }
    if kms.store.custom_key_store_key_count(&record.id).await? > 0
        || !kms.store.delete_custom_key_store(&record.id).await?
    {
        return Err(CksError::HasKeys.into());
    }
    if let Ok(mut live) = kms.custom_key_stores.live.write() {
        live.remove(&record.id);
    }
    Ok(DeleteCustomKeyStoreResponse {})
}

/// `CreateKey` with a `CustomKeyStoreId` (or `Origin` `AWS_CLOUDHSM`): a symmetric key
/// generated in the store's token.
pub async fn create_key(
    kms: &KmsService,
    ctx: &RequestContext,
    input: CreateKeyRequest,
    spec: KeySpec,
) -> Result<CreateKeyResponse, KmsError> {
    let Some(store_id) = input.custom_key_store_id.as_deref() else {
        return Err(CksError::Parameter {
            message: "Origin AWS_CLOUDHSM requires a CustomKeyStoreId.",
        }
        .into());
    };
    if input.origin != Some(OriginType::AwsCloudhsm) {
        return Err(CksError::Parameter {
            message: "A KMS key in an AWS CloudHSM key store needs Origin AWS_CLOUDHSM.",
        }
        .into());
    }
    if input.multi_region == Some(true) {
        return Err(KmsError::Unsupported {
            what: "multi-Region keys in custom key stores".into(),
        });
    }
    if input.xks_key_id.is_some() {
        return Err(CksError::Parameter {
            message: "XksKeyId is valid only for keys in an external key store.",
        }
        .into());
    }
    if spec != KeySpec::SymmetricDefault
        || input
            .key_usage
            .is_some_and(|u| u != KeyUsageType::EncryptDecrypt)
    {
        return Err(CksError::SymmetricOnly.into());
    }
    let tags = merge_tags(&[], input.tags.as_deref().unwrap_or_default())?;
    let record = kms.own_store(ctx, store_id).await?;
    let Some(Live {
        token: Some(token), ..
    }) = kms.store_token(&record.id).await?
    else {
        return Err(CksError::InvalidState {
            message: "CreateKey is valid only while the custom key store is CONNECTED.",
        }
        .into());
    };
    let key_id = format_key_uuid(&keyhold_crypto::KeyId::from_bytes(
        *uuid::Uuid::new_v4().as_bytes(),
    ));
    let arn = ctx.scope.arn("kms", format_args!("key/{key_id}"));
    let mut policy = default_key_policy(&ctx.scope);
    if let Some(text) = input.policy {
        let bypass = input.bypass_policy_lockout_safety_check == Some(true);
        validate_new_policy(ctx, kms.clock.now(), &text, bypass, &arn)?;
        policy = text;
    }
    let material = keyhold_crypto::MaterialId::random().map_err(|_| KmsError::Internal)?;
    let key_record = KeyRecord {
        key_id: key_id.clone(),
        account: ctx.scope.account.clone(),
        region: ctx.scope.region.clone(),
        arn,
        creation_ms: kms.clock.now().as_millis(),
        description: input.description.unwrap_or_default(),
        key_usage: KeyUsageType::EncryptDecrypt.as_str().to_owned(),
        key_spec: KeySpec::SymmetricDefault.as_str().to_owned(),
        origin: OriginType::AwsCloudhsm.as_str().to_owned(),
        key_manager: KeyManagerType::Customer.as_str().to_owned(),
        state: KeyState::Enabled.as_str().to_owned(),
        deletion_ms: None,
        policy,
        current_material_id: material.to_hex(),
        rotation_period_days: None,
        next_rotation_ms: None,
        state_after_import: None,
        multi_region_primary: None,
    };
    let label = key_id.clone();
    let generator = token.clone();
    tokio::task::spawn_blocking(move || generator.ensure_aes_key(&label))
        .await
        .map_err(|_| KmsError::Internal)?
        .map_err(|e| {
            tracing::error!(custom_key_store = %record.id, error = %e, "generating a key in the token failed");
            KmsError::Internal
        })?;
    let _guard = kms.writes.lock().await;
    let store_tags = to_store_tags(&tags);
    if let Err(e) = kms
        .store
        .insert_custom_key_store_key(&key_record, &store_tags, &record.id)
        .await
    {
        let label = key_id.clone();
        let _ = tokio::task::spawn_blocking(move || token.destroy_key(&label)).await;
        return Err(e.into());
    }
    let materials = Materials {
        custom_key_store: Some(record.id.clone()),
        ..Materials::default()
    };
    let key = Key::from_parts(
        key_record,
        store_tags,
        Arc::new(materials),
        Arc::default(),
        Arc::new(KeyAliases::new(Vec::new())),
    )
    .ok_or(KmsError::Internal)?;
    let key = Arc::new(key);
    kms.cache_put(key.clone());
    ctx.note_resource("AWS::KMS::Key", key.arn());
    Ok(CreateKeyResponse {
        key_metadata: Some(kms.key_metadata(&key).await?),
    })
}

/// Destroys, best effort, the token key of a key that was just deleted (the sweep of
/// scheduled deletions), as AWS deletes the key material from the cluster.
pub(super) async fn destroy_token_key(kms: &KmsService, key_id: &str, store_id: &str) {
    let Ok(Some(Live {
        token: Some(token), ..
    })) = kms.store_token(store_id).await
    else {
        tracing::warn!(
            key_id,
            custom_key_store = store_id,
            "the custom key store is not connected: its token keeps the deleted key's material"
        );
        return;
    };
    let label = key_id.to_owned();
    match tokio::task::spawn_blocking(move || token.destroy_key(&label)).await {
        Ok(Ok(_)) => {}
        _ => tracing::warn!(
            key_id,
            custom_key_store = store_id,
            "destroying the deleted key's material in the token failed"
        ),
    }
}

fn state_of(record: &CustomKeyStoreRecord) -> ConnectionStateType {
    ConnectionStateType::parse(&record.connection_state).unwrap_or(ConnectionStateType::Failed)
}

/// Stores a connection state and makes this process follow it at once.
async fn set_state(
    kms: &KmsService,
    record: &mut CustomKeyStoreRecord,
    state: ConnectionStateType,
    error: Option<ConnectionErrorCodeType>,
) -> Result<(), KmsError> {
    record.connection_state = state.as_str().to_owned();
    record.connection_error = error.map(|e| e.as_str().to_owned());
    kms.store.update_custom_key_store(record).await?;
    let live = kms.live_of(record)?;
    kms.custom_key_stores.put(&record.id, live);
    Ok(())
}

fn entry(s: &CustomKeyStoreRecord) -> CustomKeyStoresListEntry {
    let state = state_of(s);
    CustomKeyStoresListEntry {
        cloud_hsm_cluster_id: Some(s.cluster_id.clone()),
        connection_error_code: if state == ConnectionStateType::Failed {
            s.connection_error
                .as_deref()
                .and_then(ConnectionErrorCodeType::parse)
        } else {
            None
        },
        connection_state: Some(state),
        creation_date: Some(Timestamp::from_millis(s.creation_ms)),
        custom_key_store_id: Some(s.id.clone()),
        custom_key_store_name: Some(s.name.clone()),
        custom_key_store_type: CustomKeyStoreType::parse(&s.store_type),
        trust_anchor_certificate: Some(s.trust_anchor.clone()),
        xks_proxy_configuration: None,
    }
}

/// Two entries naming the same token: related clusters (one key set).
fn same_token(a: &CustomKeyStoreConfig, b: &CustomKeyStoreConfig) -> bool {
    a.module == b.module && a.token_label == b.token_label
}

/// `cks-` and 17 hex digits, as AWS's ids look.
fn new_store_id() -> Result<String, KmsError> {
    let bytes = SecretBytes::random(9).map_err(|_| KmsError::Internal)?;
    let hex = hex::encode(bytes.expose_secret());
    Ok(format!("cks-{}", &hex[..17]))
}

/// A trust anchor is a PEM certificate, and the configured one when the entry has one.
fn check_trust_anchor(cluster: &CustomKeyStoreConfig, given: &str) -> Result<(), CksError> {
    let der = pem_certificate(given).ok_or(CksError::IncorrectTrustAnchor)?;
    let Some(path) = &cluster.trust_anchor else {
        return Ok(());
    };
    let expected = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| pem_certificate(&text));
    match expected {
        Some(expected) if expected == der => Ok(()),
        Some(_) => Err(CksError::IncorrectTrustAnchor),
        None => {
            tracing::error!(path = %path.display(), cluster = %cluster.cluster_id, "the configured trust anchor is not a readable PEM certificate");
            Err(CksError::IncorrectTrustAnchor)
        }
    }
}

/// The DER bytes of the one `CERTIFICATE` block of a PEM text.
fn pem_certificate(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let body = text
        .trim()
        .strip_prefix("-----BEGIN CERTIFICATE-----")?
        .strip_suffix("-----END CERTIFICATE-----")?;
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()?;
    // A DER certificate is a SEQUENCE.
    (der.first() == Some(&0x30) && der.len() > 16).then_some(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_ids_look_like_aws_ids() {
        let id = new_store_id().unwrap();
        assert_eq!(id.len(), 21);
        assert!(id.starts_with("cks-"));
    }

    #[test]
    fn trust_anchors_must_be_pem_certificates() {
        let cluster = CustomKeyStoreConfig {
            cluster_id: "cluster-234567abcdef".into(),
            module: "/nowhere.so".into(),
            token_label: "t".into(),
            trust_anchor: None,
        };
        let der = [
            0x30u8, 0x82, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
        ];
        use base64::Engine as _;
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        );
        assert!(check_trust_anchor(&cluster, &pem).is_ok());
        assert_eq!(
            check_trust_anchor(&cluster, "not a certificate"),
            Err(CksError::IncorrectTrustAnchor)
        );
    }
}
