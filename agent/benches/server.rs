//! Figures of the local API (`cargo bench -p orbitlab-agent --bench
//! server`): one HTTPS keep-alive client on loopback, the PVE simulator
//! (HTTPS, no added latency) checking credentials, a temporary store.
//!
//! Prints per-request latency (median, p99) and throughput for reads with
//! the check cached, reads checked with Proxmox every time, creates, and a
//! 20-Sector apply; plus the cost of a new TLS connection. These servers
//! have no per-client connection rate (the bench opens hundreds of
//! connections a second from one address).
//!
//! Then, on a server with the default [`server::Limits`], a cached read by
//! one client (127.0.0.2) while others misbehave: 64 clients (127.0.1.N)
//! sending a new bad token each time, whose checks take 2 s each (a
//! Proxmox slow to refuse); and one client (127.0.0.1) holding 300 idle
//! sockets that never start TLS, opening new ones as fast as it can.

use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use orbitlab_agent::server::{
    self, AuthError, Authenticator, Credential, Identity, ProxmoxAuthConfig, ProxmoxAuthenticator,
    ServerConfig,
};
use orbitlab_engine::api::Api;
use orbitlab_engine::pve::Trust;
use orbitlab_engine::store::Store;
use orbitlab_sim::pve::{DEFAULT_TOKEN_SECRET, PveSim, SimConfig, TestCa};
use reqwest::blocking::Client;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

fn client(ca_pem: &str, keep_alive: bool) -> Client {
    client_from(ca_pem, None, keep_alive)
}

fn client_from(ca_pem: &str, local: Option<IpAddr>, keep_alive: bool) -> Client {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("PEM")).expect("root");
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut b = Client::builder()
        .use_preconfigured_tls(tls)
        .local_address(local)
        .timeout(Duration::from_secs(60));
    if !keep_alive {
        b = b.pool_max_idle_per_host(0);
    }
    b.build().expect("client")
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let n = samples.len();
    let total: Duration = samples.iter().sum();
    let at = |q: f64| samples[((n as f64 * q) as usize).min(n - 1)];
    println!(
        "{name:<48} n={n:<5} median {:>8.3} ms  p99 {:>8.3} ms  {:>8.0} req/s",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        n as f64 / total.as_secs_f64()
    );
}

fn measure(n: usize, mut f: impl FnMut(usize)) -> Vec<Duration> {
    (0..n)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed()
        })
        .collect()
}

/// `VmRSS` (KiB) and thread count of this process.
fn footprint() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("Threads:"))
}

