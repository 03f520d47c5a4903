//! `keyhold migrate`: brings the store's schema up to date without starting a server.
//! `keyhold migrate-store`: copies a node's state into another store and verifies it.

use std::path::PathBuf;

use anyhow::bail;
use keyhold_server::config::Config;
use keyhold_server::ops::move_store::{self, AuditCheck, MoveRequest};

pub fn run(config: &Config) -> anyhow::Result<()> {
    let report = super::current_thread()?.block_on(keyhold_server::migrate_store(config))?;
    println!("{report}");
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct MigrateStoreArgs {
    /// The store to copy: `sqlite:DIR` (a data directory; a bare path too) or
    /// `postgres://USER@HOST:PORT/DATABASE`. Its server must be stopped.
    #[arg(long)]
    from: String,
    /// The store to copy into, empty (a new database, or a schema chosen with
    /// `?options=-c%20search_path%3DNAME`): its migrations are applied first.
    #[arg(long)]
    to: String,
    /// The data directory whose audit trail goes with the state [default: the SQLite
    /// side's]. The node keeps using it on the new store.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The node's `node_id` on the PostgreSQL side: its audit anchor is renamed from
    /// `audit.anchor` (SQLite) to `audit.anchor.NODE` (PostgreSQL), or back.
    #[arg(long)]
    node_id: Option<String>,
    /// A root key file (key-file seal): the audit check then unseals the trail's signing
    /// key through the domain key the target holds [default: <data-dir>/root.key if any].
    #[arg(long)]
    key_file: Option<PathBuf>,
}

pub fn run_store(args: MigrateStoreArgs) -> anyhow::Result<()> {
    let request = MoveRequest {
        from: args.from,
        to: args.to,
        data_dir: args.data_dir,
        node_id: args.node_id,
        key_file: args.key_file,
    };
    let report = super::current_thread()?.block_on(move_store::migrate_store(&request))?;
    println!("{}", report.copy);
    for (from, to) in &report.renamed {
        println!("renamed the meta row {from} to {to} (the node's audit anchor)");
    }
    let audit = match &report.audit {
        AuditCheck::Verified { data_dir, verified } => {
            println!(
                "audit trail of {} against the target's anchor:",
                data_dir.display()
            );
            super::audit::report(verified)
        }
        AuditCheck::NoTrail(dir) => {
            println!("audit trail: none in {}", dir.display());
            Ok(())
        }
        AuditCheck::NotChecked => {
            println!("audit trail: not checked (give --data-dir to check a node's trail)");
            Ok(())
        }
    };
    if !report.copy.ok() {
        bail!(
            "the target does not match the source; it was written: drop it (or empty it) before trying again"
        );
    }
    audit?;
    println!(
        "migrate-store: the target holds the source's state; point the node's `storage` at it"
    );
    Ok(())
}
