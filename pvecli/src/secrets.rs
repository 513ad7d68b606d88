//! `orbitlab secret ...` and `orbitlab vault ...`: the vault's secrets and
//! keyring from the command line.
//!
//! Values come from standard input or a file, never from arguments (which
//! shell histories and process listings keep); `secret get` writes the
//! value to standard output exactly as stored. Everything else the vault
//! shows is metadata. Every command is one [`VaultCall`] of the API
//! (`/vault/...`), run in this process on the store given by `--root`
//! (`priv/orbitlab/vault/`, root-only; writes take its cluster lock) or,
//! with `--host`, by a node's agent over HTTPS — the value then travels in
//! the request or answer body only.

use std::fs::File;
use std::io::IsTerminal;
use std::num::NonZeroUsize;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use base64::Engine;
use clap::Subcommand;
use orbitlab_engine::api::VaultCall;
use orbitlab_engine::vault::{SecretPath, SecretValue, ValueError, Version};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::backend::Backend;
use crate::reply::Reply;

/// Examples under `orbitlab secret --help`.
pub const SECRET_EXAMPLES: &str = "\
Examples:
  printf %s 's3cr3t' | orbitlab secret set app/db/password
  orbitlab secret set app/tls/key --file key.pem
  orbitlab secret get app/db/password
  orbitlab secret get app/db/password --version 2 --output-format json
  orbitlab secret list app
  orbitlab secret versions app/db/password
  orbitlab secret rollback app/db/password --to 2
  orbitlab secret prune app/db/password --keep 5
  orbitlab secret delete app/db/password
  orbitlab secret who-can-read app/db/password

Values are never taken from arguments: they would end up in shell
history and process listings. Standard input is stored byte for byte
(`echo` adds a newline; `printf %s` does not).";

/// Examples under `orbitlab vault --help`.
pub const VAULT_EXAMPLES: &str = "\
Examples:
  orbitlab vault status
  orbitlab vault rotate-key --output-format json
  read -rs P; printf %s \"$P\" | orbitlab vault seal
  read -rs P; printf %s \"$P\" | orbitlab --host https://pve1:8206 vault unseal

Sealed, the vault's keys are wrapped by the passphrase, and only a process
that was given it can read secrets: unseal each node's agent (it forgets
the key when it restarts) and go through it with --host. The passphrase is
read from standard input, never from an argument.";

/// `orbitlab secret`.
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Store a new version of a secret (version 1 for a new one). The
    /// value is read from standard input, or from --file, byte for byte;
    /// at most 64 KiB, never empty. There is no value argument.
    Set {
        /// Secret path, e.g. app/db/password (segments of letters, digits,
        /// `.`, `_`, `-`).
        path: String,
        /// Read the value from this file instead of standard input (`-`:
        /// standard input).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Print a secret's value: exactly as stored in text format (no
    /// newline added), with its version and time in the other formats.
    #[command(disable_version_flag = true)]
    Get {
        /// Secret path.
        path: String,
        /// An older version (`3` or `v3`) instead of the newest.
        #[arg(long, value_name = "N")]
        version: Option<String>,
    },
    /// List secrets (paths and version counts; no values), all or those at
    /// or below a prefix.
    List {
        /// Only secrets at or below this path (segment-wise).
        prefix: Option<String>,
    },
    /// Show every kept version of a secret (numbers and times; no values).
    Versions {
        /// Secret path.
        path: String,
    },
    /// Write a new version equal to an older one. No version is destroyed.
    Rollback {
        /// Secret path.
        path: String,
        /// The version to copy.
        #[arg(long, value_name = "N")]
        to: String,
    },
    /// Delete a secret with all its versions.
    Delete {
        /// Secret path.
        path: String,
    },
    /// Who may read a secret (the instances its Secret manifests grant,
    /// and by which `readers` entry), whether each declares it, and which
    /// version each holds. No value.
    WhoCanRead {
        /// Secret path (a Secret manifest's `path`, default its name).
        path: String,
    },
    /// Drop all but the newest versions of a secret.
    Prune {
        /// Secret path.
        path: String,
        /// How many of the newest versions to keep (at least 1).
        #[arg(long, value_name = "N")]
        keep: NonZeroUsize,
    },
}

/// `orbitlab vault`.
#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Make a new key-encryption key and re-wrap every version's data key
    /// with it; values are not decrypted, every version stays readable,
    /// keys no version uses any more are dropped.
    RotateKey,
    /// Show the keyring file, its keys (ids and ages, never the keys),
    /// the number of secrets and whether the vault is sealed.
    Status,
    /// Seal the vault (or change its passphrase): its keys are stored
    /// wrapped by a key Argon2id derives from the passphrase (read from
    /// standard input). Needs the vault open where it runs: plain, or
    /// unsealed in the agent it runs through.
    Seal {
        /// Argon2id memory cost in MiB (at least 8).
        #[arg(long, value_name = "MIB", default_value_t = orbitlab_engine::vault::seal::DEFAULT_MEMORY_MIB)]
        kdf_memory_mib: u32,
    },
    /// Unseal the vault in the agent this runs through (`--host`): it
    /// keeps the key in memory until it stops. The passphrase is read
    /// from standard input; a wrong one changes nothing.
    Unseal,
}

