//! A simulated cluster run by real agent processes, for the multi-node
//! tests: the pmxcfs simulator mounted in this process (FUSE, root), the
//! Proxmox VE simulator in this process feeding its `.members`/`.vmlist`,
//! the Proxmox connection stored and the cluster initialised as
//! `orbitlab init` does, then one `orbitlab-agent` process per node (each
//! told it is a different node, all on the one mount, as nodes share
//! pmxcfs), using the simulated `pct`.
//!
//! Agents can be killed (SIGKILL) and restarted; each incarnation logs to
//! its own file under the fixture's temporary directory. [`MultiNode::audit`]
//! (and [`MultiNode::audit_with_instances`], with instances) checks the end
//! state: no duplicate VNI, VMID or address, no orphan Proxmox object, no
//! lost manifest, one container and one address per instance. Everything lives in a temporary
//! directory; agents die with the test (SIGKILL on drop, and
//! `--exit-with-parent`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use orbitlab_engine::api::Api;
use orbitlab_engine::pve::{PveClient, StoredConnection, StoredTrust};
use orbitlab_engine::reconcile::{Options, Reconciler, init, observe, tags};
use orbitlab_engine::store::{LockOptions, Store};
use orbitlab_manifests::Kind;
use orbitlab_manifests::spec::Spec;
use orbitlab_pmxcfs_sim::{Control, Handle, PmxcfsSim, SimOptions};
use orbitlab_sim::pve::{DEFAULT_TOKEN_SECRET, PveSim, PveVersion, SimConfig, SimHandle};

use crate::{NODES, SimHost};

/// The programs the agents run (from the test crate's binaries: use
/// [`test_programs!`](crate::test_programs)).
#[derive(Debug, Clone)]
pub struct Programs {
    pub agent: PathBuf,
    pub pct: PathBuf,
}

/// The agent and `pct` programs built with this package; expands in the
/// test file, where cargo tells where they are.
#[macro_export]
macro_rules! test_programs {
    () => {
        $crate::multinode::Programs {
            agent: env!("CARGO_BIN_EXE_orbitlab-test-agent").into(),
            pct: env!("CARGO_BIN_EXE_orbitlab-test-pct").into(),
        }
    };
}

/// Timings of the simulated cluster and its agents.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// pmxcfs lock expiry.
    pub lock_timeout: Duration,
    /// How often lock holders renew (well under `lock_timeout`).
    pub lock_renew: Duration,
    /// How long every simulated Proxmox task runs.
    pub task_duration: Duration,
    /// Agents' poll interval.
    pub poll: Duration,
    /// Agents' resync interval.
    pub resync: Duration,
    /// Agents' longest backoff.
    pub backoff_max: Duration,
    /// Proxmox VE version simulated.
    pub version: PveVersion,
    /// Serve metrics on a free loopback port.
    pub metrics: bool,
    /// Agents' heartbeat interval (dead after three missed ones: keep that
    /// within `lock_timeout`).
    pub heartbeat: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            lock_timeout: Duration::from_secs(3),
            lock_renew: Duration::from_millis(500),
            task_duration: Duration::from_millis(5),
            poll: Duration::from_millis(200),
            resync: Duration::from_secs(10),
            backoff_max: Duration::from_secs(2),
            version: PveVersion::V8_4,
            metrics: false,
            heartbeat: Duration::from_secs(1),
        }
    }
}

/// One agent process.
#[derive(Debug)]
struct Agent {
    child: Child,
    log: PathBuf,
}

/// The fixture (see the module documentation).
pub struct MultiNode {
    agents: BTreeMap<String, Agent>,
    incarnations: u32,
    programs: Programs,
    pub options: ClusterOptions,
    pub sim: SimHandle,
    pub pve: PveClient,
    pub store: Store,
    // Unmounted after the agents are gone and before the directory goes.
    pmxcfs: Handle,
    dir: tempfile::TempDir,
}

impl fmt::Debug for MultiNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiNode")
            .field("dir", &self.dir.path())
            .field("agents", &self.agents.keys())
            .finish()
    }
}

/// Formats a duration in seconds for the printed figures.
pub fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

