//! Writes the seed corpus under `fuzz/corpus/<target>/` from real inputs: blobs and sealed
//! records made with the fixed keys of `keyhold_fuzz::keys`, AWS's SigV4 test-suite
//! requests, the policy test data, SDK-shaped request bodies and linked audit records.
//!
//! `cargo run --example make_corpus` (from `fuzz/`, no instrumentation needed) rewrites
//! the corpus; `cargo run --example make_corpus -- keys` prints fresh fixed keys, for when
//! `src/keys.rs` must change (which invalidates the sealed seeds, so rerun the first).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use keyhold_crypto::blob;
use keyhold_crypto::envelope;
use keyhold_crypto::seal::DomainKey;
use keyhold_crypto::token::TokenKey;
use keyhold_crypto::{MaterialId, SymmetricKey};
use keyhold_fuzz::audit::chain::{self, DigestDocument, GENESIS};
use keyhold_fuzz::keys;
use serde_json::{Value, json};

fn main() {
    if std::env::args().nth(1).as_deref() == Some("keys") {
        print_keys();
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = root.join("corpus");
    let repo = root.parent().expect("repo root").to_path_buf();
    blob_seeds(&corpus.join("blob"), &repo);
    sealed_seeds(&corpus.join("sealed"));
    sigv4_seeds(&corpus.join("sigv4"), &repo);
    json_seeds(&corpus.join("json_dispatch"));
    query_seeds(&corpus.join("query_dispatch"));
    policy_seeds(&corpus.join("policy"), &repo);
    audit_seeds(&corpus.join("audit_chain"));
}

fn print_keys() {
    let root = keys::root();
    let domain = DomainKey::generate().expect("domain key");
    println!(
        "SEALED_DOMAIN_KEY = {}",
        hex::encode(domain.seal(&root).expect("seal"))
    );
    let (_, pkcs8) = keyhold_crypto::signing::SigningKey::generate().expect("signing key");
    println!("AUDIT_SIGNING_KEY = {}", hex::encode(pkcs8.expose_secret()));
}

/// Empties `dir` and writes `seeds` into it as `NNN-name`.
fn write(dir: &Path, seeds: Vec<(String, Vec<u8>)>) {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).unwrap();
    let n = seeds.len();
    for (i, (name, bytes)) in seeds.into_iter().enumerate() {
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(48)
            .collect();
        fs::write(dir.join(format!("{i:03}-{name}")), bytes).unwrap();
    }
    println!("{}: {n} seeds", dir.display());
}

const PLAINTEXTS: &[&[u8]] = &[
    b"",
    b"x",
    b"hello world",
    b"{\"username\":\"admin\",\"password\":\"EXAMPLE-PASSWORD\"}",
    &[0u8; 32],
    &[0xffu8; 64],
    b"Keyhold blob format v1",
    &[0x42u8; 4096],
];

fn blob_seeds(dir: &Path, repo: &Path) {
    let golden: Value = serde_json::from_slice(
        &fs::read(repo.join("crates/crypto/tests/data/blob_v1.json")).unwrap(),
    )
    .unwrap();
    let golden_blob = hex::decode(golden["blob"].as_str().unwrap()).unwrap();
    let mut seeds = vec![("golden-v1".to_owned(), golden_blob.clone())];
    let (key, ctx) = (keys::blob_key(), keys::blob_context());
    for (i, p) in PLAINTEXTS.iter().enumerate() {
        let b =
            blob::encrypt(&key, keys::blob_key_id(), keys::blob_material_id(), &ctx, p).unwrap();
        seeds.push((format!("valid-{i}"), b));
    }
    // Blobs under another material id and another key: headers parse, decrypt fails.
    let other = MaterialId::from_bytes([7; 32]);
    seeds.push((
        "other-material".into(),
        blob::encrypt(&key, keys::blob_key_id(), other, &ctx, b"m").unwrap(),
    ));
    let other_key = SymmetricKey::dangerous_from_bytes([9; 32]);
    seeds.push((
        "other-key".into(),
        blob::encrypt(
            &other_key,
            keys::blob_key_id(),
            keys::blob_material_id(),
            &ctx,
            b"k",
        )
        .unwrap(),
    ));
    let mut v2 = golden_blob.clone();
    v2[0] = 2;
    seeds.push(("version-2".into(), v2));
    seeds.push((
        "truncated".into(),
        golden_blob[..blob::OVERHEAD - 1].to_vec(),
    ));
    seeds.push((
        "header-only".into(),
        golden_blob[..blob::HEADER_LEN].to_vec(),
    ));
    seeds.push((
        "context-text".into(),
        b"purpose=golden-vector&Department=10".to_vec(),
    ));
    write(dir, seeds);
}

