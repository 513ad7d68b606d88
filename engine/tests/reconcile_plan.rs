//! The planner as a pure function: hand-built desired and observed states,
//! and the steps (or refusals) it must produce.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use orbitlab_engine::reconcile::ids::Marker;
use orbitlab_engine::reconcile::observed::{
    ContainerObs, ControllerObs, NodeObs, Observed, Pending, SubnetObs, UnrecognizedSdn, Uplink,
    VnetObs, ZoneObs,
};
use orbitlab_engine::reconcile::plan::ApplianceChoice;
use orbitlab_engine::reconcile::plan::plan as compute;
use orbitlab_engine::reconcile::{Action, Desired, ObjectRef, Plan};
use orbitlab_manifests::{ApplianceRole, ClusterSpec, Kind, Name, SectorSpec};

fn name(n: &str) -> Name {
    n.parse().unwrap()
}

fn cluster() -> Desired {
    Desired {
        cluster: Some((name("lab"), ClusterSpec::default())),
        sectors: BTreeMap::new(),
        appliances: [
            (ApplianceRole::Gateway, "local:vztmpl/gw.tar.zst"),
            (ApplianceRole::Dns, "local:vztmpl/dns.tar.zst"),
        ]
        .into_iter()
        .map(|(role, template)| {
            let choice = ApplianceChoice {
                template: template.into(),
                memory_mib: 128,
                manifest: None,
            };
            (role, choice)
        })
        .collect(),
        ..Desired::default()
    }
}

fn with_sectors(mut desired: Desired, sectors: &[(&str, &str)]) -> Desired {
    for (n, cidr) in sectors {
        desired
            .sectors
            .insert(name(n), SectorSpec::new(cidr.parse().unwrap()));
    }
    desired
}

/// A typed id from its text (test data is always valid).
fn id<T: std::str::FromStr>(text: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    text.parse().unwrap()
}

fn object(kind: Kind, name: &str) -> ObjectRef {
    ObjectRef::new(kind, &id(name))
}

fn three_nodes() -> Observed {
    let mut observed = Observed {
        pve_major: 8,
        ..Observed::default()
    };
    for (i, node) in ["pve1", "pve2", "pve3"].iter().enumerate() {
        let address = Ipv4Addr::new(192, 168, 100, 11 + i as u8);
        observed.nodes.insert(
            id(node),
            NodeObs {
                online: true,
                uplink: Some(Uplink {
                    address,
                    network: "192.168.100.0/24".parse().unwrap(),
                    mtu: 1500,
                }),
            },
        );
    }
    observed
}

fn lines(plan: &Plan) -> Vec<String> {
    plan.actions.iter().map(ToString::to_string).collect()
}

fn blocked(plan: &Plan, kind: Kind, n: &str) -> String {
    plan.blocked
        .get(&object(kind, n))
        .cloned()
        .unwrap_or_else(|| panic!("{kind:?} {n} is not blocked: {plan:#?}"))
}

#[test]
fn a_fresh_cluster_with_one_sector() {
    let plan = compute(
        &with_sectors(cluster(), &[("web", "172.16.0.0/24")]),
        &three_nodes(),
    );
    assert!(plan.blocked.is_empty(), "{:?}", plan.blocked);
    insta::assert_snapshot!(lines(&plan).join("\n"));
    // Exactly one SDN apply, after every SDN edit and before any container.
    let apply = plan
        .actions
        .iter()
        .position(|a| *a == Action::ApplySdn)
        .unwrap();
    assert_eq!(
        plan.actions
            .iter()
            .filter(|a| **a == Action::ApplySdn)
            .count(),
        1
    );
    assert!(
        plan.actions[..apply]
            .iter()
            .all(|a| !matches!(a, Action::CreateContainer(_)))
    );
    assert!(
        plan.actions[apply..]
            .iter()
            .all(|a| !matches!(a, Action::CreateZone { .. } | Action::CreateVnet { .. }))
    );
}

#[test]
fn nothing_is_planned_before_init() {
    let plan = compute(
        &with_sectors(Desired::default(), &[("web", "172.16.0.0/24")]),
        &three_nodes(),
    );
    assert!(plan.actions.is_empty());
    assert!(blocked(&plan, Kind::Sector, "web").contains("orbitlab init"));
}

#[test]
fn new_sectors_get_the_lowest_free_tags_even_with_overlapping_cidrs() {
    let mut observed = three_nodes();
    // A VNet someone else made already uses 1001.
    observed.vnets.insert(
        id("theirs"),
        VnetObs {
            zone: Some(id("zz")),
            tag: Some(1001),
            alias: None,
            pending: None,
        },
    );
    let plan = compute(
        &with_sectors(cluster(), &[("a", "172.16.0.0/24"), ("b", "172.16.0.0/24")]),
        &observed,
    );
    let tags: Vec<(String, u32)> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::ReserveTag { sector, tag } => Some((sector.to_string(), tag.get())),
            _ => None,
        })
        .collect();
    assert_eq!(tags, [("a".to_string(), 1002), ("b".to_string(), 1003)]);
}

