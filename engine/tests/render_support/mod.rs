//! Shared by the `render_*` integration tests: a realistic Sector (two
//! subnets, two ingress rules) and small helpers to run the real tools.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use orbitlab_engine::render::{
    DnsConfig, DnsSpec, GatewayConfig, GatewaySpec, GatewaySubnet, Ingress, Protocol, Targets,
};

/// Sector `web`: 172.16.0.0/24 and 172.16.1.0/24, gateway eth1 at
/// 10.200.0.10/16 on the default Backplane, ingress `http` (tcp 8080 →
/// 172.16.0.10:80) and `dns-public` (udp 5353 → 172.16.1.20:53).
pub fn gateway_spec() -> GatewaySpec {
    GatewaySpec {
        sector: "web".parse().unwrap(),
        hostname: "olvn1001-router".parse().unwrap(),
        subnets: vec![
            GatewaySubnet {
                cidr: "172.16.0.0/24".parse().unwrap(),
                gateway: "172.16.0.1".parse().unwrap(),
            },
            GatewaySubnet {
                cidr: "172.16.1.0/24".parse().unwrap(),
                gateway: "172.16.1.1".parse().unwrap(),
            },
        ],
        backplane_address: "10.200.0.10/16".parse().unwrap(),
        backplane_gateway: "10.200.0.1".parse().unwrap(),
        ingress: vec![
            Ingress {
                name: "http".parse().unwrap(),
                protocol: Protocol::Tcp,
                port: 8080,
                to: Targets::one("172.16.0.10".parse().unwrap()),
                to_port: 80,
            },
            Ingress {
                name: "dns-public".parse().unwrap(),
                protocol: Protocol::Udp,
                port: 5353,
                to: Targets::one("172.16.1.20".parse().unwrap()),
                to_port: 53,
            },
        ],
    }
}

pub fn gateway() -> GatewayConfig {
    GatewayConfig::new(gateway_spec()).unwrap()
}

/// The DNS server of Sector `web` at 172.16.0.2 with four records.
pub fn dns_spec() -> DnsSpec {
    let records = [
        ("gateway", "172.16.0.1"),
        ("dns", "172.16.0.2"),
        ("web1", "172.16.0.10"),
        ("db1", "172.16.1.20"),
    ]
    .into_iter()
    .map(|(h, a)| (h.parse().unwrap(), a.parse().unwrap()))
    .collect::<BTreeMap<_, _>>();
    DnsSpec {
        sector: "web".parse().unwrap(),
        listen: "172.16.0.2".parse().unwrap(),
        upstreams: vec![
            "192.0.2.53".parse().unwrap(),
            "198.51.100.53".parse().unwrap(),
        ],
        records,
        groups: Default::default(),
    }
}

pub fn dns() -> DnsConfig {
    DnsConfig::new(dns_spec()).unwrap()
}

/// Runs a command and returns its output; panics (failing the test) only
/// when the program cannot be started at all, naming it.
pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (is it installed?): {e}"))
}

/// stdout and stderr of a finished command, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Writes `content` to `dir/name` and returns the path as a string.
pub fn write(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_owned()
}
