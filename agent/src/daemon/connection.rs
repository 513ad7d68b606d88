//! The agent's Proxmox client, built from the connection `orbitlab init`
//! stores in `<root>/priv/orbitlab/pve-api.json` (root-only). Reloaded when
//! the file changes (a rotated token), checked at start, at every resync
//! and while no usable connection exists yet — an agent installed before
//! `orbitlab init` ran simply waits. Only a digest of the file is kept to
//! notice changes; the secret never reaches a log or an error.

use sha2::{Digest, Sha256};

use orbitlab_engine::pve::{ConnectionError, PveClient, PveError, StoredConnection};
use orbitlab_engine::store::Store;

/// Why there is no client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error("cannot set up the Proxmox client from the stored connection: {0}")]
    Client(#[from] PveError),
}

/// The current client, if any.
#[derive(Debug, Default)]
pub struct ConnectionSlot {
    current: Option<([u8; 32], PveClient)>,
}

impl ConnectionSlot {
    /// The client, once one could be built.
    pub fn client(&self) -> Option<&PveClient> {
        self.current.as_ref().map(|(_, client)| client)
    }

    /// Reads the stored connection and rebuilds the client if it changed.
    /// `Ok(true)` when a new client was built. On error the previous client
    /// (if any) is kept: a broken edit of the file must not stop the agent.
    pub fn refresh(&mut self, store: &Store) -> Result<bool, ClientError> {
        let connection = StoredConnection::load(store)?;
        let encoded = serde_json::to_vec(&connection).expect("a stored connection encodes");
        let digest: [u8; 32] = Sha256::digest(&encoded).into();
        if self
            .current
            .as_ref()
            .is_some_and(|(known, _)| *known == digest)
        {
            return Ok(false);
        }
        let client = PveClient::new(connection.client_config(store)?)?;
        self.current = Some((digest, client));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orbitlab_engine::pve::StoredTrust;

    fn connection(secret: &str) -> StoredConnection {
        StoredConnection {
            url: "http://127.0.0.1:8006".into(),
            token: "root@pam!orbitlab".into(),
            secret: secret.into(),
            trust: StoredTrust::LoopbackHttp,
        }
    }

    #[test]
    fn waits_for_init_then_reloads_only_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        let mut slot = ConnectionSlot::default();
        let missing = slot.refresh(&store).unwrap_err().to_string();
        assert!(missing.contains("run `orbitlab init`"), "{missing}");
        assert!(slot.client().is_none());
        connection("s3cret-one").save(&store).unwrap();
        assert!(slot.refresh(&store).unwrap());
        assert!(
            !slot.refresh(&store).unwrap(),
            "unchanged file, same client"
        );
        connection("s3cret-two").save(&store).unwrap();
        assert!(
            slot.refresh(&store).unwrap(),
            "a rotated secret rebuilds the client"
        );
        std::fs::write(dir.path().join("priv/orbitlab/pve-api.json"), "{ broken").unwrap();
        let broken = slot.refresh(&store).unwrap_err().to_string();
        assert!(!broken.contains("s3cret"), "{broken}");
        assert!(slot.client().is_some(), "the last good client is kept");
    }
}
