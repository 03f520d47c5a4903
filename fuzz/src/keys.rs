//! Fixed keys for the fuzz targets and the seed-corpus generator (`examples/make_corpus.rs`).
//!
//! Fixed, so that records sealed once for the committed corpus open in every later run: the
//! fuzzer then starts from inputs that reach the success paths. None of these protects
//! anything.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::OnceLock;

use base64::Engine as _;
use keyhold_crypto::envelope::DataKey;
use keyhold_crypto::seal::{DomainKey, KeyFileRoot};
use keyhold_crypto::{EncryptionContext, KeyId, MaterialId, SecretBytes, SymmetricKey};

/// The golden vector's backing key (`crates/crypto/tests/data/blob_v1.json`).
const BLOB_KEY: [u8; 32] = [
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
];
const BLOB_KEY_ID: [u8; 16] = [
    0x12, 0x34, 0xab, 0xcd, 0x12, 0xab, 0x34, 0xcd, 0x56, 0xef, 0x12, 0x34, 0x56, 0x78, 0x90, 0xab,
];

pub fn blob_key() -> SymmetricKey {
    SymmetricKey::dangerous_from_bytes(BLOB_KEY)
}

pub fn blob_key_id() -> KeyId {
    KeyId::from_bytes(BLOB_KEY_ID)
}

pub fn blob_material_id() -> MaterialId {
    let mut id = [0u8; 32];
    for (i, b) in id.iter_mut().enumerate() {
        *b = 0x20 + i as u8;
    }
    MaterialId::from_bytes(id)
}

/// The golden vector's encryption context.
pub fn blob_context() -> EncryptionContext {
    EncryptionContext::new([
        ("purpose", "golden-vector"),
        ("Department", "10"),
        ("clé", "välue"),
        ("aws:ebs:id", ""),
    ])
}

/// The root key of the key file the `sealed` target opens the domain key with.
pub const ROOT_KEY: [u8; 32] = [0x5a; 32];
/// The domain key, sealed under [`ROOT_KEY`] once by `make_corpus keys` (hex).
pub const SEALED_DOMAIN_KEY: &str = "011096037eecf6206c269d32e99735c52715379e927d656ad9580b6c8e34e5ebcaa942765a37525a8f77ac4129ad56a113207a06382f555a159fb5f26d";
/// The data key of the envelope seeds, and the AAD they are bound to.
pub const DATA_KEY: [u8; 32] = [0xd4; 32];
pub const ENVELOPE_AAD: &str = "arn:aws:secretsmanager:us-east-1:111122223333:secret:fuzz-AbCdEf";
pub const MATERIAL_ARN: &str =
    "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
pub const SECRET_PURPOSE: &str = "iam-secret-access-key";
pub const SECRET_ID: &str = "AKIAFUZZEXAMPLE00001";
pub const TOKEN_KEY: &[u8] = &[0x70; 32];

/// The contents of a valid `keyhold-root-key-v1` file holding `key`.
pub fn key_file_contents(key: &[u8; 32]) -> Vec<u8> {
    let mut out = b"keyhold-root-key-v1\n".to_vec();
    out.extend_from_slice(
        base64::engine::general_purpose::STANDARD
            .encode(key)
            .as_bytes(),
    );
    out.push(b'\n');
    out
}

/// Writes `contents` to this process's scratch key file (mode 0600), calls `read` with its
/// path, and removes the file again.
pub fn with_key_file<T>(name: &str, contents: &[u8], read: impl FnOnce(&Path) -> T) -> T {
    // tmpfs where there is one: truncating a file on this machine's disk costs ~2 ms,
    // which made the key-file case of the `sealed` target 300 times slower than the rest.
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let path = dir.join(format!("keyhold-fuzz-{}-{name}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .expect("scratch key file");
    file.write_all(contents).expect("write scratch key file");
    drop(file);
    let out = read(&path);
    let _ = std::fs::remove_file(&path);
    out
}

/// The root key provider (a key file holding [`ROOT_KEY`]).
pub fn root() -> KeyFileRoot {
    with_key_file("root.key", &key_file_contents(&ROOT_KEY), |path| {
        KeyFileRoot::load(path).expect("root key file loads")
    })
}

/// What the `sealed` target opens records with.
pub struct SealedFixture {
    pub root: KeyFileRoot,
    pub domain: DomainKey,
    pub data_key: DataKey,
}

pub fn sealed_fixture() -> &'static SealedFixture {
    static FIXTURE: OnceLock<SealedFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let root = root();
        let sealed = hex::decode(SEALED_DOMAIN_KEY).expect("hex");
        let domain = DomainKey::unseal(&root, &sealed).expect("the fixed domain key opens");
        let data_key =
            DataKey::from_plaintext(&SecretBytes::from(DATA_KEY.to_vec())).expect("data key");
        SealedFixture {
            root,
            domain,
            data_key,
        }
    })
}

/// The Ed25519 key (PKCS#8, hex) the `audit_chain` target signs digest documents with,
/// made once by `make_corpus keys`.
pub const AUDIT_SIGNING_KEY: &str = "3051020101300506032b657004220420a1309e4754738dc741afee721f3c37968f29c23391e6a1e3a6bb1fef3420a784812100c047766187468d0da665ede940a2511a7ac04220998ea8a4031137baabd9b887";

pub fn audit_signing_key() -> &'static keyhold_crypto::signing::SigningKey {
    static KEY: OnceLock<keyhold_crypto::signing::SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let pkcs8 = hex::decode(AUDIT_SIGNING_KEY).expect("hex");
        keyhold_crypto::signing::SigningKey::from_pkcs8(&pkcs8).expect("PKCS#8")
    })
}
