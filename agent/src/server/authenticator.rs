//! Who is calling, as Proxmox says: the [`Authenticator`] trait (the real
//! one, [`super::ProxmoxAuthenticator`], asks the local Proxmox API), and
//! [`Checks`], which puts it behind short-lived caches of successful and
//! refused checks, keyed by a digest of the credential — never the
//! credential itself — and a bounded number of checks at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Limits;
use super::admission::Throttle;
use super::credential::Credential;
use super::permissions::Privileges;

/// A caller Proxmox accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `user@realm`, or `user@realm!token` for an API token.
    pub user: String,
    /// What the caller holds on `/`.
    pub privileges: Privileges,
}

/// Why a caller was not accepted. Messages never hold a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Proxmox refused the credential (HTTP 401 to the caller).
    #[error("{0}")]
    Refused(String),
    /// Proxmox could not be asked (HTTP 503 to the caller). The text may
    /// name internal addresses and errors: it goes to the agent's log,
    /// never to the caller, who gets a generic message.
    #[error("{0}")]
    Unavailable(String),
}

/// Checks credentials with Proxmox. Implementations block (they call
/// Proxmox); the server runs at most [`Limits::max_auth_checks`] of them
/// at once on its blocking thread pool, and a call holds its place until
/// it returns, so an implementation should bound its own time (the
/// Proxmox one has a timeout).
pub trait Authenticator: Send + Sync + 'static {
    /// Who `credential` belongs to and its privileges on `/`. When `write`
    /// is true and the credential is a ticket, its CSRF prevention token
    /// must be accepted too (a missing one is refused).
    fn authenticate(&self, credential: &Credential, write: bool) -> Result<Identity, AuthError>;
}

/// Most entries of each cache; beyond that expired entries are dropped,
/// then all.
const MAX_ENTRIES: usize = 4096;

/// Entries for `ttl`, keyed by [`Credential::cache_key`].
#[derive(Debug)]
pub(crate) struct TtlCache<V> {
    ttl: Duration,
    entries: Mutex<HashMap<[u8; 32], (Instant, V)>>,
}

impl<V: Clone> TtlCache<V> {
    pub(crate) fn new(ttl: Duration) -> Self {
        TtlCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (Instant, V)>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An entry put less than `ttl` ago.
    pub(crate) fn get(&self, key: &[u8; 32]) -> Option<V> {
        let mut entries = self.entries();
        match entries.get(key) {
            Some((at, value)) if at.elapsed() < self.ttl => Some(value.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers `value` for `ttl` (not at all when `ttl` is 0).
    pub(crate) fn put(&self, key: [u8; 32], value: V) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries();
        if entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), value));
    }
}

/// Why [`Checks::check`] did not give an identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CheckError {
    /// Proxmox refused the credential (now or a moment ago); the message
    /// is the authenticator's and holds no secret.
    Refused(String),
    /// Proxmox could not be asked; the details are logged, not returned.
    Unavailable,
    /// Too many checks running and waiting; nothing was asked.
    Busy,
    /// The check panicked (logged).
    Failed,
}

/// Warnings about checks: at most one a minute.
static WARNINGS: Throttle = Throttle::new(Duration::from_secs(60));

/// Credential checks for the server: a cache of successful checks, one of
/// refusals (separate, so a flood of bad credentials never evicts a good
/// one), and at most [`Limits::max_auth_checks`] checks with Proxmox at
/// once, each on a thread of the blocking pool; up to
/// [`Limits::max_auth_waiting`] more wait for a place, for at most
/// [`Limits::auth_wait`].
pub(crate) struct Checks {
    auth: Arc<dyn Authenticator>,
    passed: Arc<TtlCache<Identity>>,
    refused: Arc<TtlCache<String>>,
    places: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    wait: Duration,
}

