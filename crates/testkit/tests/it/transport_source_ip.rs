//! `aws:SourceIp` is the TCP peer, or, when the peer is a trusted proxy, the right-most
//! untrusted address of `X-Forwarded-For`; an untrusted peer's header is ignored.

use aws_sdk_kms::error::ProvideErrorMetadata;
use keyhold_server::transport::forwarded::TrustedProxies;
use keyhold_testkit::TestServer;
use keyhold_testkit::identity::{put_user_policy, user_with_key};

const FROM_THE_OFFICE: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":"kms:ListKeys","Resource":"*",
   "Condition":{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}]}"#;

/// The user `dev`, allowed ListKeys from 203.0.113.0/24 only.
async fn office_user(server: &TestServer) -> aws_sdk_kms::Client {
    let root = server.iam();
    let creds = user_with_key(&root, "dev").await;
    put_user_policy(&root, "dev", "office", FROM_THE_OFFICE).await;
    server.clients(&creds).kms
}

/// ListKeys with `forwarded` as X-Forwarded-For: allowed?
async fn list_keys_via(kms: &aws_sdk_kms::Client, forwarded: Option<&'static str>) -> bool {
    let mut call = kms.list_keys().customize();
    if let Some(value) = forwarded {
        call = call.mutate_request(move |request| {
            request.headers_mut().insert("x-forwarded-for", value);
        });
    }
    match call.send().await {
        Ok(_) => true,
        Err(e) => {
            assert_eq!(e.code(), Some("AccessDeniedException"), "{e:?}");
            false
        }
    }
}

#[tokio::test]
async fn a_trusted_proxy_forwards_the_client_address() {
    let server = TestServer::builder()
        .configure(|c| {
            c.trusted_proxies = TrustedProxies::parse(&["127.0.0.0/8".into()]).unwrap();
        })
        .start()
        .await;
    let kms = office_user(&server).await;
    // Directly from 127.0.0.1: not the office.
    assert!(!list_keys_via(&kms, None).await);
    // Through the (trusted) proxy on 127.0.0.1 for a client in the office.
    assert!(list_keys_via(&kms, Some("203.0.113.7")).await);
    // The proxy chain: the right-most untrusted address counts.
    assert!(list_keys_via(&kms, Some("198.51.100.9, 203.0.113.7, 127.0.0.2")).await);
    // A client claiming to be in the office, appended to by the proxy: not believed.
    assert!(!list_keys_via(&kms, Some("203.0.113.7, 198.51.100.9")).await);
}

#[tokio::test]
async fn an_untrusted_peer_cannot_claim_an_address() {
    let server = TestServer::start().await;
    let kms = office_user(&server).await;
    assert!(!list_keys_via(&kms, Some("203.0.113.7")).await);
    assert!(!list_keys_via(&kms, None).await);
}
