//! IAM users through the real SDK: create, get, list (paths, pages), delete, AWS's errors,
//! and accounts kept apart.

use aws_sdk_iam::error::ProvideErrorMetadata;
use aws_sdk_iam::types::Tag;
use keyhold_testkit::TestServer;
use keyhold_testkit::identity::{access_key, put_user_policy};

const ACCOUNT: &str = "000000000000";

#[tokio::test]
async fn user_lifecycle() {
    let server = TestServer::start().await;
    let iam = server.iam();
    let created = iam
        .create_user()
        .user_name("alice")
        .path("/engineering/")
        .tags(Tag::builder().key("team").value("core").build().unwrap())
        .send()
        .await
        .unwrap()
        .user
        .unwrap();
    assert_eq!(created.user_name(), "alice");
    assert_eq!(created.path(), "/engineering/");
    assert_eq!(
        created.arn(),
        format!("arn:aws:iam::{ACCOUNT}:user/engineering/alice")
    );
    assert!(created.user_id().starts_with("AIDA"));
    assert_eq!(created.user_id().len(), 21);
    assert_eq!(created.tags().len(), 1);

    let got = iam
        .get_user()
        .user_name("alice")
        .send()
        .await
        .unwrap()
        .user
        .unwrap();
    assert_eq!(got.user_id(), created.user_id());
    assert_eq!(got.arn(), created.arn());
    assert_eq!(got.tags()[0].key(), "team");
    // Names ignore case.
    let got = iam.get_user().user_name("ALICE").send().await.unwrap();
    assert_eq!(got.user.unwrap().user_name(), "alice");

    iam.delete_user().user_name("alice").send().await.unwrap();
    let e = iam
        .get_user()
        .user_name("alice")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_no_such_entity_exception());
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "NoSuchEntity".into(),
            "The user with name alice cannot be found.".into()
        )
    );
}

#[tokio::test]
async fn user_errors_are_aws_shaped() {
    let server = TestServer::start().await;
    let iam = server.iam();
    iam.create_user().user_name("bob").send().await.unwrap();

    let e = iam
        .create_user()
        .user_name("Bob")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_entity_already_exists_exception());
    assert_eq!(
        keyhold_testkit::code_and_message(&e),
        (
            "EntityAlreadyExists".into(),
            "User with name Bob already exists.".into()
        )
    );

    let e = iam
        .delete_user()
        .user_name("nobody")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_no_such_entity_exception());

    // A user with access keys or inline policies cannot be deleted.
    let key = access_key(&iam, "bob").await;
    let e = iam
        .delete_user()
        .user_name("bob")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_delete_conflict_exception());
    assert_eq!(
        e.message(),
        Some("Cannot delete entity, must delete access keys first.")
    );
    iam.delete_access_key()
        .user_name("bob")
        .access_key_id(&key.access_key_id)
        .send()
        .await
        .unwrap();
    put_user_policy(
        &iam,
        "bob",
        "p",
        &keyhold_testkit::identity::allow("kms:*", "*"),
    )
    .await;
    let e = iam
        .delete_user()
        .user_name("bob")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_delete_conflict_exception());
    assert_eq!(
        e.message(),
        Some("Cannot delete entity, must delete policies first.")
    );
    iam.delete_user_policy()
        .user_name("bob")
        .policy_name("p")
        .send()
        .await
        .unwrap();
    iam.delete_user().user_name("bob").send().await.unwrap();

    // The model's constraints come first, in AWS's wording.
    let e = iam
        .create_user()
        .user_name("bad name!")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationError"));
    assert!(
        e.message().unwrap().contains(
            "failed to satisfy constraint: Member must satisfy regular expression pattern"
        ),
        "{:?}",
        e.message()
    );

    let e = iam
        .create_user()
        .user_name("tagged")
        .tags(Tag::builder().key("Team").value("a").build().unwrap())
        .tags(Tag::builder().key("team").value("b").build().unwrap())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_invalid_input_exception());

    let e = iam
        .create_user()
        .user_name("bounded")
        .permissions_boundary("arn:aws:iam::000000000000:policy/boundary")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_no_such_entity_exception());
}

