//! Figures of the local API (`cargo bench -p orbitlab-agent --bench
//! server`): one HTTPS keep-alive client on loopback, the PVE simulator
//! (HTTPS, no added latency) checking credentials, a temporary store.
//!
//! Prints per-request latency (median, p99) and throughput for reads with
//! the check cached, reads checked with Proxmox every time, creates, and a
//! 20-Sector apply; plus the cost of a new TLS connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use orbitlab_agent::api::Api;
use orbitlab_agent::pve::Trust;
use orbitlab_agent::server::{self, ProxmoxAuthConfig, ProxmoxAuthenticator, ServerConfig};
use orbitlab_agent::store::Store;
use orbitlab_sim::pve::{DEFAULT_TOKEN_SECRET, PveSim, SimConfig, TestCa};
use reqwest::blocking::Client;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

fn client(ca_pem: &str, keep_alive: bool) -> Client {
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
    let mut b = Client::builder().use_preconfigured_tls(tls);
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
}
