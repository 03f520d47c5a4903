//! Imported key material (BYOK) through the real `aws-sdk-kms` client: CreateKey with
//! `Origin=EXTERNAL`, GetParametersForImport, ImportKeyMaterial, DeleteImportedKeyMaterial,
//! several materials with on-demand rotation, and `ValidTo` enforced by the server's clock
//! (moved forward, never slept through).

use std::path::Path;
use std::time::Duration;

use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::{Blob, DateTime};
use aws_sdk_kms::types::{
    AlgorithmSpec, ExpirationModelType, ImportState, ImportType, IncludeKeyMaterial,
    KeyMaterialState, KeyState, OriginType, RotationType, WrappingKeySpec,
};
use keyhold_crypto::import::{WrappingAlgorithm, wrap_for_import};
use keyhold_testkit::TestServer;

const DAY: u64 = 86_400;

fn local(algorithm: &AlgorithmSpec) -> WrappingAlgorithm {
    match algorithm {
        AlgorithmSpec::RsaesOaepSha1 => WrappingAlgorithm::RsaesOaepSha1,
        AlgorithmSpec::RsaesOaepSha256 => WrappingAlgorithm::RsaesOaepSha256,
        AlgorithmSpec::RsaAesKeyWrapSha1 => WrappingAlgorithm::RsaAesKeyWrapSha1,
        AlgorithmSpec::RsaAesKeyWrapSha256 => WrappingAlgorithm::RsaAesKeyWrapSha256,
        other => panic!("no local wrapping for {other}"),
    }
}

async fn external_key(kms: &aws_sdk_kms::Client) -> String {
    kms.create_key()
        .origin(OriginType::External)
        .description("byok")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id
}

/// GetParametersForImport, then the material wrapped as a client wraps it. Returns
/// (import token, wrapped material).
async fn wrapped(
    kms: &aws_sdk_kms::Client,
    key_id: &str,
    algorithm: AlgorithmSpec,
    spec: WrappingKeySpec,
    material: &[u8],
) -> (Blob, Blob) {
    let params = kms
        .get_parameters_for_import()
        .key_id(key_id)
        .wrapping_algorithm(algorithm.clone())
        .wrapping_key_spec(spec)
        .send()
        .await
        .unwrap();
    let public = params.public_key.unwrap();
    let wrapped = wrap_for_import(public.as_ref(), local(&algorithm), material).unwrap();
    (params.import_token.unwrap(), Blob::new(wrapped))
}

/// Imports `material` (no expiry unless `valid_to`), returning ImportKeyMaterial's result.
async fn import(
    kms: &aws_sdk_kms::Client,
    key_id: &str,
    material: &[u8],
    valid_to: Option<i64>,
    import_type: Option<ImportType>,
    material_id: Option<&str>,
) -> Result<
    aws_sdk_kms::operation::import_key_material::ImportKeyMaterialOutput,
    aws_sdk_kms::error::SdkError<
        aws_sdk_kms::operation::import_key_material::ImportKeyMaterialError,
    >,
> {
    let (token, blob) = wrapped(
        kms,
        key_id,
        AlgorithmSpec::RsaesOaepSha256,
        WrappingKeySpec::Rsa2048,
        material,
    )
    .await;
    let mut call = kms
        .import_key_material()
        .key_id(key_id)
        .import_token(token)
        .encrypted_key_material(blob)
        .set_import_type(import_type)
        .set_key_material_id(material_id.map(str::to_owned));
    call = match valid_to {
        Some(t) => call
            .expiration_model(ExpirationModelType::KeyMaterialExpires)
            .valid_to(DateTime::from_secs(t)),
        None => call.expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire),
    };
    call.send().await
}