#[tokio::test]
async fn list_users_filters_by_path_and_pages() {
    let server = TestServer::start().await;
    let iam = server.iam();
    for i in 0..7 {
        let path = if i % 2 == 0 { "/even/" } else { "/odd/" };
        iam.create_user()
            .user_name(format!("user{i}"))
            .path(path)
            .send()
            .await
            .unwrap();
    }
    let all = iam.list_users().send().await.unwrap();
    assert!(!all.is_truncated());
    let names: Vec<&str> = all.users().iter().map(|u| u.user_name()).collect();
    assert_eq!(
        names,
        [
            "user0", "user1", "user2", "user3", "user4", "user5", "user6"
        ]
    );
    assert!(
        all.users().iter().all(|u| u.tags().is_empty()),
        "ListUsers omits tags"
    );

    let even = iam.list_users().path_prefix("/even/").send().await.unwrap();
    assert_eq!(even.users().len(), 4);

    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = iam
            .list_users()
            .max_items(3)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap();
        assert!(page.users().len() <= 3);
        seen.extend(page.users().iter().map(|u| u.user_name().to_owned()));
        if !page.is_truncated() {
            assert!(page.marker().is_none());
            break;
        }
        marker = page.marker().map(str::to_owned);
    }
    assert_eq!(seen.len(), 7);

    // The SDK's paginator drives the same markers.
    let pages: Vec<_> = iam
        .list_users()
        .max_items(2)
        .into_paginator()
        .send()
        .collect::<Vec<_>>()
        .await;
    assert_eq!(pages.len(), 4);
}

#[tokio::test]
async fn accounts_are_separate() {
    let server = TestServer::start().await;
    let a = server.iam_for("111111111111");
    let b = server.iam_for("222222222222");
    a.create_user().user_name("same").send().await.unwrap();
    b.create_user().user_name("same").send().await.unwrap();
    let ua = a
        .get_user()
        .user_name("same")
        .send()
        .await
        .unwrap()
        .user
        .unwrap();
    let ub = b
        .get_user()
        .user_name("same")
        .send()
        .await
        .unwrap()
        .user
        .unwrap();
    assert_ne!(ua.user_id(), ub.user_id());
    assert_eq!(ua.arn(), "arn:aws:iam::111111111111:user/same");
    assert_eq!(ub.arn(), "arn:aws:iam::222222222222:user/same");
    a.delete_user().user_name("same").send().await.unwrap();
    assert_eq!(b.list_users().send().await.unwrap().users().len(), 1);
    assert!(a.list_users().send().await.unwrap().users().is_empty());
}

#[tokio::test]
async fn get_user_without_a_name_is_the_caller() {
    let server = TestServer::start().await;
    let iam = server.iam();
    // The root user.
    let root = iam.get_user().send().await.unwrap().user.unwrap();
    assert_eq!(root.arn(), format!("arn:aws:iam::{ACCOUNT}:root"));
    assert_eq!(root.user_id(), ACCOUNT);

    // An IAM user, through its own key.
    let creds = keyhold_testkit::identity::user_with_key(&iam, "carol").await;
    put_user_policy(
        &iam,
        "carol",
        "self",
        &keyhold_testkit::identity::allow("iam:GetUser", "*"),
    )
    .await;
    let carol = server.clients(&creds).iam;
    let me = carol.get_user().send().await.unwrap().user.unwrap();
    assert_eq!(me.user_name(), "carol");
    assert_eq!(me.arn(), format!("arn:aws:iam::{ACCOUNT}:user/carol"));
}

#[tokio::test]
async fn iam_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::builder().data_dir(dir.path()).start().await;
    let iam = server.iam();
    let creds = keyhold_testkit::identity::user_with_key(&iam, "dave").await;
    put_user_policy(
        &iam,
        "dave",
        "p",
        &keyhold_testkit::identity::allow("sts:*", "*"),
    )
    .await;
    server.stop().await;

    let server = TestServer::builder().data_dir(dir.path()).start().await;
    let listed = server.iam().list_users().send().await.unwrap();
    assert_eq!(listed.users().len(), 1);
    let me = server
        .clients(&creds)
        .sts
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(me.arn(), Some("arn:aws:iam::000000000000:user/dave"));
    server.stop().await;
}
