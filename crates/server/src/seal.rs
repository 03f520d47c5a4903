//! Opening the seal: the root key provider unseals the domain key stored in the data
//! directory. A key file seal opens at start (generating both keys on first start); a Shamir
//! seal starts sealed and opens when K operators have entered their shares
//! ([`ShamirUnseal`]); `keyhold init --shares N --threshold K` creates its keys
//! ([`initialize_shamir`]) and `keyhold rekey` replaces its shares ([`rekey_shamir`]).

pub mod admin;
pub mod client;

use std::path::Path;

use anyhow::{Context, bail};
use keyhold_crypto::seal::{
    DomainKey, KeyFileRoot, Pkcs11Root, RootKeyProvider, RootShare, ShamirRoot,
};
use keyhold_store::MetaStore;
use serde::{Deserialize, Serialize};

use crate::config::{Config, Mode, PinSource, SealConfig};

/// The meta entry holding the domain key, sealed under the root key.
pub(crate) const DOMAIN_KEY: &str = "domain_key.v1";
/// The meta entry describing a Shamir share set (no secret: its size and threshold).
pub(crate) const SHAMIR_SET: &str = "seal.shamir.v1";

/// The public description of a Shamir share set, kept beside the sealed domain key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShamirSet {
    pub shares: u8,
    pub threshold: u8,
}

/// The seal kind's name as status output shows it.
pub fn kind_name(config: &Config) -> &'static str {
    match &config.seal {
        None | Some(SealConfig::KeyFile { .. }) => "key_file",
        Some(SealConfig::Shamir) => "shamir",
        Some(SealConfig::Pkcs11(_)) => "pkcs11",
    }
}

/// Opens the seal at start: the domain key for seals that open themselves (a key file,
/// created with the domain key on first start), `None` for a Shamir seal, which starts
/// sealed until its shares are entered.
pub async fn open(config: &Config, store: &dyn MetaStore) -> anyhow::Result<Option<DomainKey>> {
    match &config.seal {
        None | Some(SealConfig::KeyFile { .. }) => open_key_file(config, store).await.map(Some),
        Some(SealConfig::Shamir) => {
            if store.get_meta(DOMAIN_KEY).await?.is_none() {
                bail!(
                    "{} has no root key yet: the Shamir seal's key is created by \
                     `keyhold init --config FILE --shares N --threshold K`",
                    config.data_dir.display()
                );
            }
            shamir_set(store).await?;
            Ok(None)
        }
        Some(SealConfig::Pkcs11(pkcs11)) => {
            let root = pkcs11_root(pkcs11)?;
            // Token calls take milliseconds and happen at start and unseal only: they run
            // inline rather than on a blocking thread.
            let created = root.ensure_key().context("opening the PKCS#11 root key")?;
            if created {
                tracing::info!(
                    token = %pkcs11.token_label,
                    key = %pkcs11.key_label,
                    "generated the root key in the PKCS#11 token (non-extractable AES-256)"
                );
            }
            let describe = format!(
                "PKCS#11 key {:?} in token {:?}",
                pkcs11.key_label, pkcs11.token_label
            );
            open_with(&root, &describe, store).await.map(Some)
        }
    }
}

/// The share set of a Shamir-sealed data directory.
pub async fn shamir_set(store: &dyn MetaStore) -> anyhow::Result<ShamirSet> {
    let raw = store
        .get_meta(SHAMIR_SET)
        .await?
        .context("the data directory has no Shamir share set: it was not initialized with `keyhold init --shares`")?;
    serde_json::from_slice(&raw).context("the Shamir share set record is damaged")
}