async fn arn_of(kms: &aws_sdk_kms::Client, key_id: &str) -> String {
    kms.describe_key()
        .key_id(key_id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .arn
        .unwrap()
}

async fn state(kms: &aws_sdk_kms::Client, key_id: &str) -> KeyState {
    kms.describe_key()
        .key_id(key_id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_state
        .unwrap()
}

async fn encrypt(kms: &aws_sdk_kms::Client, key_id: &str, text: &[u8]) -> Blob {
    kms.encrypt()
        .key_id(key_id)
        .plaintext(Blob::new(text.to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap()
}

/// (plaintext, material id) or the error's (code, message).
async fn decrypt(
    kms: &aws_sdk_kms::Client,
    blob: &Blob,
) -> Result<(Vec<u8>, String), (String, String)> {
    match kms.decrypt().ciphertext_blob(blob.clone()).send().await {
        Ok(out) => Ok((
            out.plaintext.unwrap().into_inner(),
            out.key_material_id.unwrap(),
        )),
        Err(e) => Err(keyhold_testkit::code_and_message(&e.into_service_error())),
    }
}

/// (material id, state, import state) of every material, oldest first.
async fn materials(
    kms: &aws_sdk_kms::Client,
    key_id: &str,
) -> Vec<(String, KeyMaterialState, ImportState)> {
    kms.list_key_rotations()
        .key_id(key_id)
        .include_key_material(IncludeKeyMaterial::AllKeyMaterial)
        .send()
        .await
        .unwrap()
        .rotations
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            (
                r.key_material_id.unwrap(),
                r.key_material_state.unwrap(),
                r.import_state.unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_external_key_waits_for_its_material_then_works_with_every_wrapping() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let created = kms
        .create_key()
        .origin(OriginType::External)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(created.origin, Some(OriginType::External));
    assert_eq!(created.key_state, Some(KeyState::PendingImport));
    assert!(!created.enabled);
    assert_eq!(created.current_key_material_id, None);
    let id = created.key_id.clone();
    let arn = created.arn.unwrap();

    // Nothing works before the material arrives.
    let e = kms
        .encrypt()
        .key_id(&id)
        .plaintext(Blob::new("x"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "KMSInvalidStateException".into(),
            format!("{arn} is pending import.")
        )
    );
    let e = kms
        .enable_key()
        .key_id(&id)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(e.code(), Some("KMSInvalidStateException"));

    // Every wrapping algorithm and key size AWS offers for symmetric material.
    let material = [0x5au8; 32];
    let mut first_id = None;
    for (algorithm, spec) in [
        (AlgorithmSpec::RsaesOaepSha1, WrappingKeySpec::Rsa2048),
        (AlgorithmSpec::RsaesOaepSha256, WrappingKeySpec::Rsa3072),
        (AlgorithmSpec::RsaAesKeyWrapSha1, WrappingKeySpec::Rsa2048),
        (AlgorithmSpec::RsaAesKeyWrapSha256, WrappingKeySpec::Rsa4096),
    ] {
        let (token, blob) = wrapped(&kms, &id, algorithm.clone(), spec, &material).await;
        let out = kms
            .import_key_material()
            .key_id(&id)
            .import_token(token)
            .encrypted_key_material(blob)
            .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{algorithm}: {:?}", e.into_service_error()));
        assert_eq!(out.key_id.as_deref(), Some(arn.as_str()));
        let material_id = out.key_material_id.unwrap();
        assert_eq!(material_id.len(), 64);
        // The same material is the same material id, whichever wrapping carried it.
        assert_eq!(first_id.get_or_insert(material_id.clone()), &material_id);
    }
    let material_id = first_id.unwrap();
    let meta = kms
        .describe_key()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(meta.key_state, Some(KeyState::Enabled));
    assert_eq!(
        meta.expiration_model,
        Some(ExpirationModelType::KeyMaterialDoesNotExpire)
    );
    assert_eq!(meta.valid_to, None);
    assert_eq!(
        meta.current_key_material_id.as_deref(),
        Some(material_id.as_str())
    );

    let blob = encrypt(&kms, &id, b"imported").await;
    assert_eq!(
        decrypt(&kms, &blob).await,
        Ok((b"imported".to_vec(), material_id.clone()))
    );
    assert_eq!(
        materials(&kms, &id).await,
        [(
            material_id,
            KeyMaterialState::Current,
            ImportState::Imported
        )]
    );
    // Automatic rotation is for KMS-generated material only.
    let e = kms
        .enable_key_rotation()
        .key_id(&id)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(e.code(), Some("UnsupportedOperationException"));
}

#[tokio::test]
async fn import_tokens_are_single_use_bound_to_their_key_and_valid_for_24_hours() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let id = external_key(&kms).await;
    let other = external_key(&kms).await;
    let material = [7u8; 32];

    let params = kms
        .get_parameters_for_import()
        .key_id(&id)
        .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha256)
        .wrapping_key_spec(WrappingKeySpec::Rsa2048)
        .send()
        .await
        .unwrap();
    let valid_to = params.parameters_valid_to.unwrap().secs();
    assert!(
        (valid_to - (keyhold_testkit::unix_now() + 86_400)).abs() < 60,
        "valid for 24 hours"
    );
    let wrapped = wrap_for_import(
        params.public_key.unwrap().as_ref(),
        WrappingAlgorithm::RsaesOaepSha256,
        &material,
    )
    .unwrap();
    let token = params.import_token.unwrap();
    let send = |key: &str, token: Blob| {
        kms.import_key_material()
            .key_id(key)
            .import_token(token)
            .encrypted_key_material(Blob::new(wrapped.clone()))
            .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
            .send()
    };

    // Another key's token, and bytes that were never a token.
    let e = send(&other, token.clone())
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(e.code(), Some("InvalidImportTokenException"));
    let e = send(&id, Blob::new(vec![1u8; 32]))
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(e.code(), Some("InvalidImportTokenException"));

    send(&id, token.clone()).await.unwrap();
    // Used once, it is gone.
    let e = send(&id, token).await.unwrap_err().into_service_error();
    assert_eq!(e.code(), Some("InvalidImportTokenException"));

    // A day later, an unused token has expired.
    let (token, blob) = wrapped_for(&kms, &other, &material).await;
    server.clock().advance(Duration::from_secs(DAY + 60));
    let e = kms
        .import_key_material()
        .key_id(&other)
        .import_token(token)
        .encrypted_key_material(blob)
        .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(e.code(), Some("ExpiredImportTokenException"));
}

async fn wrapped_for(kms: &aws_sdk_kms::Client, key_id: &str, material: &[u8]) -> (Blob, Blob) {
    wrapped(
        kms,
        key_id,
        AlgorithmSpec::RsaesOaepSha256,
        WrappingKeySpec::Rsa2048,
        material,
    )
    .await
}

#[tokio::test]
async fn bad_material_and_bad_parameters_are_refused_as_aws_refuses_them() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let id = external_key(&kms).await;

    // Wrapped with another algorithm than the token's, or not 256 bits: the same
    // InvalidCiphertextException.
    let params = kms
        .get_parameters_for_import()
        .key_id(&id)
        .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha256)
        .wrapping_key_spec(WrappingKeySpec::Rsa2048)
        .send()
        .await
        .unwrap();
    let public = params.public_key.unwrap();
    let token = params.import_token.unwrap();
    for wrapped in [
        wrap_for_import(public.as_ref(), WrappingAlgorithm::RsaesOaepSha1, &[1; 32]).unwrap(),
        wrap_for_import(
            public.as_ref(),
            WrappingAlgorithm::RsaesOaepSha256,
            &[1; 16],
        )
        .unwrap(),
        vec![0u8; 256],
    ] {
        let e = kms
            .import_key_material()
            .key_id(&id)
            .import_token(token.clone())
            .encrypted_key_material(Blob::new(wrapped))
            .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert_eq!(e.code(), Some("InvalidCiphertextException"));
    }

    // The expiration parameters.
    let now = keyhold_testkit::unix_now();
    for (model, valid_to, message) in [
        (
            Some(ExpirationModelType::KeyMaterialExpires),
            None,
            "A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES",
        ),
        (
            None,
            None,
            "A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES",
        ),
        (
            Some(ExpirationModelType::KeyMaterialDoesNotExpire),
            Some(now + 3600),
            "A validTo date is only valid if the ExpirationModel is KEY_MATERIAL_EXPIRES",
        ),
        (
            Some(ExpirationModelType::KeyMaterialExpires),
            Some(now - 60),
            "The validTo date must be in the future and at most 365 days from now.",
        ),
        (
            Some(ExpirationModelType::KeyMaterialExpires),
            Some(now + 366 * 86_400),
            "The validTo date must be in the future and at most 365 days from now.",
        ),
    ] {
        let e = kms
            .import_key_material()
            .key_id(&id)
            .import_token(token.clone())
            .encrypted_key_material(Blob::new(vec![0u8; 256]))
            .set_expiration_model(model)
            .set_valid_to(valid_to.map(DateTime::from_secs))
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert_eq!(
            keyhold_testkit::code_and_message(&e),
            ("ValidationException".into(), message.into())
        );
    }

    // Parameters AWS does not offer for this key.
    for (algorithm, spec) in [
        (AlgorithmSpec::RsaesPkcs1V15, WrappingKeySpec::Rsa2048),
        (AlgorithmSpec::RsaesOaepSha256, WrappingKeySpec::Sm2),
    ] {
        let e = kms
            .get_parameters_for_import()
            .key_id(&id)
            .wrapping_algorithm(algorithm)
            .wrapping_key_spec(spec)
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert_eq!(e.code(), Some("ValidationException"));
    }

    // Import operations on a key whose material KMS generated.
    let generated = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let garn = generated.arn.unwrap();
    let expected = (
        "UnsupportedOperationException".to_owned(),
        format!("{garn} origin is AWS_KMS which is not valid for this operation."),
    );
    let e = kms
        .get_parameters_for_import()
        .key_id(&generated.key_id)
        .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha256)
        .wrapping_key_spec(WrappingKeySpec::Rsa2048)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(keyhold_testkit::code_and_message(&e), expected);
    let e = kms
        .import_key_material()
        .key_id(&generated.key_id)
        .import_token(token.clone())
        .encrypted_key_material(Blob::new(vec![0u8; 256]))
        .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(keyhold_testkit::code_and_message(&e), expected);
    let e = kms
        .delete_imported_key_material()
        .key_id(&generated.key_id)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(keyhold_testkit::code_and_message(&e), expected);

    // Aliases are not accepted, unknown keys are not found.
    kms.create_alias()
        .alias_name("alias/byok")
        .target_key_id(&id)
        .send()
        .await
        .unwrap();
    let e = kms
        .get_parameters_for_import()
        .key_id("alias/byok")
        .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha256)
        .wrapping_key_spec(WrappingKeySpec::Rsa2048)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(e.code(), Some("InvalidArnException"));
    let e = kms
        .delete_imported_key_material()
        .key_id("00000000-0000-0000-0000-000000000000")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(e.code(), Some("NotFoundException"));

    // Deleting from a key that never had material.
    let e = kms
        .delete_imported_key_material()
        .key_id(&id)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "KMSInvalidStateException".into(),
            format!("{} is pending import.", arn_of(&kms, &id).await)
        )
    );
}

