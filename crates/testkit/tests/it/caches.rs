//! The bounded caches of the hot path (`[cache]`): with room for only two keys, secrets or
//! parameters, every key, secret and parameter still works (evicted ones are read and
//! unsealed again), every change is seen at once, a missing key stays missing until it is
//! created, and authentication sees IAM changes on the very next request.

use aws_sdk_iam::types::StatusType;
use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;
use keyhold_testkit::identity::{allow, deny, put_user_policy, user_with_key};
use keyhold_testkit::{Creds, DEFAULT_REGION, NewKey, TestServer, new_key, raw};

/// A dev-mode server whose caches hold two keys (and aliases), two secrets and one
/// parameter.
async fn tiny_caches() -> TestServer {
    TestServer::builder()
        .configure(|cfg| {
            cfg.cache.kms_keys = 2;
            cfg.cache.secrets = 2;
            cfg.cache.parameters = 1;
        })
        .start()
        .await
}

async fn decrypt(kms: &aws_sdk_kms::Client, blob: &[u8]) -> Result<(Vec<u8>, String), String> {
    kms.decrypt()
        .ciphertext_blob(Blob::new(blob.to_vec()))
        .send()
        .await
        .map(|d| {
            (
                d.plaintext().unwrap().as_ref().to_vec(),
                d.key_id().unwrap().to_owned(),
            )
        })
        .map_err(|e| e.into_service_error().code().unwrap_or("").to_owned())
}

#[tokio::test]
async fn many_keys_work_through_a_cache_of_two() {
    let server = tiny_caches().await;
    let kms = server.kms();
    let mut sealed = Vec::new();
    for i in 0..8u8 {
        let NewKey { id, arn } = new_key(&kms).await;
        kms.create_alias()
            .alias_name(format!("alias/k{i}"))
            .target_key_id(&id)
            .send()
            .await
            .unwrap();
        let blob = kms
            .encrypt()
            .key_id(&id)
            .plaintext(Blob::new(vec![i; 16]))
            .send()
            .await
            .unwrap()
            .ciphertext_blob()
            .unwrap()
            .as_ref()
            .to_vec();
        sealed.push((i, arn, blob));
    }
    // Every key is used again, in an order that defeats a cache of two, twice over.
    for round in 0..2 {
        for (i, arn, blob) in sealed.iter().rev().chain(sealed.iter()) {
            let (plaintext, key) = decrypt(&kms, blob).await.unwrap();
            assert_eq!(plaintext, vec![*i; 16], "round {round}");
            assert_eq!(&key, arn);
            // By alias too: the alias cache is as small.
            let by_alias = kms
                .generate_data_key()
                .key_id(format!("alias/k{i}"))
                .number_of_bytes(32)
                .send()
                .await
                .unwrap();
            assert_eq!(by_alias.key_id(), Some(arn.as_str()));
        }
    }

    // Secrets and parameters likewise (SecureString values decrypt through KMS).
    let sm = server.secrets_manager();
    for i in 0..5 {
        sm.create_secret()
            .name(format!("app/s{i}"))
            .secret_string(format!("value-{i}"))
            .send()
            .await
            .unwrap();
    }
    for _ in 0..2 {
        for i in (0..5).rev() {
            let value = sm
                .get_secret_value()
                .secret_id(format!("app/s{i}"))
                .send()
                .await
                .unwrap();
            assert_eq!(value.secret_string(), Some(format!("value-{i}").as_str()));
        }
    }
    let accounts = ["111111111111", "222222222222", "333333333333"];
    for account in accounts {
        let ssm = server.ssm_for(account, DEFAULT_REGION);
        for i in 0..2 {
            ssm.put_parameter()
                .name(format!("/p/{i}"))
                .value(format!("{account}-{i}"))
                .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                .send()
                .await
                .unwrap();
        }
    }
    for _ in 0..2 {
        for account in accounts.iter().rev() {
            let ssm = server.ssm_for(account, DEFAULT_REGION);
            for i in 0..2 {
                let got = ssm
                    .get_parameter()
                    .name(format!("/p/{i}"))
                    .with_decryption(true)
                    .send()
                    .await
                    .unwrap();
                let value = got.parameter().unwrap().value().unwrap().to_owned();
                assert_eq!(value, format!("{account}-{i}"));
            }
        }
    }
    // A change made while the scope is evicted is seen when it is loaded again.
    let first = server.ssm_for(accounts[0], DEFAULT_REGION);
    first
        .put_parameter()
        .name("/p/0")
        .value("changed")
        .overwrite(true)
        .send()
        .await
        .unwrap();
    for account in &accounts[1..] {
        server
            .ssm_for(account, DEFAULT_REGION)
            .get_parameter()
            .name("/p/1")
            .send()
            .await
            .unwrap();
    }
    let got = first
        .get_parameter()
        .name("/p/0")
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    assert_eq!(got.parameter().unwrap().value(), Some("changed"));
    assert_eq!(got.parameter().unwrap().version(), 2);
}

