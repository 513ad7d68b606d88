//! Shared fixtures of the cross-crate tests: a simulated Proxmox cluster,
//! a store in a temporary directory standing in for `/etc/pve`, and the
//! engine wired to both — one container host per simulated node, as each
//! node's agent would have.

pub mod appliance_lab;

use std::fmt;
use std::time::Duration;

use orbitlab_engine::host::{ContainerHost, ExecOutput, HostError, InstallFile, health, install};
use orbitlab_engine::pve::{
    ClientConfig, ClientOptions, Credentials, PveClient, RetryPolicy, Secret, Trust,
};
use orbitlab_engine::reconcile::{Options, Reconciler, Report, Scope};
use orbitlab_engine::store::{LockOptions, Store};
use orbitlab_sim::pve::{DEFAULT_TOKEN_SECRET, PveSim, PveVersion, SimConfig, SimHandle};

/// The simulated nodes.
pub const NODES: [&str; 3] = ["pve1", "pve2", "pve3"];

/// A simulated cluster with a store and a client.
pub struct Lab {
    pub sim: SimHandle,
    pub pve: PveClient,
    pub store: Store,
    pub dir: tempfile::TempDir,
}

impl fmt::Debug for Lab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lab")
            .field("root", &self.dir.path())
            .finish()
    }
}

/// `pct` for one simulated node: pushes and execs go to the simulator,
/// and reach only this node's containers, as `pct` does.
pub struct SimHost<'a> {
    pub sim: &'a SimHandle,
    pub node: String,
}

impl fmt::Debug for SimHost<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimHost({})", self.node)
    }
}

impl ContainerHost for SimHost<'_> {
    fn local_node(&self) -> &str {
        &self.node
    }

    fn push(
        &self,
        node: &str,
        vmid: u32,
        path: &str,
        mode: u32,
        content: &[u8],
    ) -> Result<(), HostError> {
        self.local(node, vmid)?;
        let content = String::from_utf8_lossy(content);
        self.sim
            .pct_push(node, vmid, path, mode, &content)
            .map_err(|stderr| failed("push", stderr))
    }

    fn exec(&self, node: &str, vmid: u32, argv: &[String]) -> Result<(), HostError> {
        self.local(node, vmid)?;
        self.sim
            .pct_exec(node, vmid, argv)
            .map_err(|stderr| failed("exec", stderr))
    }

    fn exec_output(&self, node: &str, vmid: u32, argv: &[String]) -> Result<ExecOutput, HostError> {
        self.local(node, vmid)?;
        let answer = self
            .sim
            .pct_exec_output(node, vmid, argv)
            .map_err(|stderr| failed("exec", stderr))?;
        Ok(ExecOutput {
            status: Some(answer.status),
            stdout: answer.stdout.into_bytes(),
            truncated: false,
            stderr: answer.stderr,
        })
    }

    fn install(&self, node: &str, vmid: u32, file: &InstallFile<'_>) -> Result<(), HostError> {
        self.local(node, vmid)?;
        let content = String::from_utf8_lossy(file.content);
        let answer = self
            .sim
            .pct_exec_input(node, vmid, &install::install_argv(file), &content)
            .map_err(|stderr| failed("exec", stderr))?;
        if answer.status == 0 {
            Ok(())
        } else {
            Err(failed("exec", answer.stderr))
        }
    }
}

impl SimHost<'_> {
    fn local(&self, node: &str, vmid: u32) -> Result<(), HostError> {
        if node == self.node {
            Ok(())
        } else {
            Err(HostError::NotLocal {
                vmid,
                node: node.to_owned(),
                local: self.node.clone(),
            })
        }
    }
}

fn failed(verb: &str, stderr: String) -> HostError {
    HostError::Failed {
        command: format!("pct {verb}"),
        status: "exit status: 255".into(),
        stderr,
    }
}

impl Lab {
    /// A 3-node PVE 8.4 cluster (tasks take 5 ms).
    pub fn new() -> Self {
        Self::with_version(PveVersion::V8_4)
    }

    /// A 3-node cluster of the given version.
    pub fn with_version(version: PveVersion) -> Self {
        Self::with_config(version, Duration::from_millis(5))
    }

    /// A 3-node cluster whose tasks take `task_duration`.
    pub fn with_config(version: PveVersion, task_duration: Duration) -> Self {
        Self::build(version, task_duration, false, false)
    }

    /// [`Lab::new`] whose simulator keeps uploaded volumes' bytes in files
    /// (under `<dir>/volumes/`) and gives their paths, as a node does.
    pub fn with_volume_files() -> Self {
        Self::build(PveVersion::V8_4, Duration::from_millis(5), false, true)
    }

    /// [`Lab::new`] whose store root also holds what pmxcfs generates
    /// (`.members`, `.vmlist`, `.version`), kept up to date by the
    /// simulator, as `/etc/pve` does on a real node.
    pub fn with_pmxcfs_files() -> Self {
        Self::build(PveVersion::V8_4, Duration::from_millis(5), true, false)
    }

