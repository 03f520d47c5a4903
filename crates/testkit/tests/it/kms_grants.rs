//! KMS grants through the real `aws-sdk-kms` client: CreateGrant, ListGrants,
//! ListRetirableGrants, RetireGrant, RevokeGrant, and grants in authorization (across
//! accounts, with encryption-context constraints, grant tokens, explicit denies).

use std::collections::HashMap;

use aws_sdk_kms::Client;
use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{GrantConstraints, GrantOperation as Op};
use keyhold_testkit::{TestServer, new_key};

/// The key owner, a partner account and a third account.
const A: &str = "111122223333";
const B: &str = "444455556666";
const C: &str = "777788889999";
const REGION: &str = "us-east-1";

fn root(account: &str) -> String {
    format!("arn:aws:iam::{account}:root")
}

fn ec(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn equals(pairs: &[(&str, &str)]) -> GrantConstraints {
    GrantConstraints::builder()
        .set_encryption_context_equals(Some(ec(pairs)))
        .build()
}

fn subset(pairs: &[(&str, &str)]) -> GrantConstraints {
    GrantConstraints::builder()
        .set_encryption_context_subset(Some(ec(pairs)))
        .build()
}

struct World {
    server: TestServer,
    a: Client,
    b: Client,
    c: Client,
}

async fn world() -> World {
    let server = TestServer::start().await;
    let (a, b, c) = (
        server.kms_for(A, REGION),
        server.kms_for(B, REGION),
        server.kms_for(C, REGION),
    );
    World { server, a, b, c }
}

/// A new key of `kms`'s account; returns its ARN.
async fn encrypt(kms: &Client, key: &str, context: &[(&str, &str)]) -> Blob {
    kms.encrypt()
        .key_id(key)
        .plaintext(Blob::new(b"secret".to_vec()))
        .set_encryption_context(Some(ec(context)))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap()
}

/// Decrypts; the error code on failure.
async fn decrypt(kms: &Client, blob: &Blob, context: &[(&str, &str)]) -> Result<Vec<u8>, String> {
    kms.decrypt()
        .ciphertext_blob(blob.clone())
        .set_encryption_context(Some(ec(context)))
        .send()
        .await
        .map(|out| out.plaintext.unwrap().into_inner())
        .map_err(|e| e.code().unwrap_or_default().to_owned())
}

/// Creates a grant; (grant id, grant token).
async fn grant(
    kms: &Client,
    key: &str,
    grantee: &str,
    ops: &[Op],
    constraints: Option<GrantConstraints>,
) -> (String, String) {
    let out = kms
        .create_grant()
        .key_id(key)
        .grantee_principal(grantee)
        .set_operations(Some(ops.to_vec()))
        .set_constraints(constraints)
        .send()
        .await
        .unwrap();
    (out.grant_id.unwrap(), out.grant_token.unwrap())
}

#[tokio::test]
async fn create_list_filter_page_and_revoke() {
    let w = world().await;
    let key = new_key(&w.a).await.arn;
    let out =
        w.a.create_grant()
            .key_id(&key)
            .grantee_principal(root(B))
            .retiring_principal(root(C))
            .operations(Op::Decrypt)
            .operations(Op::Encrypt)
            .name("partner")
            .send()
            .await
            .unwrap();
    let id = out.grant_id().unwrap().to_owned();
    assert_eq!(id.len(), 64);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(!out.grant_token().unwrap().is_empty());
    let (second, _) = grant(
        &w.a,
        &key,
        &root(C),
        &[Op::DescribeKey],
        Some(subset(&[("t", "1")])),
    )
    .await;

    let list = w.a.list_grants().key_id(&key).send().await.unwrap();
    assert_eq!(list.grants().len(), 2);
    assert!(!list.truncated());
    let g = list
        .grants()
        .iter()
        .find(|g| g.grant_id() == Some(&id))
        .unwrap();
    assert_eq!(g.key_id(), Some(key.as_str()));
    assert_eq!(g.name(), Some("partner"));
    assert_eq!(g.grantee_principal(), Some(root(B).as_str()));
    assert_eq!(g.retiring_principal(), Some(root(C).as_str()));
    assert_eq!(g.issuing_account(), Some(root(A).as_str()));
    assert_eq!(g.operations(), [Op::Decrypt, Op::Encrypt]);
    assert!(g.constraints().is_none());
    assert!(g.creation_date().is_some());
    let other = list
        .grants()
        .iter()
        .find(|g| g.grant_id() == Some(&second))
        .unwrap();
    assert_eq!(
        other.name(),
        Some(""),
        "an unnamed grant lists an empty name, as AWS's do"
    );
    assert_eq!(
        other
            .constraints()
            .unwrap()
            .encryption_context_subset()
            .unwrap(),
        &ec(&[("t", "1")])
    );

    // Filters, and the key id form of KeyId.
    let key_id = key.rsplit('/').next().unwrap();
    let by_id =
        w.a.list_grants()
            .key_id(key_id)
            .grant_id(&id)
            .send()
            .await
            .unwrap();
    assert_eq!(by_id.grants().len(), 1);
    let by_grantee =
        w.a.list_grants()
            .key_id(&key)
            .grantee_principal(root(C))
            .send()
            .await
            .unwrap();
    assert_eq!(by_grantee.grants()[0].grant_id(), Some(second.as_str()));
    let none =
        w.a.list_grants()
            .key_id(&key)
            .grant_id("0".repeat(64))
            .send()
            .await
            .unwrap();
    assert!(none.grants().is_empty());

    // Pages of one.
    let first =
        w.a.list_grants()
            .key_id(&key)
            .limit(1)
            .send()
            .await
            .unwrap();
    assert_eq!((first.grants().len(), first.truncated()), (1, true));
    let rest =
        w.a.list_grants()
            .key_id(&key)
            .limit(1)
            .marker(first.next_marker().unwrap())
            .send()
            .await
            .unwrap();
    assert_eq!((rest.grants().len(), rest.truncated()), (1, false));
    assert_ne!(first.grants()[0].grant_id(), rest.grants()[0].grant_id());
    let e =
        w.a.list_grants()
            .key_id(&key)
            .marker("bogus")
            .send()
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("InvalidMarkerException"));

    // Revoke, then it is gone; again is NotFound.
    w.a.revoke_grant()
        .key_id(&key)
        .grant_id(&id)
        .send()
        .await
        .unwrap();
    let list = w.a.list_grants().key_id(&key).send().await.unwrap();
    assert_eq!(list.grants().len(), 1);
    let e =
        w.a.revoke_grant()
            .key_id(&key)
            .grant_id(&id)
            .send()
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("NotFoundException"));
    assert_eq!(
        e.message(),
        Some(format!("Grant ID {id} not found").as_str())
    );
    let e =
        w.a.revoke_grant()
            .key_id(&key)
            .grant_id("nope")
            .send()
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("InvalidGrantIdException"));
    let e =
        w.a.list_grants()
            .key_id(&key)
            .grant_id("nope")
            .send()
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("InvalidGrantIdException"));

    // DryRun checks everything and changes nothing.
    let e =
        w.a.revoke_grant()
            .key_id(&key)
            .grant_id(&second)
            .dry_run(true)
            .send()
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("DryRunOperationException"));
    let e =
        w.a.create_grant()
            .key_id(&key)
            .grantee_principal(root(B))
            .operations(Op::Decrypt)
            .dry_run(true)
            .send()
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("DryRunOperationException"));
    assert_eq!(
        w.a.list_grants()
            .key_id(&key)
            .send()
            .await
            .unwrap()
            .grants()
            .len(),
        1
    );

    // Aliases are not key ids here; unknown keys are NotFound; other accounts need the policy.
    w.a.create_alias()
        .alias_name("alias/g")
        .target_key_id(&key)
        .send()
        .await
        .unwrap();
    let e =
        w.a.list_grants()
            .key_id("alias/g")
            .send()
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("InvalidArnException"));
    let e =
        w.a.list_grants()
            .key_id("11111111-2222-3333-4444-555555555555")
            .send()
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("NotFoundException"));
    let e = w.b.list_grants().key_id(&key).send().await.unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));
    let e =
        w.b.revoke_grant()
            .key_id(&key)
            .grant_id(&second)
            .send()
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));
}

