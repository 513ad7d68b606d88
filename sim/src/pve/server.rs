//! The simulator's HTTP(S) server: binds a loopback port (or the address
//! given), serves the Proxmox API under `/api2/json` and `/api2/extjs`
//! (every path in both formats, see [`Format`]) and the control API under
//! `/_sim` (see `control.rs`), on a background thread with its own tokio
//! runtime so synchronous tests can use it. Every API request is
//! authenticated (except the calls Proxmox answers anyone, see
//! [`is_world`]), checked against the rules, answered like pveproxy, and
//! recorded (secrets redacted).
//!
//! How a failure is answered depends on where it arises, as in pveproxy:
//! an unreadable request, failed authentication or CSRF check (401) and
//! an offline node (595) are plain HTTP errors in every format; what the
//! API refuses (400 with per-parameter `errors`, 403, 501) and a handler's
//! error go through the format's formatter: `json` answers the status with
//! `{"data": null, "message": ...}`, `extjs` answers HTTP 200 with
//! `{"data": null, "success": 0, "status": ..., "message": ...}`. ExtJS's
//! cache breaker `_dc` is dropped before the parameters are checked.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::control;
use super::csrf::{WWW_KEY_FILE, WwwKey};
use super::endpoints::access::{ApiToken, UserLogin, authorize, is_world, permissions};
use super::endpoints::{Auth, AuthConfig, Ctx, authenticate, dispatch, issue_ticket};
use super::error::ApiError;
use super::faults::{FaultSpec, Faults};
use super::files;
use super::pct::{self, PctLog, PushedFile};
use super::request;
use super::schema::{PveVersion, rules};
use super::state::ClusterState;
use super::tls::{TlsError, TlsMaterial, server_config};
use super::validate::validate;

/// Token secret of the default API token `root@pam!orbitlab` (tests and
/// sandbox only).
pub const DEFAULT_TOKEN_SECRET: &str = "00000000-0000-4000-8000-0000000071a6";
/// Password of `root@pam` in the default configuration (tests and sandbox only).
pub const DEFAULT_PASSWORD: &str = "orbitlab-sim";

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Node names (`pve1`, `pve2`...).
    pub nodes: Vec<String>,
    /// Proxmox VE version to behave like.
    pub version: PveVersion,
    /// Serve HTTPS with this certificate; plain HTTP when `None`.
    pub tls: Option<TlsMaterial>,
    /// How long every task runs.
    pub task_duration: Duration,
    /// Accepted tokens and passwords.
    pub auth: AuthConfig,
    /// Mirror `.members`, `.vmlist` and `.version` into this directory.
    pub pmxcfs_root: Option<PathBuf>,
    /// Feed `.members` and `.vmlist` to a pmxcfs simulator through its
    /// control directory (`members.json`, `vmlist.json`).
    pub pmxcfs_control: Option<PathBuf>,
    /// MTU of every node's `vmbr0`.
    pub bridge_mtu: u32,
    /// Keep the bytes of uploaded volumes in files under this directory
    /// (`<dir>/<node>/<storage>/<content>/<name>`), whose path
    /// `GET .../content/{volume}` then gives, as Proxmox gives the path of
    /// a volume on its node; `None`: only their size is kept.
    pub volume_files: Option<PathBuf>,
    /// Address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// The key CSRF prevention tokens are made with (Proxmox:
    /// `/etc/pve/pve-www.key`): read from this file, or made and written
    /// there (0640) when it does not exist. `None`: `pve-www.key` under
    /// [`SimConfig::pmxcfs_root`] when that is set, else a fresh key kept
    /// in memory ([`SimHandle::www_key`] gives it to tests).
    pub www_key: Option<PathBuf>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: vec!["pve1".into(), "pve2".into(), "pve3".into()],
            version: PveVersion::V8_4,
            tls: None,
            task_duration: Duration::from_millis(50),
            auth: AuthConfig {
                tokens: vec![ApiToken {
                    user: "root@pam".into(),
                    name: "orbitlab".into(),
                    secret: DEFAULT_TOKEN_SECRET.into(),
                }],
                users: vec![UserLogin {
                    user: "root@pam".into(),
                    password: DEFAULT_PASSWORD.into(),
                }],
                privileges: BTreeMap::new(),
            },
            pmxcfs_root: None,
            pmxcfs_control: None,
            bridge_mtu: 1500,
            volume_files: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            www_key: None,
        }
    }
}