    fn build(
        version: PveVersion,
        task_duration: Duration,
        pmxcfs_files: bool,
        volume_files: bool,
    ) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let sim = PveSim::start(SimConfig {
            version,
            nodes: NODES.iter().map(|n| n.to_string()).collect(),
            task_duration,
            pmxcfs_root: pmxcfs_files.then(|| dir.path().to_owned()),
            volume_files: volume_files.then(|| dir.path().join("volumes")),
            ..SimConfig::default()
        })
        .expect("the simulator starts");
        let pve = PveClient::new(ClientConfig {
            base_url: sim.origin(),
            trust: Trust::LoopbackHttp,
            credentials: Credentials::token(
                "root@pam",
                "orbitlab",
                Secret::new(DEFAULT_TOKEN_SECRET),
            )
            .expect("token"),
            options: ClientOptions {
                timeout: Duration::from_secs(10),
                connect_timeout: Duration::from_secs(2),
                upload_timeout: Duration::from_secs(10),
                retry: RetryPolicy {
                    attempts: 1,
                    first_delay: Duration::from_millis(1),
                    max_delay: Duration::from_millis(1),
                },
            },
        })
        .expect("the client builds");
        let store = Store::open(dir.path()).with_lock_options(LockOptions {
            wait: Duration::from_secs(30),
            max_poll: Duration::from_millis(10),
            renew_every: Duration::from_secs(20),
            notice: None,
        });
        Lab {
            sim,
            pve,
            store,
            dir,
        }
    }

    /// The host of `node`.
    pub fn host(&self, node: &str) -> SimHost<'_> {
        SimHost {
            sim: &self.sim,
            node: node.to_owned(),
        }
    }

    /// A reconciler acting as `node`.
    pub fn reconciler<'a>(&'a self, host: &'a SimHost<'a>) -> Reconciler<'a> {
        Reconciler {
            pve: &self.pve,
            store: &self.store,
            host,
            options: Options {
                task_deadline: Duration::from_secs(10),
                max_passes: 8,
                ..Options::default()
            },
        }
    }

    /// Runs a reconcile as every node in turn, as the three agents would
    /// (each followed by the probe of its node's appliances), until a
    /// round changes nothing; returns the reports of the last round.
    pub fn converge(&self) -> Vec<Report> {
        let mut last = Vec::new();
        for _round in 0..6 {
            let mut steps = 0;
            last.clear();
            for node in NODES {
                let host = self.host(node);
                let report = self.reconciler(&host).run().expect("a reconcile pass runs");
                steps += report.steps + usize::from(self.probe(node));
                last.push(report);
            }
            if steps == 0 {
                break;
            }
        }
        last
    }

    /// What `node`'s agent does after a reconcile: probes the appliance
    /// containers running there (the simulated helper answers) and
    /// publishes the answers in its heartbeat record; true when an answer
    /// changed. An offline node probes nothing. Which containers those are
    /// is read from the simulator's state, not through its API, so that
    /// the tests counting or failing Proxmox requests see the reconciles'
    /// own (the agents' listing is `reconcile::local_appliances`, which
    /// the multi-node tests run).
    pub fn probe(&self, node: &str) -> bool {
        use orbitlab_engine::reconcile::ids::Marker;
        use orbitlab_sim::pve::state::PowerState;
        let Some(vmids) = self.sim.with_state(|st| {
            st.nodes.get(node).filter(|n| n.online)?;
            Some(
                st.guests
                    .iter()
                    .filter(|(_, g)| g.node == node && matches!(g.status, PowerState::Running))
                    .filter(|(_, g)| {
                        g.config
                            .get("description")
                            .and_then(|d| Marker::find_in(d))
                            .is_some_and(|m| m.role.is_some())
                    })
                    .map(|(vmid, _)| *vmid)
                    .collect::<Vec<u32>>(),
            )
        }) else {
            return false;
        };
        let host = self.host(node);
        let probes = health::probe_all(&host, node, vmids, std::time::SystemTime::now());
        orbitlab_engine::liveness::record_probes(&self.store, node, probes)
            .expect("the heartbeat is written")
    }
}

impl Lab {
    /// Runs reconciles as the three agents' loops would, until a round
    /// changes nothing: `owner` the cluster-scoped one, every other node a
    /// node-scoped one (configuring its own containers); returns the
    /// reports of the last round.
    pub fn converge_as_agents(&self, owner: &str) -> Vec<Report> {
        let mut last = Vec::new();
        for _round in 0..6 {
            let mut steps = 0;
            last.clear();
            for node in NODES {
                let host = self.host(node);
                let mut reconciler = self.reconciler(&host);
                if node != owner {
                    reconciler.options.scope = Scope::Node;
                }
                let report = reconciler.run().expect("a reconcile pass runs");
                steps += report.steps + usize::from(self.probe(node));
                last.push(report);
            }
            if steps == 0 {
                break;
            }
        }
        last
    }
}

