//! Load benchmark: decode and validate 10,000 manifests.
//!
//! Generates 1,000 Sectors (two subnets and one ingress rule each) and
//! 9,000 Lxc instances referring to them (subnet, SSH key, password), plus
//! the SSH key and Secret they use, each as its own YAML text — the shape of
//! `orbitlab/manifests/<kind>/<name>.yaml` in the store. Then times, over
//! several runs, `decode` of every text and `ManifestSet::new` over the
//! result, and prints the median and the spread.
//!
//! Run: `cargo bench -p orbitlab-manifests` (release profile). Uses only
//! `std::time`; no benchmark framework.

use std::hint::black_box;
use std::time::{Duration, Instant};

use orbitlab_manifests::{Manifest, ManifestSet, Sourced, decode, decode_all};

const SECTORS: usize = 1_000;
const INSTANCES: usize = 9_000;
const RUNS: usize = 9;

fn sector(i: usize) -> String {
    let (a, b) = (i / 200, i % 200);
    format!(
        "apiVersion: orbitlab.io/v1
kind: Sector
metadata:
  name: sector-{i}
  labels:
    tier: bench
spec:
  alias: Bench sector {i}
  cidr: 10.{a}.{b}.0/24
  subnets:
    - name: front
      cidr: 10.{a}.{b}.0/25
    - name: back
      cidr: 10.{a}.{b}.128/25
  ingress:
    - name: https
      protocol: tcp
      port: 443
      to_instance: lxc-{i}
"
    )
}

fn lxc(i: usize) -> String {
    let sector = i % SECTORS;
    let subnet = if i.is_multiple_of(2) { "front" } else { "back" };
    format!(
        "apiVersion: orbitlab.io/v1
kind: Lxc
metadata:
  name: lxc-{i}
spec:
  sector: sector-{sector}
  subnet: {subnet}
  template: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst
  cores: 2
  memory: 1024
  disk: 8
  ssh_keys: [deploy]
  password: root-password
"
    )
}

fn texts() -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(SECTORS + INSTANCES + 2);
    out.push((
        "ssh_key/deploy.yaml".to_owned(),
        "apiVersion: orbitlab.io/v1\nkind: SshKey\nmetadata:\n  name: deploy\nspec:\n  algorithm: ed25519\n".to_owned(),
    ));
    out.push((
        "secret/root-password.yaml".to_owned(),
        "apiVersion: orbitlab.io/v1\nkind: Secret\nmetadata:\n  name: root-password\nspec:\n  type: password\n"
            .to_owned(),
    ));
    for i in 0..SECTORS {
        out.push((format!("sector/sector-{i}.yaml"), sector(i)));
    }
    for i in 0..INSTANCES {
        out.push((format!("lxc/lxc-{i}.yaml"), lxc(i)));
    }
    out
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Figures of one way of decoding.
struct Figures {
    /// On-CPU time of the measuring thread per run (None if unknown).
    cpu: Vec<Option<Duration>>,
    decode: Vec<Duration>,
    set: Vec<Duration>,
    total: Vec<Duration>,
    objects: usize,
}

fn measure(
    texts: &[(String, String)],
    decode_step: impl Fn(&[(String, String)]) -> Vec<Sourced<Manifest>>,
) -> Figures {
    let mut f = Figures {
        cpu: Vec::new(),
        decode: Vec::new(),
        set: Vec::new(),
        total: Vec::new(),
        objects: 0,
    };
    for _ in 0..RUNS {
        let cpu_start = thread_cpu();
        let start = Instant::now();
        let all = decode_step(texts);
        let decoded = Instant::now();
        let set = match ManifestSet::new(all) {
            Ok(set) => set,
            Err(e) => panic!("generated set refused: {e}"),
        };
        f.objects = black_box(set.dependency_order().len());
        let done = Instant::now();
        f.cpu.push(
            cpu_start
                .zip(thread_cpu())
                .map(|(a, b)| b.saturating_sub(a)),
        );
        f.decode.push(decoded - start);
        f.set.push(done - decoded);
        f.total.push(done - start);
    }
    f
}

/// Time this thread has spent on a CPU, from `/proc/thread-self/schedstat`
/// (nanoseconds): unlike wall time, it does not grow when other processes
/// compete for the cores.
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

fn report(title: &str, f: Figures, with_cpu: bool) {
    let lo = f.total.iter().min().copied().unwrap_or_default();
    let hi = f.total.iter().max().copied().unwrap_or_default();
    let total = median(f.total);
    println!("{title}");
    println!(
        "  decode                             median {:8.2} ms",
        ms(median(f.decode))
    );
    println!(
        "  ManifestSet::new (validate, refs)  median {:8.2} ms",
        ms(median(f.set))
    );
    println!(
        "  total                              median {:8.2} ms   (min {:.2}, max {:.2})",
        ms(total),
        ms(lo),
        ms(hi)
    );
    println!(
        "  per manifest                       median {:8.2} µs",
        total.as_secs_f64() * 1e6 / f.objects.max(1) as f64
    );
    let cpu: Option<Vec<Duration>> = f.cpu.into_iter().collect();
    if let (true, Some(cpu)) = (with_cpu, cpu) {
        println!(
            "  on-CPU time of the thread          median {:8.2} ms   (wall time minus waiting for a core)",
            ms(median(cpu))
        );
    }
}

fn main() {
    let texts = texts();
    let bytes: usize = texts.iter().map(|(_, t)| t.len()).sum();
    println!(
        "load: {} manifests ({SECTORS} Sectors, {INSTANCES} Lxc, 2 others; {} KiB of YAML in {} files), {RUNS} runs, {} cores",
        texts.len(),
        bytes / 1024,
        texts.len(),
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    let sequential = measure(&texts, |texts| {
        let mut all = Vec::with_capacity(texts.len());
        for (file, text) in texts {
            match decode(file, text) {
                Ok(docs) => all.extend(docs),
                Err(e) => panic!("generated manifest refused: {e}"),
            }
        }
        all
    });
    report(
        "one thread: decode() per file + ManifestSet::new",
        sequential,
        true,
    );
    let parallel = measure(&texts, |texts| match decode_all(texts) {
        Ok(all) => all,
        Err(e) => panic!("generated manifests refused: {e}"),
    });
    report(
        "all cores: decode_all() + ManifestSet::new",
        parallel,
        false,
    );
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average during the run: {}", load.trim());
    }
}
