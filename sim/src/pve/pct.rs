//! A stand-in for `pct push` and `pct exec`: what the agent places into, and
//! runs in, containers is recorded per container, so tests can assert it.
//! As with the real `pct`, only a running container on the node asking can
//! be reached.
//!
//! | call | effect |
//! | --- | --- |
//! | `POST /_sim/pct/{node}/{vmid}/push` `{path, mode, content}` | place a file |
//! | `POST /_sim/pct/{node}/{vmid}/exec` `{argv, stdin?}` | run a command: `{status, stdout, stderr}` |
//! | `PUT /_sim/pct/{vmid}/problems` `["..."]` | what the container's health probe reports from now on (`[]`: healthy) |
//! | `PUT /_sim/pct/{vmid}/service` `{up, http_status?}` | how the container's service answers Pool health checks from now on (default: up, HTTP 200) |
//! | `GET /_sim/pct` | everything recorded, by VMID |
//!
//! `exec` of `/usr/sbin/orbitlab-appliance apply ID` plays the helper inside
//! OrbitLab's appliances (`appliances/README.md`): the files of the bundle
//! staged under `/var/lib/orbitlab/staging/ID/` move to their places, as
//! its `MANIFEST` lists them (each checked against its sha256; a bundle
//! that does not match is refused and nothing moves), and `ID` becomes the
//! active bundle. `orbitlab-appliance health` answers as the helper does
//! (one JSON object; exit status 0 healthy, 1 not): unhealthy with "no
//! current bundle" until a bundle was applied, then healthy unless
//! problems were set for the container. Probes are reads: they are not
//! recorded.
//!
//! `exec` of `orbitlab-appliance probe TIMEOUT TARGET...` (in a gateway)
//! answers each `tcp:ADDR:PORT` or `http:ADDR:PORT:STATUS:PATH` target as
//! the helper does (`ok TARGET` or `fail TARGET REASON`, one line each):
//! the container at ADDR must run and its service be up (HTTP: answer
//! STATUS). `exec` of `timeout -k 1 T COMMAND...` (a Pool's command check
//! inside a member) exits 0 while the container's service is up, 1
//! otherwise. Neither is recorded.
//!
//! `exec` of OrbitLab's install script (`$0` `orbitlab-install`, see
//! `orbitlab_engine::host::install`) places its standard input at `$1`
//! with owner `$2` and mode `$3`, as the script does; with `$4 = tmpfs` it
//! is refused (exit status 3, nothing written) unless the directory is
//! one of a Debian container's tmpfs mounts (`/run`, `/dev/shm` and
//! below). Its arguments are recorded as a command; its standard input
//! becomes the file.
//! `rm -f -- PATH` removes a placed file. The real tools' checks are not played: the data-path tests
//! run the real helper.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::server::{Shared, lock};
use super::state::PowerState;

/// A file placed into a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedFile {
    pub mode: u32,
    pub content: String,
    /// `user[:group]` (`pct push` leaves files to root).
    #[serde(default = "root")]
    pub owner: String,
}

fn root() -> String {
    "root:root".into()
}

/// How a container's service answers health checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Accepts connections.
    pub up: bool,
    /// The status it answers HTTP requests with.
    #[serde(default = "ok_status")]
    pub http_status: u16,
}

fn ok_status() -> u16 {
    200
}

impl Default for Service {
    fn default() -> Self {
        Service {
            up: true,
            http_status: ok_status(),
        }
    }
}

/// What one container received.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// Files by path (the last push wins).
    pub files: BTreeMap<String, PushedFile>,
    /// Commands run, in order (health probes are not recorded).
    pub commands: Vec<Vec<String>>,
    /// The bundle the helper applied last (none: the factory
    /// configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// What its health probe reports (none: healthy once configured).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// How its service answers Pool health checks.
    #[serde(default)]
    pub service: Service,
    /// Which container it is of (its `created`): a container made later
    /// under the same VMID starts with an empty record.
    #[serde(skip)]
    pub container: Option<u64>,
    /// The start of the container its files were placed in: a later start
    /// (a restart) empties its tmpfs mounts.
    #[serde(skip)]
    pub started: Option<std::time::Instant>,
}

