//! keyhold-envelope against a live Keyhold: ESDK messages round-trip at every size class,
//! every kind of tampering fails, the data-key cache honours its limits and bucket keys
//! cost one KMS call per bucket per lifetime — counted in the audit trail.

use std::time::Duration;

use keyhold_envelope::{
    AlgorithmSuite, BUCKET_PROVIDER_ID, CacheLimits, EncryptOptions, EncryptionContext, Envelope,
    Error, KMS_PROVIDER_ID, ObjectId,
};
use keyhold_testkit::{TestServer, new_key};

const SUITES: [AlgorithmSuite; 2] = [
    AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
    AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
];

fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
    let mut ec = EncryptionContext::new();
    for (k, v) in pairs {
        ec.insert(*k, *v).unwrap();
    }
    ec
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// KMS calls of one operation in the audit trail.
fn audited(server: &TestServer, operation: &str) -> usize {
    keyhold_testkit::audit_files::records(server.data_dir())
        .into_iter()
        .filter(|r| r["eventName"] == operation && r["errorCode"].is_null())
        .count()
}

#[tokio::test]
async fn every_size_class_round_trips_with_both_suites_and_frame_sizes() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let arn = new_key(&kms).await.arn;
    let ec = ctx(&[("purpose", "test"), ("tenant", "42")]);
    for suite in SUITES {
        for frame in [4096u32, 65536] {
            let env = Envelope::builder(kms.clone())
                .key_id(&arn)
                .algorithm_suite(suite)
                .frame_len(frame)
                .build()
                .unwrap();
            let f = frame as usize;
            for len in [0, 1, 100, f - 1, f, f + 1, 3 * f, 3 * f + 17, 200_000] {
                let plain = data(len);
                let msg = env.encrypt(&plain, &ec).await.unwrap();
                assert_eq!(msg[0], 2, "version 2");
                assert_eq!(u16::from_be_bytes([msg[1], msg[2]]), suite.id());
                let (out, d) = env.decrypt(&msg, &ec).await.unwrap();
                assert_eq!(out, plain, "{suite:?} frame {frame} len {len}");
                assert_eq!(d.plaintext_len, len as u64);
                assert_eq!(d.header.context.get("tenant"), Some("42"));
                assert_eq!(d.header.edks.len(), 1);
                assert_eq!(d.header.edks[0].provider_id, KMS_PROVIDER_ID);
                assert_eq!(d.header.edks[0].provider_info, arn.as_bytes());
                // The same bytes through the streaming API, in small reads.
                let mut reader = tokio::io::BufReader::with_capacity(7, &msg[..]);
                let mut streamed = Vec::new();
                env.decrypt_stream(&mut reader, &mut streamed, &EncryptionContext::new())
                    .await
                    .unwrap();
                assert_eq!(streamed, plain);
            }
        }
    }
}

#[tokio::test]
async fn one_entry_per_kms_key_and_any_one_decrypts() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let (a, b, c) = (
        new_key(&kms).await.arn,
        new_key(&kms).await.arn,
        new_key(&kms).await.arn,
    );
    let env = Envelope::builder(kms.clone())
        .key_id(&a)
        .key_id(&b)
        .key_id(&c)
        .build()
        .unwrap();
    let msg = env
        .encrypt(b"three ways", &EncryptionContext::new())
        .await
        .unwrap();
    for only in [&a, &b, &c] {
        let dec = Envelope::builder(kms.clone())
            .key_id(only.as_str())
            .build()
            .unwrap();
        let (out, d) = dec.decrypt(&msg, &EncryptionContext::new()).await.unwrap();
        assert_eq!(out, b"three ways");
        assert_eq!(d.header.edks.len(), 3);
    }
    // A bare key id matches its ARN; a key not in the message finds nothing.
    let id = b.rsplit('/').next().unwrap();
    let by_id = Envelope::builder(kms.clone()).key_id(id).build().unwrap();
    assert!(by_id.decrypt(&msg, &EncryptionContext::new()).await.is_ok());
    let other = new_key(&kms).await.arn;
    let wrong = Envelope::builder(kms.clone())
        .key_id(&other)
        .build()
        .unwrap();
    assert!(matches!(
        wrong.decrypt(&msg, &EncryptionContext::new()).await,
        Err(Error::NoDecryptableKey { .. })
    ));
    let discovery = Envelope::builder(kms.clone())
        .discovery(true)
        .build()
        .unwrap();
    assert!(
        discovery
            .decrypt(&msg, &EncryptionContext::new())
            .await
            .is_ok()
    );

    // max_encrypted_data_keys, before any KMS call.
    let strict = Envelope::builder(kms.clone())
        .key_id(&a)
        .max_encrypted_data_keys(2)
        .build()
        .unwrap();
    let before = audited(&server, "Decrypt");
    assert!(matches!(
        strict.decrypt(&msg, &EncryptionContext::new()).await,
        Err(Error::TooManyEncryptedDataKeys { found: 3, max: 2 })
    ));
    assert_eq!(audited(&server, "Decrypt"), before);
    let enough = Envelope::builder(kms.clone())
        .key_id(&a)
        .max_encrypted_data_keys(3)
        .build()
        .unwrap();
    assert!(
        enough
            .decrypt(&msg, &EncryptionContext::new())
            .await
            .is_ok()
    );
}

