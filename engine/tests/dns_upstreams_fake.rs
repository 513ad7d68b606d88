//! Where the Sector DNS forwards names outside its Sector, driven end to
//! end against `FakePve` (see `fake_world`): the Cluster manifest's
//! `spec.defaults.dns_upstreams` when it lists any (and then no node's DNS
//! settings are read), else the name servers of the node the DNS
//! container runs on with loopback and IPv6 ones skipped; with none usable
//! the DNS is still configured but the Sector is Blocked with the reason
//! and the fix; and a change of either pushes the DNS configuration again,
//! into the DNS container only.

mod fake_world;

use std::collections::BTreeSet;

use fake_world::{World, assert_ready, not_ready};
use orbitlab_engine::pve::NodeDns;
use orbitlab_engine::render::DNSMASQ_CONF_PATH;
use orbitlab_manifests::{Kind, Spec, encode};

/// `servers` as node `node`'s DNS settings (`dns1`..`dns3`).
fn set_node_dns(world: &World, node: &str, servers: &[&str]) {
    let server = |i: usize| servers.get(i).map(|s| (*s).to_owned());
    world.pve.set_node_dns(
        node,
        NodeDns {
            dns1: server(0),
            dns2: server(1),
            dns3: server(2),
            search: Some("lab.example".into()),
        },
    );
}

/// Writes the Cluster manifest again with `upstreams` as its
/// `spec.defaults.dns_upstreams`.
fn set_cluster_upstreams(world: &World, upstreams: &[&str]) {
    let mut cluster = world
        .store
        .read_manifests(Kind::Cluster)
        .unwrap()
        .pop()
        .expect("init wrote the Cluster manifest")
        .into_inner();
    let Spec::Cluster(spec) = &mut cluster.spec else {
        panic!("a Cluster spec");
    };
    spec.defaults.dns_upstreams = upstreams.iter().map(|a| a.parse().unwrap()).collect();
    world.apply(&encode(&cluster));
}

/// The dnsmasq configuration last pushed into the Sector's DNS container.
fn dnsmasq_conf(world: &World) -> String {
    let dns = world.vmid("web", "dns");
    world
        .pushes()
        .into_iter()
        .rfind(|p| p.vmid == dns && p.path == DNSMASQ_CONF_PATH)
        .unwrap_or_else(|| panic!("no dnsmasq configuration pushed into {dns}"))
        .content
}

/// The `server=` lines of a dnsmasq configuration.
fn servers(conf: &str) -> Vec<&str> {
    conf.lines()
        .filter_map(|l| l.strip_prefix("server="))
        .collect()
}

/// The nodes whose DNS settings were read.
fn dns_reads(world: &World) -> BTreeSet<String> {
    world
        .pve
        .calls()
        .into_iter()
        .filter_map(|c| c.strip_prefix("node_dns ").map(str::to_owned))
        .collect()
}

/// `web` created and settled; its DNS container is on `pve1`.
fn web(world: &World) {
    world.create_sector("web", "172.16.0.0/24");
    world.settle();
    assert_eq!(world.output("web", "dns/node"), "pve1");
}

#[test]
fn without_cluster_upstreams_the_dns_nodes_resolvers_are_used() {
    let world = World::new();
    web(&world);
    assert_ready(&world, "web");
    // FakePve's default DNS settings: the LAN router and a public resolver.
    assert_eq!(servers(&dnsmasq_conf(&world)), ["192.168.100.1", "9.9.9.9"]);
    // Only the node running a Sector DNS is asked.
    assert_eq!(dns_reads(&world), BTreeSet::from(["pve1".to_owned()]));
    // Its queries leave the Sector only through the Sector Gateway: its
    // one interface is on the Sector, with the gateway as default route.
    let config = world.pve.config_of(world.vmid("web", "dns")).unwrap();
    let net0 = config.get("net0").expect("net0");
    assert!(
        net0.contains("ip=172.16.0.2/24") && net0.contains("gw=172.16.0.1"),
        "{net0}"
    );
    assert_eq!(config.get("net1"), None);
}

#[test]
fn loopback_and_ipv6_node_resolvers_are_skipped() {
    let world = World::new();
    set_node_dns(&world, "pve1", &["127.0.0.53", "::1", "192.0.2.53"]);
    web(&world);
    assert_ready(&world, "web");
    assert_eq!(servers(&dnsmasq_conf(&world)), ["192.0.2.53"]);
}