/// The PKCS#11 provider of a `[seal] kind = "pkcs11"`, with its PIN read from the file or
/// the environment variable the config names.
pub fn pkcs11_root(config: &crate::config::Pkcs11Config) -> anyhow::Result<Pkcs11Root> {
    let pin = match &config.pin {
        PinSource::File(path) => {
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading the token PIN file {}", path.display()))?,
            );
            zeroize::Zeroizing::new(text.trim_end_matches(['\r', '\n']).to_owned())
        }
        PinSource::Env(var) => {
            zeroize::Zeroizing::new(std::env::var(var).with_context(|| {
                format!("the token PIN's environment variable {var} is not set")
            })?)
        }
    };
    Ok(Pkcs11Root::new(
        &config.module,
        &config.token_label,
        &config.key_label,
        pin,
    ))
}

async fn open_key_file(config: &Config, store: &dyn MetaStore) -> anyhow::Result<DomainKey> {
    let root = root_provider(config)?;
    let describe = root.path().display().to_string();
    open_with(&root, &describe, store).await
}

/// Opens the domain key with `root`, or on first start generates it and seals it.
async fn open_with(
    root: &dyn RootKeyProvider,
    describe: &str,
    store: &dyn MetaStore,
) -> anyhow::Result<DomainKey> {
    if let Some(sealed) = store.get_meta(DOMAIN_KEY).await? {
        return DomainKey::unseal(root, &sealed).map_err(|e| match e {
            keyhold_crypto::CryptoError::Token(_) => anyhow::anyhow!("{e}"),
            _ => anyhow::anyhow!(
                "the root key ({describe}) does not open this data directory's domain key: wrong root key or a damaged database"
            ),
        });
    }
    let domain = DomainKey::generate()?;
    let sealed = domain.seal(root)?;
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
    Ok(DomainKey::unseal(root, &sealed)?)
}