#[tokio::test]
async fn a_grant_lets_another_account_decrypt_only_with_the_right_context() {
    let w = world().await;
    let key = new_key(&w.a).await.arn;
    let blob = encrypt(&w.a, &key, &[("app", "billing")]).await;
    let other = encrypt(&w.a, &key, &[("app", "payroll")]).await;
    assert_eq!(
        decrypt(&w.b, &blob, &[("app", "billing")]).await,
        Err("AccessDeniedException".into())
    );

    grant(
        &w.a,
        &key,
        &root(B),
        &[Op::Decrypt],
        Some(equals(&[("app", "billing")])),
    )
    .await;
    assert_eq!(
        decrypt(&w.b, &blob, &[("app", "billing")]).await.unwrap(),
        b"secret"
    );
    // Keys compare case-insensitively in a grant constraint (values do not).
    let upper = encrypt(&w.a, &key, &[("APP", "billing")]).await;
    assert_eq!(
        decrypt(&w.b, &upper, &[("APP", "billing")]).await.unwrap(),
        b"secret"
    );
    for (blob, context) in [
        (&other, vec![("app", "payroll")]),
        (&blob, vec![("app", "billing"), ("extra", "1")]),
        (&blob, vec![]),
    ] {
        assert_eq!(
            decrypt(&w.b, blob, &context).await,
            Err("AccessDeniedException".into()),
            "{context:?}"
        );
    }
    // Only the operations listed: not Encrypt, not DescribeKey.
    let e =
        w.b.encrypt()
            .key_id(&key)
            .plaintext(Blob::new(b"x".to_vec()))
            .set_encryption_context(Some(ec(&[("app", "billing")])))
            .send()
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));
    assert!(
        e.message().unwrap().starts_with(&format!(
            "User: {} is not authorized to perform: kms:Encrypt on resource: {key}",
            root(B)
        )),
        "{e:?}"
    );
    let e = w.b.describe_key().key_id(&key).send().await.unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));
    // A third account gets nothing from B's grant.
    assert_eq!(
        decrypt(&w.c, &blob, &[("app", "billing")]).await,
        Err("AccessDeniedException".into())
    );
}

