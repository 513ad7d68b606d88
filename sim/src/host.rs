//! A simulated Proxmox VE node's host, as far as OrbitLab's prerequisite
//! checks read it (`orbitlab_engine::host::checks`): a directory standing
//! in for `/` with the package database (`var/lib/dpkg/status`),
//! `etc/network/interfaces` and systemd-timesyncd's "synchronised" flag.
//! The agents take it as `--host-root`, the command as
//! `ORBITLAB_HOST_ROOT`. Writes only under the given directory.

use std::path::Path;

/// What a simulated host has.
#[derive(Debug, Clone)]
pub struct HostSetup<'a> {
    /// Installed packages and versions.
    pub packages: Vec<(&'a str, &'a str)>,
    /// `/etc/network/interfaces` sources `interfaces.d`.
    pub interfaces_include: bool,
    /// The clock is synchronised.
    pub time_synced: bool,
}

impl HostSetup<'_> {
    /// A node as OrbitLab wants it: FRR, Proxmox's SDN package, pve-manager
    /// `pve_manager` and OrbitLab `orbitlab` installed, `interfaces.d`
    /// included, the clock synchronised.
    pub fn ready<'a>(pve_manager: &'a str, orbitlab: &'a str) -> HostSetup<'a> {
        HostSetup {
            packages: vec![
                ("frr", "10.2.2-1+pve1"),
                ("libpve-network-perl", "0.11.2"),
                ("orbitlab", orbitlab),
                ("pve-manager", pve_manager),
            ],
            interfaces_include: true,
            time_synced: true,
        }
    }

    /// The same without `package`.
    pub fn without(mut self, package: &str) -> Self {
        self.packages.retain(|(p, _)| *p != package);
        self
    }

    /// Writes the host under `dir` (created).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let write = |rel: &str, text: &str| -> std::io::Result<()> {
            let path = dir.join(rel);
            std::fs::create_dir_all(path.parent().expect("a file has a parent"))?;
            std::fs::write(path, text)
        };
        let dpkg: String = self
            .packages
            .iter()
            .map(|(p, v)| format!("Package: {p}\nStatus: install ok installed\nVersion: {v}\n\n"))
            .collect();
        write("var/lib/dpkg/status", &dpkg)?;
        let include = if self.interfaces_include {
            "source /etc/network/interfaces.d/*\n"
        } else {
            ""
        };
        write(
            "etc/network/interfaces",
            &format!("auto lo\niface lo inet loopback\n\n{include}"),
        )?;
        let flag = dir.join("run/systemd/timesync/synchronized");
        if self.time_synced {
            write("run/systemd/timesync/synchronized", "")?;
        } else if flag.exists() {
            std::fs::remove_file(flag)?;
        }
        Ok(())
    }
}
