//! A node's prerequisites, read from the node itself: what EVPN and SDN
//! need of the host that the Proxmox API does not show. Every agent runs
//! these on its own node and reports them in its heartbeat
//! ([`crate::liveness::AgentRecord`]), so `orbitlab init` and `orbitlab
//! doctor` on any node see every node's results.
//!
//! Read (under a host root, `/` on a real node; the sandbox gives each
//! simulated node a directory of its own):
//! - `var/lib/dpkg/status`: installed packages and versions (`frr`,
//!   `libpve-network-perl`, `pve-manager`, `orbitlab`);
//! - `etc/network/interfaces`: the `source /etc/network/interfaces.d/*`
//!   line, without which the SDN configuration Proxmox writes to
//!   `/etc/network/interfaces.d/sdn` is never loaded;
//! - time synchronisation: on `/`, `timedatectl show` (the kernel's clock
//!   state, which chrony and systemd-timesyncd both keep); under any other
//!   root, the flag file `run/systemd/timesync/synchronized` that
//!   systemd-timesyncd keeps.
//!
//! Reads only (and runs `timedatectl` on `/`); never fails (an unreadable file is a failed check saying
//! so).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The packages whose versions are reported (and compared across nodes).
pub const REPORTED_PACKAGES: [&str; 4] = ["frr", "libpve-network-perl", "orbitlab", "pve-manager"];

/// The line Proxmox's SDN documentation asks for in `/etc/network/interfaces`.
pub const INTERFACES_INCLUDE: &str = "source /etc/network/interfaces.d/*";

/// Which prerequisite a check is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckId {
    /// FRR installed (EVPN runs on every host's FRR).
    Frr,
    /// `/etc/network/interfaces` includes `interfaces.d`.
    InterfacesInclude,
    /// Proxmox's SDN package installed.
    PveNetwork,
    /// The clock is synchronised.
    TimeSync,
}

impl CheckId {
    /// The id as shown (`frr`, `interfaces-include`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            CheckId::Frr => "frr",
            CheckId::InterfacesInclude => "interfaces-include",
            CheckId::PveNetwork => "pve-network",
            CheckId::TimeSync => "time-sync",
        }
    }
}

/// One prerequisite on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub id: CheckId,
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// What to do about it (empty when `ok`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fix: String,
}

/// Everything a node reports about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostReport {
    pub checks: Vec<Check>,
    /// Installed versions of [`REPORTED_PACKAGES`] (absent: not installed).
    pub packages: BTreeMap<String, String>,
}

impl HostReport {
    /// The failed checks.
    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok)
    }
}

/// Inspects the host under `root`.
pub fn inspect(root: &Path) -> HostReport {
    let dpkg = std::fs::read_to_string(root.join("var/lib/dpkg/status"));
    let packages = match &dpkg {
        Ok(text) => installed(text, &REPORTED_PACKAGES),
        Err(_) => BTreeMap::new(),
    };
    let package_check = |id, package: &str, fix: &str| match (&dpkg, packages.get(package)) {
        (_, Some(version)) => pass(id, format!("{package} {version} installed")),
        (Err(e), None) => fail(
            id,
            format!("cannot read the package database: {e}"),
            "run this check on a Proxmox VE node",
        ),
        (Ok(_), None) => fail(id, format!("{package} is not installed"), fix),
    };
    let checks = vec![
        package_check(
            CheckId::Frr,
            "frr",
            "install FRR for EVPN as Proxmox's SDN documentation says: `apt install frr-pythontools`, then `systemctl enable --now frr`",
        ),
        interfaces_check(root),
        package_check(
            CheckId::PveNetwork,
            "libpve-network-perl",
            "install Proxmox's SDN support: `apt install libpve-network-perl`",
        ),
        time_check(root),
    ];
    HostReport { checks, packages }
}

fn pass(id: CheckId, detail: String) -> Check {
    Check {
        id,
        ok: true,
        detail,
        fix: String::new(),
    }
}

fn fail(id: CheckId, detail: String, fix: &str) -> Check {
    Check {
        id,
        ok: false,
        detail,
        fix: fix.to_owned(),
    }
}

/// Versions of `wanted` packages that dpkg's status file lists as
/// installed.
fn installed(status: &str, wanted: &[&str]) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for paragraph in status.split("\n\n") {
        let field = |name: &str| {
            paragraph.lines().find_map(|line| {
                line.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix(':'))
                    .map(str::trim)
            })
        };
        let (Some(package), Some(state), Some(version)) =
            (field("Package"), field("Status"), field("Version"))
        else {
            continue;
        };
        if wanted.contains(&package) && state == "install ok installed" {
            found.insert(package.to_owned(), version.to_owned());
        }
    }
    found
}

