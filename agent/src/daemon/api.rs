//! Serving the local HTTPS API (the path tree, for the web UI panel) from
//! the agent: started once a Proxmox connection is stored (credentials are
//! checked against Proxmox itself; a ticket's CSRF prevention token with
//! the cluster's key `<root>/pve-www.key`, read on each such write),
//! restarted when the connection changes,
//! stopped with the agent. A problem (no node certificate, port taken) is
//! logged and leaves the agent reconciling without the API.
//!
//! # Browser origins (CORS)
//!
//! The panel runs in this node's Proxmox web UI and calls the API
//! cross-origin with the user's login, so the API allows exactly the
//! node's own web UI origins, `https://NAME:8006` (as browsers send
//! `Origin`, see [`UiOrigin`]) for every name and address the node
//! answers to:
//! - the node name (`pve1`);
//! - its cluster address in `<root>/.members` (pmxcfs' `nodelist`);
//! - the DNS names and IP addresses in the subjectAltName of the
//!   certificate the API serves ([`ServerConfig::for_node`]: the custom
//!   `pveproxy-ssl.pem` when there is one, else `pve-ssl.pem`) — wildcard
//!   names are skipped (a wildcard is never allowed), and so are loopback
//!   names and addresses (`localhost`, `127.0.0.1`, `::1`, which
//!   `pve-ssl.pem` always carries): in a browser on another machine they
//!   name that machine, not this node;
//! - plus the operator's `--ui-origin` list ([`Config::ui_origins`]),
//!   taken as given (a loopback one too, e.g. for an SSH tunnel).
//!
//! They are computed when the API starts and logged once at info level,
//! then computed again once a minute (a renewed certificate, a changed
//! cluster address): a changed list is logged and handed to the running
//! server. No wildcard, and an origin not listed gets no CORS header.
//!
//! Reads `<root>/.members` and the certificate file; no writes.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::server::{
    self, ProxmoxAuthConfig, ProxmoxAuthenticator, ServerConfig, ServerHandle, UI_PORT, UiOrigin,
};
use orbitlab_engine::api::Api;
use orbitlab_engine::liveness::Members;
use orbitlab_engine::pki::inspect_pem;
use orbitlab_engine::pve::StoredConnection;
use orbitlab_engine::store::Store;

use super::Config;

/// How often the allowed origins are computed again while the API runs.
const ORIGINS_RECHECK: Duration = Duration::from_secs(60);

/// The running API, and the browser origins it allows.
#[derive(Debug)]
pub(super) struct LocalApi {
    handle: ServerHandle,
    cert_file: PathBuf,
    origins: Origins,
    next_look: Instant,
}

impl LocalApi {
    /// The address the API listens on.
    pub(super) fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// Stops the server (see [`ServerHandle::shutdown`]).
    pub(super) fn shutdown(self) {
        self.handle.shutdown();
    }

    /// Once a minute, computes the origins again from `config` and
    /// `members` (read by the loop anyway) and hands a changed list to the
    /// server; logs changes only.
    pub(super) fn follow(&mut self, config: &Config, members: &Members, now: Instant) {
        if now < self.next_look {
            return;
        }
        self.next_look = now + ORIGINS_RECHECK;
        let fresh = ui_origins(config, members, &self.cert_file);
        if fresh.problems != self.origins.problems {
            fresh.warn();
        }
        if fresh.allowed != self.origins.allowed {
            tracing::info!(
                origins = %joined(&fresh.allowed),
                "the web UI origins allowed to call the local API changed"
            );
            self.handle.set_allowed_origins(fresh.allowed.clone());
        }
        self.origins = fresh;
    }
}

/// The browser origins the API allows, and why some names were left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Origins {
    /// Sorted, each once, as browsers send `Origin`.
    pub(super) allowed: Vec<UiOrigin>,
    /// What could not be read or used (logged as warnings).
    pub(super) problems: Vec<String>,
}

impl Origins {
    fn warn(&self) {
        for problem in &self.problems {
            tracing::warn!(problem = %problem, "a web UI origin of this node is not allowed to call the local API");
        }
    }
}

/// The origins, space-separated, for the log.
fn joined(origins: &[UiOrigin]) -> String {
    origins
        .iter()
        .map(UiOrigin::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `localhost`, `*.localhost` and loopback addresses: names that, in a
/// browser on another machine, are that machine.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let lower = host.to_ascii_lowercase();
    lower == "localhost"
        || lower.ends_with(".localhost")
        || host
            .parse::<IpAddr>()
            .map(|ip| ip.to_canonical())
            .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
}

/// Where a name of this node comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameSource {
    NodeName,
    Members,
    Certificate,
}

impl std::fmt::Display for NameSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NameSource::NodeName => "the node name",
            NameSource::Members => "the node's address in .members",
            NameSource::Certificate => "certificate",
        })
    }
}

