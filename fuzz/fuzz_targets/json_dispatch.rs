//! JSON 1.1 decoding and validation of every operation of every JSON service (KMS, Secrets
//! Manager, SSM, CloudTrail) through the generated dispatch, the audit view of the request,
//! and the wire form of every error, as `crates/proto/tests/hostile_bodies.rs` drives them.
//!
//! Input: the `X-Amz-Target` value (`TrentService.Encrypt`), a newline, the body. A target
//! that names no operation still picks one (by a hash of its text), so mutations of the
//! first line keep reaching decoders.

#![no_main]

use keyhold_fuzz::null::{Null, Viewer};
use keyhold_fuzz::{name_hash, run_ready, split_at_marker};
use keyhold_proto::route::{self, Operation};
use keyhold_proto::{ApiError, cloudtrail, kms, secretsmanager, ssm};
use libfuzzer_sys::fuzz_target;

fn all_json_operations() -> Vec<Operation> {
    let mut all = Vec::new();
    all.extend(kms::KmsOperation::ALL.iter().map(|op| Operation::Kms(*op)));
    all.extend(
        secretsmanager::SecretsManagerOperation::ALL
            .iter()
            .map(|op| Operation::SecretsManager(*op)),
    );
    all.extend(ssm::SsmOperation::ALL.iter().map(|op| Operation::Ssm(*op)));
    all.extend(
        cloudtrail::CloudTrailOperation::ALL
            .iter()
            .map(|op| Operation::CloudTrail(*op)),
    );
    all
}

fn dispatch(op: Operation, body: &[u8]) -> Option<Result<Vec<u8>, ApiError>> {
    match op {
        Operation::Kms(op) => run_ready(kms::dispatch(&Null, &Viewer, op, body)),
        Operation::SecretsManager(op) => {
            run_ready(secretsmanager::dispatch(&Null, &Viewer, op, body))
        }
        Operation::Ssm(op) => run_ready(ssm::dispatch(&Null, &Viewer, op, body)),
        Operation::CloudTrail(op) => run_ready(cloudtrail::dispatch(&Null, &Viewer, op, body)),
        Operation::Sts(_) | Operation::Iam(_) => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let (target, body) = split_at_marker(data, b"\n");
    let target_text = String::from_utf8_lossy(target);
    let op = match route::resolve_target(&target_text) {
        Ok(op) => op,
        Err(e) => {
            let _ = e.to_json("message");
            let all = all_json_operations();
            all[name_hash(target) % all.len()]
        }
    };
    let answer = dispatch(op, body).expect("the default implementation never waits");
    match answer {
        // Every operation of `Null` is unsupported: a body can only fail to decode, fail
        // validation, or reach the (unsupported) implementation.
        Ok(_) => panic!("{} succeeded on Null", op.name()),
        Err(e) => {
            let json = e.to_json(op.service().message_key());
            assert!(
                serde_json::from_slice::<serde_json::Value>(&json).is_ok(),
                "error body is not JSON"
            );
            assert!((400..600).contains(&e.status()));
        }
    }
});
