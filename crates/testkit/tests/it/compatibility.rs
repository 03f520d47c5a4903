//! The README's compatibility table is generated from `keyhold_server::compat`, and the
//! live server answers exactly as the table says.

use keyhold_proto::route::Operation;
use keyhold_server::compat;
use keyhold_testkit::TestServer;

const START: &str = "<!-- compat:start -->\n";
const END: &str = "<!-- compat:end -->";

#[test]
fn readme_table_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let start = readme
        .find(START)
        .expect("README has a compat:start marker")
        + START.len();
    let end = readme.find(END).expect("README has a compat:end marker");
    let expected = compat::markdown();
    if readme[start..end] != expected {
        if std::env::var_os("KEYHOLD_BLESS").is_some() {
            let updated = format!("{}{expected}{}", &readme[..start], &readme[end..]);
            std::fs::write(&path, updated).unwrap();
            return;
        }
        panic!(
            "README's compatibility table is stale; rerun with KEYHOLD_BLESS=1 to regenerate it"
        );
    }
}

#[tokio::test]
async fn json_operations_answer_as_the_table_says() {
    let server = TestServer::start().await;
    for (_, ops) in compat::all_operations() {
        for op in ops {
            let target = match op {
                Operation::Kms(op) => format!("TrentService.{op}"),
                Operation::SecretsManager(op) => format!("secretsmanager.{op}"),
                Operation::Ssm(op) => format!("AmazonSSM.{op}"),
                Operation::CloudTrail(op) => {
                    format!("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.{op}")
                }
                Operation::Sts(_) | Operation::Iam(_) => continue,
            };
            let r = server.raw_json(&target, "{}").await;
            let code = if r.status == 200 {
                String::new()
            } else {
                r.json()["__type"].as_str().unwrap_or_default().to_owned()
            };
            let unsupported = code == "UnsupportedOperationException";
            assert_eq!(unsupported, !compat::is_supported(op), "{target}: {code}");
        }
    }
}