/// Byte offsets of the frames of a message with empty context and one entry.
fn header_len(msg: &[u8]) -> usize {
    let mut p = 1 + 2 + 32;
    let ec_len = u16::from_be_bytes([msg[p], msg[p + 1]]) as usize;
    p += 2 + ec_len;
    let count = u16::from_be_bytes([msg[p], msg[p + 1]]);
    p += 2;
    for _ in 0..count {
        for _ in 0..3 {
            let l = u16::from_be_bytes([msg[p], msg[p + 1]]) as usize;
            p += 2 + l;
        }
    }
    p + 1 + 4 + 32 + 16
}

#[tokio::test]
async fn truncation_reordering_header_edits_and_wrong_context_all_fail() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let arn = new_key(&kms).await.arn;
    let ec = ctx(&[("k", "v")]);
    for suite in SUITES {
        let env = Envelope::builder(kms.clone())
            .key_id(&arn)
            .algorithm_suite(suite)
            .frame_len(4096)
            .build()
            .unwrap();
        let plain = data(4096 * 3 + 100);
        let msg = env.encrypt(&plain, &ec).await.unwrap();
        let plain_len = plain.len();
        let fails = |m: Vec<u8>, what: String| {
            let env = env.clone();
            async move {
                let mut out = Vec::new();
                let r = env
                    .decrypt_stream(&mut &m[..], &mut out, &EncryptionContext::new())
                    .await;
                assert!(matches!(r, Err(Error::InvalidCiphertext)), "{what}: {r:?}");
                // Nothing past the authenticated frames was released.
                assert!(out.len() < plain_len, "{what}: whole plaintext released");
            }
        };
        // Truncation anywhere, including right after the final frame (signature cut).
        for cut in [
            0,
            1,
            10,
            40,
            header_len(&msg) - 1,
            header_len(&msg),
            header_len(&msg) + 100,
            msg.len() - 200,
            msg.len() - 1,
        ] {
            fails(msg[..cut].to_vec(), format!("{suite:?} cut at {cut}")).await;
        }
        // Trailing garbage.
        let mut longer = msg.clone();
        longer.push(0);
        fails(longer, "trailing byte".into()).await;
        // Swap the first two regular frames.
        let h = header_len(&msg);
        let frame = 4 + 12 + 4096 + 16;
        let mut swapped = msg.clone();
        let (first, second) = (
            msg[h..h + frame].to_vec(),
            msg[h + frame..h + 2 * frame].to_vec(),
        );
        swapped[h..h + frame].copy_from_slice(&second);
        swapped[h + frame..h + 2 * frame].copy_from_slice(&first);
        fails(swapped, "frames swapped".into()).await;
        // Drop a whole regular frame.
        let mut dropped = msg[..h].to_vec();
        dropped.extend_from_slice(&msg[h + frame..]);
        fails(dropped, "frame dropped".into()).await;
        // Flip one bit in every byte of the header (other than the EDK ciphertext, whose
        // edits KMS refuses — also tested below) and in samples of the body.
        for i in (0..h).chain((h..msg.len()).step_by(997)) {
            let mut edited = msg.clone();
            edited[i] ^= 0x01;
            let mut out = Vec::new();
            let r = env
                .decrypt_stream(&mut &edited[..], &mut out, &EncryptionContext::new())
                .await;
            assert!(r.is_err(), "{suite:?}: edit at byte {i} was accepted");
            assert!(out.len() < plain.len());
        }
        // Wrong expected context: refused before any KMS call.
        let before = audited(&server, "Decrypt");
        for wrong in [ctx(&[("k", "w")]), ctx(&[("other", "v")])] {
            assert!(matches!(
                env.decrypt(&msg, &wrong).await,
                Err(Error::ContextMismatch)
            ));
        }
        assert_eq!(audited(&server, "Decrypt"), before);
        assert!(env.decrypt(&msg, &ctx(&[("k", "v")])).await.is_ok());
    }
}

