//! Tasks (failure with Proxmox's message, deadline), retries only on safe
//! calls, timeouts, offline nodes, and the control API used from outside.

mod pve_common;

use std::time::Duration;

use orbitlab_engine::pve::SdnSpec;
use orbitlab_engine::pve::{
    ClientConfig, ClientOptions, LxcCreate, Pve, PveClient, PveError, RetryPolicy, Trust,
    ZoneConfig,
};
use orbitlab_sim::pve::{DEFAULT_TEMPLATE, FaultSpec, PveVersion};
use pve_common::*;

fn ct(vmid: u32) -> LxcCreate {
    LxcCreate {
        vmid,
        ostemplate: DEFAULT_TEMPLATE.into(),
        hostname: Some(format!("ct{vmid}")),
        rootfs: Some("local-lvm:4".into()),
        ..LxcCreate::default()
    }
}

#[test]
fn a_failed_task_is_reported_with_its_message() {
    let (sim, c) = sim_and_client(PveVersion::V8_4);
    sim.fail_next_task(
        "vzcreate",
        "unable to create CT 200 - no space left on device",
    );
    let upid = c.lxc_create("pve2", &ct(200)).expect("create accepted");
    assert_eq!(upid.node(), "pve2");
    assert_eq!(upid.kind(), "vzcreate");
    let err = c.wait_task(&upid, DEADLINE).expect_err("task failed");
    match &err {
        PveError::TaskFailed {
            upid: u,
            exitstatus,
        } => {
            assert_eq!(u, upid.as_str());
            assert_eq!(
                exitstatus,
                "unable to create CT 200 - no space left on device"
            );
        }
        other => panic!("expected TaskFailed, got {other:?}"),
    }
    assert!(err.to_string().contains("no space left on device"));
    // Proxmox removes a container whose create failed.
    assert!(c.lxc_list("pve2").expect("list").is_empty());
}

#[test]
fn a_task_that_outlives_its_deadline_is_its_own_error() {
    let (sim, c) = sim_and_client(PveVersion::V8_4);
    sim.set_task_duration(Duration::from_secs(30));
    let upid = c.lxc_create("pve1", &ct(101)).expect("create");
    let err = c
        .wait_task(&upid, Duration::from_millis(300))
        .expect_err("deadline");
    match err {
        PveError::TaskDeadline { upid: u, waited } => {
            assert_eq!(u, upid.as_str());
            assert!(waited >= Duration::from_millis(300));
        }
        other => panic!("expected TaskDeadline, got {other:?}"),
    }
    // Still locked by the running create.
    assert_eq!(
        c.lxc_config("pve1", 101).expect("config").lock().as_deref(),
        Some("create")
    );
}

#[test]
fn a_transient_error_on_a_read_is_retried() {
    let (sim, c) = sim_and_client(PveVersion::V8_4);
    sim.inject_fault(FaultSpec {
        method: Some("GET".into()),
        path_contains: "/cluster/sdn/zones".into(),
        nth: 1,
        status: 503,
        message: "service unavailable".into(),
    });
    assert!(c.sdn_zones().expect("retried and succeeded").is_empty());
    let gets: Vec<u16> = sim
        .requests()
        .iter()
        .filter(|r| r.path == "/cluster/sdn/zones")
        .map(|r| r.status)
        .collect();
    assert_eq!(gets, vec![503, 200]);
}