fn main() {
    let sim_ca = TestCa::new("bench cluster CA").unwrap();
    let sim = PveSim::start(SimConfig {
        tls: Some(sim_ca.issue_server(&["127.0.0.1"]).unwrap()),
        ..SimConfig::default()
    })
    .unwrap();
    let ca = TestCa::new("bench server CA").unwrap();
    let material = ca.issue_server(&["localhost"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert, material.cert_chain_pem).unwrap();
    std::fs::write(&key, material.key_pem).unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let api = Api::new(Store::open(store_dir.path()));
    let auth = Arc::new(
        ProxmoxAuthenticator::new(ProxmoxAuthConfig {
            base_url: sim.origin(),
            trust: Trust::CaPem(sim_ca.pem()),
            timeout: Duration::from_secs(10),
            www_key: store_dir.path().join("pve-www.key"),
        })
        .unwrap(),
    );
    let start = |ttl: Duration| {
        let mut config = ServerConfig::new(&cert, &key);
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.auth_cache_ttl = ttl;
        config.limits.connect_rate_per_client = 0;
        server::spawn(config, api.clone(), auth.clone()).unwrap()
    };
    let token = format!("PVEAPIToken=root@pam!orbitlab={DEFAULT_TOKEN_SECRET}");
    let (rss_before, threads_before) = footprint();
    let cached = start(Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(200));
    let (rss_after, threads_after) = footprint();
    let uncached = start(Duration::ZERO);
    let url = |h: &server::ServerHandle, p: &str| {
        format!("https://localhost:{}{p}", h.local_addr().port())
    };
    let http = client(&ca.pem(), true);
    let fresh = client(&ca.pem(), false);
    let ok = |r: reqwest::blocking::Response| {
        assert!(r.status().is_success(), "{}", r.status());
        r.bytes().unwrap()
    };

    println!("local API, HTTPS on loopback, 1 client (machine: see the report)");
    println!(
        "starting one idle server: {:+} KiB RSS, {:+} threads",
        rss_after as i64 - rss_before as i64,
        threads_after as i64 - threads_before as i64
    );
    report(
        "create (POST /sectors, store on tmp)",
        measure(200, |i| {
            ok(http
                .post(url(&cached, "/api2/json/orbitlab/sectors"))
                .header("Authorization", &token)
                .form(&[
                    ("name", format!("s{i}")),
                    ("cidr", format!("10.{}.{}.0/24", i / 250, i % 250)),
                ])
                .send()
                .unwrap());
        }),
    );
    report(
        "get one object, check cached",
        measure(2000, |_| {
            ok(http
                .get(url(&cached, "/api2/json/orbitlab/sectors/s7"))
                .header("Authorization", &token)
                .send()
                .unwrap());
        }),
    );
    report(
        "get all 200 Sectors, check cached",
        measure(200, |_| {
            ok(http
                .get(url(&cached, "/api2/json/orbitlab/sectors"))
                .header("Authorization", &token)
                .send()
                .unwrap());
        }),
    );
    report(
        "get one object, checked with Proxmox each time",
        measure(500, |_| {
            ok(http
                .get(url(&uncached, "/api2/json/orbitlab/sectors/s7"))
                .header("Authorization", &token)
                .send()
                .unwrap());
        }),
    );
    report(
        "get one object, new TLS connection each time",
        measure(300, |_| {
            ok(fresh
                .get(url(&cached, "/api2/json/orbitlab/sectors/s7"))
                .header("Authorization", &token)
                .send()
                .unwrap());
        }),
    );
    let yaml: String = (0..20)
        .map(|i| {
            format!(
                "apiVersion: orbitlab.io/v1\nkind: Sector\nmetadata:\n  name: a{i}\nspec:\n  cidr: 172.16.{i}.0/24\n---\n"
            )
        })
        .collect();
    report(
        "apply 20 Sectors (unchanged after the first)",
        measure(50, |_| {
            ok(http
                .post(url(&cached, "/api2/json/orbitlab-apply"))
                .header("Authorization", &token)
                .body(yaml.clone())
                .send()
                .unwrap());
        }),
    );

    drop((cached, uncached));

    // Misbehaving clients, default limits.
    let mut config = ServerConfig::new(&cert, &key);
    config.listen = "127.0.0.1:0".parse().unwrap();
    let slow = Arc::new(SlowRefusals {
        real: auth.clone(),
        hold: Duration::from_secs(2),
    });
    let guarded = server::spawn(config, api.clone(), slow).unwrap();
    let target = url(&guarded, "/api2/json/orbitlab/sectors/s7");
    let known = client_from(
        &ca.pem(),
        Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))),
        true,
    );
    let fresh_known = client_from(
        &ca.pem(),
        Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))),
        false,
    );
    let get_known = |c: &Client| {
        ok(c.get(&target)
            .header("Authorization", &token)
            .send()
            .unwrap());
    };
    get_known(&known);
    report(
        "get one object, check cached, no load",
        measure(500, |_| get_known(&known)),
    );

    let stop = Arc::new(AtomicBool::new(false));
    let (refused, busy) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let bad: Vec<_> = (1..=64u8)
        .map(|i| {
            let c = client_from(
                &ca.pem(),
                Some(IpAddr::V4(Ipv4Addr::new(127, 0, 1, i))),
                true,
            );
            let (stop, refused, busy, target) =
                (stop.clone(), refused.clone(), busy.clone(), target.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let answer = c
                        .get(&target)
                        .header("Authorization", format!("PVEAPIToken=m@pve!t{i}=guess-{n}"))
                        .send();
                    match answer.map(|r| r.status().as_u16()) {
                        Ok(401) => refused.fetch_add(1, Ordering::Relaxed),
                        _ => busy.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let began = Instant::now();
    report(
        "get one object, cached, 64 bad tokens in flight",
        measure(500, |_| get_known(&known)),
    );
    let window = began.elapsed();
    stop.store(true, Ordering::Relaxed);
    for t in bad {
        t.join().unwrap();
    }
    println!(
        "  bad-token requests answered by the time all 64 stopped (2 s per check; measured for {:.1} s): {} refused (401), {} busy (503 or closed)",
        window.as_secs_f64(),
        refused.load(Ordering::Relaxed),
        busy.load(Ordering::Relaxed)
    );

    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicUsize::new(0));
    let addr = guarded.local_addr();
    let flood = {
        let (stop, opened) = (stop.clone(), opened.clone());
        std::thread::spawn(move || {
            let mut idle = std::collections::VecDeque::new();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(socket) = TcpStream::connect(addr) {
                    opened.fetch_add(1, Ordering::Relaxed);
                    idle.push_back(socket);
                    if idle.len() > 300 {
                        idle.pop_front();
                    }
                }
            }
        })
    };
    while opened.load(Ordering::Relaxed) < 300 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let began = Instant::now();
    report(
        "get one object, cached, 300 idle sockets + flood",
        measure(500, |_| get_known(&known)),
    );
    report(
        "  same, new TLS connection each time",
        measure(30, |_| get_known(&fresh_known)),
    );
    let window = began.elapsed();
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
    println!(
        "  idle sockets opened by the flooding client meanwhile: {} in {:.1} s",
        opened.load(Ordering::Relaxed),
        window.as_secs_f64()
    );
}

/// Answers the bench token through Proxmox (the simulator); holds any
/// other credential for `hold` before refusing it, as a Proxmox slow to
/// refuse would.
struct SlowRefusals {
    real: Arc<ProxmoxAuthenticator>,
    hold: Duration,
}

impl Authenticator for SlowRefusals {
    fn authenticate(&self, credential: &Credential, write: bool) -> Result<Identity, AuthError> {
        if let Credential::Token { secret, .. } = credential
            && secret.expose() == DEFAULT_TOKEN_SECRET
        {
            return self.real.authenticate(credential, write);
        }
        std::thread::sleep(self.hold);
        Err(AuthError::Refused("authentication failure".into()))
    }
}
