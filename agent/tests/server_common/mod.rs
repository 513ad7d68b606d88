//! Shared helpers of the `server_*` tests: a test CA and server
//! certificate on disk, an HTTPS client that trusts only that CA, a
//! temporary store, and a canned authenticator.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use orbitlab_agent::server::{
    self, AuthError, Authenticator, Credential, Identity, Privileges, ServerConfig, ServerHandle,
};
use orbitlab_engine::api::Api;
use orbitlab_engine::store::Store;
use orbitlab_sim::pve::TestCa;
use reqwest::blocking::Client;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// A CA and a certificate for `localhost`/`127.0.0.1` written to files.
pub struct ServerTls {
    pub ca: TestCa,
    pub dir: tempfile::TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn server_tls() -> ServerTls {
    let ca = TestCa::new("OrbitLab server test CA").expect("CA");
    let material = ca
        .issue_server(&["localhost", "127.0.0.1"])
        .expect("certificate");
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("pve-ssl.pem");
    let key = dir.path().join("pve-ssl.key");
    std::fs::write(&cert, &material.cert_chain_pem).expect("write cert");
    std::fs::write(&key, &material.key_pem).expect("write key");
    ServerTls { ca, dir, cert, key }
}

/// An HTTPS client that trusts exactly `ca_pem`.
pub fn client_trusting(ca_pem: &str) -> Client {
    builder_trusting(ca_pem)
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .expect("client")
}

/// A client builder whose TLS trusts exactly `ca_pem`.
fn builder_trusting(ca_pem: &str) -> reqwest::blocking::ClientBuilder {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("PEM")).expect("root");
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Client::builder().use_preconfigured_tls(tls)
}

/// Tokens it knows, with their secret and privileges on `/`; counts calls.
#[derive(Debug, Default)]
pub struct CannedAuth {
    pub tokens: BTreeMap<String, (String, Vec<&'static str>)>,
    pub calls: AtomicUsize,
}

impl CannedAuth {
    pub fn with(tokens: &[(&str, &str, &[&'static str])]) -> Arc<Self> {
        Arc::new(CannedAuth {
            tokens: tokens
                .iter()
                .map(|(id, secret, privs)| (id.to_string(), (secret.to_string(), privs.to_vec())))
                .collect(),
            calls: AtomicUsize::new(0),
        })
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Authenticator for CannedAuth {
    fn authenticate(&self, credential: &Credential, _write: bool) -> Result<Identity, AuthError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let Credential::Token { id, secret } = credential else {
            return Err(AuthError::Refused("tickets are not known here".into()));
        };
        match self.tokens.get(id) {
            Some((known, privs)) if known == secret.expose() => Ok(Identity {
                user: id.clone(),
                privileges: Privileges::new(privs.iter().copied()),
            }),
            _ => Err(AuthError::Refused("authentication failure".into())),
        }
    }
}

/// Every privilege the API checks.
pub const ADMIN: &[&str] = &[
    "Sys.Audit",
    "Sys.Modify",
    "SDN.Allocate",
    "VM.Allocate",
    "Datastore.AllocateTemplate",
];

/// A server on a temporary store, on a loopback port.
pub struct Running {
    pub tls: ServerTls,
    pub store_dir: tempfile::TempDir,
    pub api: Api,
    pub handle: ServerHandle,
    pub client: Client,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!(
            "https://localhost:{}{path}",
            self.handle.local_addr().port()
        )
    }
}

pub fn config(tls: &ServerTls) -> ServerConfig {
    let mut config = ServerConfig::new(&tls.cert, &tls.key);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config
}

pub fn start_with(auth: Arc<dyn Authenticator>, tune: impl FnOnce(&mut ServerConfig)) -> Running {
    let tls = server_tls();
    let store_dir = tempfile::tempdir().expect("store");
    let api = Api::new(Store::open(store_dir.path()));
    let mut config = config(&tls);
    tune(&mut config);
    let handle = server::spawn(config, api.clone(), auth).expect("server starts");
    let client = client_trusting(&tls.ca.pem());
    Running {
        tls,
        store_dir,
        api,
        handle,
        client,
    }
}

pub fn start(auth: Arc<dyn Authenticator>) -> Running {
    start_with(auth, |_| {})
}

pub const SECTOR_WEB: &str = "apiVersion: orbitlab.io/v1\nkind: Sector\nmetadata:\n  name: web\nspec:\n  cidr: 172.16.0.0/24\n";

/// Like [`client_trusting`], with every connection made from the loopback
/// address `local` (e.g. `127.0.0.2`), so a test can play several clients.
pub fn client_from(ca_pem: &str, local: std::net::IpAddr) -> Client {
    builder_trusting(ca_pem)
        .local_address(local)
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("client")
}

/// `openssl req` making an EC key and a CSR for `dns` (subject `CN=db`) in
/// `dir`; the CSR's path.
pub fn openssl_csr(dir: &std::path::Path, dns: &str) -> PathBuf {
    let (key, csr) = (dir.join("req.key"), dir.join("req.csr"));
    let output = std::process::Command::new("openssl")
        .args(["req", "-new", "-newkey", "ec"])
        .args(["-pkeyopt", "ec_paramgen_curve:P-256"])
        .args(["-nodes", "-subj", "/CN=db", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&csr)
        .args(["-addext", &format!("subjectAltName=DNS:{dns}")])
        .output()
        .expect("openssl runs");
    assert!(output.status.success(), "{output:?}");
    csr
}
