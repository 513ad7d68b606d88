//! Pools' figures for BENCHMARKS.md, on a simulated 3-node cluster with
//! the agents' work run in this process as their loops would, one round
//! every 250 ms (each node's health checks, then the owner's cluster-scoped
//! reconcile and the other nodes' node-scoped ones):
//!
//! - detection → replacement Ready: a member's service stops answering
//!   (health check every 2 s, unhealthy after 2 failures); the time until
//!   the replacement is recorded, and until the pool is Ready without the
//!   old member; and a member destroyed until it is made again and healthy;
//! - the scaling decision's latency: CPU load applied until the owner
//!   records the new member count (the declared window, 2 s, included), and
//!   the pure decision's cost for a pool of 200 members;
//! - health checking 200 members: the gateway's side (the real helper,
//!   `orbitlab-appliance probe`, checking 200 TCP targets on loopback:
//!   wall time and CPU of one round) and the Proxmox requests a minute of
//!   checks and of the owner's looks at the pool cost.
//!
//! Run: `cargo bench -p orbitlab-tests --bench pools`.

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use orbitlab_engine::api::Api;
use orbitlab_engine::pool;
use orbitlab_engine::reconcile::init::init;
use orbitlab_manifests::{Kind, codec};
use orbitlab_tests::{Lab, NODES};

const TEMPLATE: &str = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";
const TICK: Duration = Duration::from_millis(250);

fn manifests(pool: &str) -> String {
    format!(
        "apiVersion: orbitlab.io/v1\nkind: Sector\nmetadata: {{name: apps}}\nspec: {{cidr: 172.16.0.0/22}}\n---\n\
         apiVersion: orbitlab.io/v1\nkind: Pool\nmetadata: {{name: web}}\nspec:\n{pool}\n"
    )
}

/// A simulated cluster whose store root also holds what pmxcfs generates
/// (`.vmlist` lets observations reuse what they read of unchanged
/// containers, as on a real node), with `pool` applied.
fn lab_with(pool: &str) -> Lab {
    let lab = Lab::with_pmxcfs_files();
    for node in NODES {
        lab.sim.set_node_resources(node, 512 << 30, 64);
    }
    let host = lab.host("pve1");
    init(&lab.reconciler(&host), None).expect("init");
    Api::new(lab.store.clone())
        .apply(codec::decode("bench.yaml", &manifests(pool)).unwrap())
        .unwrap();
    lab
}

fn tick(lab: &Lab) {
    let now = pool::unix(std::time::SystemTime::now());
    for node in NODES {
        let host = lab.host(node);
        pool::probe::run(&lab.store, &host, &node.parse().unwrap(), now).unwrap();
    }
    lab.converge_as_agents("pve1");
}

fn record(lab: &Lab) -> pool::PoolRecord {
    pool::read_records(&lab.store)
        .unwrap()
        .remove(&"web".parse::<orbitlab_manifests::Name>().unwrap())
        .unwrap_or_default()
}

fn ready(lab: &Lab) -> bool {
    lab.store
        .read_status(Kind::Pool, &"web".parse().unwrap())
        .unwrap()
        .is_some_and(|s| s.is_ready())
}

/// Ticks until `done`; the time from `start`.
fn until(lab: &Lab, start: Instant, what: &str, mut done: impl FnMut(&Lab) -> bool) -> Duration {
    while !done(lab) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{what}: not within 120 s"
        );
        std::thread::sleep(TICK);
        tick(lab);
    }
    start.elapsed()
}

fn s(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn replacement() {
    let lab = lab_with(&format!(
        "  instance: {{sector: apps, template: '{TEMPLATE}', memory: 64}}\n  replicas: 4\n  \
         health: {{tcp: {{port: 80}}, interval: 2s, timeout: 1s, unhealthy_after: 2}}"
    ));
    until(&lab, Instant::now(), "the pool is Ready", ready);
    for run in 1..=3 {
        let rec = record(&lab);
        let (&n, member) = rec.members.iter().next().unwrap();
        let vmid = member.vmid.unwrap();
        let start = Instant::now();
        lab.sim.set_service(vmid, false, 200);
        let detected = until(&lab, start, "replacement recorded", |lab| {
            record(lab)
                .members
                .get(&n)
                .is_some_and(|m| m.retiring.is_some())
        });
        let replaced = until(&lab, start, "replacement Ready", |lab| {
            !record(lab).members.contains_key(&n) && ready(lab)
        });
        println!(
            "replacement run {run}: service down -> replacement recorded {}, -> pool Ready without the old member {}",
            s(detected),
            s(replaced)
        );
    }
    for run in 1..=3 {
        let rec = record(&lab);
        let (&n, member) = rec.members.iter().next().unwrap();
        let start = Instant::now();
        lab.sim.kill(member.vmid.unwrap());
        let remade = until(&lab, start, "member made again", |lab| {
            let health = pool::read_health(&lab.store).unwrap();
            let name = pool::member_name(&"web".parse().unwrap(), n);
            let rec = record(lab);
            ready(lab)
                && rec.events.iter().filter(|e| e.what == "remade").count() >= run
                && health.get(&name).is_some_and(|h| h.healthy)
        });
        println!(
            "destroyed member run {run}: container destroyed -> made again, healthy, pool Ready {}",
            s(remade)
        );
    }
}

fn scaling() {
    let lab = lab_with(&format!(
        "  instance: {{sector: apps, template: '{TEMPLATE}', memory: 64}}\n  \
         autoscale: {{min: 2, max: 4, cpu: 50, scale_up_after: 2s, scale_down_after: 2s}}"
    ));
    until(&lab, Instant::now(), "the pool is Ready", ready);
    for (load, want) in [(0.9, 4), (0.0, 2)] {
        let start = Instant::now();
        lab.sim.set_load("web-", load);
        let decided = until(&lab, start, "scaling decision", |lab| {
            record(lab).replicas == want
        });
        let done = until(&lab, start, "scaled", |lab| {
            ready(lab) && record(lab).members.len() == usize::from(want)
        });
        println!(
            "scaling to {want}: load {load} applied -> decision recorded {} (window 2 s included), -> pool Ready at {want} members {}; decision: {}",
            s(decided),
            s(done),
            record(&lab)
                .events
                .iter()
                .rev()
                .find(|e| e.what == "scale")
                .map(|e| e.detail.clone())
                .unwrap_or_default()
        );
    }
}

/// The real helper checking `targets` TCP targets on a loopback listener:
/// wall time and CPU (user + system of the helper and its children).
fn gateway_round(targets: usize) -> (Duration, Duration) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
        }
    });
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc/orbitlab")).unwrap();
    std::fs::write(root.path().join("etc/orbitlab/role"), "gateway\n").unwrap();
    let helper = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../appliances/helper/orbitlab-appliance"
    );
    let args: Vec<String> = (0..targets)
        .map(|_| format!("tcp:127.0.0.1:{port}"))
        .collect();
    let before = children_cpu();
    let start = Instant::now();
    let out = Command::new("sh")
        .arg(helper)
        .args(["probe", "2"])
        .args(&args)
        .env("ORBITLAB_APPLIANCE_ROOT", root.path())
        .output()
        .unwrap();
    let wall = start.elapsed();
    let after = children_cpu();
    let ok = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("ok "))
        .count();
    assert_eq!(ok, targets, "{}", String::from_utf8_lossy(&out.stderr));
    (wall, after - before)
}