fn root_provider(config: &Config) -> anyhow::Result<KeyFileRoot> {
    let Some(path) = config.key_file_path() else {
        bail!("this seal kind is not a key file");
    };
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

/// `keyhold init --shares N --threshold K`: creates a new root key, splits it into shares,
/// and seals a new domain key under it. Refuses a data directory that already has a domain
/// key. Returns the domain key (to create the administrator with) and the shares, which
/// exist nowhere else: the caller hands them out and forgets them.
pub async fn initialize_shamir(
    store: &dyn MetaStore,
    shares: u8,
    threshold: u8,
) -> anyhow::Result<(DomainKey, Vec<RootShare>)> {
    check_shamir_parameters(shares, threshold)?;
    if store.get_meta(DOMAIN_KEY).await?.is_some() {
        bail!("this data directory already has a root key; `keyhold rekey` makes a new share set");
    }
    let (root, split) = ShamirRoot::generate(shares, threshold)?;
    let domain = DomainKey::generate()?;
    let sealed = domain.seal(&root)?;
    let set = serde_json::to_vec(&ShamirSet { shares, threshold })?;
    // The set first: a data directory with a domain key but no set could not be unsealed.
    // (A set without a domain key is what an interrupted `init` leaves: replace it.)
    match store.get_meta(SHAMIR_SET).await? {
        None => {
            store.insert_meta_if_absent(SHAMIR_SET, &set).await?;
        }
        Some(old) => {
            store.replace_meta(SHAMIR_SET, &old, &set).await?;
        }
    }
    if !store.insert_meta_if_absent(DOMAIN_KEY, &sealed).await? {
        bail!("another process initialized this data directory at the same time");
    }
    Ok((domain, split))
}

fn check_shamir_parameters(shares: u8, threshold: u8) -> anyhow::Result<()> {
    if threshold == 0 || shares == 0 || threshold > shares {
        bail!(
            "--threshold must be between 1 and --shares (at most 255), got {threshold} of {shares}"
        );
    }
    Ok(())
}

/// `keyhold rekey`: checks `current` (at least the threshold of the current set) by opening
/// the domain key with the root key they rebuild, then makes a new root key with `shares`
/// shares of which `threshold` rebuild it, and re-seals only the domain key under it. The
/// old shares stop working; everything sealed under the domain key stays as it is.
pub async fn rekey_shamir(
    store: &dyn MetaStore,
    current: &[RootShare],
    shares: u8,
    threshold: u8,
) -> anyhow::Result<Vec<RootShare>> {
    check_shamir_parameters(shares, threshold)?;
    let set = shamir_set(store).await?;
    let sealed = store
        .get_meta(DOMAIN_KEY)
        .await?
        .context("this data directory has no root key yet: run `keyhold init` first")?;
    let old_root = ShamirRoot::combine(current, set.threshold).map_err(|_| {
        anyhow::anyhow!(
            "rekeying needs {} distinct shares of the current set",
            set.threshold
        )
    })?;
    let domain = DomainKey::unseal(&old_root, &sealed).map_err(|_| {
        anyhow::anyhow!(
            "the shares given do not rebuild the current root key (a wrong or mixed share set)"
        )
    })?;
    drop(old_root);
    let (root, split) = ShamirRoot::generate(shares, threshold)?;
    let resealed = domain.seal(&root)?;
    let old_set = store.get_meta(SHAMIR_SET).await?.unwrap_or_default();
    let new_set = serde_json::to_vec(&ShamirSet { shares, threshold })?;
    // The domain key first, then the set: both compare-and-swap, so a concurrent rekey
    // makes this one fail rather than mixing the two.
    if !store.replace_meta(DOMAIN_KEY, &sealed, &resealed).await? {
        bail!("the root key changed while rekeying (another rekey?); nothing was changed");
    }
    if !store.replace_meta(SHAMIR_SET, &old_set, &new_set).await? {
        bail!("the share set changed while rekeying; run `keyhold status` and check");
    }
    Ok(split)
}

/// What entering one share did.
pub enum UnsealStep {
    /// More shares are needed.
    Progress { have: usize },
    /// The threshold was reached and the shares rebuilt the root key: the domain key.
    Unsealed(DomainKey),
}

/// Why a share was not accepted.
#[derive(Debug)]
pub enum UnsealError {
    /// Not a share (malformed or mistyped); progress is kept.
    Malformed,
    /// A share with this index was already entered; progress is kept.
    Duplicate,
    /// The threshold was reached but the shares do not open the domain key: a wrong or
    /// mixed share set. Progress is reset.
    WrongSet,
    /// The store could not be read.
    Store(anyhow::Error),
}

/// The shares entered so far towards unsealing a Shamir seal. Shares are zeroized when
/// dropped (reset, success or seal).
#[derive(Default)]
pub struct ShamirUnseal {
    entered: Vec<RootShare>,
}

impl ShamirUnseal {
    pub fn progress(&self) -> usize {
        self.entered.len()
    }

    /// Forgets the shares entered so far.
    pub fn reset(&mut self) {
        self.entered.clear();
    }

    /// Enters one share (text); at the threshold, rebuilds the root key and checks it by
    /// opening the sealed domain key (AES-GCM tag): a wrong or mixed set is reported and
    /// the progress reset.
    pub async fn enter(
        &mut self,
        store: &dyn MetaStore,
        share: &str,
    ) -> Result<UnsealStep, UnsealError> {
        let share = RootShare::parse(share).map_err(|_| UnsealError::Malformed)?;
        if self.entered.iter().any(|s| s.index() == share.index()) {
            return Err(UnsealError::Duplicate);
        }
        let set = shamir_set(store).await.map_err(UnsealError::Store)?;
        self.entered.push(share);
        if self.entered.len() < usize::from(set.threshold) {
            return Ok(UnsealStep::Progress {
                have: self.entered.len(),
            });
        }
        let sealed = store
            .get_meta(DOMAIN_KEY)
            .await
            .map_err(|e| UnsealError::Store(e.into()))?
            .ok_or_else(|| UnsealError::Store(anyhow::anyhow!("the domain key is missing")))?;
        let shares = std::mem::take(&mut self.entered);
        let opened = ShamirRoot::combine(&shares, set.threshold)
            .ok()
            .and_then(|root| DomainKey::unseal(&root, &sealed).ok());
        drop(shares);
        opened
            .map(UnsealStep::Unsealed)
            .ok_or(UnsealError::WrongSet)
    }
}
