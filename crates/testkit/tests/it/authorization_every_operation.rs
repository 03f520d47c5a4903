//! Every supported operation of every service, called by a principal with no permission
//! (refused: the operation makes its declared check), and by one whose policy allows
//! everything but denies the operation's action explicitly (refused: the explicit deny
//! wins). The only operations any authenticated caller may call are the ones AWS lets any
//! caller call (`GetCallerIdentity`, `GetSessionToken`).
//!
//! The requests are valid and name existing resources, so the only reason left to refuse
//! them is authorization. The table below must name every supported operation: a test
//! checks it against the server's own list, so a new operation cannot be served untested.

use std::collections::BTreeSet;

use keyhold_server::access::{Declaration, declaration};
use keyhold_server::compat;
use keyhold_testkit::identity::{allow, put_user_policy, user_with_key};
use keyhold_testkit::raw::{RawResponse, signed_post};
use keyhold_testkit::{Creds, TestServer, new_key};

const ACCOUNT: &str = "000000000000";

/// What the administrator made for the calls to name.
struct World {
    key: String,
    /// An ECC_NIST_P256 SIGN_VERIFY key, an HMAC_256 key, an ECC_NIST_P256 KEY_AGREEMENT
    /// key (and its public key, base64), and an ML_KEM_768 key (and a ciphertext, base64).
    sign_key: String,
    mac_key: String,
    agreement_key: String,
    agreement_public: String,
    kem_key: String,
    kem_ciphertext: String,
    ciphertext: String,
    grant: String,
    secret_version: String,
    access_key: String,
    key_policy: String,
}

/// One operation's request: service (signing name), wire target, body.
struct Call {
    operation: &'static str,
    service: &'static str,
    body: String,
}

fn json(operation: &'static str, service: &'static str, body: String) -> Call {
    Call {
        operation,
        service,
        body,
    }
}