#[tokio::test]
async fn an_edited_context_breaks_the_kms_unwrap_and_the_header_tag() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let arn = new_key(&kms).await.arn;
    let env = Envelope::builder(kms.clone()).key_id(&arn).build().unwrap();
    let msg = env
        .encrypt(b"payload", &ctx(&[("role", "aaa")]))
        .await
        .unwrap();
    let pos = msg.windows(3).position(|w| w == b"aaa").unwrap();
    let mut edited = msg.clone();
    edited[pos..pos + 3].copy_from_slice(b"bbb");
    let r = env.decrypt(&edited, &EncryptionContext::new()).await;
    assert!(matches!(r, Err(Error::NoDecryptableKey { .. })), "{r:?}");
    // The error says what failed without any key material.
    let text = r.unwrap_err().to_string();
    assert!(
        text.contains("could be decrypted with the allowed KMS keys"),
        "{text}"
    );
}

#[tokio::test]
async fn the_data_key_cache_honours_messages_bytes_age_and_context() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let arn = new_key(&kms).await.arn;
    let limits = CacheLimits {
        max_age: Duration::from_secs(60),
        max_messages: 3,
        max_bytes: 1 << 40,
        capacity: 10,
    };
    let env = Envelope::builder(kms.clone())
        .key_id(&arn)
        .cache(limits)
        .build()
        .unwrap();
    let ec = ctx(&[("a", "1")]);
    let base = audited(&server, "GenerateDataKey");
    let mut messages = Vec::new();
    for _ in 0..7 {
        messages.push(env.encrypt(b"cached", &ec).await.unwrap());
    }
    // 3 + 3 + 1 messages: three data keys.
    assert_eq!(audited(&server, "GenerateDataKey") - base, 3);
    for m in &messages {
        assert_eq!(env.decrypt(m, &ec).await.unwrap().0, b"cached");
    }
    // Decryption caches too: three distinct entry sets, three Decrypt calls.
    assert_eq!(audited(&server, "Decrypt"), 3);

    // A different context is a different partition.
    let base = audited(&server, "GenerateDataKey");
    env.encrypt(b"x", &ctx(&[("a", "2")])).await.unwrap();
    env.encrypt(b"x", &ctx(&[("a", "2")])).await.unwrap();
    assert_eq!(audited(&server, "GenerateDataKey") - base, 1);

    // Bytes: 40-byte messages under a 100-byte limit get two per key.
    let limits = CacheLimits {
        max_bytes: 100,
        ..limits
    };
    let env = Envelope::builder(kms.clone())
        .key_id(&arn)
        .cache(limits)
        .build()
        .unwrap();
    let base = audited(&server, "GenerateDataKey");
    for _ in 0..5 {
        env.encrypt(&[7u8; 40], &ec).await.unwrap();
    }
    assert_eq!(audited(&server, "GenerateDataKey") - base, 3);
    // A message larger than max_bytes bypasses the cache.
    let base = audited(&server, "GenerateDataKey");
    env.encrypt(&[7u8; 101], &ec).await.unwrap();
    env.encrypt(&[7u8; 101], &ec).await.unwrap();
    assert_eq!(audited(&server, "GenerateDataKey") - base, 2);

    // Age.
    let limits = CacheLimits {
        max_age: Duration::from_millis(300),
        ..CacheLimits::default()
    };
    let env = Envelope::builder(kms.clone())
        .key_id(&arn)
        .cache(limits)
        .build()
        .unwrap();
    let base = audited(&server, "GenerateDataKey");
    env.encrypt(b"x", &ec).await.unwrap();
    env.encrypt(b"x", &ec).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    env.encrypt(b"x", &ec).await.unwrap();
    assert_eq!(audited(&server, "GenerateDataKey") - base, 2);

    // Unknown length (a stream without a declared size) never uses the cache.
    let base = audited(&server, "GenerateDataKey");
    for _ in 0..2 {
        let mut out = Vec::new();
        let options = EncryptOptions {
            context: ec.clone(),
            ..EncryptOptions::default()
        };
        env.encrypt_stream(&mut &b"abc"[..], &mut out, &options)
            .await
            .unwrap();
    }
    assert_eq!(audited(&server, "GenerateDataKey") - base, 2);

    // Signed suites cache the signing key with the data key; messages still verify.
    let env = Envelope::builder(kms.clone())
        .key_id(&arn)
        .algorithm_suite(AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384)
        .cache(CacheLimits::default())
        .build()
        .unwrap();
    let base = audited(&server, "GenerateDataKey");
    let m1 = env.encrypt(b"one", &ec).await.unwrap();
    let m2 = env.encrypt(b"two", &ec).await.unwrap();
    assert_eq!(audited(&server, "GenerateDataKey") - base, 1);
    assert_eq!(env.decrypt(&m1, &ec).await.unwrap().0, b"one");
    assert_eq!(env.decrypt(&m2, &ec).await.unwrap().0, b"two");
}

