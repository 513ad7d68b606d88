//! `GET /nodes/{node}/dns` as the simulator serves it, over plain HTTP on
//! both Proxmox VE versions: the answer holds only the keys the official
//! schema's `returns` defines, with their types; the default name servers
//! are usable ones (not loopback); tests and other processes set them
//! through the handle and `POST /_sim/nodes/{node}/dns`; an offline node
//! answers 595 as Proxmox's proxy does; a parameter the schema does not
//! define is refused.

use std::collections::BTreeMap;
use std::net::IpAddr;

use orbitlab_sim::pve::{DEFAULT_TOKEN_SECRET, PveSim, PveVersion, SimConfig, SimHandle};
use reqwest::blocking::Client;
use serde_json::{Value, json};

fn start(version: PveVersion) -> SimHandle {
    PveSim::start(SimConfig {
        version,
        ..SimConfig::default()
    })
    .expect("simulator starts")
}

/// `GET /nodes/{node}/dns` (with extra query parameters): status and body.
fn get_dns(sim: &SimHandle, node: &str, query: &[(&str, &str)]) -> (u16, Value) {
    let resp = Client::new()
        .get(format!("{}/nodes/{node}/dns", sim.base_url()))
        .header(
            "Authorization",
            format!("PVEAPIToken=root@pam!orbitlab={DEFAULT_TOKEN_SECRET}"),
        )
        .query(query)
        .send()
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

/// The `returns` properties of `GET /nodes/{node}/dns` in the official
/// schema of `version`, by name: (type, optional).
fn official_returns(version: PveVersion) -> Option<BTreeMap<String, (String, bool)>> {
    let dir = orbitlab_sim::pve::schema::official_schema_dir("GET /nodes/{node}/dns")?;
    let file = dir.join(format!("pve-api-schema-full-pve{}.json", version.release()));
    let tree: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    fn find<'a>(n: &'a Value, path: &str) -> Option<&'a Value> {
        if n["path"] == path {
            return Some(n);
        }
        n["children"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|c| find(c, path))
    }
    let node = tree
        .as_array()
        .unwrap()
        .iter()
        .find_map(|n| find(n, "/nodes/{node}/dns"))
        .expect("the schema has /nodes/{node}/dns");
    let returns = &node["info"]["GET"]["returns"];
    assert_eq!(returns["type"], "object");
    assert_eq!(returns["additionalProperties"], 0);
    Some(
        returns["properties"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let optional = v["optional"] == 1;
                (
                    k.clone(),
                    (v["type"].as_str().unwrap().to_owned(), optional),
                )
            })
            .collect(),
    )
}

/// Every key of `answer` is one the schema returns, with its type; every
/// key the schema requires is there.
fn assert_schema_true(version: PveVersion, answer: &Value) {
    let Some(returns) = official_returns(version) else {
        return;
    };
    let object = answer.as_object().expect("an object");
    for (key, value) in object {
        let (kind, _) = returns
            .get(key)
            .unwrap_or_else(|| panic!("[{version}] {key} is not in the schema's returns"));
        assert_eq!(kind, "string", "[{version}] {key}");
        assert!(value.is_string(), "[{version}] {key}: {value}");
    }
    for (key, (_, optional)) in &returns {
        assert!(
            *optional || object.contains_key(key),
            "[{version}] {key} missing"
        );
    }
}

#[test]
fn node_dns_answers_schema_true_with_usable_resolvers_by_default() {
    for version in PveVersion::ALL {
        let sim = start(version);
        let (status, body) = get_dns(&sim, "pve2", &[]);
        assert_eq!(status, 200, "[{version}] {body}");
        let data = &body["data"];
        assert_schema_true(version, data);
        assert_eq!(
            data,
            &json!({"dns1": "192.168.100.1", "dns2": "9.9.9.9", "search": "lab.example"}),
            "[{version}]"
        );
        for key in ["dns1", "dns2"] {
            let addr: IpAddr = data[key].as_str().unwrap().parse().unwrap();
            assert!(!addr.is_loopback(), "[{version}] {key} {addr}");
        }
    }
}

#[test]
fn node_dns_is_set_through_the_handle_and_the_control_api() {
    for version in PveVersion::ALL {
        let sim = start(version);
        assert_eq!(
            sim.set_node_dns("pve1", &["127.0.0.53", "::1", "192.0.2.53"], None),
            Ok(true)
        );
        let (status, body) = get_dns(&sim, "pve1", &[]);
        assert_eq!(status, 200, "{body}");
        assert_schema_true(version, &body["data"]);
        assert_eq!(
            body["data"],
            json!({"dns1": "127.0.0.53", "dns2": "::1", "dns3": "192.0.2.53"})
        );
        // Another node keeps its own.
        assert_eq!(
            get_dns(&sim, "pve2", &[]).1["data"]["dns1"],
            "192.168.100.1"
        );

        let control = |node: &str, body: Value| {
            let resp = Client::new()
                .post(format!("{}/_sim/nodes/{node}/dns", sim.origin()))
                .json(&body)
                .send()
                .expect("control request");
            resp.status().as_u16()
        };
        assert_eq!(
            control("pve1", json!({"servers": [], "search": "corp.example"})),
            200
        );
        assert_eq!(
            get_dns(&sim, "pve1", &[]).1["data"],
            json!({"search": "corp.example"})
        );
        assert_eq!(control("pve9", json!({"servers": ["192.0.2.1"]})), 404);
        assert_eq!(control("pve1", json!({"servers": ["not-an-ip"]})), 400);
        assert_eq!(
            control(
                "pve1",
                json!({"servers": ["1.1.1.1", "1.0.0.1", "9.9.9.9", "8.8.8.8"]})
            ),
            400
        );
        assert!(sim.set_node_dns("pve1", &["a", "b"], None).is_err());
        assert_eq!(sim.set_node_dns("nosuch", &[], None), Ok(false));
        // Refusals changed nothing.
        assert_eq!(
            get_dns(&sim, "pve1", &[]).1["data"],
            json!({"search": "corp.example"})
        );
    }
}

#[test]
fn node_dns_of_an_offline_node_or_with_unknown_parameters_is_refused() {
    let sim = start(PveVersion::V9_1);
    let (status, body) = get_dns(&sim, "pve1", &[("verbose", "1")]);
    assert_eq!(status, 400, "{body}");
    assert!(body["errors"]["verbose"].is_string(), "{body}");
    sim.set_node_online("pve3", false);
    assert_eq!(get_dns(&sim, "pve3", &[]).0, 595);
    assert_eq!(get_dns(&sim, "pve1", &[]).0, 200);
}