#[tokio::test]
async fn valid_to_is_enforced_by_the_server_clock_until_the_same_material_returns() {
    let server = TestServer::builder()
        .deletion_sweep_interval(Duration::from_millis(50))
        .start()
        .await;
    let kms = server.kms();
    let id = external_key(&kms).await;
    let material = [0x11u8; 32];
    let valid_to = keyhold_testkit::unix_now() + 2 * 86_400;
    let material_id = import(&kms, &id, &material, Some(valid_to), None, None)
        .await
        .unwrap()
        .key_material_id
        .unwrap();
    let meta = kms
        .describe_key()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(
        meta.expiration_model,
        Some(ExpirationModelType::KeyMaterialExpires)
    );
    assert_eq!(meta.valid_to.unwrap().secs(), valid_to);
    let blob = encrypt(&kms, &id, b"before expiry").await;
    assert_eq!(sealed_rows(server.data_dir(), &id).await, [true]);

    // Past ValidTo: the key is PendingImport and its ciphertexts do not open.
    server.clock().advance(Duration::from_secs(3 * DAY));
    assert_eq!(state(&kms, &id).await, KeyState::PendingImport);
    let (code, _) = decrypt(&kms, &blob).await.unwrap_err();
    assert_eq!(code, "KMSInvalidStateException");
    assert_eq!(
        materials(&kms, &id).await,
        [(
            material_id.clone(),
            KeyMaterialState::Current,
            ImportState::PendingImport
        )]
    );
    // The sweep deletes the sealed material from the store.
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = sealed_rows(server.data_dir(), &id).await;
        if rows == [false] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rows, [false], "the expired material is gone from the store");

    // Other material is refused; the same material brings the key back.
    let e = import(&kms, &id, &[0x22u8; 32], None, None, None)
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "IncorrectKeyMaterialException".into(),
            "The key material in the request is not the key material that was previously \
             imported into this KMS key."
                .into()
        )
    );
    let again = import(&kms, &id, &material, None, None, None)
        .await
        .unwrap();
    assert_eq!(again.key_material_id.as_deref(), Some(material_id.as_str()));
    assert_eq!(state(&kms, &id).await, KeyState::Enabled);
    assert_eq!(
        decrypt(&kms, &blob).await,
        Ok((b"before expiry".to_vec(), material_id))
    );
    assert_eq!(sealed_rows(server.data_dir(), &id).await, [true]);
}

