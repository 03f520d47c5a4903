//! No secret access key, session secret or session token IAM and STS handed out appears in
//! the data directory's files, in any encoding a careless implementation would use.

use base64::Engine as _;
use keyhold_testkit::TestServer;
use keyhold_testkit::identity::{
    access_key, allow, put_user_policy, session, trust, user_with_key,
};

#[tokio::test]
async fn database_files_hold_no_credential_secrets() {
    let server = TestServer::start().await;
    let iam = server.iam_for("111122223333");
    let mut secrets: Vec<String> = Vec::new();
    for i in 0..5 {
        let name = format!("user{i}");
        let creds = user_with_key(&iam, &name).await;
        secrets.push(creds.secret_access_key.clone());
        secrets.push(access_key(&iam, &name).await.secret_access_key);
        put_user_policy(&iam, &name, "p", &allow("sts:*", "*")).await;
        let arn = format!("arn:aws:iam::111122223333:user/{name}");
        iam.create_role()
            .role_name(format!("role{i}"))
            .assume_role_policy_document(trust(&arn))
            .send()
            .await
            .unwrap();
        let sts = server.clients(&creds).sts;
        let assumed = sts
            .assume_role()
            .role_arn(format!("arn:aws:iam::111122223333:role/role{i}"))
            .role_session_name("scan")
            .send()
            .await
            .unwrap();
        let temporary = session(assumed.credentials().unwrap());
        secrets.push(temporary.secret_access_key.clone());
        secrets.push(temporary.session_token.clone().unwrap());
        let token = sts.get_session_token().send().await.unwrap();
        let temporary = session(token.credentials().unwrap());
        secrets.push(temporary.secret_access_key);
        secrets.push(temporary.session_token.unwrap());
        // The credentials are in use, so they are in the server's memory, not just issued.
        server
            .clients(&session(assumed.credentials().unwrap()))
            .sts
            .get_caller_identity()
            .send()
            .await
            .unwrap();
    }

    // Every file, the audit trail's included; dev mode's root key file is the one
    // unprotected secret, by design.
    let files = keyhold_testkit::data_files(server.data_dir());
    // Control: the scan sees what is stored in the clear.
    assert!(files.iter().any(|(_, b)| {
        memchr::memmem::find(b, b"arn:aws:iam::111122223333:user/user4").is_some()
            || memchr::memmem::find(b, b"user4").is_some()
    }));
    const PROBE: usize = 24;
    let mut probes = std::collections::HashSet::new();
    for secret in &secrets {
        let raw = secret.as_bytes().to_vec();
        for enc in [
            raw.clone(),
            hex::encode(&raw).into_bytes(),
            base64::engine::general_purpose::STANDARD
                .encode(&raw)
                .into_bytes(),
        ] {
            assert!(enc.len() >= PROBE);
            probes.insert(enc[..PROBE].to_vec());
        }
    }
    for (path, bytes) in &files {
        assert!(
            !bytes.windows(PROBE).any(|w| probes.contains(w)),
            "{} holds a credential secret",
            path.display()
        );
    }
    server.stop().await;
}
