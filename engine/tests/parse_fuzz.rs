//! A bounded, structure-aware property test of everything that reads
//! untrusted request text (cargo-fuzz needs a nightly compiler; this runs
//! on stable in every CI run): random dotted keys, deep nesting, JSON and
//! form bodies, random bytes, and random or mutated YAML manifests. Each
//! input must be answered — accepted or refused with an error — without a
//! panic, and without a stack overflow (which would abort this binary).
//!
//! `ORBITLAB_FUZZ_RUNS` sets the number of inputs per target (default 2000,
//! a few seconds in a debug build); `ORBITLAB_FUZZ_SEED` replays a seed
//! (each run's generator is seeded with `seed + run`, and a failure names
//! both). For the long run:
//!
//! ```text
//! ORBITLAB_FUZZ_RUNS=1000000 cargo test --release -p orbitlab-engine --test parse_fuzz -- --nocapture
//! ```

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use orbitlab_engine::api::PropertyValue;
use orbitlab_engine::api::request::{BodyFormat, into_properties, parse_body, parse_query};
use orbitlab_manifests::spec::Spec;
use orbitlab_manifests::{Kind, Metadata, codec};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;

fn runs() -> u64 {
    std::env::var("ORBITLAB_FUZZ_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

fn base_seed() -> u64 {
    std::env::var("ORBITLAB_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x0_5EED_0B17)
}

/// Runs `target` on `runs()` generated inputs; a panic fails the test with
/// the seed and a prefix of the input.
fn fuzz(name: &str, generate: impl Fn(&mut StdRng) -> Vec<u8>, target: impl Fn(&[u8])) {
    let (runs, seed) = (runs(), base_seed());
    let started = Instant::now();
    let mut largest = 0;
    for run in 0..runs {
        let mut rng = StdRng::seed_from_u64(seed.wrapping_add(run));
        let input = generate(&mut rng);
        largest = largest.max(input.len());
        if catch_unwind(AssertUnwindSafe(|| target(&input))).is_err() {
            let shown = String::from_utf8_lossy(&input[..input.len().min(400)]).into_owned();
            panic!(
                "{name}: run {run} (ORBITLAB_FUZZ_SEED={seed}) panicked on a {}-byte input starting {shown:?}",
                input.len()
            );
        }
    }
    eprintln!(
        "{name}: {runs} inputs (largest {largest} bytes) in {:.1?}",
        started.elapsed()
    );
}

const WORDS: &[&str] = &[
    "a",
    "name",
    "labels",
    "spec",
    "cidr",
    "alias",
    "ingress",
    "subnets",
    "description",
    "backplane",
    "memory",
    "ssh-keys",
    "to_instance",
    "port",
    "-",
    "--x",
    "_",
    "é",
    "0",
    "",
    " ",
    "\u{0}",
    "\n",
    "x.y",
    "=",
    "&",
    "%",
    "%2E",
    "ü\u{301}",
    "__proto__",
    "delete",
    "_dc",
    "force",
    "ls",
];

const VALUES: &[&str] = &[
    "",
    "1",
    "0",
    "-1",
    "true",
    "web",
    "172.16.0.0/24",
    "10.0.0.0/33",
    "a=1,b=2",
    "a=",
    "=",
    ",",
    "a=1,,b",
    "name=a,cidr=10.0.0.0/25",
    "local:vztmpl/debian-12.tar.zst",
    "x=y=z",
    "18446744073709551616",
    "1e309",
    "NaN",
    "\u{feff}",
    "tcp",
    "  512 ",
];

fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items[rng.gen_range(0..items.len())]
}

fn random_text(rng: &mut StdRng, max: usize) -> String {
    let len = rng.gen_range(0..=max);
    (0..len)
        .map(|_| match rng.gen_range(0..10) {
            0 => char::from_u32(rng.gen_range(0..0x11_0000)).unwrap_or('\u{fffd}'),
            1 => ['.', '=', ',', '&', '%', '-', '[', '{', '"', '\\'][rng.gen_range(0..10)],
            _ => char::from(rng.gen_range(b' '..=b'~')),
        })
        .collect()
}

/// Mostly short dotted keys, sometimes near the depth cap, rarely
/// thousands of parts (the finding of issue 16); only short ones when
/// `short`.
fn random_key(rng: &mut StdRng, short: bool) -> String {
    let parts = match rng.gen_range(0..100) {
        _ if short => rng.gen_range(1..=3),
        0..=74 => rng.gen_range(1..=4),
        75..=94 => rng.gen_range(12..=20),
        95..=98 => rng.gen_range(20..=300),
        _ => rng.gen_range(2000..=40_000),
    };
    let mut key = String::new();
    for i in 0..parts {
        if i > 0 {
            key.push(if rng.gen_bool(0.97) { '.' } else { '-' });
        }
        if rng.gen_bool(0.9) {
            key.push_str(pick(rng, WORDS));
        } else {
            key.push_str(&random_text(rng, 6));
        }
    }
    key
}

fn random_value(rng: &mut StdRng) -> String {
    if rng.gen_bool(0.8) {
        pick(rng, VALUES).to_owned()
    } else {
        random_text(rng, 40)
    }
}

/// A few pairs of any shape, or (rarely) many short ones, up to past the
/// parameter cap.
fn random_pairs(rng: &mut StdRng) -> Vec<(String, String)> {
    let (n, short) = match rng.gen_range(0..100) {
        0..=96 => (rng.gen_range(0..8), false),
        97..=98 => (rng.gen_range(8..300), true),
        _ => (rng.gen_range(4000..4200), true),
    };
    (0..n)
        .map(|_| (random_key(rng, short), random_value(rng)))
        .collect()
}

/// Nested JSON: balanced trees, and chains deep past every limit.
fn random_json(rng: &mut StdRng, depth: usize, budget: &mut usize) -> serde_json::Value {
    use serde_json::Value;
    *budget = budget.saturating_sub(1);
    let leaf = depth == 0 || *budget == 0;
    match rng.gen_range(0..if leaf { 4 } else { 7 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.r#gen()),
        2 => match rng.gen_range(0..3) {
            0 => Value::from(rng.r#gen::<i64>()),
            1 => Value::from(rng.r#gen::<f64>() * 1e300),
            _ => Value::from(rng.r#gen::<u64>()),
        },
        3 => Value::String(random_value(rng)),
        4 | 5 => {
            let n = rng.gen_range(0..5);
            Value::Object(
                (0..n)
                    .map(|_| (random_key(rng, true), random_json(rng, depth - 1, budget)))
                    .collect(),
            )
        }
        _ => {
            let n = rng.gen_range(0..5);
            Value::Array(
                (0..n)
                    .map(|_| random_json(rng, depth - 1, budget))
                    .collect(),
            )
        }
    }
}

fn deep_chain(rng: &mut StdRng) -> Vec<u8> {
    let depth = match rng.gen_range(0..10) {
        0..=4 => rng.gen_range(10..40),
        5..=8 => rng.gen_range(100..140),
        _ => rng.gen_range(1000..200_000),
    };
    let (open, close) = match rng.gen_range(0..3) {
        0 => ("{\"a\":", "}"),
        1 => ("[", "]"),
        _ => ("{\"a.a\":[", "]}"),
    };
    let mut out = String::from("{\"name\":\"x\",\"spec\":");
    out.push_str(&open.repeat(depth));
    out.push('1');
    out.push_str(&close.repeat(depth));
    out.push('}');
    out.into_bytes()
}

fn random_body(rng: &mut StdRng) -> (BodyFormat, Vec<u8>) {
    match rng.gen_range(0..10) {
        0..=3 => {
            let mut form = form_urlencoded::Serializer::new(String::new());
            for (k, v) in random_pairs(rng) {
                form.append_pair(&k, &v);
            }
            let mut body = form.finish().into_bytes();
            if rng.gen_bool(0.2) {
                mutate(rng, &mut body);
            }
            (BodyFormat::Form, body)
        }
        4..=6 => {
            let mut budget = 2000;
            let depth = rng.gen_range(1..24);
            let value = random_json(rng, depth, &mut budget);
            let mut body = serde_json::to_vec(&value).unwrap_or_default();
            if rng.gen_bool(0.2) {
                mutate(rng, &mut body);
            }
            (BodyFormat::Json, body)
        }
        7 if rng.gen_bool(0.2) => (BodyFormat::Json, deep_chain(rng)),
        _ => {
            let len = rng.gen_range(0..512);
            let bytes = (0..len).map(|_| rng.r#gen()).collect();
            let format = if rng.r#gen() {
                BodyFormat::Json
            } else {
                BodyFormat::Form
            };
            (format, bytes)
        }
    }
}

/// Flips, inserts, deletes and duplicates bytes.
fn mutate(rng: &mut StdRng, bytes: &mut Vec<u8>) {
    for _ in 0..rng.gen_range(1..8) {
        let at = if bytes.is_empty() {
            0
        } else {
            rng.gen_range(0..bytes.len())
        };
        match rng.gen_range(0..5) {
            0 if !bytes.is_empty() => bytes[at] ^= 1 << rng.gen_range(0..8),
            1 => bytes.insert(at, rng.r#gen()),
            2 if !bytes.is_empty() => {
                bytes.remove(at);
            }
            3 => {
                let token: &[u8] = [
                    b"{".as_slice(),
                    b"[",
                    b"]",
                    b"}",
                    b"\"",
                    b":",
                    b",",
                    b".",
                    b"=",
                    b"&",
                    b"%",
                    b"\\u0000",
                    b"- ",
                    b"\n",
                    b"\t",
                    b"&a ",
                    b"*a",
                    b"<<: ",
                    b"!!binary ",
                    b"---\n",
                    b"...\n",
                    b"? ",
                    b"|\n",
                    b">-\n",
                    b"'",
                ][rng.gen_range(0..25)];
                let at = at.min(bytes.len());
                bytes.splice(at..at, token.iter().copied());
            }
            _ if !bytes.is_empty() => {
                let end = rng.gen_range(at..=bytes.len().min(at + 64));
                let piece = bytes[at..end].to_vec();
                let to = rng.gen_range(0..=bytes.len());
                bytes.splice(to..to, piece);
            }
            _ => {}
        }
    }
}

const EXAMPLES: &[&str] = &[
    include_str!("../../manifests/examples/appliance.yaml"),
    include_str!("../../manifests/examples/certificate.yaml"),
    include_str!("../../manifests/examples/cluster.yaml"),
    include_str!("../../manifests/examples/lxc.yaml"),
    include_str!("../../manifests/examples/node.yaml"),
    include_str!("../../manifests/examples/secret.yaml"),
    include_str!("../../manifests/examples/sector.yaml"),
    include_str!("../../manifests/examples/settings.yaml"),
    include_str!("../../manifests/examples/ssh_key.yaml"),
];

/// Valid manifests, mutated; hostile YAML shapes; random text.
fn random_yaml(rng: &mut StdRng) -> Vec<u8> {
    match rng.gen_range(0..10) {
        0..=5 => {
            let mut text = EXAMPLES[rng.gen_range(0..EXAMPLES.len())]
                .as_bytes()
                .to_vec();
            if rng.gen_bool(0.3) {
                let other = EXAMPLES[rng.gen_range(0..EXAMPLES.len())];
                text.extend_from_slice(b"\n---\n");
                text.extend_from_slice(other.as_bytes());
            }
            mutate(rng, &mut text);
            text
        }
        6 => {
            let depth = rng.gen_range(1..5000);
            let (open, close) = if rng.r#gen() {
                ("[", "]")
            } else {
                ("{a: ", "}")
            };
            format!(
                "apiVersion: orbitlab.io/v1\nkind: Sector\nmetadata:\n  name: x\nspec:\n  cidr: {}1{}\n",
                open.repeat(depth),
                close.repeat(depth)
            )
            .into_bytes()
        }
        7 => {
            // Block nesting by indentation, and an alias bomb.
            let depth = rng.gen_range(1..300);
            let mut text = String::from(
                "apiVersion: orbitlab.io/v1\nkind: Sector\nmetadata:\n  name: x\nspec:\n",
            );
            for i in 0..depth {
                text.push_str(&" ".repeat(2 * (i + 1)));
                text.push_str("a:\n");
            }
            if rng.r#gen() {
                text.push_str("x: &a [1,1,1,1,1,1,1,1]\ny: &b [*a,*a,*a,*a,*a,*a,*a,*a]\nz: &c [*b,*b,*b,*b,*b,*b,*b,*b]\nw: [*c,*c,*c,*c,*c,*c,*c,*c]\n");
            }
            text.into_bytes()
        }
        8 => {
            let docs = rng.gen_range(1..6000);
            "---\n".repeat(docs).into_bytes()
        }
        _ => random_text(rng, 400).into_bytes(),
    }
}

#[test]
fn dotted_keys_and_property_values() {
    fuzz(
        "properties",
        |rng| {
            let pairs = random_pairs(rng);
            serde_json::to_vec(&pairs).unwrap_or_default()
        },
        |input| {
            let pairs: Vec<(String, String)> = serde_json::from_slice(input).unwrap_or_default();
            let Ok(props) =
                PropertyValue::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            else {
                return;
            };
            exercise(props);
        },
    );
}

#[test]
fn request_bodies() {
    fuzz(
        "bodies",
        |rng| {
            let (format, mut body) = random_body(rng);
            body.insert(0, matches!(format, BodyFormat::Json) as u8);
            body
        },
        |input| {
            let (tag, body) = input.split_first().unwrap_or((&0, &[]));
            let format = if *tag == 1 {
                BodyFormat::Json
            } else {
                BodyFormat::Form
            };
            let Ok(mut params) = parse_body(format, body) else {
                return;
            };
            if let Ok(query) = parse_query(&String::from_utf8_lossy(&body[..body.len().min(256)])) {
                params.extend(query);
            }
            if let Ok(props) = into_properties(params) {
                exercise(props);
            }
        },
    );
}

#[test]
fn yaml_manifests() {
    fuzz("manifests", random_yaml, |input| {
        let text = String::from_utf8_lossy(input);
        if let Ok(docs) = codec::decode("fuzz.yaml", &text) {
            for doc in docs {
                // What decodes must encode and decode again.
                let again = codec::encode(&doc.value);
                let back =
                    codec::decode("again.yaml", &again).expect("an encoded manifest decodes");
                assert_eq!(back.len(), 1);
                assert_eq!(back[0].value, doc.value);
            }
        }
    });
}

/// What the API does with properties: metadata and every kind's spec.
fn exercise(props: PropertyValue) {
    let _ = Metadata::deserialize(props.clone());
    for kind in Kind::ALL {
        let _ = Spec::deserialize_for(kind, props.clone());
    }
    let mut edited = props;
    let _ = edited.replace("spec.alias", PropertyValue::Scalar("x".into()));
    let _ = edited.remove("labels.team");
}