#[test]
fn init_refusals() {
    // An EVPN controller OrbitLab did not create.
    let mut observed = three_nodes();
    observed.controllers.insert(
        "evpn1".into(),
        ControllerObs {
            kind: "evpn".into(),
            asn: Some(65000),
            peers: vec![],
            pending: None,
        },
    );
    let plan = compute(
        &with_sectors(cluster(), &[("web", "172.16.0.0/24")]),
        &observed,
    );
    assert!(blocked(&plan, Kind::Cluster, "lab").contains("EVPN controller \"evpn1\""));
    assert!(blocked(&plan, Kind::Sector, "web").contains("Backplane is blocked"));
    assert!(plan.actions.is_empty());

    // Pending SDN changes someone else left.
    let mut observed = three_nodes();
    observed.zones.insert(
        id("myzone"),
        ZoneObs {
            kind: "simple".into(),
            controller: None,
            vrf_vxlan: None,
            peers: vec![],
            exitnodes: vec![],
            exitnodes_primary: None,
            advertise_subnets: false,
            mtu: None,
            pending: Some(Pending::New),
        },
    );
    let plan = compute(&cluster(), &observed);
    assert!(blocked(&plan, Kind::Cluster, "lab").contains("zone myzone"));
    assert!(
        !plan.actions.contains(&Action::ApplySdn),
        "would apply someone else's changes"
    );

    // A Backplane overlapping a node's network.
    let mut desired = cluster();
    if let Some((_, spec)) = &mut desired.cluster {
        spec.backplane.cidr = "192.168.0.0/16".parse().unwrap();
    }
    let plan = compute(&desired, &three_nodes());
    assert!(
        blocked(&plan, Kind::Cluster, "lab").contains("overlaps pve1's network 192.168.100.0/24")
    );

    // A node whose vmbr0 has no address.
    let mut observed = three_nodes();
    observed.nodes.get_mut("pve2").unwrap().uplink = None;
    let plan = compute(&cluster(), &observed);
    assert!(blocked(&plan, Kind::Cluster, "lab").contains("pve2"));
}

#[test]
fn exhausted_tags_and_addresses_are_refused_before_anything_is_made() {
    let mut observed = three_nodes();
    // Every tag is taken by VNets OrbitLab did not make.
    for tag in 1001..=9999 {
        observed.vnets.insert(
            id(&format!("v{tag}")),
            VnetObs {
                zone: Some(id("zz")),
                tag: Some(tag),
                alias: None,
                pending: None,
            },
        );
    }
    let plan = compute(
        &with_sectors(cluster(), &[("web", "172.16.0.0/24")]),
        &observed,
    );
    assert!(
        blocked(&plan, Kind::Sector, "web").contains("all 8999 VNet tags 1001–9999 are in use")
    );
    assert!(plan.steps_of(&object(Kind::Sector, "web")).next().is_none());

    // A /24 Backplane holds 245 ordinary addresses.
    let mut desired = with_sectors(cluster(), &[("web", "172.16.0.0/24")]);
    if let Some((_, spec)) = &mut desired.cluster {
        spec.backplane.cidr = "10.200.0.0/24".parse().unwrap();
    }
    let mut observed = three_nodes();
    for i in 10..255u8 {
        observed
            .addresses
            .entry(id(&format!("lxc/other{i}")))
            .or_default()
            .insert(id("backplane"), Ipv4Addr::new(10, 200, 0, i));
    }
    let plan = compute(&desired, &observed);
    let reason = blocked(&plan, Kind::Sector, "web");
    assert!(
        reason.contains("IPAM pool backplane (10.200.0.0/24) is exhausted: 245 of its 245"),
        "{reason}"
    );
    assert!(plan.steps_of(&object(Kind::Sector, "web")).next().is_none());
}

