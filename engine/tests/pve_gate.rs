//! The client's gate against the simulator: every request passes it once,
//! classified as read, write or cleanup; a refused request never reaches
//! Proxmox and fails as `PveError::Refused`; the gated client shares the
//! connection of the one it was made from.

mod pve_common;

use std::sync::{Arc, Mutex};

use orbitlab_engine::pve::SdnSpec;
use orbitlab_engine::pve::{Access, Gate, Pve, PveError, ZoneConfig};
use orbitlab_sim::pve::PveVersion;
use pve_common::*;

/// Records what it was asked and admits only what `open` allows.
#[derive(Debug, Default)]
struct Recorder {
    open: Mutex<Vec<Access>>,
    asked: Mutex<Vec<Access>>,
    finished: Mutex<Vec<Access>>,
}

impl Recorder {
    fn allowing(access: &[Access]) -> Arc<Self> {
        Arc::new(Recorder {
            open: Mutex::new(access.to_vec()),
            ..Recorder::default()
        })
    }
}

impl Gate for Recorder {
    fn admit(&self, access: Access) -> Result<(), String> {
        self.asked.lock().unwrap().push(access);
        if self.open.lock().unwrap().contains(&access) {
            Ok(())
        } else {
            Err(format!("{access:?} is closed"))
        }
    }

    fn finished(&self, access: Access) {
        self.finished.lock().unwrap().push(access);
    }
}

fn zone() -> ZoneConfig {
    ZoneConfig {
        kind: Some("vxlan".into()),
        peers: Some("10.0.0.1".into()),
        ..ZoneConfig::default()
    }
}

#[test]
fn refused_writes_never_reach_proxmox_and_reads_pass() {
    let (sim, plain) = sim_and_client(PveVersion::V9_1);
    let gate = Recorder::allowing(&[Access::Read]);
    let c = plain.with_gate(gate.clone());
    assert!(!c.nodes().expect("a read passes").is_empty());
    let before = sim.requests().len();
    let err = c
        .sdn_create("z1", SdnSpec::Zone(&zone()), None)
        .expect_err("refused");
    let PveError::Refused {
        method,
        path,
        reason,
    } = &err
    else {
        panic!("not refused by the gate: {err:?}");
    };
    assert_eq!(
        (method.as_str(), path.as_str()),
        ("POST", "/cluster/sdn/zones")
    );
    assert_eq!(reason, "Write is closed");
    assert_eq!(sim.requests().len(), before, "nothing was sent");
    assert!(plain.sdn_zones().expect("zones").is_empty());
    assert_eq!(*gate.asked.lock().unwrap(), [Access::Read, Access::Write]);
    assert_eq!(
        *gate.finished.lock().unwrap(),
        [Access::Read],
        "only admitted calls are reported as finished"
    );
}

#[test]
fn releasing_the_sdn_lock_is_a_cleanup() {
    let (_sim, plain) = sim_and_client(PveVersion::V9_1);
    let gate = Recorder::allowing(&[Access::Read, Access::Write]);
    let c = plain.with_gate(gate.clone());
    let token = c.sdn_lock(false).expect("lock").expect("9.x has the lock");
    gate.open.lock().unwrap().retain(|a| *a != Access::Write);
    let err = c.sdn_unlock(&token, false).expect_err("cleanup closed");
    assert!(matches!(err, PveError::Refused { .. }), "{err:?}");
    gate.open.lock().unwrap().push(Access::Cleanup);
    c.sdn_unlock(&token, false)
        .expect("cleanups pass with writes closed");
    let asked = gate.asked.lock().unwrap();
    assert_eq!(asked.iter().filter(|a| **a == Access::Cleanup).count(), 2);
    assert!(
        plain.sdn_lock(false).expect("lock again").is_some(),
        "the lock was released"
    );
}

#[test]
fn instance_writes_are_fenced_and_their_reads_are_not() {
    use orbitlab_engine::pve::{HaResourceAdd, HaState, LxcUpdate};
    let (sim, plain) = sim_and_client(PveVersion::V8_4);
    let gate = Recorder::allowing(&[Access::Read]);
    let c = plain.with_gate(gate.clone());
    assert_eq!(c.node_status("pve1").expect("read").cpus, 16);
    assert!(c.ha_resources().expect("read").is_empty());
    assert_eq!(*gate.asked.lock().unwrap(), vec![Access::Read; 2]);
    sim.clear_requests();
    let refused = [
        c.lxc_update("pve1", 100, &LxcUpdate::default()).err(),
        c.lxc_resize("pve1", 100, "rootfs", 10).err(),
        c.ha_add(&HaResourceAdd {
            vmid: 100,
            state: HaState::Started,
            group: None,
            comment: None,
        })
        .err(),
        c.ha_remove("ct:100").err(),
    ];
    for err in refused {
        assert!(matches!(err, Some(PveError::Refused { .. })), "{err:?}");
    }
    // ha_add asks for the release (a read) before its write.
    let asked = gate.asked.lock().unwrap().clone();
    let writes = asked.iter().filter(|a| **a == Access::Write).count();
    assert_eq!(writes, 4, "{asked:?}");
    assert!(
        sim.requests().iter().all(|r| r.method == "GET"),
        "no write reached Proxmox"
    );
}
