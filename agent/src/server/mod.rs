//! The agent's local API: the `orbitlab` path tree served over HTTPS on
//! the node, for the web UI panel. Start it with [`spawn`].
//!
//! # Routes
//!
//! Under `https://NODE:8206` (see [`ServerConfig`]), each path in two
//! formats: `/api2/json/...` as below, and the same path under
//! `/api2/extjs/...` (`/api2/extjs/orbitlab[/PATH]`,
//! `/api2/extjs/orbitlab-apply`) for Proxmox's UI helpers, with the same
//! authentication, permissions, limits and handlers; only the answer's
//! shape differs (see "Answers"):
//!
//! | request | does |
//! | --- | --- |
//! | `GET /api2/json/orbitlab[/PATH]` | [`Api::get`]: spec and status (a collection: every object) |
//! | `GET ...?ls=1` | [`Api::ls`]: names below the path, as `pvesh ls` |
//! | `POST /api2/json/orbitlab/COLLECTION` | [`Api::create`] from form or JSON properties |
//! | `PUT /api2/json/orbitlab/COLLECTION/NAME` | [`Api::set`]; `delete=a,b` resets properties |
//! | `DELETE /api2/json/orbitlab/COLLECTION/NAME[?force=1]` | [`Api::delete`] |
//! | `POST /api2/json/orbitlab-apply[?dry-run=1][&source=FILE]` | [`Api::apply`] (or [`Api::validate`]) of the YAML body |
//! | `GET/PUT/DELETE/POST .../orbitlab/vault/...` | [`Api::vault`]: secret metadata, values by explicit call (`/vault/values/{path}`), rollback, prune, KEK rotation |
//! | `GET/POST/DELETE .../orbitlab/ssh/keys/...` | [`Api::ssh`]: SSH keys, public halves, generate, rotate |
//! | `GET/POST .../orbitlab/pki/...` | [`Api::pki`]: CAs, certificates, CRLs, create a CA, issue, sign a CSR, revoke, renewal |
//! | `GET .../orbitlab/plan`, `GET .../orbitlab/status[/{collection}/{name}]` | [`Api::plan`], [`Api::status`], [`Api::object_status`]: what this node's agent would do; each object's phase; one object's reported status |
//!
//! Properties are read as `pvesh` reads `--key value`: a form field or a
//! JSON member each (JSON strings, numbers and booleans are taken as
//! text; a JSON object is a nested property; a JSON list repeats the key);
//! dotted keys address nested fields. The query parameter `_dc` (ExtJS's
//! cache buster) is ignored, as pveproxy ignores it.
//!
//! # Answers
//!
//! `json`: `{"data": ...}`; a change answers its list of `{kind, name,
//! action}`. Failures carry an HTTP status (400 refused input, 401 not
//! authenticated, 403 not permitted, 404 no such path or object, 409
//! conflict, 413 body too large, 503 Proxmox or quorum unavailable) and
//! `{"data": null, "message": "...", "errors": {field: reason}}`, the
//! message also in the status line.
//!
//! `extjs`, as pveproxy's formatter writes it: HTTP 200 always, with
//! `{"success": 1, "data": ...}`, or on failure `{"success": 0, "data":
//! null, "message": "...", "status": CODE}` and `"errors": {field:
//! reason}` when there are any (`CODE` is the status the `json` format
//! would have sent). Except a failed credential check (401; 503 or 500
//! when Proxmox cannot be asked): it keeps its HTTP status and the
//! message in the status line, as pveproxy answers its own authentication
//! failures, so the web UI notices an expired login.
//!
//! # Authentication
//!
//! No anonymous access. A request carries the caller's Proxmox ticket
//! (cookie `PVEAuthCookie`, plus the `CSRFPreventionToken` header on
//! anything but GET) or an API token (`Authorization:
//! PVEAPIToken=USER@REALM!ID=SECRET`). The [`Authenticator`] asks Proxmox
//! itself about it ([`ProxmoxAuthenticator`]: the caller's own credential is
//! forwarded to the local Proxmox API, see its module doc); a ticket's CSRF
//! prevention token is then checked on the node with `/etc/pve/pve-www.key`
//! exactly as Proxmox checks it (`csrf`), never inferred from a daemon's
//! answer. A
//! successful check is cached for [`ServerConfig::auth_cache_ttl`] (30 s),
//! keyed by a SHA-256 digest of the credential; a refusal is remembered the
//! same way for [`ServerConfig::auth_refusal_ttl`] (5 s). At most
//! [`Limits::max_auth_checks`] checks run at once, on threads of their own,
//! so hanging or slow checks never hold up requests already authenticated.
//! When Proxmox cannot be asked the caller gets a plain 503; the details
//! (address, error) go to the log only. Credentials never reach logs,
//! errors or `Debug` output; the access log names the user.
//!
//! # Permissions
//!
//! Proxmox privileges on `/` map to OrbitLab permissions (details in
//! [`permissions`]): reads need `Sys.Audit`; changes need `Sys.Modify`, and
//! also `SDN.Allocate` for the cluster and Sectors, `VM.Allocate` for
//! instances, `Datastore.AllocateTemplate` for appliances. A delete needs
//! the privileges of every object it would remove (with `force=1`, the
//! objects that refer to it too): the set is computed first
//! ([`Api::removal`]) and the refusal lists it with what is missing.
//!
//! # Order of checks
//!
//! Route and method, then the credential (Proxmox), then the operation as
//! method, path and query alone say, and its privileges, all before any
//! byte of the body is read; a request refused there has its body
//! discarded unread and its connection closed. Bodies are then parsed and
//! YAML is decoded on the blocking pool, with a time limit, at most 4,096
//! parameters and 16 levels of nesting (400 beyond, naming the field); an
//! apply's per-kind privileges are checked once its manifests are decoded.
//! The access log says `unauthenticated` until Proxmox has accepted the
//! credential, and escapes control characters in every field.
//!
//! # Limits
//!
//! Bodies up to 1 MiB (413 beyond), TLS handshake and request-header
//! timeouts, a whole-request timeout, per-client and global caps on TLS
//! handshakes and open connections and a per-client rate of new
//! connections (see [`Limits`]).
//!
//! # CORS
//!
//! The panel runs in the Proxmox web UI (`https://NODE:8006`) and calls
//! this port cross-origin, with credentials. Only the origins listed in
//! [`ServerConfig::allowed_origins`] (written as browsers send `Origin`,
//! see [`UiOrigin`]; the daemon lists the node's own web UI origins) get
//! CORS answers, compared exactly, never a wildcard: `Access-Control-Allow-Origin`
//! echoing the origin, `Access-Control-Allow-Credentials: true` and `Vary:
//! Origin`, on every answer in both formats. A preflight (`OPTIONS`, on
//! any route of either format) from such an origin is answered 204 with
//! the route's methods and the headers the web UI sends
//! (`Authorization, CSRFPreventionToken, Content-Type, Accept,
//! X-Requested-With`), cached for 600 s; from any other origin it is
//! answered 403, and other answers to it carry no CORS header, so the
//! browser keeps their content from the page. The list can be replaced
//! while serving ([`ServerHandle::set_allowed_origins`]).
//!
//! Side effects: listens on [`ServerConfig::listen`]; reads the certificate
//! and key files (again when they change); reads and writes the store
//! through [`Api`]; calls the Proxmox API through the authenticator.

