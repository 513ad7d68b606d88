//! What touches the local node: placing files into, and running commands
//! in, the containers that run here (`pct push` / `pct exec`).
//!
//! Only the node that runs a container can reach into it, so every call
//! names the node and [`Pct`] refuses containers of other nodes; the agent
//! on that node does the work. The `pct` program is `$ORBITLAB_PCT` when set
//! (the sandbox points it at a simulated `pct`), else `pct`.
//!
//! [`ContainerHost::exec_output`] runs a command whose answer matters (the
//! appliances' health probe, [`health`]): its exit status and standard
//! output (at most [`STDOUT_KEPT`] bytes) come back, and `pct` with every
//! process it started is killed after [`EXEC_OUTPUT_DEADLINE`]
//! ([`EXEC_DEADLINE`] for `push` and `exec`), so a wedged container cannot
//! hang the agent.

pub mod bundle;
pub mod checks;
pub mod health;
pub mod install;

pub use install::InstallFile;

use std::fmt;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    /// `pct` ran longer than allowed and was killed.
    #[error("`{command}` did not finish within {}s and was killed", after.as_secs())]
    TimedOut { command: String, after: Duration },
}

/// What a command run in a container answered ([`ContainerHost::exec_output`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Its exit status (`None`: ended by a signal).
    pub status: Option<i32>,
    /// Its standard output, at most [`STDOUT_KEPT`] bytes.
    pub stdout: Vec<u8>,
    /// True when it wrote more than that (the rest was dropped).
    pub truncated: bool,
    /// The end of its standard error (at most 2000 bytes), trimmed.
    pub stderr: String,
}

