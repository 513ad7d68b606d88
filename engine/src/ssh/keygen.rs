//! SSH key material with the RustCrypto `ssh-key` crate: generating
//! ed25519 or RSA 4096 keys, OpenSSH private-key encoding (optionally
//! passphrase-encrypted: bcrypt-pbkdf + AES-256-CTR, as `ssh-keygen`
//! writes), `SHA256:` fingerprints and `authorized_keys` lines. No I/O.

use std::fmt;
use std::str::FromStr;

use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey};

use super::SshError;
use crate::pki::InvalidInput;
use crate::vault::SecretValue;

/// Key algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SshAlgorithm {
    /// Ed25519 (the default).
    #[default]
    Ed25519,
    /// RSA, 4096 bits.
    Rsa4096,
}

impl FromStr for SshAlgorithm {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, InvalidInput> {
        match s {
            "ed25519" => Ok(SshAlgorithm::Ed25519),
            "rsa" | "rsa4096" | "rsa-4096" => Ok(SshAlgorithm::Rsa4096),
            _ => Err(InvalidInput {
                what: "SSH key algorithm",
                input: s.to_owned(),
                reason: "choose `ed25519` (default) or `rsa4096`".into(),
            }),
        }
    }
}

impl From<orbitlab_manifests::spec::SshKeyAlgorithm> for SshAlgorithm {
    /// The algorithm an `SshKey` manifest asks for.
    fn from(a: orbitlab_manifests::spec::SshKeyAlgorithm) -> Self {
        match a {
            orbitlab_manifests::spec::SshKeyAlgorithm::Ed25519 => SshAlgorithm::Ed25519,
            orbitlab_manifests::spec::SshKeyAlgorithm::Rsa4096 => SshAlgorithm::Rsa4096,
        }
    }
}

impl fmt::Display for SshAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SshAlgorithm::Ed25519 => "ed25519",
            SshAlgorithm::Rsa4096 => "rsa4096",
        })
    }
}

/// A freshly generated key: the private part for the vault, the public
/// facts for the record.
pub(crate) struct Generated {
    pub(crate) private_openssh: SecretValue,
    pub(crate) public_line: String,
    pub(crate) fingerprint: String,
}

impl fmt::Debug for Generated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generated")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// Checks a key comment: printable ASCII, no newline, at most 128 bytes.
pub(crate) fn check_comment(comment: &str) -> Result<(), InvalidInput> {
    if comment.len() > 128 || !comment.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(InvalidInput {
            what: "SSH key comment",
            input: comment.to_owned(),
            reason: "use at most 128 printable ASCII characters, no newline".into(),
        });
    }
    Ok(())
}

/// Generates a key; encrypts the private key with `passphrase` when given.
pub(crate) fn generate(
    algorithm: SshAlgorithm,
    comment: &str,
    passphrase: Option<&SecretValue>,
) -> Result<Generated, SshError> {
    let alg = match algorithm {
        SshAlgorithm::Ed25519 => Algorithm::Ed25519,
        SshAlgorithm::Rsa4096 => Algorithm::Rsa { hash: None },
    };
    let failed = |doing: &str| {
        let doing = doing.to_owned();
        move |e: ssh_key::Error| SshError::Key {
            doing,
            reason: e.to_string(),
        }
    };
    let mut key = PrivateKey::random(&mut OsRng, alg).map_err(failed("generate the key"))?;
    key.set_comment(comment);
    // Read the public facts first: an encrypted key keeps its comment in
    // the encrypted part.
    let public_line = key
        .public_key()
        .to_openssh()
        .map_err(failed("encode the public key"))?;
    let fingerprint = key.public_key().fingerprint(HashAlg::Sha256).to_string();
    if let Some(pass) = passphrase {
        key = key
            .encrypt(&mut OsRng, pass.expose())
            .map_err(failed("encrypt the key with the passphrase"))?;
    }
    let pem = key
        .to_openssh(LineEnding::LF)
        .map_err(failed("encode the private key"))?;
    let private_openssh = SecretValue::new(pem.as_bytes().to_vec()).map_err(|e| SshError::Key {
        doing: "store the private key".into(),
        reason: e.to_string(),
    })?;
    Ok(Generated {
        private_openssh,
        public_line,
        fingerprint,
    })
}

/// The `SHA256:` fingerprint of an OpenSSH private key (its public part is
/// readable even when the private part is encrypted).
pub(crate) fn fingerprint_of(private_openssh: &SecretValue) -> Result<String, SshError> {
    let key = PrivateKey::from_openssh(private_openssh.expose()).map_err(|e| SshError::Key {
        doing: "read the private key from the vault".into(),
        reason: e.to_string(),
    })?;
    Ok(key.public_key().fingerprint(HashAlg::Sha256).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_keys_and_fingerprints() {
        let g = generate(SshAlgorithm::Ed25519, "orbitlab:test", None).unwrap();
        assert!(
            g.public_line.starts_with("ssh-ed25519 AAAA"),
            "{}",
            g.public_line
        );
        assert!(g.public_line.ends_with(" orbitlab:test"));
        assert!(g.fingerprint.starts_with("SHA256:"));
        assert_eq!(g.fingerprint.len(), "SHA256:".len() + 43);
        assert_eq!(fingerprint_of(&g.private_openssh).unwrap(), g.fingerprint);
        let text = g.private_openssh.expose_str().unwrap();
        assert!(text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        assert!(!format!("{g:?}").contains("PRIVATE"));
    }

    #[test]
    fn passphrase_encrypts_and_keeps_the_public_part() {
        let pass = SecretValue::new(b"correct horse".to_vec()).unwrap();
        let g = generate(SshAlgorithm::Ed25519, "c", Some(&pass)).unwrap();
        let key = PrivateKey::from_openssh(g.private_openssh.expose()).unwrap();
        assert!(key.is_encrypted());
        assert!(key.decrypt(b"wrong").is_err());
        assert!(key.decrypt(pass.expose()).is_ok());
        assert_eq!(fingerprint_of(&g.private_openssh).unwrap(), g.fingerprint);
    }

    #[test]
    fn algorithms_match_the_manifest_kind() {
        use orbitlab_manifests::spec::SshKeyAlgorithm as M;
        for (m, ours) in [
            (M::Ed25519, SshAlgorithm::Ed25519),
            (M::Rsa4096, SshAlgorithm::Rsa4096),
        ] {
            assert_eq!(SshAlgorithm::from(m), ours);
            // The same words in manifests, records and commands.
            assert_eq!(
                serde_json::to_string(&m).unwrap(),
                serde_json::to_string(&ours).unwrap()
            );
            assert_eq!(ours.to_string().parse::<SshAlgorithm>().unwrap(), ours);
        }
    }

    #[test]
    fn names_and_comments() {
        assert_eq!(
            "rsa".parse::<SshAlgorithm>().unwrap(),
            SshAlgorithm::Rsa4096
        );
        assert!("dsa".parse::<SshAlgorithm>().is_err());
        assert!(check_comment("root@node1").is_ok());
        assert!(check_comment("a\nb").is_err());
    }
}
