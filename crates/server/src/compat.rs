//! Which operations Keyhold serves: the source of the README's compatibility table, which
//! a test keeps equal to this (and another test checks against a live server).

use keyhold_proto::route::Operation;
use keyhold_proto::{cloudtrail, iam, kms, secretsmanager, ssm, sts};

/// Whether Keyhold implements `op` (every other operation answers
/// `UnsupportedOperationException`).
pub fn is_supported(op: Operation) -> bool {
    match op {
        Operation::Kms(op) => crate::kms::SUPPORTED.contains(&op),
        Operation::SecretsManager(op) => crate::secrets::SUPPORTED.contains(&op),
        Operation::Ssm(op) => crate::params::SUPPORTED.contains(&op),
        Operation::CloudTrail(op) => op == cloudtrail::CloudTrailOperation::LookupEvents,
        Operation::Sts(op) => crate::sts::SUPPORTED.contains(&op),
        Operation::Iam(op) => crate::iam::SUPPORTED.contains(&op),
    }
}

/// Every operation of every model, service by service.
pub fn all_operations() -> Vec<(&'static str, Vec<Operation>)> {
    vec![
        (
            "AWS KMS",
            kms::KmsOperation::ALL
                .iter()
                .map(|o| Operation::Kms(*o))
                .collect(),
        ),
        (
            "AWS Secrets Manager",
            secretsmanager::SecretsManagerOperation::ALL
                .iter()
                .map(|o| Operation::SecretsManager(*o))
                .collect(),
        ),
        (
            "SSM Parameter Store",
            ssm::SsmOperation::ALL
                .iter()
                .map(|o| Operation::Ssm(*o))
                .collect(),
        ),
        (
            "AWS STS",
            sts::StsOperation::ALL
                .iter()
                .map(|o| Operation::Sts(*o))
                .collect(),
        ),
        (
            "AWS IAM",
            iam::IamOperation::ALL
                .iter()
                .map(|o| Operation::Iam(*o))
                .collect(),
        ),
        (
            "AWS CloudTrail",
            cloudtrail::CloudTrailOperation::ALL
                .iter()
                .map(|o| Operation::CloudTrail(*o))
                .collect(),
        ),
    ]
}

/// The compatibility table as Markdown.
pub fn markdown() -> String {
    let mut out = String::new();
    for (service, ops) in all_operations() {
        let supported = ops.iter().filter(|o| is_supported(**o)).count();
        out.push_str(&format!(
            "<details><summary><b>{service}</b>: {supported} of {} operations</summary>\n\n| Operation | Supported |\n|---|---|\n",
            ops.len()
        ));
        for op in ops {
            let mark = if is_supported(op) { "yes" } else { "no" };
            out.push_str(&format!("| {} | {mark} |\n", op.name()));
        }
        out.push_str("\n</details>\n");
    }
    out
}
