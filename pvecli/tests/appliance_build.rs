//! `orbitlab appliance build` with a stand-in build script (no real
//! build): which script it runs (ORBITLAB_APPLIANCES_DIR), with which role
//! and output directory (`--output`, `local`, or a storage's path from
//! storage.cfg), what it refuses before running anything (another
//! version, a storage without a path, `--host`), and a failing build.

use std::path::Path;
use std::process::{Command, Output};

/// A stand-in `build.sh` that records its arguments in `args` next to it
/// and exits with `$STANDIN_EXIT` (0 by default); `VERSION` says 1.0.0.
fn standin(dir: &Path) {
    std::fs::write(
        dir.join("build.sh"),
        "printf '%s\\n' \"$@\" > \"$(dirname \"$0\")/args\"\nexit \"${STANDIN_EXIT:-0}\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("VERSION"), "# the version\nversion=1.0.0\n").unwrap();
}

fn orbitlab(root: &Path, scripts: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orbitlab"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("ORBITLAB_ROOT")
        .env_remove("ORBITLAB_HOST")
        .env("ORBITLAB_APPLIANCES_DIR", scripts)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn recorded(scripts: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(scripts.join("args")).ok()?;
    Some(text.lines().map(str::to_owned).collect())
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn builds_into_the_output_or_the_storages_template_directory() {
    let root = tempfile::tempdir().unwrap();
    let scripts = tempfile::tempdir().unwrap();
    standin(scripts.path());

    let out = root.path().join("out");
    let o = orbitlab(
        root.path(),
        scripts.path(),
        &[
            "--output-format",
            "json",
            "appliance",
            "build",
            "gateway",
            "--output",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        recorded(scripts.path()).unwrap(),
        ["gateway", out.to_str().unwrap()]
    );
    let answer: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(answer["version"], "1.0.0");
    assert_eq!(
        answer["file"],
        out.join("orbitlab-gateway_1.0.0_amd64.tar.zst")
            .display()
            .to_string()
    );

    // A storage with a path in storage.cfg: its template/cache, made if
    // missing; the answer names the volume the Appliance manifest uses.
    let nfs = root.path().join("mnt/pve/templates");
    std::fs::write(
        root.path().join("storage.cfg"),
        format!(
            "dir: local\n\tpath /var/lib/vz\n\tcontent vztmpl\n\nnfs: templates\n\texport /x\n\tpath {}\n\tserver 10.0.0.5\n\tcontent vztmpl\n",
            nfs.display()
        ),
    )
    .unwrap();
    let o = orbitlab(
        root.path(),
        scripts.path(),
        &[
            "--output-format",
            "json",
            "appliance",
            "build",
            "dns",
            "--storage",
            "templates",
            "--version",
            "1.0.0",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let cache = nfs.join("template/cache");
    assert!(cache.is_dir());
    assert_eq!(
        recorded(scripts.path()).unwrap(),
        ["dns", cache.to_str().unwrap()]
    );
    let answer: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        answer["template"],
        "templates:vztmpl/orbitlab-dns_1.0.0_amd64.tar.zst"
    );
}

#[test]
fn refusals_run_nothing_and_a_failed_build_fails() {
    let root = tempfile::tempdir().unwrap();
    let scripts = tempfile::tempdir().unwrap();
    standin(scripts.path());
    let out = root.path().join("out");
    let out = out.to_str().unwrap();

    let o = orbitlab(
        root.path(),
        scripts.path(),
        &[
            "appliance",
            "build",
            "gateway",
            "--version",
            "2.0.0",
            "--output",
            out,
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("builds version 1.0.0, not 2.0.0"),
        "{}",
        stderr(&o)
    );

    let o = orbitlab(
        root.path(),
        scripts.path(),
        &["appliance", "build", "dns", "--storage", "local-lvm"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--output DIR"), "{}", stderr(&o));

    let o = orbitlab(
        root.path(),
        scripts.path(),
        &["appliance", "build", "router", "--output", out],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    let o = orbitlab(
        root.path(),
        scripts.path(),
        &[
            "--host",
            "https://127.0.0.1:9",
            "--fingerprint",
            &["AB"; 32].join(":"),
            "appliance",
            "build",
            "dns",
            "--output",
            out,
        ],
        &[("ORBITLAB_TOKEN", "ci@pve!orbitlab=0123")],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("`orbitlab appliance build` cannot run with --host"),
        "{}",
        stderr(&o)
    );
    assert_eq!(recorded(scripts.path()), None, "the script never ran");

    let empty = tempfile::tempdir().unwrap();
    let o = orbitlab(
        root.path(),
        empty.path(),
        &["appliance", "build", "dns", "--output", out],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("ORBITLAB_APPLIANCES_DIR"),
        "{}",
        stderr(&o)
    );

    let o = orbitlab(
        root.path(),
        scripts.path(),
        &["appliance", "build", "dns", "--output", out],
        &[("STANDIN_EXIT", "3")],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("building the dns appliance failed"),
        "{}",
        stderr(&o)
    );
    assert_eq!(recorded(scripts.path()).unwrap(), ["dns", out]);
}
