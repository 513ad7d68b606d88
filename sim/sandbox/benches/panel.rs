//! The web UI panel's cost, for BENCHMARKS.md:
//!
//! - its download: `ui/build/orbitlab.js` as the package ships it
//!   (concatenated, as `ui/Makefile` builds it), gzip -9'd, minified with
//!   terser (from `ui/test-deps`) and that gzip -9'd;
//! - the time from opening Datacenter -> OrbitLab -> Sectors to the Sector
//!   list drawn (its 200 rows loaded from the agent and the first ones in
//!   the DOM, then a frame), with 200 Sectors, in headless Chromium in the
//!   real Proxmox UI on the sandbox (`--ui`), measured in the page
//!   (`performance.now()`), 7 times, each a fresh view as a click makes;
//!   and of that, the agent's answer to the list request (Resource
//!   Timing).
//!
//! `cargo build --release --bins && cargo bench -p orbitlab-sandbox
//! --bench panel` (the sandbox runs the release programs; as root, like the
//! sandbox; needs what `tests/run.sh` installs: chromium, chromium-driver,
//! `npm ci --prefix ui/test-deps`, and `../shared/pve-ui`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

const SECTORS: usize = 200;
const RUNS: usize = 7;

fn gzip_len(bytes: &[u8]) -> usize {
    let mut child = Command::new("gzip")
        .args(["-9", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip");
    // Written from a thread of its own: gzip's output is read meanwhile.
    let mut stdin = child.stdin.take().unwrap();
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap().stdout.len();
    writer.join().unwrap().unwrap();
    out
}

fn panel_js(repo: &Path) -> Vec<u8> {
    let out = Command::new("make")
        .args(["-s", "-C"])
        .arg(repo.join("ui"))
        .status()
        .expect("make");
    assert!(out.success(), "make -C ui failed");
    std::fs::read(repo.join("ui/build/orbitlab.js")).unwrap()
}

fn minified(repo: &Path, js: &Path) -> Vec<u8> {
    let terser = repo.join("ui/test-deps/node_modules/terser/bin/terser");
    let out = Command::new("node")
        .arg(terser)
        .arg(js)
        .args(["--compress", "--mangle"])
        .output()
        .expect("node runs terser");
    assert!(
        out.status.success(),
        "terser: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn main() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let js = panel_js(&repo);
    let min = minified(&repo, &repo.join("ui/build/orbitlab.js"));
    println!(
        "panel download: {} bytes ({:.1} KiB), gzip -9 {} bytes ({:.1} KiB); minified (terser) {} bytes ({:.1} KiB), gzip -9 {} bytes ({:.1} KiB)",
        js.len(),
        js.len() as f64 / 1024.0,
        gzip_len(&js),
        gzip_len(&js) as f64 / 1024.0,
        min.len(),
        min.len() as f64 / 1024.0,
        gzip_len(&min),
        gzip_len(&min) as f64 / 1024.0,
    );

    let sb = common::start_with(&common::panel::ui_args());
    // 199 more Sectors (the sandbox made one), applied through pve1's agent.
    let yaml: String = (1..SECTORS)
        .map(|i| {
            format!(
                "apiVersion: orbitlab.io/v1\nkind: Sector\nmetadata:\n  name: s{i:03}\nspec:\n  cidr: 172.{}.{}.0/24\n---\n",
                16 + i / 256,
                i % 256
            )
        })
        .collect();
    let ca = std::fs::read(sb.dir.join("pve/pve-root-ca.pem")).unwrap();
    let header = std::fs::read_to_string(sb.dir.join("api-token.header")).unwrap();
    let http = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap();
    let answer = http
        .post("https://127.0.0.1:8206/api2/json/orbitlab-apply?source=bench.yaml")
        .header(
            "Authorization",
            header.trim().strip_prefix("Authorization: ").unwrap(),
        )
        .body(yaml)
        .send()
        .unwrap();
    assert!(answer.status().is_success(), "{:?}", answer.text());

    let pages = common::panel::pages(&sb);
    let b = common::panel::browser(&sb);
    common::panel::login(
        &b,
        &pages[0],
        "root",
        orbitlab_sim::pve::DEFAULT_PASSWORD,
        "pam",
    );
    common::panel::open(&b, "orbitlab");
    let mut ms = Vec::new();
    let mut request_ms = Vec::new();
    for _ in 0..RUNS {
        // From the overview, as a click on the menu entry selects it.
        common::panel::open(&b, "orbitlab");
        let took = b.js_async(
            "let [count, done] = arguments;
             let cfg = Ext.ComponentQuery.query('panel').find((c) => c instanceof PVE.dc.Config);
             let menu = cfg.down('#menu');
             let rec = menu.getStore().getRoot().findChild('id', 'orbitlab-sectors', true);
             let t0 = performance.now();
             menu.setSelection(rec);
             (function poll() {
                 let g = Ext.ComponentQuery.query('orbitlabSectors #sectors')[0];
                 if (g && g.getStore().getCount() >= count && g.getView().getNodes().length > 0) {
                     requestAnimationFrame(() => {
                         let drawn = performance.now() - t0;
                         // The agent's answer: the last GET of the list.
                         let request = performance.getEntriesByType('resource')
                             .filter((e) => e.name.indexOf('/api2/json/orbitlab/sectors') !== -1 && e.startTime >= t0)
                             .pop();
                         done([drawn, request ? request.duration : -1]);
                     });
                     return;
                 }
                 requestAnimationFrame(poll);
             })();",
            &[json!(SECTORS)],
        );
        ms.push(took[0].as_f64().unwrap());
        request_ms.push(took[1].as_f64().unwrap());
    }
    let rows = common::panel::rows(&b, "orbitlabSectors #sectors").len();
    assert_eq!(rows, SECTORS, "the Sector list holds every Sector");
    ms.sort_by(f64::total_cmp);
    request_ms.sort_by(f64::total_cmp);
    println!(
        "of which the agent's answer to GET /orbitlab/sectors (request to last byte, in the browser): median {:.0} ms, min {:.0} ms, max {:.0} ms",
        request_ms[RUNS / 2],
        request_ms[0],
        request_ms[RUNS - 1]
    );
    println!(
        "open the Sectors view -> {SECTORS} Sectors drawn: median {:.0} ms, min {:.0} ms, max {:.0} ms ({RUNS} runs: {})",
        ms[RUNS / 2],
        ms[0],
        ms[RUNS - 1],
        ms.iter()
            .map(|m| format!("{m:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
