//! The real data path of two Sectors with the same CIDR, carried by
//! containers booted from OrbitLab's own appliance templates with Debian's
//! LXC tools (the ones Proxmox's `pct` wraps) and configured only through
//! the agent's push path: the engine's renderers, [`bundle::push`] over
//! the engine's `Pct`, and the helper inside each appliance. See
//! [`orbitlab_tests::appliance_lab`] for the topology.
//!
//! Needs root, `lxc`, `dnsmasq-base`, `bind9-dnsutils` and the templates
//! built by `appliances/check.sh target/appliances`; `tests/run.sh` (the
//! test command, also CI's) installs and builds them before the tests.
//!
//! [`bundle::push`]: orbitlab_engine::host::bundle::push

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use orbitlab_engine::host::{HostError, health};
use orbitlab_engine::render;
use orbitlab_tests::appliance_lab::{
    ApplianceLab, BACKPLANE_GATEWAY, INGRESS_PORT, INSTANCE_PORT, NODE, OUTSIDE, OUTSIDE_ECHO_PORT,
    OUTSIDE_NAME_ADDRESS, Sector, appliance_version, gateway_config, tcp_ask,
};

/// How long a connection that must fail is given.
const REFUSED_WITHIN: Duration = Duration::from_secs(2);
/// How long a connection that must work is given.
const ANSWERED_WITHIN: Duration = Duration::from_secs(5);

fn at(addr: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::from((addr, port))
}

/// Connects and expects the other side's line.
fn reaches(ns: &str, to: SocketAddr) -> String {
    tcp_ask(ns, to, ANSWERED_WITHIN).unwrap_or_else(|e| panic!("{ns} must reach {to}: {e}"))
}

/// Connects and expects no answer.
fn blocked(ns: &str, to: SocketAddr, why: &str) {
    if let Ok(answer) = tcp_ask(ns, to, REFUSED_WITHIN) {
        panic!("{ns} reached {to} ({answer:?}), but {why}");
    }
}

/// The bundle the helper in `vmid` reports as active, as the agent's own
/// probe reads it (`Pct::exec_output`, the engine's parser) from the real
/// helper: healthy, or the test fails with the problems.
fn active_bundle(lab: &ApplianceLab, vmid: u32) -> String {
    let probe = health::probe(lab.pct(), NODE, vmid, std::time::SystemTime::now());
    assert_eq!(
        probe.state(),
        health::ProbeState::Healthy,
        "container {vmid}: {probe:?} ({})",
        lab.health(vmid).1
    );
    probe.bundle.expect("a configured appliance runs a bundle")
}

