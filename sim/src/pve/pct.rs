//! A stand-in for `pct push` and `pct exec`: what the agent places into, and
//! runs in, containers is recorded per container, so tests can assert it.
//! As with the real `pct`, only a running container on the node asking can
//! be reached.
//!
//! | call | effect |
//! | --- | --- |
//! | `POST /_sim/pct/{node}/{vmid}/push` `{path, mode, content}` | place a file |
//! | `POST /_sim/pct/{node}/{vmid}/exec` `{argv}` | run a command |
//! | `GET /_sim/pct` | everything recorded, by VMID |

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::server::{Shared, lock};
use super::state::PowerState;

/// A file placed into a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedFile {
    pub mode: u32,
    pub content: String,
}

/// What one container received.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// Files by path (the last push wins).
    pub files: BTreeMap<String, PushedFile>,
    /// Commands run, in order.
    pub commands: Vec<Vec<String>>,
}

/// Everything recorded, by VMID.
pub type PctLog = BTreeMap<u32, ContainerRecord>;

/// Checks that `vmid` runs on `node`, as `pct` would.
fn reachable(shared: &Shared, node: &str, vmid: u32) -> Result<(), String> {
    let st = lock(&shared.state);
    match st.guests.get(&vmid) {
        None => Err(format!(
            "Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist"
        )),
        Some(g) if g.node != node => Err(format!(
            "Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist"
        )),
        Some(g) if !matches!(g.status, PowerState::Running) => {
            Err(format!("CT {vmid} not running"))
        }
        Some(_) => Ok(()),
    }
}

/// `pct push`.
pub(crate) fn push(
    shared: &Shared,
    node: &str,
    vmid: u32,
    path: &str,
    file: PushedFile,
) -> Result<(), String> {
    reachable(shared, node, vmid)?;
    if !path.starts_with('/') {
        return Err(format!("destination {path:?} is not an absolute path"));
    }
    lock(&shared.pct)
        .entry(vmid)
        .or_default()
        .files
        .insert(path.to_owned(), file);
    Ok(())
}

/// `pct exec`.
pub(crate) fn exec(
    shared: &Shared,
    node: &str,
    vmid: u32,
    argv: Vec<String>,
) -> Result<(), String> {
    reachable(shared, node, vmid)?;
    if argv.is_empty() {
        return Err("no command given".into());
    }
    lock(&shared.pct)
        .entry(vmid)
        .or_default()
        .commands
        .push(argv);
    Ok(())
}

/// What containers that still exist received.
pub(crate) fn records(shared: &Shared) -> PctLog {
    let guests: Vec<u32> = lock(&shared.state).guests.keys().copied().collect();
    lock(&shared.pct)
        .iter()
        .filter(|(vmid, _)| guests.contains(vmid))
        .map(|(v, r)| (*v, r.clone()))
        .collect()
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sim/pct", get(log))
        .route("/_sim/pct/{node}/{vmid}/push", post(push_route))
        .route("/_sim/pct/{node}/{vmid}/exec", post(exec_route))
}

#[derive(Deserialize)]
struct PushBody {
    path: String,
    mode: u32,
    content: String,
}

#[derive(Deserialize)]
struct ExecBody {
    argv: Vec<String>,
}

async fn log(State(s): State<Arc<Shared>>) -> Json<PctLog> {
    Json(records(&s))
}

fn answer(result: Result<(), String>) -> (StatusCode, String) {
    match result {
        Ok(()) => (StatusCode::NO_CONTENT, String::new()),
        Err(e) => (StatusCode::CONFLICT, e),
    }
}

async fn push_route(
    State(s): State<Arc<Shared>>,
    Path((node, vmid)): Path<(String, u32)>,
    Json(body): Json<PushBody>,
) -> (StatusCode, String) {
    answer(push(
        &s,
        &node,
        vmid,
        &body.path,
        PushedFile {
            mode: body.mode,
            content: body.content,
        },
    ))
}

async fn exec_route(
    State(s): State<Arc<Shared>>,
    Path((node, vmid)): Path<(String, u32)>,
    Json(body): Json<ExecBody>,
) -> (StatusCode, String) {
    answer(exec(&s, &node, vmid, body.argv))
}