impl MultiNode {
    /// Mounts the pmxcfs simulator, starts the PVE simulator, stores the
    /// connection and initialises the cluster (as node pve1). No agent runs
    /// yet: see [`MultiNode::start_agents`].
    pub fn start(programs: Programs, options: ClusterOptions) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("orbitlab-multinode-")
            .tempdir()
            .expect("temporary directory");
        let mount = dir.path().join("etc-pve");
        let control = dir.path().join("pmxcfs-control");
        std::fs::create_dir_all(&mount).expect("mount point");
        std::fs::create_dir_all(dir.path().join("logs")).expect("log directory");
        let pmxcfs = PmxcfsSim::mount(
            &mount,
            SimOptions {
                lock_timeout: options.lock_timeout,
                quorate: true,
                control_dir: Some(control.clone()),
                threads: 4,
            },
        )
        .expect("the pmxcfs simulator mounts (root and /dev/fuse needed)");
        let sim = PveSim::start(SimConfig {
            version: options.version,
            nodes: NODES.iter().map(|n| n.to_string()).collect(),
            task_duration: options.task_duration,
            pmxcfs_control: Some(control),
            ..SimConfig::default()
        })
        .expect("the PVE simulator starts");
        let store = Store::open(&mount).with_lock_options(LockOptions {
            wait: Duration::from_secs(60),
            max_poll: Duration::from_millis(20),
            renew_every: options.lock_renew,
            notice: None,
        });
        wait_for(Duration::from_secs(10), || {
            mount.join(".members").exists().then_some(())
        })
        .expect(".members appears on the mount");
        let connection = StoredConnection {
            url: sim.origin(),
            token: "root@pam!orbitlab".into(),
            secret: DEFAULT_TOKEN_SECRET.into(),
            trust: StoredTrust::LoopbackHttp,
        };
        connection.save(&store).expect("the connection is stored");
        let pve = PveClient::new(
            connection
                .client_config(&store)
                .expect("client configuration"),
        )
        .expect("client");
        {
            let host = SimHost {
                sim: &sim,
                node: NODES[0].to_owned(),
            };
            let reconciler = Reconciler {
                pve: &pve,
                store: &store,
                host: &host,
                options: Options {
                    task_deadline: Duration::from_secs(30),
                    ..Options::default()
                },
            };
            init::init(&reconciler, None).expect("init succeeds");
        }
        MultiNode {
            agents: BTreeMap::new(),
            incarnations: 0,
            programs,
            options,
            sim,
            pve,
            store,
            pmxcfs,
            dir,
        }
    }

    /// The mount playing `/etc/pve`.
    pub fn mount(&self) -> &Path {
        self.pmxcfs.mountpoint()
    }

    /// The pmxcfs simulator's control directory (quorum).
    pub fn control(&self) -> &Control {
        self.pmxcfs.control()
    }

    /// The API over the shared mount (what `orbitlab` on any node uses).
    pub fn api(&self) -> Api {
        Api::new(self.store.clone())
    }

    /// Starts the agent of `node` (a new process).
    pub fn start_agent(&mut self, node: &str) {
        assert!(!self.agents.contains_key(node), "agent {node} runs already");
        self.incarnations += 1;
        let log = self
            .dir
            .path()
            .join(format!("logs/agent-{node}-{}.log", self.incarnations));
        let out = std::fs::File::create(&log).expect("agent log");
        let err = out.try_clone().expect("agent log");
        let o = &self.options;
        let ms = |d: Duration| format!("{}ms", d.as_millis());
        let child = Command::new(&self.programs.agent)
            .arg("--root")
            .arg(self.mount())
            .args([
                "--node",
                node,
                "--poll-interval",
                &ms(o.poll),
                "--resync-interval",
                &ms(o.resync),
            ])
            .args([
                "--lock-renew",
                &ms(o.lock_renew),
                "--lock-wait",
                "60s",
                "--backoff-max",
                &ms(o.backoff_max),
                "--heartbeat-interval",
                &ms(o.heartbeat),
                // Pools are looked at again every second (auto-scaling,
                // replacements), not every 10.
                "--pool-interval",
                "1s",
            ])
            .args([
                "--task-deadline",
                "30s",
                // Writes are fenced at half the grace period: leave a pass
                // time to finish even on a loaded machine.
                "--stop-grace",
                "40s",
                "--exit-with-parent",
            ])
            .args([
                "--metrics-listen",
                if o.metrics { "127.0.0.1:0" } else { "0" },
                "--api-listen",
                "0",
            ])
            .env("ORBITLAB_PCT", &self.programs.pct)
            .env("ORBITLAB_SIM_URL", self.sim.origin())
            .env("ORBITLAB_NODE", node)
            // `ORBITLAB_TEST_AGENT_LOG=debug` for a closer look at a test's agents.
            .env(
                "ORBITLAB_LOG",
                std::env::var("ORBITLAB_TEST_AGENT_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env_remove("ORBITLAB_ROOT")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("the agent starts");
        self.agents.insert(node.to_owned(), Agent { child, log });
    }

    /// Starts an agent on every node.
    pub fn start_agents(&mut self) {
        for node in NODES {
            self.start_agent(node);
        }
    }

    /// The process id of `node`'s agent.
    pub fn agent_pid(&self, node: &str) -> Option<u32> {
        self.agents.get(node).map(|a| a.child.id())
    }

    /// Kills `node`'s agent with SIGKILL; returns its process id.
    pub fn kill_agent(&mut self, node: &str) -> u32 {
        let mut agent = self.agents.remove(node).expect("the agent runs");
        let pid = agent.child.id();
        agent.child.kill().expect("SIGKILL");
        agent.child.wait().expect("the killed agent is reaped");
        pid
    }

    /// Stops `node`'s agent with SIGTERM and waits for it (30 s at most);
    /// returns its exit status and how long it took.
    pub fn terminate_agent(&mut self, node: &str) -> (std::process::ExitStatus, Duration) {
        let mut agent = self.agents.remove(node).expect("the agent runs");
        let pid = nix::unistd::Pid::from_raw(agent.child.id() as i32);
        let started = Instant::now();
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let status = wait_for(Duration::from_secs(30), || {
            agent.child.try_wait().expect("wait")
        })
        .unwrap_or_else(|| {
            panic!(
                "agent {node} did not exit on SIGTERM:\n{}",
                tail(&agent.log)
            )
        });
        (status, started.elapsed())
    }

    /// Stops every agent with SIGTERM and checks each exits cleanly.
    pub fn stop_agents(&mut self) {
        let agents = std::mem::take(&mut self.agents);
        for agent in agents.values() {
            let pid = nix::unistd::Pid::from_raw(agent.child.id() as i32);
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        }
        for (node, mut agent) in agents {
            let started = Instant::now();
            let status = loop {
                if let Some(status) = agent.child.try_wait().expect("wait") {
                    break status;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(15),
                    "agent {node} did not stop on SIGTERM"
                );
                std::thread::sleep(Duration::from_millis(20));
            };
            assert!(
                status.success(),
                "agent {node} exited with {status}:\n{}",
                tail(&agent.log)
            );
        }
    }

    /// The metrics text of `node`'s agent (with `metrics` on).
    pub fn metrics(&self, node: &str) -> String {
        let agent = &self.agents[node];
        let addr = wait_for(Duration::from_secs(10), || {
            std::fs::read_to_string(&agent.log)
                .ok()?
                .split_whitespace()
                .find_map(|f| f.strip_prefix("metrics=").map(str::to_owned))
        })
        .expect("the agent logs its metrics address");
        let mut stream = TcpStream::connect(&addr).expect("metrics port");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("request");
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("answer");
        text
    }

    /// One value of the agent's metrics (`name` with labels, exactly).
    pub fn metric(&self, node: &str, name: &str) -> f64 {
        let text = self.metrics(node);
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
    }

    /// Each Sector's phase (`Ready`, `Progressing`, `Failed`, or `-` when
    /// no agent reported yet).
    pub fn phases(&self) -> BTreeMap<String, String> {
        self.phases_of(Kind::Sector)
    }

    /// The phase of each declared object of `kind`, as [`MultiNode::phases`].
    pub fn phases_of(&self, kind: Kind) -> BTreeMap<String, String> {
        let statuses = self.store.read_statuses(kind).unwrap_or_default();
        self.store
            .read_manifests(kind)
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let name = m.value.name().to_string();
                let phase = statuses.get(&name).map_or("-", |s| s.phase()).to_owned();
                (name, phase)
            })
            .collect()
    }

    /// Whether exactly the objects of `kind` in `expected` are declared,
    /// all Ready, and no other object of that kind has a status left.
    fn settled(&self, kind: Kind, expected: &BTreeSet<String>) -> bool {
        let phases = self.phases_of(kind);
        let statuses = self.store.read_statuses(kind).unwrap_or_default();
        phases.keys().cloned().collect::<BTreeSet<_>>() == *expected
            && phases.values().all(|p| p == "Ready")
            && statuses.keys().all(|name| expected.contains(name))
    }

    /// Whether every Sector in `expected` is Ready and no other Sector has
    /// a manifest or a status left.
    pub fn converged(&self, expected: &BTreeSet<String>) -> bool {
        self.settled(Kind::Sector, expected)
    }

    /// [`MultiNode::converged`] for the Sectors, and the same for the
    /// instances (`kind: Lxc`) in `instances`.
    pub fn converged_with_instances(
        &self,
        sectors: &BTreeSet<String>,
        instances: &BTreeSet<String>,
    ) -> bool {
        self.converged(sectors) && self.settled(Kind::Lxc, instances)
    }

    /// Waits until [`MultiNode::converged`]; the time it took, or a
    /// description of what is still missing.
    pub fn wait_converged(
        &self,
        expected: &BTreeSet<String>,
        timeout: Duration,
    ) -> Result<Duration, String> {
        self.wait_until(timeout, || self.converged(expected))
    }

    /// Waits until [`MultiNode::converged_with_instances`]; the time it
    /// took, or a description of what is still missing.
    pub fn wait_converged_with_instances(
        &self,
        sectors: &BTreeSet<String>,
        instances: &BTreeSet<String>,
        timeout: Duration,
    ) -> Result<Duration, String> {
        self.wait_until(timeout, || {
            self.converged_with_instances(sectors, instances)
        })
    }

    fn wait_until(&self, timeout: Duration, done: impl Fn() -> bool) -> Result<Duration, String> {
        let started = Instant::now();
        wait_for(timeout, || done().then_some(()))
            .map(|()| started.elapsed())
            .ok_or_else(|| {
                let unready = |kind| {
                    self.phases_of(kind)
                        .into_iter()
                        .filter(|(_, phase)| phase != "Ready")
                        .collect::<BTreeMap<_, _>>()
                };
                format!(
                    "not converged after {}: Sectors {:?}, Sectors not Ready {:?}, instances not Ready {:?}\n{}",
                    secs(timeout),
                    self.phases().keys().collect::<Vec<_>>(),
                    unready(Kind::Sector),
                    unready(Kind::Lxc),
                    self.agent_logs()
                )
            })
    }

    /// The end of every running agent's log (for failure messages).
    pub fn agent_logs(&self) -> String {
        self.agents
            .iter()
            .map(|(node, a)| format!("--- agent {node}:\n{}\n", tail(&a.log)))
            .collect()
    }

    /// Checks the end state against the Sectors `expected`, with no
    /// instance (see [`audit`]).
    pub fn audit(&self, expected: &BTreeSet<String>) -> Result<Audit, String> {
        self.audit_with_instances(expected, &BTreeSet::new())
    }

    /// Checks the end state against the Sectors and the instances
    /// (`kind: Lxc`) expected (see [`audit`]).
    pub fn audit_with_instances(
        &self,
        sectors: &BTreeSet<String>,
        instances: &BTreeSet<String>,
    ) -> Result<Audit, String> {
        audit(self, sectors, instances).map_err(|problems| {
            format!(
                "{} problem(s):\n- {}",
                problems.len(),
                problems.join("\n- ")
            )
        })
    }
}

