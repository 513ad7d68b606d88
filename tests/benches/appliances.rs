//! Appliance figures for BENCHMARKS.md, on real containers booted from the
//! built templates with LXC in the appliance lab's network namespaces
//! ([`orbitlab_tests::appliance_lab`]; needs root, `lxc`, `dig` and the
//! templates in `target/appliances`, as the data-path test does):
//! - each container's time from `lxc-start` to systemd running, and to
//!   configured (the agent's bundle push) and healthy (the helper's probe);
//! - each appliance's resident memory (sum of its processes' RSS, and
//!   PSS) at rest and under a small load: DNS queries for the Sector's
//!   and outside names and short TCP connections through the gateway;
//! - throughput of one TCP stream from an instance through the gateway's
//!   SNAT to the outside host;
//! - one Sector's interruption while its gateway is replaced by a new
//!   container (the upgrade's steps: the new one created beforehand, the
//!   old one stopped, the new one started and configured, the old one
//!   removed), measured by an instance connecting out every 10 ms; once
//!   with the old container's MAC addresses kept, once with new ones.
//!
//! Run: `cargo bench -p orbitlab-tests --bench appliances` (as root).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use orbitlab_engine::render;
use orbitlab_tests::appliance_lab::{
    ApplianceLab, Nic, OUTSIDE, OUTSIDE_ECHO_PORT, Sector, appliance_version, gateway_config,
    in_netns,
};

const SINK_PORT: u16 = 9000;

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn memory_table(lab: &ApplianceLab, label: &str) {
    for sector in Sector::ALL {
        for (role, vmid) in [
            ("gateway", sector.gateway_vmid()),
            ("dns", sector.dns_vmid()),
        ] {
            let (rss, pss) = lab.memory_kib(vmid);
            let each: Vec<String> = lab
                .processes(vmid)
                .iter()
                .map(|pid| {
                    let status =
                        std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                    let get = |key: &str| {
                        status
                            .lines()
                            .find_map(|l| l.strip_prefix(key))
                            .map(|v| v.split_whitespace().next().unwrap_or("").to_owned())
                            .unwrap_or_default()
                    };
                    let kib: u64 = get("VmRSS:").parse().unwrap_or(0);
                    format!("{} {:.1}", get("Name:"), mib(kib))
                })
                .collect();
            println!(
                "  {label:<10} {}/{role:<8} {vmid}: RSS {:>5.1} MiB  PSS {:>5.1} MiB  ({})",
                sector.name(),
                mib(rss),
                mib(pss),
                each.join(", ")
            );
        }
    }
}

/// A small load for `seconds`: from each Sector's first instance, DNS
/// queries (its own names, an outside name) and TCP connections out.
fn load(lab: &ApplianceLab, seconds: u64) -> (usize, usize) {
    let until = Instant::now() + Duration::from_secs(seconds);
    let (mut queries, mut connections) = (0, 0);
    while Instant::now() < until {
        for sector in Sector::ALL {
            let (first, _) = sector.instances()[0];
            let ns = lab.instance_ns(sector, first);
            for name in [
                format!("router.{}", sector.domain()),
                format!("{first}.{}", sector.domain()),
                format!("n{queries}.outside.test"),
            ] {
                assert!(!lab.resolve(&ns, &name).is_empty(), "{name}");
                queries += 1;
            }
            connections += in_netns(&ns, || {
                (0..20)
                    .filter(|_| {
                        TcpStream::connect_timeout(
                            &SocketAddr::from((OUTSIDE, OUTSIDE_ECHO_PORT)),
                            Duration::from_secs(1),
                        )
                        .is_ok()
                    })
                    .count()
            });
        }
    }
    (queries, connections)
}

/// Bytes per second of one TCP stream from `from` to the outside host for
/// `seconds`.
fn throughput(lab: &ApplianceLab, from: &str, seconds: u64) -> f64 {
    let out = lab.ns("out");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let sink = std::thread::spawn(move || {
        in_netns(&out, || {
            let listener = TcpListener::bind((OUTSIDE, SINK_PORT)).unwrap();
            ready_tx.send(()).unwrap();
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; 1 << 16];
            let mut total = 0u64;
            loop {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => return total,
                    Ok(n) => total += n as u64,
                }
            }
        })
    });
    ready_rx.recv().unwrap();
    let (sent, took) = in_netns(from, || {
        let mut stream = TcpStream::connect((OUTSIDE, SINK_PORT)).unwrap();
        let chunk = vec![0x5au8; 1 << 16];
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed() < Duration::from_secs(seconds) {
            stream.write_all(&chunk).unwrap();
            sent += chunk.len() as u64;
        }
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        (sent, start.elapsed())
    });
    let received = sink.join().unwrap();
    assert_eq!(received, sent, "the sink got every byte");
    sent as f64 / took.as_secs_f64()
}