#[tokio::test]
async fn subset_constraints_and_other_operations() {
    let w = world().await;
    let key = new_key(&w.a).await.arn;
    grant(
        &w.a,
        &key,
        &root(B),
        &[Op::GenerateDataKey, Op::Decrypt, Op::DescribeKey],
        Some(subset(&[("tenant", "a")])),
    )
    .await;
    let dk =
        w.b.generate_data_key()
            .key_id(&key)
            .number_of_bytes(32)
            .set_encryption_context(Some(ec(&[("tenant", "a"), ("file", "x")])))
            .send()
            .await
            .unwrap();
    let blob = dk.ciphertext_blob.unwrap();
    assert_eq!(
        decrypt(&w.b, &blob, &[("TENANT", "a"), ("file", "x")])
            .await
            .unwrap_err(),
        "InvalidCiphertextException",
        "authorized by the grant, then the context must still match the ciphertext's"
    );
    assert_eq!(
        decrypt(&w.b, &blob, &[("tenant", "a"), ("file", "x")])
            .await
            .unwrap()
            .len(),
        32
    );
    for context in [vec![("tenant", "b")], vec![("file", "x")], vec![]] {
        let e =
            w.b.generate_data_key()
                .key_id(&key)
                .number_of_bytes(32)
                .set_encryption_context(Some(ec(&context)))
                .send()
                .await
                .unwrap_err();
        assert_eq!(e.code(), Some("AccessDeniedException"), "{context:?}");
    }
    // The constraint does not apply to DescribeKey.
    let described = w.b.describe_key().key_id(&key).send().await.unwrap();
    assert_eq!(described.key_metadata().unwrap().arn(), Some(key.as_str()));
}

#[tokio::test]
async fn revoked_and_retired_grants_stop_working_at_once() {
    let w = world().await;
    let key = new_key(&w.a).await.arn;
    let blob = encrypt(&w.a, &key, &[]).await;

    let (id, _) = grant(&w.a, &key, &root(B), &[Op::Decrypt], None).await;
    assert!(decrypt(&w.b, &blob, &[]).await.is_ok());
    w.a.revoke_grant()
        .key_id(&key)
        .grant_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        decrypt(&w.b, &blob, &[]).await,
        Err("AccessDeniedException".into())
    );

    // The grantee retires its own grant when the grant allows RetireGrant.
    let (id, token) = grant(&w.a, &key, &root(B), &[Op::Decrypt, Op::RetireGrant], None).await;
    assert!(decrypt(&w.b, &blob, &[]).await.is_ok());
    w.b.retire_grant().grant_token(&token).send().await.unwrap();
    assert_eq!(
        decrypt(&w.b, &blob, &[]).await,
        Err("AccessDeniedException".into())
    );
    let e =
        w.b.retire_grant()
            .grant_token(&token)
            .send()
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("NotFoundException"));
    assert_eq!(
        e.message(),
        Some(format!("Grant ID {id} not found").as_str())
    );

    // By key ARN and grant id.
    let (id, _) = grant(&w.a, &key, &root(B), &[Op::Decrypt, Op::RetireGrant], None).await;
    assert!(decrypt(&w.b, &blob, &[]).await.is_ok());
    w.b.retire_grant()
        .key_id(&key)
        .grant_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        decrypt(&w.b, &blob, &[]).await,
        Err("AccessDeniedException".into())
    );
    assert!(
        w.a.list_grants()
            .key_id(&key)
            .send()
            .await
            .unwrap()
            .grants()
            .is_empty()
    );
}