impl ContainerRecord {
    /// Empties the tmpfs mounts when the container started again since
    /// the record last saw it.
    fn follow_start(&mut self, started: Option<std::time::Instant>) {
        if started.is_some() && started != self.started {
            if self.started.is_some() {
                self.files
                    .retain(|path, _| !TMPFS.iter().any(|t| path.starts_with(&format!("{t}/"))));
            }
            self.started = started;
        }
    }
}

/// What a command answered: exit status, standard output and error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecAnswer {
    pub status: i32,
    pub stdout: String,
    #[serde(default)]
    pub stderr: String,
}

/// Everything recorded, by VMID.
pub type PctLog = BTreeMap<u32, ContainerRecord>;

/// Checks that `vmid` runs on `node`, as `pct` would; brings its record up
/// to the container's last start.
fn reachable(shared: &Shared, node: &str, vmid: u32) -> Result<(), String> {
    let started = reachable_since(shared, node, vmid)?;
    let created = lock(&shared.state).guests.get(&vmid).map(|g| g.created);
    let mut log = lock(&shared.pct);
    let record = log.entry(vmid).or_default();
    record.of_container(created);
    record.follow_start(started);
    Ok(())
}

impl ContainerRecord {
    /// Starts the record over when it was of an earlier container with
    /// the same VMID.
    fn of_container(&mut self, created: Option<u64>) {
        if self.container != created {
            *self = ContainerRecord {
                container: created,
                ..ContainerRecord::default()
            };
        }
    }
}

/// [`reachable`]'s check; the container's last start.
fn reachable_since(
    shared: &Shared,
    node: &str,
    vmid: u32,
) -> Result<Option<std::time::Instant>, String> {
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
        Some(g) => Ok(g.started),
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
    stdin: Option<String>,
) -> Result<ExecAnswer, String> {
    reachable(shared, node, vmid)?;
    if argv.is_empty() {
        return Err("no command given".into());
    }
    if argv.len() >= 3 && argv[0] == HELPER && argv[1] == "probe" {
        return Ok(probe(shared, &argv[3..]));
    }
    if argv.len() >= 5 && argv[0] == "timeout" && argv[1] == "-k" {
        let up = lock(&shared.pct).get(&vmid).is_none_or(|r| r.service.up);
        return Ok(ExecAnswer {
            status: if up { 0 } else { 1 },
            stdout: String::new(),
            stderr: if up {
                String::new()
            } else {
                "connection refused".into()
            },
        });
    }
    let mut log = lock(&shared.pct);
    let record = log.entry(vmid).or_default();
    match argv.as_slice() {
        [_, _, _, name, path, owner, mode, place] if name == INSTALL => {
            let answer = install(record, path, owner, mode, place == "tmpfs", stdin);
            // Its arguments are recorded (what `ps` shows); its input is not.
            record.commands.push(argv);
            return Ok(answer);
        }
        [rm, f, dashes, path] if rm == "rm" && f == "-f" && dashes == "--" => {
            record.files.remove(path);
        }
        [helper, verb] if helper == HELPER && verb == "health" => return Ok(health(record)),
        [helper, verb, id] if helper == HELPER && verb == "apply" => {
            apply_bundle(record, id)?;
            record.current = Some(id.clone());
        }
        _ => {}
    }
    record.commands.push(argv);
    Ok(ExecAnswer {
        status: 0,
        stdout: String::new(),
        stderr: String::new(),
    })
}

/// `$0` of OrbitLab's install script.
const INSTALL: &str = "orbitlab-install";

/// The tmpfs mounts of a Debian container.
const TMPFS: &[&str] = &["/run", "/dev/shm"];

