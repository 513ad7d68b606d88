//! Signals, handled without handlers: SIGTERM, SIGINT and SIGHUP are
//! blocked in the calling thread (and so in every thread it starts later)
//! and one thread waits for them with `sigwait`.
//!
//! - SIGTERM or SIGINT: the fence stops new changes, the loop is woken and
//!   finishes; if it has not exited after the grace period (a Proxmox task
//!   still running, a lock still awaited), the process exits anyway —
//!   every step is idempotent and a lock left behind expires. A second
//!   SIGTERM/SIGINT exits at once.
//! - SIGHUP: a full resync now (and the stored connection is reloaded).
//!
//! [`block`] must run before any other thread is started; the waiting
//! thread starts later with [`Blocked::spawn`], once the fence exists.

use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};

use super::fence::Fence;

/// What the loop is woken for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Stop (SIGTERM, SIGINT).
    Stop,
    /// Resync now (SIGHUP).
    Resync,
}

/// Exit status when the grace period ran out.
const GRACE_EXIT: i32 = 1;

/// The stop and resync signals, blocked in this thread and every thread
/// started after.
#[derive(Debug)]
pub struct Blocked(SigSet);

/// Blocks SIGTERM, SIGINT and SIGHUP.
pub fn block() -> std::io::Result<Blocked> {
    let mut set = SigSet::empty();
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(signal);
    }
    set.thread_block().map_err(std::io::Error::from)?;
    Ok(Blocked(set))
}

impl Blocked {
    /// Starts the thread that waits for the signals.
    pub fn spawn(
        self,
        wake: Sender<Wake>,
        fence: Arc<Fence>,
        grace: Duration,
    ) -> std::io::Result<()> {
        let set = self.0;
        std::thread::Builder::new().name("signals".into()).spawn(move || {
            loop {
                let signal = match set.wait() {
                    Ok(signal) => signal,
                    Err(e) => {
                        tracing::error!(error = %e, "waiting for signals failed; SIGTERM will not stop the agent cleanly");
                        return;
                    }
                };
                match signal {
                    Signal::SIGHUP => {
                        tracing::info!("SIGHUP: full resync");
                        let _ = wake.send(Wake::Resync);
                    }
                    _ if fence.is_stopping() => {
                        tracing::warn!(%signal, "second stop signal: exiting now");
                        std::process::exit(128 + signal as i32);
                    }
                    _ => {
                        tracing::info!(%signal, grace_s = grace.as_secs_f64(), "stopping: no new change starts; the step in flight finishes");
                        fence.stop();
                        let _ = wake.send(Wake::Stop);
                        spawn_grace_timer(grace);
                    }
                }
            }
        })?;
        Ok(())
    }
}

fn spawn_grace_timer(grace: Duration) {
    let spawned = std::thread::Builder::new().name("stop-grace".into()).spawn(move || {
        std::thread::sleep(grace);
        tracing::error!(
            grace_s = grace.as_secs_f64(),
            "did not stop within the grace period: exiting; the interrupted step is redone by the next reconcile and any lock held expires"
        );
        std::process::exit(GRACE_EXIT);
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the stop timer; waiting for the step in flight");
    }
}
