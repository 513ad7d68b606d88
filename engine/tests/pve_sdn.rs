//! SDN through the client against the simulator: pending until applied,
//! the 9.x SDN lock used on 9.1 and not on 8.4 (asserted through the
//! request log), VNI uniqueness, subnet ids, dependencies on delete.

mod pve_common;

use orbitlab_engine::pve::SdnSpec;
use orbitlab_engine::pve::{
    ControllerConfig, PendingState, Pve, PveClient, PveError, SdnCollection, SdnTransaction,
    SubnetConfig, VnetConfig, ZoneConfig,
};
use orbitlab_sim::pve::{PveVersion, RequestRecord};
use pve_common::*;

fn backplane(
    c: &PveClient,
    lock: Option<&orbitlab_engine::pve::SdnLockToken>,
) -> orbitlab_engine::pve::Result<()> {
    c.sdn_create(
        "olevpn",
        SdnSpec::Controller(&ControllerConfig {
            kind: Some("evpn".into()),
            asn: Some(65001),
            peers: Some("192.168.100.11,192.168.100.12,192.168.100.13".into()),
            ..ControllerConfig::default()
        }),
        lock,
    )?;
    c.sdn_create(
        "olbp",
        SdnSpec::Zone(&ZoneConfig {
            kind: Some("evpn".into()),
            controller: Some("olevpn".into()),
            vrf_vxlan: Some(10),
            exitnodes: Some("pve1,pve2,pve3".into()),
            advertise_subnets: Some(true),
            mtu: Some(1450),
            ..ZoneConfig::default()
        }),
        lock,
    )?;
    c.sdn_create(
        "olbpnet",
        SdnSpec::Vnet(&VnetConfig {
            zone: Some("olbp".into()),
            tag: Some(100),
            ..VnetConfig::default()
        }),
        lock,
    )?;
    c.sdn_create(
        "10.200.0.0/16",
        SdnSpec::Subnet {
            vnet: "olbpnet",
            config: &SubnetConfig {
                gateway: Some("10.200.0.1".into()),
                snat: Some(true),
                ..SubnetConfig::default()
            },
        },
        lock,
    )
}

fn sdn_writes(log: &[RequestRecord]) -> Vec<&RequestRecord> {
    log.iter()
        .filter(|r| r.method != "GET" && r.path.starts_with("/cluster/sdn"))
        .collect()
}

/// A transaction on 9.x, which must not need an outside lock.
fn begin_9x(c: &PveClient) -> SdnTransaction<'_, ()> {
    let tx = SdnTransaction::begin(c, false, || -> Result<(), PveError> {
        panic!("9.x needs no outside lock")
    })
    .expect("begin");
    assert!(tx.token().is_some(), "9.x hands out a lock token");
    tx
}

#[test]
fn on_9x_the_sdn_lock_guards_every_edit_and_the_apply() {
    let (sim, c) = sim_and_client(PveVersion::V9_1);
    let tx = begin_9x(&c);
    backplane(&c, tx.token()).expect("edits");
    let task = tx.apply(DEADLINE).expect("apply");
    assert_eq!(task.exitstatus.as_deref(), Some("OK"));
    let log = sim.requests();
    let writes = sdn_writes(&log);
    assert_eq!(writes[0].path, "/cluster/sdn/lock");
    assert_eq!(writes[0].method, "POST");
    // Every later SDN write carries the same token; the apply releases it.
    let tokens: Vec<&str> = writes[1..]
        .iter()
        .map(|r| r.params.get("lock-token").map(String::as_str).unwrap_or(""))
        .collect();
    assert_eq!(tokens.len(), 5, "{writes:?}");
    assert!(
        tokens.iter().all(|t| !t.is_empty() && *t == tokens[0]),
        "{tokens:?}"
    );
    let apply = writes.last().expect("apply");
    assert_eq!(
        (apply.method.as_str(), apply.path.as_str()),
        ("PUT", "/cluster/sdn")
    );
    assert!(
        sim.with_state(|st| st.sdn.lock_token.is_none()),
        "apply released the lock"
    );
    // Applied: nothing pending.
    let zones = c.sdn_zones().expect("zones");
    assert_eq!(zones.len(), 1);
    assert_eq!(zones[0].state, None);
    assert_eq!(
        zones[0].running.as_ref().and_then(|z| z.vrf_vxlan),
        Some(10)
    );
}

