//! Whole-process figures of `orbitlab-agent` (release build), three agents
//! on the pmxcfs simulator against the PVE simulator with no added latency
//! (tasks take 0 ms). Needs root (FUSE).
//!
//! 1. Idle: after a Sector is Ready, each agent's resident memory and CPU
//!    time (user + system, from `/proc/PID/stat`) over one minute, with the
//!    production timings (poll 2 s, resync 60 s, lock renewal 20 s).
//! 2. `apply` → Ready: the time from writing a Sector manifest (the API
//!    `orbitlab apply` uses) until its status says Ready, and how much of it
//!    is the agents' own work: their CPU time (including the `pct` programs
//!    they ran) and the wall time they spent inside reconciles (from their
//!    metrics, summed over the agents, which overlap); the rest is waiting
//!    for the next poll and handing over between nodes. Measured with poll
//!    intervals of 2 s (the default) and 200 ms.
//! 3. The idle minute again without a resync in it: the cost of polling
//!    alone.
//!
//! Run: `cargo bench -p orbitlab-tests --bench agent`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use orbitlab_engine::api::{ApiPath, PropertyValue};
use orbitlab_manifests::Kind;
use orbitlab_tests::multinode::{ClusterOptions, MultiNode, wait_for};
use orbitlab_tests::{NODES, test_programs};

/// CPU time of a process from `/proc/PID/stat`: (own, waited-for children).
fn cpu(pid: &str) -> (Duration, Duration) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .expect("stat format")
        .1
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = clock_ticks();
    let t = |n: u64| Duration::from_secs_f64(n as f64 / ticks);
    // After the command name: field 3 is index 0; utime 14, stime 15,
    // cutime 16, cstime 17.
    (t(fields[11] + fields[12]), t(fields[13] + fields[14]))
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// `VmRSS`, `VmHWM`, `RssAnon` and `RssFile` in KiB. `RssFile` is mostly
/// the agent's own executable: how much of it is mapped depends on the
/// page cache (fault-around maps neighbouring cached pages), so `RssAnon`
/// is the figure that follows the agent's own memory use.
fn memory(pid: u32) -> (u64, u64, u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (
        field("VmRSS:"),
        field("VmHWM:"),
        field("RssAnon:"),
        field("RssFile:"),
    )
}

fn agents_cpu(lab: &MultiNode) -> Duration {
    NODES
        .iter()
        .map(|n| {
            let (own, children) = cpu(&lab.agent_pid(n).unwrap().to_string());
            own + children
        })
        .sum()
}

