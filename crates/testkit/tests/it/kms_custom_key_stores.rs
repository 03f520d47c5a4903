//! Custom key stores of type `AWS_CLOUDHSM` on SoftHSM2 tokens, through the AWS SDK: the six
//! operations with AWS's connection states and errors, keys generated inside the token
//! (non-extractable, sensitive) whose cryptographic operations run there, a disconnected
//! store refusing its keys' operations, and a reconnected one serving them again.
//!
//! Tokens come from `seal_pkcs11`'s `Token` (one SoftHSM token per test, `softhsm2-util` run
//! one at a time).

use aws_sdk_kms::Client;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    ConnectionErrorCodeType, ConnectionStateType, CustomKeyStoreType, KeySpec, KeyState,
    KeyUsageType, OriginType, XksProxyAuthenticationCredentialType, XksProxyConnectivityType,
};
use keyhold_server::config::{CustomKeyStoreConfig, PinSource, Pkcs11Config};
use keyhold_testkit::{TestServer, code_and_message};

use crate::seal_pkcs11::{MODULE, PIN, Token};

/// On the test's token.
const CLUSTER: &str = "cluster-234567abcdefg";
/// The same token: a related cluster.
const RELATED: &str = "cluster-234567abcdefh";
/// Tokens that do not exist (stores can be created on them, not connected).
const ABSENT_A: &str = "cluster-zzzzzzzzzzza";
const ABSENT_B: &str = "cluster-zzzzzzzzzzzb";

fn entry(cluster_id: &str, token_label: &str) -> CustomKeyStoreConfig {
    CustomKeyStoreConfig {
        cluster_id: cluster_id.into(),
        module: MODULE.into(),
        token_label: token_label.into(),
        trust_anchor: None,
    }
}

async fn server(token: &Token) -> TestServer {
    let label = token.label.clone();
    TestServer::builder()
        .configure(move |c| {
            c.custom_key_stores = vec![
                entry(CLUSTER, &label),
                entry(RELATED, &label),
                entry(ABSENT_A, &format!("{label}-absent-a")),
                entry(ABSENT_B, &format!("{label}-absent-b")),
            ];
        })
        .start()
        .await
}

/// A PEM certificate as far as the server checks (a DER SEQUENCE).
fn trust_anchor() -> String {
    use base64::Engine as _;
    let mut der = vec![0x30, 0x82, 0x01, 0x00];
    der.extend_from_slice(&[0x42; 60]);
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64::engine::general_purpose::STANDARD.encode(der)
    )
}

async fn create_store(kms: &Client, name: &str, cluster: &str) -> String {
    kms.create_custom_key_store()
        .custom_key_store_name(name)
        .cloud_hsm_cluster_id(cluster)
        .trust_anchor_certificate(trust_anchor())
        .key_store_password(PIN)
        .send()
        .await
        .unwrap()
        .custom_key_store_id()
        .unwrap()
        .to_owned()
}

async fn state(kms: &Client, id: &str) -> (ConnectionStateType, Option<ConnectionErrorCodeType>) {
    let out = kms
        .describe_custom_key_stores()
        .custom_key_store_id(id)
        .send()
        .await
        .unwrap();
    let [store] = out.custom_key_stores() else {
        panic!("one store expected: {out:?}");
    };
    (
        store.connection_state().unwrap().clone(),
        store.connection_error_code().cloned(),
    )
}

async fn create_key(kms: &Client, store: &str) -> String {
    kms.create_key()
        .custom_key_store_id(store)
        .origin(OriginType::AwsCloudhsm)
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_owned()
}

fn code<E: aws_sdk_kms::error::ProvideErrorMetadata>(e: &E) -> String {
    code_and_message(e).0
}