/// Whether each imported material row of `key_id` holds sealed material, read from the
/// server's store: SQLite in `dir`, or its PostgreSQL schema under `KEYHOLD_TEST_STORAGE`.
async fn sealed_rows(dir: &Path, key_id: &str) -> Vec<bool> {
    if let Some(storage) = keyhold_testkit::test_storage_for(dir).await {
        let config = keyhold_store::parse_postgres_url(storage.as_str()).unwrap();
        let (client, connection) = config.connect().await.unwrap();
        let driver = tokio::spawn(connection);
        let rows = client
            .query(
                "SELECT sealed IS NOT NULL FROM kms_imported_materials WHERE key_id = $1 \
                 ORDER BY creation_ms, seq",
                &[&key_id],
            )
            .await
            .unwrap();
        drop(client);
        let _ = driver.await;
        return rows.iter().map(|r| r.get::<_, bool>(0)).collect();
    }
    let conn = rusqlite::Connection::open(dir.join("keyhold.db")).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT sealed IS NOT NULL FROM kms_imported_materials WHERE key_id = ?1 \
             ORDER BY creation_ms, rowid",
        )
        .unwrap();
    stmt.query_map([key_id], |r| r.get(0))
        .unwrap()
        .collect::<Result<Vec<bool>, _>>()
        .unwrap()
}

#[tokio::test]
async fn deleted_material_leaves_the_key_pending_import_until_reimported() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let id = external_key(&kms).await;
    let material = [0x33u8; 32];
    let material_id = import(&kms, &id, &material, None, None, None)
        .await
        .unwrap()
        .key_material_id
        .unwrap();
    let blob = encrypt(&kms, &id, b"kept").await;

    let out = kms
        .delete_imported_key_material()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(out.key_material_id.as_deref(), Some(material_id.as_str()));
    assert!(out.key_id.unwrap().ends_with(&id));
    assert_eq!(state(&kms, &id).await, KeyState::PendingImport);
    assert_eq!(sealed_rows(server.data_dir(), &id).await, [false]);
    assert_eq!(
        decrypt(&kms, &blob).await.unwrap_err().0,
        "KMSInvalidStateException"
    );
    let e = kms
        .delete_imported_key_material()
        .key_id(&id)
        .key_material_id("ab".repeat(32))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(e.code(), Some("NotFoundException"));

    // Scheduled for deletion and cancelled, it waits for its material again.
    let (token, wrapped) = wrapped_for(&kms, &id, &material).await;
    kms.schedule_key_deletion()
        .key_id(&id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    let e = kms
        .import_key_material()
        .key_id(&id)
        .import_token(token)
        .encrypted_key_material(wrapped)
        .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "KMSInvalidStateException".into(),
            format!("{} is pending deletion.", arn_of(&kms, &id).await)
        )
    );
    kms.cancel_key_deletion().key_id(&id).send().await.unwrap();
    assert_eq!(state(&kms, &id).await, KeyState::PendingImport);

    import(&kms, &id, &material, None, None, Some(&material_id))
        .await
        .unwrap();
    assert_eq!(state(&kms, &id).await, KeyState::Enabled);
    assert_eq!(decrypt(&kms, &blob).await.unwrap().0, b"kept");
}