#[tokio::test]
async fn bucket_keys_cost_one_kms_call_per_bucket_per_lifetime() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let arn = new_key(&kms).await.arn;
    let env = Envelope::builder(kms.clone())
        .key_id(&arn)
        .frame_len(4096)
        .build()
        .unwrap();
    let objects = 1000;
    let mut messages = Vec::new();
    for i in 0..objects {
        let mut out = Vec::new();
        let plain = format!("object number {i}");
        let options = EncryptOptions {
            context: ctx(&[("app", "photos")]),
            plaintext_len: None,
            object: Some(ObjectId {
                bucket: "photos".into(),
                object: format!("img/{i}.jpg"),
            }),
        };
        env.encrypt_stream(&mut plain.as_bytes(), &mut out, &options)
            .await
            .unwrap();
        messages.push((plain, out));
    }
    assert_eq!(
        audited(&server, "GenerateDataKey"),
        1,
        "one bucket key for {objects} objects"
    );
    // A fresh reader (no shared state) unwraps the bucket key once.
    let reader = Envelope::builder(kms.clone()).key_id(&arn).build().unwrap();
    for (i, (plain, msg)) in messages.iter().enumerate() {
        let (out, d) = reader
            .decrypt(msg, &ctx(&[("app", "photos")]))
            .await
            .unwrap();
        assert_eq!(out, plain.as_bytes());
        assert_eq!(
            d.header.context.get("keyhold:object"),
            Some(format!("img/{i}.jpg").as_str())
        );
        assert_eq!(d.header.edks[0].provider_id, BUCKET_PROVIDER_ID);
    }
    assert_eq!(
        audited(&server, "Decrypt"),
        1,
        "one unwrap for {objects} objects"
    );

    // Moving a message to another object id (editing the context) fails.
    let (_, msg) = &messages[5];
    let pos = msg.windows(9).position(|w| w == b"img/5.jpg").unwrap();
    let mut moved = msg.clone();
    moved[pos + 4] = b'6';
    assert!(matches!(
        reader.decrypt(&moved, &EncryptionContext::new()).await,
        Err(Error::InvalidCiphertext)
    ));

    // Another bucket is another key; a short lifetime rotates.
    let short = Envelope::builder(kms.clone())
        .key_id(&arn)
        .bucket_key_lifetime(Duration::from_millis(200))
        .build()
        .unwrap();
    let options = |o: &str| EncryptOptions {
        object: Some(ObjectId {
            bucket: "docs".into(),
            object: o.into(),
        }),
        ..EncryptOptions::default()
    };
    let base = audited(&server, "GenerateDataKey");
    for o in ["a", "b"] {
        short
            .encrypt_stream(&mut &b"x"[..], &mut Vec::new(), &options(o))
            .await
            .unwrap();
    }
    assert_eq!(audited(&server, "GenerateDataKey") - base, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    short
        .encrypt_stream(&mut &b"x"[..], &mut Vec::new(), &options("c"))
        .await
        .unwrap();
    assert_eq!(audited(&server, "GenerateDataKey") - base, 2);
    // The reserved keys cannot be set by the caller in bucket mode.
    let mut clash = options("d");
    clash.context = ctx(&[("keyhold:bucket", "evil")]);
    assert!(matches!(
        short
            .encrypt_stream(&mut &b"x"[..], &mut Vec::new(), &clash)
            .await,
        Err(Error::InvalidInput(_))
    ));
}