/// Errors starting the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Binding or runtime setup failed.
    #[error("starting the PVE simulator failed: {0}")]
    Io(#[from] std::io::Error),
    /// TLS material unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The configuration is unusable.
    #[error("invalid simulator configuration: {0}")]
    Config(String),
}

/// One recorded API request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Arrival order, from 1.
    pub seq: u64,
    /// HTTP method.
    pub method: String,
    /// Path after `/api2/json` or `/api2/extjs`.
    pub path: String,
    /// The format asked for (`json`, `extjs`).
    #[serde(default = "json_format")]
    pub format: String,
    /// Parameters (query and body; repeated ones joined by `,`; secrets redacted).
    pub params: BTreeMap<String, String>,
    /// Authenticated id, if any.
    pub user: Option<String>,
    /// The API's status: the HTTP status answered, except in the `extjs`
    /// format, where a failure answers HTTP 200 with this status in the
    /// body.
    pub status: u16,
}

/// State shared by the server and the handle.
#[derive(Debug)]
pub struct Shared {
    pub(crate) state: Mutex<ClusterState>,
    pub(crate) log: Mutex<Vec<RequestRecord>>,
    pub(crate) faults: Mutex<Faults>,
    auth: AuthConfig,
    www_key: WwwKey,
    pmxcfs_root: Option<PathBuf>,
    pmxcfs_control: Option<PathBuf>,
    seq: AtomicU64,
    files_written: Mutex<(u64, u64)>,
    /// `.version`'s counters (pmxcfs root only).
    version_file: Mutex<files::VersionFile>,
    pub(crate) pct: Mutex<PctLog>,
}

/// Lock a mutex, recovering from a poisoned one (a panicking handler must
/// not take the simulator down for the other tests).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    /// Write `.members`/`.vmlist`/`.version` if they may have changed.
    pub(crate) fn sync_files(&self, st: &ClusterState) {
        if self.pmxcfs_root.is_none() && self.pmxcfs_control.is_none() {
            return;
        }
        let key = (st.members_version, st.vmlist_version);
        let mut version = lock(&self.version_file);
        let sdn_changed = self.pmxcfs_root.is_some() && version.update(st);
        let mut last = lock(&self.files_written);
        if *last != key || sdn_changed {
            let mut result = Ok(());
            if let Some(dir) = &self.pmxcfs_root {
                result = files::write_all(dir, st, &version)
                    .map_err(|e| format!("writing pmxcfs files into {}: {e}", dir.display()));
            }
            if let (Ok(()), Some(dir)) = (&result, &self.pmxcfs_control) {
                result = files::write_control(dir, st).map_err(|e| {
                    format!(
                        "feeding pmxcfs simulator control directory {}: {e}",
                        dir.display()
                    )
                });
            }
            match result {
                Ok(()) => *last = key,
                Err(e) => tracing::warn!("{e}"),
            }
        }
    }
}

/// Starts simulators.
#[derive(Debug)]
pub struct PveSim;

