//! What anchors the trail outside its own files, so that deleting its newest events together
//! with the digests that cover them (tail truncation) is detected, and what tells a pruned
//! head from a deleted one.
//!
//! - The **anchor**: the latest signed digest (and the latest signed prune record) written
//!   into the key store's own database at every digest — every `digest_interval` while
//!   events arrive, every `digest_every_events`, and at shutdown. The writer refuses to
//!   continue a trail that ends before its anchor; `keyhold audit verify` fails on one.
//! - **Digest files**: the same signed digests written, when `[audit] digest_dir` is set,
//!   to a directory outside the data directory (another disk, a mount of another machine),
//!   as CloudTrail delivers digest files to another bucket; `keyhold audit verify --digest`
//!   checks a trail against them.
//!
//! Both are signed with the trail's key: they can be replayed (an older anchor put back),
//! not forged. That is why digest files kept elsewhere are the stronger evidence.
//!
//! Everything here is about documents and files, not about how the trail stores its
//! events, so it carries over to another event store.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::chain::{DigestDocument, PruneDocument};

/// A signed document (a digest or a prune record) as stored and exchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    pub document: String,
    pub signature: Vec<u8>,
}

/// The trail's anchor: the latest digest and the latest prune record, both signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchor {
    pub digest: Signed,
    pub prune: Option<Signed>,
}

#[derive(Serialize, Deserialize)]
struct AnchorJson {
    digest: String,
    signature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prune: Option<PruneJson>,
}

/// A signed prune record as stored and exported: `{"record": "<document>", "signature":
/// "<base64>"}`.
#[derive(Serialize, Deserialize)]
pub struct PruneJson {
    record: String,
    signature: String,
}

impl From<&Signed> for PruneJson {
    fn from(prune: &Signed) -> Self {
        Self {
            record: prune.document.clone(),
            signature: STANDARD.encode(&prune.signature),
        }
    }
}

impl TryFrom<PruneJson> for Signed {
    type Error = anyhow::Error;
    fn try_from(json: PruneJson) -> anyhow::Result<Self> {
        Ok(Self {
            signature: STANDARD
                .decode(&json.signature)
                .context("the prune record's signature is not base64")?,
            document: json.record,
        })
    }
}

impl Anchor {
    pub fn to_bytes(&self) -> Vec<u8> {
        let json = AnchorJson {
            digest: self.digest.document.clone(),
            signature: STANDARD.encode(&self.digest.signature),
            prune: self.prune.as_ref().map(PruneJson::from),
        };
        serde_json::to_vec(&json).unwrap_or_default()
    }

    pub fn parse(bytes: &[u8]) -> anyhow::Result<Self> {
        let json: AnchorJson =
            serde_json::from_slice(bytes).context("the audit anchor is not readable")?;
        let decode = |s: &str| {
            STANDARD
                .decode(s)
                .context("the audit anchor's signature is not base64")
        };
        Ok(Self {
            digest: Signed {
                signature: decode(&json.signature)?,
                document: json.digest,
            },
            prune: json.prune.map(Signed::try_from).transpose()?,
        })
    }

    /// The anchored digest's document (unverified).
    pub fn digest_document(&self) -> Option<DigestDocument> {
        DigestDocument::parse(&self.digest.document)
    }

    /// The anchored prune record's document (unverified).
    pub fn prune_document(&self) -> Option<PruneDocument> {
        self.prune
            .as_ref()
            .and_then(|p| PruneDocument::parse(&p.document))
    }
}

/// What a digest file holds: `{"digest": "<document>", "signature": "<base64>",
/// "publicKey": "<base64>"}` (the shape `keyhold audit export` writes too).
pub fn digest_file_json(digest: &Signed, public_key: &[u8]) -> Vec<u8> {
    let value = serde_json::json!({
        "digest": digest.document,
        "signature": STANDARD.encode(&digest.signature),
        "publicKey": STANDARD.encode(public_key),
    });
    serde_json::to_vec_pretty(&value).unwrap_or_default()
}

/// A digest file's name: `NNNNNN-digest.json` by digest sequence.
pub fn digest_file_name(sequence: i64) -> String {
    format!("{sequence:06}-digest.json")
}

/// Writes a digest file into `dir` durably (a temporary file, fsync, rename, fsync of the
/// directory), so a crash leaves either no file or the whole one.
pub fn write_digest_file(dir: &Path, digest: &Signed, public_key: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let sequence = DigestDocument::parse(&digest.document)
        .map(|d| d.digest_sequence)
        .context("not a digest document")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(digest_file_name(sequence));
    let temporary = dir.join(format!(".{}.tmp", digest_file_name(sequence)));
    let mut file = std::fs::File::create(&temporary)
        .with_context(|| format!("creating {}", temporary.display()))?;
    file.write_all(&digest_file_json(digest, public_key))?;
    file.sync_all()?;
    std::fs::rename(&temporary, &path)
        .with_context(|| format!("renaming {} to {}", temporary.display(), path.display()))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads one digest file: the signed digest and the public key it names.
pub fn read_digest_file(path: &Path) -> anyhow::Result<(Signed, Option<Vec<u8>>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a digest file", path.display()))?;
    let document = value["digest"]
        .as_str()
        .with_context(|| format!("{} has no digest", path.display()))?
        .to_owned();
    let signature = STANDARD
        .decode(value["signature"].as_str().unwrap_or_default())
        .with_context(|| format!("{} has no readable signature", path.display()))?;
    let public_key = value["publicKey"]
        .as_str()
        .and_then(|k| STANDARD.decode(k).ok());
    Ok((
        Signed {
            document,
            signature,
        },
        public_key,
    ))
}

/// The digest files a `--digest` argument names: the file itself, or every
/// `*-digest.json` in a directory (in name order, so by sequence).
pub fn digest_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("reading {}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with("-digest.json") && !n.starts_with('.'))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        anyhow::bail!("{} holds no digest files", path.display());
    }
    Ok(files)
}
