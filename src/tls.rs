//! What the daemon's TLS listener and the client's TLS share: reading PEM certificates.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// Every certificate in a PEM file; an error names the file, and a file without one is an
/// error too.
pub fn read_pem_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bad = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    if certs.is_empty() {
        return Err(bad(&"no certificate in the file"));
    }
    Ok(certs)
}