#[tokio::test]
async fn custom_key_store_lifecycle_states_and_errors() {
    let token = Token::new();
    let server = server(&token).await;
    let kms = server.kms();

    let id = create_store(&kms, "store-1", CLUSTER).await;
    assert!(id.starts_with("cks-"), "{id}");
    assert_eq!(
        state(&kms, &id).await,
        (ConnectionStateType::Disconnected, None)
    );

    // Creation errors.
    let e = kms
        .create_custom_key_store()
        .custom_key_store_name("store-1")
        .cloud_hsm_cluster_id(ABSENT_A)
        .trust_anchor_certificate(trust_anchor())
        .key_store_password(PIN)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CustomKeyStoreNameInUseException");
    let e = kms
        .create_custom_key_store()
        .custom_key_store_name("store-2")
        .cloud_hsm_cluster_id("cluster-notconfigured")
        .trust_anchor_certificate(trust_anchor())
        .key_store_password(PIN)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CloudHsmClusterNotFoundException");
    for cluster in [CLUSTER, RELATED] {
        let e = kms
            .create_custom_key_store()
            .custom_key_store_name("store-2")
            .cloud_hsm_cluster_id(cluster)
            .trust_anchor_certificate(trust_anchor())
            .key_store_password(PIN)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "CloudHsmClusterInUseException", "{cluster}");
    }
    let e = kms
        .create_custom_key_store()
        .custom_key_store_name("store-2")
        .cloud_hsm_cluster_id(ABSENT_A)
        .trust_anchor_certificate("not a certificate")
        .key_store_password(PIN)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "IncorrectTrustAnchorException");
    let e = kms
        .create_custom_key_store()
        .custom_key_store_name("xks")
        .custom_key_store_type(CustomKeyStoreType::ExternalKeyStore)
        .xks_proxy_uri_endpoint("https://xks.example.com")
        .xks_proxy_uri_path("/kms/xks/v1")
        .xks_proxy_connectivity(XksProxyConnectivityType::PublicEndpoint)
        .xks_proxy_authentication_credential(
            XksProxyAuthenticationCredentialType::builder()
                .access_key_id("ABCDEFGHIJKLMNOPQRST")
                .raw_secret_access_key("abcdefghijklmnopqrstuvwxyzabcdefghijklmnopq")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "XksProxyUriUnreachableException");

    // Describe: all of them, by id, by name, unknown.
    let out = kms.describe_custom_key_stores().send().await.unwrap();
    let [store] = out.custom_key_stores() else {
        panic!("{out:?}")
    };
    assert_eq!(store.custom_key_store_id(), Some(id.as_str()));
    assert_eq!(store.custom_key_store_name(), Some("store-1"));
    assert_eq!(store.cloud_hsm_cluster_id(), Some(CLUSTER));
    assert_eq!(
        store.custom_key_store_type(),
        Some(&CustomKeyStoreType::AwsCloudhsm)
    );
    assert_eq!(
        store.trust_anchor_certificate(),
        Some(trust_anchor().as_str())
    );
    assert!(store.creation_date().is_some());
    let by_name = kms
        .describe_custom_key_stores()
        .custom_key_store_name("store-1")
        .send()
        .await
        .unwrap();
    assert_eq!(by_name.custom_key_stores().len(), 1);
    for e in [
        kms.describe_custom_key_stores()
            .custom_key_store_id("cks-00000000000000000")
            .send()
            .await
            .unwrap_err(),
        kms.describe_custom_key_stores()
            .custom_key_store_name("nope")
            .send()
            .await
            .unwrap_err(),
    ] {
        assert_eq!(code(&e), "CustomKeyStoreNotFoundException");
    }
    let e = kms
        .connect_custom_key_store()
        .custom_key_store_id("cks-00000000000000000")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CustomKeyStoreNotFoundException");

    // Disconnected: no keys, no disconnect.
    let e = kms
        .create_key()
        .custom_key_store_id(&id)
        .origin(OriginType::AwsCloudhsm)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CustomKeyStoreInvalidStateException");
    let e = kms
        .disconnect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CustomKeyStoreInvalidStateException");

    // Updates while disconnected: name, a related cluster; not an unrelated one.
    kms.update_custom_key_store()
        .custom_key_store_id(&id)
        .new_custom_key_store_name("store-one")
        .cloud_hsm_cluster_id(RELATED)
        .send()
        .await
        .unwrap();
    let e = kms
        .update_custom_key_store()
        .custom_key_store_id(&id)
        .cloud_hsm_cluster_id(ABSENT_B)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CloudHsmClusterNotRelatedException");
    let e = kms
        .update_custom_key_store()
        .custom_key_store_id(&id)
        .cloud_hsm_cluster_id("cluster-notconfigured")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CloudHsmClusterNotFoundException");
    let described = kms
        .describe_custom_key_stores()
        .custom_key_store_name("store-one")
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.custom_key_stores()[0].cloud_hsm_cluster_id(),
        Some(RELATED)
    );

    // Connected: no update, no delete; connecting again is fine.
    kms.connect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        state(&kms, &id).await,
        (ConnectionStateType::Connected, None)
    );
    kms.connect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    let e = kms
        .update_custom_key_store()
        .custom_key_store_id(&id)
        .new_custom_key_store_name("renamed")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CustomKeyStoreInvalidStateException");
    let e = kms
        .delete_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CustomKeyStoreInvalidStateException");

    // A key in it keeps it from being deleted.
    create_key(&kms, &id).await;
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        state(&kms, &id).await,
        (ConnectionStateType::Disconnected, None)
    );
    let e = kms
        .delete_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CustomKeyStoreHasCMKsException");

    // A store without keys is deleted.
    let empty = create_store(&kms, "store-empty", ABSENT_A).await;
    kms.delete_custom_key_store()
        .custom_key_store_id(&empty)
        .send()
        .await
        .unwrap();
    let e = kms
        .describe_custom_key_stores()
        .custom_key_store_id(&empty)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CustomKeyStoreNotFoundException");
}

