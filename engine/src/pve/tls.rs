//! How the client trusts a Proxmox node. There is no way to turn
//! verification off.
//!
//! - [`Trust::CaFile`] / [`Trust::CaPem`]: verify the chain against this CA
//!   only (on a node: `/etc/pve/pve-root-ca.pem`), and the host name in the
//!   URL against the certificate's names. Proxmox issues each node's
//!   certificate (`pve-ssl.pem`) for its node name, its FQDN, its IP
//!   addresses and `localhost`/`127.0.0.1`, so connect with one of those.
//! - [`Trust::Fingerprint`]: accept exactly the certificate whose SHA-256
//!   fingerprint is pinned (what the web UI shows under the node's
//!   Certificates); the server must still prove it holds that
//!   certificate's key. Host names are not checked: the pin names one
//!   certificate.
//! - [`Trust::LoopbackHttp`]: plain HTTP, accepted only for loopback URLs
//!   (the simulator in tests); credentials never leave the machine.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use super::error::PveError;

/// A SHA-256 certificate fingerprint.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|b| format!("{b:02X}")).collect();
        f.write_str(&parts.join(":"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = PveError;
    /// `AB:CD:...` (as Proxmox shows it) or plain hex, 32 bytes.
    fn from_str(s: &str) -> Result<Self, PveError> {
        let hex_only: String = s.chars().filter(|c| *c != ':').collect();
        let bytes = hex::decode(&hex_only)
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| {
                PveError::Tls(format!(
                    "'{s}' is not a SHA-256 fingerprint: give 32 hex bytes, e.g. AB:CD:...:EF"
                ))
            })?;
        let mut out = [0u8; 32];
        out.copy_from_slice(&bytes);
        Ok(Fingerprint(out))
    }
}

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of_der(der: &[u8]) -> Self {
        Fingerprint(Sha256::digest(der).into())
    }

    /// The fingerprint of the first certificate in a PEM text.
    pub fn of_pem(pem: &str) -> Result<Self, PveError> {
        let der = CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| PveError::Tls(format!("no certificate in PEM: {e}")))?;
        Ok(Self::of_der(der.as_ref()))
    }
}

/// What the client trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// A CA certificate file (PEM), e.g. `/etc/pve/pve-root-ca.pem`.
    CaFile(PathBuf),
    /// A CA certificate (PEM text).
    CaPem(String),
    /// Exactly the certificate with this fingerprint.
    Fingerprint(Fingerprint),
    /// Plain HTTP to a loopback address (tests with the simulator).
    LoopbackHttp,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls client configuration for a trust setting (`None` for plain HTTP).
pub fn client_config(trust: &Trust) -> Result<Option<rustls::ClientConfig>, PveError> {
    let builder = || {
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| PveError::Tls(e.to_string()))
    };
    let from_pem = |pem: &str, origin: &str| -> Result<rustls::ClientConfig, PveError> {
        let mut roots = rustls::RootCertStore::empty();
        let mut n = 0;
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert =
                cert.map_err(|e| PveError::Tls(format!("{origin}: not a PEM certificate: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| PveError::Tls(format!("{origin}: unusable CA certificate: {e}")))?;
            n += 1;
        }
        if n == 0 {
            return Err(PveError::Tls(format!(
                "{origin}: no certificate found; give the cluster CA, e.g. /etc/pve/pve-root-ca.pem"
            )));
        }
        Ok(builder()?
            .with_root_certificates(roots)
            .with_no_client_auth())
    };
    match trust {
        Trust::CaFile(path) => {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| PveError::Tls(format!("reading CA file {}: {e}", path.display())))?;
            from_pem(&pem, &path.display().to_string()).map(Some)
        }
        Trust::CaPem(pem) => from_pem(pem, "CA certificate").map(Some),
        Trust::Fingerprint(fp) => {
            let verifier = Arc::new(PinnedCert {
                fingerprint: *fp,
                provider: provider(),
            });
            Ok(Some(
                builder()?
                    .dangerous()
                    .with_custom_certificate_verifier(verifier)
                    .with_no_client_auth(),
            ))
        }
        Trust::LoopbackHttp => Ok(None),
    }
}

/// The only TLS the HTTP client (`wire.rs`) has: a handshake with one of
/// our [`client_config`]s. ureq is built without TLS of its own, so an
/// HTTPS request without this connector fails instead of trusting
/// anything else.
pub(crate) struct RustlsConnector(pub(crate) Arc<rustls::ClientConfig>);

/// A TLS session over the TCP stream ureq opened.
struct TlsStream(rustls::StreamOwned<rustls::ClientConnection, Box<dyn ureq::ReadWrite>>);

impl fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TlsStream").finish_non_exhaustive()
    }
}

impl std::io::Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl std::io::Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl ureq::ReadWrite for TlsStream {
    /// The TCP socket (ureq sets its timeouts and sees whether a pooled
    /// connection was closed by the server).
    fn socket(&self) -> Option<&std::net::TcpStream> {
        self.0.get_ref().socket()
    }
}

impl ureq::TlsConnector for RustlsConnector {
    fn connect(
        &self,
        dns_name: &str,
        mut io: Box<dyn ureq::ReadWrite>,
    ) -> Result<Box<dyn ureq::ReadWrite>, ureq::Error> {
        let host = dns_name.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned()).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("'{host}' is neither a host name nor an IP address"),
            )
        })?;
        let mut session = rustls::ClientConnection::new(Arc::clone(&self.0), name)
            .map_err(|e| std::io::Error::other(PveError::Tls(e.to_string())))?;
        // Handshake now: certificate errors surface as connection errors
        // (io errors whose source is the rustls error).
        session.complete_io(&mut io)?;
        Ok(Box::new(TlsStream(rustls::StreamOwned::new(session, io))))
    }
}

/// Accepts only the pinned certificate; signatures are still verified.
#[derive(Debug)]
struct PinnedCert {
    fingerprint: Fingerprint,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = Fingerprint::of_der(end_entity.as_ref());
        let diff = got
            .0
            .iter()
            .zip(self.fingerprint.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff == 0 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "certificate fingerprint mismatch: the server presented {got}, expected {}",
                self.fingerprint
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_both_ways() {
        let s = "AB:".repeat(31) + "CD";
        let fp: Fingerprint = s.parse().expect("colon form");
        assert_eq!(fp.to_string(), s);
        let plain: Fingerprint = s.replace(':', "").to_lowercase().parse().expect("hex");
        assert_eq!(fp, plain);
        assert!("AB:CD".parse::<Fingerprint>().is_err());
        assert!(client_config(&Trust::CaPem("nothing here".into())).is_err());
    }
}