#[tokio::test]
async fn who_may_retire_a_grant() {
    let w = world().await;
    let key = new_key(&w.a).await.arn;
    let retire = |kms: &Client, id: &str| kms.retire_grant().key_id(&key).grant_id(id).send();

    // A grantee whose grant lacks RetireGrant may not; nor may a stranger.
    let (id, _) = grant(&w.a, &key, &root(B), &[Op::Decrypt], None).await;
    let e = retire(&w.b, &id).await.unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));
    assert!(e.message().unwrap().contains("kms:RetireGrant"), "{e:?}");
    let e = retire(&w.c, &id).await.unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));
    // The account in which the grant was created may.
    retire(&w.a, &id).await.unwrap();

    // The retiring principal may, from another account, without any policy.
    let out =
        w.a.create_grant()
            .key_id(&key)
            .grantee_principal(root(B))
            .retiring_principal(root(C))
            .operations(Op::Decrypt)
            .send()
            .await
            .unwrap();
    let id = out.grant_id.unwrap();
    let listed =
        w.c.list_retirable_grants()
            .retiring_principal(root(C))
            .send()
            .await
            .unwrap();
    assert_eq!(listed.grants().len(), 1);
    assert_eq!(listed.grants()[0].grant_id(), Some(id.as_str()));
    assert_eq!(listed.grants()[0].key_id(), Some(key.as_str()));
    let e =
        w.c.retire_grant()
            .grant_id(&id)
            .dry_run(true)
            .key_id(&key)
            .send()
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("DryRunOperationException"));
    retire(&w.c, &id).await.unwrap();
    assert!(
        w.c.list_retirable_grants()
            .retiring_principal(root(C))
            .send()
            .await
            .unwrap()
            .grants()
            .is_empty()
    );

    // What to retire must be said; tokens must be real.
    let e = w.a.retire_grant().send().await.unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    let e = w.a.retire_grant().grant_id(&id).send().await.unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    let e =
        w.a.retire_grant()
            .grant_token("garbage")
            .send()
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("InvalidGrantTokenException"));
    let (_, token) = grant(&w.a, &key, &root(B), &[Op::Decrypt], None).await;
    let mut forged = token.into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let e =
        w.a.retire_grant()
            .grant_token(String::from_utf8(forged).unwrap())
            .send()
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("InvalidGrantTokenException"));
}

#[tokio::test]
async fn list_retirable_grants_by_region_account_and_page() {
    let w = world().await;
    let key = new_key(&w.a).await.arn;
    let elsewhere = new_key(&w.server.kms_for(A, "eu-west-1")).await.arn;
    let c_key = new_key(&w.c).await.arn;
    let retiring = root(B);
    for (kms, key) in [(&w.a, &key), (&w.a, &key), (&w.c, &c_key)] {
        kms.create_grant()
            .key_id(key)
            .grantee_principal(root(C))
            .retiring_principal(&retiring)
            .operations(Op::Decrypt)
            .send()
            .await
            .unwrap();
    }
    w.server
        .kms_for(A, "eu-west-1")
        .create_grant()
        .key_id(&elsewhere)
        .grantee_principal(root(C))
        .retiring_principal(&retiring)
        .operations(Op::Decrypt)
        .send()
        .await
        .unwrap();

    // Grants on keys of every account, in this region only.
    let all =
        w.b.list_retirable_grants()
            .retiring_principal(&retiring)
            .send()
            .await
            .unwrap();
    assert_eq!(all.grants().len(), 3);
    assert_eq!(
        all.grants()
            .iter()
            .filter(|g| g.key_id() == Some(c_key.as_str()))
            .count(),
        1
    );
    assert_eq!(
        all.grants()
            .iter()
            .filter(|g| g.issuing_account() == Some(root(C).as_str()))
            .count(),
        1
    );
    let page =
        w.b.list_retirable_grants()
            .retiring_principal(&retiring)
            .limit(2)
            .send()
            .await
            .unwrap();
    assert_eq!((page.grants().len(), page.truncated()), (2, true));
    let rest =
        w.b.list_retirable_grants()
            .retiring_principal(&retiring)
            .limit(2)
            .marker(page.next_marker().unwrap())
            .send()
            .await
            .unwrap();
    assert_eq!((rest.grants().len(), rest.truncated()), (1, false));

    // Only principals of the caller's own account.
    let e =
        w.a.list_retirable_grants()
            .retiring_principal(&retiring)
            .send()
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));
    let e =
        w.b.list_retirable_grants()
            .retiring_principal("not-an-arn")
            .send()
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("InvalidArnException"));
}

