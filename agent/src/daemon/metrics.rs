//! Prometheus metrics of the agent, in the text exposition format, served
//! on a local port (default `127.0.0.1:9728`; `GET /metrics`) by a tiny
//! HTTP/1.0-style server on one thread: it reads one request, answers, and
//! closes. The figures hold no secrets. Side effects: one listening TCP
//! socket; no other I/O.
//!
//! | metric | meaning |
//! | --- | --- |
//! | `orbitlab_agent_info{node,version}` | always 1 |
//! | `orbitlab_agent_reconciles_total{scope,result}` | reconciles run: `ok`, `failed` (some object failed), `error` (the pass could not run) |
//! | `orbitlab_agent_reconcile_errors_total{scope,reason}` | reconciles that could not run, by reason |
//! | `orbitlab_agent_reconcile_duration_seconds{scope}` | histogram of reconcile durations |
//! | `orbitlab_agent_reconcile_steps_total{scope}` | steps executed |
//! | `orbitlab_agent_lock_wait_seconds{scope}` | histogram: time from a reconcile's start to its first Proxmox call — waiting for the `orbitlab-reconcile` lock, plus reading the manifests |
//! | `orbitlab_agent_last_success_timestamp_seconds{scope}` | end of the last reconcile in which no object failed |
//! | `orbitlab_agent_kind_last_success_timestamp_seconds{kind}` | end of the last cluster-scoped reconcile in which no object of that kind failed |
//! | `orbitlab_agent_objects{kind,state}` | objects by state after the last cluster-scoped reconcile |
//! | `orbitlab_agent_cluster_owner`, `orbitlab_agent_quorate` | 1 or 0, as of the last loop |
//! | `orbitlab_agent_generation` | change counter last seen |
//! | `orbitlab_agent_polls_total` | loops (each reads the change counter and `.members`) |
//! | `orbitlab_agent_pve_calls_total{access}` | Proxmox and `pct` calls: `read`, `write`, `refused` (by the fence) |

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use orbitlab_manifests::Kind;

use super::fence::CallCounts;
use orbitlab_engine::reconcile::{Report, Scope};