fn sealed_seeds(dir: &Path) {
    let fixture = keys::sealed_fixture();
    let mut seeds = Vec::new();
    let with = |selector: u8, bytes: &[u8]| {
        let mut out = vec![selector];
        out.extend_from_slice(bytes);
        out
    };
    seeds.push((
        "domain-key".into(),
        with(0, &hex::decode(keys::SEALED_DOMAIN_KEY).unwrap()),
    ));
    let fresh = DomainKey::generate().unwrap();
    seeds.push((
        "domain-key-other".into(),
        with(0, &fresh.seal(&fixture.root).unwrap()),
    ));
    for i in 0..4u8 {
        let material = SymmetricKey::dangerous_from_bytes([i.wrapping_mul(37); 32]);
        let sealed = fixture
            .domain
            .seal_material(&material, keys::MATERIAL_ARN, &keys::blob_material_id())
            .unwrap();
        seeds.push((format!("material-{i}"), with(1, &sealed)));
    }
    for (i, secret) in [&b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"[..], b"", b"s"]
        .iter()
        .enumerate()
    {
        let sealed = fixture
            .domain
            .seal_secret(keys::SECRET_PURPOSE, keys::SECRET_ID, secret)
            .unwrap();
        seeds.push((format!("secret-{i}"), with(2, &sealed)));
    }
    let aad = envelope::aad(&[keys::ENVELOPE_AAD.as_bytes()]);
    for (i, p) in PLAINTEXTS.iter().take(5).enumerate() {
        let sealed = envelope::seal(&fixture.data_key, p, &aad).unwrap();
        seeds.push((format!("envelope-{i}"), with(3, &sealed)));
    }
    seeds.push((
        "key-file".into(),
        with(4, &keys::key_file_contents(&keys::ROOT_KEY)),
    ));
    let mut no_newline = keys::key_file_contents(&[1; 32]);
    no_newline.pop();
    seeds.push(("key-file-no-newline".into(), with(4, &no_newline)));
    seeds.push((
        "key-file-bad-magic".into(),
        with(4, b"keyhold-root-key-v2\nAAAA\n"),
    ));
    let token = TokenKey::from_bytes(keys::TOKEN_KEY).unwrap();
    let message = b"grant:1234abcd-12ab-34cd-56ef-1234567890ab";
    let mut tagged = message.to_vec();
    tagged.extend_from_slice(&token.tag(message));
    seeds.push(("token".into(), with(5, &tagged)));
    write(dir, seeds);
}

fn sigv4_seeds(dir: &Path, repo: &Path) {
    let data = repo.join("crates/proto/tests/data/sigv4");
    let mut names: Vec<PathBuf> = fs::read_dir(&data)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    names.sort();
    let mut seeds = Vec::new();
    for case in names {
        for file in ["header-signed-request.txt", "query-signed-request.txt"] {
            if let Ok(bytes) = fs::read(case.join(file)) {
                let name = format!(
                    "{}-{}",
                    case.file_name().unwrap().to_string_lossy(),
                    &file[..1]
                );
                seeds.push((name, bytes));
            }
        }
    }
    write(dir, seeds);
}

/// Request bodies in the shape the AWS SDKs send them (member names and encodings from the
/// service models; several from crates/testkit's raw-protocol tests).
const JSON_BODIES: &[(&str, &str)] = &[
    (
        "TrentService.Encrypt",
        r#"{"KeyId":"alias/app","Plaintext":"aGVsbG8gd29ybGQ=","EncryptionContext":{"purpose":"test"}}"#,
    ),
    (
        "TrentService.Decrypt",
        r#"{"CiphertextBlob":"AQEBAHhA84wnXjEJdBbBBylRUFcZZK2j7xwh6UyLoL28nQ+0FAAAAH4wfAYJKoZIhvcNAQcGoG8wbQIBADBoBgkqhkiG9w0BBwEwHgYJYIZIAWUDBAEuMBEEDM","EncryptionContext":{"purpose":"test"},"KeyId":"1234abcd-12ab-34cd-56ef-1234567890ab"}"#,
    ),
    (
        "TrentService.GenerateDataKey",
        r#"{"KeyId":"arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab","KeySpec":"AES_256"}"#,
    ),
    (
        "TrentService.GenerateDataKeyWithoutPlaintext",
        r#"{"KeyId":"alias/app","NumberOfBytes":64,"GrantTokens":["token"]}"#,
    ),
    (
        "TrentService.CreateKey",
        r#"{"Description":"app key","KeyUsage":"ENCRYPT_DECRYPT","KeySpec":"SYMMETRIC_DEFAULT","Tags":[{"TagKey":"team","TagValue":"infra"}],"Policy":"{\"Version\":\"2012-10-17\",\"Statement\":[]}","BypassPolicyLockoutSafetyCheck":false,"MultiRegion":false}"#,
    ),
    ("TrentService.DescribeKey", r#"{"KeyId":"alias/app"}"#),
    (
        "TrentService.ListKeys",
        r#"{"Limit":10,"Marker":"eyJrIjoiMSJ9"}"#,
    ),
    (
        "TrentService.ListAliases",
        r#"{"KeyId":"1234abcd-12ab-34cd-56ef-1234567890ab","Limit":100}"#,
    ),
    (
        "TrentService.CreateGrant",
        r#"{"KeyId":"alias/app","GranteePrincipal":"arn:aws:iam::111122223333:role/app","Operations":["Encrypt","Decrypt"],"Constraints":{"EncryptionContextSubset":{"dept":"it"}},"Name":"g1"}"#,
    ),
    (
        "TrentService.ReEncrypt",
        r#"{"CiphertextBlob":"AAAA","DestinationKeyId":"alias/other","SourceEncryptionContext":{},"DestinationEncryptionContext":{"a":"b"}}"#,
    ),
    (
        "TrentService.ScheduleKeyDeletion",
        r#"{"KeyId":"alias/app","PendingWindowInDays":7}"#,
    ),
    (
        "TrentService.PutKeyPolicy",
        r#"{"KeyId":"alias/app","PolicyName":"default","Policy":"{}"}"#,
    ),
    (
        "TrentService.Sign",
        r#"{"KeyId":"k","Message":"aGk=","SigningAlgorithm":"ECDSA_SHA_256","MessageType":"RAW"}"#,
    ),
    ("TrentService.GenerateRandom", r#"{"NumberOfBytes":32}"#),
    (
        "TrentService.TagResource",
        r#"{"KeyId":"alias/app","Tags":[{"TagKey":"a","TagValue":"b"}]}"#,
    ),
    (
        "secretsmanager.CreateSecret",
        r#"{"Name":"prod/db","SecretString":"{\"password\":\"x\"}","ClientRequestToken":"EXAMPLE1-90ab-cdef-fedc-ba987SECRET1","Tags":[{"Key":"env","Value":"prod"}]}"#,
    ),
    (
        "secretsmanager.GetSecretValue",
        r#"{"SecretId":"prod/db","VersionStage":"AWSCURRENT"}"#,
    ),
    (
        "secretsmanager.PutSecretValue",
        r#"{"SecretId":"prod/db","SecretBinary":"AQID","VersionStages":["AWSPENDING"]}"#,
    ),
    (
        "secretsmanager.ListSecrets",
        r#"{"MaxResults":20,"Filters":[{"Key":"name","Values":["prod"]}],"SortOrder":"asc"}"#,
    ),
    (
        "secretsmanager.DescribeSecret",
        r#"{"SecretId":"arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-AbCdEf"}"#,
    ),
    (
        "secretsmanager.RotateSecret",
        r#"{"SecretId":"prod/db","RotationRules":{"AutomaticallyAfterDays":30},"RotateImmediately":false}"#,
    ),
    (
        "secretsmanager.UpdateSecretVersionStage",
        r#"{"SecretId":"prod/db","VersionStage":"AWSCURRENT","MoveToVersionId":"v2","RemoveFromVersionId":"v1"}"#,
    ),
    (
        "secretsmanager.PutResourcePolicy",
        r#"{"SecretId":"prod/db","ResourcePolicy":"{\"Version\":\"2012-10-17\"}","BlockPublicPolicy":true}"#,
    ),
    (
        "secretsmanager.BatchGetSecretValue",
        r#"{"SecretIdList":["a","b"]}"#,
    ),
    (
        "secretsmanager.DeleteSecret",
        r#"{"SecretId":"prod/db","RecoveryWindowInDays":7}"#,
    ),
    (
        "AmazonSSM.PutParameter",
        r#"{"Name":"/app/db/url","Value":"postgres://db","Type":"SecureString","KeyId":"alias/aws/ssm","Overwrite":true,"Tier":"Standard"}"#,
    ),
    (
        "AmazonSSM.GetParameter",
        r#"{"Name":"/app/db/url","WithDecryption":true}"#,
    ),
    (
        "AmazonSSM.GetParametersByPath",
        r#"{"Path":"/app","Recursive":true,"ParameterFilters":[{"Key":"Type","Option":"Equals","Values":["String"]}],"MaxResults":10}"#,
    ),
    (
        "AmazonSSM.DescribeParameters",
        r#"{"ParameterFilters":[{"Key":"Name","Option":"BeginsWith","Values":["/app"]}],"NextToken":"abc"}"#,
    ),
    (
        "AmazonSSM.LabelParameterVersion",
        r#"{"Name":"/x","ParameterVersion":1,"Labels":["prod"]}"#,
    ),
    (
        "AmazonSSM.AddTagsToResource",
        r#"{"ResourceType":"Parameter","ResourceId":"/x","Tags":[{"Key":"a","Value":"b"}]}"#,
    ),
    (
        "AmazonSSM.GetParameters",
        r#"{"Names":["/a","/b:1","/c:prod"],"WithDecryption":false}"#,
    ),
    (
        "AmazonSSM.GetParameterHistory",
        r#"{"Name":"/x","MaxResults":50}"#,
    ),
    (
        "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
        r#"{"LookupAttributes":[{"AttributeKey":"EventName","AttributeValue":"Decrypt"}],"StartTime":1700000000,"EndTime":1.7e9,"MaxResults":50}"#,
    ),
    ("TrentService.Nonexistent", r#"{}"#),
    (
        "TrentService.Encrypt",
        r#"{"KeyId": ["a"], "Plaintext": 1}"#,
    ),
];

fn json_seeds(dir: &Path) {
    let seeds = JSON_BODIES
        .iter()
        .map(|(target, body)| {
            (
                target.rsplit('.').next().unwrap().to_owned(),
                format!("{target}\n{body}").into_bytes(),
            )
        })
        .collect();
    write(dir, seeds);
}

const QUERY_BODIES: &[&str] = &[
    "Action=GetCallerIdentity&Version=2011-06-15",
    "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fapp&RoleSessionName=s1&DurationSeconds=3600&Tags.member.1.Key=team&Tags.member.1.Value=infra&TransitiveTagKeys.member.1=team",
    "Action=GetSessionToken&Version=2011-06-15&DurationSeconds=900",
    "Action=AssumeRole&Version=2011-06-15&RoleArn=arn&RoleSessionName=s&Policy=%7B%22Version%22%3A%222012-10-17%22%7D&PolicyArns.member.1.arn=arn%3Aaws%3Aiam%3A%3Aaws%3Apolicy%2FReadOnly",
    "Action=CreateUser&Version=2010-05-08&UserName=alice&Path=%2Fdivision%2F&Tags.member.1.Key=team&Tags.member.1.Value=a",
    "Action=CreateAccessKey&Version=2010-05-08&UserName=alice",
    "Action=ListAccessKeys&Version=2010-05-08&UserName=alice&MaxItems=10&Marker=abc",
    "Action=UpdateAccessKey&Version=2010-05-08&UserName=alice&AccessKeyId=AKIAIOSFODNN7EXAMPLE&Status=Inactive",
    "Action=CreateRole&Version=2010-05-08&RoleName=app&AssumeRolePolicyDocument=%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D&MaxSessionDuration=3600",
    "Action=PutUserPolicy&Version=2010-05-08&UserName=alice&PolicyName=p&PolicyDocument=%7B%7D",
    "Action=PutRolePolicy&Version=2010-05-08&RoleName=app&PolicyName=p&PolicyDocument=%7B%22Statement%22%3A%5B%5D%7D",
    "Action=ListUsers&Version=2010-05-08&PathPrefix=%2F&MaxItems=100",
    "Action=GetUser&Version=2010-05-08",
    "Action=DeleteUser&Version=2010-05-08&UserName=alice",
    "Action=ListRoles&Version=2010-05-08",
    "Action=TagUser&Version=2010-05-08&UserName=alice&Tags.member.1.Key=k&Tags.member.1.Value=v&Tags.member.2.Key=k2&Tags.member.2.Value=v2",
    "Action=UntagRole&Version=2010-05-08&RoleName=app&TagKeys.member.1=k",
    "Action=Nope&Version=2010-05-08",
    "Version=2011-06-15",
    "Action=AssumeRole&RoleArn=a&RoleSessionName=s&DurationSeconds=x",
];

fn query_seeds(dir: &Path) {
    let seeds = QUERY_BODIES
        .iter()
        .map(|body| {
            let action = body
                .split('&')
                .next()
                .unwrap()
                .trim_start_matches("Action=");
            (action.to_owned(), body.as_bytes().to_vec())
        })
        .collect();
    write(dir, seeds);
}

/// A few cases of every file in crates/policy/tests/data, as policy + `%%` + request.
fn policy_seeds(dir: &Path, repo: &Path) {
    let data = repo.join("crates/policy/tests/data");
    let mut seeds = Vec::new();
    for (sub, per_file) in [("evaluation", 3), ("parse", 3)] {
        let mut files: Vec<PathBuf> = fs::read_dir(data.join(sub))
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        for file in files {
            let doc: Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
            let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
            for case in doc["cases"].as_array().unwrap().iter().take(per_file) {
                let policy = match case.get("policy_text").and_then(Value::as_str) {
                    Some(text) => text.to_owned(),
                    None => serde_json::to_string_pretty(&case["policy"]).unwrap(),
                };
                let mut request = String::new();
                let kind = case
                    .get("kind")
                    .or_else(|| doc.get("defaults").and_then(|d| d.get("kind")))
                    .and_then(Value::as_str);
                if let Some(kind) = kind {
                    request.push_str(&format!("kind={kind}\n"));
                }
                if let Some(defaults) = doc.get("defaults") {
                    let field = |name: &str| {
                        case.get("request")
                            .and_then(|r| r.get(name))
                            .or_else(|| defaults.get(name))
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    };
                    if let Some(who) = field("principal")
                        && let Some(p) = doc["principals"].get(&who)
                    {
                        for (line, key) in [
                            ("arn", "arn"),
                            ("account", "account"),
                            ("principal", "kind"),
                            ("role", "role_arn"),
                            ("service", "service"),
                        ] {
                            if let Some(v) = p.get(key).and_then(Value::as_str) {
                                request.push_str(&format!("{line}={v}\n"));
                            }
                        }
                    }
                    for name in ["action", "resource"] {
                        if let Some(v) = field(name) {
                            request.push_str(&format!("{name}={v}\n"));
                        }
                    }
                    if let Some(ctx) = case
                        .get("request")
                        .and_then(|r| r.get("context"))
                        .and_then(Value::as_object)
                    {
                        for (key, values) in ctx {
                            for v in values.as_array().into_iter().flatten() {
                                request.push_str(&format!(
                                    "ctx:{key}={}\n",
                                    v.as_str().unwrap_or_default()
                                ));
                            }
                        }
                    }
                }
                let name = format!("{stem}-{}", case["name"].as_str().unwrap_or_default());
                seeds.push((name, format!("{policy}\n%%\n{request}").into_bytes()));
            }
        }
    }
    write(dir, seeds);
}

/// CloudTrail-shaped records as the trail writes them (see crates/server/src/audit/record.rs).
fn records(n: usize) -> Vec<String> {
    let names = [
        "Encrypt",
        "Decrypt",
        "CreateSecret",
        "GetParameter",
        "AssumeRole",
        "CreateUser",
    ];
    (0..n)
        .map(|i| {
            let name = names[i % names.len()];
            json!({
                "eventVersion": "1.09",
                "userIdentity": {
                    "type": "IAMUser",
                    "principalId": "AIDAEXAMPLE",
                    "arn": "arn:aws:iam::111122223333:user/alice",
                    "accountId": "111122223333",
                    "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
                    "userName": "alice"
                },
                "eventTime": format!("2026-11-30T12:00:{:02}Z", i % 60),
                "eventSource": "kms.amazonaws.com",
                "eventName": name,
                "awsRegion": "us-east-1",
                "sourceIPAddress": "127.0.0.1",
                "userAgent": "aws-sdk-rust/1.0",
                "requestParameters": {"keyId": "alias/app", "encryptionContext": {"purpose": "test"}},
                "responseElements": null,
                "requestID": format!("req-{i}"),
                "eventID": format!("00000000-0000-4000-8000-{i:012}"),
                "readOnly": true,
                "resources": [{"accountId": "111122223333", "type": "AWS::KMS::Key", "ARN": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"}],
                "eventType": "AwsApiCall",
                "managementEvent": true,
                "recipientAccountId": "111122223333",
                "eventCategory": "Management"
            })
            .to_string()
        })
        .collect()
}

/// A linked trail of `n` events with a digest after every `period` events.
fn trail(n: usize, period: usize) -> String {
    let key = keys::audit_signing_key();
    let fingerprint = chain::fingerprint(&key.public_key());
    let mut lines = Vec::new();
    let mut previous = GENESIS;
    let mut previous_digest: Option<String> = None;
    let mut digest_seq = 0;
    let mut first = 1;
    for (i, record) in records(n).into_iter().enumerate() {
        let seq = i as i64 + 1;
        let (text, hash) = chain::link(&record, seq, &previous);
        previous = hash;
        lines.push(text);
        if period > 0 && (i + 1) % period == 0 {
            digest_seq += 1;
            let doc = DigestDocument {
                digest_sequence: digest_seq,
                first_event_sequence: first,
                last_event_sequence: seq,
                last_event_hash: hex::encode(hash),
                previous_digest_hash: previous_digest.take(),
                digest_time: "2026-11-30T12:05:00Z".into(),
                public_key_fingerprint: fingerprint.clone(),
            }
            .to_text();
            previous_digest = Some(chain::digest_hash(&doc));
            lines.push(format!("digest {doc}"));
            first = seq + 1;
        }
    }
    lines.join("\n")
}

fn audit_seeds(dir: &Path) {
    let mut seeds = Vec::new();
    for (n, period) in [(1, 1), (3, 0), (4, 2), (6, 3), (2, 2)] {
        let text = trail(n, period);
        for flags in [3u8, 1] {
            let mut bytes = vec![flags];
            bytes.extend_from_slice(text.as_bytes());
            seeds.push((format!("trail-{n}-{period}-f{flags}"), bytes));
        }
    }
    // Unlinked records, as the trail builds them before chaining, and a tampered trail.
    let mut unlinked = vec![0u8];
    unlinked.extend_from_slice(records(2).join("\n").as_bytes());
    seeds.push(("unlinked".into(), unlinked));
    let tampered = trail(4, 2).replacen("Decrypt", "Encrypt", 1);
    let mut bytes = vec![3u8];
    bytes.extend_from_slice(tampered.as_bytes());
    seeds.push(("tampered".into(), bytes));
    // The shorthand of the target (`event S`, `seal D F L`): well-formed trails from numbers.
    seeds.push((
        "shorthand-trail".into(),
        b"\x03event 1\nevent 2\nseal 1 1 2\nevent 3\nevent 4\nseal 2 3 4\nevent 5\n".to_vec(),
    ));
    seeds.push((
        "shorthand-short".into(),
        b"\x01event 1\nseal 1 1 1\n".to_vec(),
    ));
    write(dir, seeds);
}
