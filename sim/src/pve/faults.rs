//! Fault injection: fail the Nth request that matches a method and path
//! (once), add latency to every request, take nodes offline (the latter
//! lives in the cluster state). Driven by tests through `SimHandle` or by
//! other processes through the `/_sim` control API.

use serde::{Deserialize, Serialize};

/// One planned failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultSpec {
    /// Method to match (`GET`...); any if absent.
    #[serde(default)]
    pub method: Option<String>,
    /// Substring of the path (after `/api2/json`) to match.
    pub path_contains: String,
    /// Fail the Nth matching request (1 = the next one).
    #[serde(default = "one")]
    pub nth: u32,
    /// HTTP status to answer.
    pub status: u16,
    /// Message (reason phrase).
    pub message: String,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone)]
struct Armed {
    spec: FaultSpec,
    seen: u32,
}

/// All armed faults.
#[derive(Debug, Default)]
pub struct Faults {
    armed: Vec<Armed>,
    /// Delay added before every API request is answered.
    pub latency: std::time::Duration,
}

impl Faults {
    /// Arm a fault.
    pub fn add(&mut self, spec: FaultSpec) {
        self.armed.push(Armed { spec, seen: 0 });
    }

    /// Count this request against every armed fault; returns the fault that
    /// fires (removed once fired).
    pub fn check(&mut self, method: &str, path: &str) -> Option<FaultSpec> {
        let mut fired = None;
        for a in &mut self.armed {
            let m = a
                .spec
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method));
            if m && path.contains(&a.spec.path_contains) {
                a.seen += 1;
                if fired.is_none() && a.seen == a.spec.nth.max(1) {
                    fired = Some(a.spec.clone());
                }
            }
        }
        if let Some(f) = &fired
            && let Some(i) = self
                .armed
                .iter()
                .position(|a| a.spec == *f && a.seen == f.nth.max(1))
        {
            self.armed.remove(i);
        }
        fired
    }

    /// How many faults are armed and have not fired.
    pub fn armed(&self) -> usize {
        self.armed.len()
    }

    /// Forget every armed fault and the latency.
    pub fn clear(&mut self) {
        self.armed.clear();
        self.latency = std::time::Duration::ZERO;
    }
}