#[test]
fn on_84_no_sdn_lock_is_used() {
    let (sim, c) = sim_and_client(PveVersion::V8_4);
    let mut outside = 0;
    let tx = SdnTransaction::begin(&c, false, || {
        outside += 1;
        Ok::<_, PveError>("orbitlab-sdn")
    })
    .expect("begin");
    assert!(tx.token().is_none(), "8.4 has no SDN lock");
    backplane(&c, tx.token()).expect("edits");
    let task = tx.apply(DEADLINE).expect("apply");
    assert_eq!(outside, 1, "the outside lock is taken on 8.x");
    assert_eq!(task.exitstatus.as_deref(), Some("OK"));
    let log = sim.requests();
    assert!(
        log.iter().all(|r| !r.path.starts_with("/cluster/sdn/lock")),
        "{log:?}"
    );
    assert!(log.iter().all(|r| !r.params.contains_key("lock-token")));
    assert_eq!(sdn_writes(&log).len(), 5);
    assert!(matches!(
        c.sdn_rollback(None),
        Err(PveError::Unsupported { .. })
    ));
}

#[test]
fn a_locked_sdn_refuses_edits_without_the_token() {
    let (_sim, c) = sim_and_client(PveVersion::V9_1);
    let lock = c.sdn_lock(false).expect("lock").expect("token");
    let zone = ZoneConfig {
        kind: Some("simple".into()),
        ..ZoneConfig::default()
    };
    let err = c
        .sdn_create("z1", SdnSpec::Zone(&zone), None)
        .expect_err("locked");
    assert!(err.to_string().contains("lock"), "{err}");
    c.sdn_create("z1", SdnSpec::Zone(&zone), Some(&lock))
        .expect("with token");
    // Pending edits refuse a new lock unless allowed.
    c.sdn_unlock(&lock, false).expect("unlock");
    let err = c.sdn_lock(false).expect_err("pending changes");
    assert!(err.to_string().contains("pending"), "{err}");
    let lock = c.sdn_lock(true).expect("allow pending").expect("token");
    c.sdn_rollback(Some(&lock)).expect("rollback releases");
    assert!(c.sdn_zones().expect("zones").is_empty());
}

#[test]
fn edits_stay_pending_until_applied_and_read_back_with_their_state() {
    let (_sim, c) = sim_and_client(PveVersion::V8_4);
    backplane(&c, None).expect("edits");
    let zones = c.sdn_zones().expect("zones");
    assert_eq!(zones[0].state, Some(PendingState::New));
    assert!(zones[0].running.is_none());
    let desired = zones[0].desired().expect("ok").expect("exists");
    assert_eq!(
        (desired.mtu, desired.advertise_subnets),
        (Some(1450), Some(true))
    );
    let subnets = c.sdn_subnets("olbpnet").expect("subnets");
    assert_eq!(subnets[0].id, "olbp-10.200.0.0-16");
    c.wait_task(&c.sdn_apply(None, true).expect("apply"), DEADLINE)
        .expect("applied");
    // Change one value: running keeps the old one until the next apply.
    c.sdn_update(
        "olbp",
        SdnSpec::Zone(&ZoneConfig {
            mtu: Some(1400),
            ..ZoneConfig::default()
        }),
        None,
    )
    .expect("update");
    let z = &c.sdn_zones().expect("zones")[0];
    assert_eq!(z.state, Some(PendingState::Changed));
    assert_eq!(z.running.as_ref().and_then(|r| r.mtu), Some(1450));
    assert_eq!(z.desired().expect("ok").and_then(|d| d.mtu), Some(1400));
    let s = &c.sdn_subnets("olbpnet").expect("subnets")[0];
    assert_eq!(
        s.running.as_ref().and_then(|r| r.cidr.clone()).as_deref(),
        Some("10.200.0.0/16")
    );
    c.sdn_update_subnet(
        "olbpnet",
        &s.id,
        &SubnetConfig {
            snat: Some(false),
            ..SubnetConfig::default()
        },
        &[],
        None,
    )
    .expect("subnet update");
    // Deleting is pending too.
    c.sdn_delete(
        SdnCollection::Subnets("olbpnet"),
        "olbp-10.200.0.0-16",
        None,
    )
    .expect("delete subnet");
    assert_eq!(
        c.sdn_subnets("olbpnet").expect("subnets")[0].state,
        Some(PendingState::Deleted)
    );
}

