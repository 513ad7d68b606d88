//! `orbitlab ssh-key ...`: SSH keys kept in the vault, from the command
//! line — create, show, export, rotate (keeping the previous key until it
//! is dropped), delete.
//!
//! Calls [`orbitlab_agent::ssh::SshKeys`] on the store given by `--root`:
//! records under `orbitlab/ssh/`, private keys as the vault secret
//! `ssh/<name>`; changes take the `ssh` cluster lock. A passphrase comes
//! only from standard input (`--passphrase-stdin`), never from arguments.
//! `private` is the only command here that prints key material.

use anyhow::Result;
use clap::{Args, Subcommand};
use orbitlab_agent::ssh::{KeyName, KeySpec, SshAlgorithm, SshKeyInfo, SshKeys};
use orbitlab_agent::store::Store;
use orbitlab_agent::vault::{SecretValue, ValueError, Vault};
use serde_json::json;

use crate::reply::Reply;
use crate::secrets::read_stdin_value;

/// Examples under `orbitlab ssh-key --help`.
pub const EXAMPLES: &str = "\
Examples:
  orbitlab ssh-key create deploy
  orbitlab ssh-key create backup --algorithm rsa4096 --comment backup@cluster
  orbitlab ssh-key create admin --passphrase-stdin < passphrase.txt
  orbitlab ssh-key show deploy
  orbitlab ssh-key public deploy >> ~/.ssh/authorized_keys
  orbitlab ssh-key private deploy > id_deploy && chmod 600 id_deploy
  orbitlab ssh-key rotate deploy
  orbitlab ssh-key drop-previous deploy

After `rotate` both keys are installed where the key is used, until
`drop-previous` retires the old one.";

/// `orbitlab ssh-key`.
#[derive(Debug, Subcommand)]
pub enum SshKeyCommand {
    /// Generate a key pair; the private key goes to the vault.
    Create {
        /// Key name: lowercase letters, digits and `-`.
        name: String,
        #[command(flatten)]
        spec: SpecArgs,
    },
    /// List the keys with their fingerprints.
    List,
    /// Show a key: algorithm, SHA256 fingerprint, public key, and the
    /// previous key while one is kept.
    Show {
        /// The key.
        name: String,
    },
    /// Print the current public key as an authorized_keys line.
    Public {
        /// The key.
        name: String,
    },
    /// Print the current private key (OpenSSH format; encrypted when it
    /// was made with a passphrase).
    Private {
        /// The key.
        name: String,
    },
    /// Replace the key with a new one (same algorithm and comment unless
    /// given); the old one is kept, and still installed, until
    /// `drop-previous`.
    Rotate {
        /// The key.
        name: String,
        #[command(flatten)]
        spec: SpecArgs,
    },
    /// Forget the previous key kept by a rotation.
    DropPrevious {
        /// The key.
        name: String,
    },
    /// Delete a key: its record and every vault version of it.
    Delete {
        /// The key.
        name: String,
    },
}

/// How to make a key.
#[derive(Debug, Args)]
pub struct SpecArgs {
    /// ed25519 (default for a new key) or rsa4096.
    #[arg(long, value_name = "ALGORITHM")]
    algorithm: Option<String>,
    /// Comment at the end of the public key (default `orbitlab:<name>`).
    #[arg(long, value_name = "TEXT")]
    comment: Option<String>,
    /// Encrypt the private key with a passphrase read from standard input
    /// (one trailing newline is dropped).
    #[arg(long)]
    passphrase_stdin: bool,
}