#[tokio::test]
async fn new_key_material_becomes_current_by_on_demand_rotation() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let id = external_key(&kms).await;
    let (m1, m2, m3) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    let id1 = import(&kms, &id, &m1, None, None, None)
        .await
        .unwrap()
        .key_material_id
        .unwrap();
    let before = encrypt(&kms, &id, b"one").await;

    // Nothing to rotate to yet.
    let e = kms
        .rotate_key_on_demand()
        .key_id(&id)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(e.code(), Some("KMSInvalidStateException"));

    let id2 = import(&kms, &id, &m2, None, Some(ImportType::NewKeyMaterial), None)
        .await
        .unwrap()
        .key_material_id
        .unwrap();
    assert_ne!(id1, id2);
    assert_eq!(
        materials(&kms, &id).await,
        [
            (
                id1.clone(),
                KeyMaterialState::Current,
                ImportState::Imported
            ),
            (
                id2.clone(),
                KeyMaterialState::PendingRotation,
                ImportState::Imported
            ),
        ]
    );
    // Pending material is not used yet.
    let still = encrypt(&kms, &id, b"still one").await;
    assert_eq!(decrypt(&kms, &still).await.unwrap().1, id1);
    // One pending material at a time; material the key has is not new.
    let e = import(&kms, &id, &m3, None, Some(ImportType::NewKeyMaterial), None)
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(e.code(), Some("KMSInvalidStateException"));
    let e = import(&kms, &id, &m1, None, Some(ImportType::NewKeyMaterial), None)
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(e.code(), Some("IncorrectKeyMaterialException"));
    let e = import(
        &kms,
        &id,
        &m3,
        None,
        Some(ImportType::NewKeyMaterial),
        Some(&id1),
    )
    .await
    .unwrap_err()
    .into_service_error();
    assert_eq!(e.code(), Some("ValidationException"));

    // Pending material can be deleted outright and other material imported instead.
    kms.delete_imported_key_material()
        .key_id(&id)
        .key_material_id(&id2)
        .send()
        .await
        .unwrap();
    assert_eq!(materials(&kms, &id).await.len(), 1);
    assert_eq!(state(&kms, &id).await, KeyState::Enabled);
    let id3 = import(&kms, &id, &m3, None, Some(ImportType::NewKeyMaterial), None)
        .await
        .unwrap()
        .key_material_id
        .unwrap();

    let out = kms.rotate_key_on_demand().key_id(&id).send().await.unwrap();
    assert_eq!(out.key_id.as_deref(), Some(id.as_str()));
    let after = encrypt(&kms, &id, b"three").await;
    assert_eq!(
        decrypt(&kms, &after).await.unwrap(),
        (b"three".to_vec(), id3.clone())
    );
    assert_eq!(
        decrypt(&kms, &before).await.unwrap(),
        (b"one".to_vec(), id1.clone())
    );
    let listed = kms
        .list_key_rotations()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .rotations
        .unwrap();
    let [entry] = listed.try_into().unwrap();
    assert_eq!(entry.key_material_id.as_deref(), Some(id3.as_str()));
    assert_eq!(entry.rotation_type, Some(RotationType::OnDemand));
    assert_eq!(entry.key_material_state, Some(KeyMaterialState::Current));
    assert!(entry.rotation_date.is_some());

    // Re-importing a non-current material by id; deleting it leaves the key unusable.
    import(
        &kms,
        &id,
        &m1,
        Some(keyhold_testkit::unix_now() + 30 * 86_400),
        Some(ImportType::ExistingKeyMaterial),
        Some(&id1),
    )
    .await
    .unwrap();
    let e = import(&kms, &id, &m2, None, None, Some(&id1))
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(e.code(), Some("IncorrectKeyMaterialException"));
    kms.delete_imported_key_material()
        .key_id(&id)
        .key_material_id(&id1)
        .send()
        .await
        .unwrap();
    assert_eq!(state(&kms, &id).await, KeyState::PendingImport);
    assert_eq!(
        materials(&kms, &id).await,
        [
            (
                id1.clone(),
                KeyMaterialState::NonCurrent,
                ImportState::PendingImport
            ),
            (
                id3.clone(),
                KeyMaterialState::Current,
                ImportState::Imported
            ),
        ]
    );
    import(&kms, &id, &m1, None, None, Some(&id1))
        .await
        .unwrap();
    assert_eq!(state(&kms, &id).await, KeyState::Enabled);
}

#[tokio::test]
async fn imported_material_survives_a_restart_and_expires_while_the_server_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let material = [0x44u8; 32];
    let (kept, expiring, kept_blob, expiring_blob) = {
        let server = TestServer::builder().data_dir(dir.path()).start().await;
        let kms = server.kms();
        let kept = external_key(&kms).await;
        import(&kms, &kept, &material, None, None, None)
            .await
            .unwrap();
        let expiring = external_key(&kms).await;
        import(
            &kms,
            &expiring,
            &material,
            Some(keyhold_testkit::unix_now() + 86_400),
            None,
            None,
        )
        .await
        .unwrap();
        let kept_blob = encrypt(&kms, &kept, b"durable").await;
        let expiring_blob = encrypt(&kms, &expiring, b"expires").await;
        server.stop().await;
        (kept, expiring, kept_blob, expiring_blob)
    };
    let server = TestServer::builder()
        .data_dir(dir.path())
        .clock_ahead(Duration::from_secs(2 * DAY))
        .start()
        .await;
    let kms = server.kms();
    assert_eq!(decrypt(&kms, &kept_blob).await.unwrap().0, b"durable");
    assert_eq!(state(&kms, &kept).await, KeyState::Enabled);
    assert_eq!(state(&kms, &expiring).await, KeyState::PendingImport);
    assert_eq!(
        decrypt(&kms, &expiring_blob).await.unwrap_err().0,
        "KMSInvalidStateException"
    );
}

#[tokio::test]
async fn import_tokens_survive_a_restart_and_are_used_once() {
    let dir = tempfile::tempdir().unwrap();
    let material = [0x55u8; 32];
    let (id, token, blob) = {
        let server = TestServer::builder().data_dir(dir.path()).start().await;
        let kms = server.kms();
        let id = external_key(&kms).await;
        let (token, blob) = wrapped(
            &kms,
            &id,
            AlgorithmSpec::RsaAesKeyWrapSha256,
            WrappingKeySpec::Rsa3072,
            &material,
        )
        .await;
        server.stop().await;
        (id, token, blob)
    };
    // Only the token's hash is stored: the token is in no file of the data directory.
    for (path, bytes) in keyhold_testkit::data_files(dir.path()) {
        assert!(
            !bytes
                .windows(token.as_ref().len())
                .any(|w| w == token.as_ref()),
            "the import token is in {path:?}"
        );
    }

    let server = TestServer::builder().data_dir(dir.path()).start().await;
    let kms = server.kms();
    let send = || {
        kms.import_key_material()
            .key_id(&id)
            .import_token(token.clone())
            .encrypted_key_material(blob.clone())
            .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
            .send()
    };
    send().await.unwrap();
    assert_eq!(state(&kms, &id).await, KeyState::Enabled);
    let ciphertext = encrypt(&kms, &id, b"after a restart").await;
    assert_eq!(
        decrypt(&kms, &ciphertext).await.unwrap().0,
        b"after a restart"
    );
    // Used once, it is gone.
    let e = send().await.unwrap_err().into_service_error();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "InvalidImportTokenException".into(),
            "The import token is invalid or does not belong to this KMS key.".into()
        )
    );

    // Two imports with one token at once: exactly one succeeds.
    let (token, blob) = wrapped_for(&kms, &id, &material).await;
    let call = || {
        kms.import_key_material()
            .key_id(&id)
            .import_token(token.clone())
            .encrypted_key_material(blob.clone())
            .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
            .send()
    };
    let (a, b) = tokio::join!(call(), call());
    let refused: Vec<_> = [a, b]
        .into_iter()
        .filter_map(Result::err)
        .map(|e| e.into_service_error().code().map(str::to_owned))
        .collect();
    assert_eq!(refused, [Some("InvalidImportTokenException".to_owned())]);
}

