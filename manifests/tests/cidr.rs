//! Sector and subnet CIDR rules, each refusal located and naming the field.

mod common;

use common::{decode_ok, doc, find, sector, set_err, set_ok};
use orbitlab_manifests::{Kind, ManifestSet};

fn validate_errors(text: &str) -> orbitlab_manifests::ManifestErrors {
    let docs = decode_ok("sector/web.yaml", text);
    docs[0].validate().expect_err("should be refused")
}

#[test]
fn subnet_outside_the_sector_cidr() {
    let text = sector(
        "web",
        "172.16.0.0/16",
        "subnets:\n  - name: a\n    cidr: 172.16.0.0/24\n  - name: b\n    cidr: 10.9.0.0/24",
    );
    let errors = validate_errors(&text);
    let e = find(&errors, "spec.subnets[1].cidr");
    assert_eq!(
        e.to_string(),
        "sector/web.yaml:11: spec.subnets[1].cidr: 10.9.0.0/24 is outside the Sector CIDR 172.16.0.0/16"
    );
}

#[test]
fn overlapping_subnets_inside_one_sector() {
    let text = sector(
        "web",
        "172.16.0.0/16",
        "subnets:\n  - name: a\n    cidr: 172.16.0.0/23\n  - name: b\n    cidr: 172.16.1.0/24\n  - name: a\n    cidr: 172.16.8.0/24",
    );
    let errors = validate_errors(&text);
    let e = find(&errors, "spec.subnets[1].cidr");
    assert_eq!(e.line, Some(11));
    assert!(
        e.reason
            .contains("172.16.1.0/24 overlaps subnet a (172.16.0.0/23)"),
        "{e}"
    );
    let e = find(&errors, "spec.subnets[2].name");
    assert!(e.reason.contains("subnet name a is already used"), "{e}");
}

#[test]
fn reserved_and_malformed_cidrs() {
    let cases = [
        ("10.1.2.3/16", "has host bits set; write 10.1.0.0/16"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("224.0.0.0/8", "multicast"),
        ("240.0.0.0/8", "reserved and broadcast"),
        ("255.255.255.240/28", "reserved and broadcast"),
        ("0.0.0.0/8", "\"this network\""),
        ("10.0.0.0/8", "prefix /8 is larger than OrbitLab allows"),
        (
            "10.0.0.0/29",
            "leaves no address for an instance after the network, gateway (.1), DNS (.2), reserved (.3-.9)",
        ),
        ("10.0.0.0/32", "leaves no address for an instance"),
    ];
    for (cidr, want) in cases {
        let errors = validate_errors(&sector("web", cidr, ""));
        let e = find(&errors, "spec.cidr");
        assert_eq!(e.line, Some(6), "{cidr}");
        assert!(e.reason.contains(want), "{cidr}: expected {want:?} in {e}");
    }
    // The smallest usable Sector: /28 (gateway, DNS, reserve, five instances).
    assert!(
        decode_ok("s.yaml", &sector("web", "10.0.0.16/28", ""))[0]
            .validate()
            .is_ok()
    );
}

#[test]
fn malformed_cidr_text() {
    for (cidr, want) in [
        ("10.1.0.0/33", "is not an IPv4 network in CIDR form"),
        ("fd00::/64", "is not an IPv4 network"),
        ("web", "is not an IPv4 network in CIDR form"),
        ("10.1.0.0", "has no prefix length"),
    ] {
        let e = common::decode_err("s.yaml", &sector("web", cidr, ""));
        assert_eq!(e.field, "spec.cidr");
        assert!(e.reason.contains(want), "{cidr}: {e}");
    }
}

#[test]
fn cidrs_may_overlap_between_sectors() {
    let set = set_ok(&[
        ("a.yaml", &sector("a", "172.16.0.0/16", "")),
        ("b.yaml", &sector("b", "172.16.0.0/16", "")),
        ("c.yaml", &sector("c", "172.16.5.0/24", "")),
    ]);
    assert_eq!(set.of_kind(Kind::Sector).count(), 3);
}

#[test]
fn sectors_stay_clear_of_the_backplane() {
    let errors = set_err(&[("web.yaml", &sector("web", "10.200.4.0/24", ""))]);
    let e = find(&errors, "spec.cidr");
    assert!(
        e.reason
            .contains("overlaps the Backplane network 10.200.0.0/16"),
        "{e}"
    );

    // With a Cluster manifest, its Backplane counts.
    let cluster = doc("Cluster", "main", "backplane:\n  cidr: 10.50.0.0/16");
    let set = ManifestSet::new(
        [
            decode_ok("c.yaml", &cluster),
            decode_ok("web.yaml", &sector("web", "10.200.4.0/24", "")),
        ]
        .concat(),
    );
    assert!(set.is_ok(), "{:?}", set.err());
    let errors = set_err(&[
        ("c.yaml", &cluster),
        ("web.yaml", &sector("web", "10.50.0.0/16", "")),
    ]);
    assert!(find(&errors, "spec.cidr").reason.contains("10.50.0.0/16"));
}

#[test]
fn backplane_rules() {
    let docs = decode_ok(
        "c.yaml",
        &doc(
            "Cluster",
            "main",
            "backplane:\n  cidr: 10.200.0.0/25\n  vnet_tag: 2000",
        ),
    );
    let errors = docs[0].validate().expect_err("refused");
    assert!(
        find(&errors, "spec.backplane.cidr")
            .reason
            .contains("too small for the Backplane")
    );
    let e = find(&errors, "spec.backplane.vnet_tag");
    assert_eq!(e.line, Some(8));
    assert!(
        e.reason
            .contains("the range OrbitLab uses for Sector VNets"),
        "{e}"
    );
}

#[test]
fn ingress_addresses_are_checked() {
    let text = sector(
        "web",
        "10.1.0.0/24",
        "ingress:\n  - {name: a, protocol: tcp, port: 80, to_address: 10.1.0.2}\n  - {name: b, protocol: udp, port: 80, to_address: 10.1.0.255}",
    );
    let errors = validate_errors(&text);
    assert!(
        find(&errors, "spec.ingress[0].to_address")
            .reason
            .contains("Sector DNS address")
    );
    assert!(
        find(&errors, "spec.ingress[1].to_address")
            .reason
            .contains("broadcast")
    );
}
