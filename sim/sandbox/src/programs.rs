//! The programs the sandbox runs, found next to its own executable (cargo
//! puts every binary of the workspace into the same target directory), and
//! built there first with `cargo build` of the packages that hold them —
//! a no-op when they are up to date. Side effects: runs cargo.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Packages holding the programs below.
const PACKAGES: [&str; 4] = [
    "orbitlab-agent",
    "orbitlab-pvecli",
    "orbitlab-sim",
    "orbitlab-pmxcfs-sim",
];

/// Paths of the sibling programs.
#[derive(Debug, Clone)]
pub struct Programs {
    pub agent: PathBuf,
    pub cli: PathBuf,
    pub pve_sim: PathBuf,
    pub pct: PathBuf,
    pub pmxcfs_sim: PathBuf,
}

impl Programs {
    fn in_dir(dir: &Path) -> Self {
        Programs {
            agent: dir.join("orbitlab-agent"),
            cli: dir.join("orbitlab"),
            pve_sim: dir.join("orbitlab-pve-sim"),
            pct: dir.join("orbitlab-sim-pct"),
            pmxcfs_sim: dir.join("orbitlab-pmxcfs-sim"),
        }
    }

    fn missing(&self) -> Vec<&Path> {
        [
            &self.agent,
            &self.cli,
            &self.pve_sim,
            &self.pct,
            &self.pmxcfs_sim,
        ]
        .into_iter()
        .filter(|p| !p.is_file())
        .map(PathBuf::as_path)
        .collect()
    }
}

/// The directory of this executable.
fn own_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the sandbox's own executable")?;
    exe.parent()
        .map(Path::to_owned)
        .context("the sandbox's executable has no directory")
}

/// Finds the programs, building them first unless `build` is false.
pub fn locate(build: bool) -> Result<Programs> {
    let dir = own_dir()?;
    let programs = Programs::in_dir(&dir);
    if build {
        cargo_build(&dir)?;
    }
    let missing = programs.missing();
    if !missing.is_empty() {
        bail!(
            "missing {}: build them with `cargo build --release --bins` (or run the sandbox without --no-build)",
            missing
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(programs)
}

/// `cargo build --bins -p ...` into the target directory this executable
/// lives in, with the same profile.
fn cargo_build(dir: &Path) -> Result<()> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    if !workspace.is_file() {
        complain!(
            "  (no workspace at {}: using the programs as they are)",
            workspace.display()
        );
        return Ok(());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    command
        .arg("build")
        .arg("--bins")
        .arg("--manifest-path")
        .arg(&workspace);
    for package in PACKAGES {
        command.args(["-p", package]);
    }
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            command.arg("--release");
        }
        Some(profile) => {
            command.args(["--profile", profile]);
        }
        None => {}
    }
    if let Some(target_dir) = dir.parent() {
        command.env("CARGO_TARGET_DIR", target_dir);
    }
    let status = command.status().with_context(|| {
        format!(
            "cannot run {}; build the programs with `cargo build --release --bins`",
            cargo.to_string_lossy()
        )
    })?;
    if !status.success() {
        bail!("`cargo build` of {} failed ({status})", PACKAGES.join(", "));
    }
    Ok(())
}