fn reconciling(lab: &MultiNode) -> f64 {
    NODES
        .iter()
        .flat_map(|n| ["cluster", "node"].map(|scope| (n, scope)))
        .map(|(n, scope)| {
            let text = lab.metrics(n);
            let name =
                format!("orbitlab_agent_reconcile_duration_seconds_sum{{scope=\"{scope}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&name))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        })
        .sum()
}

fn create(lab: &MultiNode, name: &str) {
    let props = PropertyValue::from_pairs([("name", name), ("cidr", "172.16.0.0/24")]).unwrap();
    lab.api()
        .create(&"/sectors".parse::<ApiPath>().unwrap(), props)
        .unwrap();
}

fn ready(lab: &MultiNode, name: &str) -> bool {
    lab.store
        .read_status(Kind::Sector, &name.parse().unwrap())
        .ok()
        .flatten()
        .is_some_and(|s| s.phase() == "Ready")
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Several Sectors one after the other, each timed from apply to Ready.
fn apply_to_ready(lab: &MultiNode, label: &str, prefix: &str, runs: usize) {
    let (mut walls, mut cpus, mut inside, mut calls) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        let name = format!("{prefix}{i}");
        let (cpu_before, inside_before, requests_before) =
            (agents_cpu(lab), reconciling(lab), lab.sim.requests().len());
        let started = Instant::now();
        create(lab, &name);
        wait_for(Duration::from_secs(120), || ready(lab, &name).then_some(()))
            .expect("the Sector becomes Ready");
        let wall = started.elapsed();
        // Let the last reconciles finish before reading the counters.
        std::thread::sleep(Duration::from_millis(300));
        walls.push(wall.as_secs_f64());
        cpus.push((agents_cpu(lab) - cpu_before).as_secs_f64());
        inside.push(reconciling(lab) - inside_before);
        calls.push((lab.sim.requests().len() - requests_before) as f64);
    }
    let (wall, cpu, inside) = (median(walls.clone()), median(cpus), median(inside));
    println!(
        "apply -> Ready, {label}: median {:.0} ms over {runs} Sectors (min {:.0}, max {:.0}); agents' CPU {:.0} ms ({:.0} % of the wall time); \
         time inside reconciles summed over the three agents {:.0} ms (they overlap); {:.0} Proxmox requests",
        wall * 1e3,
        walls.iter().copied().fold(f64::INFINITY, f64::min) * 1e3,
        walls.iter().copied().fold(0.0, f64::max) * 1e3,
        cpu * 1e3,
        100.0 * cpu / wall,
        inside * 1e3,
        median(calls),
    );
}

/// `count` instances in Sector `sector` applied in one `orbitlab apply`,
/// timed until every one is Ready, with the agents' CPU time and the
/// Proxmox requests it took.
fn instances_at_once(lab: &MultiNode, sector: &str, count: usize) {
    let yaml: Vec<String> = (0..count)
        .map(|i| {
            format!(
                "apiVersion: orbitlab.io/v1\nkind: Lxc\nmetadata:\n  name: n{i:03}\nspec:\n  sector: {sector}\n  template: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n  memory: 128\n"
            )
        })
        .collect();
    let documents = orbitlab_manifests::codec::decode("instances.yaml", &yaml.join("---\n"))
        .expect("the manifests decode");
    let (cpu_before, requests_before) = (agents_cpu(lab), lab.sim.requests().len());
    let started = Instant::now();
    lab.api().apply(documents).expect("apply");
    let all_ready = || {
        (0..count).all(|i| {
            lab.store
                .read_status(Kind::Lxc, &format!("n{i:03}").parse().unwrap())
                .ok()
                .flatten()
                .is_some_and(|s| s.is_ready())
        })
    };
    wait_for(Duration::from_secs(600), || all_ready().then_some(()))
        .expect("every instance becomes Ready");
    let wall = started.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    println!(
        "{count} instances applied at once -> all Ready: {:.1} s; agents' CPU {:.2} s; {} Proxmox requests ({:.1} per instance)",
        wall.as_secs_f64(),
        (agents_cpu(lab) - cpu_before).as_secs_f64(),
        lab.sim.requests().len() - requests_before,
        (lab.sim.requests().len() - requests_before) as f64 / count as f64,
    );
}

/// Each agent's CPU time and memory over one idle minute.
fn idle_minute(lab: &MultiNode, label: &str) {
    let minute = Duration::from_secs(60);
    let before: Vec<Duration> = NODES
        .iter()
        .map(|n| cpu(&lab.agent_pid(n).unwrap().to_string()).0)
        .collect();
    let (bench_before, _) = cpu("self");
    std::thread::sleep(minute);
    let (bench_after, _) = cpu("self");
    for (node, before) in NODES.iter().zip(before) {
        let pid = lab.agent_pid(node).unwrap();
        let used = cpu(&pid.to_string()).0 - before;
        let (rss, hwm, anon, file) = memory(pid);
        let mib = |kib: u64| kib as f64 / 1024.0;
        println!(
            "idle agent {node}, {label}: {:.0} ms CPU over 60 s ({:.3} % of one core); RSS {:.1} MiB (peak {:.1} MiB; anonymous {:.1} MiB, file-backed {:.1} MiB)",
            used.as_secs_f64() * 1e3,
            100.0 * used.as_secs_f64() / minute.as_secs_f64(),
            mib(rss),
            mib(hwm),
            mib(anon),
            mib(file),
        );
    }
    println!(
        "idle simulators (PVE API and pmxcfs, this process), {label}: {:.0} ms CPU over 60 s",
        (bench_after - bench_before).as_secs_f64() * 1e3
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches` runs benches once as tests: nothing to check here.
    }
    let production = ClusterOptions {
        lock_timeout: Duration::from_secs(120),
        lock_renew: Duration::from_secs(20),
        task_duration: Duration::ZERO,
        poll: Duration::from_secs(2),
        resync: Duration::from_secs(60),
        backoff_max: Duration::from_secs(60),
        metrics: true,
        heartbeat: Duration::from_secs(5),
        ..ClusterOptions::default()
    };
    let mut lab = MultiNode::start(test_programs!(), production.clone());
    lab.start_agents();
    create(&lab, "idle");
    lab.wait_converged(
        &BTreeSet::from(["idle".to_owned()]),
        Duration::from_secs(120),
    )
    .expect("converges");
    std::thread::sleep(Duration::from_secs(5));

    // `ORBITLAB_BENCH_SKIP_IDLE=1`: only the apply figures.
    let idle = std::env::var_os("ORBITLAB_BENCH_SKIP_IDLE").is_none();
    if idle {
        idle_minute(&lab, "resync every 60 s (default)");
    }
    // `ORBITLAB_BENCH_LOGS=FILE` keeps the agents' logs of the idle minute
    // (with `ORBITLAB_TEST_AGENT_LOG=debug`, what each resync did).
    if let Some(file) = std::env::var_os("ORBITLAB_BENCH_LOGS") {
        std::fs::write(file, lab.agent_logs()).expect("write the agents' logs");
        if std::env::var_os("ORBITLAB_BENCH_IDLE_ONLY").is_some() {
            return;
        }
    }
    // The same without a resync in the minute: the cost of polling alone.
    lab.stop_agents();
    lab.options.resync = Duration::from_secs(3600);
    lab.start_agents();
    std::thread::sleep(Duration::from_secs(5));
    if idle {
        idle_minute(&lab, "no resync in the minute (polling only)");
    }
    lab.stop_agents();
    lab.options.resync = Duration::from_secs(60);
    lab.start_agents();
    std::thread::sleep(Duration::from_secs(5));

    apply_to_ready(&lab, "poll 2 s (default)", "d", 5);
    instances_at_once(&lab, "idle", 100);
    lab.stop_agents();
    drop(lab);

    let fast = ClusterOptions {
        poll: Duration::from_millis(200),
        ..production
    };
    let mut lab = MultiNode::start(test_programs!(), fast);
    lab.start_agents();
    create(&lab, "warm");
    lab.wait_converged(
        &BTreeSet::from(["warm".to_owned()]),
        Duration::from_secs(120),
    )
    .expect("converges");
    apply_to_ready(&lab, "poll 200 ms", "f", 5);
    lab.stop_agents();
}