impl Drop for MultiNode {
    fn drop(&mut self) {
        for agent in self.agents.values_mut() {
            let _ = agent.child.kill();
            let _ = agent.child.wait();
        }
    }
}

/// Polls `f` every 20 ms until it gives a value or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let started = Instant::now();
    loop {
        if let Some(value) = f() {
            return Some(value);
        }
        if started.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(12)..].join("\n")
}

/// What the audit counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Audit {
    pub sectors: usize,
    pub instances: usize,
    pub containers: usize,
    pub addresses: usize,
}

/// `name=eth0,bridge=olvn1001,ip=172.16.0.1/24,gw=...` → (bridge, ip).
fn nic(value: &str) -> Option<(String, String)> {
    let field = |key: &str| {
        value
            .split(',')
            .find_map(|kv| kv.strip_prefix(key))
            .map(str::to_owned)
    };
    Some((
        field("bridge=")?,
        field("ip=")?.split('/').next()?.to_owned(),
    ))
}

/// Whose a container is, by the marker in its description.
#[derive(Debug, PartialEq, Eq)]
enum MarkedFor<'a> {
    /// `orbitlab:sector/<name>/<role>`: a Sector's appliance.
    Sector(&'a str),
    /// `orbitlab:lxc/<name>`: an instance.
    Instance(&'a str),
}

/// The owner a container's description names, if it names one this audit
/// knows.
fn marked_for(description: &str) -> Option<MarkedFor<'_>> {
    let marker = description
        .split_whitespace()
        .find_map(|w| w.strip_prefix("orbitlab:"))?;
    match marker.split_once('/')? {
        ("sector", rest) => rest.split('/').next().map(MarkedFor::Sector),
        ("lxc", name) => Some(MarkedFor::Instance(name)),
        _ => None,
    }
}