fn calls(w: &World) -> Vec<Call> {
    let k = &w.key;
    let ct = &w.ciphertext;
    let (sk, mk, ak, ap) = (
        &w.sign_key,
        &w.mac_key,
        &w.agreement_key,
        &w.agreement_public,
    );
    let (kk, kc) = (&w.kem_key, &w.kem_ciphertext);
    let grant = &w.grant;
    let user = format!("arn:aws:iam::{ACCOUNT}:user/victim");
    let policy = serde_json::to_string(&w.key_policy).unwrap();
    let resource_policy = serde_json::to_string(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:root"}},"Action":"secretsmanager:GetSecretValue","Resource":"*"}}]}}"#
    ))
    .unwrap();
    let version = &w.secret_version;
    let access_key = &w.access_key;
    let trust = urlencode(&keyhold_testkit::identity::trust(&format!(
        "arn:aws:iam::{ACCOUNT}:root"
    )));
    let doc = urlencode(&allow("s3:GetObject", "*"));
    let iam = |operation: &'static str, params: &str| Call {
        operation,
        service: "iam",
        body: format!("Action={operation}&Version=2010-05-08{params}"),
    };
    let sts = |operation: &'static str, params: &str| Call {
        operation,
        service: "sts",
        body: format!("Action={operation}&Version=2011-06-15{params}"),
    };
    let kms = |operation: &'static str, body: String| json(operation, "kms", body);
    let sm = |operation: &'static str, body: String| json(operation, "secretsmanager", body);
    let ssm = |operation: &'static str, body: String| json(operation, "ssm", body);
    let secret = r#"{"SecretId":"s1"}"#.to_owned();
    vec![
        // KMS
        kms("CreateKey", "{}".into()),
        kms("DescribeKey", format!(r#"{{"KeyId":"{k}"}}"#)),
        kms("ListKeys", "{}".into()),
        kms("EnableKey", format!(r#"{{"KeyId":"{k}"}}"#)),
        kms("DisableKey", format!(r#"{{"KeyId":"{k}"}}"#)),
        kms(
            "ScheduleKeyDeletion",
            format!(r#"{{"KeyId":"{k}","PendingWindowInDays":7}}"#),
        ),
        kms("CancelKeyDeletion", format!(r#"{{"KeyId":"{k}"}}"#)),
        kms(
            "UpdateKeyDescription",
            format!(r#"{{"KeyId":"{k}","Description":"x"}}"#),
        ),
        kms(
            "CreateAlias",
            format!(r#"{{"AliasName":"alias/new","TargetKeyId":"{k}"}}"#),
        ),
        kms(
            "UpdateAlias",
            format!(r#"{{"AliasName":"alias/a","TargetKeyId":"{k}"}}"#),
        ),
        kms("DeleteAlias", r#"{"AliasName":"alias/a"}"#.into()),
        kms("ListAliases", "{}".into()),
        kms("Encrypt", format!(r#"{{"KeyId":"{k}","Plaintext":"eA=="}}"#)),
        kms("Decrypt", format!(r#"{{"CiphertextBlob":"{ct}"}}"#)),
        kms(
            "ReEncrypt",
            format!(r#"{{"CiphertextBlob":"{ct}","DestinationKeyId":"{k}"}}"#),
        ),
        kms(
            "GenerateDataKey",
            format!(r#"{{"KeyId":"{k}","KeySpec":"AES_256"}}"#),
        ),
        kms(
            "GenerateDataKeyWithoutPlaintext",
            format!(r#"{{"KeyId":"{k}","KeySpec":"AES_256"}}"#),
        ),
        kms("GenerateRandom", r#"{"NumberOfBytes":16}"#.into()),
        kms(
            "CreateCustomKeyStore",
            r#"{"CustomKeyStoreName":"s","CloudHsmClusterId":"cluster-234567abcdefg"}"#.into(),
        ),
        kms(
            "ConnectCustomKeyStore",
            r#"{"CustomKeyStoreId":"cks-1234567890abcdef0"}"#.into(),
        ),
        kms(
            "DisconnectCustomKeyStore",
            r#"{"CustomKeyStoreId":"cks-1234567890abcdef0"}"#.into(),
        ),
        kms("DescribeCustomKeyStores", "{}".into()),
        kms(
            "UpdateCustomKeyStore",
            r#"{"CustomKeyStoreId":"cks-1234567890abcdef0","NewCustomKeyStoreName":"t"}"#.into(),
        ),
        kms(
            "DeleteCustomKeyStore",
            r#"{"CustomKeyStoreId":"cks-1234567890abcdef0"}"#.into(),
        ),
        kms(
            "TagResource",
            format!(r#"{{"KeyId":"{k}","Tags":[{{"TagKey":"a","TagValue":"b"}}]}}"#),
        ),
        kms(
            "UntagResource",
            format!(r#"{{"KeyId":"{k}","TagKeys":["a"]}}"#),
        ),
        kms("ListResourceTags", format!(r#"{{"KeyId":"{k}"}}"#)),
        kms(
            "GetKeyPolicy",
            format!(r#"{{"KeyId":"{k}","PolicyName":"default"}}"#),
        ),
        kms(
            "PutKeyPolicy",
            format!(r#"{{"KeyId":"{k}","PolicyName":"default","Policy":{policy}}}"#),
        ),
        kms("ListKeyPolicies", format!(r#"{{"KeyId":"{k}"}}"#)),
        kms(
            "CreateGrant",
            format!(r#"{{"KeyId":"{k}","GranteePrincipal":"{user}","Operations":["Decrypt"]}}"#),
        ),
        kms("ListGrants", format!(r#"{{"KeyId":"{k}"}}"#)),
        kms(
            "ListRetirableGrants",
            format!(r#"{{"RetiringPrincipal":"{user}"}}"#),
        ),
        kms(
            "RetireGrant",
            format!(r#"{{"KeyId":"{k}","GrantId":"{grant}"}}"#),
        ),
        kms(
            "RevokeGrant",
            format!(r#"{{"KeyId":"{k}","GrantId":"{grant}"}}"#),
        ),
        kms(
            "EnableKeyRotation",
            format!(r#"{{"KeyId":"{k}","RotationPeriodInDays":90}}"#),
        ),
        kms("DisableKeyRotation", format!(r#"{{"KeyId":"{k}"}}"#)),
        kms("GetKeyRotationStatus", format!(r#"{{"KeyId":"{k}"}}"#)),
        kms("RotateKeyOnDemand", format!(r#"{{"KeyId":"{k}"}}"#)),
        kms("ListKeyRotations", format!(r#"{{"KeyId":"{k}"}}"#)),
        kms(
            "ReplicateKey",
            format!(r#"{{"KeyId":"{k}","ReplicaRegion":"eu-west-1"}}"#),
        ),
        kms(
            "UpdatePrimaryRegion",
            format!(r#"{{"KeyId":"{k}","PrimaryRegion":"eu-west-1"}}"#),
        ),
        kms(
            "GetParametersForImport",
            format!(
                r#"{{"KeyId":"{k}","WrappingAlgorithm":"RSAES_OAEP_SHA_256","WrappingKeySpec":"RSA_2048"}}"#
            ),
        ),
        kms(
            "ImportKeyMaterial",
            format!(
                r#"{{"KeyId":"{k}","ImportToken":"AAAA","EncryptedKeyMaterial":"AAAA","ExpirationModel":"KEY_MATERIAL_DOES_NOT_EXPIRE"}}"#
            ),
        ),
        kms("DeleteImportedKeyMaterial", format!(r#"{{"KeyId":"{k}"}}"#)),
        kms("GetKeyLastUsage", format!(r#"{{"KeyId":"{k}"}}"#)),
        kms(
            "Sign",
            format!(r#"{{"KeyId":"{sk}","Message":"eA==","SigningAlgorithm":"ECDSA_SHA_256"}}"#),
        ),
        kms(
            "Verify",
            format!(
                r#"{{"KeyId":"{sk}","Message":"eA==","Signature":"eA==","SigningAlgorithm":"ECDSA_SHA_256"}}"#
            ),
        ),
        kms("GetPublicKey", format!(r#"{{"KeyId":"{sk}"}}"#)),
        kms(
            "GenerateMac",
            format!(r#"{{"KeyId":"{mk}","Message":"eA==","MacAlgorithm":"HMAC_SHA_256"}}"#),
        ),
        kms(
            "VerifyMac",
            format!(
                r#"{{"KeyId":"{mk}","Message":"eA==","Mac":"eA==","MacAlgorithm":"HMAC_SHA_256"}}"#
            ),
        ),
        kms(
            "DeriveSharedSecret",
            format!(
                r#"{{"KeyId":"{ak}","KeyAgreementAlgorithm":"ECDH","PublicKey":"{ap}"}}"#
            ),
        ),
        kms(
            "Encapsulate",
            format!(r#"{{"KeyId":"{kk}","EncapsulationAlgorithm":"ML_KEM"}}"#),
        ),
        kms(
            "Decapsulate",
            format!(
                r#"{{"KeyId":"{kk}","SharedSecretCiphertextBlob":"{kc}","EncapsulationAlgorithm":"ML_KEM"}}"#
            ),
        ),
        kms(
            "GenerateDataKeyPair",
            format!(r#"{{"KeyId":"{k}","KeyPairSpec":"ECC_NIST_P256"}}"#),
        ),
        kms(
            "GenerateDataKeyPairWithoutPlaintext",
            format!(r#"{{"KeyId":"{k}","KeyPairSpec":"ECC_NIST_P256"}}"#),
        ),
        // Secrets Manager
        sm(
            "CreateSecret",
            r#"{"Name":"new","SecretString":"v","ClientRequestToken":"00000000-0000-4000-8000-000000000001"}"#
                .into(),
        ),
        sm("ListSecrets", "{}".into()),
        sm("GetRandomPassword", "{}".into()),
        sm("BatchGetSecretValue", r#"{"SecretIdList":["s1"]}"#.into()),
        sm("GetSecretValue", secret.clone()),
        sm(
            "PutSecretValue",
            r#"{"SecretId":"s1","SecretString":"v2","ClientRequestToken":"00000000-0000-4000-8000-000000000002"}"#
                .into(),
        ),
        sm(
            "UpdateSecret",
            r#"{"SecretId":"s1","Description":"d"}"#.into(),
        ),
        sm(
            "UpdateSecretVersionStage",
            format!(r#"{{"SecretId":"s1","VersionStage":"X","MoveToVersionId":"{version}"}}"#),
        ),
        sm("DescribeSecret", secret.clone()),
        sm("ListSecretVersionIds", secret.clone()),
        sm("DeleteSecret", secret.clone()),
        sm("RestoreSecret", secret.clone()),
        sm(
            "TagResource",
            r#"{"SecretId":"s1","Tags":[{"Key":"a","Value":"b"}]}"#.into(),
        ),
        sm(
            "UntagResource",
            r#"{"SecretId":"s1","TagKeys":["a"]}"#.into(),
        ),
        sm(
            "RotateSecret",
            format!(
                r#"{{"SecretId":"s1","RotationLambdaARN":"arn:aws:lambda:us-east-1:{ACCOUNT}:function:f","RotationRules":{{"AutomaticallyAfterDays":30}},"RotateImmediately":false,"ClientRequestToken":"00000000-0000-4000-8000-000000000003"}}"#
            ),
        ),
        sm("CancelRotateSecret", secret.clone()),
        sm(
            "PutResourcePolicy",
            format!(r#"{{"SecretId":"s1","ResourcePolicy":{resource_policy}}}"#),
        ),
        sm("GetResourcePolicy", secret.clone()),
        sm("DeleteResourcePolicy", secret.clone()),
        sm(
            "ValidateResourcePolicy",
            format!(r#"{{"ResourcePolicy":{resource_policy}}}"#),
        ),
        sm("ListResourcePolicies", secret.clone()),
        sm(
            "ReplicateSecretToRegions",
            r#"{"SecretId":"s1","AddReplicaRegions":[{"Region":"us-west-2"}]}"#.into(),
        ),
        sm(
            "RemoveRegionsFromReplication",
            r#"{"SecretId":"s1","RemoveReplicaRegions":["us-west-2"]}"#.into(),
        ),
        sm("StopReplicationToReplica", secret.clone()),
        sm(
            "AssociateCrossAccountReplica",
            r#"{"SecretId":"s1","CrossAccountReplicaARN":"arn:aws:secretsmanager:us-east-1:222222222222:secret:s1-AbCdEf"}"#.into(),
        ),
        sm(
            "DisassociateCrossAccountReplica",
            r#"{"SecretId":"s1","CrossAccountReplicaARN":"arn:aws:secretsmanager:us-east-1:222222222222:secret:s1-AbCdEf"}"#.into(),
        ),
        // Parameter Store
        ssm(
            "PutParameter",
            r#"{"Name":"/p","Value":"v","Type":"String","Overwrite":true}"#.into(),
        ),
        ssm("GetParameter", r#"{"Name":"/p"}"#.into()),
        ssm("GetParameters", r#"{"Names":["/p"]}"#.into()),
        ssm("GetParametersByPath", r#"{"Path":"/"}"#.into()),
        ssm("DeleteParameter", r#"{"Name":"/p"}"#.into()),
        ssm("DeleteParameters", r#"{"Names":["/p"]}"#.into()),
        ssm("DescribeParameters", "{}".into()),
        ssm("GetParameterHistory", r#"{"Name":"/p"}"#.into()),
        ssm(
            "LabelParameterVersion",
            r#"{"Name":"/p","Labels":["l"]}"#.into(),
        ),
        ssm(
            "UnlabelParameterVersion",
            r#"{"Name":"/p","ParameterVersion":1,"Labels":["l"]}"#.into(),
        ),
        ssm(
            "AddTagsToResource",
            r#"{"ResourceType":"Parameter","ResourceId":"/p","Tags":[{"Key":"a","Value":"b"}]}"#
                .into(),
        ),
        ssm(
            "RemoveTagsFromResource",
            r#"{"ResourceType":"Parameter","ResourceId":"/p","TagKeys":["a"]}"#.into(),
        ),
        ssm(
            "ListTagsForResource",
            r#"{"ResourceType":"Parameter","ResourceId":"/p"}"#.into(),
        ),
        // CloudTrail
        json("LookupEvents", "cloudtrail", "{}".into()),
        // IAM
        iam("CreateUser", "&UserName=u2"),
        iam("GetUser", "&UserName=victim"),
        iam("ListUsers", ""),
        iam("DeleteUser", "&UserName=victim"),
        iam("CreateAccessKey", "&UserName=victim"),
        iam("ListAccessKeys", "&UserName=victim"),
        iam(
            "UpdateAccessKey",
            &format!("&UserName=victim&AccessKeyId={access_key}&Status=Inactive"),
        ),
        iam(
            "DeleteAccessKey",
            &format!("&UserName=victim&AccessKeyId={access_key}"),
        ),
        iam(
            "CreateRole",
            &format!("&RoleName=r2&AssumeRolePolicyDocument={trust}"),
        ),
        iam("GetRole", "&RoleName=r"),
        iam("ListRoles", ""),
        iam("DeleteRole", "&RoleName=r"),
        iam(
            "UpdateAssumeRolePolicy",
            &format!("&RoleName=r&PolicyDocument={trust}"),
        ),
        iam(
            "PutUserPolicy",
            &format!("&UserName=victim&PolicyName=p&PolicyDocument={doc}"),
        ),
        iam("GetUserPolicy", "&UserName=victim&PolicyName=p"),
        iam("DeleteUserPolicy", "&UserName=victim&PolicyName=p"),
        iam("ListUserPolicies", "&UserName=victim"),
        iam(
            "PutRolePolicy",
            &format!("&RoleName=r&PolicyName=p&PolicyDocument={doc}"),
        ),
        iam("GetRolePolicy", "&RoleName=r&PolicyName=p"),
        iam("DeleteRolePolicy", "&RoleName=r&PolicyName=p"),
        iam("ListRolePolicies", "&RoleName=r"),
        // STS
        sts(
            "AssumeRole",
            &format!("&RoleArn=arn:aws:iam::{ACCOUNT}:role/r&RoleSessionName=session"),
        ),
        sts("GetCallerIdentity", ""),
        sts("GetSessionToken", ""),
    ]
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn send(server: &TestServer, creds: &Creds, call: &Call) -> RawResponse {
    let target = match call.service {
        "kms" => Some(format!("TrentService.{}", call.operation)),
        "secretsmanager" => Some(format!("secretsmanager.{}", call.operation)),
        "ssm" => Some(format!("AmazonSSM.{}", call.operation)),
        "cloudtrail" => Some(format!(
            "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.{}",
            call.operation
        )),
        _ => None,
    };
    let content_type = match target {
        Some(_) => "application/x-amz-json-1.1",
        None => "application/x-www-form-urlencoded; charset=utf-8",
    };
    let mut headers = vec![("content-type", content_type)];
    if let Some(target) = &target {
        headers.push(("x-amz-target", target));
    }
    signed_post(
        server.addr(),
        creds,
        call.service,
        &headers,
        call.body.as_bytes(),
    )
    .await
}

/// The error code of a response (JSON `__type` or XML `<Code>`), `None` on success.
fn error_code(response: &RawResponse) -> Option<String> {
    if response.status == 200 {
        return None;
    }
    let text = response.body_text();
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
        let code = value["__type"].as_str().unwrap_or_default();
        return Some(code.rsplit('#').next().unwrap_or_default().to_owned());
    }
    let code = text
        .split("<Code>")
        .nth(1)
        .and_then(|rest| rest.split("</Code>").next())
        .unwrap_or_default();
    Some(code.to_owned())
}

async fn world(server: &TestServer) -> World {
    let kms = server.kms();
    let key = new_key(&kms).await.id;
    kms.create_alias()
        .alias_name("alias/a")
        .target_key_id(&key)
        .send()
        .await
        .unwrap();
    let ciphertext = kms
        .encrypt()
        .key_id(&key)
        .plaintext(b"x".to_vec().into())
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    let key_policy = kms
        .get_key_policy()
        .key_id(&key)
        .send()
        .await
        .unwrap()
        .policy
        .unwrap();
    let iam = server.iam();
    let victim = user_with_key(&iam, "victim").await;
    put_user_policy(&iam, "victim", "p", &allow("s3:GetObject", "*")).await;
    iam.create_role()
        .role_name("r")
        .assume_role_policy_document(keyhold_testkit::identity::trust(&format!(
            "arn:aws:iam::{ACCOUNT}:root"
        )))
        .send()
        .await
        .unwrap();
    iam.put_role_policy()
        .role_name("r")
        .policy_name("p")
        .policy_document(allow("s3:GetObject", "*"))
        .send()
        .await
        .unwrap();
    let grant = kms
        .create_grant()
        .key_id(&key)
        .grantee_principal(format!("arn:aws:iam::{ACCOUNT}:user/victim"))
        .retiring_principal(format!("arn:aws:iam::{ACCOUNT}:user/victim"))
        .operations(aws_sdk_kms::types::GrantOperation::Decrypt)
        .send()
        .await
        .unwrap()
        .grant_id
        .unwrap();
    let secret_version = server
        .secrets_manager()
        .create_secret()
        .name("s1")
        .secret_string("v")
        .send()
        .await
        .unwrap()
        .version_id
        .unwrap();
    server
        .ssm()
        .put_parameter()
        .name("/p")
        .value("v")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
    use aws_sdk_kms::types::{EncapsulationAlgorithmSpec, KeySpec, KeyUsageType};
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let make = |spec: KeySpec, usage: KeyUsageType| {
        let kms = kms.clone();
        async move {
            kms.create_key()
                .key_spec(spec)
                .key_usage(usage)
                .send()
                .await
                .unwrap()
                .key_metadata
                .unwrap()
                .key_id
        }
    };
    let sign_key = make(KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let mac_key = make(KeySpec::Hmac256, KeyUsageType::GenerateVerifyMac).await;
    let agreement_key = make(KeySpec::EccNistP256, KeyUsageType::KeyAgreement).await;
    let kem_key = make(KeySpec::MlKem768, KeyUsageType::EncapsulateDecapsulate).await;
    let agreement_public = kms
        .get_public_key()
        .key_id(&agreement_key)
        .send()
        .await
        .unwrap()
        .public_key
        .unwrap();
    let kem_ciphertext = kms
        .encapsulate()
        .key_id(&kem_key)
        .encapsulation_algorithm(EncapsulationAlgorithmSpec::MlKem)
        .send()
        .await
        .unwrap()
        .shared_secret_ciphertext_blob
        .unwrap();
    World {
        sign_key,
        mac_key,
        agreement_public: b64(agreement_public.as_ref()),
        agreement_key,
        kem_key,
        kem_ciphertext: b64(kem_ciphertext.as_ref()),
        key,
        ciphertext: base64::engine::general_purpose::STANDARD.encode(ciphertext.as_ref()),
        grant,
        secret_version,
        access_key: victim.access_key_id,
        key_policy,
    }
}

#[tokio::test]
async fn the_table_names_every_supported_operation() {
    let server = TestServer::start().await;
    let w = world(&server).await;
    let named: BTreeSet<&str> = calls(&w).iter().map(|c| c.operation).collect();
    let mut missing = Vec::new();
    for (_, ops) in compat::all_operations() {
        for op in ops {
            if compat::is_supported(op) && !named.contains(op.name()) {
                missing.push(op.name());
            }
        }
    }
    assert!(missing.is_empty(), "no call for: {missing:?}");
}

fn is_any_caller(call: &Call) -> bool {
    compat::all_operations()
        .into_iter()
        .flat_map(|(_, ops)| ops)
        .filter(|op| op.name() == call.operation && compat::is_supported(*op))
        .any(|op| matches!(declaration(op), Some(Declaration::AnyCaller)))
}

fn is_denied(code: Option<&str>) -> bool {
    matches!(code, Some("AccessDeniedException" | "AccessDenied"))
}

#[tokio::test]
async fn a_principal_without_permissions_is_refused_every_operation() {
    let server = TestServer::start().await;
    let w = world(&server).await;
    let nobody = user_with_key(&server.iam(), "nobody").await;
    let mut wrong = Vec::new();
    for call in calls(&w) {
        let response = send(&server, &nobody, &call).await;
        let code = error_code(&response);
        let expected_ok = is_any_caller(&call);
        if expected_ok != code.is_none() || (!expected_ok && !is_denied(code.as_deref())) {
            wrong.push(format!(
                "{}.{}: {} {}",
                call.service,
                call.operation,
                response.status,
                response.body_text()
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "not refused as expected:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test]
async fn an_explicit_deny_on_the_action_wins_for_every_operation() {
    let server = TestServer::start().await;
    let w = world(&server).await;
    let iam = server.iam();
    let almighty = user_with_key(&iam, "almighty").await;
    let mut wrong = Vec::new();
    for call in calls(&w) {
        if is_any_caller(&call) {
            continue;
        }
        let action = format!("{}:{}", call.service, call.operation);
        let action = match action.as_str() {
            "kms:ReEncrypt" => "kms:ReEncrypt*".to_owned(),
            _ => action,
        };
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"*","Resource":"*"}},{{"Effect":"Deny","Action":"{action}","Resource":"*"}}]}}"#
        );
        put_user_policy(&iam, "almighty", "p", &policy).await;
        let response = send(&server, &almighty, &call).await;
        let code = error_code(&response);
        let text = response.body_text();
        if !is_denied(code.as_deref()) || !text.contains("explicit deny") {
            wrong.push(format!(
                "{}.{}: {} {text}",
                call.service, call.operation, response.status
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "explicit deny did not win:\n{}",
        wrong.join("\n")
    );
}
