//! `orbitlab ssh-key ...`: SSH keys kept in the vault, from the command
//! line — create, show, export, rotate (keeping the previous key until it
//! is dropped), delete.
//!
//! Every command is one [`SshCall`] of the API (`/ssh/keys/...`), run in
//! this process on the store given by `--root` or, with `--host`, by a
//! node's agent: records under `orbitlab/ssh/`, private keys as the vault secret
//! `ssh/<name>`; changes take the `ssh` cluster lock. A passphrase comes
//! only from standard input (`--passphrase-stdin`), never from arguments.
//! `private` is the only command here that prints key material.

use anyhow::{Context, Result, bail};
use base64::Engine;
use clap::{Args, Subcommand};
use orbitlab_engine::api::{KeyRequest, SshCall};
use orbitlab_engine::ssh::{KeyName, SshAlgorithm};
use orbitlab_engine::vault::{SecretValue, ValueError};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::backend::Backend;
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

/// Runs `orbitlab ssh-key ...` through `backend` (this process, or an
/// agent over HTTPS: the same calls and answers).
pub fn run(backend: &Backend, command: SshKeyCommand) -> Result<Reply> {
    match command {
        SshKeyCommand::Create { name, spec } => {
            Reply::data(backend.ssh(SshCall::Generate(name.parse()?, spec.to_request()?))?)
        }
        SshKeyCommand::List => {
            let list = backend.ssh(SshCall::List)?;
            let rows: Vec<_> = list.as_array().into_iter().flatten().map(row).collect();
            Reply::data(&list)?.with_text(rows)
        }
        SshKeyCommand::Show { name } => Reply::data(backend.ssh(SshCall::Show(name.parse()?))?),
        SshKeyCommand::Public { name } => {
            let answer = backend.ssh(SshCall::Public(name.parse()?))?;
            Ok(Reply::document(
                json!({ "name": answer["name"], "fingerprint": answer["fingerprint"] }),
                "public_key",
                answer["public_key"].as_str().unwrap_or_default().as_bytes(),
                true,
            ))
        }
        SshKeyCommand::Private { name } => {
            let mut answer = backend.ssh(SshCall::Private(name.parse()?))?;
            let encoded = match answer.get_mut("private_key").map(Value::take) {
                Some(Value::String(text)) => Zeroizing::new(text),
                _ => bail!("the answer holds no private key"),
            };
            let key = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(encoded.as_bytes())
                    .context("the private key in the answer is not base64")?,
            );
            Ok(Reply::document(
                json!({
                    "name": answer["name"],
                    "fingerprint": answer["fingerprint"],
                    "encrypted": answer["encrypted"],
                }),
                "private_key",
                &key,
                false,
            ))
        }
        SshKeyCommand::Rotate { name, spec } => {
            let name: KeyName = name.parse()?;
            let rotated = backend.ssh(SshCall::Rotate(name.clone(), spec.to_request()?))?;
            let was_encrypted = rotated["previous"]["encrypted"] == Value::Bool(true);
            let now_encrypted = rotated["current"]["encrypted"] == Value::Bool(true);
            let reply = Reply::data(&rotated)?;
            Ok(if was_encrypted && !now_encrypted {
                reply.warn(format!(
                    "the previous key of {name} was passphrase-encrypted, the new one is not (give --passphrase-stdin to encrypt it)"
                ))
            } else {
                reply
            })
        }
        SshKeyCommand::DropPrevious { name } => {
            Reply::data(backend.ssh(SshCall::DropPrevious(name.parse()?))?)
        }
        SshKeyCommand::Delete { name } => Reply::data(backend.ssh(SshCall::Delete(name.parse()?))?),
    }
}

impl SpecArgs {
    /// The request: unset fields keep the current key's (rotate) or the
    /// defaults (create).
    fn to_request(&self) -> Result<KeyRequest> {
        let algorithm = self
            .algorithm
            .as_deref()
            .map(str::parse::<SshAlgorithm>)
            .transpose()?;
        let passphrase = if self.passphrase_stdin {
            Some(passphrase_from_stdin()?)
        } else {
            None
        };
        Ok(KeyRequest {
            algorithm,
            comment: self.comment.clone(),
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
fn row(info: &Value) -> Value {
    let current = &info["current"];
    json!({
        "name": info["name"],
        "algorithm": current["algorithm"],
        "fingerprint": current["fingerprint"],
        "encrypted": current["encrypted"],
        "created": current["created"],
        "previous": info["previous"]["fingerprint"].as_str().unwrap_or_default(),
    })
}