/// Upper bounds (seconds) of the histogram buckets.
const BUCKETS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// The label of a scope.
pub fn scope_label(scope: Scope) -> &'static str {
    match scope {
        Scope::Cluster => "cluster",
        Scope::Node => "node",
    }
}

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, count) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (bound, count) in BUCKETS.iter().zip(self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Inner {
    reconciles: BTreeMap<(&'static str, &'static str), u64>,
    errors: BTreeMap<(&'static str, &'static str), u64>,
    durations: BTreeMap<&'static str, Histogram>,
    lock_waits: BTreeMap<&'static str, Histogram>,
    steps: BTreeMap<&'static str, u64>,
    last_success: BTreeMap<&'static str, f64>,
    kind_last_success: BTreeMap<&'static str, f64>,
    objects: BTreeMap<(&'static str, &'static str), u64>,
    owner: bool,
    quorate: bool,
    generation: u64,
    polls: u64,
    calls: CallCounts,
}

/// The agent's figures (shared by the loop and the server thread).
#[derive(Debug)]
pub struct Metrics {
    node: String,
    inner: Mutex<Inner>,
}

/// What the loop saw this time round.
#[derive(Debug, Clone, Copy)]
pub struct LoopView {
    pub owner: bool,
    pub quorate: bool,
    pub generation: u64,
    pub calls: CallCounts,
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Metrics {
    /// Empty figures for `node`.
    pub fn new(node: &str) -> Self {
        Metrics {
            node: node.to_owned(),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records one loop.
    pub fn loop_seen(&self, view: LoopView) {
        let mut inner = self.inner();
        inner.polls += 1;
        inner.owner = view.owner;
        inner.quorate = view.quorate;
        inner.generation = view.generation;
        inner.calls = view.calls;
    }

    /// Records a reconcile that ran (some objects may have failed).
    pub fn reconciled(
        &self,
        scope: Scope,
        took: Duration,
        lock_wait: Option<Duration>,
        report: &Report,
    ) {
        let label = scope_label(scope);
        let mut inner = self.inner();
        let result = if report.failed.is_empty() {
            "ok"
        } else {
            "failed"
        };
        *inner.reconciles.entry((label, result)).or_default() += 1;
        inner
            .durations
            .entry(label)
            .or_default()
            .observe(took.as_secs_f64());
        if let Some(wait) = lock_wait {
            inner
                .lock_waits
                .entry(label)
                .or_default()
                .observe(wait.as_secs_f64());
        }
        *inner.steps.entry(label).or_default() += report.steps as u64;
        let now = now_seconds();
        if report.failed.is_empty() {
            inner.last_success.insert(label, now);
        }
        if scope == Scope::Cluster {
            inner.objects.clear();
            let mut count = |kind: Kind, state: &'static str| {
                *inner.objects.entry((kind.dir_name(), state)).or_default() += 1
            };
            report.ready.iter().for_each(|o| count(o.kind, "ready"));
            report
                .progressing
                .keys()
                .for_each(|o| count(o.kind, "progressing"));
            report.failed.keys().for_each(|o| count(o.kind, "failed"));
            let seen = report
                .ready
                .iter()
                .chain(report.progressing.keys())
                .map(|o| o.kind);
            for kind in seen {
                if !report.failed.keys().any(|o| o.kind == kind) {
                    inner.kind_last_success.insert(kind.dir_name(), now);
                }
            }
        }
    }

    /// Records a reconcile that could not run.
    pub fn errored(&self, scope: Scope, took: Duration, reason: &'static str) {
        let label = scope_label(scope);
        let mut inner = self.inner();
        *inner.reconciles.entry((label, "error")).or_default() += 1;
        *inner.errors.entry((label, reason)).or_default() += 1;
        inner
            .durations
            .entry(label)
            .or_default()
            .observe(took.as_secs_f64());
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let inner = self.inner();
        let mut out = String::with_capacity(4096);
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(
            &mut out,
            "orbitlab_agent_info",
            "gauge",
            "The agent's node and version.",
        );
        let _ = writeln!(
            out,
            "orbitlab_agent_info{{node=\"{}\",version=\"{}\"}} 1",
            escape(&self.node),
            env!("CARGO_PKG_VERSION")
        );
        family(
            &mut out,
            "orbitlab_agent_reconciles_total",
            "counter",
            "Reconciles run, by scope and result (ok, failed, error).",
        );
        for ((scope, result), n) in &inner.reconciles {
            let _ = writeln!(
                out,
                "orbitlab_agent_reconciles_total{{scope=\"{scope}\",result=\"{result}\"}} {n}"
            );
        }
        family(
            &mut out,
            "orbitlab_agent_reconcile_errors_total",
            "counter",
            "Reconciles that could not run, by scope and reason.",
        );
        for ((scope, reason), n) in &inner.errors {
            let _ = writeln!(
                out,
                "orbitlab_agent_reconcile_errors_total{{scope=\"{scope}\",reason=\"{reason}\"}} {n}"
            );
        }
        family(
            &mut out,
            "orbitlab_agent_reconcile_duration_seconds",
            "histogram",
            "How long reconciles took.",
        );
        for (scope, h) in &inner.durations {
            h.render(
                &mut out,
                "orbitlab_agent_reconcile_duration_seconds",
                &format!("scope=\"{scope}\""),
            );
        }
        family(
            &mut out,
            "orbitlab_agent_lock_wait_seconds",
            "histogram",
            "Time from a reconcile's start to its first Proxmox call: waiting for the cluster lock, plus reading the manifests.",
        );
        for (scope, h) in &inner.lock_waits {
            h.render(
                &mut out,
                "orbitlab_agent_lock_wait_seconds",
                &format!("scope=\"{scope}\""),
            );
        }
        family(
            &mut out,
            "orbitlab_agent_reconcile_steps_total",
            "counter",
            "Steps executed.",
        );
        for (scope, n) in &inner.steps {
            let _ = writeln!(
                out,
                "orbitlab_agent_reconcile_steps_total{{scope=\"{scope}\"}} {n}"
            );
        }
        family(
            &mut out,
            "orbitlab_agent_last_success_timestamp_seconds",
            "gauge",
            "End of the last reconcile in which no object failed.",
        );
        for (scope, t) in &inner.last_success {
            let _ = writeln!(
                out,
                "orbitlab_agent_last_success_timestamp_seconds{{scope=\"{scope}\"}} {t:.3}"
            );
        }
        family(
            &mut out,
            "orbitlab_agent_kind_last_success_timestamp_seconds",
            "gauge",
            "End of the last cluster-scoped reconcile in which no object of the kind failed.",
        );
        for (kind, t) in &inner.kind_last_success {
            let _ = writeln!(
                out,
                "orbitlab_agent_kind_last_success_timestamp_seconds{{kind=\"{kind}\"}} {t:.3}"
            );
        }
        family(
            &mut out,
            "orbitlab_agent_objects",
            "gauge",
            "Objects by state after the last cluster-scoped reconcile.",
        );
        for ((kind, state), n) in &inner.objects {
            let _ = writeln!(
                out,
                "orbitlab_agent_objects{{kind=\"{kind}\",state=\"{state}\"}} {n}"
            );
        }
        let gauges = [
            (
                "orbitlab_agent_cluster_owner",
                "Whether this node owns cluster-scoped work.",
                u64::from(inner.owner),
            ),
            (
                "orbitlab_agent_quorate",
                "Whether the cluster was quorate at the last loop.",
                u64::from(inner.quorate),
            ),
            (
                "orbitlab_agent_generation",
                "The change counter last seen.",
                inner.generation,
            ),
        ];
        for (name, help, value) in gauges {
            family(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name} {value}");
        }
        family(
            &mut out,
            "orbitlab_agent_polls_total",
            "counter",
            "Loops: reads of the change counter and .members.",
        );
        let _ = writeln!(out, "orbitlab_agent_polls_total {}", inner.polls);
        family(
            &mut out,
            "orbitlab_agent_pve_calls_total",
            "counter",
            "Proxmox API and pct calls: reads, writes, and writes refused by the fence.",
        );
        for (access, n) in [
            ("read", inner.calls.reads),
            ("write", inner.calls.writes),
            ("refused", inner.calls.refused),
        ] {
            let _ = writeln!(
                out,
                "orbitlab_agent_pve_calls_total{{access=\"{access}\"}} {n}"
            );
        }
        out
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Largest request head read.
const MAX_REQUEST: usize = 8192;

/// Serves `GET /metrics` with `render` on `listen`, one connection at a
/// time, on a background thread. Returns the bound address (useful with
/// port 0).
pub fn serve(
    listen: SocketAddr,
    render: impl Fn() -> String + Send + 'static,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(listen)?;
    let addr = listener.local_addr()?;
    let thread = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => {
                        if let Err(e) = answer(stream, &render) {
                            tracing::debug!(error = %e, "metrics request failed");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics listener failed to accept");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })?;
    Ok((addr, thread))
}

fn answer(mut stream: TcpStream, render: &impl Fn() -> String) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            render(),
        ),
        ("GET" | "HEAD", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found; metrics are at /metrics\n".into(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET is supported\n".into(),
        ),
    };
    let mut response =
        format!("HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
            .into_bytes();
    if method != "HEAD" {
        response.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&response)?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use orbitlab_engine::reconcile::ObjectRef;
    use std::sync::Arc;

    fn report(failed: bool) -> Report {
        let mut report = Report {
            passes: 1,
            steps: 3,
            ..Report::default()
        };
        report
            .ready
            .push(ObjectRef::new(Kind::Cluster, &"lab".parse().unwrap()));
        if failed {
            report.failed.insert(
                ObjectRef::new(Kind::Sector, &"web".parse().unwrap()),
                "boom".into(),
            );
        }
        report
    }

    #[test]
    fn records_and_renders_the_figures() {
        let metrics = Metrics::new("pve1");
        metrics.reconciled(
            Scope::Cluster,
            Duration::from_millis(300),
            Some(Duration::from_millis(20)),
            &report(false),
        );
        metrics.reconciled(
            Scope::Cluster,
            Duration::from_millis(30),
            None,
            &report(true),
        );
        metrics.errored(Scope::Node, Duration::from_millis(5), "read_only");
        metrics.loop_seen(LoopView {
            owner: true,
            quorate: true,
            generation: 42,
            calls: CallCounts {
                reads: 7,
                writes: 2,
                refused: 1,
            },
        });
        let text = metrics.render();
        for line in [
            "orbitlab_agent_info{node=\"pve1\",version=\"",
            "orbitlab_agent_reconciles_total{scope=\"cluster\",result=\"ok\"} 1",
            "orbitlab_agent_reconciles_total{scope=\"cluster\",result=\"failed\"} 1",
            "orbitlab_agent_reconciles_total{scope=\"node\",result=\"error\"} 1",
            "orbitlab_agent_reconcile_errors_total{scope=\"node\",reason=\"read_only\"} 1",
            "orbitlab_agent_reconcile_duration_seconds_bucket{scope=\"cluster\",le=\"0.05\"} 1",
            "orbitlab_agent_reconcile_duration_seconds_bucket{scope=\"cluster\",le=\"0.5\"} 2",
            "orbitlab_agent_reconcile_duration_seconds_count{scope=\"cluster\"} 2",
            "orbitlab_agent_lock_wait_seconds_count{scope=\"cluster\"} 1",
            "orbitlab_agent_reconcile_steps_total{scope=\"cluster\"} 6",
            "orbitlab_agent_objects{kind=\"sector\",state=\"failed\"} 1",
            "orbitlab_agent_objects{kind=\"cluster\",state=\"ready\"} 1",
            "orbitlab_agent_kind_last_success_timestamp_seconds{kind=\"cluster\"}",
            "orbitlab_agent_cluster_owner 1",
            "orbitlab_agent_generation 42",
            "orbitlab_agent_polls_total 1",
            "orbitlab_agent_pve_calls_total{access=\"refused\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(
            !text.contains("orbitlab_agent_kind_last_success_timestamp_seconds{kind=\"sector\"}"),
            "{text}"
        );
        // Every sample belongs to a family declared with HELP and TYPE.
        for sample in text.lines().filter(|l| !l.starts_with('#')) {
            let name = sample.split(['{', ' ']).next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
            assert!(text.contains(&format!("# TYPE {family} ")), "{sample}");
        }
    }

    #[test]
    fn serves_metrics_over_http_and_nothing_else() {
        let metrics = Arc::new(Metrics::new("pve2"));
        let shared = Arc::clone(&metrics);
        let (addr, _thread) =
            serve("127.0.0.1:0".parse().unwrap(), move || shared.render()).unwrap();
        let get = |request: &str| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream.write_all(request.as_bytes()).unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            answer
        };
        let ok = get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("orbitlab_agent_info{node=\"pve2\""), "{ok}");
        assert!(get("GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get("POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
    }
}
