//! Secret delivery latency for BENCHMARKS.md: the time from `secret set`
//! (a new vault version) until every instance that declares the secret
//! holds the new value in its (simulated) container, on a simulated
//! 3-node cluster with the agents' reconciles run back to back in this
//! process (the owner's cluster-scoped one on pve1, node-scoped ones on
//! pve2 and pve3, one pass each per round), as agents woken by the change
//! counter run them. A real agent adds the wait for its wake-up: at once
//! for a change made on its own node (inotify), at most its poll interval
//! (2 s) for one made on another node.
//!
//! Also the sealed vault's unseal cost: Argon2id at the default 64 MiB, 3
//! passes (what `orbitlab vault unseal` costs an agent once per start).
//!
//! Run: `cargo bench -p orbitlab-tests --bench identities`.

use std::time::{Duration, Instant};

use orbitlab_engine::api::Api;
use orbitlab_engine::reconcile::Scope;
use orbitlab_engine::reconcile::init::init;
use orbitlab_engine::vault::{SecretValue, Vault};
use orbitlab_manifests::{Kind, codec};
use orbitlab_tests::{Lab, NODES};

const TEMPLATE: &str = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";
const ROUNDS: usize = 25;

fn manifests(instances: usize) -> String {
    let mut yaml = "apiVersion: orbitlab.io/v1\nkind: Sector\nmetadata: {name: web}\nspec: {cidr: 172.16.0.0/22}\n---\napiVersion: orbitlab.io/v1\nkind: Secret\nmetadata: {name: db}\nspec:\n  readers: [{selector: \"role=app\"}]\n".to_owned();
    for i in 0..instances {
        yaml.push_str(&format!(
            "---\napiVersion: orbitlab.io/v1\nkind: Lxc\nmetadata: {{name: app{i}, labels: {{role: app}}}}\nspec:\n  sector: web\n  template: {TEMPLATE}\n  secrets: [{{secret: db, path: /run/secrets/db}}]\n"
        ));
    }
    yaml
}

fn round(lab: &Lab) {
    for node in NODES {
        let host = lab.host(node);
        let mut r = lab.reconciler(&host);
        r.options.max_passes = 1;
        if node != "pve1" {
            r.options.scope = Scope::Node;
        }
        r.run().expect("a pass runs");
    }
}

fn holders(lab: &Lab, value: &str) -> usize {
    lab.sim
        .pct_log()
        .values()
        .filter(|r| {
            r.files
                .get("/run/secrets/db")
                .is_some_and(|f| f.content == value)
        })
        .count()
}

fn measure(instances: usize) {
    let lab = Lab::new();
    let host = lab.host("pve1");
    init(&lab.reconciler(&host), None).expect("init");
    let vault = Vault::new(lab.store.clone());
    let path = "db".parse().unwrap();
    vault
        .set(&path, &SecretValue::new(b"v0".to_vec()).unwrap())
        .unwrap();
    Api::new(lab.store.clone())
        .apply(codec::decode("bench.yaml", &manifests(instances)).unwrap())
        .unwrap();
    lab.converge_as_agents("pve1");
    assert_eq!(holders(&lab, "v0"), instances, "every instance holds v0");
    let mut times = Vec::new();
    let mut rounds_needed = Vec::new();
    for i in 1..=ROUNDS {
        let value = format!("v{i}");
        let start = Instant::now();
        vault
            .set(
                &path,
                &SecretValue::new(value.clone().into_bytes()).unwrap(),
            )
            .unwrap();
        let mut n = 0;
        while holders(&lab, &value) < instances {
            round(&lab);
            n += 1;
            assert!(n < 5, "not delivered after {n} rounds");
        }
        times.push(start.elapsed());
        rounds_needed.push(n);
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let status = lab
        .store
        .read_status(Kind::Lxc, &"app0".parse().unwrap())
        .unwrap()
        .unwrap();
    println!(
        "{instances:>3} instance(s): set -> delivered everywhere: median {:.1} ms, p90 {:.1} ms, max {:.1} ms over {ROUNDS} versions; agent rounds needed: {:?}; app0 holds {}",
        ms(times[ROUNDS / 2]),
        ms(times[ROUNDS * 9 / 10]),
        ms(times[ROUNDS - 1]),
        {
            let mut r = rounds_needed.clone();
            r.dedup();
            r
        },
        status
            .outputs
            .get("holds/secret/db")
            .cloned()
            .unwrap_or_default()
    );
}

fn unseal_cost() {
    use orbitlab_engine::vault::seal;
    let dir = tempfile::tempdir().unwrap();
    let store = orbitlab_engine::store::Store::open(dir.path());
    let vault = Vault::new(store);
    vault
        .set(
            &"a".parse().unwrap(),
            &SecretValue::new(b"x".to_vec()).unwrap(),
        )
        .unwrap();
    let passphrase = SecretValue::new(b"bench passphrase".to_vec()).unwrap();
    vault.seal(&passphrase, seal::DEFAULT_MEMORY_MIB).unwrap();
    let mut times = Vec::new();
    for _ in 0..5 {
        seal::forget();
        let start = Instant::now();
        vault.unseal(&passphrase).unwrap();
        times.push(start.elapsed());
    }
    times.sort();
    println!(
        "unseal at {} MiB / 3 passes (Argon2id + opening the keyring): median {:.0} ms, max {:.0} ms over 5",
        seal::DEFAULT_MEMORY_MIB,
        times[2].as_secs_f64() * 1000.0,
        times[4].as_secs_f64() * 1000.0
    );
    seal::forget();
}

fn main() {
    for instances in [1, 10, 30] {
        measure(instances);
    }
    unseal_cost();
}