impl Lab {
    /// Rounds of the three agents' reconciles (`owner` cluster-scoped, the
    /// others node-scoped) until one does nothing and nothing fails, at
    /// most six; a failing run (an injected fault) only means another
    /// round.
    pub fn converge_despite_faults(&self, owner: &str) {
        for _ in 0..6 {
            let mut quiet = true;
            for node in NODES {
                let host = self.host(node);
                let mut reconciler = self.reconciler(&host);
                if node != owner {
                    reconciler.options.scope = Scope::Node;
                }
                match reconciler.run() {
                    Ok(report) if report.steps == 0 && report.failed.is_empty() => {}
                    _ => quiet = false,
                }
                if self.probe(node) {
                    quiet = false;
                }
            }
            if quiet {
                return;
            }
        }
    }
}

/// The part of a request path that is the same in every run, for matching
/// an injected fault to "the same call": a task's UPID holds a process id
/// and a start time, so a task poll is matched by the task's type, guest
/// and user.
pub fn stable_request_part(path: &str) -> String {
    match path.split_once("/tasks/UPID:") {
        Some((_, upid)) => {
            let fields: Vec<&str> = upid.split(':').collect();
            format!(":{}:{}:{}:", fields[4], fields[5], fields[6])
        }
        None => path.to_owned(),
    }
}

impl Lab {
    /// How many containers carry each first description line (OrbitLab's
    /// marker, `orbitlab:lxc/app`), from the simulator's state.
    pub fn container_markers(&self) -> std::collections::BTreeMap<String, usize> {
        let snapshot = self.sim.snapshot();
        let mut markers = std::collections::BTreeMap::new();
        for guest in snapshot["guests"]
            .as_object()
            .into_iter()
            .flat_map(|g| g.values())
        {
            let first = guest["config"]["description"]
                .as_str()
                .unwrap_or_default()
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned();
            *markers.entry(first).or_default() += 1;
        }
        markers
    }

    /// How many IPAM addresses each owner holds (`sector/web/gateway`: 2).
    pub fn address_holdings(&self) -> std::collections::BTreeMap<String, usize> {
        orbitlab_engine::reconcile::observe(&self.pve, &self.store, "vmbr0")
            .expect("an observation")
            .addresses
            .iter()
            .map(|(owner, pools)| (owner.to_string(), pools.len()))
            .collect()
    }

    /// The requests that changed something (every method but GET), as
    /// `METHOD path`, since the log was last cleared.
    pub fn writes(&self) -> Vec<String> {
        self.sim
            .requests()
            .iter()
            .filter(|r| r.method != "GET")
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }
}

/// What [`every_call_fails_once`] saw.
#[derive(Debug, Default)]
pub struct FaultRuns {
    /// Requests the undisturbed run made.
    pub calls: usize,
    /// Injected failures that fired.
    pub fired: usize,
    /// Of those, how many made the owner's first run fail or report a
    /// failed object.
    pub surfaced: usize,
    /// Requests whose failure never came (the run took another path).
    pub unfired: Vec<String>,
}

impl FaultRuns {
    /// Unfired requests that change something: each must have failed once.
    pub fn unfired_writes(&self) -> Vec<&String> {
        self.unfired
            .iter()
            .filter(|c| !c.starts_with("GET "))
            .collect()
    }
}

/// Crash safety of whatever `make` leaves to do: an undisturbed run from
/// `make()` records the Proxmox requests; then, for each of them, a fresh
/// lab from `make()` where exactly that request fails once (500), the
/// agents (`owner` cluster-scoped) converge, and `check(lab, what)` must
/// hold — the same end state as the undisturbed run.
pub fn every_call_fails_once(
    make: impl Fn() -> Lab,
    owner: &str,
    check: impl Fn(&Lab, &str),
) -> FaultRuns {
    let reference = make();
    reference.converge_despite_faults(owner);
    check(&reference, "undisturbed");
    let calls = reference.sim.requests();
    assert!(!calls.is_empty(), "the undisturbed run made no request");
    let mut runs = FaultRuns {
        calls: calls.len(),
        ..FaultRuns::default()
    };
    for (i, call) in calls.iter().enumerate() {
        // The Nth request with this method and path, as faults count them.
        let pattern = stable_request_part(&call.path);
        let nth = calls[..=i]
            .iter()
            .filter(|c| c.method == call.method && c.path.contains(&pattern))
            .count() as u32;
        let lab = make();
        lab.sim.inject_fault(orbitlab_sim::pve::FaultSpec {
            method: Some(call.method.clone()),
            path_contains: pattern,
            nth,
            status: 500,
            message: format!("injected failure of {} {}", call.method, call.path),
        });
        let host = lab.host(owner);
        let first = lab.reconciler(&host).run();
        lab.converge_despite_faults(owner);
        if lab.sim.armed_faults() > 0 {
            runs.unfired.push(format!("{} {}", call.method, call.path));
        } else {
            runs.fired += 1;
            if first.as_ref().is_err() || first.as_ref().is_ok_and(|r| !r.failed.is_empty()) {
                runs.surfaced += 1;
            }
        }
        // A request this run made fewer times than the reference never
        // came; disarm it so the checks read undisturbed.
        lab.sim.clear_faults();
        lab.converge_despite_faults(owner);
        check(
            &lab,
            &format!("call {i} ({} {}) failed once", call.method, call.path),
        );
    }
    runs
}

impl Default for Lab {
    fn default() -> Self {
        Self::new()
    }
}
pub mod multinode;
