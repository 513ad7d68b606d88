//! `orbitlab appliance build ROLE`: builds an appliance template on this
//! node with the project's build script, straight into a storage's
//! template directory, where Proxmox lists it as `STORAGE:vztmpl/FILE`.
//! The agents then upload it to every other node that lacks it (see the
//! Appliance controller).
//!
//! The script is `$ORBITLAB_APPLIANCES_DIR/build.sh` (default
//! `/usr/share/orbitlab/appliances/build.sh`, as packaged), run as
//! `bash build.sh ROLE OUTDIR`; it needs root, mmdebstrap and zstd, and
//! writes `orbitlab-ROLE_VERSION_amd64.tar.zst` (with its build log and
//! `.sha256`) into OUTDIR. The version comes from `VERSION` next to the
//! script. OUTDIR is `--output DIR`, else the storage's template directory:
//! `/var/lib/vz/template/cache` for `local`, `<path>/template/cache` for a
//! storage with a `path` in `<root>/storage.cfg` (dir, NFS, CIFS, CephFS);
//! other storages need `--output`. Side effects: those of the script
//! (files in OUTDIR); nothing else. Runs on a node only, never over
//! `--host`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use orbitlab_manifests::{ApplianceRole, StorageId};
use serde_json::{Value, json};

/// Examples shown by `orbitlab appliance --help`.
pub const EXAMPLES: &str = "\
Examples:
  orbitlab appliance build gateway                 # into local: /var/lib/vz/template/cache
  orbitlab appliance build dns --storage nfs-templates
  orbitlab appliance build gateway --version 1.0.0 # refuse unless the script builds 1.0.0
  orbitlab appliance build dns --output /srv/templates";

/// Where the packaged build script lives.
pub const PACKAGED_DIR: &str = "/usr/share/orbitlab/appliances";

/// The environment variable naming another directory holding `build.sh`.
pub const DIR_ENV: &str = "ORBITLAB_APPLIANCES_DIR";

#[derive(Debug, Subcommand)]
pub enum ApplianceCommand {
    /// Build an appliance template into a storage's template directory
    /// on this node (needs root, mmdebstrap and zstd).
    #[command(disable_version_flag = true)]
    Build(BuildArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The appliance: gateway or dns.
    #[arg(value_parser = parse_role)]
    pub role: ApplianceRole,
    /// The storage to build into (its template directory).
    #[arg(long, default_value = "local", value_name = "STORAGE")]
    pub storage: StorageId,
    /// Build into this directory instead of the storage's.
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Refuse unless the build script builds this version.
    #[arg(long, value_name = "VERSION")]
    pub version: Option<orbitlab_manifests::Version>,
}

fn parse_role(text: &str) -> Result<ApplianceRole, String> {
    text.parse()
}

/// Runs `command` on this node, `root` being the cluster filesystem
/// (for `storage.cfg`).
pub fn run(root: &Path, command: ApplianceCommand) -> Result<Value> {
    match command {
        ApplianceCommand::Build(args) => build(root, &args),
    }
}

fn build(root: &Path, args: &BuildArgs) -> Result<Value> {
    let dir = std::env::var_os(DIR_ENV).map_or_else(|| PathBuf::from(PACKAGED_DIR), PathBuf::from);
    let script = dir.join("build.sh");
    if !script.is_file() {
        bail!(
            "the appliance build script {} is missing; install the orbitlab package, or point {DIR_ENV} at the repository's appliances/ directory",
            script.display()
        );
    }
    let version = script_version(&dir)?;
    if let Some(want) = &args.version
        && want.as_ref() != version
    {
        bail!(
            "the build script at {} builds version {version}, not {want}; install the orbitlab package of that version, or leave --version out",
            dir.display()
        );
    }
    let outdir = match &args.output {
        Some(dir) => dir.clone(),
        None => template_dir(root, args.storage.as_ref())?,
    };
    std::fs::create_dir_all(&outdir)
        .with_context(|| format!("cannot create {}", outdir.display()))?;
    let status = Command::new("bash")
        .arg(&script)
        .arg(args.role.as_str())
        .arg(&outdir)
        .status()
        .with_context(|| format!("cannot run bash {}", script.display()))?;
    if !status.success() {
        bail!(
            "building the {} appliance failed ({status}); the build script's output above says why",
            args.role.as_str()
        );
    }
    let file = format!("orbitlab-{}_{version}_amd64.tar.zst", args.role.as_str());
    Ok(json!({
        "role": args.role.as_str(),
        "version": version,
        "file": outdir.join(&file).display().to_string(),
        "template": args.output.is_none().then(|| format!("{}:vztmpl/{file}", args.storage)),
    }))
}

/// The `version=` line of `VERSION` next to the script.
fn script_version(dir: &Path) -> Result<String> {
    let path = dir.join("VERSION");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("version="))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .with_context(|| format!("{} has no version= line", path.display()))
}

/// The template directory of `storage` on this node: `local`'s is
/// Proxmox's default; a storage with a `path` in `storage.cfg` keeps
/// templates under `<path>/template/cache`.
fn template_dir(root: &Path, storage: &str) -> Result<PathBuf> {
    let cfg = root.join("storage.cfg");
    let text = match std::fs::read_to_string(&cfg) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", cfg.display())),
    };
    if let Some(path) = storage_path(&text, storage) {
        return Ok(Path::new(&path).join("template/cache"));
    }
    if storage == "local" {
        return Ok(PathBuf::from("/var/lib/vz/template/cache"));
    }
    bail!(
        "storage {storage} has no directory path in {} (not a dir, NFS, CIFS or CephFS storage, or not defined); give the directory with --output DIR",
        cfg.display()
    )
}

/// The `path` of storage `id` in `storage.cfg` text (sections `TYPE: ID`
/// followed by indented `key value` lines).
fn storage_path(text: &str, id: &str) -> Option<String> {
    let mut in_section = false;
    for line in text.lines() {
        if line.trim().is_empty() {
            in_section = false;
        } else if !line.starts_with(char::is_whitespace) {
            in_section = line
                .split_once(':')
                .is_some_and(|(_, name)| name.trim() == id);
        } else if in_section
            && let Some(("path", value)) = line.trim().split_once(char::is_whitespace)
        {
            return Some(value.trim().to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::storage_path;

    #[test]
    fn storage_paths_come_from_their_own_section() {
        let cfg = "dir: local\n\tpath /var/lib/vz\n\tcontent iso,vztmpl,backup\n\nlvmthin: local-lvm\n\tthinpool data\n\tvgname pve\n\nnfs: shared\n\texport /exports\n\tpath /mnt/pve/shared\n\tserver 10.0.0.5\n";
        assert_eq!(storage_path(cfg, "local").as_deref(), Some("/var/lib/vz"));
        assert_eq!(
            storage_path(cfg, "shared").as_deref(),
            Some("/mnt/pve/shared")
        );
        assert_eq!(storage_path(cfg, "local-lvm"), None);
        assert_eq!(storage_path(cfg, "missing"), None);
    }
}