impl ExecOutput {
    /// True when it exited with status 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

/// Most bytes of a command's standard output [`ContainerHost::exec_output`]
/// keeps.
pub const STDOUT_KEPT: usize = 64 * 1024;

/// How long [`Pct`]'s `exec_output` lets `pct` run.
pub const EXEC_OUTPUT_DEADLINE: Duration = Duration::from_secs(30);

/// How long [`Pct`]'s `push` and `exec` let `pct` run (an `apply` checks a
/// configuration with the real tools and restarts a service): a wedged
/// container fails the step instead of holding the agent and its locks.
pub const EXEC_DEADLINE: Duration = Duration::from_secs(120);

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
    /// Runs `argv` inside container `vmid` and returns its exit status and
    /// output: an exit status other than 0 is an answer, not an error
    /// (errors are: not this node's container, `pct` could not run or
    /// reach the container, or it took too long).
    fn exec_output(&self, node: &str, vmid: u32, argv: &[String]) -> Result<ExecOutput, HostError>;
    /// Installs `file` into running container `vmid` ([`install`]): owner
    /// and mode set, the old file replaced atomically; refused when the
    /// file must stay in memory and its directory is not a tmpfs. The
    /// content never becomes a process argument or a file on the node.
    fn install(&self, node: &str, vmid: u32, file: &InstallFile<'_>) -> Result<(), HostError>;
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

    /// Starts `pct` with `args` in a process group of its own (so that a
    /// deadline kills whatever it started too), output and error piped.
    fn spawn(&self, args: &[String], input: bool) -> Result<Child, HostError> {
        let spawn = || {
            Command::new(&self.program)
                .args(args)
                .env("ORBITLAB_NODE", &self.local)
                .stdin(if input { Stdio::piped() } else { Stdio::null() })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .spawn()
        };
        // A program just written (a stand-in `pct`) can be briefly "busy"
        // while another thread's fork still holds it open: try again.
        let mut tries = 0;
        loop {
            match spawn() {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 20 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                other => {
                    return other.map_err(|source| HostError::Spawn {
                        program: self.program.clone(),
                        source,
                    });
                }
            }
        }
    }

    /// Runs `pct` with `args` (within [`EXEC_DEADLINE`]); an exit status
    /// other than 0 is an error with the end of its standard error.
    fn run(&self, args: &[String]) -> Result<(), HostError> {
        let output = self.run_output(args, EXEC_DEADLINE)?;
        if output.success() {
            return Ok(());
        }
        Err(HostError::Failed {
            command: format!("{} {}", self.program, args.join(" ")),
            status: output.status.map_or_else(
                || "killed by a signal".to_owned(),
                |c| format!("exit status: {c}"),
            ),
            stderr: output.stderr,
        })
    }

    /// Runs `pct` with `args`, keeping its exit status and (capped)
    /// output; killed after `deadline`.
    fn run_output(&self, args: &[String], deadline: Duration) -> Result<ExecOutput, HostError> {
        self.run_input(args, deadline, None)
    }

    /// [`Pct::run_output`] with `input` written to the command's standard
    /// input (then closed) on a thread of its own.
    fn run_input(
        &self,
        args: &[String],
        deadline: Duration,
        input: Option<&[u8]>,
    ) -> Result<ExecOutput, HostError> {
        let command = format!("{} {}", self.program, args.join(" "));
        let mut child = self.spawn(args, input.is_some())?;
        if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
            let bytes = zeroize::Zeroizing::new(bytes.to_vec());
            std::thread::spawn(move || {
                // A command that exits early closes the pipe: its status
                // says what went wrong.
                let _ = stdin.write_all(&bytes);
            });
        }
        // Both pipes are drained on threads of their own, so a chatty
        // command never blocks on a full pipe and the deadline holds even
        // when something inside the container keeps a pipe open.
        let reader = |pipe: Option<Box<dyn Read + Send>>, cap: Keep| {
            let (tx, rx) = std::sync::mpsc::channel();
            if let Some(pipe) = pipe {
                std::thread::spawn(move || {
                    let _ = tx.send(read_capped(pipe, cap));
                });
            }
            rx
        };
        let out = reader(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            Keep::Head(STDOUT_KEPT),
        );
        let err = reader(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            Keep::Tail(STDERR_KEPT),
        );
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(None) => {
                    // The whole group: `lxc-attach` and what runs inside
                    // would otherwise keep the pipes (and their readers).
                    if let Ok(pid) = i32::try_from(child.id()) {
                        let _ = nix::sys::signal::killpg(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(HostError::TimedOut {
                        command,
                        after: deadline,
                    });
                }
                Err(source) => {
                    return Err(HostError::Spawn {
                        program: self.program.clone(),
                        source,
                    });
                }
            }
        };
        // The command ended: its pipes close unless something it started
        // still holds them; wait a moment for that, no longer.
        let grace = Duration::from_secs(2);
        let (stdout, truncated) = out.recv_timeout(grace).unwrap_or_default();
        let (stderr, _) = err.recv_timeout(grace).unwrap_or_default();
        Ok(ExecOutput {
            status: status.code(),
            stdout,
            truncated,
            stderr: stderr_tail(&stderr),
        })
    }
}

/// Which part of a long output [`read_capped`] keeps.
#[derive(Debug, Clone, Copy)]
enum Keep {
    /// The first bytes (an answer: what comes first matters).
    Head(usize),
    /// The last bytes (an error: the end says what failed).
    Tail(usize),
}

