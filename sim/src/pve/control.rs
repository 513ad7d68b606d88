//! The control API under `/_sim` (a prefix real Proxmox does not have), so
//! that other processes — agents in multi-process tests — can read what
//! the simulator saw and inject faults. No authentication: the simulator
//! is a test tool and listens on loopback unless told otherwise.
//!
//! | call | effect |
//! | --- | --- |
//! | `GET /_sim/requests` | recorded requests (JSON array) |
//! | `DELETE /_sim/requests` | forget them |
//! | `GET /_sim/state` | the cluster state |
//! | `POST /_sim/faults` `{method?, path_contains, nth?, status, message}` | fail the Nth matching request once |
//! | `DELETE /_sim/faults` | disarm all faults, remove latency |
//! | `POST /_sim/latency` `{millis}` | delay every API answer |
//! | `POST /_sim/nodes/{node}` `{online}` | take a node offline / online |
//! | `POST /_sim/nodes/{node}/resources` `{memory_bytes?, cpus?}` | set a node's total memory and logical CPUs (`GET /nodes/{node}/status`) |
//! | `POST /_sim/nodes/{node}/dns` `{servers, search?}` | set a node's name servers (0–3 addresses, IPv4 or IPv6, loopback allowed) and search domain (`GET /nodes/{node}/dns`) |
//! | `POST /_sim/task-failures` `{task_type, message}` | fail the next task of that type |
//! | `POST /_sim/task-duration` `{millis}` | how long new tasks run |
//! | `DELETE /_sim/guests/{vmid}` | destroy a container at once, as if it crashed beyond repair or was removed by hand (its config and `pct` record go; 404 if there is none) |
//! | `POST /_sim/load` `{hostname_prefix, cpu}` | the CPU use (a fraction of their cores) that running containers whose host name starts with the prefix report from now on (`cpu: 0` removes it) |

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::faults::FaultSpec;
use super::server::{RequestRecord, Shared, lock};
use super::state::{MAX_NODE_DNS_SERVERS, NodeDns};

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sim/requests", get(requests).delete(clear_requests))
        .route("/_sim/state", get(state))
        .route("/_sim/faults", post(add_fault).delete(clear_faults))
        .route("/_sim/latency", post(latency))
        .route("/_sim/nodes/{node}", post(node))
        .route("/_sim/nodes/{node}/resources", post(node_resources))
        .route("/_sim/nodes/{node}/dns", post(node_dns_route))
        .route("/_sim/ha/recover", post(recover_ha_route))
        .route("/_sim/task-failures", post(task_failure))
        .route("/_sim/task-duration", post(task_duration))
        .route("/_sim/load", post(load_route))
        .route("/_sim/guests/{vmid}", axum::routing::delete(kill_route))
}

/// `DELETE /_sim/guests/{vmid}`: see the module documentation.
async fn kill_route(State(s): State<Arc<Shared>>, Path(vmid): Path<u32>) -> StatusCode {
    if kill(&s, vmid) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

/// Destroys container `vmid` at once; false if there is none.
pub(crate) fn kill(shared: &Shared, vmid: u32) -> bool {
    let mut st = lock(&shared.state);
    let gone = st.guests.remove(&vmid).is_some();
    if gone {
        st.vmlist_version += 1;
        shared.sync_files(&st);
    }
    drop(st);
    lock(&shared.pct).remove(&vmid);
    gone
}

#[derive(Deserialize)]
struct LoadBody {
    hostname_prefix: String,
    cpu: f64,
}

/// `POST /_sim/load`: see the module documentation.
async fn load_route(State(s): State<Arc<Shared>>, Json(body): Json<LoadBody>) -> StatusCode {
    if !body.cpu.is_finite() || body.cpu < 0.0 {
        return StatusCode::BAD_REQUEST;
    }
    let mut st = lock(&s.state);
    if body.cpu == 0.0 {
        st.loads.remove(&body.hostname_prefix);
    } else {
        st.loads.insert(body.hostname_prefix, body.cpu);
    }
    StatusCode::NO_CONTENT
}

/// Take a node offline or bring it back; false if there is no such node.
/// `POST /_sim/ha/recover`: Proxmox HA recovers the containers of
/// offline nodes (see [`crate::pve::state::ClusterState::recover_ha`]).
async fn recover_ha_route(State(s): State<Arc<Shared>>) -> Json<Value> {
    let moved = recover_ha(&s);
    Json(json!(
        moved
            .iter()
            .map(|(vmid, from, to)| json!({ "vmid": vmid, "from": from, "to": to }))
            .collect::<Vec<_>>()
    ))
}

/// Runs HA's recovery and updates the pmxcfs files; the moves made.
pub(crate) fn recover_ha(shared: &Shared) -> Vec<(u32, String, String)> {
    let mut st = lock(&shared.state);
    let moved = st.recover_ha();
    shared.sync_files(&st);
    moved
}

pub(crate) fn set_node_online(shared: &Shared, node: &str, online: bool) -> bool {
    let mut st = lock(&shared.state);
    let Some(n) = st.nodes.get_mut(node) else {
        return false;
    };
    if n.online != online {
        n.online = online;
        st.members_version += 1;
    }
    shared.sync_files(&st);
    true
}

/// Set a node's total memory (bytes) and logical CPUs, each if given;
/// false if there is no such node.
pub(crate) fn set_node_resources(
    shared: &Shared,
    node: &str,
    memory_bytes: Option<u64>,
    cpus: Option<u32>,
) -> bool {
    let mut st = lock(&shared.state);
    let Some(n) = st.nodes.get_mut(node) else {
        return false;
    };
    if let Some(m) = memory_bytes {
        n.memory_total = m;
    }
    if let Some(c) = cpus {
        n.cpus = c;
    }
    true
}

/// Why `dns` cannot be a node's DNS settings: more than three name
/// servers, or one that is not an IP address (Proxmox itself refuses
/// both).
pub(crate) fn node_dns_problem(dns: &NodeDns) -> Option<String> {
    if dns.servers.len() > MAX_NODE_DNS_SERVERS {
        return Some(format!(
            "a node has at most {MAX_NODE_DNS_SERVERS} name servers, not {}",
            dns.servers.len()
        ));
    }
    dns.servers
        .iter()
        .find(|s| s.parse::<std::net::IpAddr>().is_err())
        .map(|s| format!("name server {s:?} is not an IP address"))
}

/// Set a node's DNS settings; `Ok(false)` if there is no such node.
pub(crate) fn set_node_dns(shared: &Shared, node: &str, dns: NodeDns) -> Result<bool, String> {
    if let Some(problem) = node_dns_problem(&dns) {
        return Err(problem);
    }
    let mut st = lock(&shared.state);
    let Some(n) = st.nodes.get_mut(node) else {
        return Ok(false);
    };
    n.dns = dns;
    Ok(true)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DnsBody {
    servers: Vec<String>,
    #[serde(default)]
    search: Option<String>,
}

async fn node_dns_route(
    State(s): State<Arc<Shared>>,
    Path(node): Path<String>,
    Json(b): Json<DnsBody>,
) -> (StatusCode, Json<Value>) {
    let dns = NodeDns {
        servers: b.servers,
        search: b.search,
    };
    match set_node_dns(&s, &node, dns.clone()) {
        Ok(true) => (
            StatusCode::OK,
            Json(json!({ "node": node, "servers": dns.servers, "search": dns.search })),
        ),
        Ok(false) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no node '{node}'") })),
        ),
        Err(error) => (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))),
    }
}

