//! Simulator throughput over loopback with the blocking client, so that
//! end-to-end benchmarks can subtract the simulator's own cost.
//!
//! Run: `cargo bench -p orbitlab-sim --bench pve_sim_throughput`
//! Prints requests per second for a read (`GET /cluster/sdn/zones`, with
//! 50 zones present) and a create (`POST /cluster/sdn/zones`), over plain
//! HTTP and HTTPS, with API-token auth and one keep-alive connection.

use std::time::{Duration, Instant};

use orbitlab_engine::pve::SdnSpec;
use orbitlab_engine::pve::{
    ClientConfig, ClientOptions, Credentials, Pve, PveClient, Secret, Trust, ZoneConfig,
};
use orbitlab_sim::pve::{DEFAULT_TOKEN_SECRET, PveSim, SimConfig, SimHandle, TestCa};

fn client(sim: &SimHandle, trust: Trust) -> PveClient {
    PveClient::new(ClientConfig {
        base_url: sim.origin(),
        trust,
        credentials: Credentials::token("root@pam", "orbitlab", Secret::new(DEFAULT_TOKEN_SECRET))
            .expect("token"),
        options: ClientOptions::default(),
    })
    .expect("client")
}

fn rate(n: u32, d: Duration) -> f64 {
    f64::from(n) / d.as_secs_f64()
}

fn run(label: &str, sim: &SimHandle, c: &PveClient) {
    let zone = ZoneConfig {
        kind: Some("simple".into()),
        ..ZoneConfig::default()
    };
    for i in 0..50 {
        c.sdn_create(&format!("w{i}"), SdnSpec::Zone(&zone), None)
            .expect("seed");
    }
    // Warm up.
    for _ in 0..200 {
        c.sdn_zones().expect("read");
    }
    let reads = 3000;
    let t = Instant::now();
    for _ in 0..reads {
        c.sdn_zones().expect("read");
    }
    let read_time = t.elapsed();
    let creates = 3000;
    let t = Instant::now();
    for i in 0..creates {
        c.sdn_create(&format!("b{i}"), SdnSpec::Zone(&zone), None)
            .expect("create");
    }
    let create_time = t.elapsed();
    let small = 3000;
    let t = Instant::now();
    for _ in 0..small {
        c.version().expect("version");
    }
    let small_time = t.elapsed();
    println!(
        "{label:6} GET /cluster/sdn/zones (50 zones): {:8.0} req/s ({:6.1} us/req)",
        rate(reads, read_time),
        read_time.as_secs_f64() * 1e6 / f64::from(reads)
    );
    println!(
        "{label:6} POST /cluster/sdn/zones:           {:8.0} req/s ({:6.1} us/req)",
        rate(creates, create_time),
        create_time.as_secs_f64() * 1e6 / f64::from(creates)
    );
    println!(
        "{label:6} GET /version:                      {:8.0} req/s ({:6.1} us/req)",
        rate(small, small_time),
        small_time.as_secs_f64() * 1e6 / f64::from(small)
    );
    assert_eq!(
        sim.requests().len() as u32,
        50 + 200 + reads + creates + small
    );
}

fn main() {
    let sim = PveSim::start(SimConfig::default()).expect("sim");
    let c = client(&sim, Trust::LoopbackHttp);
    run("http", &sim, &c);
    let ca = TestCa::new("bench CA").expect("ca");
    let sim = PveSim::start(SimConfig {
        tls: Some(ca.issue_server(&["localhost", "127.0.0.1"]).expect("leaf")),
        ..SimConfig::default()
    })
    .expect("tls sim");
    let c = client(&sim, Trust::CaPem(ca.pem()));
    run("https", &sim, &c);
}