/// Runs `orbitlab ssh-key ...`.
pub fn run(store: &Store, command: SshKeyCommand) -> Result<Reply> {
    let keys = SshKeys::new(Vault::new(store.clone()));
    match command {
        SshKeyCommand::Create { name, spec } => {
            let name: KeyName = name.parse()?;
            let spec = spec.to_spec(None)?;
            Reply::data(keys.generate(&name, &spec)?)
        }
        SshKeyCommand::List => {
            let list = keys.list()?;
            let rows: Vec<_> = list.iter().map(row).collect();
            Reply::data(&list)?.with_text(rows)
        }
        SshKeyCommand::Show { name } => Reply::data(keys.show(&name.parse()?)?),
        SshKeyCommand::Public { name } => {
            let info = keys.show(&name.parse()?)?;
            Ok(Reply::document(
                json!({ "name": info.name, "fingerprint": info.current.fingerprint }),
                "public_key",
                info.current.public_key.as_bytes(),
                true,
            ))
        }
        SshKeyCommand::Private { name } => {
            let name: KeyName = name.parse()?;
            let key = keys.private_key(&name)?;
            let info = keys.show(&name)?;
            Ok(Reply::document(
                json!({
                    "name": name,
                    "fingerprint": info.current.fingerprint,
                    "encrypted": info.current.encrypted,
                }),
                "private_key",
                key.expose(),
                false,
            ))
        }
        SshKeyCommand::Rotate { name, spec } => {
            let name: KeyName = name.parse()?;
            let current = keys.show(&name)?;
            let spec = spec.to_spec(Some(&current))?;
            let reply = Reply::data(keys.rotate(&name, &spec)?)?;
            Ok(if current.current.encrypted && spec.passphrase.is_none() {
                reply.warn(format!(
                    "the previous key of {name} was passphrase-encrypted, the new one is not (give --passphrase-stdin to encrypt it)"
                ))
            } else {
                reply
            })
        }
        SshKeyCommand::DropPrevious { name } => Reply::data(keys.drop_previous(&name.parse()?)?),
        SshKeyCommand::Delete { name } => {
            let name: KeyName = name.parse()?;
            keys.delete(&name)?;
            Reply::data(json!({ "name": name, "deleted": true }))
        }
    }
}

impl SpecArgs {
    /// The spec for a new key; for a rotation, algorithm and comment
    /// default to those of the `current` key.
    fn to_spec(&self, current: Option<&SshKeyInfo>) -> Result<KeySpec> {
        let algorithm = match (&self.algorithm, current) {
            (Some(text), _) => text.parse::<SshAlgorithm>()?,
            (None, Some(info)) => info.current.algorithm,
            (None, None) => SshAlgorithm::default(),
        };
        let comment = self.comment.clone().or_else(|| {
            current.and_then(|info| {
                info.current
                    .public_key
                    .splitn(3, ' ')
                    .nth(2)
                    .map(str::to_owned)
            })
        });
        let passphrase = if self.passphrase_stdin {
            Some(passphrase_from_stdin()?)
        } else {
            None
        };
        Ok(KeySpec {
            algorithm,
            comment,
            passphrase,
        })
    }
}

/// The passphrase on standard input, without one trailing newline.
fn passphrase_from_stdin() -> Result<SecretValue> {
    let empty = || {
        anyhow::anyhow!(
            "the passphrase on standard input is empty; give one, or leave out --passphrase-stdin"
        )
    };
    let read = match read_stdin_value("the passphrase") {
        Ok(read) => read,
        Err(ValueError::Empty { .. }) => return Err(empty()),
        Err(other) => return Err(anyhow::Error::new(other).context("--passphrase-stdin")),
    };
    let bytes = read.expose();
    let end = bytes
        .strip_suffix(b"\r\n")
        .or_else(|| bytes.strip_suffix(b"\n"))
        .unwrap_or(bytes)
        .len();
    SecretValue::new(bytes[..end].to_vec()).map_err(|_| empty())
}

/// One line of the text table of `ssh-key list`.
fn row(info: &SshKeyInfo) -> serde_json::Value {
    json!({
        "name": info.name,
        "algorithm": info.current.algorithm,
        "fingerprint": info.current.fingerprint,
        "encrypted": info.current.encrypted,
        "created": info.current.created,
        "previous": info.previous.as_ref().map(|p| p.fingerprint.clone()).unwrap_or_default(),
    })
}
