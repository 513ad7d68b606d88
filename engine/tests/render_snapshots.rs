//! Snapshot tests pinning every rendered file for a realistic Sector, plus
//! the refusals of bad input.

mod render_support;

use orbitlab_engine::render::{
    self, DnsConfig, DnsLabel, GatewayConfig, Ingress, Protocol, RenderError, Targets,
};
use render_support::{dns, dns_spec, gateway, gateway_spec};

#[test]
fn nftables_ruleset() {
    insta::assert_snapshot!("nftables", render::nftables(&gateway()));
}

#[test]
fn frr_conf() {
    insta::assert_snapshot!("frr_conf", render::frr_conf(&gateway()));
}

#[test]
fn frr_daemons() {
    insta::assert_snapshot!("frr_daemons", render::frr_daemons());
}

#[test]
fn dnsmasq_conf() {
    insta::assert_snapshot!("dnsmasq_conf", render::dnsmasq_conf(&dns()));
}

#[test]
fn dns_hosts() {
    insta::assert_snapshot!("dns_hosts", render::dns_hosts(&dns()));
}

#[test]
fn appliance_file_lists_match_the_renderers() {
    let gw = gateway();
    let files = render::gateway_files(&gw);
    let paths: Vec<_> = files.iter().map(|f| f.path).collect();
    assert_eq!(
        paths,
        [
            "/etc/frr/daemons",
            "/etc/frr/frr.conf",
            "/etc/nftables.conf"
        ]
    );
    assert_eq!(files[1].content, render::frr_conf(&gw));
    assert_eq!(files[2].content, render::nftables(&gw));
    let files = render::dns_files(&dns());
    assert_eq!(files[0].path, render::DNSMASQ_CONF_PATH);
    assert_eq!(files[1].content, render::dns_hosts(&dns()));
    assert!(
        files[0]
            .content
            .contains(&format!("addn-hosts={}", render::DNS_HOSTS_PATH))
    );
}

#[test]
fn rendering_is_deterministic_and_follows_declared_order() {
    assert_eq!(render::nftables(&gateway()), render::nftables(&gateway()));
    let text = render::nftables(&gateway());
    let http = text.find("comment \"ingress http\"").unwrap();
    let dns_public = text.find("comment \"ingress dns-public\"").unwrap();
    assert!(http < dns_public, "ingress rules keep their declared order");
    // Records come out sorted by host name whatever the insertion order.
    let hosts = render::dns_hosts(&dns());
    let order: Vec<_> = hosts
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(' ').nth(2).unwrap())
        .collect();
    assert_eq!(order, ["db1", "dns", "gateway", "web1"]);
}

#[test]
fn empty_upstreams_render_a_local_only_server() {
    let mut spec = dns_spec();
    spec.upstreams.clear();
    let text = render::dnsmasq_conf(&DnsConfig::new(spec).unwrap());
    assert!(!text.contains("server="));
    assert!(text.contains("no-resolv"));
}

fn gateway_err(edit: impl FnOnce(&mut orbitlab_engine::render::GatewaySpec)) -> RenderError {
    let mut spec = gateway_spec();
    edit(&mut spec);
    GatewayConfig::new(spec).unwrap_err()
}

