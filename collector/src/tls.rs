//! TLS for the collector's listener (rustls): certificate and key from PEM
//! files, and the acceptor that handshakes with them. Each handshake runs
//! in its connection's own task, under `server.tls_handshake_timeout`, so
//! that one slow or hostile client cannot hold up the others.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused the certificate and key.
    #[error("the certificate and key do not work together: {0}")]
    Config(#[from] rustls::Error),
}

/// The serving certificate and key, replaceable while the collector runs
/// (SIGHUP after a renewal); handshakes take whichever is current.
#[derive(Debug)]
pub struct Certs {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    current: std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>,
}

impl Certs {
    /// Loads the certificate chain and key in `cert` and `key`.
    pub fn load(cert: &Path, key: &Path) -> Result<Certs, TlsError> {
        Ok(Certs {
            current: std::sync::RwLock::new(Arc::new(certified_key(cert, key)?)),
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        })
    }

    /// Reads the same files again; on any error the current pair stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = Arc::new(certified_key(&self.cert, &self.key)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }
}

impl rustls::server::ResolvesServerCert for Certs {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

fn certified_key(cert: &Path, key: &Path) -> Result<rustls::sign::CertifiedKey, TlsError> {
    let pem = |path: &Path, message: String| TlsError::Pem {
        path: path.display().to_string(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem(cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(pem(cert, "no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem(key, e.to_string()))?;
    Ok(rustls::sign::CertifiedKey::from_der(
        certs,
        key,
        &rustls::crypto::ring::default_provider(),
    )?)
}

/// A TLS acceptor serving whatever `certs` holds at each handshake.
pub(crate) fn acceptor(certs: Arc<Certs>) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    Ok(TlsAcceptor::from(Arc::new(config)))
}