#[test]
fn cluster_upstreams_are_used_and_no_node_is_asked() {
    let world = World::new();
    set_node_dns(&world, "pve1", &["127.0.0.53"]);
    set_cluster_upstreams(&world, &["192.0.2.53", "198.51.100.53"]);
    world.forget_calls_and_pushes();
    web(&world);
    assert_ready(&world, "web");
    assert_eq!(
        servers(&dnsmasq_conf(&world)),
        ["192.0.2.53", "198.51.100.53"]
    );
    assert!(dns_reads(&world).is_empty(), "{:?}", world.pve.calls());
}

#[test]
fn no_usable_resolver_blocks_the_sector_and_still_configures_its_dns() {
    let world = World::new();
    set_node_dns(&world, "pve1", &["127.0.0.53", "::1"]);
    web(&world);

    let (reason, message) = not_ready(&world, "web");
    assert_eq!(reason, "Blocked");
    for part in [
        "the Sector DNS has no upstream resolver",
        "node pve1",
        "127.0.0.53 is a loopback address",
        "::1 is the IPv6 loopback address",
        "set spec.defaults.dns_upstreams in the Cluster manifest",
    ] {
        assert!(message.contains(part), "{part:?} not in: {message}");
    }
    // Its own names still resolve: the DNS is configured, forwarding nowhere.
    let conf = dnsmasq_conf(&world);
    assert!(servers(&conf).is_empty(), "{conf}");
    assert!(conf.contains("local=/web.orbitlab.internal/"), "{conf}");

    // The fix the message names makes it Ready.
    set_cluster_upstreams(&world, &["192.0.2.53"]);
    world.settle();
    assert_ready(&world, "web");
    assert_eq!(servers(&dnsmasq_conf(&world)), ["192.0.2.53"]);
}

#[test]
fn a_node_without_name_servers_blocks_the_sector_with_the_fix() {
    let world = World::new();
    set_node_dns(&world, "pve1", &[]);
    web(&world);
    let (reason, message) = not_ready(&world, "web");
    assert_eq!(reason, "Blocked");
    assert!(
        message.contains("node pve1, where it runs, has no name server")
            && message.contains("spec.defaults.dns_upstreams"),
        "{message}"
    );
}

#[test]
fn changed_upstreams_push_the_dns_configuration_again_and_only_it() {
    let world = World::new();
    web(&world);
    assert_ready(&world, "web");
    let dns = world.vmid("web", "dns");

    // The node's resolvers change (edited under System → DNS).
    world.forget_calls_and_pushes();
    set_node_dns(&world, "pve1", &["192.0.2.1"]);
    world.settle();
    assert_eq!(world.pushed_vmids(), BTreeSet::from([dns]), "the DNS only");
    assert_eq!(servers(&dnsmasq_conf(&world)), ["192.0.2.1"]);
    assert!(world.writes().is_empty(), "{:?}", world.writes());
    assert_ready(&world, "web");

    // The Cluster manifest names upstreams.
    world.forget_calls_and_pushes();
    set_cluster_upstreams(&world, &["198.51.100.53", "192.0.2.53"]);
    world.settle();
    assert_eq!(world.pushed_vmids(), BTreeSet::from([dns]), "the DNS only");
    assert_eq!(
        servers(&dnsmasq_conf(&world)),
        ["198.51.100.53", "192.0.2.53"]
    );
    assert_ready(&world, "web");

    // Their order is a change too.
    world.forget_calls_and_pushes();
    set_cluster_upstreams(&world, &["192.0.2.53", "198.51.100.53"]);
    world.settle();
    assert_eq!(
        servers(&dnsmasq_conf(&world)),
        ["192.0.2.53", "198.51.100.53"]
    );

    // Nothing changed: nothing is pushed.
    world.forget_calls_and_pushes();
    world.settle();
    assert!(world.pushes().is_empty(), "{:?}", world.pushes());
    assert_ready(&world, "web");
}

#[test]
fn unreadable_node_resolvers_keep_the_dns_configuration_and_the_sector_waits() {
    let world = World::new();
    web(&world);
    assert_ready(&world, "web");
    let before = dnsmasq_conf(&world);

    world.forget_calls_and_pushes();
    world.pve.fail_node_dns("pve1", true);
    world.settle();
    // Not pushed again without upstreams: the DNS keeps forwarding.
    assert!(world.pushes().is_empty(), "{:?}", world.pushes());
    let (reason, message) = not_ready(&world, "web");
    assert_eq!(reason, "Waiting");
    assert!(message.contains("DNS settings of node pve1"), "{message}");

    world.pve.fail_node_dns("pve1", false);
    world.settle();
    assert_ready(&world, "web");
    assert!(
        world.pushes().is_empty(),
        "nothing changed: {:?}",
        world.pushes()
    );
    assert_eq!(servers(&before), ["192.168.100.1", "9.9.9.9"]);
}
