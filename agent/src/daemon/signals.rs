//! Signals, caught by a small thread running tokio's signal handling (safe
//! handlers, no blocked signal mask — a mask would be inherited by every
//! program the agent starts, `pct` and what it runs in containers):
//!
//! - SIGTERM or SIGINT: no new reconcile starts and the one in flight
//!   finishes normally (so statuses stay truthful); if it still runs after
//!   half the grace period, the fence closes — no new change starts, the
//!   following steps fail fast and the reconcile returns, releasing its
//!   locks; if the process has still not exited after the whole grace
//!   period (a Proxmox task or a lock still awaited), it exits anyway —
//!   every step is idempotent and a lock left behind expires. A second
//!   SIGTERM/SIGINT exits at once.
//! - SIGHUP: a full resync now (and the stored connection is reloaded).

use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use super::fence::Fence;

/// What the loop is woken for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Stop (SIGTERM, SIGINT).
    Stop,
    /// Resync now (SIGHUP).
    Resync,
    /// Something changed through this node's mount ([`super::local`]).
    Local(super::local::LocalChange),
}

/// Exit status when the grace period ran out.
const GRACE_EXIT: i32 = 1;

/// Catches SIGTERM, SIGINT and SIGHUP from now on, on a background thread.
pub fn spawn(wake: Sender<Wake>, fence: Arc<Fence>, grace: Duration) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    // Registered before returning, so no signal is missed from here on.
    let (mut term, mut int, mut hup) = runtime.block_on(async {
        Ok::<_, std::io::Error>((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
            signal(SignalKind::hangup())?,
        ))
    })?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            runtime.block_on(async move {
                loop {
                    let (name, number) = tokio::select! {
                        _ = term.recv() => ("SIGTERM", 15),
                        _ = int.recv() => ("SIGINT", 2),
                        _ = hup.recv() => ("SIGHUP", 1),
                    };
                    if name == "SIGHUP" {
                        tracing::info!("SIGHUP: full resync");
                        let _ = wake.send(Wake::Resync);
                    } else if fence.stop_requested() {
                        tracing::warn!(signal = name, "second stop signal: exiting now");
                        std::process::exit(128 + number);
                    } else {
                        tracing::info!(
                            signal = name,
                            grace_s = grace.as_secs_f64(),
                            "stopping: the reconcile in flight finishes, no new one starts"
                        );
                        fence.request_stop();
                        let _ = wake.send(Wake::Stop);
                        spawn_grace_timer(Arc::clone(&fence), grace);
                    }
                }
            });
        })?;
    Ok(())
}

fn spawn_grace_timer(fence: Arc<Fence>, grace: Duration) {
    let spawned = std::thread::Builder::new().name("stop-grace".into()).spawn(move || {
        std::thread::sleep(grace / 2);
        tracing::warn!("still reconciling halfway through the stop grace period: no new change starts from now on");
        fence.close();
        std::thread::sleep(grace / 2);
        tracing::error!(
            grace_s = grace.as_secs_f64(),
            "did not stop within the grace period: exiting; the interrupted step is redone by the next reconcile and any lock held expires"
        );
        std::process::exit(GRACE_EXIT);
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the stop timer; waiting for the reconcile in flight");
    }
}