/// Replaces Sector blue's gateway by container `new_vmid` as an upgrade
/// does, while an instance connects out every 10 ms; returns the longest
/// time without a successful connection and the step times.
fn replace_gateway(lab: &mut ApplianceLab, old: u32, new_vmid: u32, keep_macs: bool) -> String {
    let version = appliance_version();
    let mut spec = lab.gateway_spec(Sector::Blue, new_vmid, &version);
    if keep_macs {
        for (i, nic) in spec.nics.iter_mut().enumerate() {
            nic.hwaddr = Some(Nic::default_hwaddr(old, i));
        }
    }
    lab.create(&spec);

    let (first, _) = Sector::Blue.instances()[0];
    let ns = lab.instance_ns(Sector::Blue, first);
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let prober = std::thread::spawn(move || {
        in_netns(&ns, || {
            let mut ok_at = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                let to = SocketAddr::from((OUTSIDE, OUTSIDE_ECHO_PORT));
                if let Ok(mut s) = TcpStream::connect_timeout(&to, Duration::from_millis(100)) {
                    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
                    let mut line = String::new();
                    if s.read_to_string(&mut line).is_ok() && !line.is_empty() {
                        ok_at.push(Instant::now());
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            ok_at
        })
    });
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    lab.stop(old);
    let stopped = t0.elapsed();
    lab.start(new_vmid);
    lab.wait_booted(new_vmid);
    let booted = t0.elapsed();
    let files = render::gateway_files(&gateway_config(Sector::Blue));
    lab.push(new_vmid, &files)
        .expect("configure the new gateway");
    let (healthy, report) = lab.health(new_vmid);
    assert!(healthy, "{report}");
    let configured = t0.elapsed();
    lab.destroy(old);
    std::thread::sleep(Duration::from_secs(if keep_macs { 2 } else { 20 }));
    stop.store(true, Ordering::SeqCst);
    let ok_at = prober.join().unwrap();
    // The interruption: from the last connection that worked before the
    // stop to the first that worked after it.
    let last_before = ok_at.iter().rev().find(|t| **t <= t0).copied();
    let first_after = ok_at.iter().find(|t| **t > t0 + stopped).copied();
    let interruption = match (last_before, first_after) {
        (Some(a), Some(b)) => format!("{:.2} s", (b - a).as_secs_f64()),
        _ => format!(
            "not back {:.0} s after the new one was configured",
            (Instant::now() - t0 - configured).as_secs_f64()
        ),
    };
    format!(
        "MACs {}: old stopped {:.2} s, new booted {:.2} s, configured and healthy {:.2} s after the stop began; interruption (last connection before → first after): {interruption}",
        if keep_macs { "kept" } else { "new " },
        stopped.as_secs_f64(),
        booted.as_secs_f64(),
        configured.as_secs_f64(),
    )
}

fn main() {
    let version = appliance_version();
    let mut lab = ApplianceLab::new();
    println!("boot (lxc-start → systemd running → configured and healthy):");
    for sector in Sector::ALL {
        for up in lab.bring_up(sector, &version) {
            println!(
                "  {}/{}: running {:.2} s, healthy {:.2} s",
                sector.name(),
                up.vmid,
                up.booted.as_secs_f64(),
                up.healthy.as_secs_f64()
            );
        }
    }
    println!("resident memory:");
    memory_table(&lab, "at rest");
    let (queries, connections) = load(&lab, 20);
    println!("  (load: {queries} DNS queries and {connections} TCP connections out in 20 s)");
    memory_table(&lab, "after load");

    println!("one TCP stream, instance → gateway (SNAT) → outside host, 5 s each:");
    let (first, _) = Sector::Blue.instances()[0];
    let from = lab.instance_ns(Sector::Blue, first);
    for run in 1..=3 {
        let rate = throughput(&lab, &from, 5);
        println!("  run {run}: {:.2} Gbit/s", rate * 8.0 / 1e9);
    }

    println!("Sector blue's gateway replaced (the upgrade's steps):");
    let old = Sector::Blue.gateway_vmid();
    println!("  {}", replace_gateway(&mut lab, old, 111, true));
    println!("  {}", replace_gateway(&mut lab, 111, 121, false));
}
