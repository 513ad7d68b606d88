//! The simulator refuses each class of bad request the way Proxmox does
//! (HTTP 400, `{"errors": {param: message}, "data": null}`), and the
//! client surfaces Proxmox's messages intact.

mod pve_common;

use std::collections::BTreeMap;

use orbitlab_engine::pve::SdnSpec;
use orbitlab_engine::pve::{ApiErrorKind, LxcCreate, Pve, PveClient, PveError, Retry, ZoneConfig};
use orbitlab_sim::pve::{DEFAULT_TOKEN_SECRET, PveVersion};
use pve_common::*;
use reqwest::Method;

fn params(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// Send a call and return Proxmox's per-parameter errors.
fn refused(
    client: &PveClient,
    method: Method,
    path: &str,
    list: &[(&str, &str)],
) -> BTreeMap<String, String> {
    let err = client
        .call(method, path, &params(list), Retry::Never)
        .expect_err("refused");
    assert_eq!(err.status(), Some(400), "{err}");
    let PveError::Api {
        message,
        kind: ApiErrorKind::Invalid(errors),
        ..
    } = &err
    else {
        panic!("not an API error: {err:?}");
    };
    assert_eq!(message, "Parameter verification failed.");
    for (k, v) in errors {
        assert!(err.to_string().contains(&format!("{k}: {v}")), "{err}");
    }
    errors.clone()
}

const NOT_DEFINED: &str =
    "property is not defined in schema and the schema does not allow additional properties";

#[test]
fn each_class_of_bad_request_is_refused_with_proxmox_errors() {
    let (sim, c) = sim_and_client(PveVersion::V9_1);
    let zones = "/cluster/sdn/zones";
    // Unknown parameter.
    let e = refused(
        &c,
        Method::POST,
        zones,
        &[("zone", "z1"), ("type", "simple"), ("colour", "blue")],
    );
    assert_eq!(e["colour"], NOT_DEFINED);
    // Wrong type.
    let e = refused(
        &c,
        Method::POST,
        zones,
        &[("zone", "z1"), ("type", "simple"), ("mtu", "big")],
    );
    assert_eq!(e["mtu"], "type check ('integer') failed - got 'big'");
    let e = refused(
        &c,
        Method::POST,
        zones,
        &[
            ("zone", "z1"),
            ("type", "simple"),
            ("advertise-subnets", "maybe"),
        ],
    );
    assert_eq!(
        e["advertise-subnets"],
        "type check ('boolean') failed - got 'maybe'"
    );
    // Out of range.
    let e = refused(
        &c,
        Method::POST,
        zones,
        &[("zone", "z1"), ("type", "evpn"), ("vrf-vxlan", "16777216")],
    );
    assert_eq!(
        e["vrf-vxlan"],
        "value must have a maximum value of 16777215"
    );
    let e = refused(&c, Method::GET, "/cluster/nextid", &[("vmid", "99")]);
    assert_eq!(e["vmid"], "value must have a minimum value of 100");
    // Bad enum.
    let e = refused(
        &c,
        Method::POST,
        zones,
        &[("zone", "z1"), ("type", "token-ring")],
    );
    assert_eq!(
        e["type"],
        "value 'token-ring' does not have a value in the enumeration 'evpn, faucet, qinq, simple, vlan, vxlan'"
    );
    // Missing required.
    let e = refused(&c, Method::POST, zones, &[("zone", "z1")]);
    assert_eq!(e["type"], "property is missing and it is not optional");
    // Malformed property strings.
    let e = refused(
        &c,
        Method::POST,
        "/nodes/pve1/lxc",
        &[
            ("vmid", "100"),
            ("ostemplate", "local:vztmpl/x.tar.zst"),
            ("net0", "bridge=vmbr0,colour=blue"),
            ("rootfs", "local-lvm:8,size=big"),
        ],
    );
    assert!(
        e["net0"].starts_with("invalid format - format error"),
        "{e:?}"
    );
    assert!(
        e["net0"].contains(&format!("net0.colour: {NOT_DEFINED}")),
        "{e:?}"
    );
    assert!(
        e["net0"].contains("net0.name: property is missing and it is not optional"),
        "{e:?}"
    );
    assert!(e["rootfs"].contains("rootfs.size: invalid format"), "{e:?}");
    // Bad named formats.
    let e = refused(
        &c,
        Method::POST,
        zones,
        &[("zone", "Zone_1"), ("type", "simple")],
    );
    assert_eq!(
        e["zone"],
        "invalid format - zone ID 'Zone_1' contains illegal characters"
    );
    let e = refused(
        &c,
        Method::POST,
        zones,
        &[("zone", "zonezone9"), ("type", "simple")],
    );
    assert_eq!(
        e["zone"],
        "invalid format - zone ID 'zonezone9' can't be more length than 8 characters"
    );
    let e = refused(
        &c,
        Method::POST,
        zones,
        &[
            ("zone", "z1"),
            ("type", "vxlan"),
            ("peers", "10.0.0.1,not-an-ip"),
        ],
    );
    assert_eq!(
        e["peers"],
        "invalid format - value 'not-an-ip' does not look like a valid IP address"
    );
    let e = refused(&c, Method::GET, "/nodes/bad_node/lxc", &[]);
    assert!(e["node"].starts_with("invalid format"), "{e:?}");
    let e = refused(
        &c,
        Method::POST,
        "/cluster/sdn/controllers",
        &[("controller", "9ctl"), ("type", "evpn")],
    );
    assert!(
        e["controller"].contains("contains illegal characters"),
        "{e:?}"
    );
    // Several errors at once, one per parameter.
    let e = refused(
        &c,
        Method::POST,
        zones,
        &[("zone", "Z"), ("type", "nope"), ("mtu", "x")],
    );
    assert_eq!(e.len(), 3, "{e:?}");
    // Nothing changed.
    assert!(sim.with_state(|st| st.sdn.current.zones.is_empty() && st.guests.is_empty()));
}

#[test]
fn typed_calls_surface_the_same_errors_as_the_raw_answer() {
    let (sim, c) = sim_and_client(PveVersion::V8_4);
    let zone = ZoneConfig {
        kind: Some("vxlan".into()),
        peers: Some("10.0.0.1".into()),
        mtu: Some(1450),
        ..ZoneConfig::default()
    };
    let err = c
        .sdn_create("Bad_Zone", SdnSpec::Zone(&zone), None)
        .expect_err("refused");
    let got = err.param_errors().expect("param errors").clone();
    // The raw answer, fetched without the client.
    let raw: serde_json::Value = reqwest::blocking::Client::new()
        .post(format!("{}/cluster/sdn/zones", sim.base_url()))
        .header(
            "Authorization",
            format!("PVEAPIToken=root@pam!orbitlab={DEFAULT_TOKEN_SECRET}"),
        )
        .form(&[
            ("zone", "Bad_Zone"),
            ("type", "vxlan"),
            ("peers", "10.0.0.1"),
            ("mtu", "1450"),
        ])
        .send()
        .expect("raw")
        .json()
        .expect("json");
    assert_eq!(raw["data"], serde_json::Value::Null);
    let raw_errors: BTreeMap<String, String> =
        serde_json::from_value(raw["errors"].clone()).expect("errors map");
    assert_eq!(got, raw_errors);
    // A handler error (500) keeps Proxmox's message from the status line.
    c.sdn_create("z1", SdnSpec::Zone(&zone), None)
        .expect("create");
    let err = c
        .sdn_create("z1", SdnSpec::Zone(&zone), None)
        .expect_err("duplicate");
    assert_eq!(err.status(), Some(500));
    assert_eq!(err.kind(), Some(&ApiErrorKind::AlreadyExists), "{err}");
    assert!(
        err.to_string()
            .contains("sdn zone object ID 'z1' already defined"),
        "{err}"
    );
    // A create missing a required property of the zone type.
    let err = c
        .sdn_create(
            "z2",
            SdnSpec::Zone(&ZoneConfig {
                kind: Some("vxlan".into()),
                ..ZoneConfig::default()
            }),
            None,
        )
        .expect_err("peers needed");
    assert_eq!(
        err.param_errors().expect("errors")["peers"],
        "property is missing and it is not optional"
    );
    // An LXC create with a bad template surfaces Proxmox's message.
    let err = c
        .lxc_create(
            "pve1",
            &LxcCreate {
                vmid: 100,
                ostemplate: "local:vztmpl/nope.tar.zst".into(),
                ..LxcCreate::default()
            },
        )
        .expect_err("no template");
    assert!(
        err.to_string()
            .contains("volume 'local:vztmpl/nope.tar.zst' does not exist"),
        "{err}"
    );
}

#[test]
fn unknown_endpoints_and_methods_are_not_implemented() {
    let (_sim, c) = sim_and_client(PveVersion::V8_4);
    let err = c
        .call(Method::POST, "/cluster/sdn/lock", &[], Retry::Never)
        .expect_err("8.4 has no SDN lock");
    assert_eq!(err.status(), Some(501), "{err}");
    let err = c
        .call(Method::PATCH, "/cluster/sdn", &[], Retry::Never)
        .expect_err("no PATCH");
    assert_eq!(err.status(), Some(501), "{err}");
}