impl PveSim {
    /// Start a simulator on a background thread.
    pub fn start(cfg: SimConfig) -> Result<SimHandle, SimError> {
        if cfg.nodes.is_empty() {
            return Err(SimError::Config("at least one node is needed".into()));
        }
        for n in &cfg.nodes {
            super::formats::check("pve-node", n).map_err(SimError::Config)?;
        }
        let key_file = cfg
            .www_key
            .clone()
            .or_else(|| cfg.pmxcfs_root.as_ref().map(|r| r.join(WWW_KEY_FILE)));
        let www_key = match &key_file {
            Some(path) => WwwKey::load_or_create(path)
                .map_err(|e| SimError::Config(format!("CSRF key {}: {e}", path.display())))?,
            None => WwwKey::generate(),
        };
        let listener = std::net::TcpListener::bind(cfg.listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let acceptor = match &cfg.tls {
            Some(m) => Some(tokio_rustls::TlsAcceptor::from(server_config(m)?)),
            None => None,
        };
        let mut state =
            ClusterState::new(&cfg.nodes, cfg.version, cfg.task_duration, cfg.bridge_mtu);
        state.volume_files = cfg.volume_files.clone();
        let version_file = files::VersionFile::new(&state);
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            log: Mutex::new(Vec::new()),
            faults: Mutex::new(Faults::default()),
            auth: cfg.auth.clone(),
            www_key,
            pmxcfs_root: cfg.pmxcfs_root.clone(),
            pmxcfs_control: cfg.pmxcfs_control.clone(),
            seq: AtomicU64::new(0),
            files_written: Mutex::new((0, 0)),
            version_file: Mutex::new(version_file),
            pct: Mutex::new(PctLog::new()),
        });
        shared.sync_files(&lock(&shared.state));
        let (stop_tx, stop_rx) = oneshot::channel();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("pve-sim")
            .enable_all()
            .build()?;
        let app = router(shared.clone());
        let ticker_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("pve-sim".into())
            .spawn(move || {
                rt.block_on(async move {
                    tokio::spawn(ticker(ticker_shared));
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => serve(l, app, acceptor, stop_rx).await,
                        Err(e) => tracing::error!("PVE simulator listener: {e}"),
                    }
                });
                rt.shutdown_timeout(Duration::from_millis(200));
            })?;
        Ok(SimHandle {
            shared,
            addr,
            tls: cfg.tls.is_some(),
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

async fn ticker(shared: Arc<Shared>) {
    let mut every = tokio::time::interval(Duration::from_millis(20));
    loop {
        every.tick().await;
        let mut st = lock(&shared.state);
        st.tick();
        shared.sync_files(&st);
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let _ = tcp.set_nodelay(true);
                let svc = TowerToHyperService::new(app.clone());
                let tls = tls.clone();
                tokio::spawn(async move {
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                            }
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(tcp), svc).await;
                        }
                    }
                });
            }
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    control::routes()
        .merge(pct::routes())
        .fallback(api)
        .with_state(shared)
}

/// A running simulator. Dropping it stops the server.
#[derive(Debug)]
pub struct SimHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tls: bool,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl SimHandle {
    /// The API base URL (`https://127.0.0.1:PORT/api2/json`).
    pub fn base_url(&self) -> String {
        format!("{}/api2/json", self.origin())
    }

    /// Scheme, host and port (`http://127.0.0.1:PORT`); the control API is
    /// at `{origin}/_sim/...`.
    pub fn origin(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The key this simulator makes and checks CSRF prevention tokens
    /// with (to make tokens of any time in tests).
    pub fn www_key(&self) -> &WwwKey {
        &self.shared.www_key
    }

    /// Every recorded API request so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.log).clone()
    }

    /// Forget the recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// Look at the state (tasks due are finished first).
    pub fn with_state<R>(&self, f: impl FnOnce(&ClusterState) -> R) -> R {
        let mut st = lock(&self.shared.state);
        st.tick();
        f(&st)
    }

    /// The state as JSON (what `GET /_sim/state` returns).
    pub fn snapshot(&self) -> Value {
        self.with_state(|st| serde_json::to_value(st).unwrap_or(Value::Null))
    }

    /// Fail the Nth request matching `spec` once.
    pub fn inject_fault(&self, spec: FaultSpec) {
        lock(&self.shared.faults).add(spec);
    }

    /// How many injected faults have not fired yet.
    pub fn armed_faults(&self) -> usize {
        lock(&self.shared.faults).armed()
    }

    /// Disarms every fault and removes the latency.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Delay every API answer by `d`.
    pub fn set_latency(&self, d: Duration) {
        lock(&self.shared.faults).latency = d;
    }

    /// Take a node offline or bring it back.
    pub fn set_node_online(&self, node: &str, online: bool) -> bool {
        control::set_node_online(&self.shared, node, online)
    }

    /// Proxmox HA's recovery after a node loss ([`ClusterState::recover_ha`]),
    /// as `POST /_sim/ha/recover` does: the moves made.
    pub fn recover_ha(&self) -> Vec<(u32, String, String)> {
        control::recover_ha(&self.shared)
    }

    /// Set a node's total memory (bytes) and logical CPUs, as
    /// `POST /_sim/nodes/{node}/resources` does; false if there is no such
    /// node. Its used memory stays a 2 GiB base plus its running
    /// containers' `memory`.
    pub fn set_node_resources(&self, node: &str, memory_bytes: u64, cpus: u32) -> bool {
        control::set_node_resources(&self.shared, node, Some(memory_bytes), Some(cpus))
    }

