//! `keyhold migrate`: brings the store's schema up to date without starting a server.

use keyhold_server::config::Config;

pub fn run(config: &Config) -> anyhow::Result<()> {
    let report = super::current_thread()?.block_on(keyhold_server::migrate_store(config))?;
    println!("{report}");
    Ok(())
}
