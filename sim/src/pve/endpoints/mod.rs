//! Handlers of the simulated endpoints, one module per area (each lists
//! its endpoints): `access` (tickets, realms, permissions, users, roles,
//! ACL, tokens), `cluster` (version, cluster status, resources, tasks and
//! options, nodes, subscription, Ceph status, network, DNS, task status),
//! `lxc`, `storage`, `sdn`, `ha`. Every handler gets parameters already
//! checked against the rules (`validate.rs`) and works on the cluster
//! state under its lock.

pub mod access;
mod cluster;
mod ha;
mod lxc;
mod sdn;
mod storage;

use serde_json::Value;

use super::error::{ApiError, Reply};
use super::state::ClusterState;
use super::validate::Params;

pub use access::{Auth, AuthConfig, authenticate, issue_ticket};

/// Everything a handler may use.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// The cluster (locked).
    pub st: &'a mut ClusterState,
    /// Validated parameters, path parameters included.
    pub p: &'a Params,
    /// Authenticated user (`root@pam`, or `root@pam!token`).
    pub user: &'a str,
    /// Who may call the simulator (configured users and tokens).
    pub auth: &'a AuthConfig,
    /// The file of an upload call, if any.
    pub upload: Option<&'a crate::pve::request::UploadedFile>,
}

impl Ctx<'_> {
    /// A required string parameter (the rules made sure it is there).
    pub fn s(&self, name: &str) -> Result<String, ApiError> {
        self.p
            .str(name)
            .map(str::to_string)
            .ok_or_else(|| ApiError::param(name, "property is missing and it is not optional"))
    }

    /// The `vmid` parameter.
    pub fn vmid(&self) -> Result<u32, ApiError> {
        self.p
            .int("vmid")
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| ApiError::param("vmid", "property is missing and it is not optional"))
    }

    /// The `node` parameter, checked to be a cluster member; `localhost`
    /// is the node answering (the first node, the one `GET
    /// /cluster/status` marks `local`), as pveproxy never proxies it.
    pub fn node(&self) -> Result<String, ApiError> {
        let n = self.s("node")?;
        if n == "localhost"
            && let Some(local) = self.st.nodes.keys().next()
        {
            return Ok(local.clone());
        }
        if self.st.nodes.contains_key(&n) {
            Ok(n)
        } else {
            Err(ApiError::fail(format!(
                "hostname lookup '{n}' failed - failed to get address info for: {n}: Name or service not known"
            )))
        }
    }
}

/// Run the handler for an endpoint (method and path template).
pub fn dispatch(method: &str, template: &str, ctx: &mut Ctx<'_>) -> Reply {
    let rest = template.strip_prefix("/cluster/sdn");
    if let Some(rest) = rest {
        return sdn::dispatch(method, rest, ctx);
    }
    if template.starts_with("/nodes/{node}/lxc") {
        return lxc::dispatch(method, template, ctx);
    }
    if template.starts_with("/cluster/ha/") {
        return ha::dispatch(method, template, ctx);
    }
    if template.contains("/storage") || template.ends_with("/aplinfo") {
        return storage::dispatch(method, template, ctx);
    }
    match (method, template) {
        ("POST", "/access/ticket") | ("GET", "/access/permissions") => Err(ApiError::fail(
            "ticket and permission requests are handled by the server",
        )),
        (_, t) if t.starts_with("/access/") => access::dispatch(method, template, ctx),
        _ => cluster::dispatch(method, template, ctx),
    }
}

/// Turn a list of JSON objects into the answer.
pub fn list(items: Vec<Value>) -> Reply {
    Ok(Value::Array(items))
}