#[test]
fn bad_gateway_inputs_are_refused_with_a_clear_reason() {
    let cases: Vec<(RenderError, &str)> = vec![
        (gateway_err(|s| s.subnets.clear()), "at least one subnet"),
        (
            gateway_err(|s| {
                s.subnets[1].cidr = "172.16.0.128/25".parse().unwrap();
                s.subnets[1].gateway = "172.16.0.129".parse().unwrap();
            }),
            "overlaps",
        ),
        (
            gateway_err(|s| {
                s.subnets[1].cidr = "10.200.5.0/24".parse().unwrap();
                s.subnets[1].gateway = "10.200.5.1".parse().unwrap();
            }),
            "overlaps 10.200.0.0/16",
        ),
        (
            gateway_err(|s| s.subnets[0].cidr = "172.16.0.5/24".parse().unwrap()),
            "write it as 172.16.0.0/24",
        ),
        (
            gateway_err(|s| s.subnets[0].cidr = "172.16.0.0/30".parse().unwrap()),
            "too small",
        ),
        (
            gateway_err(|s| s.subnets[0].gateway = "172.16.0.0".parse().unwrap()),
            "subnet gateway 172.16.0.0 must be a host address inside 172.16.0.0/24",
        ),
        (
            gateway_err(|s| s.backplane_gateway = "10.201.0.1".parse().unwrap()),
            "backplane gateway 10.201.0.1",
        ),
        (
            gateway_err(|s| s.backplane_address = "10.200.255.255/16".parse().unwrap()),
            "backplane address 10.200.255.255",
        ),
        (
            gateway_err(|s| s.backplane_address = "10.200.0.1/16".parse().unwrap()),
            "must differ",
        ),
        (
            gateway_err(|s| s.ingress[1].name = "http".parse().unwrap()),
            "ingress name http is declared twice",
        ),
        (
            gateway_err(|s| {
                s.ingress.push(Ingress {
                    name: "other".parse().unwrap(),
                    protocol: Protocol::Tcp,
                    port: 8080,
                    to: Targets::one("172.16.0.11".parse().unwrap()),
                    to_port: 80,
                })
            }),
            "already taken by ingress http",
        ),
        (gateway_err(|s| s.ingress[0].port = 0), "port 0 in port"),
        (
            gateway_err(|s| s.ingress[0].to_port = 0),
            "port 0 in to_port",
        ),
        (
            gateway_err(|s| s.ingress[0].to = Targets::one("192.168.1.10".parse().unwrap())),
            "ingress http targets 192.168.1.10",
        ),
        (
            gateway_err(|s| s.ingress[0].to = Targets::one("172.16.1.1".parse().unwrap())),
            "ingress http targets 172.16.1.1",
        ),
    ];
    for (err, expected) in cases {
        let msg = err.to_string();
        assert!(msg.starts_with("sector web: "), "{msg}");
        assert!(
            msg.contains(expected),
            "{msg:?} should contain {expected:?}"
        );
    }
    // The same port number on another protocol is a different ingress.
    let mut spec = gateway_spec();
    spec.ingress[1].port = 8080;
    assert!(GatewayConfig::new(spec).is_ok());
}

#[test]
fn bad_dns_inputs_are_refused_with_a_clear_reason() {
    let check = |edit: &dyn Fn(&mut orbitlab_engine::render::DnsSpec), expected: &str| {
        let mut spec = dns_spec();
        edit(&mut spec);
        let msg = DnsConfig::new(spec).unwrap_err().to_string();
        assert!(
            msg.contains(expected),
            "{msg:?} should contain {expected:?}"
        );
    };
    check(
        &|s| s.listen = "0.0.0.0".parse().unwrap(),
        "listen address 0.0.0.0",
    );
    check(
        &|s| s.upstreams.push("127.0.0.1".parse().unwrap()),
        "loopback",
    );
    check(
        &|s| s.upstreams.push("172.16.0.2".parse().unwrap()),
        "itself",
    );
    check(
        &|s| s.upstreams.push("192.0.2.53".parse().unwrap()),
        "listed twice",
    );
    check(
        &|s| {
            s.records
                .insert("bcast".parse().unwrap(), "255.255.255.255".parse().unwrap());
        },
        "record 255.255.255.255",
    );
}

#[test]
fn names_that_could_break_a_file_cannot_be_built() {
    for bad in ["web\nflush ruleset", "web\"", "web b", "web;drop", "Web"] {
        assert!(bad.parse::<DnsLabel>().is_err(), "{bad:?}");
    }
    assert!("tcp".parse::<Protocol>().is_ok());
    assert!("sctp".parse::<Protocol>().is_err());
}
