//! The server's TLS: the node's certificate and key (PEM files, on a node
//! `/etc/pve/local/pve-ssl.pem` and `pve-ssl.key`, or the custom
//! `pveproxy-ssl.*` when present), rustls with ring, TLS 1.2 and 1.3.
//!
//! Certificates are renewed in place (ACME, `pvecm updatecerts`), so the
//! files are looked at again at most once a minute, on a handshake; a
//! changed pair that loads replaces the old one, a broken one is logged and
//! the previous pair kept.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How often the files are looked at again.
const RECHECK: Duration = Duration::from_secs(60);

/// A certificate or key that cannot be used, naming the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct CertError {
    /// The file at fault.
    pub path: String,
    /// What is wrong and what to do.
    pub reason: String,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reads and checks a certificate chain and its key.
fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, CertError> {
    let err = |path: &Path, reason: String| CertError {
        path: path.display().to_string(),
        reason,
    };
    let cert_pem =
        std::fs::read(cert).map_err(|e| err(cert, format!("cannot read the certificate: {e}")))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| err(cert, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(err(
            cert,
            "holds no certificate; give the node's pve-ssl.pem".into(),
        ));
    }
    let key_pem =
        std::fs::read(key).map_err(|e| err(key, format!("cannot read the private key: {e}")))?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| err(key, format!("not a PEM private key: {e}")))?;
    CertifiedKey::from_der(chain, private, provider).map_err(|e| {
        err(
            key,
            format!(
                "unusable with {} ({e}); give the key that belongs to the certificate",
                cert.display()
            ),
        )
    })
}

struct Loaded {
    key: Arc<CertifiedKey>,
    stamps: (Option<SystemTime>, Option<SystemTime>),
    next_check: Instant,
}

/// Serves the current pair, reloading it when the files change.
pub(crate) struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    loaded: Mutex<Loaded>,
}

impl fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ReloadingCert {
    fn stamps(&self) -> (Option<SystemTime>, Option<SystemTime>) {
        (modified(&self.cert), modified(&self.key))
    }

    fn current(&self) -> Arc<CertifiedKey> {
        let mut loaded = self
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if now >= loaded.next_check {
            loaded.next_check = now + RECHECK;
            let stamps = self.stamps();
            if stamps != loaded.stamps {
                match load(&self.cert, &self.key, &self.provider) {
                    Ok(key) => {
                        tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                        loaded.key = Arc::new(key);
                        loaded.stamps = stamps;
                    }
                    Err(e) => {
                        tracing::warn!("keeping the previous TLS certificate: {e}");
                    }
                }
            }
        }
        loaded.key.clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The rustls configuration serving `cert`/`key` (loaded now, so a bad
/// file is reported before the server starts).
pub(crate) fn server_config(
    cert: &Path,
    key: &Path,
) -> Result<Arc<rustls::ServerConfig>, CertError> {
    let provider = provider();
    let resolver = ReloadingCert {
        cert: cert.to_owned(),
        key: key.to_owned(),
        provider: provider.clone(),
        loaded: Mutex::new(Loaded {
            key: Arc::new(load(cert, key, &provider)?),
            stamps: (modified(cert), modified(key)),
            next_check: Instant::now() + RECHECK,
        }),
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CertError {
            path: cert.display().to_string(),
            reason: format!("TLS setup refused: {e}"),
        })?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use orbitlab_sim::pve::TestCa;

    fn write_pair(dir: &Path, names: &[&str], stamp: u64) -> Vec<u8> {
        let material = TestCa::new("reload CA")
            .unwrap()
            .issue_server(names)
            .unwrap();
        let (cert, key) = (dir.join("c.pem"), dir.join("k.pem"));
        std::fs::write(&cert, &material.cert_chain_pem).unwrap();
        std::fs::write(&key, &material.key_pem).unwrap();
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(stamp);
        for f in [&cert, &key] {
            std::fs::File::options()
                .write(true)
                .open(f)
                .unwrap()
                .set_modified(when)
                .unwrap();
        }
        CertificateDer::from_pem_slice(material.cert_chain_pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    fn resolver(dir: &Path) -> ReloadingCert {
        let provider = provider();
        let (cert, key) = (dir.join("c.pem"), dir.join("k.pem"));
        ReloadingCert {
            loaded: Mutex::new(Loaded {
                key: Arc::new(load(&cert, &key, &provider).unwrap()),
                stamps: (modified(&cert), modified(&key)),
                next_check: Instant::now() + RECHECK,
            }),
            cert,
            key,
            provider,
        }
    }

    fn age(r: &ReloadingCert) {
        r.loaded.lock().unwrap().next_check = Instant::now();
    }

    #[test]
    fn renewed_certificates_are_picked_up_and_broken_ones_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let first = write_pair(dir.path(), &["localhost"], 1_000_000);
        let r = resolver(dir.path());
        assert_eq!(r.current().cert[0].as_ref(), first.as_slice());

        let second = write_pair(dir.path(), &["pve1"], 2_000_000);
        assert_eq!(
            r.current().cert[0].as_ref(),
            first.as_slice(),
            "looked at the files again before a minute passed"
        );
        age(&r);
        assert_eq!(r.current().cert[0].as_ref(), second.as_slice());

        std::fs::write(dir.path().join("k.pem"), "not a key").unwrap();
        age(&r);
        assert_eq!(r.current().cert[0].as_ref(), second.as_slice());
        let err = load(
            &dir.path().join("c.pem"),
            &dir.path().join("k.pem"),
            &provider(),
        )
        .err()
        .unwrap();
        assert!(
            err.path.ends_with("k.pem") && err.reason.contains("PEM"),
            "{err}"
        );
    }
}
