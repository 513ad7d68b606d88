//! systemd's notification protocol (`sd_notify`), without libsystemd: one
//! datagram of `KEY=VALUE` lines to the Unix socket named by
//! `$NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace).
//!
//! Sends `READY=1` once the agent is running, `WATCHDOG=1` while it is
//! healthy (when the unit sets `WatchdogSec=`, systemd passes
//! `$WATCHDOG_USEC`), `STATUS=...` for `systemctl status`, and `STOPPING=1`
//! on shutdown. Outside systemd every call does nothing. Side effects: only
//! datagrams to that socket.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A connection to systemd's notification socket, or nothing outside
/// systemd.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`.
    pub fn from_env() -> io::Result<Self> {
        let socket = std::env::var_os("NOTIFY_SOCKET");
        let target = match socket {
            Some(path) if !path.is_empty() => {
                Some((UnixDatagram::unbound()?, address(&path.to_string_lossy())?))
            }
            _ => None,
        };
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
            .is_none_or(|pid| pid == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|usec| *usec > 0 && for_us)
            .map(Duration::from_micros);
        Ok(Notifier { target, watchdog })
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Self {
        Notifier {
            target: None,
            watchdog: None,
        }
    }

    /// The watchdog timeout systemd asked for, if any: `WATCHDOG=1` must
    /// arrive more often than this.
    pub fn watchdog_timeout(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends `state` (newline-separated `KEY=VALUE` lines).
    pub fn notify(&self, state: &str) -> io::Result<()> {
        match &self.target {
            Some((socket, addr)) => socket.send_to_addr(state.as_bytes(), addr).map(drop),
            None => Ok(()),
        }
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// `STATUS=...`.
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    /// `WATCHDOG=1`.
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }

    fn send(&self, state: &str) {
        if let Err(e) = self.notify(state) {
            tracing::debug!(error = %e, "cannot notify systemd");
        }
    }
}

/// A status must stay on one line (newlines separate fields).
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

fn address(path: &str) -> io::Result<SocketAddr> {
    match path.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes())
        }
        None => SocketAddr::from_pathname(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_datagrams_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier {
            target: Some((
                UnixDatagram::unbound().unwrap(),
                address(path.to_str().unwrap()).unwrap(),
            )),
            watchdog: None,
        };
        notifier.ready("idle\nsecond line");
        notifier.watchdog();
        notifier.stopping();
        let mut buf = [0u8; 256];
        let mut got = Vec::new();
        for _ in 0..3 {
            let n = listener.recv(&mut buf).unwrap();
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert_eq!(
            got,
            [
                "READY=1\nSTATUS=idle second line",
                "WATCHDOG=1",
                "STOPPING=1\nSTATUS=stopping"
            ]
        );
    }

    #[test]
    fn abstract_names_are_understood_and_nothing_is_sent_outside_systemd() {
        let name = format!("orbitlab-notify-test-{}", std::process::id());
        let listener = {
            use std::os::linux::net::SocketAddrExt;
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap()
        };
        let notifier = Notifier {
            target: Some((
                UnixDatagram::unbound().unwrap(),
                address(&format!("@{name}")).unwrap(),
            )),
            watchdog: None,
        };
        notifier.status("reconciling");
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STATUS=reconciling");
        assert!(Notifier::disabled().notify("READY=1").is_ok());
    }
}