impl Checks {
    pub(crate) fn new(
        auth: Arc<dyn Authenticator>,
        passed_ttl: Duration,
        refused_ttl: Duration,
        limits: &Limits,
    ) -> Self {
        Checks {
            auth,
            passed: Arc::new(TtlCache::new(passed_ttl)),
            refused: Arc::new(TtlCache::new(refused_ttl)),
            places: Arc::new(Semaphore::new(limits.max_auth_checks.max(1))),
            waiting: AtomicUsize::new(0),
            max_waiting: limits.max_auth_waiting,
            wait: limits.auth_wait,
        }
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Result<Identity, CheckError>> {
        if let Some(identity) = self.passed.get(key) {
            return Some(Ok(identity));
        }
        self.refused.get(key).map(|m| Err(CheckError::Refused(m)))
    }

    /// Who `credential` belongs to: from a cache when it was checked
    /// lately (no waiting), else from the authenticator once a check
    /// place is free. The result is cached; "unavailable" is not. A
    /// check keeps its place until the authenticator returns, even when
    /// the request is abandoned meanwhile.
    pub(crate) async fn check(
        &self,
        credential: Credential,
        write: bool,
    ) -> Result<Identity, CheckError> {
        let key = credential.cache_key(write);
        if let Some(known) = self.cached(&key) {
            return known;
        }
        let place = self.place().await?;
        // Another request may have settled this credential meanwhile.
        if let Some(known) = self.cached(&key) {
            return known;
        }
        let (auth, passed, refused) =
            (self.auth.clone(), self.passed.clone(), self.refused.clone());
        // The answer is cached before the place is given back, so a
        // request that waited for this place finds it, and it is cached
        // even when this request was abandoned meanwhile.
        let answer = tokio::task::spawn_blocking(move || {
            let answer = auth.authenticate(&credential, write);
            match &answer {
                Ok(identity) => passed.put(key, identity.clone()),
                Err(AuthError::Refused(message)) => refused.put(key, message.clone()),
                Err(AuthError::Unavailable(_)) => {}
            }
            drop(place);
            answer
        })
        .await
        .map_err(|e| {
            tracing::error!("a credential check failed inside the agent: {e}");
            CheckError::Failed
        })?;
        match answer {
            Ok(identity) => Ok(identity),
            Err(AuthError::Refused(message)) => Err(CheckError::Refused(message)),
            Err(AuthError::Unavailable(detail)) => {
                if let Some(held) = WARNINGS.allow() {
                    tracing::warn!(
                        "Proxmox could not be asked about a credential: {detail} ({held} similar warnings held back)"
                    );
                } else {
                    tracing::debug!("Proxmox could not be asked about a credential: {detail}");
                }
                Err(CheckError::Unavailable)
            }
        }
    }

    async fn place(&self) -> Result<OwnedSemaphorePermit, CheckError> {
        if let Ok(place) = self.places.clone().try_acquire_owned() {
            return Ok(place);
        }
        let before = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        let place = if before >= self.max_waiting {
            None
        } else {
            tokio::time::timeout(self.wait, self.places.clone().acquire_owned())
                .await
                .ok()
                .and_then(Result::ok)
        };
        place.ok_or_else(|| {
            if let Some(held) = WARNINGS.allow() {
                tracing::warn!(
                    "too many credential checks at once; answering 503 ({held} similar warnings held back)"
                );
            }
            CheckError::Busy
        })
    }
}

/// One fewer waiting when dropped (also when the request is abandoned).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_cache_stays_bounded() {
        let id = Identity {
            user: "a@pve".into(),
            privileges: Privileges::new(["Sys.Audit"]),
        };
        let cache = TtlCache::new(Duration::from_millis(40));
        cache.put([1; 32], id.clone());
        assert_eq!(cache.get(&[1; 32]), Some(id.clone()));
        assert_eq!(cache.get(&[2; 32]), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&[1; 32]), None);

        let cache = TtlCache::new(Duration::from_secs(60));
        for i in 0..=MAX_ENTRIES {
            let mut key = [0; 32];
            key[..8].copy_from_slice(&(i as u64).to_le_bytes());
            cache.put(key, id.clone());
        }
        assert!(cache.entries().len() <= MAX_ENTRIES);

        let off = TtlCache::new(Duration::ZERO);
        off.put([1; 32], id);
        assert_eq!(off.get(&[1; 32]), None);
    }

    /// Knows the token `good`; holds every other credential until
    /// opened (or 30 s), then refuses it, or says Proxmox is unreachable
    /// when `down`.
    #[derive(Default)]
    struct Gate {
        calls: AtomicUsize,
        open: Mutex<bool>,
        changed: std::sync::Condvar,
        down: bool,
    }

    impl Gate {
        fn open(&self) {
            *self.open.lock().unwrap() = true;
            self.changed.notify_all();
        }
    }

    impl Authenticator for Gate {
        fn authenticate(&self, credential: &Credential, _: bool) -> Result<Identity, AuthError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if let Credential::Token { id, .. } = credential
                && id == "good@pve!t"
            {
                return Ok(Identity {
                    user: id.clone(),
                    privileges: Privileges::new(["Sys.Audit"]),
                });
            }
            if self.down {
                return Err(AuthError::Unavailable(
                    "https://10.0.0.9:8006: connection refused".into(),
                ));
            }
            let open = self.open.lock().unwrap();
            let _open = self
                .changed
                .wait_timeout_while(open, Duration::from_secs(30), |open| !*open)
                .unwrap();
            Err(AuthError::Refused("authentication failure".into()))
        }
    }

    fn token(user: &str) -> Credential {
        Credential::Token {
            id: format!("{user}@pve!t"),
            secret: orbitlab_engine::pve::Secret::new("s"),
        }
    }

    /// Polls `done` until it holds; a deadline of 10 s turns a hang into
    /// a failure.
    async fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checks_are_bounded_and_known_callers_never_wait() {
        let auth = Arc::new(Gate::default());
        let limits = Limits {
            max_auth_checks: 1,
            max_auth_waiting: 1,
            auth_wait: Duration::from_secs(30),
            ..Limits::default()
        };
        let checks = Arc::new(Checks::new(
            auth.clone(),
            Duration::from_secs(60),
            Duration::from_secs(60),
            &limits,
        ));
        assert!(checks.check(token("good"), false).await.is_ok());
        let bad = || {
            let checks = checks.clone();
            tokio::spawn(async move { checks.check(token("bad"), false).await })
        };
        let first = bad();
        until("the first check runs", || {
            auth.calls.load(Ordering::SeqCst) == 2
        })
        .await;
        let second = bad();
        until("the second check waits", || {
            checks.waiting.load(Ordering::SeqCst) == 1
        })
        .await;
        assert_eq!(
            checks.check(token("third"), false).await.unwrap_err(),
            CheckError::Busy
        );
        // The one place is taken and the queue full: a known caller is
        // still answered, from the cache.
        let known =
            tokio::time::timeout(Duration::from_secs(10), checks.check(token("good"), false))
                .await
                .expect("a cached identity waited behind a check");
        assert_eq!(known.unwrap().user, "good@pve!t");

        auth.open();
        let refused = CheckError::Refused("authentication failure".into());
        assert_eq!(first.await.unwrap().unwrap_err(), refused);
        assert_eq!(second.await.unwrap().unwrap_err(), refused);
        assert_eq!(
            auth.calls.load(Ordering::SeqCst),
            2,
            "the waiting check asked again about a credential just refused"
        );
        assert_eq!(checks.waiting.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn unavailable_is_not_remembered_and_its_details_stay_inside() {
        let auth = Arc::new(Gate {
            down: true,
            ..Gate::default()
        });
        let checks = Checks::new(
            auth.clone(),
            Duration::from_secs(60),
            Duration::from_secs(60),
            &Limits::default(),
        );
        for _ in 0..2 {
            assert_eq!(
                checks.check(token("x"), false).await.unwrap_err(),
                CheckError::Unavailable
            );
        }
        assert_eq!(auth.calls.load(Ordering::SeqCst), 2);
        let off = Checks::new(
            auth.clone(),
            Duration::ZERO,
            Duration::ZERO,
            &Limits::default(),
        );
        assert!(off.check(token("good"), false).await.is_ok());
        assert!(off.check(token("good"), false).await.is_ok());
        assert_eq!(
            auth.calls.load(Ordering::SeqCst),
            4,
            "a cache with ttl 0 kept something"
        );
    }
}
