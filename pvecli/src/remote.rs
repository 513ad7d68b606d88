//! `orbitlab --host URL ...`: the same requests sent to a node's agent over
//! HTTPS instead of run in this process, so a workstation or CI job can
//! script OrbitLab without `/etc/pve`.
//!
//! The credential is a Proxmox API token, `USER@REALM!ID=SECRET`, from
//! `$ORBITLAB_TOKEN` or `--token-file FILE` (never an argument: shell
//! histories and process listings keep those). The agent's certificate is
//! always verified: against `--cacert FILE` (default
//! `/etc/pve/pve-root-ca.pem`) or a pinned SHA-256 `--fingerprint`.
//! Secret values travel only in request and answer bodies.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use orbitlab_engine::api::TREE_PREFIX;
use orbitlab_engine::pve::wire::{self, HttpClient, HttpOptions, Request};
use orbitlab_engine::pve::{Fingerprint, Method, Trust};
use serde_json::Value;
use zeroize::Zeroizing;

/// Environment variable holding the API token (`USER@REALM!ID=SECRET`).
pub const TOKEN_ENV: &str = "ORBITLAB_TOKEN";
/// The CA used when neither `--cacert` nor `--fingerprint` is given.
const DEFAULT_CA: &str = "/etc/pve/pve-root-ca.pem";

/// Where and how to reach an agent.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// `https://HOST[:PORT]`.
    pub host: String,
    /// A file holding the token; else `$ORBITLAB_TOKEN`.
    pub token_file: Option<PathBuf>,
    /// CA certificate(s) to verify the agent with.
    pub cacert: Option<PathBuf>,
    /// The agent certificate's SHA-256 fingerprint.
    pub fingerprint: Option<String>,
}

/// A request body.
pub enum Body {
    /// None.
    Empty,
    /// Form parameters (object properties).
    Form(Vec<(String, String)>),
    /// Raw bytes of a content type (manifests, a secret value).
    Raw(&'static str, Vec<u8>),
}

/// An HTTPS connection to one agent.
pub struct Remote {
    base: String,
    client: HttpClient,
    /// `PVEAPIToken=...`, wiped on drop.
    authorization: Zeroizing<String>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("base", &self.base).finish()
    }
}

impl Remote {
    /// Connects to `target` (nothing is sent yet).
    pub fn new(target: &Target) -> Result<Remote> {
        let host = target.host.trim_end_matches('/');
        let base = match host.split_once("://") {
            Some(("https", rest)) if !rest.is_empty() => host.to_owned(),
            Some((scheme, _)) => bail!(
                "--host {host}: the agent is reached over HTTPS only (not {scheme}); give https://NODE:PORT"
            ),
            None if !host.is_empty() => format!("https://{host}"),
            None => bail!("--host is empty; give https://NODE:PORT"),
        };
        let authorization = read_token(target.token_file.as_ref())?;
        let trust = match (&target.fingerprint, &target.cacert) {
            (Some(fp), _) => {
                Trust::Fingerprint(fp.parse::<Fingerprint>().context("--fingerprint")?)
            }
            (None, Some(ca)) => Trust::CaFile(ca.clone()),
            (None, None) => Trust::CaFile(DEFAULT_CA.into()),
        };
        // The same client and verification as the agent's own Proxmox
        // client: CA certificates with host names checked, or exactly one
        // pinned certificate whose handshake signatures are still checked.
        let client = HttpClient::new(
            &trust,
            HttpOptions {
                timeout: Duration::from_secs(300),
                connect_timeout: Duration::from_secs(30),
                user_agent: concat!("orbitlab/", env!("CARGO_PKG_VERSION")),
            },
        )
        .context("--cacert/--fingerprint")?;
        Ok(Remote {
            base,
            client,
            authorization,
        })
    }

    /// Sends `method path?query` with `body`; the answer's `data`, or its
    /// message as the error.
    pub fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Body,
    ) -> Result<Value> {
        let url = format!("{}{TREE_PREFIX}{}", self.base, path.trim_end_matches('/'));
        self.send(Request::new(method, wire::with_query(&url, query)), body)
    }

    /// Posts manifests (YAML) to the agent's apply endpoint.
    pub fn apply(&self, yaml: String, source: &str, dry_run: bool) -> Result<Value> {
        let url = format!("{}{}", self.base, orbitlab_engine::api::APPLY_PATH);
        let mut query = vec![("source", source.to_owned())];
        if dry_run {
            query.push(("dry-run", "1".to_owned()));
        }
        let request = Request::new(Method::POST, wire::with_query(&url, &query));
        self.send(request, Body::Raw("application/yaml", yaml.into_bytes()))
    }

    fn send(&self, request: Request<'_>, body: Body) -> Result<Value> {
        let request = request
            .header("Authorization", self.authorization.as_str())
            .body(match body {
                Body::Empty => wire::Body::Empty,
                Body::Form(pairs) => wire::Body::form(&pairs),
                Body::Raw(content_type, bytes) => wire::Body::Bytes(content_type, bytes),
            });
        let response = self
            .client
            .send(request)
            .with_context(|| format!("cannot reach the agent at {}", self.base))?;
        let status = response.status_line();
        let answer: Value = serde_json::from_slice(&response.body).with_context(|| {
            format!("the agent at {} answered {status} without JSON", self.base)
        })?;
        if response.is_success() {
            return Ok(answer.get("data").cloned().unwrap_or(Value::Null));
        }
        let mut message = answer["message"]
            .as_str()
            .map_or_else(|| status.clone(), str::to_owned);
        if let Some(errors) = answer["errors"].as_object() {
            for (field, reason) in errors {
                let reason = reason.as_str().unwrap_or_default();
                if !message.contains(reason) {
                    message.push_str(&format!("\n{field}: {reason}"));
                }
            }
        }
        bail!("{message}")
    }
}

/// `PVEAPIToken=USER@REALM!ID=SECRET` from the token file or
/// `$ORBITLAB_TOKEN` (with or without the `PVEAPIToken=` prefix).
fn read_token(file: Option<&PathBuf>) -> Result<Zeroizing<String>> {
    let raw = Zeroizing::new(match file {
        Some(file) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the token file {}", file.display()))?,
        None => match std::env::var(TOKEN_ENV) {
            Ok(token) => token,
            Err(_) => bail!(
                "--host needs an API token: put USER@REALM!ID=SECRET in ${TOKEN_ENV} or in a file given with --token-file"
            ),
        },
    });
    let token = raw.trim();
    let token = token.strip_prefix("PVEAPIToken=").unwrap_or(token);
    let well_formed = token
        .split_once('!')
        .and_then(|(user, rest)| Some((user, rest.split_once('=')?)))
        .is_some_and(|(user, (id, secret))| {
            user.contains('@') && !id.is_empty() && !secret.is_empty()
        });
    if !well_formed || token.chars().any(char::is_control) {
        // The token is not repeated: it may be mostly right.
        bail!("the API token is not of the form USER@REALM!ID=SECRET (token id, `=`, secret)");
    }
    Ok(Zeroizing::new(format!("PVEAPIToken={token}")))
}