/// This node's web UI origins (see the module doc) with `cert_file` as
/// the certificate the API serves.
pub(super) fn ui_origins(config: &Config, members: &Members, cert_file: &Path) -> Origins {
    let mut allowed = BTreeSet::new();
    let mut problems = Vec::new();
    let mut add_host = |host: &str, from: NameSource, problems: &mut Vec<String>| {
        if is_loopback(host) {
            tracing::debug!(%host, %from, "loopback name left out of the web UI origins");
            return;
        }
        match UiOrigin::of_host(host, UI_PORT) {
            Ok(origin) => {
                allowed.insert(origin);
            }
            Err(e) if from == NameSource::Certificate => {
                // Wildcard names are usual in certificates, and never allowed.
                tracing::debug!(%host, reason = %e.reason, "certificate name left out of the web UI origins");
            }
            Err(e) => problems.push(format!("{from}: {e}")),
        }
    };
    add_host(&config.node, NameSource::NodeName, &mut problems);
    if let Some(ip) = members
        .nodes
        .get(&config.node)
        .and_then(|member| member.ip.as_deref())
    {
        add_host(ip, NameSource::Members, &mut problems);
    }
    match std::fs::read_to_string(cert_file) {
        Err(e) => problems.push(format!(
            "cannot read the certificate {}: {e}",
            cert_file.display()
        )),
        Ok(pem) => match inspect_pem(&pem, SystemTime::now()) {
            Err(e) => problems.push(format!("{}: {e}", cert_file.display())),
            Ok(chain) => {
                if let Some(leaf) = chain.first() {
                    for name in &leaf.dns_names {
                        add_host(name, NameSource::Certificate, &mut problems);
                    }
                    for ip in &leaf.ip_addresses {
                        add_host(&ip.to_string(), NameSource::Certificate, &mut problems);
                    }
                }
            }
        },
    }
    allowed.extend(config.ui_origins.iter().cloned());
    Origins {
        allowed: allowed.into_iter().collect(),
        problems,
    }
}