/// Runs `orbitlab secret ...` through `backend` (this process, or an
/// agent over HTTPS: the same calls and answers).
pub fn run_secret(backend: &Backend, command: SecretCommand) -> Result<Reply> {
    match command {
        SecretCommand::Set { path, file } => {
            let path = secret_path(&path)?;
            let value = match file {
                Some(file) if file.as_os_str() != "-" => {
                    let label = file.display().to_string();
                    let reader = File::open(&file)
                        .with_context(|| format!("cannot open the value file {label}"))?;
                    SecretValue::read_from(reader, &label)?
                }
                _ => read_stdin_value("the secret value")?,
            };
            Reply::data(backend.vault(VaultCall::Set { path, value })?)
        }
        SecretCommand::Get { path, version } => {
            let path = secret_path(&path)?;
            let version = version.map(|v| v.parse::<Version>()).transpose()?;
            secret_reply(backend.vault(VaultCall::Value { path, version })?)
        }
        SecretCommand::List { prefix } => {
            let prefix = prefix.as_deref().map(secret_path).transpose()?;
            let listing = backend.vault(VaultCall::List { prefix })?;
            let mut reply = Reply::data(&listing)?.with_text(&listing["secrets"])?;
            for file in listing["damaged"].as_array().into_iter().flatten() {
                reply = reply.warn(format!(
                    "cannot list {}: it is damaged, misplaced or fails its version-history check (`orbitlab secret get` on its path says why)",
                    file.as_str().unwrap_or_default()
                ));
            }
            Ok(reply)
        }
        SecretCommand::Versions { path } => {
            Reply::data(backend.vault(VaultCall::Versions(secret_path(&path)?))?)
        }
        SecretCommand::Rollback { path, to } => {
            let to: Version = to.parse()?;
            let path = secret_path(&path)?;
            Reply::data(backend.vault(VaultCall::Rollback { path, to })?)
        }
        SecretCommand::Delete { path } => {
            Reply::data(backend.vault(VaultCall::Delete(secret_path(&path)?))?)
        }
        SecretCommand::Prune { path, keep } => {
            let path = secret_path(&path)?;
            Reply::data(backend.vault(VaultCall::Prune { path, keep })?)
        }
        SecretCommand::WhoCanRead { path } => {
            let answer = backend.vault(VaultCall::Readers(secret_path(&path)?))?;
            let rows: Vec<Value> = answer["secrets"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|s| {
                    let secret = s["secret"].clone();
                    s["readers"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .map(move |mut r| {
                            r["secret"] = secret.clone();
                            r
                        })
                })
                .collect();
            let mut reply = Reply::data(&answer)?.with_text(Value::Array(rows))?;
            if answer["secrets"].as_array().is_none_or(Vec::is_empty) {
                reply = reply.warn(format!(
                    "no Secret manifest names vault path {path}: nobody is granted it"
                ));
            }
            Ok(reply)
        }
    }
}

/// The reply of a value read: `{path, version, created, encoding:
/// "base64", value}` from the API, the value shown as it is stored.
fn secret_reply(mut answer: Value) -> Result<Reply> {
    let encoded = match answer.get_mut("value").map(Value::take) {
        Some(Value::String(text)) => Zeroizing::new(text),
        _ => bail!("the answer holds no value"),
    };
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_bytes())
            .context("the value in the answer is not base64")?,
    );
    Ok(Reply::secret(
        json!({
            "path": answer["path"],
            "version": answer["version"],
            "created": answer["created"],
        }),
        &bytes,
    ))
}

/// Runs `orbitlab vault ...` through `backend`.
pub fn run_vault(backend: &Backend, command: VaultCommand) -> Result<Reply> {
    match command {
        VaultCommand::RotateKey => {
            let report = backend.vault(VaultCall::RotateKey)?;
            let failed = report["failed"].as_array().map_or(0, Vec::len);
            let reply = Reply::data(&report)?;
            Ok(if failed == 0 {
                reply
            } else {
                reply.fail(format!(
                    "{failed} secret file(s) could not be re-wrapped and still use their old key (kept in the keyring); `failed` above names them — restore or delete them, then rotate again"
                ))
            })
        }
        VaultCommand::Status => Reply::data(backend.vault(VaultCall::Status)?),
        VaultCommand::Seal { kdf_memory_mib } => {
            let passphrase = read_stdin_value("the passphrase")?;
            Reply::data(backend.vault(VaultCall::Seal {
                passphrase,
                memory_mib: kdf_memory_mib,
            })?)
        }
        VaultCommand::Unseal => {
            let passphrase = read_stdin_value("the passphrase")?;
            let reply = Reply::data(backend.vault(VaultCall::Unseal { passphrase })?)?;
            Ok(if backend.is_remote() {
                reply
            } else {
                reply.warn(
                    "unsealed in this command's own process only, which ends now; to unseal a node, run this through its agent: orbitlab --host https://NODE:8206 vault unseal",
                )
            })
        }
    }
}

fn secret_path(text: &str) -> Result<SecretPath> {
    Ok(text.parse()?)
}

/// Reads `what` (a secret value, a passphrase) from standard input, byte
/// for byte; says so first when standard input is a terminal.
pub fn read_stdin_value(what: &str) -> Result<SecretValue, ValueError> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!(
            "orbitlab: reading {what} from standard input; end it with Ctrl-D (a newline typed before it is kept)"
        );
    }
    SecretValue::read_from(stdin.lock(), "standard input")
}
