//! IAM and STS helpers for tests: users with access keys, policies, assumed-role
//! credentials.

use crate::Creds;

/// A policy document allowing `action` on `resource`.
pub fn allow(action: &str, resource: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"{action}","Resource":"{resource}"}}]}}"#
    )
}

/// A policy document denying `action` on `resource`.
pub fn deny(action: &str, resource: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Action":"{action}","Resource":"{resource}"}}]}}"#
    )
}

/// A trust policy letting `principal` (an ARN or account) assume the role.
pub fn trust(principal: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{principal}"}},"Action":"sts:AssumeRole"}}]}}"#
    )
}

/// Creates user `name` with an access key; returns the key's credentials.
pub async fn user_with_key(iam: &aws_sdk_iam::Client, name: &str) -> Creds {
    iam.create_user()
        .user_name(name)
        .send()
        .await
        .expect("CreateUser");
    access_key(iam, name).await
}

/// Creates an access key for user `name`.
pub async fn access_key(iam: &aws_sdk_iam::Client, name: &str) -> Creds {
    let key = iam
        .create_access_key()
        .user_name(name)
        .send()
        .await
        .expect("CreateAccessKey")
        .access_key
        .expect("an access key");
    Creds::new(key.access_key_id(), key.secret_access_key())
}

/// Puts an inline policy on user `name`.
pub async fn put_user_policy(iam: &aws_sdk_iam::Client, user: &str, name: &str, document: &str) {
    iam.put_user_policy()
        .user_name(user)
        .policy_name(name)
        .policy_document(document)
        .send()
        .await
        .expect("PutUserPolicy");
}

/// Temporary credentials as STS returned them.
pub fn session(credentials: &aws_sdk_sts::types::Credentials) -> Creds {
    Creds {
        access_key_id: credentials.access_key_id().to_owned(),
        secret_access_key: credentials.secret_access_key().to_owned(),
        session_token: Some(credentials.session_token().to_owned()),
    }
}

/// Percent-decodes a policy document as IAM returns it.
pub fn url_decode(encoded: &str) -> String {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(hex)) => {
                let hex = std::str::from_utf8(hex).expect("ASCII escape");
                out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("UTF-8 document")
}
