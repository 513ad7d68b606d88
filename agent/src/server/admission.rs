//! Who may hold a connection to the local API, before any credential is
//! seen: per-client and global bounds on TLS handshakes in progress, on
//! connections open after their handshake, and a per-client rate of new
//! connections (a token bucket). The numbers are in [`Limits`].
//!
//! A client is its source address; IPv6 clients are grouped by their /64
//! network (one host usually holds a whole /64), and IPv4-mapped IPv6
//! addresses count as the IPv4 address. Clients behind one NAT or proxy
//! share their limits.
//!
//! The table of clients holds one small entry per address with a socket
//! open or a connection made in the last few seconds; idle entries are
//! swept as it grows, and past half of [`MAX_CLIENTS`] entries only those
//! with sockets open are kept, so its size stays bounded whatever the
//! source addresses (a flood from that many addresses resets the rate of
//! the others, never their open connections).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::Limits;

/// Most clients remembered; beyond that only those with sockets open.
const MAX_CLIENTS: usize = 16 * 1024;
/// The table is swept when it reaches this size (then twice its size
/// after the sweep).
const FIRST_SWEEP: usize = 1024;

/// Why a connection was closed without being served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The client opened connections faster than its rate.
    Rate,
    /// The client has [`Limits::max_handshakes_per_client`] handshakes
    /// in progress.
    ClientHandshakes,
    /// [`Limits::max_handshakes`] handshakes are in progress.
    Handshakes,
    /// The client has [`Limits::max_connections_per_client`] connections.
    ClientConnections,
    /// [`Limits::max_connections`] connections are open.
    Connections,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Rate => "the client opens connections too fast",
            Refusal::ClientHandshakes => "the client has too many TLS handshakes in progress",
            Refusal::Handshakes => "too many TLS handshakes in progress",
            Refusal::ClientConnections => "the client has too many open connections",
            Refusal::Connections => "too many open connections",
        })
    }
}

/// A client: an IPv4 address or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ClientKey(IpAddr);

impl ClientKey {
    fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => {
                    let net = u128::from(v6) & !((1u128 << 64) - 1);
                    ClientKey(IpAddr::V6(net.into()))
                }
            },
        }
    }
}

#[derive(Debug)]
struct Client {
    handshakes: usize,
    connections: usize,
    /// Connections the client may still open at once (token bucket).
    tokens: f64,
    refilled: Instant,
}

#[derive(Debug)]
struct State {
    clients: HashMap<ClientKey, Client>,
    handshakes: usize,
    connections: usize,
    sweep_at: usize,
}

/// The bounds of [`Limits`] on connections, shared by the accept loop
/// and every connection task.
#[derive(Debug)]
pub(crate) struct Admission {
    limits: Limits,
    state: Mutex<State>,
}

/// A TLS handshake in progress; its place is given back when dropped.
#[derive(Debug)]
pub(crate) struct Handshake {
    admission: Arc<Admission>,
    key: ClientKey,
}

/// An open connection past its handshake; its place is given back when
/// dropped.
#[derive(Debug)]
pub(crate) struct Connection {
    admission: Arc<Admission>,
    key: ClientKey,
}

