//! `collector.ca_file`: the CA bundle (PEM) the probe trusts for an
//! `https://` collector, loaded the same way by `validate` and by the push
//! client, so a bundle that validates is one the client can use.

use std::path::Path;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use super::file::{Kind, read_text};

/// The certificates in the PEM file at `path`; an error names the file and
/// what is wrong with it.
pub fn ca_roots(path: &Path) -> Result<RootCertStore, String> {
    let text = read_text(path, Kind::Pem).map_err(|e| e.to_string())?;
    let bad = |e: String| format!("{}: {e}", path.display());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(text.as_bytes()) {
        roots
            .add(cert.map_err(|e| bad(e.to_string()))?)
            .map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no certificate in the file".into()));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_without_a_certificate_is_refused() {
        let dir = std::env::temp_dir().join(format!("vantage-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        assert_eq!(
            ca_roots(&empty).unwrap_err(),
            format!("{}: no certificate in the file", empty.display())
        );
        let garbage = dir.join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(ca_roots(&garbage).is_err());
        assert_eq!(
            ca_roots(Path::new("/dev/null")).unwrap_err(),
            "/dev/null is a character device, not a regular file"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
