//! A cluster-scoped pass that loses its `orbitlab-reconcile` lock mid-way
//! (it expired and another node took it) starts no further step and
//! writes no status.

mod fake_world;

use std::fs::{File, FileTimes};
use std::time::{Duration, SystemTime};

use fake_world::World;
use orbitlab_engine::reconcile::ReconcileError;
use orbitlab_manifests::Kind;

#[test]
fn a_pass_that_loses_its_lock_makes_no_further_write() {
    let world = World::new();
    let lock = world.dir.path().join("priv/lock/orbitlab-reconcile");
    let taken = lock.clone();
    // Right after the pass's first SDN change, pmxcfs expires the lock and
    // another node takes it (a new directory, its own time).
    world.pve.after_call("sdn_create", move || {
        std::fs::remove_dir(&taken).expect("the pass holds the lock");
        std::fs::create_dir(&taken).unwrap();
        let theirs = SystemTime::now() + Duration::from_secs(7);
        File::open(&taken)
            .unwrap()
            .set_times(FileTimes::new().set_modified(theirs))
            .unwrap();
    });
    world.create_sector("web", "172.16.0.0/24");

    let error = world.rec().run().expect_err("the pass stops");
    assert!(matches!(error, ReconcileError::LockLost { .. }), "{error}");
    assert!(error.to_string().contains("orbitlab-reconcile"), "{error}");

    let calls = world.pve.calls();
    let hooked = calls
        .iter()
        .position(|c| c.starts_with("sdn_create"))
        .expect("the pass made its first SDN change");
    let after: Vec<&String> = calls[hooked + 1..]
        .iter()
        .filter(|c| world.pve.writes().contains(c))
        // Proxmox's own SDN lock is given back when the transaction ends.
        .filter(|c| !c.starts_with("sdn_unlock"))
        .collect();
    assert!(
        after.is_empty(),
        "writes after the lock was lost: {after:?}\nall calls: {calls:?}"
    );
    assert!(
        world
            .store
            .read_status(Kind::Sector, &"web".parse().unwrap())
            .unwrap()
            .is_none(),
        "no status is written by a pass without its lock"
    );

    // Once the other holder is done, the next pass finishes the work.
    let _ = std::fs::remove_dir(&lock);
    world.settle();
    fake_world::assert_ready(&world, "web");
}
