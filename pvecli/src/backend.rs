//! Where a command's requests go: the API in this process (on a node,
//! over `--root`), or a node's agent over HTTPS (`--host`). Both answer
//! the same JSON, so every command prints the same either way.

use anyhow::{Context, Result, bail};
use orbitlab_engine::api::{
    Api, ApiPath, Change, PkiCall, PropertyValue, SshCall, VaultCall, object_status_path,
};
use orbitlab_engine::pve::Method;
use orbitlab_engine::status::ObjectStatus;
use orbitlab_manifests::{Manifest, Selector, Sourced, codec};
use serde_json::Value;

use crate::remote::{Body, Remote};

/// The API in-process, or an agent over HTTPS.
#[derive(Debug)]
pub enum Backend {
    /// Calls [`Api`] directly (as root on a node, or on a sandbox).
    Local(Api),
    /// Sends the same calls to an agent.
    Remote(Remote),
}

/// A command that runs on a node only, never over `--host`: what it does
/// belongs to the node it runs on, not to the API tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeOnly {
    /// `orbitlab init`.
    Init,
    /// `orbitlab reconcile --once`.
    Reconcile,
    /// `orbitlab doctor`.
    Doctor,
    /// `orbitlab appliance build`.
    ApplianceBuild,
    /// `orbitlab audit`.
    Audit,
}

impl NodeOnly {
    /// The command, as typed.
    fn command(self) -> &'static str {
        match self {
            NodeOnly::Init => "init",
            NodeOnly::Reconcile => "reconcile --once",
            NodeOnly::Doctor => "doctor",
            NodeOnly::ApplianceBuild => "appliance build",
            NodeOnly::Audit => "audit",
        }
    }

    /// Why it cannot run through an agent.
    fn reason(self) -> &'static str {
        match self {
            NodeOnly::Init => {
                "it checks Proxmox and builds the Backplane as the node it runs on, and stores that node's Proxmox connection (with the API token secret, read there and never sent over the network)"
            }
            NodeOnly::Doctor => {
                "it reads the cluster filesystem and the stored Proxmox connection of the node it runs on"
            }
            NodeOnly::ApplianceBuild => {
                "it builds the template into a storage directory of the node it runs on, where only that node's agent can read it to upload it to the others"
            }
            NodeOnly::Audit => {
                "it reads the audit log in the cluster filesystem of the node it runs on (every node holds the same log)"
            }
            NodeOnly::Reconcile => {
                "it acts on Proxmox as the node it runs on, with that node's stored connection; the agent on the --host node already reconciles by itself (`orbitlab --host ... plan` shows what it would do, `status` what it reported)"
            }
        }
    }
}

/// Serialized changes: `[{kind, name, action}]`, as the server answers.
fn changes(changes: Vec<Change>) -> Value {
    serde_json::to_value(changes).unwrap_or(Value::Null)
}

impl Backend {
    /// Refuses `command` over `--host`, naming it and saying why, before
    /// anything is done; in-process it may run.
    pub fn on_node(&self, command: NodeOnly) -> Result<()> {
        match self {
            Backend::Local(_) => Ok(()),
            Backend::Remote(_) => bail!(
                "`orbitlab {}` cannot run with --host: {}. Run it on the node itself (as root), without --host; nothing was done",
                command.command(),
                command.reason()
            ),
        }
    }

    /// `ls PATH`.
    pub fn ls(&self, path: &ApiPath) -> Result<Value> {
        match self {
            Backend::Local(api) => Ok(api.ls(path)?),
            Backend::Remote(r) => r.call(
                Method::GET,
                &path.to_string(),
                &[("ls", "1".into())],
                Body::Empty,
            ),
        }
    }

    /// `get PATH [-l SELECTOR]`.
    pub fn get(&self, path: &ApiPath, selector: Option<&Selector>) -> Result<Value> {
        match (self, selector) {
            (Backend::Local(api), None) => Ok(api.get(path)?),
            (Backend::Local(api), Some(s)) => Ok(api.get_selected(path, s)?),
            (Backend::Remote(r), _) => {
                let query: Vec<(&str, String)> = selector
                    .map(|s| ("selector", s.to_string()))
                    .into_iter()
                    .collect();
                r.call(Method::GET, &path.to_string(), &query, Body::Empty)
            }
        }
    }

    /// `create PATH --key value...`; `pairs` are the properties as given.
    pub fn create(&self, path: &ApiPath, pairs: &[(String, String)]) -> Result<Value> {
        match self {
            Backend::Local(api) => Ok(changes(api.create(path, tree(pairs)?)?)),
            Backend::Remote(r) => r.call(
                Method::POST,
                &path.to_string(),
                &[],
                Body::Form(pairs.to_vec()),
            ),
        }
    }

    /// `set PATH --key value... --delete KEY`.
    pub fn set(
        &self,
        path: &ApiPath,
        pairs: &[(String, String)],
        delete: &[String],
    ) -> Result<Value> {
        match self {
            Backend::Local(api) => Ok(changes(api.set(path, tree(pairs)?, delete)?)),
            Backend::Remote(r) => {
                let mut form = pairs.to_vec();
                if !delete.is_empty() {
                    form.push(("delete".into(), delete.join(",")));
                }
                r.call(Method::PUT, &path.to_string(), &[], Body::Form(form))
            }
        }
    }