    /// Set a node's name servers (`dns1`..`dns3` of
    /// `GET /nodes/{node}/dns`, at most three IP addresses, loopback ones
    /// too, as a node running systemd-resolved has `127.0.0.53`) and
    /// search domain, as `POST /_sim/nodes/{node}/dns` does. `Ok(false)`
    /// if there is no such node; `Err` for more than three servers or one
    /// that is not an IP address.
    pub fn set_node_dns(
        &self,
        node: &str,
        servers: &[&str],
        search: Option<&str>,
    ) -> Result<bool, String> {
        let dns = super::state::NodeDns {
            servers: servers.iter().map(|s| (*s).to_owned()).collect(),
            search: search.map(str::to_owned),
        };
        control::set_node_dns(&self.shared, node, dns)
    }

    /// Make the next task of this type (`vzcreate`, `*` for any) fail with `message`.
    pub fn fail_next_task(&self, task_type: &str, message: &str) {
        lock(&self.shared.state)
            .task_failures
            .push((task_type.to_string(), message.to_string()));
    }

    /// Change how long new tasks run.
    pub fn set_task_duration(&self, d: Duration) {
        lock(&self.shared.state).task_duration = d;
    }

    /// Stop the server and wait for its thread.
    /// `pct push` into a running container on `node`.
    pub fn pct_push(
        &self,
        node: &str,
        vmid: u32,
        path: &str,
        mode: u32,
        content: &str,
    ) -> Result<(), String> {
        pct::push(
            &self.shared,
            node,
            vmid,
            path,
            PushedFile {
                mode,
                content: content.to_owned(),
                owner: "root:root".into(),
            },
        )
    }

    /// `pct exec` in a running container on `node`.
    pub fn pct_exec(&self, node: &str, vmid: u32, argv: &[String]) -> Result<(), String> {
        pct::exec(&self.shared, node, vmid, argv.to_vec(), None).map(drop)
    }

    /// `pct exec` with `stdin` on the command's standard input (OrbitLab's
    /// install script, see [`pct`]).
    pub fn pct_exec_input(
        &self,
        node: &str,
        vmid: u32,
        argv: &[String],
        stdin: &str,
    ) -> Result<pct::ExecAnswer, String> {
        pct::exec(
            &self.shared,
            node,
            vmid,
            argv.to_vec(),
            Some(stdin.to_owned()),
        )
    }

    /// `pct exec` in a running container on `node`, with what the command
    /// answered (exit status, standard output): the appliance helper's
    /// health probe answers (see [`pct`]).
    pub fn pct_exec_output(
        &self,
        node: &str,
        vmid: u32,
        argv: &[String],
    ) -> Result<pct::ExecAnswer, String> {
        pct::exec(&self.shared, node, vmid, argv.to_vec(), None)
    }

    /// Makes the health probe of container `vmid` report `problems` from
    /// now on (none: healthy once configured), as `PUT
    /// /_sim/pct/{vmid}/problems` does.
    pub fn set_appliance_problems(&self, vmid: u32, problems: &[&str]) {
        pct::set_problems(
            &self.shared,
            vmid,
            problems.iter().map(|p| p.to_string()).collect(),
        );
    }

    /// How container `vmid`'s service answers Pool health checks from now
    /// on, as `PUT /_sim/pct/{vmid}/service` does.
    pub fn set_service(&self, vmid: u32, up: bool, http_status: u16) {
        pct::set_service(&self.shared, vmid, pct::Service { up, http_status });
    }

    /// The CPU use (a fraction of their cores) that running containers
    /// whose host name starts with `prefix` report from now on (0 removes
    /// it), as `POST /_sim/load` does.
    pub fn set_load(&self, prefix: &str, cpu: f64) {
        let mut st = lock(&self.shared.state);
        if cpu == 0.0 {
            st.loads.remove(prefix);
        } else {
            st.loads.insert(prefix.to_owned(), cpu);
        }
    }

    /// Destroys container `vmid` at once, as if it crashed beyond repair
    /// (or was removed by hand): its config and its `pct` record are gone,
    /// as `DELETE /_sim/guests/{vmid}` does.
    pub fn kill(&self, vmid: u32) -> bool {
        control::kill(&self.shared, vmid)
    }

    /// What existing containers received through `pct`.
    pub fn pct_log(&self) -> PctLog {
        pct::records(&self.shared)
    }

    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Most requests kept in the log.
const MAX_LOG: usize = 200_000;

const SECRET_PARAMS: &[&str] = &[
    "password",
    "new-password",
    "otp",
    "tfa-challenge",
    "ssh-public-keys",
];

/// The answer formats of pveproxy the simulator serves: the second
/// segment of `/api2/{format}/...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `json`: the HTTP status tells success from failure; a failure's
    /// body has its `message` (pve-http-server 5.2 and later: PVE 8.4, 9.x).
    Json,
    /// `extjs` (what the web UI's `API2Request` and forms use): HTTP 200
    /// even when the API call failed; the body's `success` (1 or 0) tells,
    /// a failure's `status` holds the HTTP status it would have had and
    /// `message` its message (Proxmox's `Formatter/Standard.pm`).
    Extjs,
}

