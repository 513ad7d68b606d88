//! `kind: Settings` — how the agents behave: change polling, full resync,
//! metrics port and log level. At most one Settings manifest exists.
//! Pure: no I/O.

use serde::{Deserialize, Serialize};

use super::rules::within;
use crate::error::Problems;

/// Ports Proxmox itself listens on, which the metrics port must avoid.
const PROXMOX_PORTS: [(u16, &str); 2] = [(3128, "spiceproxy"), (8006, "the Proxmox web interface")];

/// Agent log verbosity.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// Normal operation (default).
    #[default]
    Info,
    /// Details for troubleshooting.
    Debug,
    /// Everything.
    Trace,
}

/// Agent settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, garde::Validate)]
#[serde(deny_unknown_fields)]
pub struct SettingsSpec {
    /// Seconds between polls of the change counter, 1–300 (default 2).
    #[serde(default = "default_poll")]
    #[garde(custom(within(1u32, 300, " seconds")))]
    pub poll_interval_secs: u32,
    /// Seconds between full resyncs, 10–86400 (default 300).
    #[serde(default = "default_resync")]
    #[garde(custom(within(10u32, 86_400, " seconds")))]
    pub resync_interval_secs: u32,
    /// TCP port of the metrics endpoint, 1024–65535 (default 9464).
    #[serde(default = "default_metrics_port")]
    #[garde(custom(within(1024u16, 65535, "")))]
    pub metrics_port: u16,
    /// `error`, `warn`, `info` (default), `debug` or `trace`.
    #[serde(default)]
    #[garde(skip)]
    pub log_level: LogLevel,
}

fn default_poll() -> u32 {
    2
}
fn default_resync() -> u32 {
    300
}
fn default_metrics_port() -> u16 {
    9464
}

impl Default for SettingsSpec {
    fn default() -> Self {
        SettingsSpec {
            poll_interval_secs: default_poll(),
            resync_interval_secs: default_resync(),
            metrics_port: default_metrics_port(),
            log_level: LogLevel::default(),
        }
    }
}

impl SettingsSpec {
    pub(crate) fn check(&self, p: &mut Problems) {
        if self.resync_interval_secs < self.poll_interval_secs {
            p.push(
                "resync_interval_secs",
                format!(
                    "is {} seconds, shorter than poll_interval_secs ({} seconds); a full resync must not run more often than a poll",
                    self.resync_interval_secs, self.poll_interval_secs
                ),
            );
        }
        if let Some((_, what)) = PROXMOX_PORTS
            .iter()
            .find(|(port, _)| *port == self.metrics_port)
        {
            p.push(
                "metrics_port",
                format!(
                    "is {}, the port of {what}; choose another port",
                    self.metrics_port
                ),
            );
        }
    }
}
