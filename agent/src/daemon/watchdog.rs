//! Feeding systemd's watchdog (`WatchdogSec=` in the unit): a thread sends
//! `WATCHDOG=1` at half the timeout, but only while the agent shows signs
//! of life (see [`super::fence::Fence::beat`]): the loop beats every poll
//! interval and every Proxmox call beats. While a reconcile runs, the loop
//! may legitimately wait longer without any call — for a cluster lock held
//! by another node, up to the lock wait — so the allowance is then the lock
//! wait plus a margin. A loop that hangs longer stops the pings, and
//! systemd restarts the agent. No I/O besides the notifications.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::fence::Fence;
use super::notify::Notifier;

/// Extra allowance on top of the lock wait while reconciling.
const BUSY_MARGIN: Duration = Duration::from_secs(30);

/// Whether the agent counts as alive.
pub fn alive(since_beat: Duration, busy: bool, timeout: Duration, lock_wait: Duration) -> bool {
    let allowance = if busy {
        timeout.max(lock_wait + BUSY_MARGIN)
    } else {
        timeout
    };
    since_beat < allowance
}

/// Starts the watchdog thread when systemd asked for one.
pub fn spawn(
    notifier: Arc<Notifier>,
    fence: Arc<Fence>,
    busy: Arc<AtomicBool>,
    lock_wait: Duration,
) -> std::io::Result<()> {
    let Some(timeout) = notifier.watchdog_timeout() else {
        return Ok(());
    };
    std::thread::Builder::new().name("watchdog".into()).spawn(move || {
        let mut complained = false;
        loop {
            std::thread::sleep(timeout / 2);
            if alive(fence.since_beat(), busy.load(Ordering::Relaxed), timeout, lock_wait) {
                notifier.watchdog();
                complained = false;
            } else if !complained {
                tracing::error!(
                    silent_s = fence.since_beat().as_secs_f64(),
                    "the agent loop shows no sign of life: no longer feeding the systemd watchdog"
                );
                complained = true;
            }
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_loops_get_the_timeout_busy_ones_the_lock_wait() {
        let s = Duration::from_secs;
        assert!(alive(s(5), false, s(30), s(150)));
        assert!(!alive(s(31), false, s(30), s(150)));
        assert!(alive(s(170), true, s(30), s(150)));
        assert!(!alive(s(181), true, s(30), s(150)));
    }
}
