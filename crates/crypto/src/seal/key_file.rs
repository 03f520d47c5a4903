//! The development root key: a 256-bit key in a file.
//!
//! A key file stored beside the data it protects protects nothing at rest; it exists so that
//! `keyhold serve` starts with no ceremony. Production uses Shamir shares or PKCS#11.
//!
//! File format (`keyhold-root-key-v1`), 65 bytes:
//!
//! ```text
//! keyhold-root-key-v1\n
//! <the 32-byte key in standard padded base64, 44 characters>\n
//! ```
//!
//! Anything else — other magic, other length, non-canonical base64, trailing bytes — is
//! refused, and so is a file that users other than its owner may access (like ssh does).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use super::{RootKeyProvider, seal_with_key, unseal_with_key};
use crate::material::Key256;
use crate::{CryptoError, SecretBytes, random};

/// A root key read from (or created in) a key file. Development mode only.
pub struct KeyFileRoot {
    key: Key256,
    path: PathBuf,
}

const MAGIC: &[u8] = b"keyhold-root-key-v1\n";
/// Base64 of 32 bytes, padded.
const ENCODED_LEN: usize = 44;
const FILE_LEN: usize = MAGIC.len() + ENCODED_LEN + 1;
/// Read one byte more than a valid file has, to notice trailing bytes.
const READ_LIMIT: usize = FILE_LEN + 1;

impl KeyFileRoot {
    /// Loads the key file at `path`, or creates it with a fresh key if there is none.
    /// Returns whether it was created, so the caller can say loudly that a new (insecure)
    /// root key was generated. The parent directory must exist.
    ///
    /// Creation is atomic and never replaces an existing file: the key is written to a
    /// temporary file (mode 0600) in the same directory and fsynced, then hard-linked into
    /// place — which fails if `path` appeared meanwhile, unlike `rename` — and the directory
    /// is fsynced. If another process won that race, its key is loaded instead.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), CryptoError> {
        match Self::load(path) {
            Err(CryptoError::KeyFile { source, .. })
                if source.kind() == io::ErrorKind::NotFound => {}
            loaded => return loaded.map(|root| (root, false)),
        }
        match create(path)? {
            Some(root) => Ok((root, true)),
            None => Self::load(path).map(|root| (root, false)),
        }
    }

    /// Loads an existing key file; refuses a malformed one
    /// ([`CryptoError::KeyFileFormat`]) or one others may access
    /// ([`CryptoError::KeyFilePermissions`]).
    pub fn load(path: &Path) -> Result<Self, CryptoError> {
        let io_err = |source| CryptoError::KeyFile {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let metadata = file.metadata().map_err(io_err)?;
        if !metadata.is_file() {
            return Err(CryptoError::KeyFileFormat {
                path: path.to_owned(),
            });
        }
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(CryptoError::KeyFilePermissions {
                path: path.to_owned(),
                mode,
            });
        }

        // Capacity reserved up front so reading never reallocates (and leaves no stray copy).
        let mut contents = Zeroizing::new(Vec::with_capacity(READ_LIMIT));
        file.take(READ_LIMIT as u64)
            .read_to_end(&mut contents)
            .map_err(io_err)?;
        let key = parse(&contents).ok_or_else(|| CryptoError::KeyFileFormat {
            path: path.to_owned(),
        })?;
        Ok(Self {
            key,
            path: path.to_owned(),
        })
    }

    /// Where the key lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl RootKeyProvider for KeyFileRoot {
    fn kind(&self) -> &'static str {
        "key-file"
    }

    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        seal_with_key(&self.key, plaintext, aad)
    }

    fn unseal(&self, sealed: &[u8], aad: &[u8]) -> Result<SecretBytes, CryptoError> {
        unseal_with_key(&self.key, sealed, aad)
    }
}

impl std::fmt::Debug for KeyFileRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFileRoot")
            .field("path", &self.path)
            .field("key", &format_args!("[redacted]"))
            .finish()
    }
}

/// The key, if `contents` is exactly a `keyhold-root-key-v1` file.
fn parse(contents: &[u8]) -> Option<Key256> {
    let encoded = contents.strip_prefix(MAGIC)?.strip_suffix(b"\n")?;
    if encoded.len() != ENCODED_LEN {
        return None;
    }
    let mut decoded = Zeroizing::new([0u8; ENCODED_LEN]);
    let n = STANDARD
        .decode_slice(encoded, decoded.as_mut_slice())
        .ok()?;
    Key256::from_slice(decoded.get(..n)?)
}

fn render(key: &Key256) -> Zeroizing<Vec<u8>> {
    let mut encoded = Zeroizing::new([0u8; ENCODED_LEN]);
    let n = STANDARD
        .encode_slice(key.expose(), encoded.as_mut_slice())
        .expect("base64 of a 32-byte key is exactly 44 bytes");
    debug_assert_eq!(n, ENCODED_LEN);
    let mut contents = Zeroizing::new(Vec::with_capacity(FILE_LEN));
    contents.extend_from_slice(MAGIC);
    contents.extend_from_slice(encoded.as_slice());
    contents.push(b'\n');
    contents
}

/// Creates the key file; `None` if it already exists (another process created it first).
fn create(path: &Path) -> Result<Option<KeyFileRoot>, CryptoError> {
    let io_err = |source| CryptoError::KeyFile {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let file_name = path.file_name().ok_or_else(|| {
        io_err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "key file path has no file name",
        ))
    })?;
    let suffix: [u8; 8] = random::array()?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp-{}", hex::encode(suffix)));
    let tmp = dir.join(tmp_name);

    let key = Key256::generate()?;
    let linked = write_and_link(&tmp, path, &render(&key));
    // Best effort: the temporary name is only a second link to the same inode (or a failed
    // attempt); `path` is what counts.
    let _ = fs::remove_file(&tmp);
    match linked {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(None),
        Err(e) => return Err(io_err(e)),
        Ok(()) => {}
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err)?;
    Ok(Some(KeyFileRoot {
        key,
        path: path.to_owned(),
    }))
}

fn write_and_link(tmp: &Path, path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    fs::hard_link(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_then_parse_round_trips() {
        let key = Key256::generate().unwrap();
        let contents = render(&key);
        assert_eq!(contents.len(), FILE_LEN);
        assert!(contents.starts_with(MAGIC));
        assert_eq!(parse(&contents).unwrap().expose(), key.expose());
    }

    #[test]
    fn parse_refuses_malformed_contents() {
        let good = render(&Key256::generate().unwrap()).to_vec();
        let mut cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            MAGIC.to_vec(),
            good[..good.len() - 1].to_vec(),
            [&good[..], b"\n"].concat(),
            [&good[..], b"x"].concat(),
            good.to_ascii_uppercase(),
        ];
        let mut other_magic = good.clone();
        other_magic[MAGIC.len() - 2] = b'2';
        cases.push(other_magic);
        let mut bad_char = good.clone();
        bad_char[MAGIC.len()] = b'*';
        cases.push(bad_char);
        // 31 bytes of key, padded to the same width, is not a key.
        let short = STANDARD.encode([1u8; 31]);
        cases.push([MAGIC, short.as_bytes(), b"\n"].concat());
        for case in cases {
            assert!(
                parse(&case).is_none(),
                "accepted {:?}",
                String::from_utf8_lossy(&case)
            );
        }
    }

    #[test]
    fn debug_is_redacted() {
        let root = KeyFileRoot {
            key: Key256::generate().unwrap(),
            path: "/k".into(),
        };
        let printed = format!("{root:?}");
        assert_eq!(printed, r#"KeyFileRoot { path: "/k", key: [redacted] }"#);
    }
}
