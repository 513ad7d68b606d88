//! IPAM behaviour: reserved addresses, exhaustion, idempotency, roles,
//! specific requests, release, pool lifecycle, locking and bad files.

mod ipam_support;

use std::net::Ipv4Addr;

use ipam_support::{owner, pool, raw_view};
use orbitlab_engine::ipam::{
    DirStore, IpamError, IpamSession, IpamStore, MemoryStore, Pool, PoolId,
};
use orbitlab_manifests::ApplianceRole;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn reserved_addresses_are_never_handed_out_and_exhaustion_is_clear() {
    let store = MemoryStore::new();
    let mut s = IpamSession::begin(&store).unwrap();
    let p = pool("sector-web-172.16.0.64-28", "172.16.0.64/28");
    let mut got = Vec::new();
    let err = loop {
        match s.allocate_next(&p, &owner(&format!("lxc/i{}", got.len()))) {
            Ok(addr) => got.push(addr),
            Err(e) => break e,
        }
    };
    // .64 network, .65 gateway, .66 DNS, .67-.73 reserved, .79 broadcast.
    let expected: Vec<Ipv4Addr> = (74..=78).map(|o| Ipv4Addr::new(172, 16, 0, o)).collect();
    assert_eq!(got, expected);
    assert_eq!(p.allocatable(), 5);
    assert!(matches!(err, IpamError::Exhausted { .. }), "{err}");
    let msg = err.to_string();
    for part in [
        "sector-web-172.16.0.64-28",
        "172.16.0.64/28",
        "all 5 allocatable",
        "of its 16",
    ] {
        assert!(msg.contains(part), "{msg:?} lacks {part:?}");
    }
    // Exhaustion changed nothing; a release makes room again.
    assert_eq!(s.list(&p).unwrap().len(), 5);
    assert_eq!(
        s.release_address(&p, ip("172.16.0.76")).unwrap(),
        Some(owner("lxc/i2"))
    );
    assert_eq!(
        s.allocate_next(&p, &owner("lxc/late")).unwrap(),
        ip("172.16.0.76")
    );
}

#[test]
fn offsets_count_from_the_pool_network_not_from_each_block() {
    let store = MemoryStore::new();
    let mut s = IpamSession::begin(&store).unwrap();
    let p = pool("backplane", "10.200.0.0/16");
    assert_eq!(
        s.allocate_next(&p, &owner("sector/a/gateway")).unwrap(),
        ip("10.200.0.10")
    );
    // Fill the first /24 block: .10 to .255 is 246 addresses.
    for n in 1..246 {
        s.allocate_next(&p, &owner(&format!("sector/s{n}/gateway")))
            .unwrap();
    }
    // 10.200.1.0 and 10.200.1.1 are ordinary addresses in a /16.
    assert_eq!(
        s.allocate_next(&p, &owner("sector/x/gateway")).unwrap(),
        ip("10.200.1.0")
    );
    assert_eq!(
        s.allocate_next(&p, &owner("sector/y/gateway")).unwrap(),
        ip("10.200.1.1")
    );
    assert_eq!(
        s.allocate_specific(&p, ip("10.200.5.1"), &owner("lxc/pinned"))
            .unwrap(),
        ip("10.200.5.1")
    );
}

#[test]
fn allocation_is_idempotent_per_owner_within_and_across_sessions() {
    let store = MemoryStore::new();
    let p = pool("sector-web-172.16.0.0-24", "172.16.0.0/24");
    let first = {
        let mut s = IpamSession::begin(&store).unwrap();
        let a = s.allocate_next(&p, &owner("lxc/web1")).unwrap();
        assert_eq!(s.allocate_next(&p, &owner("lxc/web1")).unwrap(), a);
        s.allocate_next(&p, &owner("lxc/web2")).unwrap();
        a
    };
    let mut s = IpamSession::begin(&store).unwrap();
    assert_eq!(s.allocate_next(&p, &owner("lxc/web1")).unwrap(), first);
    assert_eq!(s.lookup(&p, &owner("lxc/web1")).unwrap(), Some(first));
    assert_eq!(s.lookup(&p, &owner("lxc/nobody")).unwrap(), None);
    assert_eq!(s.list(&p).unwrap().len(), 2);
    // A specific request for what the owner holds is the same allocation.
    assert_eq!(
        s.allocate_specific(&p, first, &owner("lxc/web1")).unwrap(),
        first
    );
}