#[tokio::test]
async fn grant_tokens_are_checked_and_name_only_their_grant() {
    let w = world().await;
    let key = new_key(&w.a).await.arn;
    let key2 = new_key(&w.a).await.arn;
    let blob = encrypt(&w.a, &key, &[]).await;
    let blob2 = encrypt(&w.a, &key2, &[]).await;
    let (_, token) = grant(&w.a, &key, &root(B), &[Op::Decrypt], None).await;

    // A token used at once (grants take effect immediately anyway).
    let out =
        w.b.decrypt()
            .ciphertext_blob(blob.clone())
            .grant_tokens(&token)
            .send()
            .await
            .unwrap();
    assert_eq!(out.plaintext().unwrap().as_ref(), b"secret");
    // A token of another key's grant allows nothing on this one.
    let e =
        w.b.decrypt()
            .ciphertext_blob(blob2)
            .grant_tokens(&token)
            .send()
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));
    // A token does not make its holder the grantee.
    let e =
        w.c.decrypt()
            .ciphertext_blob(blob.clone())
            .grant_tokens(&token)
            .send()
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));
    // Garbage is refused, even for a caller the key policy allows.
    let e =
        w.a.decrypt()
            .ciphertext_blob(blob.clone())
            .grant_tokens("garbage")
            .send()
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("InvalidGrantTokenException"));
    let e =
        w.a.encrypt()
            .key_id(&key)
            .plaintext(Blob::new(b"x".to_vec()))
            .grant_tokens(&token)
            .grant_tokens(format!("{token}x"))
            .send()
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("InvalidGrantTokenException"));
}

#[tokio::test]
async fn name_makes_create_grant_idempotent() {
    let w = world().await;
    let key = new_key(&w.a).await.arn;
    let create = |name: Option<&str>, ops: &[Op]| {
        w.a.create_grant()
            .key_id(&key)
            .grantee_principal(root(B))
            .set_operations(Some(ops.to_vec()))
            .set_name(name.map(str::to_owned))
            .send()
    };
    let first = create(Some("retry-me"), &[Op::Decrypt, Op::Encrypt])
        .await
        .unwrap();
    let again = create(Some("retry-me"), &[Op::Encrypt, Op::Decrypt])
        .await
        .unwrap();
    assert_eq!(
        first.grant_id(),
        again.grant_id(),
        "same name, same grant: same id"
    );
    assert_ne!(
        first.grant_token(),
        again.grant_token(),
        "a new token every time"
    );
    let different = create(Some("retry-me"), &[Op::Decrypt]).await.unwrap();
    assert_ne!(
        different.grant_id(),
        first.grant_id(),
        "same name, other grant: a new grant"
    );
    let unnamed = create(None, &[Op::Decrypt]).await.unwrap();
    let unnamed2 = create(None, &[Op::Decrypt]).await.unwrap();
    assert_ne!(unnamed.grant_id(), unnamed2.grant_id());
    assert_eq!(
        w.a.list_grants()
            .key_id(&key)
            .send()
            .await
            .unwrap()
            .grants()
            .len(),
        4
    );
    // Every token of the grant names it.
    w.a.retire_grant()
        .grant_token(first.grant_token().unwrap())
        .send()
        .await
        .unwrap();
    let e =
        w.a.retire_grant()
            .grant_token(again.grant_token().unwrap())
            .send()
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("NotFoundException"));
}

