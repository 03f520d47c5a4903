//! `keyhold audit verify` and `keyhold audit export`.

use std::path::PathBuf;

use anyhow::bail;
use keyhold_server::audit::offline::{self, KeyTrust, Verified};

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Verify a trail: a data directory's (--data-dir) or exported files (PATH). Reports the
    /// first event that was changed, removed, inserted or reordered and any gap in the
    /// digests; exits non-zero if there is one.
    Verify {
        /// The data directory whose trail to verify.
        #[arg(long, conflicts_with = "path")]
        data_dir: Option<PathBuf>,
        /// Exported files: a directory written by `keyhold audit export`, or one events file.
        path: Option<PathBuf>,
        /// The root key file (default: <data-dir>/root.key); with it the signing key is
        /// unsealed, which proves the trail's public key genuine.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// The expected signing key, as an earlier verification printed it: the hex public
        /// key, or its fingerprint. The trail must be signed with it.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Export a data directory's trail as CloudTrail-shaped files with their signed digests.
    Export {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

pub async fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify {
            data_dir,
            path,
            key_file,
            public_key,
        } => {
            let verified = match (data_dir, path) {
                (Some(dir), None) => {
                    offline::verify_data_dir(&dir, key_file, public_key.as_deref()).await?
                }
                (None, Some(path)) => offline::verify_exported(&path, public_key.as_deref())?,
                _ => bail!("give either --data-dir DIR or a PATH of exported files"),
            };
            report(&verified)
        }
        AuditCommand::Export { data_dir, out } => {
            let (files, events) = offline::export_data_dir(&data_dir, &out)?;
            println!(
                "exported {events} events in {files} files to {}",
                out.display()
            );
            Ok(())
        }
    }
}

fn report(v: &Verified) -> anyhow::Result<()> {
    let r = &v.report;
    let trust = match v.trust {
        KeyTrust::Unsealed => "unsealed from the data directory",
        KeyTrust::Pinned => "pinned on the command line",
        KeyTrust::SelfDeclared => {
            "declared by the trail itself (pin it with --public-key to prove authenticity)"
        }
    };
    println!("signing key {} ({trust})", v.fingerprint);
    println!("public key {}", v.public_key_hex());
    println!(
        "{} events, {} digests, {} events after the last digest",
        r.events, r.digests, r.unsealed
    );
    if r.ok() {
        println!("audit trail verified: OK");
        return Ok(());
    }
    for problem in &r.problems {
        println!("FAILED: {problem}");
    }
    bail!("the audit trail does not verify")
}