#[tokio::test]
async fn a_disabled_key_stays_disabled_when_its_material_returns() {
    let dir = tempfile::tempdir().unwrap();
    let material = [0x66u8; 32];
    let (id, blob) = {
        let server = TestServer::builder().data_dir(dir.path()).start().await;
        let kms = server.kms();
        let id = external_key(&kms).await;
        import(
            &kms,
            &id,
            &material,
            Some(keyhold_testkit::unix_now() + 86_400),
            None,
            None,
        )
        .await
        .unwrap();
        let blob = encrypt(&kms, &id, b"disabled").await;
        kms.disable_key().key_id(&id).send().await.unwrap();
        server.stop().await;
        (id, blob)
    };
    // The material expires (with the server down); the sweep makes it durable.
    {
        let server = TestServer::builder()
            .data_dir(dir.path())
            .clock_ahead(Duration::from_secs(2 * DAY))
            .deletion_sweep_interval(Duration::from_millis(50))
            .start()
            .await;
        assert_eq!(state(&server.kms(), &id).await, KeyState::PendingImport);
        tokio::time::sleep(Duration::from_millis(500)).await;
        server.stop().await;
    }
    let server = TestServer::builder()
        .data_dir(dir.path())
        .clock_ahead(Duration::from_secs(2 * DAY))
        .start()
        .await;
    let kms = server.kms();
    assert_eq!(state(&kms, &id).await, KeyState::PendingImport);
    import(&kms, &id, &material, None, None, None)
        .await
        .unwrap();
    assert_eq!(state(&kms, &id).await, KeyState::Disabled);
    let arn = arn_of(&kms, &id).await;
    assert_eq!(
        decrypt(&kms, &blob).await.unwrap_err(),
        ("DisabledException".into(), format!("{arn} is disabled."))
    );
    kms.enable_key().key_id(&id).send().await.unwrap();
    assert_eq!(decrypt(&kms, &blob).await.unwrap().0, b"disabled");

    // The same when the material of a disabled key is deleted; an enabled key comes back
    // enabled.
    kms.disable_key().key_id(&id).send().await.unwrap();
    kms.delete_imported_key_material()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(state(&kms, &id).await, KeyState::PendingImport);
    let e = kms
        .enable_key()
        .key_id(&id)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(e.code(), Some("KMSInvalidStateException"));
    import(&kms, &id, &material, None, None, None)
        .await
        .unwrap();
    assert_eq!(state(&kms, &id).await, KeyState::Disabled);
    kms.enable_key().key_id(&id).send().await.unwrap();
    kms.delete_imported_key_material()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    import(&kms, &id, &material, None, None, None)
        .await
        .unwrap();
    assert_eq!(state(&kms, &id).await, KeyState::Enabled);
}

/// ImportKeyMaterial of wrapped material (no expiry); the error's (code, message).
async fn import_wrapped(
    kms: &aws_sdk_kms::Client,
    key_id: &str,
    (token, blob): (Blob, Blob),
    import_type: Option<ImportType>,
) -> Result<String, (String, String)> {
    kms.import_key_material()
        .key_id(key_id)
        .import_token(token)
        .encrypted_key_material(blob)
        .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
        .set_import_type(import_type)
        .send()
        .await
        .map(|out| out.key_material_id.unwrap())
        .map_err(|e| keyhold_testkit::code_and_message(&e.into_service_error()))
}

async fn external_key_of(
    kms: &aws_sdk_kms::Client,
    spec: aws_sdk_kms::types::KeySpec,
    usage: aws_sdk_kms::types::KeyUsageType,
) -> String {
    let meta = kms
        .create_key()
        .origin(OriginType::External)
        .key_spec(spec)
        .key_usage(usage)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(meta.key_state, Some(KeyState::PendingImport));
    assert_eq!(meta.origin, Some(OriginType::External));
    meta.key_id
}