#[test]
fn a_transient_error_on_a_create_is_not_retried() {
    let (sim, c) = sim_and_client(PveVersion::V8_4);
    sim.inject_fault(FaultSpec {
        method: Some("POST".into()),
        path_contains: "/cluster/sdn/zones".into(),
        nth: 1,
        status: 503,
        message: "proxy loop detected".into(),
    });
    let zone = ZoneConfig {
        kind: Some("simple".into()),
        ..ZoneConfig::default()
    };
    let err = c
        .sdn_create("z1", SdnSpec::Zone(&zone), None)
        .expect_err("surfaced");
    assert_eq!(err.status(), Some(503));
    assert!(err.to_string().contains("proxy loop detected"), "{err}");
    let posts = sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/cluster/sdn/zones")
        .count();
    assert_eq!(posts, 1, "a create must be sent once");
    // Deterministic errors are not retried even on reads.
    let err = c.lxc_config("pve1", 999).expect_err("no such CT");
    assert_eq!(err.status(), Some(500));
    assert_eq!(
        sim.requests()
            .iter()
            .filter(|r| r.path.ends_with("/999/config"))
            .count(),
        1
    );
}

#[test]
fn every_call_has_a_timeout() {
    let sim = start(PveVersion::V8_4);
    sim.set_latency(Duration::from_secs(2));
    let c = PveClient::new(ClientConfig {
        base_url: sim.base_url(),
        trust: Trust::LoopbackHttp,
        credentials: token(),
        options: ClientOptions {
            timeout: Duration::from_millis(200),
            retry: RetryPolicy {
                attempts: 1,
                ..RetryPolicy::default()
            },
            ..ClientOptions::default()
        },
    })
    .expect("client");
    let err = c.nodes().expect_err("timed out");
    assert!(matches!(err, PveError::Timeout { .. }), "{err:?}");
    assert!(err.is_transient());
}

#[test]
fn calls_to_an_offline_node_fail_and_cluster_status_shows_it() {
    let (sim, c) = sim_and_client(PveVersion::V8_4);
    assert!(sim.set_node_online("pve3", false));
    let err = c.lxc_list("pve3").expect_err("offline");
    assert_eq!(err.status(), Some(595));
    let st = c.cluster_status().expect("status");
    let pve3 = st.iter().find(|e| e.name == "pve3").expect("pve3");
    assert_eq!(pve3.online, Some(false));
    let cluster = st.iter().find(|e| e.kind == "cluster").expect("cluster");
    assert_eq!(cluster.quorate, Some(true));
    assert!(c.lxc_list("pve1").expect("pve1 fine").is_empty());
}

#[test]
fn other_processes_drive_the_simulator_through_the_control_api() {
    let (sim, c) = sim_and_client(PveVersion::V8_4);
    let http = reqwest::blocking::Client::new();
    let origin = sim.origin();
    let resp = http
        .post(format!("{origin}/_sim/faults"))
        .json(&serde_json::json!({"method": "GET", "path_contains": "/nodes", "nth": 2, "status": 500, "message": "injected"}))
        .send()
        .expect("control");
    assert!(resp.status().is_success());
    c.nodes().expect("first passes");
    let err = c.nodes().expect_err("second fails");
    assert!(err.to_string().contains("injected"), "{err}");
    c.nodes().expect("fault fired once");
    let log: Vec<serde_json::Value> = http
        .get(format!("{origin}/_sim/requests"))
        .send()
        .expect("log")
        .json()
        .expect("json");
    assert_eq!(log.len(), 3);
    assert_eq!(log[1]["status"], 500);
    http.post(format!("{origin}/_sim/nodes/pve2"))
        .json(&serde_json::json!({"online": false}))
        .send()
        .expect("drop");
    let state: serde_json::Value = http
        .get(format!("{origin}/_sim/state"))
        .send()
        .expect("state")
        .json()
        .expect("json");
    assert_eq!(state["nodes"]["pve2"]["online"], false);
    http.post(format!("{origin}/_sim/task-failures"))
        .json(&serde_json::json!({"task_type": "vzstart", "message": "startup for container '100' failed"}))
        .send()
        .expect("task failure");
    c.wait_task(&c.lxc_create("pve1", &ct(100)).expect("create"), DEADLINE)
        .expect("created");
    let err = c
        .wait_task(&c.lxc_start("pve1", 100).expect("start"), DEADLINE)
        .expect_err("start fails");
    assert!(
        err.to_string()
            .contains("startup for container '100' failed"),
        "{err}"
    );
}
