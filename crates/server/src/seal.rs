//! Opening the seal at startup: the root key provider unseals the domain key stored in the
//! data directory (generating both on first start).

use std::path::Path;

use anyhow::Context;
use keyhold_crypto::seal::{DomainKey, KeyFileRoot, RootKeyProvider};
use keyhold_store::MetaStore;

use crate::config::{Config, Mode};

/// The meta entry holding the domain key, sealed under the root key.
pub(crate) const DOMAIN_KEY: &str = "domain_key.v1";

/// Loads (or, on first start, creates) the root key and the domain key.
pub async fn open(config: &Config, store: &dyn MetaStore) -> anyhow::Result<DomainKey> {
    let root = root_provider(config)?;
    if let Some(sealed) = store.get_meta(DOMAIN_KEY).await? {
        return DomainKey::unseal(&root, &sealed).map_err(|_| {
            anyhow::anyhow!(
                "the root key ({}) does not open this data directory's domain key: wrong root key or a damaged database",
                config.key_file_path().display()
            )
        });
    }
    let domain = DomainKey::generate()?;
    let sealed = domain.seal(&root)?;
    if store.insert_meta_if_absent(DOMAIN_KEY, &sealed).await? {
        tracing::info!(
            "generated a new domain key, sealed under the {} root key",
            root.kind()
        );
        return Ok(domain);
    }
    // Another process initialized the data directory at the same time: use its key.
    let sealed = store
        .get_meta(DOMAIN_KEY)
        .await?
        .context("domain key vanished")?;
    Ok(DomainKey::unseal(&root, &sealed)?)
}

fn root_provider(config: &Config) -> anyhow::Result<KeyFileRoot> {
    let path = config.key_file_path();
    ensure_parent(&path)?;
    let (root, created) = KeyFileRoot::load_or_create(&path)
        .with_context(|| format!("opening the root key file {}", path.display()))?;
    match (config.mode, created) {
        (Mode::Dev, true) => tracing::warn!(
            path = %path.display(),
            "DEV MODE: generated an unprotected root key file beside the data. This is insecure: \
             anyone who can read the data directory can decrypt everything in it."
        ),
        (Mode::Dev, false) => tracing::warn!(
            path = %path.display(),
            "DEV MODE: the root key is an unprotected file; do not use this for real secrets"
        ),
        (Mode::Strict, true) => tracing::warn!(
            path = %path.display(),
            "generated a new root key file: back it up and keep it away from the data directory; \
             without it nothing stored here can be decrypted"
        ),
        (Mode::Strict, false) => {}
    }
    Ok(root)
}

fn ensure_parent(path: &Path) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating directory {}", parent.display()))?;
    }
    Ok(())
}