#[tokio::test]
async fn asymmetric_and_hmac_keys_take_imported_material() {
    use aws_sdk_kms::types::{KeySpec, KeyUsageType, MacAlgorithmSpec, SigningAlgorithmSpec};
    use keyhold_crypto::SecretBytes;
    use keyhold_crypto::asymmetric::{
        self as local_keys, KeyUse, MacAlgorithm, Message, PrivateKey, SigningAlgorithm,
    };

    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::builder().data_dir(dir.path()).start().await;
    let kms = server.kms();

    // An RSA signing key: its PKCS#8 private key fits only RSA_AES_KEY_WRAP.
    let rsa = external_key_of(&kms, KeySpec::Rsa2048, KeyUsageType::SignVerify).await;
    let e = kms
        .get_parameters_for_import()
        .key_id(&rsa)
        .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha256)
        .wrapping_key_spec(WrappingKeySpec::Rsa4096)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "ValidationException".into(),
            "WrappingAlgorithm RSAES_OAEP_SHA_256 with WrappingKeySpec RSA_4096 is not \
             supported for this KMS key."
                .into()
        )
    );
    let rsa_wrapped = |material: Vec<u8>| {
        let kms = kms.clone();
        let rsa = rsa.clone();
        async move {
            wrapped(
                &kms,
                &rsa,
                AlgorithmSpec::RsaAesKeyWrapSha256,
                WrappingKeySpec::Rsa3072,
                &material,
            )
            .await
        }
    };
    let (pkcs8, public) = local_keys::generate_data_key_pair(local_keys::KeySpec::Rsa2048).unwrap();
    let (ecc_pkcs8, _) =
        local_keys::generate_data_key_pair(local_keys::KeySpec::EccNistP256).unwrap();
    // Material that is not an RSA_2048 private key is refused.
    let (other_rsa, _) = local_keys::generate_data_key_pair(local_keys::KeySpec::Rsa3072).unwrap();
    for bad in [&ecc_pkcs8, &other_rsa] {
        let refused = import_wrapped(
            &kms,
            &rsa,
            rsa_wrapped(bad.expose_secret().to_vec()).await,
            None,
        )
        .await
        .unwrap_err();
        assert_eq!(refused.0, "InvalidCiphertextException");
    }
    let material_id = import_wrapped(
        &kms,
        &rsa,
        rsa_wrapped(pkcs8.expose_secret().to_vec()).await,
        None,
    )
    .await
    .unwrap();
    assert_eq!(state(&kms, &rsa).await, KeyState::Enabled);
    let got = kms.get_public_key().key_id(&rsa).send().await.unwrap();
    assert_eq!(got.public_key.unwrap().as_ref(), public.as_slice());
    let local = PrivateKey::from_document(
        local_keys::KeySpec::Rsa2048,
        KeyUse::SignVerify,
        SecretBytes::from(pkcs8.expose_secret().to_vec()),
    )
    .unwrap();
    let sign = |key_id: String| {
        let kms = kms.clone();
        async move {
            kms.sign()
                .key_id(key_id)
                .message(Blob::new(b"imported".to_vec()))
                .signing_algorithm(SigningAlgorithmSpec::RsassaPssSha256)
                .send()
                .await
                .unwrap()
                .signature
                .unwrap()
        }
    };
    let signature = sign(rsa.clone()).await;
    assert!(
        local
            .verify(
                SigningAlgorithm::RsassaPssSha256,
                Message::Raw(b"imported"),
                signature.as_ref()
            )
            .unwrap()
    );

    // It keeps that material for good: no new material; only the same comes back.
    let (another, _) = local_keys::generate_data_key_pair(local_keys::KeySpec::Rsa2048).unwrap();
    let arn = arn_of(&kms, &rsa).await;
    assert_eq!(
        import_wrapped(
            &kms,
            &rsa,
            rsa_wrapped(another.expose_secret().to_vec()).await,
            Some(ImportType::NewKeyMaterial),
        )
        .await
        .unwrap_err(),
        (
            "UnsupportedOperationException".into(),
            format!("{arn} does not support key rotation.")
        )
    );
    kms.delete_imported_key_material()
        .key_id(&rsa)
        .send()
        .await
        .unwrap();
    assert_eq!(state(&kms, &rsa).await, KeyState::PendingImport);
    assert_eq!(
        import_wrapped(
            &kms,
            &rsa,
            rsa_wrapped(another.expose_secret().to_vec()).await,
            None
        )
        .await
        .unwrap_err()
        .0,
        "IncorrectKeyMaterialException"
    );
    assert_eq!(
        import_wrapped(
            &kms,
            &rsa,
            rsa_wrapped(pkcs8.expose_secret().to_vec()).await,
            None
        )
        .await
        .unwrap(),
        material_id
    );

    // An ECC key through RSA-OAEP; P-521 material does not fit RSA-OAEP under RSA_2048.
    let ecc = external_key_of(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let (ecc_public_expected, ecc_local) = {
        let (pkcs8, public) =
            local_keys::generate_data_key_pair(local_keys::KeySpec::EccNistP256).unwrap();
        let pair = wrapped(
            &kms,
            &ecc,
            AlgorithmSpec::RsaesOaepSha256,
            WrappingKeySpec::Rsa2048,
            pkcs8.expose_secret(),
        )
        .await;
        import_wrapped(&kms, &ecc, pair, None).await.unwrap();
        let local = PrivateKey::from_document(
            local_keys::KeySpec::EccNistP256,
            KeyUse::SignVerify,
            SecretBytes::from(pkcs8.expose_secret().to_vec()),
        )
        .unwrap();
        (public, local)
    };
    let signature = kms
        .sign()
        .key_id(&ecc)
        .message(Blob::new(b"ecc".to_vec()))
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .unwrap()
        .signature
        .unwrap();
    assert!(
        ecc_local
            .verify(
                SigningAlgorithm::EcdsaSha256,
                Message::Raw(b"ecc"),
                signature.as_ref()
            )
            .unwrap()
    );
    let p521 = external_key_of(&kms, KeySpec::EccNistP521, KeyUsageType::SignVerify).await;
    let e = kms
        .get_parameters_for_import()
        .key_id(&p521)
        .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha1)
        .wrapping_key_spec(WrappingKeySpec::Rsa2048)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(e.code(), Some("ValidationException"));

    // An HMAC key takes raw key bytes of a length AWS accepts for its spec (32 to 64 here).
    let mac_key = external_key_of(&kms, KeySpec::Hmac256, KeyUsageType::GenerateVerifyMac).await;
    let refused = import_wrapped(
        &kms,
        &mac_key,
        wrapped_for(&kms, &mac_key, &[9u8; 16]).await,
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(refused.0, "InvalidCiphertextException");
    let secret = [0x5au8; 48];
    import_wrapped(
        &kms,
        &mac_key,
        wrapped_for(&kms, &mac_key, &secret).await,
        None,
    )
    .await
    .unwrap();
    let mac_of = |key_id: String| {
        let kms = kms.clone();
        async move {
            kms.generate_mac()
                .key_id(key_id)
                .message(Blob::new(b"mac me".to_vec()))
                .mac_algorithm(MacAlgorithmSpec::HmacSha256)
                .send()
                .await
                .unwrap()
                .mac
                .unwrap()
        }
    };
    let local_mac = PrivateKey::from_document(
        local_keys::KeySpec::Hmac256,
        KeyUse::GenerateVerifyMac,
        SecretBytes::from(secret.to_vec()),
    )
    .unwrap()
    .generate_mac(MacAlgorithm::HmacSha256, b"mac me")
    .unwrap();
    assert_eq!(mac_of(mac_key.clone()).await.as_ref(), local_mac.as_slice());

    // RSA encryption and ECDH keys use their imported private keys too.
    let rsa_enc = external_key_of(&kms, KeySpec::Rsa3072, KeyUsageType::EncryptDecrypt).await;
    let (enc_pkcs8, _) = local_keys::generate_data_key_pair(local_keys::KeySpec::Rsa3072).unwrap();
    let pair = wrapped(
        &kms,
        &rsa_enc,
        AlgorithmSpec::RsaAesKeyWrapSha1,
        WrappingKeySpec::Rsa4096,
        enc_pkcs8.expose_secret(),
    )
    .await;
    import_wrapped(&kms, &rsa_enc, pair, None).await.unwrap();
    let ciphertext = kms
        .encrypt()
        .key_id(&rsa_enc)
        .plaintext(Blob::new(b"to the importer".to_vec()))
        .encryption_algorithm(aws_sdk_kms::types::EncryptionAlgorithmSpec::RsaesOaepSha256)
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    let opened = PrivateKey::from_document(
        local_keys::KeySpec::Rsa3072,
        KeyUse::EncryptDecrypt,
        SecretBytes::from(enc_pkcs8.expose_secret().to_vec()),
    )
    .unwrap()
    .decrypt(local_keys::OaepAlgorithm::Sha256, ciphertext.as_ref())
    .unwrap();
    assert_eq!(opened.expose_secret(), b"to the importer");
    let ecdh = external_key_of(&kms, KeySpec::EccNistP384, KeyUsageType::KeyAgreement).await;
    let (ecdh_pkcs8, ecdh_public) =
        local_keys::generate_data_key_pair(local_keys::KeySpec::EccNistP384).unwrap();
    let pair = wrapped(
        &kms,
        &ecdh,
        AlgorithmSpec::RsaesOaepSha256,
        WrappingKeySpec::Rsa2048,
        ecdh_pkcs8.expose_secret(),
    )
    .await;
    import_wrapped(&kms, &ecdh, pair, None).await.unwrap();
    let (peer_pkcs8, peer_public) =
        local_keys::generate_data_key_pair(local_keys::KeySpec::EccNistP384).unwrap();
    let shared = kms
        .derive_shared_secret()
        .key_id(&ecdh)
        .key_agreement_algorithm(aws_sdk_kms::types::KeyAgreementAlgorithmSpec::Ecdh)
        .public_key(Blob::new(peer_public))
        .send()
        .await
        .unwrap()
        .shared_secret
        .unwrap();
    let expected = PrivateKey::from_document(
        local_keys::KeySpec::EccNistP384,
        KeyUse::KeyAgreement,
        SecretBytes::from(peer_pkcs8.expose_secret().to_vec()),
    )
    .unwrap()
    .derive_shared_secret(&ecdh_public)
    .unwrap();
    assert_eq!(shared.as_ref(), expected.expose_secret());

    // After a restart, the imported materials are unsealed from the store.
    server.stop().await;
    let server = TestServer::builder().data_dir(dir.path()).start().await;
    let kms = server.kms();
    let got = kms.get_public_key().key_id(&ecc).send().await.unwrap();
    assert_eq!(
        got.public_key.unwrap().as_ref(),
        ecc_public_expected.as_slice()
    );
    let signature = kms
        .sign()
        .key_id(&rsa)
        .message(Blob::new(b"imported".to_vec()))
        .signing_algorithm(SigningAlgorithmSpec::RsassaPssSha256)
        .send()
        .await
        .unwrap()
        .signature
        .unwrap();
    assert!(
        local
            .verify(
                SigningAlgorithm::RsassaPssSha256,
                Message::Raw(b"imported"),
                signature.as_ref()
            )
            .unwrap()
    );
    let mac = kms
        .generate_mac()
        .key_id(&mac_key)
        .message(Blob::new(b"mac me".to_vec()))
        .mac_algorithm(MacAlgorithmSpec::HmacSha256)
        .send()
        .await
        .unwrap()
        .mac
        .unwrap();
    assert_eq!(mac.as_ref(), local_mac.as_slice());
}