#[test]
fn two_sectors_with_one_cidr_run_on_appliances_booted_from_our_templates() {
    let version = appliance_version();
    let mut lab = ApplianceLab::new();
    let mut bundles = Vec::new();
    for sector in Sector::ALL {
        for up in lab.bring_up(sector, &version) {
            eprintln!(
                "container {}: systemd running {:?} after lxc-start, configured and healthy after {:?}",
                up.vmid, up.booted, up.healthy
            );
            bundles.push(up);
        }
    }
    let blue_gateway = &bundles[0];
    assert_eq!(blue_gateway.vmid, Sector::Blue.gateway_vmid());

    // DNS: each Sector's names, and outside names through the upstream.
    for sector in Sector::ALL {
        let [(first, _), (second, second_addr), ..] = sector.instances() else {
            panic!("each lab Sector has two instances");
        };
        let ns = lab.instance_ns(sector, first);
        let domain = sector.domain();
        assert_eq!(
            lab.resolve(&ns, &format!("router.{domain}")),
            vec![Ipv4Addr::new(172, 16, 0, 1)],
            "router.{domain}"
        );
        assert_eq!(
            lab.resolve(&ns, &format!("{second}.{domain}")),
            vec![*second_addr],
            "{second}.{domain} from {first}"
        );
        // A Pool's name answers with every healthy member's address.
        let mut pool = lab.resolve(&ns, &format!("pool.{domain}"));
        pool.sort();
        let mut members: Vec<Ipv4Addr> = sector.instances().iter().map(|(_, a)| *a).collect();
        members.sort();
        assert_eq!(pool, members, "pool.{domain}");
        let outside_name = format!("{}.outside.test", sector.name());
        assert_eq!(
            lab.resolve(&ns, &outside_name),
            vec![OUTSIDE_NAME_ADDRESS],
            "{outside_name} through the upstream resolver"
        );
    }
    // The other Sector's names are not known here (green has db, blue not).
    let blue_web = lab.instance_ns(Sector::Blue, "web");
    assert!(
        lab.resolve(&blue_web, &format!("db.{}", Sector::Green.domain()))
            .is_empty(),
        "blue's DNS must not answer green's names"
    );
    // Every upstream query left its Sector through the gateway (SNAT to
    // the gateway's Backplane address), none from inside a Sector.
    let log = std::fs::read_to_string(lab.resolver_log()).unwrap();
    for sector in Sector::ALL {
        let line = format!(
            "query[A] {}.outside.test from {}",
            sector.name(),
            sector.backplane_address()
        );
        assert!(log.contains(&line), "upstream log lacks {line:?}:\n{log}");
    }
    assert!(
        !log.contains(" from 172.16."),
        "a query reached the upstream from inside a Sector:\n{log}"
    );

    // Out of the Sector: the outside host sees the gateway's Backplane
    // address (SNAT), for both Sectors although their CIDRs are the same.
    for sector in Sector::ALL {
        let (first, _) = sector.instances()[0];
        let ns = lab.instance_ns(sector, first);
        assert_eq!(
            reaches(&ns, at(OUTSIDE, OUTSIDE_ECHO_PORT)),
            format!("outside {}", sector.backplane_address())
        );
    }

    // No way into the other Sector: green's db (172.16.0.11) exists only
    // in green; green's own instances reach it (the control).
    let green_app = lab.instance_ns(Sector::Green, "app");
    let db = at(Ipv4Addr::new(172, 16, 0, 11), INSTANCE_PORT);
    assert_eq!(reaches(&green_app, db), "green-db 172.16.0.10");
    blocked(&blue_web, db, "172.16.0.11 exists only in Sector green");
    // Nor through green's gateway on the Backplane: a Sector never reaches
    // the Backplane network, so not another Sector's ingress either.
    let bp = lab.ns("bp");
    let green_ingress = at(Sector::Green.backplane_address(), INGRESS_PORT);
    assert_eq!(
        reaches(&bp, green_ingress),
        format!("green-app {BACKPLANE_GATEWAY}")
    );
    blocked(
        &blue_web,
        green_ingress,
        "a Sector must not reach the Backplane",
    );

    // The declared ingress reaches its instance; a Backplane host with a
    // route to the Sector's CIDR gets nothing else.
    let blue_ingress = at(Sector::Blue.backplane_address(), INGRESS_PORT);
    let check_blue_edge = |lab: &ApplianceLab| {
        assert_eq!(
            reaches(&bp, blue_ingress),
            format!("blue-web {BACKPLANE_GATEWAY}")
        );
        blocked(
            &bp,
            at(Sector::Blue.backplane_address(), INGRESS_PORT + 1),
            "no ingress rule declares that port",
        );
        lab.must(
            &bp,
            &format!(
                "ip route replace 172.16.0.0/24 via {}",
                Sector::Blue.backplane_address()
            ),
        );
        for (name, addr) in Sector::Blue.instances() {
            blocked(
                &bp,
                at(*addr, INSTANCE_PORT),
                &format!("nothing declares a way in to {name}, route or not"),
            );
        }
        lab.must(&bp, "ip route del 172.16.0.0/24");
    };
    check_blue_edge(&lab);

    // A bundle with a broken ruleset is refused by the helper inside; the
    // old ruleset keeps working.
    let mut files = render::gateway_files(&gateway_config(Sector::Blue));
    let ruleset = files
        .iter_mut()
        .find(|f| f.path == render::NFTABLES_PATH)
        .expect("the gateway bundle has a ruleset");
    ruleset.content = ruleset
        .content
        .replacen("accept", "acept", 1)
        .replacen("drop", "dorp", 1);
    let err = lab
        .push(blue_gateway.vmid, &files)
        .expect_err("the helper must refuse a broken ruleset");
    let HostError::Failed { stderr, .. } = &err else {
        panic!("expected the helper's refusal, got {err}");
    };
    assert!(
        stderr.contains("nft -c rejects it"),
        "the refusal names the tool: {stderr}"
    );
    assert_eq!(
        active_bundle(&lab, blue_gateway.vmid),
        blue_gateway.bundle.as_str(),
        "the good bundle stays active"
    );
    check_blue_edge(&lab);
    let (first, _) = Sector::Blue.instances()[0];
    assert_eq!(
        reaches(
            &lab.instance_ns(Sector::Blue, first),
            at(OUTSIDE, OUTSIDE_ECHO_PORT)
        ),
        format!("outside {}", Sector::Blue.backplane_address())
    );

    // The control: the isolation above is the gateway's ruleset's doing.
    // Without it, the same Backplane route leads straight in.
    let out = lab.exec(blue_gateway.vmid, &["nft", "flush", "ruleset"]);
    assert!(out.status.success(), "nft flush ruleset: {out:?}");
    lab.must(
        &bp,
        &format!(
            "ip route replace 172.16.0.0/24 via {}",
            Sector::Blue.backplane_address()
        ),
    );
    assert_eq!(
        reaches(&bp, at(Ipv4Addr::new(172, 16, 0, 10), INSTANCE_PORT)),
        format!("blue-web {BACKPLANE_GATEWAY}")
    );
}
