//! The seal commands: `keyhold init --shares N --threshold K`, `unseal`, `seal`, `status`
//! and `rekey` (docs/seal.md).

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use keyhold_server::Config;
use keyhold_server::seal::client;
use zeroize::Zeroizing;

/// Writes the shares, one per line to stdout or one file each in `share_dir`.
pub fn hand_out(
    shares: &[keyhold_crypto::seal::RootShare],
    threshold: u8,
    share_dir: Option<&Path>,
) -> anyhow::Result<()> {
    match share_dir {
        None => {
            println!(
                "The root key was split into {} shares; any {threshold} of them unseal Keyhold.\n\
                 They are shown this once and exist nowhere else: give each to a different \
                 operator now.\n",
                shares.len()
            );
            let mut out = std::io::stdout().lock();
            for share in shares {
                writeln!(out, "{}", share.to_text().as_str())?;
            }
            writeln!(out)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for share in shares {
                let path = dir.join(format!("share-{}.txt", share.index()));
                write_private(&path, share.to_text().as_bytes())?;
            }
            println!(
                "The root key was split into {} shares, written to {}/share-*.txt (mode 0600); \
                 any {threshold} of them unseal Keyhold. Give each file to a different \
                 operator and delete it here.\n",
                shares.len(),
                dir.display()
            );
        }
    }
    Ok(())
}

fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    file.write_all(contents)?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Prints a seal status document for people.
fn print_status(answer: &client::Answer) {
    let body = &answer.body;
    let sealed = body["sealed"].as_bool().unwrap_or(true);
    println!(
        "Seal:      {}\nSealed:    {}",
        body["kind"].as_str().unwrap_or("?"),
        sealed
    );
    if let (Some(threshold), Some(shares)) = (body["threshold"].as_u64(), body["shares"].as_u64()) {
        println!("Threshold: {threshold} of {shares}");
        if sealed {
            println!(
                "Progress:  {}/{threshold}",
                body["progress"].as_u64().unwrap_or(0)
            );
        }
    }
    if let Some(message) = body["message"].as_str() {
        println!("{message}");
    }
}

/// `keyhold status`: exits 0 unsealed, 2 sealed.
pub fn status(config: &Config) -> anyhow::Result<()> {
    let answer = runtime()?.block_on(client::status(client::address(config)))?;
    print_status(&answer);
    if answer.body["sealed"].as_bool() == Some(false) {
        Ok(())
    } else {
        std::process::exit(2)
    }
}

/// `keyhold unseal [SHARE]`: the share from the argument or from stdin.
pub fn unseal(config: &Config, share: Option<String>) -> anyhow::Result<()> {
    let share = Zeroizing::new(match share {
        Some(share) => share,
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprintln!("Enter one unseal share:");
            }
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line
        }
    });
    let token = client::read_token(&config.data_dir)?;
    let answer = runtime()?.block_on(client::unseal(client::address(config), &token, &share))?;
    print_status(&answer);
    if let Some(error) = answer.error() {
        bail!("{error}");
    }
    Ok(())
}

/// `keyhold seal`.
pub fn seal(config: &Config) -> anyhow::Result<()> {
    let token = client::read_token(&config.data_dir)?;
    let answer = runtime()?.block_on(client::seal(client::address(config), &token))?;
    print_status(&answer);
    if let Some(error) = answer.error() {
        bail!("{error}");
    }
    Ok(())
}

/// `keyhold init --shares N --threshold K`.
pub fn init_shamir(
    config: &Config,
    shares: u8,
    threshold: u8,
    share_dir: Option<&Path>,
) -> anyhow::Result<()> {
    let (split, admin) =
        runtime()?.block_on(keyhold_server::initialize_shamir(config, shares, threshold))?;
    hand_out(&split, threshold, share_dir)?;
    if let Some(admin) = admin {
        crate::print_admin(&admin);
    }
    Ok(())
}

/// Shamir shares from stdin, one per line, up to its end (a prompt first on a terminal).
pub fn read_shares(prompt: &str) -> anyhow::Result<Vec<keyhold_crypto::seal::RootShare>> {
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprintln!("{prompt}, one per line, then end with Ctrl-D:");
    }
    let mut input = Zeroizing::new(String::new());
    std::io::stdin().lock().read_to_string(&mut input)?;
    input
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(keyhold_crypto::seal::RootShare::parse)
        .collect::<Result<Vec<_>, _>>()
        .context("reading the shares")
}

/// `keyhold rekey`: reads shares of the current set from stdin (one per line), then hands
/// out the new set.
pub fn rekey(
    config: &Config,
    shares: u8,
    threshold: u8,
    share_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let current = read_shares("Enter shares of the current set")?;
    let split = runtime()?.block_on(keyhold_server::rekey_shamir(
        config, &current, shares, threshold,
    ))?;
    println!("Rekeyed: the old shares no longer unseal this data directory.");
    hand_out(&split, threshold, share_dir.as_deref())
}
