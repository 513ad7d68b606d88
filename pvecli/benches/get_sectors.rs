//! Whole-process benchmark: `orbitlab get /sectors --output-format json`
//! with 1,000 Sectors (manifest and status each) stored.
//!
//! Run: `cargo bench -p orbitlab-pvecli --bench get_sectors`.

use std::process::Command;
use std::time::{Duration, Instant};

use orbitlab_agent::status::{ConditionType, ObjectStatus};
use orbitlab_agent::store::Store;
use orbitlab_manifests::{Manifest, Name, SectorSpec};

const SECTORS: usize = 1_000;
const RUNS: usize = 30;

fn main() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = Store::open(dir.path());
    for i in 0..SECTORS {
        let name: Name = format!("sector-{i:04}").parse().expect("valid name");
        let cidr = format!("10.{}.{}.0/24", i / 256, i % 256)
            .parse()
            .expect("valid cidr");
        store
            .write_manifest(&Manifest::new(name.clone(), SectorSpec::new(cidr)))
            .expect("write manifest");
        let mut status = ObjectStatus::default();
        status.set_condition(ConditionType::Ready, true, "Applied", "everything exists");
        status
            .outputs
            .insert("vnet".into(), format!("olvn{}", 1001 + i));
        store
            .write_status(orbitlab_manifests::Kind::Sector, &name, &status)
            .expect("write status");
    }
    let exe = env!("CARGO_BIN_EXE_orbitlab");
    let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
    for run in 0..=RUNS {
        let started = Instant::now();
        let output = Command::new(exe)
            .args(["--root"])
            .arg(dir.path())
            .args(["get", "/sectors", "--output-format", "json"])
            .output()
            .expect("run orbitlab");
        let elapsed = started.elapsed();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let listed: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("JSON output");
        assert_eq!(listed.as_array().map(Vec::len), Some(SECTORS));
        if run > 0 {
            // The first run warms the page cache.
            times.push(elapsed);
        }
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "orbitlab get /sectors --output-format json, {SECTORS} Sectors stored, {RUNS} runs: min {:.1} ms, median {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        ms(times[0]),
        ms(times[RUNS / 2]),
        ms(times[RUNS * 9 / 10]),
        ms(times[RUNS - 1])
    );
}
