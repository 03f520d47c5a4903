//! `keyhold audit verify`, `export`, `reanchor` and `reindex`.

use std::path::PathBuf;

use anyhow::bail;
use keyhold_proto::Timestamp;
use keyhold_server::audit::cluster_verify::{ClusterRequest, ClusterVerified, verify_cluster};
use keyhold_server::audit::offline::{self, KeyStore, KeyTrust, Verified};
use keyhold_server::config::StorageUrl;

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Verify a trail: a data directory's (--data-dir) or exported files (PATH). Reports the
    /// first event that was changed, removed, inserted or reordered and any gap in the
    /// digests; exits non-zero if there is one. With --cluster: every node of a cluster
    /// sharing a PostgreSQL store (--storage), each node's data directory given with
    /// --data-dir, against the store's signed cluster digest chain.
    Verify {
        /// The data directory whose trail to verify (with --cluster: each node's, repeated).
        #[arg(long, conflicts_with = "path")]
        data_dir: Vec<PathBuf>,
        /// Verify the whole cluster sharing the store --storage names: the cluster digest
        /// chain, and the trail of every node it names (each must be given with
        /// --data-dir), which must reach the digest the chain recorded for it. With
        /// --public-key, pins the cluster signing key.
        #[arg(long, requires = "storage", conflicts_with_all = ["node_id", "digests"])]
        cluster: bool,
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
        /// Signed digest files kept outside the data directory (`[audit] digest_dir`): a
        /// file or a directory of them; repeatable. The trail must still reach every one of
        /// them, so events removed from its end are detected.
        #[arg(long = "digest", value_name = "FILE")]
        digests: Vec<PathBuf>,
        /// The node's store when it is PostgreSQL (`storage`, a postgres:// URL): the
        /// trail's anchor and the sealed domain key are read there instead of from
        /// <data-dir>/keyhold.db.
        #[arg(long)]
        storage: Option<String>,
        /// With --storage: the node's `node_id` (its anchor is `audit.anchor.NODE`).
        #[arg(long, requires = "storage")]
        node_id: Option<String>,
    },
    /// Accept a data directory's trail as it is now after it lost events from its end: the
    /// key store's anchor is set to the trail's last digest, so the server starts again.
    /// Preserve the damaged trail (<data-dir>/audit/) first; run with the server stopped.
    Reanchor {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Rebuild the index LookupEvents reads (<data-dir>/audit/index.db) from the trail's
    /// segments; run with the server stopped.
    Reindex {
        #[arg(long)]
        data_dir: PathBuf,
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
            cluster,
            path,
            key_file,
            public_key,
            digests,
            storage,
            node_id,
        } => {
            if cluster {
                let Some(storage) = storage
                    .as_deref()
                    .map(StorageUrl::parse)
                    .transpose()?
                    .flatten()
                else {
                    bail!("--storage must be a postgres:// URL");
                };
                if data_dir.is_empty() {
                    bail!("give each node's data directory with --data-dir");
                }
                let verified = verify_cluster(&ClusterRequest {
                    storage: storage.as_str(),
                    data_dirs: &data_dir,
                    key_file,
                    public_key: public_key.as_deref(),
                })
                .await?;
                return report_cluster(&verified);
            }
            if storage.is_some() && data_dir.is_empty() {
                bail!("--storage needs --data-dir");
            }
            if data_dir.len() > 1 {
                bail!("--data-dir is given once, unless with --cluster");
            }
            let verified = match (data_dir.into_iter().next(), path) {
                (Some(dir), None) => {
                    let key_store = match storage {
                        Some(url) => match StorageUrl::parse(&url)? {
                            Some(storage) => KeyStore::Postgres {
                                url: storage.as_str().to_owned(),
                                node_id,
                            },
                            None => bail!("--storage must be a postgres:// URL"),
                        },
                        None => KeyStore::Sqlite(dir.join("keyhold.db")),
                    };
                    offline::verify_trail(
                        &dir,
                        &key_store,
                        offline::RootSource::KeyFile(key_file),
                        public_key.as_deref(),
                        &digests,
                    )
                    .await?
                }
                (None, Some(path)) => {
                    offline::verify_exported_with(&path, public_key.as_deref(), &digests)?
                }
                _ => bail!("give either --data-dir DIR or a PATH of exported files"),
            };
            report(&verified)
        }
        AuditCommand::Reindex { data_dir } => {
            let events = offline::reindex(&data_dir)?;
            println!("indexed {events} audit events");
            Ok(())
        }
        AuditCommand::Reanchor { data_dir } => {
            match offline::reanchor(&data_dir)? {
                offline::Reanchored::To { digest, last_event } => println!(
                    "the audit trail is anchored at digest {digest} (events up to {last_event}): the server will continue it"
                ),
                offline::Reanchored::Cleared => {
                    println!("the audit trail has no digest: the anchor was removed")
                }
            }
            Ok(())
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

/// Prints a cluster's verification; fails when it found a problem.
fn report_cluster(v: &ClusterVerified) -> anyhow::Result<()> {
    let trust = match v.trust {
        KeyTrust::Unsealed => "unsealed with the root key",
        KeyTrust::Pinned => "pinned on the command line",
        KeyTrust::SelfDeclared => {
            "declared by the store itself (give --key-file, or pin it with --public-key)"
        }
    };
    match &v.fingerprint {
        Some(f) => println!("cluster signing key {f} ({trust})"),
        None => println!("cluster signing key: none"),
    }
    println!("{} cluster digests", v.chain.digests);
    if let Some(newest) = &v.chain.newest {
        println!(
            "newest cluster digest: {}, signed {}{}, naming {} node(s)",
            newest.cluster_digest_sequence,
            newest.cluster_digest_time,
            age(&newest.cluster_digest_time),
            newest.nodes.len()
        );
    }
    for node in &v.nodes {
        println!();
        println!("{} ({}):", node.label, node.data_dir.display());
        print_trail(&node.verified);
        let verdict = if node.verified.report.ok() {
            "OK"
        } else {
            "FAILED"
        };
        println!("{}: {verdict}", node.label);
    }
    println!();
    for warning in &v.warnings {
        println!("WARNING: {warning}");
    }
    for problem in &v.problems {
        println!("FAILED: {problem}");
    }
    if v.ok() {
        println!("cluster audit trail verified: OK");
        return Ok(());
    }
    bail!("the cluster's audit trail does not verify")
}

/// ", N s ago" for an ISO 8601 time, or nothing if it does not parse.
fn age(time: &str) -> String {
    Timestamp::parse_iso8601(time)
        .map(|t| (Timestamp::now().as_millis() - t.as_millis()) / 1000)
        .map_or_else(String::new, |s| format!(", {s} s ago"))
}

/// Prints a verification; fails when it found a problem.
pub(crate) fn report(v: &Verified) -> anyhow::Result<()> {
    print_trail(v);
    let r = &v.report;
    if r.ok() {
        println!("audit trail verified: OK");
        return Ok(());
    }
    bail!("the audit trail does not verify")
}

/// Prints what a trail's verification found, its problems included.
fn print_trail(v: &Verified) {
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
    match &r.newest_digest {
        Some(d) => {
            println!(
                "newest digest: {} over events up to {}, signed {}{} (from {})",
                d.sequence,
                d.last_event,
                d.time,
                age(&d.time),
                d.source
            );
        }
        None => println!("newest digest: none"),
    }
    if let Some(through) = r.pruned_through {
        println!("events 1..{through} were pruned by retention (signed prune record)");
    }
    for warning in &v.warnings {
        println!("WARNING: {warning}");
    }
    for problem in &r.problems {
        println!("FAILED: {problem}");
    }
}