#[tokio::test]
async fn create_grant_validation() {
    let w = world().await;
    let key = new_key(&w.a).await.arn;
    let base = || w.a.create_grant().key_id(&key).grantee_principal(root(B));
    let code_msg = |e: &dyn ProvideErrorMetadata| {
        (
            e.code().unwrap_or_default().to_owned(),
            e.message().unwrap_or_default().to_owned(),
        )
    };

    let e = base().operations(Op::CreateGrant).send().await.unwrap_err();
    assert_eq!(
        code_msg(&e),
        (
            "ValidationException".into(),
            "Grants must not contain only the CreateGrant operation.".into()
        )
    );
    let e = base()
        .operations(Op::Decrypt)
        .operations(Op::Sign)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    assert!(e.message().unwrap().contains("Sign"), "{e:?}");
    let both = GrantConstraints::builder()
        .encryption_context_equals("a", "1")
        .encryption_context_subset("b", "2")
        .build();
    let e = base()
        .operations(Op::Decrypt)
        .constraints(both)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_msg(&e),
        (
            "ValidationException".into(),
            "More than one constraint supplied".into()
        )
    );
    let nine: Vec<(String, String)> = (0..9).map(|i| (i.to_string(), "v".into())).collect();
    let big = GrantConstraints::builder()
        .set_encryption_context_subset(Some(nine.into_iter().collect()))
        .build();
    let e = base()
        .operations(Op::Decrypt)
        .constraints(big)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    let e = base()
        .set_operations(Some(vec![]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    let e =
        w.a.create_grant()
            .key_id(&key)
            .operations(Op::Decrypt)
            .send()
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    for bad in [
        "bob",
        "arn:aws:iam::123:root",
        "arn:aws:iam::111122223333:group/admins",
    ] {
        let e =
            w.a.create_grant()
                .key_id(&key)
                .grantee_principal(bad)
                .operations(Op::Decrypt)
                .send()
                .await
                .unwrap_err();
        assert_eq!(e.code(), Some("InvalidArnException"), "{bad}");
    }
    let e = base()
        .operations(Op::Decrypt)
        .retiring_principal("nobody")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidArnException"));
    let e =
        w.a.create_grant()
            .key_id(&key)
            .grantee_service_principal("dynamodb.us-east-1.amazonaws.com")
            .operations(Op::Decrypt)
            .send()
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("UnsupportedOperationException"));
    let e = base()
        .operations(Op::Decrypt)
        .grant_tokens("garbage")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidGrantTokenException"));

    // Key states: disabled keys take no new grants; their grants can still be listed.
    w.a.disable_key().key_id(&key).send().await.unwrap();
    let e = base().operations(Op::Decrypt).send().await.unwrap_err();
    assert_eq!(e.code(), Some("DisabledException"));
    assert!(
        w.a.list_grants()
            .key_id(&key)
            .send()
            .await
            .unwrap()
            .grants()
            .is_empty()
    );
}

