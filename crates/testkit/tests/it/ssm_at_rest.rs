//! No SecureString value reaches the database files in plaintext: after a workload of
//! SecureStrings (several versions, labels, overwrites, reads), none of their values appears
//! in any file of the data directory, raw, hex or base64.

use aws_sdk_ssm::types::{ParameterTier, ParameterType};
use base64::Engine as _;
use keyhold_testkit::{TestServer, new_key};

const COMMON_PREFIX: &str = "secure string value ";

#[tokio::test]
async fn database_files_hold_no_secure_string_plaintext() {
    let server = TestServer::start().await;
    let ssm = server.ssm();
    let kms = server.kms();
    let cmk = new_key(&kms).await.id;
    let mut secrets: Vec<String> = Vec::new();
    for i in 0..20 {
        let name = format!("/secure/p{i}");
        for v in 0..3 {
            let value = format!("{COMMON_PREFIX}{i:02}-{v} that must never be stored as is");
            ssm.put_parameter()
                .name(&name)
                .value(&value)
                .r#type(ParameterType::SecureString)
                .set_key_id((i % 2 == 0).then(|| cmk.clone()))
                .set_tier((i % 3 == 0).then_some(ParameterTier::Advanced))
                .overwrite(true)
                .send()
                .await
                .unwrap();
            secrets.push(value);
        }
        ssm.label_parameter_version()
            .name(&name)
            .parameter_version(1)
            .labels("first")
            .send()
            .await
            .unwrap();
        let read = ssm
            .get_parameter()
            .name(format!("{name}:first"))
            .with_decryption(true)
            .send()
            .await
            .unwrap();
        assert!(
            read.parameter()
                .unwrap()
                .value()
                .unwrap()
                .contains(&format!("{i:02}-0"))
        );
    }
    let by_path = ssm
        .get_parameters_by_path()
        .path("/secure")
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    assert!(!by_path.parameters().is_empty());

    // Every file, the audit trail's included; dev mode's root key file is the one
    // unprotected secret, by design.
    let files = keyhold_testkit::data_files(server.data_dir());
    assert!(
        files.iter().map(|(_, b)| b.len()).sum::<usize>() > 20_000,
        "the workload reached the files"
    );
    // Every value begins with the same 20 bytes: a plaintext anywhere, raw or encoded from its
    // start, contains the encoding of that prefix (18 bytes are whole base64 groups).
    assert!(secrets.iter().all(|s| s.starts_with(COMMON_PREFIX)));
    let prefix = COMMON_PREFIX.as_bytes();
    let probes = [
        prefix.to_vec(),
        hex::encode(prefix).into_bytes(),
        base64::engine::general_purpose::STANDARD
            .encode(&prefix[..18])
            .into_bytes(),
    ];
    for (path, bytes) in &files {
        for probe in &probes {
            assert!(
                !bytes.windows(probe.len()).any(|w| w == probe.as_slice()),
                "{} holds a SecureString plaintext",
                path.display()
            );
        }
    }
    server.stop().await;
}