mod admission;
mod authenticator;
mod credential;
mod csrf;
mod listener;
mod origin;
mod params;
pub mod permissions;
mod proxmox;
mod reply;
mod routes;
mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;

pub use authenticator::{AuthError, Authenticator, Identity};
pub use credential::{CSRF_HEADER, Credential, CredentialError, TICKET_COOKIE};
pub use origin::{OriginError, UI_PORT, UiOrigin};
pub use permissions::{Operation, Privileges};
pub use proxmox::{AuthSetupError, ProxmoxAuthConfig, ProxmoxAuthenticator};
pub use tls::CertError;

use orbitlab_engine::api::Api;

/// Default listening address: port 8206, which no Proxmox product uses
/// ([`PROXMOX_PORTS`]), so the agent can share a host with any of them.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 8206);

/// Ports Proxmox products listen on: VE and Mail Gateway web UI (8006),
/// Backup Server (8007), Datacenter Manager (8443), the SPICE proxy
/// (3128), pvedaemon (85).
pub const PROXMOX_PORTS: [u16; 5] = [8006, 8007, 8443, 3128, 85];

/// Size, time and count limits. The connection limits apply before any
/// credential is seen; a connection over one of them is closed without an
/// answer (logged at debug level, plus at most one warning a minute).
/// A client is a source address (an IPv6 /64); clients behind one NAT or
/// proxy share their limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body (1 MiB, the size of a pmxcfs file).
    pub max_body_bytes: usize,
    /// Time for a client to finish the TLS handshake (5 s); a socket that
    /// never starts one holds its handshake place that long.
    pub handshake_timeout: Duration,
    /// Time for a client to send a request's headers (also the keep-alive
    /// idle time between requests).
    pub header_timeout: Duration,
    /// Time for a whole request, body, Proxmox check and store work
    /// included.
    pub request_timeout: Duration,
    /// Most TLS handshakes in progress at once, all clients (128).
    pub max_handshakes: usize,
    /// Most TLS handshakes in progress at once from one client (8).
    pub max_handshakes_per_client: usize,
    /// Most connections open at once past their TLS handshake, all
    /// clients (256); a connection only takes its place once its
    /// handshake is done.
    pub max_connections: usize,
    /// Most connections open at once past their TLS handshake from one
    /// client (32; a browser opens about 6).
    pub max_connections_per_client: usize,
    /// New connections a client may open per second, on average (10);
    /// 0: no rate limit.
    pub connect_rate_per_client: u32,
    /// New connections a client may open at once before its rate applies
    /// (40).
    pub connect_burst_per_client: u32,
    /// Most credential checks with Proxmox at once (4). They run on the
    /// blocking pool, which has this many threads on top of the 16 that
    /// serve authenticated requests, so checks never take those; a
    /// request whose identity is cached never waits for a check.
    /// At least 1.
    pub max_auth_checks: usize,
    /// Most requests waiting for a check place (64); more are answered
    /// 503 at once.
    pub max_auth_waiting: usize,
    /// How long a request waits for a check place before it is answered
    /// 503 (5 s).
    pub auth_wait: Duration,
    /// How long a stop waits for requests in flight.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            handshake_timeout: Duration::from_secs(5),
            header_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(90),
            max_handshakes: 128,
            max_handshakes_per_client: 8,
            max_connections: 256,
            max_connections_per_client: 32,
            connect_rate_per_client: 10,
            connect_burst_per_client: 40,
            max_auth_checks: 4,
            max_auth_waiting: 64,
            auth_wait: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Blocking threads that serve authenticated requests (store work).
