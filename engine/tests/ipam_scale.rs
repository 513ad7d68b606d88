//! Sharding keeps every IPAM file small, and one allocation touches a
//! constant number of files, even for a fully allocated /16.

mod ipam_support;

use ipam_support::{TestStore, owner, pool};
use orbitlab_engine::ipam::{IpamError, IpamSession, MAX_OWNER_LEN, MemoryStore, Owner, Pool};

/// An owner of the maximum length, unique per `n`: the worst case for file
/// sizes.
fn long_owner(n: u32) -> Owner {
    let head = format!("lxc/{n:05}-");
    let owner = format!("{head}{}", "x".repeat(MAX_OWNER_LEN - head.len()));
    owner.parse().unwrap()
}

fn fill(store: &TestStore, p: &Pool) -> u32 {
    let mut s = IpamSession::begin(store).unwrap();
    let mut n = 0;
    loop {
        match s.allocate_next(p, &long_owner(n)) {
            Ok(_) => n += 1,
            Err(IpamError::Exhausted { .. }) => return n,
            Err(e) => panic!("allocation {n}: {e}"),
        }
    }
}

#[test]
fn a_fully_allocated_16_keeps_every_file_under_64_kib() {
    let mem = MemoryStore::new();
    let store = TestStore::new(mem.clone());
    let p = pool("backplane", "10.200.0.0/16");
    let allocated = fill(&store, &p);
    assert_eq!(allocated, 65536 - 11);
    assert_eq!(allocated, p.allocatable());

    let sizes = mem.sizes();
    let (largest_path, largest) = sizes.iter().max_by_key(|(_, s)| **s).unwrap();
    println!(
        "{} files, {} bytes in all, largest {largest_path} = {largest} bytes",
        sizes.len(),
        sizes.values().sum::<usize>()
    );
    assert!(*largest < 64 * 1024, "{largest_path} is {largest} bytes");
    // 256 address shards, 512 owner buckets, pool.json, and the change
    // token (`ipam.serial`) every changing session replaces.
    assert_eq!(sizes.len(), 256 + 512 + 1 + 1);

    // Everything is really there: every owner finds its own address.
    let mut s = IpamSession::begin(&store).unwrap();
    let all = s.list(&p).unwrap();
    assert_eq!(all.len() as u32, allocated);
    for n in [0, 1, 12_345, allocated - 1] {
        let addr = s.lookup(&p, &long_owner(n)).unwrap().unwrap();
        assert_eq!(all[&addr], long_owner(n));
    }
}

#[test]
fn one_allocation_in_a_full_16_touches_a_constant_number_of_small_files() {
    let mem = MemoryStore::new();
    let p = pool("backplane", "10.200.0.0/16");
    fill(&TestStore::new(mem.clone()), &p);
    {
        let store = TestStore::new(mem.clone());
        let mut s = IpamSession::begin(&store).unwrap();
        assert_eq!(
            s.release_owner(&p, &long_owner(40_000)).unwrap(),
            Some("10.200.156.74".parse().unwrap())
        );
    }

    // A fresh session (nothing cached) allocating one address.
    let store = TestStore::new(mem.clone());
    let mut s = IpamSession::begin(&store).unwrap();
    let addr = s.allocate_next(&p, &owner("lxc/newcomer")).unwrap();
    assert_eq!(addr, "10.200.156.74".parse::<std::net::Ipv4Addr>().unwrap());
    println!(
        "one allocation: {} reads ({} bytes), {} writes ({} bytes)",
        store.reads.get(),
        store.read_bytes.get(),
        store.mutations.get(),
        store.written_bytes.get()
    );
    // pool.json, the owner's bucket, the one non-full shard.
    assert_eq!(store.reads.get(), 3);
    // The change token first, then bucket, shard, and pool.json (the
    // block is full again).
    assert_eq!(store.mutations.get(), 4);
    assert!(store.read_bytes.get() < 3 * 64 * 1024);

    // The pool is full again: the next request reads every shard once to
    // confirm before refusing, and writes nothing.
    let before = store.mutations.get();
    let err = s.allocate_next(&p, &owner("lxc/one-too-many")).unwrap_err();
    assert!(matches!(err, IpamError::Exhausted { .. }), "{err}");
    assert_eq!(store.mutations.get(), before);

    // An owner asking again in a new session costs three reads, no write.
    drop(s);
    let store = TestStore::new(mem);
    let mut s = IpamSession::begin(&store).unwrap();
    assert_eq!(s.allocate_next(&p, &owner("lxc/newcomer")).unwrap(), addr);
    assert_eq!((store.reads.get(), store.mutations.get()), (3, 0));
}