#[tokio::test]
async fn failed_connections_report_aws_error_codes_and_stores_page() {
    let token = Token::new();
    let server = server(&token).await;
    let kms = server.kms();
    let on_token = create_store(&kms, "a-on-token", CLUSTER).await;
    let absent = create_store(&kms, "b-absent", ABSENT_A).await;
    let _other = create_store(&kms, "c-absent", ABSENT_B).await;

    // The token is not there.
    kms.connect_custom_key_store()
        .custom_key_store_id(&absent)
        .send()
        .await
        .unwrap();
    assert_eq!(
        state(&kms, &absent).await,
        (
            ConnectionStateType::Failed,
            Some(ConnectionErrorCodeType::InsufficientCloudhsmHsms)
        )
    );
    // FAILED: connect refused until disconnected.
    let e = kms
        .connect_custom_key_store()
        .custom_key_store_id(&absent)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CustomKeyStoreInvalidStateException");
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&absent)
        .send()
        .await
        .unwrap();
    assert_eq!(
        state(&kms, &absent).await,
        (ConnectionStateType::Disconnected, None)
    );

    // A password the token refuses, then the right one.
    kms.update_custom_key_store()
        .custom_key_store_id(&on_token)
        .key_store_password("wrong-pin-1")
        .send()
        .await
        .unwrap();
    kms.connect_custom_key_store()
        .custom_key_store_id(&on_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        state(&kms, &on_token).await,
        (
            ConnectionStateType::Failed,
            Some(ConnectionErrorCodeType::InvalidCredentials)
        )
    );
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&on_token)
        .send()
        .await
        .unwrap();
    kms.update_custom_key_store()
        .custom_key_store_id(&on_token)
        .key_store_password(PIN)
        .send()
        .await
        .unwrap();
    kms.connect_custom_key_store()
        .custom_key_store_id(&on_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        state(&kms, &on_token).await,
        (ConnectionStateType::Connected, None)
    );

    // GenerateRandom from the token of a connected store; refused for another.
    let random = kms
        .generate_random()
        .number_of_bytes(32)
        .custom_key_store_id(&on_token)
        .send()
        .await
        .unwrap();
    assert_eq!(random.plaintext().unwrap().as_ref().len(), 32);
    let e = kms
        .generate_random()
        .number_of_bytes(32)
        .custom_key_store_id(&absent)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CustomKeyStoreInvalidStateException");

    // Pages of one.
    let mut seen = Vec::new();
    let mut marker = None;
    loop {
        let page = kms
            .describe_custom_key_stores()
            .limit(1)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(page.custom_key_stores().len(), 1);
        seen.extend(
            page.custom_key_stores()
                .iter()
                .map(|s| s.custom_key_store_name().unwrap().to_owned()),
        );
        if !page.truncated() {
            assert!(page.next_marker().is_none());
            break;
        }
        marker = page.next_marker().map(str::to_owned);
    }
    seen.sort();
    assert_eq!(seen, ["a-on-token", "b-absent", "c-absent"]);
    let e = kms
        .describe_custom_key_stores()
        .marker("not-a-marker")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidMarkerException");
}