/// Reads `pipe` to its end, keeping the part `keep` says (the rest is read
/// and dropped); true when something was dropped.
fn read_capped(mut pipe: impl Read, keep: Keep) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut buffer = [0u8; 8192];
    let mut dropped = false;
    loop {
        match pipe.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => match keep {
                Keep::Head(cap) => {
                    let room = cap.saturating_sub(kept.len());
                    kept.extend_from_slice(&buffer[..n.min(room)]);
                    dropped |= n > room;
                }
                Keep::Tail(cap) => {
                    kept.extend_from_slice(&buffer[..n]);
                    if kept.len() > cap {
                        kept.drain(..kept.len() - cap);
                        dropped = true;
                    }
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    (kept, dropped)
}

/// The end of a standard error (at most [`STDERR_KEPT`] bytes), trimmed.
fn stderr_tail(bytes: &[u8]) -> String {
    let stderr = String::from_utf8_lossy(bytes);
    let start = stderr.len().saturating_sub(STDERR_KEPT);
    let start = (start..stderr.len())
        .find(|i| stderr.is_char_boundary(*i))
        .unwrap_or(stderr.len());
    stderr[start..].trim().to_owned()
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
        self.run(&args)
    }

    fn exec(&self, node: &str, vmid: u32, argv: &[String]) -> Result<(), HostError> {
        self.ensure_local(node, vmid)?;
        self.run(&exec_args(vmid, argv))
    }

    fn exec_output(&self, node: &str, vmid: u32, argv: &[String]) -> Result<ExecOutput, HostError> {
        self.ensure_local(node, vmid)?;
        self.run_output(&exec_args(vmid, argv), EXEC_OUTPUT_DEADLINE)
    }

    fn install(&self, node: &str, vmid: u32, file: &InstallFile<'_>) -> Result<(), HostError> {
        self.ensure_local(node, vmid)?;
        let args = exec_args(vmid, &install::install_argv(file));
        let output = self.run_input(&args, EXEC_DEADLINE, Some(file.content))?;
        if output.success() {
            return Ok(());
        }
        Err(HostError::Failed {
            command: format!(
                "{} exec {vmid} -- {} {}",
                self.program,
                install::INSTALL_NAME,
                file.path
            ),
            status: output.status.map_or_else(
                || "killed by a signal".to_owned(),
                |c| format!("exit status: {c}"),
            ),
            stderr: output.stderr,
        })
    }
}

/// `exec VMID -- ARGV...`.
fn exec_args(vmid: u32, argv: &[String]) -> Vec<String> {
    let mut args = vec!["exec".to_owned(), vmid.to_string(), "--".to_owned()];
    args.extend(argv.iter().cloned());
    args
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

    /// A stand-in `pct` running `body` (shell) for `exec`.
    fn scripted_pct(dir: &std::path::Path, body: &str) -> Pct {
        let script = dir.join("pct-scripted");
        std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        Pct {
            program: script.display().to_string(),
            local: "pve1".into(),
        }
    }

    #[test]
    fn exec_output_answers_with_status_and_stdout_even_when_it_fails() {
        let dir = tempfile::tempdir().unwrap();
        let pct = scripted_pct(
            dir.path(),
            "echo \"$ORBITLAB_NODE $*\"; echo '{\"healthy\":false}'; echo oops >&2; exit 1",
        );
        let out = pct
            .exec_output(
                "pve1",
                101,
                &["/usr/sbin/orbitlab-appliance".into(), "health".into()],
            )
            .unwrap();
        assert_eq!(out.status, Some(1));
        assert!(!out.success() && !out.truncated);
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "pve1 exec 101 -- /usr/sbin/orbitlab-appliance health\n{\"healthy\":false}\n"
        );
        assert_eq!(out.stderr, "oops");
        let err = pct.exec_output("pve2", 102, &["true".into()]).unwrap_err();
        assert!(matches!(err, HostError::NotLocal { .. }), "{err}");
    }

    #[test]
    fn exec_output_keeps_only_the_first_bytes_of_a_flood() {
        let dir = tempfile::tempdir().unwrap();
        let pct = scripted_pct(dir.path(), "head -c 200000 /dev/zero; exit 0");
        let out = pct.exec_output("pve1", 101, &["x".into()]).unwrap();
        assert!(out.success() && out.truncated);
        assert_eq!(out.stdout.len(), STDOUT_KEPT);
    }

    #[test]
    fn exec_output_kills_a_command_that_hangs() {
        let dir = tempfile::tempdir().unwrap();
        let pct = scripted_pct(dir.path(), "exec sleep 30");
        let err = pct
            .run_output(&exec_args(101, &["x".into()]), Duration::from_millis(300))
            .unwrap_err();
        assert!(matches!(err, HostError::TimedOut { .. }), "{err}");
    }

    #[test]
    fn a_deadline_kills_what_pct_started_too() {
        // `pct exec` runs lxc-attach, which runs the command: the whole
        // group goes, not only `pct`.
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let pct = scripted_pct(
            dir.path(),
            &format!("sleep 30 & echo $! > {}; wait", pids.display()),
        );
        let err = pct
            .run_output(&exec_args(101, &["x".into()]), Duration::from_millis(300))
            .unwrap_err();
        assert!(matches!(err, HostError::TimedOut { .. }), "{err}");
        let pid = std::fs::read_to_string(&pids).unwrap();
        let alive = || {
            std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
                .is_ok_and(|stat| !stat.contains(") Z "))
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while alive() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(), "the command pct started outlived the deadline");
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
