//! "No address is lost when a step fails halfway": every store mutation of
//! a realistic sequence is failed once (not performed, or performed and
//! then reported as failed); the failed step is retried in a new session and
//! the sequence finishes. The addresses held at the end must be exactly
//! those of a run without failure, and every held address must be findable
//! by its owner (so reconcile can release it by owner).

mod ipam_support;

use std::collections::BTreeMap;

use ipam_support::{Fault, TestStore, owner, pool, raw_view};
use orbitlab_engine::ipam::{IpamError, IpamSession, MemoryStore, Pool};
use orbitlab_manifests::ApplianceRole;

type Step = fn(&mut IpamSession<'_, TestStore>) -> Result<(), IpamError>;

/// A Sector's life in IPAM terms: its gateway on the Backplane, roles and
/// instances in a /28 (small enough to fill a block and exhaust it),
/// releases by owner and by address, another Sector, a teardown.
fn bp() -> Pool {
    pool("backplane", "10.200.0.0/16")
}

fn web() -> Pool {
    pool("sector-web-172.16.0.64-28", "172.16.0.64/28")
}

fn steps() -> Vec<(&'static str, Step)> {
    vec![
        ("gateway on backplane", |s| {
            s.allocate_next(&bp(), &owner("sector/web/gateway"))
                .map(drop)
        }),
        ("gateway role", |s| {
            s.allocate_role(&web(), ApplianceRole::Gateway, &owner("sector/web/gateway"))
                .map(drop)
        }),
        ("dns role", |s| {
            s.allocate_role(&web(), ApplianceRole::Dns, &owner("sector/web/dns"))
                .map(drop)
        }),
        ("i0", |s| {
            s.allocate_next(&web(), &owner("lxc/i0")).map(drop)
        }),
        ("i1", |s| {
            s.allocate_next(&web(), &owner("lxc/i1")).map(drop)
        }),
        ("i2", |s| {
            s.allocate_next(&web(), &owner("lxc/i2")).map(drop)
        }),
        ("i3", |s| {
            s.allocate_next(&web(), &owner("lxc/i3")).map(drop)
        }),
        ("release i1", |s| {
            s.release_owner(&web(), &owner("lxc/i1")).map(drop)
        }),
        ("i4 reuses", |s| {
            s.allocate_next(&web(), &owner("lxc/i4")).map(drop)
        }),
        ("pinned fills the pool", |s| {
            s.allocate_specific(&web(), "172.16.0.78".parse().unwrap(), &owner("lxc/pinned"))
                .map(drop)
        }),
        ("release .76 by address", |s| {
            s.release_address(&web(), "172.16.0.76".parse().unwrap())
                .map(drop)
        }),
        ("i5 takes .76", |s| {
            s.allocate_next(&web(), &owner("lxc/i5")).map(drop)
        }),
        ("other sector", |s| {
            s.allocate_next(&bp(), &owner("sector/other/gateway"))
                .map(drop)
        }),
        ("dns torn down", |s| {
            s.release_owner_everywhere(&owner("sector/web/dns"))
                .map(drop)
        }),
        ("gateway torn down", |s| {
            s.release_owner_everywhere(&owner("sector/web/gateway"))
                .map(drop)
        }),
        ("release i3", |s| {
            s.release_owner(&web(), &owner("lxc/i3")).map(drop)
        }),
        ("i6 takes .77", |s| {
            s.allocate_next(&web(), &owner("lxc/i6")).map(drop)
        }),
    ]
}

type View = BTreeMap<&'static str, (BTreeMap<String, String>, BTreeMap<String, String>)>;

fn view(store: &MemoryStore) -> View {
    ["backplane", "sector-web-172.16.0.64-28"]
        .into_iter()
        .map(|p| (p, raw_view(store, p)))
        .collect()
}

/// Every held address is indexed under its owner.
fn assert_reachable(view: &View, context: &str) {
    for (pool, (shards, index)) in view {
        for (addr, owner) in shards {
            assert_eq!(
                index.get(owner),
                Some(addr),
                "{context}: {pool}: {addr} held by {owner} is not findable by owner"
            );
        }
    }
}

#[test]
fn every_step_records_before_returning() {
    let mem = MemoryStore::new();
    let store = TestStore::new(mem.clone());
    let mut s = IpamSession::begin(&store).unwrap();
    let addr = s.allocate_next(&web(), &owner("lxc/x")).unwrap();
    // Read straight from the store while the session is still open.
    let (shards, index) = raw_view(&mem, "sector-web-172.16.0.64-28");
    assert_eq!(
        shards.get(&addr.to_string()).map(String::as_str),
        Some("lxc/x")
    );
    assert_eq!(index.get("lxc/x"), Some(&addr.to_string()));
}

#[test]
fn a_failure_at_any_write_loses_no_address() {
    // Reference run, without failure.
    let reference_mem = MemoryStore::new();
    let reference = TestStore::new(reference_mem.clone());
    {
        let mut s = IpamSession::begin(&reference).unwrap();
        for (name, step) in steps() {
            step(&mut s).unwrap_or_else(|e| panic!("reference step {name}: {e}"));
        }
    }
    let expected = view(&reference_mem);
    assert_reachable(&expected, "reference");
    let held = &expected["sector-web-172.16.0.64-28"].0;
    let holders: Vec<&str> = held.values().map(String::as_str).collect();
    assert_eq!(
        holders,
        ["lxc/i0", "lxc/i4", "lxc/i5", "lxc/i6", "lxc/pinned"]
    );
    let total = reference.mutations.get();
    assert!(total >= 25, "the sequence exercises many writes ({total})");

    for fault in [Fault::Before, Fault::After] {
        for at in 1..=total {
            let context = format!("{fault:?} failure of mutation {at}/{total}");
            let mem = MemoryStore::new();
            let failing = TestStore::failing(mem.clone(), at, fault);
            let mut failed_step = None;
            {
                let mut s = IpamSession::begin(&failing).unwrap();
                for (i, (_, step)) in steps().into_iter().enumerate() {
                    if let Err(e) = step(&mut s) {
                        assert!(matches!(e, IpamError::Store { .. }), "{context}: {e}");
                        assert!(e.to_string().contains("retry"), "{context}: {e}");
                        failed_step = Some(i);
                        break;
                    }
                }
            }
            let failed_step = failed_step.unwrap_or_else(|| panic!("{context}: no step failed"));
            assert_reachable(&view(&mem), &format!("{context}, right after the failure"));

            // A new session (as after a crash or a requeue) retries the
            // failed step and finishes the sequence.
            let healthy = TestStore::new(mem.clone());
            let mut s = IpamSession::begin(&healthy).unwrap();
            for (name, step) in steps().into_iter().skip(failed_step) {
                step(&mut s).unwrap_or_else(|e| panic!("{context}: retry of {name}: {e}"));
            }
            drop(s);
            let got = view(&mem);
            assert_reachable(&got, &context);
            for (pool, (shards, _)) in &got {
                assert_eq!(
                    shards, &expected[pool].0,
                    "{context}: {pool} holds other addresses"
                );
            }
        }
    }
}
