//! Serving the local HTTPS API (the path tree, for the web UI panel) from
//! the agent: started once a Proxmox connection is stored (credentials are
//! checked against Proxmox itself; a ticket's CSRF prevention token with
//! the cluster's key `<root>/pve-www.key`, read on each such write),
//! restarted when the connection changes,
//! stopped with the agent. A problem (no node certificate, port taken) is
//! logged and leaves the agent reconciling without the API.

use std::sync::Arc;

use crate::server::{self, ProxmoxAuthConfig, ProxmoxAuthenticator, ServerConfig, ServerHandle};
use orbitlab_engine::api::Api;
use orbitlab_engine::pve::StoredConnection;
use orbitlab_engine::store::Store;

use super::Config;

/// Starts the API as `config` says; `None` when it is off or could not
/// start (the reason is logged).
pub(super) fn start(config: &Config, store: &Store) -> Option<ServerHandle> {
    let listen = config.api_listen?;
    let started = (|| -> Result<ServerHandle, String> {
        let connection = StoredConnection::load(store).map_err(|e| e.to_string())?;
        let client = connection.client_config(store).map_err(|e| e.to_string())?;
        let auth = ProxmoxAuthenticator::new(ProxmoxAuthConfig::from_client(&client, store.root()))
            .map_err(|e| e.to_string())?;
        let mut server_config = ServerConfig::for_node(store.root());
        server_config.listen = listen;
        server::spawn(server_config, Api::new(store.clone()), Arc::new(auth))
            .map_err(|e| e.to_string())
    })();
    match started {
        Ok(handle) => {
            tracing::info!(listen = %handle.local_addr(), "local API served over HTTPS");
            Some(handle)
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
        let tls = TestCa::new("test CA")
            .unwrap()
            .issue_server(&["localhost", "127.0.0.1"])
            .unwrap();
        std::fs::create_dir_all(dir.path().join("local")).unwrap();
        std::fs::write(dir.path().join("local/pve-ssl.pem"), &tls.cert_chain_pem).unwrap();
        std::fs::write(dir.path().join("local/pve-ssl.key"), &tls.key_pem).unwrap();
        let handle = start(&config(dir.path()), &store).expect("the API starts");
        assert_ne!(handle.local_addr().port(), 0);
        handle.shutdown();
        // Off when asked.
        let mut off = config(dir.path());
        off.api_listen = None;
        assert!(start(&off, &store).is_none());
    }
}