#[tokio::test]
async fn explicit_deny_in_the_key_policy_beats_a_grant() {
    let w = world().await;
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "owner", "Effect": "Allow", "Principal": {"AWS": root(A)},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "no-partner-decrypt", "Effect": "Deny", "Principal": {"AWS": root(B)},
             "Action": "kms:Decrypt", "Resource": "*"}
        ]
    });
    let key =
        w.a.create_key()
            .policy(policy.to_string())
            .send()
            .await
            .unwrap()
            .key_metadata
            .unwrap()
            .arn
            .unwrap();
    let blob = encrypt(&w.a, &key, &[]).await;
    grant(&w.a, &key, &root(B), &[Op::Decrypt, Op::Encrypt], None).await;
    let e =
        w.b.decrypt()
            .ciphertext_blob(blob)
            .send()
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));
    assert!(
        e.message()
            .unwrap()
            .ends_with("with an explicit deny in a resource-based policy"),
        "{e:?}"
    );
    // What the deny does not cover, the grant still allows.
    w.b.encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_grant_with_create_grant_passes_on_no_more_than_it_has() {
    let w = world().await;
    let key = new_key(&w.a).await.arn;
    grant(
        &w.a,
        &key,
        &root(B),
        &[Op::CreateGrant, Op::Decrypt, Op::GenerateDataKey],
        Some(subset(&[("t", "1")])),
    )
    .await;
    let by_b = |ops: &[Op], constraints: Option<GrantConstraints>| {
        w.b.create_grant()
            .key_id(&key)
            .grantee_principal(root(C))
            .set_operations(Some(ops.to_vec()))
            .set_constraints(constraints)
            .send()
    };
    // Fewer operations, a stricter constraint: allowed.
    by_b(&[Op::Decrypt], Some(subset(&[("t", "1"), ("u", "2")])))
        .await
        .unwrap();
    by_b(&[Op::Decrypt], Some(equals(&[("t", "1")])))
        .await
        .unwrap();
    // More operations, or a looser constraint: refused.
    for (ops, constraints) in [
        (vec![Op::Encrypt], Some(subset(&[("t", "1")]))),
        (vec![Op::Decrypt], None),
        (vec![Op::Decrypt], Some(subset(&[("t", "2")]))),
    ] {
        let e = by_b(&ops, constraints.clone()).await.unwrap_err();
        assert_eq!(
            e.code(),
            Some("AccessDeniedException"),
            "{ops:?} {constraints:?}"
        );
    }
    let blob = encrypt(&w.a, &key, &[("t", "1"), ("u", "2")]).await;
    assert!(
        decrypt(&w.c, &blob, &[("t", "1"), ("u", "2")])
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn grants_are_deleted_with_their_key() {
    let server = TestServer::builder()
        .deletion_sweep_interval(std::time::Duration::from_millis(50))
        .start()
        .await;
    let a = server.kms_for(A, REGION);
    let key = new_key(&a).await.arn;
    let retiring = root(B);
    a.create_grant()
        .key_id(&key)
        .grantee_principal(root(C))
        .retiring_principal(&retiring)
        .operations(Op::Decrypt)
        .send()
        .await
        .unwrap();
    a.schedule_key_deletion()
        .key_id(&key)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    // Pending deletion: grants are still listed, and still revocable.
    assert_eq!(
        a.list_grants()
            .key_id(&key)
            .send()
            .await
            .unwrap()
            .grants()
            .len(),
        1
    );
    server
        .clock()
        .advance(std::time::Duration::from_secs(7 * 86400 + 60));
    let b = server.kms_for(B, REGION);
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if a.describe_key().key_id(&key).send().await.is_err() {
            break;
        }
    }
    let e = a.list_grants().key_id(&key).send().await.unwrap_err();
    assert_eq!(e.code(), Some("NotFoundException"));
    let left = b
        .list_retirable_grants()
        .retiring_principal(&retiring)
        .send()
        .await
        .unwrap();
    assert!(left.grants().is_empty());
}

/// AWS's quota: 50,000 grants per key. The first 49,999 are written straight into the
/// database of a stopped server (50,000 CreateGrant calls would take minutes); the server
/// must load them with the key and count them.
#[tokio::test]
async fn at_most_fifty_thousand_grants_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::builder().data_dir(dir.path()).start().await;
    let key = new_key(&server.kms_for(A, REGION)).await.arn;
    let key_id = key.rsplit('/').next().unwrap().to_owned();
    server.stop().await;

    let mut conn = rusqlite::Connection::open(dir.path().join("keyhold.db")).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO kms_grants (grant_id, key_id, name, grantee_principal, \
                 retiring_principal, operations, constraints, issuing_account, creation_ms) \
                 VALUES (?1, ?2, NULL, ?3, NULL, 'Decrypt', NULL, ?4, 0)",
            )
            .unwrap();
        for i in 0..49_999u32 {
            insert
                .execute(rusqlite::params![format!("{i:064x}"), key_id, root(B), A])
                .unwrap();
        }
    }
    tx.commit().unwrap();
    drop(conn);

    let server = TestServer::builder().data_dir(dir.path()).start().await;
    let a = server.kms_for(A, REGION);
    grant(&a, &key, &root(C), &[Op::Decrypt], None).await;
    let e = a
        .create_grant()
        .key_id(&key)
        .grantee_principal(root(C))
        .operations(Op::Decrypt)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("LimitExceededException"));
    // The loaded grants work: B may decrypt.
    let blob = encrypt(&a, &key, &[]).await;
    assert!(
        decrypt(&server.kms_for(B, REGION), &blob, &[])
            .await
            .is_ok()
    );
    let page = a
        .list_grants()
        .key_id(&key)
        .limit(100)
        .send()
        .await
        .unwrap();
    assert_eq!((page.grants().len(), page.truncated()), (100, true));
}
