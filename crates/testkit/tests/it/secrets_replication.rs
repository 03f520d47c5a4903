//! Replication: replicas in other Regions of the same Keyhold (each under its own Region's
//! KMS key), kept in step with the primary, read-only until promoted; and cross-account
//! replicas, whose operations the pinned SDK does not have yet (raw requests, dev mode
//! choosing the account from the credential scope).

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::types::{ReplicaRegionType, StatusType};
use keyhold_testkit::TestServer;
use keyhold_testkit::raw::{self, RawResponse};

fn err<E: ProvideErrorMetadata, R>(
    e: aws_sdk_secretsmanager::error::SdkError<E, R>,
) -> (String, String) {
    (
        e.code().unwrap_or_default().to_owned(),
        e.message().unwrap_or_default().to_owned(),
    )
}

fn region(name: &str) -> ReplicaRegionType {
    ReplicaRegionType::builder().region(name).build()
}

#[tokio::test]
async fn regional_replicas_follow_their_primary() {
    let server = TestServer::start().await;
    let east = server.secrets_manager();
    let west = server.secrets_manager_for("000000000000", "eu-west-1");
    let oregon = server.secrets_manager_for("000000000000", "us-west-2");

    let created = east
        .create_secret()
        .name("multi")
        .secret_string("v1")
        .add_replica_regions(region("eu-west-1"))
        .send()
        .await
        .unwrap();
    let status = &created.replication_status()[0];
    assert_eq!(status.region(), Some("eu-west-1"));
    assert_eq!(status.status(), Some(&StatusType::InSync));
    assert_eq!(status.kms_key_id(), Some("alias/aws/secretsmanager"));
    let primary_arn = created.arn().unwrap().to_owned();
    let replica_arn = primary_arn.replace("us-east-1", "eu-west-1");

    let got = west
        .get_secret_value()
        .secret_id("multi")
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_string(), Some("v1"));
    assert_eq!(got.arn(), Some(replica_arn.as_str()));
    assert_eq!(got.version_id(), created.version_id());
    let d = west
        .describe_secret()
        .secret_id(&replica_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(d.primary_region(), Some("us-east-1"));
    let d = east
        .describe_secret()
        .secret_id("multi")
        .send()
        .await
        .unwrap();
    assert_eq!(d.primary_region(), Some("us-east-1"));
    assert_eq!(d.replication_status().len(), 1);

    // Changes to the primary reach the replica; the replica refuses changes.
    east.put_secret_value()
        .secret_id("multi")
        .secret_string("v2")
        .send()
        .await
        .unwrap();
    east.update_secret()
        .secret_id("multi")
        .description("replicated")
        .send()
        .await
        .unwrap();
    let got = west
        .get_secret_value()
        .secret_id("multi")
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_string(), Some("v2"));
    let d = west
        .describe_secret()
        .secret_id("multi")
        .send()
        .await
        .unwrap();
    assert_eq!(d.description(), Some("replicated"));
    assert_eq!(d.version_ids_to_stages().unwrap().len(), 2);
    let e = west
        .put_secret_value()
        .secret_id("multi")
        .secret_string("no")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err(e),
        (
            "InvalidRequestException".into(),
            "Operation not permitted on a replica secret. Call must be made in primary secret's \
             region."
                .into()
        )
    );

    // A name already taken in the Region fails, unless overwriting is asked for.
    oregon
        .create_secret()
        .name("multi")
        .secret_string("local")
        .send()
        .await
        .unwrap();
    let r = east
        .replicate_secret_to_regions()
        .secret_id("multi")
        .add_replica_regions(region("us-west-2"))
        .send()
        .await
        .unwrap();
    let failed = r
        .replication_status()
        .iter()
        .find(|s| s.region() == Some("us-west-2"))
        .unwrap();
    assert_eq!(failed.status(), Some(&StatusType::Failed));
    assert_eq!(
        oregon
            .get_secret_value()
            .secret_id("multi")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("local")
    );
    east.remove_regions_from_replication()
        .secret_id("multi")
        .remove_replica_regions("us-west-2")
        .send()
        .await
        .unwrap();
    east.replicate_secret_to_regions()
        .secret_id("multi")
        .add_replica_regions(region("us-west-2"))
        .force_overwrite_replica_secret(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        oregon
            .get_secret_value()
            .secret_id("multi")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("v2")
    );

    // The primary's own Region; a name that is no Region (the model's pattern).
    for (bad, code) in [
        ("us-east-1", "InvalidParameterException"),
        ("nowhere", "ValidationException"),
    ] {
        let e = east
            .replicate_secret_to_regions()
            .secret_id("multi")
            .add_replica_regions(region(bad))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err(e).0, code, "{bad}");
    }
    let e = east
        .delete_secret()
        .secret_id("multi")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "InvalidParameterException");

    // Removing a Region deletes its replica at once.
    let r = east
        .remove_regions_from_replication()
        .secret_id("multi")
        .remove_replica_regions("us-west-2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.replication_status().len(), 1);
    assert!(
        oregon
            .describe_secret()
            .secret_id("multi")
            .send()
            .await
            .is_err()
    );

    // Promotion, called in the replica's Region.
    let e = east
        .stop_replication_to_replica()
        .secret_id("multi")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "InvalidRequestException");
    let stopped = west
        .stop_replication_to_replica()
        .secret_id(&replica_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(stopped.arn(), Some(replica_arn.as_str()));
    west.put_secret_value()
        .secret_id("multi")
        .secret_string("mine now")
        .send()
        .await
        .unwrap();
    let d = east
        .describe_secret()
        .secret_id("multi")
        .send()
        .await
        .unwrap();
    assert!(d.replication_status().is_empty());
    east.delete_secret()
        .secret_id("multi")
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        west.get_secret_value()
            .secret_id("multi")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("mine now")
    );
}

