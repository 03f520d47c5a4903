//! The store never holds a secret value: after a Secrets Manager workload (strings and
//! binaries, new versions, label moves, a key change, replicas, deletions), no known value
//! appears in any database file, in any encoding a careless implementation would use.

use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::ReplicaRegionType;
use base64::Engine as _;
use keyhold_testkit::TestServer;

#[tokio::test]
async fn database_files_hold_no_secret_value() {
    let server = TestServer::start().await;
    let sm = server.secrets_manager();
    let kms = server.kms();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let mut values: Vec<Vec<u8>> = Vec::new();
    for i in 0..15 {
        let name = format!("app/{i}/db");
        let first = format!(r#"{{"user":"app{i}","pass":"hunter2-first-value-{i:04}"}}"#);
        let mut create = sm
            .create_secret()
            .name(&name)
            .description(format!("visible description of secret {i:04}"))
            .secret_string(&first);
        if i % 3 == 0 {
            create = create.kms_key_id(key.key_id());
        }
        if i % 5 == 0 {
            create = create
                .add_replica_regions(ReplicaRegionType::builder().region("eu-west-1").build());
        }
        create.send().await.unwrap();
        values.push(first.into_bytes());

        let second = format!("second value of secret number {i:04}, long enough to spot");
        sm.put_secret_value()
            .secret_id(&name)
            .secret_string(&second)
            .version_stages("AWSPENDING")
            .send()
            .await
            .unwrap();
        values.push(second.into_bytes());

        let binary: Vec<u8> = (0..64u8)
            .map(|b| b.wrapping_mul(7).wrapping_add(i))
            .collect();
        sm.update_secret()
            .secret_id(&name)
            .secret_binary(Blob::new(binary.clone()))
            .send()
            .await
            .unwrap();
        values.push(binary);

        if i % 4 == 0 {
            sm.update_secret()
                .secret_id(&name)
                .kms_key_id(key.arn().unwrap())
                .send()
                .await
                .unwrap();
        }
        // Every value reads back (so the workload really stored them).
        sm.get_secret_value().secret_id(&name).send().await.unwrap();
        if i % 7 == 1 {
            sm.delete_secret().secret_id(&name).send().await.unwrap();
        }
    }
    let password = sm.get_random_password().send().await.unwrap();
    values.push(password.random_password().unwrap().as_bytes().to_vec());

    // Every file, the audit trail's included; dev mode's root key file is the one
    // unprotected secret, by design.
    let files = keyhold_testkit::data_files(server.data_dir());
    assert!(
        files.iter().map(|(_, b)| b.len()).sum::<usize>() > 20_000,
        "the workload reached the files"
    );
    // Every probe is the first 24 bytes of an encoding (all values are longer): index each
    // file's 24-byte windows once.
    const PROBE: usize = 24;
    let indexed: Vec<(&std::path::Path, std::collections::HashSet<&[u8]>)> = files
        .iter()
        .map(|(path, bytes)| (path.as_path(), bytes.windows(PROBE).collect()))
        .collect();
    // Control: metadata is stored in clear, and the scan sees it.
    let control = b"visible description of secret 0003";
    assert!(
        indexed.iter().any(|(_, w)| w.contains(&control[..PROBE])),
        "the scan finds what is stored in clear"
    );
    for value in &values {
        let encodings = [
            value.clone(),
            hex::encode(value).into_bytes(),
            base64::engine::general_purpose::STANDARD
                .encode(value)
                .into_bytes(),
        ];
        for enc in &encodings {
            assert!(enc.len() >= PROBE, "values are long enough to probe");
            let probe = &enc[..PROBE];
            for (path, windows) in &indexed {
                assert!(
                    !windows.contains(probe),
                    "{} holds a secret value",
                    path.display()
                );
            }
        }
    }
    server.stop().await;
}