#[test]
fn a_deleted_sector_is_torn_down_in_reverse_and_its_tag_released_last() {
    let mut observed = three_nodes();
    observed.tags.insert(1001, "old".into());
    observed.zones.insert(
        id("olz1001"),
        ZoneObs {
            kind: "vxlan".into(),
            controller: None,
            vrf_vxlan: None,
            peers: vec![],
            exitnodes: vec![],
            exitnodes_primary: None,
            advertise_subnets: false,
            mtu: Some(1450),
            pending: None,
        },
    );
    observed.vnets.insert(
        id("olvn1001"),
        VnetObs {
            zone: Some(id("olz1001")),
            tag: Some(1001),
            alias: None,
            pending: None,
        },
    );
    observed.subnets.insert(
        id("olz1001-172.16.0.0-24"),
        SubnetObs {
            vnet: id("olvn1001"),
            cidr: "172.16.0.0/24".parse().unwrap(),
            gateway: None,
            snat: false,
            pending: None,
        },
    );
    let marker: Marker = "orbitlab:sector/old/gateway".parse().unwrap();
    observed.containers.insert(
        id("120"),
        ContainerObs {
            node: id("pve2"),
            hostname: Some("olvn1001-router".into()),
            running: true,
            marker: Some(marker),
            config: BTreeMap::new(),
            version: None,
            booted: None,
            usage: None,
        },
    );
    observed
        .addresses
        .entry(id("sector/old/gateway"))
        .or_default()
        .insert(id("backplane"), Ipv4Addr::new(10, 200, 0, 10));
    let desired = Desired::default();
    let plan = compute(&desired, &observed);
    assert_eq!(
        lines(&plan),
        [
            "stop and destroy container 120 on pve2",
            "delete subnet olz1001-172.16.0.0-24 of vnet olvn1001",
            "delete vnet olvn1001",
            "delete zone olz1001",
            "apply pending SDN changes (PUT /cluster/sdn)",
            "release IPAM addresses of sector/old",
        ]
    );
    // Once Proxmox no longer has the VNet, the tag and the status go.
    let mut after = three_nodes();
    after.tags.insert(1001, "old".into());
    after.statuses.insert(object(Kind::Sector, "old"));
    let plan = compute(&desired, &after);
    assert_eq!(
        lines(&plan),
        [
            "release VNet tag 1001 of deleted sector old",
            "remove status of deleted sector old"
        ]
    );
}

#[test]
fn appliance_manifests_choose_the_template_and_memory_of_new_containers() {
    let yaml = "apiVersion: orbitlab.io/v1\nkind: Appliance\nmetadata:\n  name: gw\nspec:\n  role: gateway\n  template: local:vztmpl/orbitlab-gateway_0.1.0_amd64.tar.zst\n  version: 0.1.0\n  memory: 256\n";
    let documents = orbitlab_manifests::codec::decode("gw.yaml", yaml).unwrap();
    let set = orbitlab_manifests::ManifestSet::new(documents).unwrap();
    let from_set = Desired::from_set(&set);
    assert_eq!(from_set.appliance(ApplianceRole::Gateway).memory_mib, 256);
    assert_eq!(
        from_set.appliance(ApplianceRole::Dns).memory_mib,
        128,
        "no DNS Appliance: the default"
    );

    let mut desired = with_sectors(cluster(), &[("web", "172.16.0.0/24")]);
    desired.appliances.insert(
        ApplianceRole::Gateway,
        from_set.appliance(ApplianceRole::Gateway),
    );
    let plan = compute(&desired, &three_nodes());
    let created: Vec<(String, u32)> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateContainer(c) => Some((c.template.clone(), c.memory_mib)),
            _ => None,
        })
        .collect();
    assert_eq!(
        created,
        [
            (
                "local:vztmpl/orbitlab-gateway_0.1.0_amd64.tar.zst".to_owned(),
                256
            ),
            ("local:vztmpl/dns.tar.zst".to_owned(), 128),
        ]
    );
}

#[test]
fn a_name_too_long_for_its_ipam_pool_blocks_the_sector_instead_of_panicking() {
    let long = "s".repeat(63);
    let plan = compute(
        &with_sectors(
            cluster(),
            &[(&long, "172.16.0.0/24"), ("web", "172.17.0.0/24")],
        ),
        &three_nodes(),
    );
    let reason = blocked(&plan, Kind::Sector, &long);
    assert!(
        reason.contains("longer than the 64 characters IPAM allows")
            && reason.contains("a name of at most 43 characters"),
        "{reason}"
    );
    assert!(plan.steps_of(&object(Kind::Sector, &long)).next().is_none());
    assert!(
        plan.steps_of(&object(Kind::Sector, "web")).next().is_some(),
        "the other Sector is planned"
    );
}

#[test]
fn sdn_objects_with_ids_orbitlab_cannot_read_still_count() {
    let mut observed = three_nodes();
    observed.unrecognized.push(UnrecognizedSdn {
        what: "vnet",
        id: "longvnet1".into(),
        pending: None,
        tag: Some(1001),
    });
    let plan = compute(
        &with_sectors(cluster(), &[("web", "172.16.0.0/24")]),
        &observed,
    );
    assert!(
        lines(&plan).contains(&"reserve VNet tag 1002 for sector web".to_owned()),
        "its tag is in use: {:?}",
        lines(&plan)
    );

    observed.unrecognized[0].pending = Some(Pending::New);
    let plan = compute(
        &with_sectors(cluster(), &[("web", "172.16.0.0/24")]),
        &observed,
    );
    assert!(blocked(&plan, Kind::Sector, "web").contains("vnet longvnet1"));
    assert!(!lines(&plan).iter().any(|l| l.starts_with("apply")));
}