#[test]
fn roles_get_dot_one_and_dot_two_only_when_asked() {
    let store = MemoryStore::new();
    let mut s = IpamSession::begin(&store).unwrap();
    let p = pool("sector-web-172.16.0.0-24", "172.16.0.0/24");
    let gw = owner("sector/web/gateway");
    let dns = owner("sector/web/dns");
    assert_eq!(
        s.allocate_role(&p, ApplianceRole::Gateway, &gw).unwrap(),
        ip("172.16.0.1")
    );
    assert_eq!(
        s.allocate_role(&p, ApplianceRole::Dns, &dns).unwrap(),
        ip("172.16.0.2")
    );
    assert_eq!(
        s.allocate_role(&p, ApplianceRole::Gateway, &gw).unwrap(),
        ip("172.16.0.1")
    );
    // The owner holds one address per pool, so `allocate_next` returns it.
    assert_eq!(s.allocate_next(&p, &gw).unwrap(), ip("172.16.0.1"));
    let err = s
        .allocate_role(&p, ApplianceRole::Gateway, &owner("lxc/intruder"))
        .unwrap_err();
    assert!(matches!(err, IpamError::AddressInUse { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("already held by sector/web/gateway"),
        "{err}"
    );
    let err = s.allocate_role(&p, ApplianceRole::Dns, &gw).unwrap_err();
    assert!(matches!(err, IpamError::OwnerConflict { .. }), "{err}");
    assert_eq!(
        s.allocate_next(&p, &owner("lxc/first")).unwrap(),
        ip("172.16.0.10")
    );
}

#[test]
fn specific_requests_are_checked() {
    let store = MemoryStore::new();
    let mut s = IpamSession::begin(&store).unwrap();
    let p = pool("sector-web-172.16.0.0-24", "172.16.0.0/24");
    let o = owner("lxc/web1");
    for (addr, reason) in [
        ("172.16.0.0", "network address"),
        ("172.16.0.255", "broadcast address"),
        ("172.16.0.1", "gateway address (.1)"),
        ("172.16.0.2", "DNS address (.2)"),
        ("172.16.0.3", "reserved range"),
        ("172.16.0.9", "reserved range"),
    ] {
        let err = s.allocate_specific(&p, ip(addr), &o).unwrap_err();
        assert!(matches!(err, IpamError::Reserved { .. }), "{addr}: {err}");
        assert!(err.to_string().contains(reason), "{addr}: {err}");
    }
    let err = s.allocate_specific(&p, ip("172.16.1.10"), &o).unwrap_err();
    assert!(matches!(err, IpamError::OutsidePool { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("choose an address inside 172.16.0.0/24"),
        "{err}"
    );
    assert_eq!(
        s.allocate_specific(&p, ip("172.16.0.50"), &o).unwrap(),
        ip("172.16.0.50")
    );
    let err = s.allocate_specific(&p, ip("172.16.0.51"), &o).unwrap_err();
    assert!(matches!(err, IpamError::OwnerConflict { .. }), "{err}");
    let err = s
        .allocate_specific(&p, ip("172.16.0.50"), &owner("lxc/web2"))
        .unwrap_err();
    assert!(matches!(err, IpamError::AddressInUse { .. }), "{err}");
    // None of the refusals recorded anything.
    assert_eq!(s.list(&p).unwrap().len(), 1);
    // allocate_next skips an address taken by a specific request.
    for n in 10..50 {
        s.allocate_next(&p, &owner(&format!("lxc/n{n}"))).unwrap();
    }
    assert_eq!(
        s.allocate_next(&p, &owner("lxc/after")).unwrap(),
        ip("172.16.0.51")
    );
}

#[test]
fn release_by_owner_and_by_address() {
    let store = MemoryStore::new();
    let mut s = IpamSession::begin(&store).unwrap();
    let p = pool("backplane", "10.200.0.0/16");
    let a = s.allocate_next(&p, &owner("sector/a/gateway")).unwrap();
    let b = s.allocate_next(&p, &owner("sector/b/gateway")).unwrap();
    assert_eq!(
        s.release_owner(&p, &owner("sector/a/gateway")).unwrap(),
        Some(a)
    );
    assert_eq!(
        s.release_owner(&p, &owner("sector/a/gateway")).unwrap(),
        None
    );
    assert_eq!(
        s.release_address(&p, b).unwrap(),
        Some(owner("sector/b/gateway"))
    );
    assert_eq!(s.release_address(&p, b).unwrap(), None);
    assert_eq!(s.lookup(&p, &owner("sector/b/gateway")).unwrap(), None);
    assert!(s.list(&p).unwrap().is_empty());
    // Released addresses are reused, lowest first.
    assert_eq!(s.allocate_next(&p, &owner("sector/c/gateway")).unwrap(), a);
    let err = s.release_address(&p, ip("10.201.0.1")).unwrap_err();
    assert!(matches!(err, IpamError::OutsidePool { .. }), "{err}");
    drop(s);
    let (shards, index) = raw_view(&store, "backplane");
    assert_eq!(shards.len(), 1);
    assert_eq!(index.len(), 1, "released owners leave no index entry");
}

#[test]
fn release_everywhere_and_pool_removal_leave_nothing_behind() {
    let store = MemoryStore::new();
    let mut s = IpamSession::begin(&store).unwrap();
    let bp = pool("backplane", "10.200.0.0/16");
    let web = Pool::new(
        PoolId::sector_subnet("web", "172.16.0.0/24".parse().unwrap()).unwrap(),
        "172.16.0.0/24".parse().unwrap(),
    )
    .unwrap();
    let gw = owner("sector/web/gateway");
    let on_bp = s.allocate_next(&bp, &gw).unwrap();
    let on_web = s.allocate_role(&web, ApplianceRole::Gateway, &gw).unwrap();
    s.allocate_next(&bp, &owner("sector/other/gateway"))
        .unwrap();
    assert_eq!(
        s.pools().unwrap(),
        vec![PoolId::backplane(), web.id().clone()]
    );
    let err = s.remove_pool(&web).unwrap_err();
    assert!(
        matches!(err, IpamError::PoolNotEmpty { count: 1, .. }),
        "{err}"
    );

    let released = s.release_owner_everywhere(&gw).unwrap();
    assert_eq!(
        released,
        vec![(PoolId::backplane(), on_bp), (web.id().clone(), on_web)]
    );
    s.remove_pool(&web).unwrap();
    assert_eq!(s.pools().unwrap(), vec![PoolId::backplane()]);
    assert!(s.recorded_pool(web.id()).unwrap().is_none());
    drop(s);
    let left: Vec<String> = store.sizes().into_keys().collect();
    // The change token that every changing session replaces stays too.
    assert!(
        left.iter()
            .all(|p| p.starts_with("ipam/backplane/") || p == "ipam.serial"),
        "{left:?}"
    );
    assert_eq!(
        left.len(),
        4,
        "the token, pool.json, one shard, one bucket: {left:?}"
    );
}

#[test]
fn a_pool_keeps_its_cidr() {
    let store = MemoryStore::new();
    let mut s = IpamSession::begin(&store).unwrap();
    s.allocate_next(&pool("backplane", "10.200.0.0/16"), &owner("a"))
        .unwrap();
    let err = s
        .allocate_next(&pool("backplane", "10.100.0.0/16"), &owner("b"))
        .unwrap_err();
    assert!(matches!(err, IpamError::PoolMismatch { .. }), "{err}");
    assert!(
        err.to_string().contains("recorded with CIDR 10.200.0.0/16"),
        "{err}"
    );
}

#[test]
fn sessions_hold_the_lock() {
    let store = MemoryStore::new();
    let s = IpamSession::begin(&store).unwrap();
    let err = IpamSession::begin(&store).unwrap_err();
    assert!(matches!(err, IpamError::Lock(_)), "{err}");
    drop(s);
    IpamSession::begin(&store).unwrap();
}

#[test]
fn damaged_files_are_reported_with_their_path_and_change_nothing() {
    let p = pool("backplane", "10.200.0.0/16");
    let store = MemoryStore::new();
    IpamSession::begin(&store)
        .unwrap()
        .allocate_next(&p, &owner("a"))
        .unwrap();
    let shard = "ipam/backplane/addr/10.200.0.0-24.json";
    for (bytes, reason) in [
        (&b"{not json"[..], "key must be a string"),
        (
            &br#"{"10.200.1.10":"a"}"#[..],
            "does not belong in this file",
        ),
        (&br#"{"10.200.0.10":"Bad Owner"}"#[..], "invalid IPAM owner"),
    ] {
        store.write(shard, bytes).unwrap();
        let err = IpamSession::begin(&store)
            .unwrap()
            .allocate_next(&p, &owner("b"))
            .unwrap_err();
        assert!(matches!(err, IpamError::Corrupt { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(shard) && msg.contains(reason), "{msg}");
        assert_eq!(
            store.read(shard).unwrap().unwrap(),
            bytes,
            "nothing rewritten"
        );
    }
}

#[test]
fn a_directory_store_behaves_the_same_and_leaves_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = DirStore::new(dir.path());
    let p = pool("sector-web-172.16.0.0-24", "172.16.0.0/24");
    {
        let mut s = IpamSession::begin(&store).unwrap();
        assert!(
            IpamSession::begin(&store).is_err(),
            "the lock directory excludes a second session"
        );
        assert_eq!(
            s.allocate_role(&p, ApplianceRole::Dns, &owner("sector/web/dns"))
                .unwrap(),
            ip("172.16.0.2")
        );
        assert_eq!(
            s.allocate_next(&p, &owner("lxc/web1")).unwrap(),
            ip("172.16.0.10")
        );
    }
    let mut s = IpamSession::begin(&store).unwrap();
    assert_eq!(
        s.lookup(&p, &owner("lxc/web1")).unwrap(),
        Some(ip("172.16.0.10"))
    );
    assert_eq!(
        s.release_owner(&p, &owner("lxc/web1")).unwrap(),
        Some(ip("172.16.0.10"))
    );
    drop(s);
    let mut files = Vec::new();
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path.strip_prefix(dir.path()).unwrap().display().to_string());
            }
        }
    }
    files.sort();
    assert_eq!(
        files,
        [
            "ipam.serial",
            "ipam/sector-web-172.16.0.0-24/addr/172.16.0.0-24.json",
            "ipam/sector-web-172.16.0.0-24/owners/000.json",
            "ipam/sector-web-172.16.0.0-24/pool.json",
        ]
    );
    let shard = std::fs::read_to_string(dir.path().join(&files[1])).unwrap();
    assert_eq!(shard, "{\"172.16.0.2\":\"sector/web/dns\"}\n");
}
