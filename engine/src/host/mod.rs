//! What touches the local node: placing files into, and running commands
//! in, the containers that run here (`pct push` / `pct exec`).
//!
//! Only the node that runs a container can reach into it, so every call
//! names the node and [`Pct`] refuses containers of other nodes; the agent
//! on that node does the work. The `pct` program is `$ORBITLAB_PCT` when set
//! (the sandbox points it at a simulated `pct`), else `pct`.

pub mod bundle;
pub mod checks;

use std::fmt;
use std::io::Write;
use std::process::{Command, Stdio};

/// Failures reaching into a container.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The container runs on another node.
    #[error(
        "container {vmid} runs on node {node}, not on this node ({local}); its agent configures it"
    )]
    NotLocal {
        vmid: u32,
        node: String,
        local: String,
    },
    /// `pct` could not be started.
    #[error("cannot run {program}: {source}; is this a Proxmox VE node?")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// `pct` ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    /// A temporary file for `pct push` could not be written.
    #[error("cannot stage a file for container {vmid}: {source}")]
    Stage {
        vmid: u32,
        #[source]
        source: std::io::Error,
    },
}

/// Reaching into containers.
pub trait ContainerHost: fmt::Debug + Send + Sync {
    /// The node this host is.
    fn local_node(&self) -> &str;
    /// Places `content` at `path` (absolute) inside container `vmid` with
    /// permission bits `mode`, replacing what was there.
    fn push(
        &self,
        node: &str,
        vmid: u32,
        path: &str,
        mode: u32,
        content: &[u8],
    ) -> Result<(), HostError>;
    /// Runs `argv` inside container `vmid`; an exit status other than 0 is
    /// an error carrying (the end of) its standard error.
    fn exec(&self, node: &str, vmid: u32, argv: &[String]) -> Result<(), HostError>;
}

/// The real host: Proxmox's `pct` on this node.
#[derive(Debug, Clone)]
pub struct Pct {
    program: String,
    local: String,
}

/// Most bytes of a failing command's standard error kept in the error.
const STDERR_KEPT: usize = 2000;

impl Pct {
    /// `pct` (or `$ORBITLAB_PCT`) acting as node `local`.
    pub fn new(local: impl Into<String>) -> Self {
        let program = std::env::var("ORBITLAB_PCT")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "pct".into());
        Pct {
            program,
            local: local.into(),
        }
    }

    /// `program` acting as node `local`: for tests that put a stand-in
    /// over another container tool (the appliance data-path test runs
    /// LXC's own tools) without changing the process environment.
    pub fn with_program(program: impl Into<String>, local: impl Into<String>) -> Self {
        Pct {
            program: program.into(),
            local: local.into(),
        }
    }

    fn ensure_local(&self, node: &str, vmid: u32) -> Result<(), HostError> {
        if node == self.local {
            Ok(())
        } else {
            Err(HostError::NotLocal {
                vmid,
                node: node.to_owned(),
                local: self.local.clone(),
            })
        }
    }

    fn run(&self, args: &[String], stdin: Option<&[u8]>) -> Result<(), HostError> {
        let command = format!("{} {}", self.program, args.join(" "));
        let spawn = || {
            Command::new(&self.program)
                .args(args)
                .env("ORBITLAB_NODE", &self.local)
                .stdin(if stdin.is_some() {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
        };
        // A program just written (a stand-in `pct`) can be briefly "busy"
        // while another thread's fork still holds it open: try again.
        let mut tries = 0;
        let mut child = loop {
            match spawn() {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 20 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => {
                    break other.map_err(|source| HostError::Spawn {
                        program: self.program.clone(),
                        source,
                    })?;
                }
            }
        };
        if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A child that exits early closes the pipe; its status says why.
            let _ = pipe.write_all(bytes);
        }
        let output = child
            .wait_with_output()
            .map_err(|source| HostError::Spawn {
                program: self.program.clone(),
                source,
            })?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let start = stderr.len().saturating_sub(STDERR_KEPT);
        let start = (start..stderr.len())
            .find(|i| stderr.is_char_boundary(*i))
            .unwrap_or(stderr.len());
        Err(HostError::Failed {
            command,
            status: output.status.to_string(),
            stderr: stderr[start..].trim().to_owned(),
        })
    }
}

impl ContainerHost for Pct {
    fn local_node(&self) -> &str {
        &self.local
    }

    fn push(
        &self,
        node: &str,
        vmid: u32,
        path: &str,
        mode: u32,
        content: &[u8],
    ) -> Result<(), HostError> {
        self.ensure_local(node, vmid)?;
        // `pct push` reads a file on the host: stage the content in a
        // private temporary file (never on the command line).
        let mut staged = tempfile::Builder::new()
            .prefix("orbitlab-push-")
            .tempfile()
            .map_err(|source| HostError::Stage { vmid, source })?;
        staged
            .write_all(content)
            .map_err(|source| HostError::Stage { vmid, source })?;
        let args = vec![
            "push".to_owned(),
            vmid.to_string(),
            staged.path().display().to_string(),
            path.to_owned(),
            "--perms".to_owned(),
            format!("{mode:o}"),
        ];
        self.run(&args, None)
    }

    fn exec(&self, node: &str, vmid: u32, argv: &[String]) -> Result<(), HostError> {
        self.ensure_local(node, vmid)?;
        let mut args = vec!["exec".to_owned(), vmid.to_string(), "--".to_owned()];
        args.extend(argv.iter().cloned());
        self.run(&args, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in `pct` that records its arguments and the pushed file.
    fn fake_pct(dir: &std::path::Path, exit: i32) -> String {
        let script = dir.join("pct");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$ORBITLAB_NODE $*\" >> {log}\nif [ \"$1\" = push ]; then cp \"$3\" {copy}; fi\necho 'something broke' >&2\nexit {exit}\n",
                log = dir.join("log").display(),
                copy = dir.join("pushed").display(),
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script.display().to_string()
    }

    #[test]
    fn pushes_and_execs_through_pct_on_the_local_node_only() {
        let dir = tempfile::tempdir().unwrap();
        let pct = Pct {
            program: fake_pct(dir.path(), 0),
            local: "pve1".into(),
        };
        pct.push("pve1", 101, "/etc/nftables.conf", 0o644, b"flush ruleset\n")
            .unwrap();
        pct.exec(
            "pve1",
            101,
            &["nft".into(), "-f".into(), "/etc/nftables.conf".into()],
        )
        .unwrap();
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        assert!(
            lines[0].starts_with("pve1 push 101 ")
                && lines[0].ends_with(" /etc/nftables.conf --perms 644"),
            "{log}"
        );
        assert_eq!(lines[1], "pve1 exec 101 -- nft -f /etc/nftables.conf");
        assert_eq!(
            std::fs::read(dir.path().join("pushed")).unwrap(),
            b"flush ruleset\n"
        );
        let err = pct.exec("pve2", 102, &["true".into()]).unwrap_err();
        assert!(matches!(err, HostError::NotLocal { .. }), "{err}");
    }

    #[test]
    fn a_failing_command_reports_its_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let pct = Pct {
            program: fake_pct(dir.path(), 3),
            local: "pve1".into(),
        };
        let err = pct
            .exec(
                "pve1",
                101,
                &["systemctl".into(), "restart".into(), "frr".into()],
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("something broke") && err.contains("exit status: 3"),
            "{err}"
        );
    }
}