const API_THREADS: usize = 16;

/// How the local API is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Where to listen (default `0.0.0.0:8206`).
    pub listen: SocketAddr,
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key of the certificate.
    pub key_file: PathBuf,
    /// How long a successful credential check is trusted (0: never cached).
    pub auth_cache_ttl: Duration,
    /// How long a credential Proxmox refused is refused again without
    /// asking (5 s; 0: never). Keyed by the same digest as successful
    /// checks, never the credential; "Proxmox could not be asked" is not
    /// remembered.
    pub auth_refusal_ttl: Duration,
    /// Browser origins allowed to call the API with credentials (CORS),
    /// exactly as browsers send `Origin` (see [`UiOrigin`]), e.g.
    /// `https://pve1.example.com:8006`; empty: same origin only. Never a
    /// wildcard ([`UiOrigin`] refuses one).
    pub allowed_origins: Vec<UiOrigin>,
    /// Size and time limits.
    pub limits: Limits,
}

impl ServerConfig {
    /// Defaults with this certificate and key.
    pub fn new(cert_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN,
            cert_file: cert_file.into(),
            key_file: key_file.into(),
            auth_cache_ttl: Duration::from_secs(30),
            auth_refusal_ttl: Duration::from_secs(5),
            allowed_origins: Vec::new(),
            limits: Limits::default(),
        }
    }

    /// Defaults with the node's certificate under `pve_root` (`/etc/pve`):
    /// `local/pveproxy-ssl.pem`/`.key` when both exist (a custom or ACME
    /// certificate, the one browsers see on port 8006), else
    /// `local/pve-ssl.pem`/`.key` (issued by the cluster CA).
    pub fn for_node(pve_root: &Path) -> Self {
        let local = pve_root.join("local");
        let custom = (
            local.join("pveproxy-ssl.pem"),
            local.join("pveproxy-ssl.key"),
        );
        if custom.0.is_file() && custom.1.is_file() {
            Self::new(custom.0, custom.1)
        } else {
            Self::new(local.join("pve-ssl.pem"), local.join("pve-ssl.key"))
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The certificate or key is unusable.
    #[error("cannot serve the OrbitLab API: {0}")]
    Cert(#[from] CertError),
    /// The address could not be bound.
    #[error(
        "cannot listen on {addr} for the OrbitLab API: {source}; free the port or choose another address"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The runtime or its thread could not be started.
    #[error("cannot start the OrbitLab API server: {0}")]
    Runtime(#[source] std::io::Error),
}

/// A running server. Dropping it stops the server like
/// [`ServerHandle::shutdown`].
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
    origins: Arc<RwLock<Vec<UiOrigin>>>,
}

impl ServerHandle {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces [`ServerConfig::allowed_origins`] for the requests that
    /// arrive from now on.
    pub fn set_allowed_origins(&self, origins: Vec<UiOrigin>) {
        *self
            .origins
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = origins;
    }

    /// The browser origins allowed now.
    pub fn allowed_origins(&self) -> Vec<UiOrigin> {
        self.origins
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Stops accepting connections, lets requests in flight finish for
    /// [`Limits::shutdown_grace`], and waits for the server thread.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    /// Whether the server thread has ended (it only ends after a stop).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    fn stop_now(&mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the OrbitLab API server thread panicked");
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Starts the local API: loads the certificate, binds `config.listen`, and
/// serves `api` on a thread of its own (a small tokio runtime; store work
/// runs on 16 threads of its blocking pool, Proxmox checks on at most
/// [`Limits::max_auth_checks`] more), checking every request's
/// credential with `auth`. Returns once the address is bound, so a bad
/// certificate or a busy port is reported here. Stop it with
/// [`ServerHandle::shutdown`] (or by dropping the handle).
pub fn spawn(
    config: ServerConfig,
    api: Api,
    auth: Arc<dyn Authenticator>,
) -> Result<ServerHandle, ServerError> {
    let tls = tls::server_config(&config.cert_file, &config.key_file)?;
    let bind = |source| ServerError::Bind {
        addr: config.listen,
        source,
    };
    let std_listener = std::net::TcpListener::bind(config.listen).map_err(bind)?;
    std_listener.set_nonblocking(true).map_err(bind)?;
    let addr = std_listener.local_addr().map_err(bind)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(API_THREADS + config.limits.max_auth_checks.max(1))
        .thread_name("orbitlab-api")
        .build()
        .map_err(ServerError::Runtime)?;
    let limits = config.limits;
    // Kept outside the runtime so the authenticator (which may own a
    // blocking HTTP client) is dropped on a plain thread.
    let keep_auth = auth.clone();
    let origins = Arc::new(RwLock::new(config.allowed_origins));
    let app = routes::router(Arc::new(routes::App {
        api,
        checks: authenticator::Checks::new(
            auth,
            config.auth_cache_ttl,
            config.auth_refusal_ttl,
            &limits,
        ),
        limits,
        allowed_origins: Arc::clone(&origins),
    }));
    let (stop, stopped) = watch::channel(false);
    let thread = std::thread::Builder::new()
        .name("orbitlab-api".into())
        .spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(listener) => {
                        tracing::info!(%addr, "OrbitLab API listening");
                        listener::run(
                            listener,
                            tokio_rustls::TlsAcceptor::from(tls),
                            app,
                            limits,
                            stopped,
                        )
                        .await;
                    }
                    Err(e) => tracing::error!("OrbitLab API listener: {e}"),
                }
            });
            runtime.shutdown_timeout(Duration::from_secs(1));
            drop(keep_auth);
        })
        .map_err(ServerError::Runtime)?;
    Ok(ServerHandle {
        addr,
        stop,
        thread: Some(thread),
        origins,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_certificate_prefers_the_custom_one() {
        let root = tempfile::tempdir().unwrap();
        let local = root.path().join("local");
        std::fs::create_dir(&local).unwrap();
        let config = ServerConfig::for_node(root.path());
        assert_eq!(config.cert_file, local.join("pve-ssl.pem"));
        assert_eq!(config.key_file, local.join("pve-ssl.key"));
        assert_eq!(config.listen, DEFAULT_LISTEN);
        assert_eq!(config.limits.max_body_bytes, 1024 * 1024);

        std::fs::write(local.join("pveproxy-ssl.pem"), "x").unwrap();
        assert_eq!(
            ServerConfig::for_node(root.path()).cert_file,
            local.join("pve-ssl.pem"),
            "a custom certificate without its key was chosen"
        );
        std::fs::write(local.join("pveproxy-ssl.key"), "x").unwrap();
        let config = ServerConfig::for_node(root.path());
        assert_eq!(config.cert_file, local.join("pveproxy-ssl.pem"));
        assert_eq!(config.key_file, local.join("pveproxy-ssl.key"));
    }
}
