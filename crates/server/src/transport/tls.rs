//! TLS: the server certificate and key from PEM files (`tls_cert`, `tls_key`), reloadable
//! without a restart, and a generated local CA + certificate for `--tls-self-signed`.
//!
//! rustls with the aws-lc-rs provider (the crypto library the rest of Keyhold uses), TLS
//! 1.2 and 1.3, ALPN `http/1.1`. [`TlsReload::reload`] re-reads both files and swaps the
//! configuration: connections accepted afterwards use the new certificate, established ones
//! keep theirs. A reload that fails (unreadable file, key not matching the certificate)
//! keeps the previous certificate and says why. `keyhold serve` reloads on `SIGHUP`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use anyhow::{Context, bail};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The certificate and key files of the listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The listener's current TLS configuration; cloning shares it.
#[derive(Clone)]
pub struct TlsReload {
    files: TlsFiles,
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl TlsReload {
    /// Loads the files (a bad file is an error at start).
    pub fn load(files: TlsFiles) -> anyhow::Result<Self> {
        let config = load_config(&files)?;
        Ok(Self {
            files,
            current: Arc::new(RwLock::new(config)),
        })
    }

    /// Re-reads the files; on success new connections use them.
    pub fn reload(&self) -> anyhow::Result<()> {
        let config = load_config(&self.files)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = config;
        tracing::info!(cert = %self.files.cert.display(), "reloaded the TLS certificate");
        Ok(())
    }

    /// An acceptor with the configuration of this moment.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

fn load_config(files: &TlsFiles) -> anyhow::Result<Arc<ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the TLS certificate {}", files.cert.display()))?;
    if certs.is_empty() {
        bail!(
            "the TLS certificate file {} holds no certificate",
            files.cert.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("reading the TLS key {}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "the TLS key {} does not fit the certificate {}",
                files.key.display(),
                files.cert.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What `--tls-self-signed` wrote.
#[derive(Debug)]
pub struct SelfSigned {
    /// The local CA's certificate: what clients trust (`AWS_CA_BUNDLE`).
    pub ca_cert: PathBuf,
    /// The server's certificate chain and key: the listener's [`TlsFiles`].
    pub files: TlsFiles,
    /// SHA-256 of the CA certificate (DER), colon-separated hex.
    pub ca_fingerprint: String,
    /// SHA-256 of the server certificate (DER).
    pub cert_fingerprint: String,
    /// `false` when existing files were reused.
    pub created: bool,
}

/// Creates (or reuses, if all three exist) a local CA and a server certificate it signs,
/// for `localhost`, `127.0.0.1`, `::1` and `extra_ips`, in `dir` (`ca.pem`, `server.pem`,
/// `server.key`, each `0600`). Reusing them keeps an `AWS_CA_BUNDLE` valid across restarts.
///
/// A CA and a leaf rather than one self-signed certificate: strict TLS clients (webpki in
/// the Rust SDK, OpenSSL's strict mode in newer Python) refuse a CA certificate as a
/// server certificate and a leaf certificate as a trust anchor.
pub fn self_signed(dir: &Path, extra_ips: &[IpAddr]) -> anyhow::Result<SelfSigned> {
    let ca_path = dir.join("ca.pem");
    let cert_path = dir.join("server.pem");
    let key_path = dir.join("server.key");
    let created = !(ca_path.is_file() && cert_path.is_file() && key_path.is_file());
    if created {
        let (ca_pem, cert_pem, key_pem) = generate(extra_ips)?;
        crate::data_dir::prepare(dir, &[])?;
        for (path, pem) in [
            (&ca_path, &ca_pem),
            (&cert_path, &cert_pem),
            (&key_path, &key_pem),
        ] {
            crate::data_dir::create_private_file(path)?;
            std::fs::write(path, pem).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(SelfSigned {
        ca_fingerprint: fingerprint_of(&ca_path)?,
        cert_fingerprint: fingerprint_of(&cert_path)?,
        ca_cert: ca_path,
        files: TlsFiles {
            cert: cert_path,
            key: key_path,
        },
        created,
    })
}

/// A new CA and a server certificate it signs: (CA PEM, server chain PEM, server key PEM).
fn generate(extra_ips: &[IpAddr]) -> anyhow::Result<(String, String, String)> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Keyhold local CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    names.extend(
        extra_ips
            .iter()
            .filter(|ip| !ip.is_unspecified() && !ip.is_loopback())
            .map(IpAddr::to_string),
    );
    let mut params = CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "Keyhold server");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;
    Ok((ca.pem(), cert.pem(), key.serialize_pem()))
}

/// SHA-256 of the first certificate in a PEM file, `AB:CD:…`.
pub fn fingerprint_of(path: &Path) -> anyhow::Result<String> {
    let der = CertificateDer::from_pem_file(path)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(fingerprint(&der))
}

pub fn fingerprint(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_files_load_and_are_reused() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("tls");
        let first = self_signed(&dir, &[]).unwrap();
        assert!(first.created);
        assert_eq!(first.ca_fingerprint.len(), 32 * 3 - 1);
        let reload = TlsReload::load(first.files.clone()).unwrap();
        reload.reload().unwrap();
        let again = self_signed(&dir, &[]).unwrap();
        assert!(!again.created);
        assert_eq!(again.ca_fingerprint, first.ca_fingerprint);
    }

    #[test]
    fn a_key_that_does_not_fit_is_refused_and_the_old_certificate_kept() {
        let temp = tempfile::tempdir().unwrap();
        let a = self_signed(&temp.path().join("a"), &[]).unwrap();
        let b = self_signed(&temp.path().join("b"), &[]).unwrap();
        let reload = TlsReload::load(a.files.clone()).unwrap();
        std::fs::copy(&b.files.key, &a.files.key).unwrap();
        let err = reload.reload().unwrap_err();
        assert!(format!("{err:#}").contains("does not fit"), "{err:#}");
        assert!(TlsReload::load(a.files).is_err());
    }
}