/// An instance's container as the simulator holds it.
#[derive(Debug, Clone)]
struct InstanceSeen {
    vmid: u32,
    node: String,
    /// `net0`'s bridge and address.
    nic: Option<(String, String)>,
}

/// Pushes `what` into `problems` when `bad`.
fn check(problems: &mut Vec<String>, bad: bool, what: impl FnOnce() -> String) {
    if bad {
        problems.push(what());
    }
}

/// The end-state checks: manifests and statuses, SDN (nothing pending,
/// exactly the Backplane plus one zone and vnet per Sector, unique VNIs
/// matching the tag table), containers (exactly a gateway and a DNS per
/// Sector and one container per instance, all running, marked, no orphan —
/// a container whose marker names no declared object —, unique addresses
/// per bridge, each instance on its Sector's vnet), IPAM (owners all alive,
/// no address held twice in a pool, exactly one address per instance: the
/// one its container has), and each instance's status naming its container
/// (VMID, node, address).
fn audit(
    lab: &MultiNode,
    expected: &BTreeSet<String>,
    instances: &BTreeSet<String>,
) -> Result<Audit, Vec<String>> {
    let mut problems = Vec::new();
    let p = &mut problems;
    let manifests: BTreeSet<String> = lab
        .store
        .read_manifests(Kind::Sector)
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.value.name().to_string())
        .collect();
    check(p, manifests != *expected, || {
        format!("Sector manifests {manifests:?}, expected {expected:?}")
    });
    for (name, phase) in lab.phases() {
        check(p, phase != "Ready", || format!("Sector {name} is {phase}"));
    }
    // Each declared instance's Sector.
    let instance_sectors: BTreeMap<String, String> = lab
        .store
        .read_manifests(Kind::Lxc)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| match &m.value.spec {
            Spec::Lxc(spec) => Some((m.value.name().to_string(), spec.sector.to_string())),
            _ => None,
        })
        .collect();
    // Pools' members are instances too (no manifest of their own).
    let mut instance_sectors = instance_sectors;
    let records = orbitlab_engine::pool::read_records(&lab.store).unwrap_or_default();
    let lxc_statuses = lab.store.read_statuses(Kind::Lxc).unwrap_or_default();
    for pool in lab.store.read_manifests(Kind::Pool).unwrap_or_default() {
        let Spec::Pool(spec) = &pool.value.spec else {
            continue;
        };
        for n in records
            .get(pool.value.name())
            .map(|r| r.members.keys().copied().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let member = orbitlab_engine::pool::member_name(pool.value.name(), n).to_string();
            let phase = lxc_statuses.get(&member).map_or("-", |s| s.phase());
            check(p, phase != "Ready", || {
                format!("Pool member {member} is {phase}")
            });
            instance_sectors.insert(member, spec.instance.sector.to_string());
        }
    }
    for (name, phase) in lab.phases_of(Kind::Pool) {
        check(p, phase != "Ready", || format!("Pool {name} is {phase}"));
    }
    let declared: BTreeSet<String> = instance_sectors.keys().cloned().collect();
    check(p, declared != *instances, || {
        format!("instances (Lxc manifests and Pool members) {declared:?}, expected {instances:?}")
    });
    for (name, phase) in lab.phases_of(Kind::Lxc) {
        check(p, phase != "Ready", || {
            format!("instance {name} is {phase}")
        });
    }
    let tag_table = tags::read(&lab.store).unwrap_or_default();
    let tagged: Vec<&String> = tag_table.values().collect();
    check(
        p,
        tagged.iter().collect::<BTreeSet<_>>().len() != tagged.len(),
        || format!("a Sector holds two tags: {tag_table:?}"),
    );
    check(
        p,
        tagged.iter().map(|s| s.as_str()).collect::<BTreeSet<_>>()
            != expected.iter().map(String::as_str).collect(),
        || format!("tag table {tag_table:?} does not match the Sectors"),
    );
    let (containers, addresses, seen) = lab.sim.with_state(|st| {
        let sdn = &st.sdn;
        check(
            p,
            sdn.running.zones != sdn.current.zones
                || sdn.running.vnets != sdn.current.vnets
                || sdn.running.subnets != sdn.current.subnets,
            || "SDN changes left pending".into(),
        );
        let zones: BTreeSet<String> = sdn.running.zones.keys().cloned().collect();
        let mut want_zones: BTreeSet<String> =
            tag_table.keys().map(|t| format!("olz{t}")).collect();
        want_zones.insert("olbp".into());
        check(p, zones != want_zones, || {
            format!("zones {zones:?}, expected {want_zones:?}")
        });
        let vnets: BTreeSet<String> = sdn.running.vnets.keys().cloned().collect();
        let mut want_vnets: BTreeSet<String> =
            tag_table.keys().map(|t| format!("olvn{t}")).collect();
        want_vnets.insert("olbpnet".into());
        check(p, vnets != want_vnets, || {
            format!("vnets {vnets:?}, expected {want_vnets:?}")
        });
        let mut vnis: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for (id, vnet) in &sdn.running.vnets {
            let tag = vnet
                .get("tag")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(-1);
            vnis.entry(tag).or_default().push(id.clone());
            if let Some(number) = id.strip_prefix("olvn") {
                check(p, number != tag.to_string(), || {
                    format!("vnet {id} carries VNI {tag}")
                });
            }
        }
        for zone in sdn.running.zones.values() {
            if let Some(vrf) = zone.get("vrf-vxlan").and_then(serde_json::Value::as_i64) {
                vnis.entry(vrf).or_default().push("evpn zone vrf".into());
            }
        }
        for (vni, users) in &vnis {
            check(p, users.len() > 1, || {
                format!("VNI {vni} used by {users:?}")
            });
        }
        let subnet_vnets: BTreeSet<String> = sdn
            .running
            .subnets
            .values()
            .filter_map(|s| s.get("vnet").and_then(|v| v.as_str()).map(str::to_owned))
            .collect();
        check(p, subnet_vnets != want_vnets, || {
            format!("subnets on vnets {subnet_vnets:?}, expected on {want_vnets:?}")
        });
        let mut per_sector: BTreeMap<String, usize> = BTreeMap::new();
        let mut per_instance: BTreeMap<String, Vec<InstanceSeen>> = BTreeMap::new();
        let mut per_bridge: BTreeMap<(String, String), Vec<u32>> = BTreeMap::new();
        for (vmid, guest) in &st.guests {
            let description = guest.config.get("description").cloned().unwrap_or_default();
            match marked_for(&description) {
                Some(MarkedFor::Sector(name)) if expected.contains(name) => {
                    *per_sector.entry(name.to_owned()).or_default() += 1;
                }
                Some(MarkedFor::Instance(name)) if instances.contains(name) => {
                    per_instance
                        .entry(name.to_owned())
                        .or_default()
                        .push(InstanceSeen {
                            vmid: *vmid,
                            node: guest.node.clone(),
                            nic: guest.config.get("net0").and_then(|v| nic(v)),
                        });
                }
                other => p.push(format!(
                    "orphan container {vmid} ({other:?}): {description:?}"
                )),
            }
            check(
                p,
                guest.status != orbitlab_sim::pve::state::PowerState::Running,
                || format!("container {vmid} is not running"),
            );
            for (key, value) in &guest.config {
                if key.starts_with("net")
                    && let Some(pair) = nic(value)
                {
                    per_bridge.entry(pair).or_default().push(*vmid);
                }
            }
        }
        for name in expected {
            let n = per_sector.get(name).copied().unwrap_or(0);
            check(p, n != 2, || {
                format!("Sector {name} has {n} containers, expected a gateway and a DNS")
            });
        }
        for ((bridge, ip), vmids) in &per_bridge {
            check(p, vmids.len() > 1, || {
                format!("address {ip} on {bridge} held by containers {vmids:?}")
            });
        }
        // Exactly one container per instance, on its Sector's vnet.
        let mut seen = BTreeMap::new();
        for name in instances {
            let found = per_instance.remove(name).unwrap_or_default();
            let [one] = found.as_slice() else {
                p.push(format!(
                    "instance {name} has {} containers, expected one: {found:?}",
                    found.len()
                ));
                continue;
            };
            let vnet = instance_sectors.get(name).and_then(|sector| {
                tag_table
                    .iter()
                    .find(|(_, s)| *s == sector)
                    .map(|(tag, _)| format!("olvn{tag}"))
            });
            let bridge = one.nic.as_ref().map(|(bridge, _)| bridge);
            check(p, vnet.is_none() || bridge != vnet.as_ref(), || {
                format!(
                    "instance {name}'s container {} has net0 on {bridge:?}, expected its Sector's vnet {vnet:?}",
                    one.vmid
                )
            });
            seen.insert(name.clone(), one.clone());
        }
        (st.guests.len(), per_bridge.len(), seen)
    });
    match observe(&lab.pve, &lab.store, "vmbr0") {
        Ok(observed) => {
            let mut holders: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
            let mut instance_addresses: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (owner, by_pool) in &observed.addresses {
                let alive = if let Some(name) = owner.as_str().strip_prefix("lxc/") {
                    instance_addresses
                        .entry(name.to_owned())
                        .or_default()
                        .extend(by_pool.values().map(ToString::to_string));
                    instances.contains(name)
                } else {
                    owner
                        .as_str()
                        .strip_prefix("sector/")
                        .and_then(|rest| rest.split('/').next())
                        .is_none_or(|sector| expected.contains(sector))
                };
                check(p, !alive, || {
                    format!("IPAM address held by {owner}, whose object is gone")
                });
                for (pool, addr) in by_pool {
                    holders
                        .entry((pool.to_string(), addr.to_string()))
                        .or_default()
                        .push(owner.to_string());
                }
            }
            for ((pool, addr), owners) in holders {
                check(p, owners.len() > 1, || {
                    format!("IPAM {pool}: {addr} held by {owners:?}")
                });
            }
            for (name, one) in &seen {
                let held = instance_addresses.get(name).cloned().unwrap_or_default();
                let ip = one.nic.as_ref().map(|(_, ip)| ip.clone());
                check(p, held.len() != 1 || Some(&held[0]) != ip.as_ref(), || {
                    format!(
                        "instance {name} holds IPAM addresses {held:?}, expected exactly its container {}'s {ip:?}",
                        one.vmid
                    )
                });
            }
        }
        Err(e) => p.push(format!("cannot observe: {e}")),
    }
    for (name, one) in &seen {
        let status = name
            .parse()
            .ok()
            .and_then(|n| lab.store.read_status(Kind::Lxc, &n).ok().flatten());
        let outputs = status.map(|s| s.outputs).unwrap_or_default();
        let ip = one.nic.as_ref().map(|(_, ip)| ip.clone());
        check(
            p,
            outputs.get("vmid") != Some(&one.vmid.to_string())
                || outputs.get("node") != Some(&one.node)
                || outputs.get("address") != ip.as_ref(),
            || {
                format!(
                    "instance {name}'s status outputs {outputs:?} do not name its container {} on {} at {ip:?}",
                    one.vmid, one.node
                )
            },
        );
    }
    if problems.is_empty() {
        Ok(Audit {
            sectors: expected.len(),
            instances: instances.len(),
            containers,
            addresses,
        })
    } else {
        Err(problems)
    }
}