/// Plays the install script (see the module documentation).
fn install(
    record: &mut ContainerRecord,
    path: &str,
    owner: &str,
    mode: &str,
    tmpfs: bool,
    content: Option<String>,
) -> ExecAnswer {
    let dir = path.rsplit_once('/').map_or("/", |(d, _)| d);
    let on_tmpfs = TMPFS
        .iter()
        .any(|t| dir == *t || dir.starts_with(&format!("{t}/")));
    let answer = |status: i32, stderr: String| ExecAnswer {
        status,
        stdout: String::new(),
        stderr,
    };
    if tmpfs && !on_tmpfs {
        return answer(
            3,
            format!("{dir} is on ext4, not a tmpfs: the file was not written"),
        );
    }
    let Ok(mode) = u32::from_str_radix(mode, 8) else {
        return answer(1, format!("chmod: invalid mode: '{mode}'"));
    };
    record.files.insert(
        path.to_owned(),
        PushedFile {
            mode,
            content: content.unwrap_or_default(),
            owner: owner.to_owned(),
        },
    );
    answer(0, String::new())
}

/// `orbitlab-appliance health`, as the helper answers it.
fn health(record: &ContainerRecord) -> ExecAnswer {
    let role = if record.files.contains_key("/etc/dnsmasq.d/orbitlab.conf") {
        "dns"
    } else {
        "gateway"
    };
    let mut problems = record.problems.clone();
    if record.current.is_none() {
        problems.insert(0, "no current bundle".into());
    }
    let healthy = problems.is_empty();
    let answer = serde_json::json!({
        "role": role,
        "version": super::state::APPLIANCE_VERSION,
        "bundle": record.current,
        "healthy": healthy,
        "services": {},
        "default_route": true,
        "problems": problems,
    });
    ExecAnswer {
        status: if healthy { 0 } else { 1 },
        stdout: format!("{answer}\n"),
        stderr: String::new(),
    }
}

/// `orbitlab-appliance probe`: each target answered from the containers'
/// state and services (see the module documentation).
fn probe(shared: &Shared, targets: &[String]) -> ExecAnswer {
    let mut out = String::new();
    for target in targets {
        let verdict = probe_one(shared, target);
        match verdict {
            Ok(()) => out.push_str(&format!("ok {target}\n")),
            Err(why) => out.push_str(&format!("fail {target} {why}\n")),
        }
    }
    ExecAnswer {
        status: 0,
        stdout: out,
        stderr: String::new(),
    }
}

fn probe_one(shared: &Shared, target: &str) -> Result<(), String> {
    let mut parts = target.splitn(5, ':');
    let (kind, addr) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let _port = parts.next();
    let running = {
        let st = lock(&shared.state);
        st.guest_at(addr)
            .filter(|(_, g)| matches!(g.status, PowerState::Running))
            .map(|(vmid, g)| (vmid, g.created))
    };
    let Some((vmid, created)) = running else {
        return Err("no connection within the timeout".into());
    };
    let service = lock(&shared.pct)
        .get(&vmid)
        .filter(|r| r.container == Some(created))
        .map(|r| r.service.clone())
        .unwrap_or_default();
    if !service.up {
        return Err("connection refused".into());
    }
    if kind == "http" {
        let want: u16 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(200);
        if service.http_status != want {
            return Err(format!("HTTP {} (expected {want})", service.http_status));
        }
    }
    Ok(())
}

/// Sets how container `vmid`'s service answers health checks.
pub(crate) fn set_service(shared: &Shared, vmid: u32, service: Service) {
    let created = lock(&shared.state).guests.get(&vmid).map(|g| g.created);
    let mut log = lock(&shared.pct);
    let record = log.entry(vmid).or_default();
    record.of_container(created);
    record.service = service;
}

/// Makes container `vmid`'s health probe report `problems` (none:
/// healthy once configured).
pub(crate) fn set_problems(shared: &Shared, vmid: u32, problems: Vec<String>) {
    let created = lock(&shared.state).guests.get(&vmid).map(|g| g.created);
    let mut log = lock(&shared.pct);
    let record = log.entry(vmid).or_default();
    record.of_container(created);
    record.problems = problems;
}