#[tokio::test]
async fn a_custom_key_store_key_lives_in_the_token_and_follows_the_connection() {
    let token = Token::new();
    let server = server(&token).await;
    let kms = server.kms();
    let store = create_store(&kms, "store", CLUSTER).await;
    kms.connect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();

    // CreateKey: symmetric only, Origin AWS_CLOUDHSM.
    let e = kms
        .create_key()
        .custom_key_store_id(&store)
        .origin(OriginType::AwsCloudhsm)
        .key_spec(KeySpec::Rsa2048)
        .key_usage(KeyUsageType::EncryptDecrypt)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "UnsupportedOperationException");
    let e = kms
        .create_key()
        .custom_key_store_id("cks-00000000000000000")
        .origin(OriginType::AwsCloudhsm)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CustomKeyStoreNotFoundException");
    let created = kms
        .create_key()
        .custom_key_store_id(&store)
        .origin(OriginType::AwsCloudhsm)
        .description("in the token")
        .send()
        .await
        .unwrap();
    let metadata = created.key_metadata().unwrap();
    assert_eq!(metadata.custom_key_store_id(), Some(store.as_str()));
    assert_eq!(metadata.cloud_hsm_cluster_id(), Some(CLUSTER));
    assert_eq!(metadata.origin(), Some(&OriginType::AwsCloudhsm));
    assert_eq!(metadata.key_state(), Some(&KeyState::Enabled));
    let key_id = metadata.key_id().to_owned();

    // The material is in the token, and cannot be read out of it.
    // (The seal's provider reads any key of a token by its label: here the key id.)
    let in_token = keyhold_server::seal::pkcs11_root(&Pkcs11Config {
        module: MODULE.into(),
        token_label: token.label.clone(),
        key_label: key_id.clone(),
        pin: PinSource::File(token.pin_file.clone()),
    })
    .unwrap();
    let attributes = in_token.key_attributes().unwrap();
    assert!(!attributes.extractable);
    assert!(attributes.sensitive);
    assert_eq!(attributes.value_len, 32);

    // Encrypt, Decrypt, GenerateDataKey, ReEncrypt.
    let blob = kms
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new("hsm secret"))
        .encryption_context("app", "cks")
        .send()
        .await
        .unwrap()
        .ciphertext_blob()
        .unwrap()
        .clone();
    assert_eq!(blob.as_ref()[0], 0x02, "the token format version");
    let decrypted = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .encryption_context("app", "cks")
        .send()
        .await
        .unwrap();
    assert_eq!(decrypted.plaintext().unwrap().as_ref(), b"hsm secret");
    assert!(decrypted.key_id().unwrap().ends_with(&key_id));
    let e = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .encryption_context("app", "other")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidCiphertextException");
    let mut tampered = blob.as_ref().to_vec();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let e = kms
        .decrypt()
        .ciphertext_blob(Blob::new(tampered))
        .encryption_context("app", "cks")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidCiphertextException");

    let data_key = kms
        .generate_data_key()
        .key_id(&key_id)
        .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
        .send()
        .await
        .unwrap();
    let opened = kms
        .decrypt()
        .ciphertext_blob(data_key.ciphertext_blob().unwrap().clone())
        .send()
        .await
        .unwrap();
    assert_eq!(opened.plaintext(), data_key.plaintext());
    let without = kms
        .generate_data_key_without_plaintext()
        .key_id(&key_id)
        .number_of_bytes(16)
        .send()
        .await
        .unwrap();
    assert_eq!(
        without.ciphertext_blob().unwrap().as_ref().len(),
        16 + keyhold_crypto::blob::OVERHEAD
    );

    let software = kms.create_key().send().await.unwrap();
    let software_id = software.key_metadata().unwrap().key_id().to_owned();
    let moved = kms
        .re_encrypt()
        .ciphertext_blob(blob.clone())
        .source_encryption_context("app", "cks")
        .destination_key_id(&software_id)
        .send()
        .await
        .unwrap();
    let back = kms
        .re_encrypt()
        .ciphertext_blob(moved.ciphertext_blob().unwrap().clone())
        .destination_key_id(&key_id)
        .destination_encryption_context("again", "1")
        .send()
        .await
        .unwrap();
    let again = kms
        .decrypt()
        .ciphertext_blob(back.ciphertext_blob().unwrap().clone())
        .encryption_context("again", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(again.plaintext().unwrap().as_ref(), b"hsm secret");

    // Custom key store keys do not rotate.
    let e = kms
        .enable_key_rotation()
        .key_id(&key_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "UnsupportedOperationException");

    // Disconnected: Unavailable, and every cryptographic operation refused.
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();
    let described = kms.describe_key().key_id(&key_id).send().await.unwrap();
    assert_eq!(
        described.key_metadata().unwrap().key_state(),
        Some(&KeyState::Unavailable)
    );
    let e = kms
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new("x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "KMSInvalidStateException");
    let e = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .encryption_context("app", "cks")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "KMSInvalidStateException");
    let e = kms
        .generate_data_key()
        .key_id(&key_id)
        .number_of_bytes(32)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "KMSInvalidStateException");
    let e = kms
        .re_encrypt()
        .ciphertext_blob(moved.ciphertext_blob().unwrap().clone())
        .destination_key_id(&key_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "KMSInvalidStateException");

    // Reconnected: the old ciphertext decrypts again.
    kms.connect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();
    let described = kms.describe_key().key_id(&key_id).send().await.unwrap();
    assert_eq!(
        described.key_metadata().unwrap().key_state(),
        Some(&KeyState::Enabled)
    );
    let decrypted = kms
        .decrypt()
        .ciphertext_blob(blob)
        .encryption_context("app", "cks")
        .send()
        .await
        .unwrap();
    assert_eq!(decrypted.plaintext().unwrap().as_ref(), b"hsm secret");
}