impl Admission {
    pub(crate) fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Admission {
            limits,
            state: Mutex::new(State {
                clients: HashMap::new(),
                handshakes: 0,
                connections: 0,
                sweep_at: FIRST_SWEEP,
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new connection from `ip`: takes one of the client's tokens, then
    /// a handshake place (the client's and a global one).
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Handshake, Refusal> {
        self.admit_at(ip, Instant::now())
    }

    fn admit_at(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<Handshake, Refusal> {
        let key = ClientKey::of(ip);
        let limits = &self.limits;
        let mut state = self.state();
        if state.clients.len() >= state.sweep_at && !state.clients.contains_key(&key) {
            sweep(&mut state, limits, now);
        }
        let global_full = state.handshakes >= limits.max_handshakes;
        let burst = f64::from(limits.connect_burst_per_client);
        let client = state.clients.entry(key).or_insert(Client {
            handshakes: 0,
            connections: 0,
            tokens: burst,
            refilled: now,
        });
        if limits.connect_rate_per_client > 0 {
            let elapsed = now.saturating_duration_since(client.refilled).as_secs_f64();
            client.tokens =
                (client.tokens + elapsed * f64::from(limits.connect_rate_per_client)).min(burst);
            client.refilled = now;
            if client.tokens < 1.0 {
                return Err(Refusal::Rate);
            }
            client.tokens -= 1.0;
        }
        if client.handshakes >= limits.max_handshakes_per_client {
            return Err(Refusal::ClientHandshakes);
        }
        if global_full {
            return Err(Refusal::Handshakes);
        }
        client.handshakes += 1;
        state.handshakes += 1;
        Ok(Handshake {
            admission: self.clone(),
            key,
        })
    }

    /// Open connections and handshakes in progress (for tests).
    #[cfg(test)]
    fn counts(&self) -> (usize, usize, usize) {
        let state = self.state();
        (state.handshakes, state.connections, state.clients.len())
    }
}

/// Drops idle clients (nothing open, bucket full again); when more than
/// half of [`MAX_CLIENTS`] remain, also those whose bucket is still
/// refilling (they start again with a full one). Amortised O(1) per new
/// client: the next sweep waits until the table has doubled.
fn sweep(state: &mut State, limits: &Limits, now: Instant) {
    let refill = if limits.connect_rate_per_client == 0 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(
            f64::from(limits.connect_burst_per_client) / f64::from(limits.connect_rate_per_client),
        )
    };
    let busy = |c: &Client| c.handshakes > 0 || c.connections > 0;
    state
        .clients
        .retain(|_, c| busy(c) || now.saturating_duration_since(c.refilled) < refill);
    if state.clients.len() > MAX_CLIENTS / 2 {
        state.clients.retain(|_, c| busy(c));
    }
    state.sweep_at = (state.clients.len() * 2).clamp(FIRST_SWEEP, MAX_CLIENTS);
}

impl Handshake {
    /// The handshake is done: trades its place for a connection place (the
    /// client's and a global one). Refused, the handshake place is given
    /// back all the same.
    pub(crate) fn established(self) -> Result<Connection, Refusal> {
        let admission = self.admission.clone();
        let key = self.key;
        drop(self);
        let limits = &admission.limits;
        let mut state = admission.state();
        if state.connections >= limits.max_connections {
            return Err(Refusal::Connections);
        }
        let Some(client) = state.clients.get_mut(&key) else {
            // Swept while busy cannot happen; count it as full.
            return Err(Refusal::ClientConnections);
        };
        if client.connections >= limits.max_connections_per_client {
            return Err(Refusal::ClientConnections);
        }
        client.connections += 1;
        state.connections += 1;
        drop(state);
        Ok(Connection { admission, key })
    }
}

impl Drop for Handshake {
    fn drop(&mut self) {
        let mut state = self.admission.state();
        state.handshakes = state.handshakes.saturating_sub(1);
        if let Some(client) = state.clients.get_mut(&self.key) {
            client.handshakes = client.handshakes.saturating_sub(1);
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let mut state = self.admission.state();
        state.connections = state.connections.saturating_sub(1);
        if let Some(client) = state.clients.get_mut(&self.key) {
            client.connections = client.connections.saturating_sub(1);
        }
    }
}

/// Lets a warning through at most once per `every`, counting the ones
/// held back in between.
#[derive(Debug)]
pub(crate) struct Throttle {
    every: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    pub(crate) const fn new(every: Duration) -> Self {
        Throttle {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(n)` when a warning may be logged now, `n` being how many
    /// were held back since the last one; `None` otherwise.
    pub(crate) fn allow(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match state.0 {
            Some(last) if now.saturating_duration_since(last) < self.every => {
                state.1 += 1;
                None
            }
            _ => {
                let held = state.1;
                *state = (Some(now), 0);
                Some(held)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_handshakes: 3,
            max_handshakes_per_client: 2,
            max_connections: 3,
            max_connections_per_client: 2,
            connect_rate_per_client: 1,
            connect_burst_per_client: 4,
            ..Limits::default()
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn handshakes_and_connections_are_bounded_per_client_and_in_all() {
        let a = Admission::new(limits());
        let t = Instant::now();
        let h1 = a.admit_at(ip("10.0.0.1"), t).unwrap();
        let h2 = a.admit_at(ip("10.0.0.1"), t).unwrap();
        assert_eq!(
            a.admit_at(ip("10.0.0.1"), t).unwrap_err(),
            Refusal::ClientHandshakes
        );
        let h3 = a.admit_at(ip("10.0.0.2"), t).unwrap();
        assert_eq!(
            a.admit_at(ip("10.0.0.3"), t).unwrap_err(),
            Refusal::Handshakes
        );
        assert_eq!(a.counts().0, 3);

        let c1 = h1.established().unwrap();
        let c2 = h2.established().unwrap();
        assert_eq!(a.counts().0, 1, "established handshakes kept their place");
        let h4 = a.admit_at(ip("10.0.0.1"), t).unwrap();
        assert_eq!(h4.established().unwrap_err(), Refusal::ClientConnections);
        let c3 = h3.established().unwrap();
        let h5 = a.admit_at(ip("10.0.0.3"), t).unwrap();
        assert_eq!(h5.established().unwrap_err(), Refusal::Connections);
        assert_eq!(a.counts(), (0, 3, 3));
        drop((c1, c2, c3));
        assert_eq!(a.counts().1, 0);
    }

    #[test]
    fn each_client_has_a_rate_of_new_connections() {
        let a = Admission::new(limits());
        let t = Instant::now();
        for _ in 0..4 {
            drop(a.admit_at(ip("10.0.0.1"), t).unwrap());
        }
        assert_eq!(a.admit_at(ip("10.0.0.1"), t).unwrap_err(), Refusal::Rate);
        // Refused attempts do not refill the bucket; time does.
        let later = t + Duration::from_millis(999);
        assert_eq!(
            a.admit_at(ip("10.0.0.1"), later).unwrap_err(),
            Refusal::Rate
        );
        drop(a.admit_at(ip("10.0.0.2"), t).unwrap());
        drop(
            a.admit_at(ip("10.0.0.1"), t + Duration::from_secs(1))
                .unwrap(),
        );

        let unlimited = Admission::new(Limits {
            connect_rate_per_client: 0,
            ..limits()
        });
        for _ in 0..100 {
            drop(unlimited.admit_at(ip("10.0.0.1"), t).unwrap());
        }
    }

    #[test]
    fn ipv6_clients_are_their_slash_64() {
        assert_eq!(
            ClientKey::of(ip("2001:db8:1:2:aaaa::1")),
            ClientKey::of(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            ClientKey::of(ip("::ffff:192.0.2.7")),
            ClientKey::of(ip("192.0.2.7"))
        );
    }

    #[test]
    fn the_table_of_clients_stays_bounded() {
        let a = Admission::new(Limits {
            max_handshakes: usize::MAX,
            ..limits()
        });
        let t = Instant::now();
        let held = a.admit_at(ip("192.0.2.1"), t).unwrap();
        for i in 0..(MAX_CLIENTS as u32 + 10) {
            let addr = IpAddr::V4((0x0a00_0000 + i).into());
            drop(a.admit_at(addr, t).unwrap());
        }
        let (_, _, clients) = a.counts();
        assert!(clients <= MAX_CLIENTS, "{clients} clients remembered");
        // A client with a socket open is never forgotten.
        assert_eq!(a.counts().0, 1);
        assert!(
            a.state()
                .clients
                .contains_key(&ClientKey::of(ip("192.0.2.1")))
        );
        drop(held);
        assert_eq!(a.counts().0, 0);
    }

    #[test]
    fn the_throttle_lets_one_warning_through_per_interval() {
        let t = Throttle::new(Duration::from_secs(3600));
        assert_eq!(t.allow(), Some(0));
        assert_eq!(t.allow(), None);
        assert_eq!(t.allow(), None);
        let open = Throttle::new(Duration::ZERO);
        assert_eq!(open.allow(), Some(0));
        assert_eq!(open.allow(), Some(0));
    }
}
