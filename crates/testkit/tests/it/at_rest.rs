//! Nothing in the data directory's database files holds plaintext key material: after a
//! workload, the plaintext data keys KMS handed out and the plaintexts it encrypted appear
//! in no file, in any encoding a careless implementation would use.

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use base64::Engine as _;
use keyhold_testkit::TestServer;

#[tokio::test]
async fn database_files_hold_no_plaintext_key_material() {
    let server = TestServer::start().await;
    let kms = server.kms();
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    for i in 0..20 {
        let key = kms
            .create_key()
            .description(format!("k{i}"))
            .send()
            .await
            .unwrap()
            .key_metadata
            .unwrap();
        kms.create_alias()
            .alias_name(format!("alias/k{i}"))
            .target_key_id(key.key_id())
            .send()
            .await
            .unwrap();
        let dk = kms
            .generate_data_key()
            .key_id(key.key_id())
            .key_spec(DataKeySpec::Aes256)
            .send()
            .await
            .unwrap();
        secrets.push(dk.plaintext().unwrap().as_ref().to_vec());
        let plaintext =
            format!("top secret payload number {i:04} with some length to it").into_bytes();
        kms.encrypt()
            .key_id(key.key_id())
            .plaintext(Blob::new(plaintext.clone()))
            .send()
            .await
            .unwrap();
        secrets.push(plaintext);
        kms.schedule_key_deletion()
            .key_id(key.key_id())
            .pending_window_in_days(7)
            .send()
            .await
            .unwrap();
        kms.cancel_key_deletion()
            .key_id(key.key_id())
            .send()
            .await
            .unwrap();
    }
    kms.describe_key()
        .key_id("alias/aws/ssm")
        .send()
        .await
        .unwrap();

    // Every file, the audit trail's included; dev mode's root key file is the one
    // unprotected secret, by design.
    let files = keyhold_testkit::data_files(server.data_dir());
    assert!(
        files
            .iter()
            .any(|(p, _)| p.to_string_lossy().ends_with("keyhold.db"))
    );
    assert!(
        files.iter().map(|(_, b)| b.len()).sum::<usize>() > 10_000,
        "the workload reached the files"
    );
    // Control: the scan does see what is stored in the clear.
    assert!(
        files
            .iter()
            .any(|(_, b)| memchr::memmem::find(b, b"alias/k19").is_some())
    );
    // Every probe is the first 24 bytes of a secret in some encoding; one pass over each
    // file looks every window up in the set.
    const PROBE: usize = 24;
    let mut probes = std::collections::HashSet::new();
    for secret in &secrets {
        for enc in [
            secret.clone(),
            hex::encode(secret).into_bytes(),
            base64::engine::general_purpose::STANDARD
                .encode(secret)
                .into_bytes(),
        ] {
            assert!(enc.len() >= PROBE);
            probes.insert(enc[..PROBE].to_vec());
        }
    }
    for (path, bytes) in &files {
        assert!(
            !bytes.windows(PROBE).any(|w| probes.contains(w)),
            "{} holds a plaintext",
            path.display()
        );
    }
    server.stop().await;
}