/// Starts the API as `config` says; `None` when it is off or could not
/// start (the reason is logged). Logs the allowed browser origins.
pub(super) fn start(config: &Config, store: &Store) -> Option<LocalApi> {
    let listen = config.api_listen?;
    let started = (|| -> Result<LocalApi, String> {
        let connection = StoredConnection::load(store).map_err(|e| e.to_string())?;
        let client = connection.client_config(store).map_err(|e| e.to_string())?;
        let auth = ProxmoxAuthenticator::new(ProxmoxAuthConfig::from_client(&client, store.root()))
            .map_err(|e| e.to_string())?;
        let mut server_config = ServerConfig::for_node(store.root());
        server_config.listen = listen;
        let members = Members::read(store.root(), &config.node);
        let origins = ui_origins(config, &members, &server_config.cert_file);
        server_config.allowed_origins = origins.allowed.clone();
        let cert_file = server_config.cert_file.clone();
        let handle = server::spawn(server_config, Api::new(store.clone()), Arc::new(auth))
            .map_err(|e| e.to_string())?;
        Ok(LocalApi {
            handle,
            cert_file,
            origins,
            next_look: Instant::now() + ORIGINS_RECHECK,
        })
    })();
    match started {
        Ok(api) => {
            tracing::info!(listen = %api.local_addr(), "local API served over HTTPS");
            tracing::info!(
                origins = %joined(&api.origins.allowed),
                "web UI origins allowed to call the local API (CORS, with credentials)"
            );
            api.origins.warn();
            Some(api)
        }
        Err(e) => {
            tracing::warn!(error = %e, "local API not served; reconciling goes on without it");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orbitlab_engine::pve::StoredTrust;
    use orbitlab_sim::pve::{DEFAULT_TOKEN_SECRET, PveSim, SimConfig, TestCa};

    fn config(root: &std::path::Path) -> Config {
        let mut config = Config::new(root, "pve1");
        config.api_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        config
    }

    /// A certificate for `names` (IP addresses become IP SANs) as
    /// `<root>/local/pve-ssl.pem` and `.key`.
    fn node_certificate(root: &Path, names: &[&str]) {
        let tls = TestCa::new("test CA").unwrap().issue_server(names).unwrap();
        std::fs::create_dir_all(root.join("local")).unwrap();
        std::fs::write(root.join("local/pve-ssl.pem"), &tls.cert_chain_pem).unwrap();
        std::fs::write(root.join("local/pve-ssl.key"), &tls.key_pem).unwrap();
    }

    const MEMBERS: &str = r#"{"nodename":"pve1","version":5,
        "cluster":{"name":"lab","version":3,"nodes":3,"quorate":1},
        "nodelist":{"pve1":{"id":1,"online":1,"ip":"192.168.1.11"},
                    "pve2":{"id":2,"online":1,"ip":"192.168.1.12"},
                    "pve3":{"id":3,"online":0,"ip":"fd00::13"}}}"#;

    #[test]
    fn serves_once_a_connection_and_the_node_certificate_exist() {
        let sim = PveSim::start(SimConfig::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        // No connection stored yet: no API, and no panic.
        assert!(start(&config(dir.path()), &store).is_none());
        StoredConnection {
            url: sim.origin(),
            token: "root@pam!orbitlab".into(),
            secret: DEFAULT_TOKEN_SECRET.into(),
            trust: StoredTrust::LoopbackHttp,
        }
        .save(&store)
        .unwrap();
        // Connection but no node certificate: still no API.
        assert!(start(&config(dir.path()), &store).is_none());
        node_certificate(dir.path(), &["localhost", "127.0.0.1", "pve1.lab.example"]);
        let mut api = start(&config(dir.path()), &store).expect("the API starts");
        assert_ne!(api.local_addr().port(), 0);
        assert_eq!(
            api.origins.allowed,
            ["https://pve1.lab.example:8006", "https://pve1:8006"]
        );
        assert_eq!(api.handle.allowed_origins(), api.origins.allowed);
        // A renewed certificate (and a cluster address) are looked at again
        // once a minute, and the running server allows what they say.
        node_certificate(dir.path(), &["pve1.lab.example.net"]);
        std::fs::write(dir.path().join(".members"), MEMBERS).unwrap();
        let members = Members::read(dir.path(), "pve1");
        let now = Instant::now();
        api.follow(&config(dir.path()), &members, now);
        assert_eq!(api.handle.allowed_origins().len(), 2, "looked too early");
        api.follow(&config(dir.path()), &members, now + ORIGINS_RECHECK);
        assert_eq!(
            api.handle.allowed_origins(),
            [
                "https://192.168.1.11:8006",
                "https://pve1.lab.example.net:8006",
                "https://pve1:8006"
            ]
        );
        api.shutdown();
        // Off when asked.
        let mut off = config(dir.path());
        off.api_listen = None;
        assert!(start(&off, &store).is_none());
    }

    #[test]
    fn origins_come_from_the_node_name_members_certificate_and_ui_origins() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join(".members"), MEMBERS).unwrap();
        node_certificate(
            root,
            &[
                "PVE1.Lab.Example",
                "pve1",
                "*.lab.example",
                "localhost",
                "127.0.0.1",
                "::1",
                "::ffff:127.0.0.1",
                "192.168.1.11",
                "2001:db8::11",
            ],
        );
        let mut config = Config::new(root, "pve1");
        config.ui_origins = vec![
            "https://PVE.example.com".parse().unwrap(),
            "https://pve1.lab.example:8006/".parse().unwrap(),
        ];
        let members = Members::read(root, "pve1");
        let cert = ServerConfig::for_node(root).cert_file;
        let origins = ui_origins(&config, &members, &cert);
        assert_eq!(
            origins.allowed,
            [
                "https://192.168.1.11:8006",
                "https://[2001:db8::11]:8006",
                "https://pve.example.com",
                "https://pve1.lab.example:8006",
                "https://pve1:8006",
            ],
            "only this node's names, each once, never a wildcard or loopback"
        );
        assert!(origins.problems.is_empty(), "{:?}", origins.problems);

        // Another node: its own address from .members, no certificate.
        let other = Config::new(root, "pve3");
        let origins = ui_origins(&other, &members, &root.join("local/none.pem"));
        assert_eq!(
            origins.allowed,
            ["https://[fd00::13]:8006", "https://pve3:8006"]
        );
        assert_eq!(origins.problems.len(), 1);
        assert!(
            origins.problems[0].contains("cannot read the certificate"),
            "{:?}",
            origins.problems
        );
        // A broken certificate is a problem, not a stop.
        std::fs::write(root.join("broken.pem"), "not PEM").unwrap();
        let origins = ui_origins(&other, &members, &root.join("broken.pem"));
        assert_eq!(origins.allowed.len(), 2);
        assert!(
            origins.problems[0].contains("broken.pem"),
            "{:?}",
            origins.problems
        );
    }

    #[test]
    fn a_standalone_node_and_a_renewed_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // No .members (a standalone node or a plain directory): the node
        // name and the certificate.
        node_certificate(root, &["pve1.example.com"]);
        let config = Config::new(root, "pve1");
        let cert = root.join("local/pve-ssl.pem");
        let members = Members::read(root, "pve1");
        assert_eq!(
            ui_origins(&config, &members, &cert).allowed,
            ["https://pve1.example.com:8006", "https://pve1:8006"]
        );
        // A renewed certificate with another name is seen at the next look.
        node_certificate(root, &["pve1.example.net", "10.1.2.3"]);
        assert_eq!(
            ui_origins(&config, &members, &cert).allowed,
            [
                "https://10.1.2.3:8006",
                "https://pve1.example.net:8006",
                "https://pve1:8006"
            ]
        );
    }
}