/// The appliance helper, as seen from outside.
const HELPER: &str = "/usr/sbin/orbitlab-appliance";

/// Moves bundle `id`'s staged files to their places (see the module
/// documentation).
fn apply_bundle(record: &mut ContainerRecord, id: &str) -> Result<(), String> {
    use sha2::{Digest, Sha256};
    let staging = format!("/var/lib/orbitlab/staging/{id}");
    let manifest = record
        .files
        .get(&format!("{staging}/MANIFEST"))
        .ok_or_else(|| format!("orbitlab-appliance: bundle {id}: no MANIFEST"))?
        .content
        .clone();
    let mut moves = Vec::new();
    for line in manifest.lines() {
        let fields: Vec<&str> = line.splitn(3, ' ').collect();
        let [mode, sha, path] = fields.as_slice() else {
            return Err(format!("orbitlab-appliance: bad MANIFEST line {line:?}"));
        };
        let staged = format!("{staging}{path}");
        let file = record
            .files
            .get(&staged)
            .ok_or_else(|| format!("orbitlab-appliance: {path} is missing from bundle {id}"))?;
        if hex::encode(Sha256::digest(file.content.as_bytes())) != *sha {
            return Err(format!(
                "orbitlab-appliance: {path} does not match the MANIFEST"
            ));
        }
        let mode = u32::from_str_radix(mode, 8)
            .map_err(|_| format!("orbitlab-appliance: bad mode in {line:?}"))?;
        moves.push((staged, path.to_string(), mode));
    }
    for (staged, path, mode) in moves {
        if let Some(mut file) = record.files.remove(&staged) {
            file.mode = mode;
            record.files.insert(path, file);
        }
    }
    record.files.remove(&format!("{staging}/MANIFEST"));
    Ok(())
}

/// What containers that still exist received.
pub(crate) fn records(shared: &Shared) -> PctLog {
    let guests: BTreeMap<u32, (Option<std::time::Instant>, u64)> = lock(&shared.state)
        .guests
        .iter()
        .map(|(vmid, g)| (*vmid, (g.started, g.created)))
        .collect();
    let mut log = lock(&shared.pct);
    log.iter_mut()
        .filter_map(|(vmid, r)| {
            let (started, created) = guests.get(vmid)?;
            r.of_container(Some(*created));
            r.follow_start(*started);
            Some((*vmid, r.clone()))
        })
        .collect()
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sim/pct", get(log))
        .route("/_sim/pct/{node}/{vmid}/push", post(push_route))
        .route("/_sim/pct/{node}/{vmid}/exec", post(exec_route))
        .route("/_sim/pct/{vmid}/problems", put(problems_route))
        .route("/_sim/pct/{vmid}/service", put(service_route))
}

async fn service_route(
    State(s): State<Arc<Shared>>,
    Path(vmid): Path<u32>,
    Json(service): Json<Service>,
) -> StatusCode {
    set_service(&s, vmid, service);
    StatusCode::NO_CONTENT
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
    #[serde(default)]
    stdin: Option<String>,
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
            owner: root(),
        },
    ))
}

async fn exec_route(
    State(s): State<Arc<Shared>>,
    Path((node, vmid)): Path<(String, u32)>,
    Json(body): Json<ExecBody>,
) -> (StatusCode, String) {
    match exec(&s, &node, vmid, body.argv, body.stdin) {
        Ok(answer) => (
            StatusCode::OK,
            serde_json::to_string(&answer).expect("an answer encodes"),
        ),
        Err(e) => (StatusCode::CONFLICT, e),
    }
}

async fn problems_route(
    State(s): State<Arc<Shared>>,
    Path(vmid): Path<u32>,
    Json(problems): Json<Vec<String>>,
) -> StatusCode {
    set_problems(&s, vmid, problems);
    StatusCode::NO_CONTENT
}
