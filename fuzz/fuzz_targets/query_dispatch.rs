//! awsQuery decoding and validation of every operation of STS and IAM through the generated
//! dispatch, action routing, the audit view of the request, and the XML of every error.
//!
//! Input: a form-encoded body (`Action=AssumeRole&Version=2011-06-15&RoleArn=...`). An
//! `Action` that names no operation still picks one (by a hash of its text).

#![no_main]

use keyhold_fuzz::null::{Null, Viewer};
use keyhold_fuzz::{name_hash, run_ready};
use keyhold_proto::route::{self, Operation};
use keyhold_proto::runtime::query::QueryParams;
use keyhold_proto::{iam, sts};
use libfuzzer_sys::fuzz_target;

fn all_query_operations() -> Vec<Operation> {
    let mut all = Vec::new();
    all.extend(sts::StsOperation::ALL.iter().map(|op| Operation::Sts(*op)));
    all.extend(iam::IamOperation::ALL.iter().map(|op| Operation::Iam(*op)));
    all
}

fuzz_target!(|data: &[u8]| {
    let q = QueryParams::parse(data);
    let op = match route::resolve_action(q.action(), q.version(), None) {
        Ok(op) => op,
        Err(e) => {
            let _ = e.to_xml("https://iam.amazonaws.com/doc/2010-05-08/", "req");
            let all = all_query_operations();
            all[name_hash(q.action().unwrap_or_default().as_bytes()) % all.len()]
        }
    };
    let answer = match op {
        Operation::Sts(op) => run_ready(sts::dispatch(&Null, &Viewer, op, &q, "req")),
        Operation::Iam(op) => run_ready(iam::dispatch(&Null, &Viewer, op, &q, "req")),
        _ => return,
    };
    match answer.expect("the default implementation never waits") {
        Ok(_) => panic!("{} succeeded on Null", op.name()),
        Err(e) => {
            let xml = e.to_xml(op.service().xml_namespace(), "req");
            assert!(xml.starts_with("<"), "error body is not XML");
            assert!((400..600).contains(&e.status()));
        }
    }
});
