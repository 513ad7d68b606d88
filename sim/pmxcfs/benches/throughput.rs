//! Throughput of the pmxcfs simulator through its FUSE mount, next to the
//! same operations on the local filesystem holding the temporary directory.
//!
//! Run: `cargo bench -p orbitlab-pmxcfs-sim --bench throughput` (needs root
//! and /dev/fuse). Prints one line per operation: count, total time,
//! operations per second and mean latency.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use orbitlab_pmxcfs_sim::{PmxcfsSim, SimOptions};

const SMALL: usize = 1024;

struct Figure {
    name: &'static str,
    ops: usize,
    took: Duration,
}

fn measure(name: &'static str, ops: usize, mut f: impl FnMut(usize)) -> Figure {
    let start = Instant::now();
    for i in 0..ops {
        f(i);
    }
    Figure {
        name,
        ops,
        took: start.elapsed(),
    }
}

/// The same workload on any directory tree that has `priv/lock`.
fn workload(root: &Path) -> Vec<Figure> {
    fs::create_dir_all(root.join("priv/lock")).unwrap();
    fs::create_dir_all(root.join("orbitlab/status")).unwrap();
    let body = vec![b'x'; SMALL];
    let target = root.join("orbitlab/status/sector.yaml");
    fs::write(&target, &body).unwrap();
    let lock = root.join("priv/lock/orbitlab-bench");
    let mut out = vec![
        measure("write 1 KiB tmp + rename", 2000, |i| {
            let tmp = root.join(format!("orbitlab/status/sector.yaml.tmp.{i}"));
            fs::write(&tmp, &body).unwrap();
            fs::rename(&tmp, &target).unwrap();
        }),
        measure("read 1 KiB file", 5000, |_| {
            assert_eq!(fs::read(&target).unwrap().len(), SMALL);
        }),
        measure("stat", 10000, |_| {
            fs::metadata(&target).unwrap();
        }),
        measure("lock acquire + release (mkdir, rmdir)", 5000, |_| {
            fs::create_dir(&lock).unwrap();
            fs::remove_dir(&lock).unwrap();
        }),
    ];
    // Four threads contend for one lock, each holding it for a
    // read-modify-write of a counter file.
    let counter = root.join("orbitlab/counter");
    fs::write(&counter, "0").unwrap();
    const THREADS: usize = 4;
    const ROUNDS: usize = 250;
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (lock, counter) = (&lock, &counter);
            s.spawn(move || {
                for i in 0..ROUNDS {
                    while fs::create_dir(lock).is_err() {
                        std::thread::yield_now();
                    }
                    let n: usize = fs::read_to_string(counter).unwrap().parse().unwrap();
                    let tmp = counter.with_extension(format!("tmp.{t}.{i}"));
                    fs::write(&tmp, (n + 1).to_string()).unwrap();
                    fs::rename(&tmp, counter).unwrap();
                    fs::remove_dir(lock).unwrap();
                }
            });
        }
    });
    out.push(Figure {
        name: "4 threads: locked counter increment",
        ops: THREADS * ROUNDS,
        took: start.elapsed(),
    });
    let n: usize = fs::read_to_string(&counter).unwrap().parse().unwrap();
    assert_eq!(n, THREADS * ROUNDS, "lost updates");
    out
}

fn print(title: &str, figures: &[Figure]) {
    println!("\n{title}");
    println!(
        "{:<42} {:>7} {:>10} {:>10} {:>10}",
        "operation", "ops", "total ms", "ops/s", "µs/op"
    );
    for f in figures {
        let secs = f.took.as_secs_f64();
        println!(
            "{:<42} {:>7} {:>10.1} {:>10.0} {:>10.1}",
            f.name,
            f.ops,
            secs * 1e3,
            f.ops as f64 / secs,
            secs * 1e6 / f.ops as f64
        );
    }
}

fn main() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mnt = dir.path().join("pve");
    fs::create_dir(&mnt).unwrap();
    let handle = PmxcfsSim::mount(&mnt, SimOptions::default())
        .unwrap_or_else(|e| panic!("the benchmark needs FUSE: {e}"));
    let sim = workload(handle.mountpoint());
    handle.unmount().expect("unmount");
    let local_root = dir.path().join("local");
    let local = workload(&local_root);
    print("pmxcfs simulator (FUSE, 4 worker threads)", &sim);
    print(
        &format!("local filesystem ({})", local_root.display()),
        &local,
    );
}