impl Format {
    /// The format name, as in the URL.
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Extjs => "extjs",
        }
    }

    /// The format of an API path and the path after it (`/api2/json/nodes`
    /// → `Json`, `/nodes`).
    fn split(full_path: &str) -> Option<(Format, &str)> {
        [Format::Json, Format::Extjs].into_iter().find_map(|f| {
            let rest = full_path.strip_prefix("/api2/")?.strip_prefix(f.name())?;
            (rest.is_empty() || rest.starts_with('/')).then_some((f, rest))
        })
    }
}

fn json_format() -> String {
    Format::Json.name().to_owned()
}

/// Why a request failed, which decides how it is answered.
#[derive(Debug)]
enum Failure {
    /// pveproxy refused it before any API handler ran (an unreadable
    /// request, failed authentication or CSRF check, an unreachable
    /// node): a plain HTTP error in every format.
    Server(ApiError),
    /// The API refused it (parameters, privileges, no such method) or its
    /// handler failed: worded by the format's formatter.
    Api(ApiError),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

impl Failure {
    fn error(&self) -> &ApiError {
        match self {
            Failure::Server(e) | Failure::Api(e) => e,
        }
    }
}

/// Put `message` into the status line, as pveproxy does (control
/// characters made spaces).
fn with_reason(mut resp: Response, message: &str) -> Response {
    let reason: String = message
        .trim_end()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if let Ok(rp) = hyper::ext::ReasonPhrase::try_from(reason) {
        resp.extensions_mut().insert(rp);
    }
    resp
}

/// A refusal of pveproxy itself: the status, the message in the status
/// line, `{"data": null}` (and the per-parameter errors, if any).
fn error_response(e: &ApiError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut body = json!({ "data": null });
    if let (Some(errs), Some(o)) = (&e.errors, body.as_object_mut()) {
        o.insert("errors".into(), json!(errs));
    }
    with_reason((status, axum::Json(body)).into_response(), &e.message)
}

/// The `message` of a failed call's body: the error as the API raised it.
/// Proxmox's errors end with a newline (`die "...\n"` and its exceptions),
/// except the "not implemented" answer for a missing method; an empty one
/// becomes the status's text.
fn body_message(e: &ApiError) -> String {
    if e.message.is_empty() {
        StatusCode::from_u16(e.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Unknown error")
            .to_owned()
    } else if e.message.ends_with('\n') || e.status == 501 {
        e.message.clone()
    } else {
        format!("{}\n", e.message)
    }
}

/// The HTTP answer to a call in `format`, as pveproxy's formatters make it.
fn answer(format: Format, result: Result<Value, Failure>) -> Response {
    match (format, result) {
        (Format::Json, Ok(data)) => axum::Json(json!({ "data": data })).into_response(),
        (Format::Extjs, Ok(data)) => {
            axum::Json(json!({ "data": data, "success": 1 })).into_response()
        }
        (_, Err(Failure::Server(e))) => error_response(&e),
        (Format::Json, Err(Failure::Api(e))) => {
            let mut body = json!({ "data": null, "message": body_message(&e) });
            if let Some(errs) = &e.errors {
                body["errors"] = json!(errs);
            }
            let status =
                StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            with_reason((status, axum::Json(body)).into_response(), &e.message)
        }
        (Format::Extjs, Err(Failure::Api(e))) => {
            let mut body = json!({
                "data": null, "success": 0, "status": e.status, "message": body_message(&e),
            });
            if let Some(errs) = &e.errors {
                body["errors"] = json!(errs);
            }
            axum::Json(body).into_response()
        }
    }
}

async fn api(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, 1 << 30).await {
        Ok(b) => b,
        Err(e) => {
            return error_response(&ApiError::status(
                400,
                format!("reading the request body failed: {e}"),
            ));
        }
    };
    let latency = lock(&shared.faults).latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let (format, result, record) = handle(
        &shared,
        &parts.method,
        parts.uri.path(),
        parts.uri.query(),
        &parts.headers,
        &bytes,
    );
    let status = match &result {
        Ok(_) => 200,
        Err(f) => f.error().status,
    };
    if let Some(mut rec) = record {
        rec.status = status;
        rec.seq = shared.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let mut log = lock(&shared.log);
        if log.len() >= MAX_LOG {
            // A long-running sandbox keeps the newest half.
            log.drain(..MAX_LOG / 2);
        }
        log.push(rec);
    }
    answer(format, result)
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Handle one API request synchronously; returns its format, the answer
/// and the record.
fn handle(
    shared: &Shared,
    method: &Method,
    full_path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> (Format, Result<Value, Failure>, Option<RequestRecord>) {
    let Some((format, path)) = Format::split(full_path) else {
        return (
            Format::Json,
            Err(Failure::Server(ApiError::status(
                404,
                "Not found - use /api2/json or /api2/extjs",
            ))),
            None,
        );
    };
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    let method = method.as_str();
    let mut raw = match request::parse(query, header(headers, "content-type"), body) {
        Ok(r) => r,
        Err(e) => return (format, Err(Failure::Server(e)), None),
    };
    // pveproxy drops ExtJS's cache breaker before the API sees the call.
    raw.params.retain(|(k, _)| k != "_dc");
    let mut record = RequestRecord {
        seq: 0,
        method: method.to_string(),
        path: path.to_string(),
        format: format.name().to_owned(),
        params: BTreeMap::new(),
        user: None,
        status: 0,
    };
    for (k, v) in &raw.params {
        let v = if SECRET_PARAMS.contains(&k.as_str()) {
            "<redacted>"
        } else {
            v.as_str()
        };
        record
            .params
            .entry(k.clone())
            .and_modify(|e| {
                e.push(',');
                e.push_str(v);
            })
            .or_insert_with(|| v.to_string());
    }
    let result = handle_inner(shared, method, path, headers, &raw, &mut record);
    (format, result, Some(record))
}

fn handle_inner(
    shared: &Shared,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    raw: &request::RawRequest,
    record: &mut RequestRecord,
) -> Result<Value, Failure> {
    let mut st = lock(&shared.state);
    st.tick();
    let version = st.version;
    let rules = rules(version);
    let ticket_call = method == "POST" && path == "/access/ticket";
    let user = if is_world(method, path) {
        None
    } else {
        let auth = authenticate(
            &shared.auth,
            &st,
            &shared.www_key,
            header(headers, "authorization"),
            header(headers, "cookie"),
            header(headers, "csrfpreventiontoken"),
            method != "GET",
        )
        .map_err(Failure::Server)?;
        record.user = Some(auth.id().to_string());
        Some(auth)
    };
    if let Some(f) = lock(&shared.faults).check(method, path) {
        return Err(ApiError::status(f.status, f.message).into());
    }
    let (ep, vars) = rules.lookup(method, path).map_err(|path_known| {
        if path_known {
            ApiError::status(501, format!("Method '{method} {path}' not implemented"))
        } else {
            ApiError::status(
                501,
                format!("Method '{method} {path}' not implemented (no such path)"),
            )
        }
    })?;
    if let Some(node) = vars.get("node")
        && st.nodes.get(node).is_some_and(|n| !n.online)
    {
        return Err(Failure::Server(ApiError::status(
            595,
            format!("No route to host (node '{node}' is offline)"),
        )));
    }
    let mut all: Vec<(String, String)> = vars.into_iter().collect();
    all.extend(raw.params.iter().cloned());
    let params = validate(rules, ep, &all).map_err(ApiError::params)?;
    if let Some(caller) = &user {
        authorize(&shared.auth, &st, caller.id(), method, &ep.path)?;
    }
    let reply = if ticket_call {
        issue_ticket(&shared.auth, &mut st, &shared.www_key, &params)
    } else if method == "GET" && ep.path == "/access/permissions" {
        let caller = user.as_ref().map(Auth::id).unwrap_or_default();
        permissions(&shared.auth, &st, caller, &params)
    } else {
        let uid = user
            .as_ref()
            .map(|u| u.id().to_string())
            .unwrap_or_default();
        let mut ctx = Ctx {
            st: &mut st,
            p: &params,
            user: &uid,
            auth: &shared.auth,
            upload: raw.upload.as_ref(),
        };
        dispatch(method, &ep.path, &mut ctx)
    };
    shared.sync_files(&st);
    Ok(reply?)
}
