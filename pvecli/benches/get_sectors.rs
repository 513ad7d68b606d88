//! Whole-process benchmark: `orbitlab get /sectors --output-format json`
//! with 1,000 Sectors (manifest and status each) stored.
//!
//! Run: `cargo bench -p orbitlab-pvecli --bench get_sectors`.

mod support;

use std::process::Command;

use support::measure;

use orbitlab_engine::status::{ConditionType, ObjectStatus};
use orbitlab_engine::store::Store;
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
    // As on a node (/var/cache/orbitlab): a cache of decoded manifests.
    let cache = tempfile::tempdir().expect("temporary directory");
    measure(
        &format!("orbitlab get /sectors --output-format json, {SECTORS} Sectors stored"),
        RUNS,
        |_| {
            let output = Command::new(exe)
                .arg("--root")
                .arg(dir.path())
                .args(["get", "/sectors", "--output-format", "json"])
                .env("ORBITLAB_CACHE_DIR", cache.path())
                .output()
                .expect("run orbitlab");
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            let listed: serde_json::Value =
                serde_json::from_slice(&output.stdout).expect("JSON output");
            assert_eq!(listed.as_array().map(Vec::len), Some(SECTORS));
        },
    );
}