fn interfaces_check(root: &Path) -> Check {
    let id = CheckId::InterfacesInclude;
    let fix = format!(
        "add the line `{INTERFACES_INCLUDE}` at the end of /etc/network/interfaces (Proxmox writes the SDN configuration to /etc/network/interfaces.d/sdn), then `ifreload -a`"
    );
    match std::fs::read_to_string(root.join("etc/network/interfaces")) {
        Ok(text) if includes_interfaces_d(&text) => pass(
            id,
            "/etc/network/interfaces includes /etc/network/interfaces.d".into(),
        ),
        Ok(_) => fail(
            id,
            "/etc/network/interfaces does not include /etc/network/interfaces.d".into(),
            &fix,
        ),
        Err(e) => fail(
            id,
            format!("cannot read /etc/network/interfaces: {e}"),
            &fix,
        ),
    }
}

/// Whether an ifupdown2 configuration sources `interfaces.d`.
fn includes_interfaces_d(text: &str) -> bool {
    text.lines().any(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["source", path] => path.starts_with("/etc/network/interfaces.d/"),
            ["source-directory", path] => path.trim_end_matches('/') == "/etc/network/interfaces.d",
            _ => false,
        }
    })
}

fn time_check(root: &Path) -> Check {
    let id = CheckId::TimeSync;
    let synced = if root == Path::new("/") {
        kernel_clock_synchronised()
    } else {
        root.join("run/systemd/timesync/synchronized").exists()
    };
    if synced {
        pass(id, "the clock is synchronised".into())
    } else {
        fail(
            id,
            "the clock is not synchronised (heartbeats, certificates and locks compare times across nodes)".into(),
            "enable time synchronisation: `apt install chrony` (Proxmox's default) or `systemctl enable --now systemd-timesyncd`, and check `timedatectl`",
        )
    }
}

/// The kernel's view as systemd reports it (`timedatectl`'s
/// `NTPSynchronized`, read from the kernel clock state that chrony and
/// systemd-timesyncd both keep).
fn kernel_clock_synchronised() -> bool {
    std::process::Command::new("timedatectl")
        .args(["show", "--property=NTPSynchronized", "--value"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .is_ok_and(|out| out.status.success() && out.stdout.trim_ascii() == b"yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DPKG: &str = "Package: frr\nStatus: install ok installed\nVersion: 8.5.2-1+pve1\n\n\
Package: libpve-network-perl\nStatus: deinstall ok config-files\nVersion: 0.9.8\n\n\
Package: orbitlab\nStatus: install ok installed\nArchitecture: amd64\nVersion: 0.1.0\n";

    fn host(dpkg: Option<&str>, interfaces: &str, synced: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        if let Some(dpkg) = dpkg {
            write("var/lib/dpkg/status", dpkg);
        }
        write("etc/network/interfaces", interfaces);
        if synced {
            write("run/systemd/timesync/synchronized", "");
        }
        dir
    }

    fn check(report: &HostReport, id: CheckId) -> &Check {
        report.checks.iter().find(|c| c.id == id).unwrap()
    }

    #[test]
    fn each_prerequisite_is_checked_with_a_fix() {
        let good = host(
            Some(DPKG),
            "auto lo\n\nsource /etc/network/interfaces.d/*\n",
            true,
        );
        let report = inspect(good.path());
        assert!(check(&report, CheckId::Frr).ok);
        assert!(check(&report, CheckId::InterfacesInclude).ok);
        assert!(check(&report, CheckId::TimeSync).ok);
        // Removed but not purged is not installed.
        let network = check(&report, CheckId::PveNetwork);
        assert!(!network.ok && network.fix.contains("apt install libpve-network-perl"));
        assert_eq!(report.packages["frr"], "8.5.2-1+pve1");
        assert_eq!(report.packages["orbitlab"], "0.1.0");
        assert!(!report.packages.contains_key("libpve-network-perl"));

        let bad = host(
            None,
            "auto lo\n# source /etc/network/interfaces.d/*\n",
            false,
        );
        let report = inspect(bad.path());
        assert_eq!(report.failed().count(), 4, "{report:#?}");
        assert!(
            check(&report, CheckId::Frr)
                .detail
                .contains("cannot read the package database")
        );
        let include = check(&report, CheckId::InterfacesInclude);
        assert!(include.fix.contains(INTERFACES_INCLUDE), "{include:?}");
        assert!(check(&report, CheckId::TimeSync).fix.contains("chrony"));
    }

    #[test]
    fn interfaces_d_may_be_sourced_by_directory() {
        assert!(includes_interfaces_d(
            "source-directory /etc/network/interfaces.d/\n"
        ));
        assert!(includes_interfaces_d(
            "  source /etc/network/interfaces.d/sdn\n"
        ));
        assert!(!includes_interfaces_d("source /etc/network/other\n"));
    }
}