#[tokio::test]
async fn a_connected_store_survives_a_restart_and_its_password_is_not_stored_in_plaintext() {
    let token = Token::new();
    let dir = tempfile::tempdir().unwrap();
    let label = token.label.clone();
    let start = || {
        let label = label.clone();
        TestServer::builder()
            .data_dir(dir.path())
            .configure(move |c| c.custom_key_stores = vec![entry(CLUSTER, &label)])
            .start()
    };
    let server = start().await;
    let kms = server.kms();
    let store = create_store(&kms, "persistent", CLUSTER).await;
    kms.connect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();
    let key_id = create_key(&kms, &store).await;
    let blob = kms
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new("kept"))
        .send()
        .await
        .unwrap()
        .ciphertext_blob()
        .unwrap()
        .clone();
    server.stop().await;

    for (path, bytes) in keyhold_testkit::data_files(dir.path()) {
        assert!(
            !bytes.windows(PIN.len()).any(|w| w == PIN.as_bytes()),
            "the token PIN is in {}",
            path.display()
        );
    }

    let server = start().await;
    let decrypted = server
        .kms()
        .decrypt()
        .ciphertext_blob(blob)
        .send()
        .await
        .unwrap();
    assert_eq!(decrypted.plaintext().unwrap().as_ref(), b"kept");
}
