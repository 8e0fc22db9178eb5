//! TLS: the rustls server configuration (TLS 1.3 and 1.2, AEAD suites only, the server's cipher
//! order) and the development certificate generated into the data directory.

use rustls::crypto::aws_lc_rs::{self as provider, cipher_suite};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// TLS setup errors (operator misuse: they name the file).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate or key file could not be read or parsed.
    #[error("cannot load {what} from {path}: {reason}")]
    Load {
        /// `certificate` or `private key`.
        what: &'static str,
        /// File.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The development certificate could not be generated or written.
    #[error("cannot create the development certificate in {path}: {reason}")]
    Generate {
        /// Directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("tls configuration: {0}")]
    Config(String),
}

/// Loaded TLS material.
pub struct TlsMaterial {
    /// The server configuration.
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 fingerprint of the leaf certificate, colon-separated hex.
    pub fingerprint: String,
    /// Where the certificate came from.
    pub cert_path: PathBuf,
    /// Whether it is the generated development certificate.
    pub generated: bool,
}

/// SHA-256 fingerprint of a DER certificate, as `AB:CD:…`.
pub fn fingerprint(der: &[u8]) -> String {
    boveda_crypto::sha256(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Writes a file readable by its owner only.
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

/// The development certificate in `dir/tls/`, generated on first use for `localhost`,
/// `127.0.0.1` and `::1`.
///
/// # Errors
/// [`TlsError::Generate`].
pub fn dev_certificate(dir: &Path) -> Result<(PathBuf, PathBuf, bool), TlsError> {
    let tls_dir = dir.join("tls");
    let cert = tls_dir.join("dev-cert.pem");
    let key = tls_dir.join("dev-key.pem");
    if cert.exists() && key.exists() {
        return Ok((cert, key, false));
    }
    let err = |reason: String| TlsError::Generate {
        path: tls_dir.clone(),
        reason,
    };
    std::fs::create_dir_all(&tls_dir).map_err(|e| err(e.to_string()))?;
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let ck = rcgen::generate_simple_self_signed(names).map_err(|e| err(e.to_string()))?;
    let _ = std::fs::remove_file(&key);
    write_private(&key, ck.signing_key.serialize_pem().as_bytes())
        .map_err(|e| err(e.to_string()))?;
    std::fs::write(&cert, ck.cert.pem()).map_err(|e| err(e.to_string()))?;
    Ok((cert, key, true))
}

/// The rustls configuration for a certificate chain and key: TLS 1.3 and 1.2 with AEAD suites
/// only (AES-GCM and ChaCha20-Poly1305 with ECDHE), the server's order, ALPN h2 and http/1.1.
///
/// # Errors
/// [`TlsError`] naming the file that failed.
pub fn load(cert_path: &Path, key_path: &Path, generated: bool) -> Result<TlsMaterial, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Load {
            what: "certificate",
            path: cert_path.to_owned(),
            reason: e.to_string(),
        })?;
    let leaf = certs.first().ok_or_else(|| TlsError::Load {
        what: "certificate",
        path: cert_path.to_owned(),
        reason: "no certificate in file".into(),
    })?;
    let fp = fingerprint(leaf);
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| TlsError::Load {
        what: "private key",
        path: key_path.to_owned(),
        reason: e.to_string(),
    })?;
    let mut p = provider::default_provider();
    p.cipher_suites = vec![
        cipher_suite::TLS13_AES_256_GCM_SHA384,
        cipher_suite::TLS13_AES_128_GCM_SHA256,
        cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ];
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(p))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.ignore_client_order = true;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsMaterial {
        config: Arc::new(config),
        fingerprint: fp,
        cert_path: cert_path.to_owned(),
        generated,
    })
}
