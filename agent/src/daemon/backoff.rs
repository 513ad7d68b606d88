//! Exponential backoff with jitter, one per reconcile scope: after each
//! consecutive failure the pause doubles from `first` up to `max`, and a
//! random ±20 % spreads agents that failed together (say, when Proxmox was
//! briefly unreachable) so they do not retry in lockstep. A success or a
//! change of the manifests resets it. No I/O.

use std::time::{Duration, Instant};

use rand::Rng;

/// How the pause grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Pause after the first failure.
    pub first: Duration,
    /// Longest pause.
    pub max: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            first: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

/// Share of the pause drawn at random on either side.
const JITTER: f64 = 0.2;

/// The backoff state of one scope.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: BackoffPolicy,
    failures: u32,
    not_before: Option<Instant>,
}

impl Backoff {
    /// No failure yet.
    pub fn new(policy: BackoffPolicy) -> Self {
        Backoff {
            policy,
            failures: 0,
            not_before: None,
        }
    }

    /// Records a failure at `now`; returns the pause before the next try.
    pub fn failed(&mut self, now: Instant) -> Duration {
        self.failed_with(now, &mut rand::thread_rng())
    }

    fn failed_with(&mut self, now: Instant, rng: &mut impl Rng) -> Duration {
        let base = self.pause(self.failures);
        self.failures = self.failures.saturating_add(1);
        let factor = rng.gen_range(1.0 - JITTER..=1.0 + JITTER);
        let pause = base.mul_f64(factor).min(self.policy.max);
        self.not_before = Some(now + pause);
        pause
    }

    /// Forgets past failures: the next try may run at once.
    pub fn reset(&mut self) {
        self.failures = 0;
        self.not_before = None;
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// When the next try may run; `None` when it may run now.
    pub fn wait_until(&self, now: Instant) -> Option<Instant> {
        self.not_before.filter(|t| *t > now)
    }

    /// The pause (without jitter) after `failures` earlier failures.
    fn pause(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.min(30));
        self.policy
            .first
            .saturating_mul(factor)
            .min(self.policy.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn doubles_up_to_the_maximum_with_bounded_jitter_and_resets() {
        let policy = BackoffPolicy {
            first: Duration::from_secs(1),
            max: Duration::from_secs(10),
        };
        let mut backoff = Backoff::new(policy);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let now = Instant::now();
        assert_eq!(backoff.wait_until(now), None);
        let expected = [1.0, 2.0, 4.0, 8.0, 10.0, 10.0];
        for (i, base) in expected.iter().enumerate() {
            let pause = backoff.failed_with(now, &mut rng).as_secs_f64();
            assert!(
                pause >= base * 0.8 - 1e-9 && pause <= (base * 1.2).min(10.0) + 1e-9,
                "failure {i}: {pause}s for base {base}s"
            );
            assert_eq!(backoff.failures(), i as u32 + 1);
        }
        assert!(backoff.wait_until(now).is_some());
        assert_eq!(backoff.wait_until(now + Duration::from_secs(13)), None);
        backoff.reset();
        assert_eq!(backoff.wait_until(now), None);
        assert_eq!(backoff.failures(), 0);
    }

    #[test]
    fn jitter_spreads_agents_that_failed_together() {
        let mut pauses: Vec<Duration> = (0..20)
            .map(|_| Backoff::new(BackoffPolicy::default()).failed(Instant::now()))
            .collect();
        pauses.sort();
        pauses.dedup();
        assert!(pauses.len() > 10, "{pauses:?}");
    }
}