/// A raw JSON request as `account` (dev mode takes the account from the credential scope).
async fn as_account(server: &TestServer, account: &str, target: &str, body: &str) -> RawResponse {
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={account}/20250101/us-east-1/secretsmanager/aws4_request, \
         SignedHeaders=host, Signature=00"
    );
    raw::post(
        server.addr(),
        &[
            ("X-Amz-Target", &format!("secretsmanager.{target}")),
            ("Content-Type", "application/x-amz-json-1.1"),
            ("Authorization", &auth),
        ],
        body.as_bytes(),
    )
    .await
}

/// DescribeSecret as `account`, as JSON (the pinned SDK lacks the cross-account members).
async fn describe(server: &TestServer, account: &str, id: &str) -> serde_json::Value {
    as_account(
        server,
        account,
        "DescribeSecret",
        &format!(r#"{{"SecretId":"{id}"}}"#),
    )
    .await
    .json()
}

const A: &str = "000000000000";
const B: &str = "111122223333";

#[tokio::test]
async fn cross_account_replicas() {
    let server = TestServer::start().await;
    let a = server.secrets_manager();
    let b = server.secrets_manager_for(B, "us-east-1");
    let primary = a
        .create_secret()
        .name("primary")
        .secret_string("v1")
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();

    // B's keys: one that A may use, one that it may not.
    let kms_b = server.kms_for(B, "us-east-1");
    let open_policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
          {{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{B}:root"}},"Action":"kms:*","Resource":"*"}},
          {{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{A}:root"}},"Action":["kms:GenerateDataKey","kms:Encrypt"],"Resource":"*"}}]}}"#
    );
    let open_key = kms_b
        .create_key()
        .policy(open_policy)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let closed_key = kms_b
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();

    let create = |name: &str, key: &str| {
        format!(r#"{{"Name":"{name}","KmsKeyId":"{key}","CrossAccountPrimaryARN":"{primary}"}}"#)
    };
    // A replica takes no value, and needs a customer managed key.
    let r = as_account(
        &server,
        B,
        "CreateSecret",
        &format!(
            r#"{{"Name":"x","CrossAccountPrimaryARN":"{primary}","SecretString":"v","ClientRequestToken":"dddddddd-0000-0000-0000-000000000001"}}"#
        ),
    )
    .await;
    assert_eq!(r.json()["__type"], "InvalidParameterException");
    let r = as_account(
        &server,
        B,
        "CreateSecret",
        &format!(r#"{{"Name":"x","CrossAccountPrimaryARN":"{primary}"}}"#),
    )
    .await;
    assert_eq!(r.json()["__type"], "InvalidParameterException");

    let r = as_account(
        &server,
        B,
        "CreateSecret",
        &create("closed", closed_key.key_id()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    let closed_arn = r.json()["ARN"].as_str().unwrap().to_owned();
    let r = as_account(
        &server,
        B,
        "CreateSecret",
        &create("replica", open_key.key_id()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    let replica = r.json()["ARN"].as_str().unwrap().to_owned();
    let d = describe(&server, B, &replica).await;
    assert_eq!(d["CrossAccountPrimary"]["ReplicationStatus"], "Pending");
    assert_eq!(d["KmsKeyId"], open_key.arn().unwrap());

    // Associating with a replica whose key refuses A fails whole.
    let r = as_account(
        &server,
        A,
        "AssociateCrossAccountReplica",
        &format!(r#"{{"SecretId":"primary","CrossAccountReplicaARN":"{closed_arn}"}}"#),
    )
    .await;
    assert_eq!(
        r.json()["__type"],
        "AccessDeniedException",
        "{}",
        r.body_text()
    );
    let d = describe(&server, A, "primary").await;
    assert!(d.get("CrossAccountReplicas").is_none());

    let r = as_account(
        &server,
        A,
        "AssociateCrossAccountReplica",
        &format!(r#"{{"SecretId":"primary","CrossAccountReplicaARN":"{replica}"}}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.json()["ReplicationStatus"], "InSync");
    assert_eq!(
        b.get_secret_value()
            .secret_id("replica")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("v1")
    );
    // One cross-account replica per primary.
    let r = as_account(
        &server,
        A,
        "AssociateCrossAccountReplica",
        &format!(r#"{{"SecretId":"primary","CrossAccountReplicaARN":"{closed_arn}"}}"#),
    )
    .await;
    assert_eq!(r.json()["__type"], "LimitExceededException");

    // New values of the primary reach the replica.
    a.put_secret_value()
        .secret_id("primary")
        .secret_string("v2")
        .send()
        .await
        .unwrap();
    assert_eq!(
        b.get_secret_value()
            .secret_id("replica")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("v2")
    );
    let d = describe(&server, A, "primary").await;
    let link = &d["CrossAccountReplicas"][0];
    assert_eq!(link["ReplicaSecretARN"], replica.as_str());
    assert_eq!(link["ReplicationStatus"], "InSync");
    let e = a
        .delete_secret()
        .secret_id("primary")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "InvalidParameterException");

    // Disassociation detaches the replica; StopReplicationToReplica makes it standalone.
    let r = as_account(
        &server,
        A,
        "DisassociateCrossAccountReplica",
        &format!(r#"{{"SecretId":"primary","CrossAccountReplicaARN":"{replica}"}}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    let d = describe(&server, B, "replica").await;
    assert_eq!(d["CrossAccountPrimary"]["ReplicationStatus"], "Detached");
    a.put_secret_value()
        .secret_id("primary")
        .secret_string("v3")
        .send()
        .await
        .unwrap();
    assert_eq!(
        b.get_secret_value()
            .secret_id("replica")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("v2")
    );
    b.stop_replication_to_replica()
        .secret_id("replica")
        .send()
        .await
        .unwrap();
    let d = describe(&server, B, "replica").await;
    assert!(d.get("CrossAccountPrimary").is_none());
    let r = as_account(
        &server,
        A,
        "DisassociateCrossAccountReplica",
        &format!(r#"{{"SecretId":"primary","CrossAccountReplicaARN":"{replica}"}}"#),
    )
    .await;
    assert_eq!(r.json()["__type"], "InvalidRequestException");
    a.delete_secret()
        .secret_id("primary")
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
}