/// User + system CPU of this process's waited-for children
/// (`/proc/self/stat` cutime and cstime, in clock ticks of 10 ms).
fn children_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 16 and 17 of stat(5), counted from 3 after the name.
    let ticks: u64 = fields[13].parse::<u64>().unwrap() + fields[14].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

fn health_cost() {
    for targets in [20, 200] {
        let mut rounds: Vec<(Duration, Duration)> =
            (0..3).map(|_| gateway_round(targets)).collect();
        rounds.sort();
        let (wall, cpu) = rounds[1];
        println!(
            "gateway: one round of {targets} TCP checks (real helper, loopback): wall {:.0} ms, CPU {:.0} ms; at a 10 s interval {:.2} CPU-seconds a minute",
            wall.as_secs_f64() * 1000.0,
            cpu.as_secs_f64() * 1000.0,
            cpu.as_secs_f64() * 6.0
        );
    }
    // 200 members in the simulator: what checks and the owner's looks ask
    // of Proxmox.
    let started = Instant::now();
    let lab = lab_with(&format!(
        "  instance: {{sector: apps, template: '{TEMPLATE}', memory: 16, disk: 1}}\n  replicas: 200\n  \
         health: {{tcp: {{port: 80}}, interval: 2s, timeout: 1s}}"
    ));
    until(&lab, Instant::now(), "200 members Ready", ready);
    println!(
        "200 members made, checked and Ready in {}",
        s(started.elapsed())
    );
    lab.sim.clear_requests();
    let now = pool::unix(std::time::SystemTime::now()) + 10;
    let mut checked = 0;
    for node in NODES {
        let host = lab.host(node);
        checked += pool::probe::run(&lab.store, &host, &node.parse().unwrap(), now)
            .unwrap()
            .checked;
    }
    let by_checks = lab.sim.requests().len();
    lab.sim.clear_requests();
    let host = lab.host("pve1");
    let start = Instant::now();
    let report = lab.reconciler(&host).run().unwrap();
    let look = start.elapsed();
    let requests = lab.sim.requests();
    let by_look = requests.len();
    let mut kinds: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for r in &requests {
        let path: Vec<&str> = r
            .path
            .split('/')
            .map(|seg| {
                if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
                    "{vmid}"
                } else {
                    seg
                }
            })
            .collect();
        *kinds
            .entry(format!("{} {}", r.method, path.join("/")))
            .or_default() += 1;
    }
    println!("requests of one look, by kind: {kinds:?}");
    println!(
        "200 members: one round of checks ({checked} checked) sent {by_checks} requests to Proxmox; one look of the owner (a reconcile pass, {} steps) sent {by_look} requests in {:.0} ms: at --pool-interval 10s, {} requests a minute",
        report.steps,
        look.as_secs_f64() * 1000.0,
        by_look * 6
    );
    // The pure decision for 200 members.
    let desired = orbitlab_engine::reconcile::Reconciler {
        pve: &lab.pve,
        store: &lab.store,
        host: &host,
        options: Default::default(),
    };
    let (_, observed) = desired.plan().unwrap();
    let d = desired.desired().unwrap();
    let mut times = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        let plan = orbitlab_engine::reconcile::plan(&d, &observed);
        times.push(start.elapsed());
        assert!(plan.ready().iter().any(|o| o.kind == Kind::Pool));
    }
    times.sort();
    println!(
        "the whole plan with a 200-member pool (pure, every kind): median {:.1} ms",
        times[10].as_secs_f64() * 1000.0
    );
}

fn main() {
    replacement();
    scaling();
    health_cost();
}