/// Uses `n` other keys, so that a cache of two no longer holds the key under test.
async fn churn(kms: &aws_sdk_kms::Client, others: &[String]) {
    for id in others {
        kms.describe_key().key_id(id).send().await.unwrap();
    }
}

#[tokio::test]
async fn key_changes_are_seen_through_the_cache_and_after_eviction() {
    let server = tiny_caches().await;
    let kms = server.kms();
    let NewKey { id, arn } = new_key(&kms).await;
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(new_key(&kms).await.id);
    }
    let before = kms
        .encrypt()
        .key_id(&id)
        .plaintext(Blob::new(b"before".to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob()
        .unwrap()
        .as_ref()
        .to_vec();

    for evicted in [false, true] {
        // Disabled: seen at once, cached or not.
        kms.disable_key().key_id(&id).send().await.unwrap();
        if evicted {
            churn(&kms, &others).await;
        }
        assert_eq!(
            decrypt(&kms, &before).await,
            Err("DisabledException".to_owned()),
            "evicted: {evicted}"
        );
        kms.enable_key().key_id(&id).send().await.unwrap();
        if evicted {
            churn(&kms, &others).await;
        }
        assert_eq!(decrypt(&kms, &before).await.unwrap().1, arn);

        // Rotated: new ciphertexts use the new material, old ones still decrypt.
        let rotated_from = kms
            .describe_key()
            .key_id(&id)
            .send()
            .await
            .unwrap()
            .key_metadata()
            .unwrap()
            .current_key_material_id()
            .unwrap()
            .to_owned();
        kms.rotate_key_on_demand().key_id(&id).send().await.unwrap();
        if evicted {
            churn(&kms, &others).await;
        }
        let after = kms
            .encrypt()
            .key_id(&id)
            .plaintext(Blob::new(b"after".to_vec()))
            .send()
            .await
            .unwrap()
            .ciphertext_blob()
            .unwrap()
            .as_ref()
            .to_vec();
        if evicted {
            churn(&kms, &others).await;
        }
        let opened = kms
            .decrypt()
            .ciphertext_blob(Blob::new(after))
            .send()
            .await
            .unwrap();
        assert_eq!(opened.plaintext().unwrap().as_ref(), b"after");
        let used = opened.key_material_id().unwrap();
        assert_ne!(used, rotated_from, "encrypted under the rotated material");
        assert_eq!(decrypt(&kms, &before).await.unwrap().0, b"before");
    }

    // Pending deletion: refused, cached or evicted; restored by cancelling.
    kms.schedule_key_deletion()
        .key_id(&id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    assert_eq!(
        decrypt(&kms, &before).await,
        Err("KMSInvalidStateException".to_owned())
    );
    churn(&kms, &others).await;
    assert_eq!(
        decrypt(&kms, &before).await,
        Err("KMSInvalidStateException".to_owned())
    );
    kms.cancel_key_deletion().key_id(&id).send().await.unwrap();
    churn(&kms, &others).await;
    // Cancelling leaves the key disabled, as on AWS.
    assert_eq!(
        decrypt(&kms, &before).await,
        Err("DisabledException".to_owned())
    );

    // A grant made while the key is evicted applies once the key is read again.
    kms.enable_key().key_id(&id).send().await.unwrap();
    churn(&kms, &others).await;
    let grantee = "arn:aws:iam::000000000000:role/grantee";
    kms.create_grant()
        .key_id(&id)
        .grantee_principal(grantee)
        .operations(aws_sdk_kms::types::GrantOperation::Decrypt)
        .send()
        .await
        .unwrap();
    churn(&kms, &others).await;
    let grants = kms.list_grants().key_id(&id).send().await.unwrap();
    assert_eq!(grants.grants().len(), 1);
}

const KEY_ID: &str = "5b7c1e2a-0d3f-4a6b-9c8d-7e6f5a4b3c2d";
const MATERIAL: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

async fn describe_error(kms: &aws_sdk_kms::Client, id: &str) -> (String, String) {
    let e = kms
        .describe_key()
        .key_id(id)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    (
        e.code().unwrap_or("").to_owned(),
        e.message().unwrap_or("").to_owned(),
    )
}

#[tokio::test]
async fn a_missing_key_stays_missing_until_it_is_created() {
    let files = tempfile::tempdir().unwrap();
    let seed = files.path().join("seed.yaml");
    std::fs::write(
        &seed,
        format!("keys:\n  - id: {KEY_ID}\n    material: {MATERIAL}\n"),
    )
    .unwrap();
    let server = TestServer::builder()
        .configure(move |cfg| {
            cfg.seed = Some(seed);
            cfg.cache.kms_keys = 2;
        })
        .start()
        .await;
    let kms = server.kms();
    let blob = kms
        .encrypt()
        .key_id(KEY_ID)
        .plaintext(Blob::new(b"seeded".to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob()
        .unwrap()
        .as_ref()
        .to_vec();

    // Erase everything: the key id is now unknown, and answered so every time.
    let answer = raw::request(server.addr(), "POST", "/_keyhold/reset", &[], b"").await;
    assert_eq!(answer.status, 200, "{}", answer.body_text());
    let expected = (
        "NotFoundException".to_owned(),
        format!("Key 'arn:aws:kms:us-east-1:000000000000:key/{KEY_ID}' does not exist"),
    );
    for _ in 0..5 {
        assert_eq!(describe_error(&kms, KEY_ID).await, expected);
        assert_eq!(
            decrypt(&kms, &blob).await,
            Err("InvalidCiphertextException".to_owned())
        );
    }
    // Random ids too, and keys created after those lookups are found at once.
    for n in 0..3u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let missing = format!("{nanos:08x}-0000-4000-8000-{n:012x}");
        for _ in 0..3 {
            assert_eq!(describe_error(&kms, &missing).await.0, "NotFoundException");
        }
        let id = new_key(&kms).await.id;
        kms.describe_key().key_id(&id).send().await.unwrap();
    }

    // The same key id created again (the seed applied anew) is found at once.
    let answer = raw::request(
        server.addr(),
        "POST",
        "/_keyhold/reset?reseed=true",
        &[],
        b"",
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body_text());
    kms.describe_key().key_id(KEY_ID).send().await.unwrap();
    assert_eq!(decrypt(&kms, &blob).await.unwrap().0, b"seeded");
}

const ROOT_KEY: &str = "AKIAKEYHOLDROOT00001";
const ROOT_SECRET: &str = "keyhold-root-secret-0000000000000000000000";
const ACCOUNT: &str = "123456789012";

#[tokio::test]
async fn iam_changes_apply_to_the_next_request() {
    let server = TestServer::builder()
        .strict(&[(ROOT_KEY, ROOT_SECRET, ACCOUNT)])
        .start()
        .await;
    let root = server.clients(&Creds::new(ROOT_KEY, ROOT_SECRET));
    let creds = user_with_key(&root.iam, "worker").await;
    put_user_policy(&root.iam, "worker", "kms", &allow("kms:*", "*")).await;
    let user = server.clients(&creds);
    let key = user.kms.create_key().send().await.unwrap();
    let key_id = key.key_metadata().unwrap().key_id().to_owned();
    let describe = || user.kms.describe_key().key_id(&key_id).send();
    describe().await.unwrap();

    // A policy change is enforced on the next call (the principal was cached before it).
    put_user_policy(
        &root.iam,
        "worker",
        "no-describe",
        &deny("kms:DescribeKey", "*"),
    )
    .await;
    let e = describe().await.unwrap_err().into_service_error();
    assert_eq!(e.code(), Some("AccessDeniedException"));
    root.iam
        .delete_user_policy()
        .user_name("worker")
        .policy_name("no-describe")
        .send()
        .await
        .unwrap();
    describe().await.unwrap();

    // A deactivated key stops authenticating at once, and works again once reactivated.
    let set_status = |status: StatusType| {
        root.iam
            .update_access_key()
            .user_name("worker")
            .access_key_id(&creds.access_key_id)
            .status(status)
            .send()
    };
    set_status(StatusType::Inactive).await.unwrap();
    let e = describe().await.unwrap_err().into_service_error();
    assert_eq!(e.code(), Some("UnrecognizedClientException"));
    set_status(StatusType::Active).await.unwrap();
    describe().await.unwrap();

    // A deleted key likewise.
    root.iam
        .delete_access_key()
        .user_name("worker")
        .access_key_id(&creds.access_key_id)
        .send()
        .await
        .unwrap();
    let e = describe().await.unwrap_err().into_service_error();
    assert_eq!(e.code(), Some("UnrecognizedClientException"));
}