    /// `delete PATH [--force]`.
    pub fn delete(&self, path: &ApiPath, force: bool) -> Result<Value> {
        match self {
            Backend::Local(api) => Ok(changes(api.delete(path, force)?)),
            Backend::Remote(r) => {
                let query: Vec<(&str, String)> = if force {
                    vec![("force", "1".to_owned())]
                } else {
                    Vec::new()
                };
                r.call(Method::DELETE, &path.to_string(), &query, Body::Empty)
            }
        }
    }

    /// `apply` (or, with `dry_run`, `validate`) of decoded manifests,
    /// all or nothing. Over HTTPS they are sent as one YAML stream.
    pub fn apply(&self, documents: Vec<Sourced<Manifest>>, dry_run: bool) -> Result<Value> {
        match self {
            Backend::Local(api) if dry_run => Ok(changes(api.validate(documents)?)),
            Backend::Local(api) => Ok(changes(api.apply(documents)?)),
            Backend::Remote(r) => {
                let mut sources: Vec<&str> = documents.iter().map(|d| d.source.as_str()).collect();
                sources.dedup();
                let mut source = sources.join(", ");
                if source.len() > 200 || source.chars().any(char::is_control) {
                    source = format!("{} files", sources.len());
                }
                let yaml = codec::encode_all(documents.iter().map(|d| &d.value));
                r.apply(yaml, &source, dry_run)
            }
        }
    }

    /// True when the calls go to an agent over HTTPS.
    pub fn is_remote(&self) -> bool {
        matches!(self, Backend::Remote(_))
    }

    /// A Pool rollout call (`POST /pools/{name}/rollout/{action}`).
    pub fn rollout(&self, path: &orbitlab_engine::api::RolloutPath) -> Result<Value> {
        match self {
            Backend::Local(api) => Ok(api.rollout(path)?),
            Backend::Remote(r) => r.call(Method::POST, &path.to_string(), &[], Body::Empty),
        }
    }

    /// A vault call (see [`orbitlab_engine::api::VaultPath`]).
    pub fn vault(&self, call: VaultCall) -> Result<Value> {
        match self {
            Backend::Local(api) => Ok(api.vault(call)?),
            Backend::Remote(r) => {
                let (method, path, query) = call.http();
                let method = Method::from_bytes(method.as_bytes())?;
                let body = match call {
                    VaultCall::Set { value: bytes, .. }
                    | VaultCall::Seal {
                        passphrase: bytes, ..
                    }
                    | VaultCall::Unseal { passphrase: bytes } => {
                        Body::Raw("application/octet-stream", bytes.expose().to_vec())
                    }
                    _ => Body::Empty,
                };
                r.call(method, &path.to_string(), &query, body)
            }
        }
    }
}

impl Backend {
    /// `plan`: computed by this node, or by the agent (`GET /plan`).
    pub fn plan(&self) -> Result<Value> {
        match self {
            Backend::Local(api) => Ok(api.plan()?),
            Backend::Remote(r) => r.call(Method::GET, "/plan", &[], Body::Empty),
        }
    }

    /// `status`: every object's phase.
    pub fn status(&self) -> Result<Value> {
        match self {
            Backend::Local(api) => Ok(api.status()?),
            Backend::Remote(r) => r.call(Method::GET, "/status", &[], Body::Empty),
        }
    }

    /// A PKI call (see [`orbitlab_engine::api::PkiPath`]).
    pub fn pki(&self, call: PkiCall) -> Result<Value> {
        match self {
            Backend::Local(api) => Ok(api.pki(call)?),
            Backend::Remote(r) => {
                let (method, path, query) = call.http();
                let method = Method::from_bytes(method.as_bytes())?;
                let body = match call.body() {
                    Some(csr) => Body::Raw("application/x-pem-file", csr.to_vec()),
                    None => Body::Empty,
                };
                r.call(method, &path.to_string(), &query, body)
            }
        }
    }

    /// The status an agent reported for the object at `path` (`None`
    /// before any report): `GET /status/{collection}/{name}`.
    pub fn object_status(&self, path: &ApiPath) -> Result<Option<ObjectStatus>> {
        match self {
            Backend::Local(api) => Ok(api.object_status(path)?),
            Backend::Remote(r) => {
                let answer = r.call(Method::GET, &object_status_path(path), &[], Body::Empty)?;
                serde_json::from_value(answer)
                    .with_context(|| format!("the agent's status of {path} is not a status"))
            }
        }
    }

    /// An SSH-key call (see [`orbitlab_engine::api::SshPath`]).
    pub fn ssh(&self, call: SshCall) -> Result<Value> {
        match self {
            Backend::Local(api) => Ok(api.ssh(call)?),
            Backend::Remote(r) => {
                let (method, path, query) = call.http();
                let method = Method::from_bytes(method.as_bytes())?;
                let body = match call.passphrase() {
                    Some(p) => Body::Raw("application/octet-stream", p.expose().to_vec()),
                    None => Body::Empty,
                };
                r.call(method, &path.to_string(), &query, body)
            }
        }
    }
}

fn tree(pairs: &[(String, String)]) -> Result<PropertyValue> {
    Ok(PropertyValue::from_pairs(
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )?)
}