#[test]
fn vnis_are_unique_and_dependencies_block_deletes() {
    let (_sim, c) = sim_and_client(PveVersion::V8_4);
    backplane(&c, None).expect("edits");
    let zone = ZoneConfig {
        kind: Some("vxlan".into()),
        peers: Some("192.168.100.11".into()),
        ..ZoneConfig::default()
    };
    c.sdn_create("sec1", SdnSpec::Zone(&zone), None)
        .expect("zone");
    let err = c
        .sdn_create(
            "olvn1001",
            SdnSpec::Vnet(&VnetConfig {
                zone: Some("sec1".into()),
                tag: Some(100),
                ..VnetConfig::default()
            }),
            None,
        )
        .expect_err("tag 100 is the backplane's");
    assert!(
        err.param_errors().expect("errors")["tag"].contains("already exists"),
        "{err}"
    );
    let err = c
        .sdn_create(
            "olvn1001",
            SdnSpec::Vnet(&VnetConfig {
                zone: Some("sec1".into()),
                tag: Some(10),
                ..VnetConfig::default()
            }),
            None,
        )
        .expect_err("10 is the VRF VNI");
    assert!(
        err.to_string().contains("already exists in zone olbp"),
        "{err}"
    );
    c.sdn_create(
        "olvn1001",
        SdnSpec::Vnet(&VnetConfig {
            zone: Some("sec1".into()),
            tag: Some(1001),
            ..VnetConfig::default()
        }),
        None,
    )
    .expect("free tag");
    let err = c
        .sdn_delete(SdnCollection::Zones, "sec1", None)
        .expect_err("used by vnet");
    assert!(err.to_string().contains("used by vnet 'olvn1001'"), "{err}");
    let err = c
        .sdn_create(
            "10.0.0.0/24",
            SdnSpec::Subnet {
                vnet: "olvn1001",
                config: &SubnetConfig {
                    gateway: Some("10.9.9.1".into()),
                    ..SubnetConfig::default()
                },
            },
            None,
        )
        .expect_err("gateway outside");
    assert!(err.param_errors().expect("errors").contains_key("gateway"));
}

#[test]
fn a_transaction_dropped_unapplied_releases_the_lock_and_leaves_edits_pending() {
    let (sim, c) = sim_and_client(PveVersion::V9_1);
    {
        let tx = begin_9x(&c);
        backplane(&c, tx.token()).expect("edits");
        assert!(sim.with_state(|st| st.sdn.lock_token.is_some()));
    }
    assert!(
        sim.with_state(|st| st.sdn.lock_token.is_none()),
        "dropping released the lock"
    );
    let log = sim.requests();
    let last = sdn_writes(&log).last().copied().expect("writes");
    assert_eq!(
        (last.method.as_str(), last.path.as_str()),
        ("DELETE", "/cluster/sdn/lock")
    );
    let zones = c.sdn_zones().expect("zones");
    assert_eq!(zones[0].state, Some(PendingState::New), "still pending");
}
