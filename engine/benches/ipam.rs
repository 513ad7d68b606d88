//! IPAM benchmark (`cargo bench -p orbitlab-engine --bench ipam`).
//!
//! Allocates every address of a /16 into a directory-backed store
//! ([`DirStore`]: atomic `tmp` + `rename` writes, no fsync) and reports the
//! time taken and the largest IPAM file; then measures one allocation in a
//! fresh session on the full pool (what a reconcile pass pays), with the
//! files and bytes it reads and writes. Three runs: realistic owners on
//! tmpfs (`/dev/shm`: IPAM's own cost), owners of the maximum length on
//! tmpfs (the largest files), realistic owners on the disk-backed temporary
//! directory (`ORBITLAB_BENCH_DIR` or `$TMPDIR`; ext4 flushes on every
//! rename-over, which dominates there).

use std::cell::Cell;
use std::path::Path;
use std::time::{Duration, Instant};

use orbitlab_engine::ipam::{
    DirStore, IpamError, IpamSession, IpamStore, MAX_OWNER_LEN, Owner, Pool, PoolId, StoreError,
};

/// Counts the operations of the wrapped store.
struct Counting {
    inner: DirStore,
    reads: Cell<usize>,
    read_bytes: Cell<usize>,
    writes: Cell<usize>,
    written_bytes: Cell<usize>,
}

impl Counting {
    fn new(root: &Path) -> Self {
        Self {
            inner: DirStore::new(root),
            reads: Cell::new(0),
            read_bytes: Cell::new(0),
            writes: Cell::new(0),
            written_bytes: Cell::new(0),
        }
    }

    fn reset(&self) {
        for c in [
            &self.reads,
            &self.read_bytes,
            &self.writes,
            &self.written_bytes,
        ] {
            c.set(0);
        }
    }
}

impl IpamStore for Counting {
    type Guard = <DirStore as IpamStore>::Guard;

    fn lock(&self) -> Result<Self::Guard, StoreError> {
        self.inner.lock()
    }

    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let got = self.inner.read(path)?;
        self.reads.set(self.reads.get() + 1);
        self.read_bytes
            .set(self.read_bytes.get() + got.as_ref().map_or(0, Vec::len));
        Ok(got)
    }

    fn write(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.writes.set(self.writes.get() + 1);
        self.written_bytes
            .set(self.written_bytes.get() + bytes.len());
        self.inner.write(path, bytes)
    }

    fn remove(&self, path: &str) -> Result<(), StoreError> {
        self.writes.set(self.writes.get() + 1);
        self.inner.remove(path)
    }

    fn list(&self, dir: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list(dir)
    }
}

fn realistic_owner(n: u32) -> Owner {
    format!("lxc/instance-{n:05}").parse().expect("valid owner")
}

fn longest_owner(n: u32) -> Owner {
    let head = format!("lxc/{n:05}-");
    format!("{head}{}", "x".repeat(MAX_OWNER_LEN - head.len()))
        .parse()
        .expect("valid owner")
}

/// Every file under `dir`: (count, total bytes, largest size, largest path).
fn file_stats(dir: &Path) -> (usize, u64, u64, String) {
    let (mut count, mut total, mut largest, mut largest_path) = (0, 0, 0, String::new());
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("readable directory") {
            let path = entry.expect("directory entry").path();
            let meta = std::fs::metadata(&path).expect("metadata");
            if meta.is_dir() {
                stack.push(path);
            } else {
                count += 1;
                total += meta.len();
                if meta.len() > largest {
                    largest = meta.len();
                    largest_path = path
                        .strip_prefix(dir)
                        .unwrap_or(&path)
                        .display()
                        .to_string();
                }
            }
        }
    }
    (count, total, largest, largest_path)
}

fn disk_dir() -> std::path::PathBuf {
    std::env::var_os("ORBITLAB_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into)
}

fn fill(label: &str, owner: fn(u32) -> Owner, base: &Path) {
    let dir = tempfile::tempdir_in(base).expect("temporary directory");
    let store = Counting::new(dir.path());
    let pool =
        Pool::new(PoolId::backplane(), "10.200.0.0/16".parse().expect("cidr")).expect("pool");
    let start = Instant::now();
    let mut session = IpamSession::begin(&store).expect("lock");
    let mut n = 0;
    loop {
        match session.allocate_next(&pool, &owner(n)) {
            Ok(_) => n += 1,
            Err(IpamError::Exhausted { .. }) => break,
            Err(e) => panic!("allocation {n}: {e}"),
        }
    }
    drop(session);
    let elapsed = start.elapsed();
    let (files, total, largest, largest_path) = file_stats(dir.path());
    println!("full /16, {label} owners, store in {}:", base.display());
    println!(
        "  {n} allocations in {:.2} s ({:.1} us each, one session)",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / f64::from(n)
    );
    println!(
        "  written: {} files, {:.1} MiB in all; on disk: {files} files, {:.2} MiB",
        store.writes.get(),
        store.written_bytes.get() as f64 / 1048576.0,
        total as f64 / 1048576.0
    );
    println!(
        "  largest IPAM file: {largest} bytes ({:.1} KiB) {largest_path}",
        largest as f64 / 1024.0
    );

    // One allocation in a fresh session on the full pool, as a reconcile
    // pass would do it: release one address, then allocate it again.
    let rounds: u32 = 200;
    let mut times = Vec::new();
    for round in 0..rounds {
        let victim = owner(round * 300);
        {
            let mut s = IpamSession::begin(&store).expect("lock");
            s.release_owner(&pool, &victim).expect("release");
        }
        store.reset();
        let start = Instant::now();
        let mut s = IpamSession::begin(&store).expect("lock");
        s.allocate_next(&pool, &victim).expect("allocate");
        drop(s);
        times.push(start.elapsed());
    }
    times.sort();
    let median = times[times.len() / 2];
    let p95 = times[times.len() * 95 / 100];
    println!(
        "  one allocation, fresh session, full pool: median {:.0} us, p95 {:.0} us; {} reads ({:.1} KiB), {} writes ({:.1} KiB)",
        us(median),
        us(p95),
        store.reads.get(),
        store.read_bytes.get() as f64 / 1024.0,
        store.writes.get(),
        store.written_bytes.get() as f64 / 1024.0
    );
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let shm = Path::new("/dev/shm");
    let tmpfs = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        disk_dir()
    };
    fill("realistic (lxc/instance-NNNNN)", realistic_owner, &tmpfs);
    fill("longest (128-byte)", longest_owner, &tmpfs);
    fill(
        "realistic (lxc/instance-NNNNN)",
        realistic_owner,
        &disk_dir(),
    );
}