async fn requests(State(s): State<Arc<Shared>>) -> Json<Vec<RequestRecord>> {
    Json(lock(&s.log).clone())
}

async fn clear_requests(State(s): State<Arc<Shared>>) -> StatusCode {
    lock(&s.log).clear();
    StatusCode::NO_CONTENT
}

async fn state(State(s): State<Arc<Shared>>) -> Json<Value> {
    let mut st = lock(&s.state);
    st.tick();
    Json(serde_json::to_value(&*st).unwrap_or(Value::Null))
}

async fn add_fault(State(s): State<Arc<Shared>>, Json(spec): Json<FaultSpec>) -> StatusCode {
    lock(&s.faults).add(spec);
    StatusCode::NO_CONTENT
}

async fn clear_faults(State(s): State<Arc<Shared>>) -> StatusCode {
    lock(&s.faults).clear();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Millis {
    millis: u64,
}

async fn latency(State(s): State<Arc<Shared>>, Json(m): Json<Millis>) -> StatusCode {
    lock(&s.faults).latency = Duration::from_millis(m.millis);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Online {
    online: bool,
}

async fn node(
    State(s): State<Arc<Shared>>,
    Path(node): Path<String>,
    Json(o): Json<Online>,
) -> (StatusCode, Json<Value>) {
    if set_node_online(&s, &node, o.online) {
        (
            StatusCode::OK,
            Json(json!({ "node": node, "online": o.online })),
        )
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no node '{node}'") })),
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Resources {
    memory_bytes: Option<u64>,
    cpus: Option<u32>,
}

async fn node_resources(
    State(s): State<Arc<Shared>>,
    Path(node): Path<String>,
    Json(r): Json<Resources>,
) -> (StatusCode, Json<Value>) {
    if r.cpus == Some(0) || r.memory_bytes == Some(0) {
        let error = "a node has at least one CPU and some memory";
        return (StatusCode::BAD_REQUEST, Json(json!({ "error": error })));
    }
    if set_node_resources(&s, &node, r.memory_bytes, r.cpus) {
        let st = lock(&s.state);
        let n = &st.nodes[&node];
        (
            StatusCode::OK,
            Json(json!({ "node": node, "memory_bytes": n.memory_total, "cpus": n.cpus })),
        )
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no node '{node}'") })),
        )
    }
}

#[derive(Deserialize)]
struct TaskFailure {
    task_type: String,
    message: String,
}

async fn task_failure(State(s): State<Arc<Shared>>, Json(f): Json<TaskFailure>) -> StatusCode {
    lock(&s.state).task_failures.push((f.task_type, f.message));
    StatusCode::NO_CONTENT
}

async fn task_duration(State(s): State<Arc<Shared>>, Json(m): Json<Millis>) -> StatusCode {
    lock(&s.state).task_duration = Duration::from_millis(m.millis);
    StatusCode::NO_CONTENT
}
