//! TLS for the collector's listener (rustls): certificate and key from PEM
//! files, and the acceptor that handshakes with them. Each handshake runs
//! in its connection's own task, under `server.tls_handshake_timeout`, so
//! that one slow or hostile client cannot hold up the others.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use vantage_probe::config::file::{Kind, ReadError, read_text};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read (not a regular file, too large, ...).
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A PEM file holds nothing usable.
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
    // Through the config's own reader: a regular file within its size.
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(read_text(cert, Kind::Pem)?.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| pem(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(pem(cert, "no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(read_text(key, Kind::Pem)?.as_bytes())
        .map_err(|e| pem(key, e.to_string()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The certificate and key go through the config's reader, as every
    /// other file the config names: a device or a FIFO is refused before
    /// it is read (it would fill memory or block `validate`, `serve` and
    /// every SIGHUP), and so is a file too large to be a PEM file.
    #[test]
    fn the_pair_is_read_as_a_regular_file_within_its_size() {
        let err = Certs::load(Path::new("/dev/null"), Path::new("/dev/null")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/dev/null is a character device, not a regular file"
        );
        let dir = std::env::temp_dir().join(format!("vantage-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("big.pem");
        std::fs::write(&big, vec![b'a'; 5 << 20]).unwrap();
        let err = Certs::load(&big, &big).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} is larger than 4 MiB, the most a PEM file may hold",
                big.display()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
