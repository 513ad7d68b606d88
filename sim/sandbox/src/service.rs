//! Long-running children (simulators, agents): each in its own process
//! group (so a Ctrl-C in the terminal reaches only the sandbox, which then
//! stops them in order), its standard output and error in a log file, and
//! stopped with SIGTERM, then SIGKILL after a grace period.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;

/// A running child.
#[derive(Debug)]
pub struct Service {
    pub name: String,
    pub log: PathBuf,
    child: Child,
}

impl Service {
    /// Starts `command` as `name`, logging to `log`.
    pub fn start(name: &str, mut command: Command, log: &Path) -> Result<Service> {
        let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {name} ({:?})", command.get_program()))?;
        Ok(Service {
            name: name.to_owned(),
            log: log.to_owned(),
            child,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the log holds a line containing `needle`, and returns
    /// that line. Fails if the child exits, `stop` is set, or `timeout`
    /// passes.
    pub fn wait_for_line(
        &mut self,
        needle: &str,
        timeout: Duration,
        stop: &AtomicBool,
    ) -> Result<String> {
        let started = Instant::now();
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(line) = log.lines().find(|l| l.contains(needle)) {
                return Ok(line.to_owned());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before it was ready:\n{}",
                    self.name,
                    tail(&log)
                );
            }
            if stop.load(Ordering::SeqCst) {
                bail!("interrupted");
            }
            if started.elapsed() > timeout {
                bail!(
                    "{} was not ready after {timeout:?}:\n{}",
                    self.name,
                    tail(&log)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The exit status, if the child has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then SIGKILL after `grace`; waits for the exit.
    pub fn stop(&mut self, grace: Duration) {
        if self.exited().is_some() {
            return;
        }
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let started = Instant::now();
        while started.elapsed() < grace {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        complain!("  {} did not stop within {grace:?}: killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last lines of a log, for error messages.
pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
