//! Shared helpers of the `pve_ui_*` and `pve_extjs` tests: a simulator, a
//! client that calls it in either format (`json`, `extjs`) with an API
//! token or a ticket (cookie and CSRF token, as the web UI sends them),
//! and a check of an answer against the `returns` schema of the official
//! Proxmox VE API schema (`../shared/pve-api/`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use orbitlab_sim::pve::schema::{compile_perl_pattern, official_endpoints, official_schema_dir};
use orbitlab_sim::pve::{
    DEFAULT_PASSWORD, DEFAULT_TEMPLATE, DEFAULT_TOKEN_SECRET, PveSim, PveVersion, SimConfig,
    SimHandle,
};
use reqwest::blocking::Client;
use serde_json::Value;

/// A simulator of `version` whose tasks end quickly.
pub fn start(version: PveVersion) -> SimHandle {
    start_with(version, |_| {})
}

/// A simulator of `version`, its configuration changed by `edit`.
pub fn start_with(version: PveVersion, edit: impl FnOnce(&mut SimConfig)) -> SimHandle {
    let mut cfg = SimConfig {
        version,
        task_duration: Duration::from_millis(20),
        ..SimConfig::default()
    };
    edit(&mut cfg);
    PveSim::start(cfg).expect("simulator starts")
}

/// How a call authenticates.
#[derive(Debug, Clone)]
pub enum Cred {
    /// None at all.
    Anonymous,
    /// `PVEAPIToken=ID=SECRET`.
    Token(String, String),
    /// A ticket (sent as the web UI sends it: the cookie value escaped as
    /// JavaScript's `escape` does) and its CSRF prevention token.
    Ticket { ticket: String, csrf: String },
}

impl Cred {
    /// The default token `root@pam!orbitlab`.
    pub fn root_token() -> Cred {
        Cred::Token("root@pam!orbitlab".into(), DEFAULT_TOKEN_SECRET.into())
    }
}

/// JavaScript's `escape` (what `Ext.util.Cookies.set` stores): every byte
/// but letters, digits and `@*_+-./` as `%XX`.
pub fn js_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"@*_+-./".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// An answer: HTTP status, status line's reason, the body (JSON, or the
/// text when it is not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub http: u16,
    pub reason: Option<String>,
    pub body: Value,
}

/// One call in `format` (`json`, `extjs`): the query for GET, a form body
/// otherwise.
pub fn call(
    sim: &SimHandle,
    format: &str,
    cred: &Cred,
    method: &str,
    path: &str,
    form: &[(&str, &str)],
) -> Answer {
    let url = format!("{}/api2/{format}{path}", sim.origin());
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = Client::new().request(method.clone(), url);
    req = match cred {
        Cred::Anonymous => req,
        Cred::Token(id, secret) => {
            req.header("Authorization", format!("PVEAPIToken={id}={secret}"))
        }
        Cred::Ticket { ticket, csrf } => req
            .header("Cookie", format!("PVEAuthCookie={}", js_escape(ticket)))
            .header("CSRFPreventionToken", csrf.as_str()),
    };
    req = if method == reqwest::Method::GET {
        req.query(form)
    } else {
        req.form(form)
    };
    let resp = req.send().expect("request");
    let http = resp.status().as_u16();
    let reason = resp
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned());
    let text = resp.text().expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer { http, reason, body }
}

/// A `json` call that must succeed: its `data`.
pub fn ok(sim: &SimHandle, cred: &Cred, method: &str, path: &str, form: &[(&str, &str)]) -> Value {
    let a = call(sim, "json", cred, method, path, form);
    assert_eq!(a.http, 200, "{method} {path}: {a:?}");
    a.body["data"].clone()
}

/// Log in as the web UI's login window does (`POST
/// /api2/extjs/access/ticket` with `username`, `password`, `realm`,
/// `new-format`); the answer's `data` and the ticket credentials.
pub fn ui_login(sim: &SimHandle, username: &str, password: &str, realm: &str) -> (Value, Cred) {
    let a = call(
        sim,
        "extjs",
        &Cred::Anonymous,
        "POST",
        "/access/ticket",
        &[
            ("username", username),
            ("password", password),
            ("realm", realm),
            ("new-format", "1"),
        ],
    );
    assert_eq!(a.http, 200, "{a:?}");
    assert_eq!(a.body["success"], 1, "login of {username}@{realm}: {a:?}");
    let data = a.body["data"].clone();
    let cred = Cred::Ticket {
        ticket: data["ticket"].as_str().expect("ticket").to_owned(),
        csrf: data["CSRFPreventionToken"]
            .as_str()
            .expect("CSRF token")
            .to_owned(),
    };
    (data, cred)
}

/// `root@pam` logged in through the login window.
pub fn root_ticket(sim: &SimHandle) -> Cred {
    ui_login(sim, "root", DEFAULT_PASSWORD, "pam").1
}

/// Create a container (and wait for its task), with extra parameters.
pub fn create_ct(sim: &SimHandle, node: &str, vmid: u32, extra: &[(&str, &str)]) {
    let vmid = vmid.to_string();
    let mut form = vec![
        ("vmid", vmid.as_str()),
        ("ostemplate", DEFAULT_TEMPLATE),
        ("rootfs", "local-lvm:8"),
    ];
    form.extend_from_slice(extra);
    let upid = ok(
        sim,
        &Cred::root_token(),
        "POST",
        &format!("/nodes/{node}/lxc"),
        &form,
    );
    assert_eq!(wait_task(sim, node, &upid), "OK");
}

/// Wait for a task to end; its exit status.
pub fn wait_task(sim: &SimHandle, node: &str, upid: &Value) -> String {
    let upid = upid.as_str().expect("a UPID");
    let start = Instant::now();
    loop {
        let st = ok(
            sim,
            &Cred::root_token(),
            "GET",
            &format!("/nodes/{node}/tasks/{upid}/status"),
            &[],
        );
        if st["status"] == "stopped" {
            return st["exitstatus"].as_str().unwrap_or_default().to_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "task never ended"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The official schema of `version`: path → method → info.
fn official(version: PveVersion) -> Option<&'static BTreeMap<String, BTreeMap<String, Value>>> {
    type Tree = BTreeMap<String, BTreeMap<String, Value>>;
    static SCHEMAS: [OnceLock<Option<Tree>>; 2] = [OnceLock::new(), OnceLock::new()];
    let slot = &SCHEMAS[usize::from(version == PveVersion::V9_1)];
    slot.get_or_init(|| {
        let dir = official_schema_dir("the answers of the simulator")?;
        Some(official_endpoints(&dir, version).unwrap_or_else(|e| panic!("{e}")))
    })
    .as_ref()
}

/// The `returns` schema of an endpoint (`None` without the schema files).
pub fn returns(version: PveVersion, method: &str, template: &str) -> Option<Value> {
    let tree = official(version)?;
    let info = tree
        .get(template)
        .and_then(|m| m.get(method))
        .unwrap_or_else(|| panic!("[{version}] {method} {template} is not in the schema"));
    Some(info["returns"].clone())
}

fn flag(v: &Value) -> bool {
    v.as_u64() == Some(1) || v.as_bool() == Some(true) || v.as_str() == Some("1")
}

/// Check `v` against a JSON-schema node as Proxmox's `PVE::JSONSchema`
/// does (types strictly as JSON: a string must be a string; booleans may
/// be 0/1), pushing what does not fit.
pub fn check_value(schema: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
    let kind = schema["type"].as_str().unwrap_or("any");
    let mut err = |what: String| errs.push(format!("{at}: {what} (value {v})"));
    match kind {
        "null" => {
            if !v.is_null() {
                err("not null".into());
            }
            return;
        }
        "object" => {
            let Some(obj) = v.as_object() else {
                return err("not an object".into());
            };
            let props = schema["properties"].as_object();
            for (k, sub) in props.into_iter().flatten() {
                match obj.get(k) {
                    None | Some(Value::Null) => {
                        if !flag(&sub["optional"]) {
                            errs.push(format!("{at}.{k}: missing and not optional"));
                        }
                    }
                    Some(x) => check_value(sub, x, &format!("{at}.{k}"), errs),
                }
            }
            let additional = &schema["additionalProperties"];
            for (k, x) in obj {
                if props.is_some_and(|p| p.contains_key(k)) {
                    continue;
                }
                if additional.is_object() {
                    check_value(additional, x, &format!("{at}.{k}"), errs);
                } else if !additional.is_null() && !flag(additional) {
                    errs.push(format!(
                        "{at}.{k}: not in the schema, which allows no others"
                    ));
                }
            }
            return;
        }
        "array" => {
            let Some(items) = v.as_array() else {
                return err("not an array".into());
            };
            for (i, x) in items.iter().enumerate() {
                check_value(&schema["items"], x, &format!("{at}[{i}]"), errs);
            }
            return;
        }
        "string" => {
            let Some(s) = v.as_str() else {
                return err("not a string".into());
            };
            if let Some(p) = schema["pattern"].as_str() {
                let rx = compile_perl_pattern(p).expect("pattern compiles");
                if !rx.is_match(s) {
                    err(format!("does not match {p}"));
                }
            }
            if let Some(max) = schema["maxLength"].as_u64()
                && s.chars().count() as u64 > max
            {
                err(format!("longer than {max}"));
            }
        }
        "integer" if !(v.is_i64() || v.is_u64()) => return err("not an integer".into()),
        "number" if !v.is_number() => return err("not a number".into()),
        "boolean" if !(v.is_boolean() || v.as_u64().is_some_and(|n| n <= 1)) => {
            return err("not a boolean (0/1)".into());
        }
        _ => {}
    }
    // Named formats the simulator knows are checked (others pass).
    let text = v
        .as_str()
        .map(str::to_owned)
        .or_else(|| v.as_number().map(|n| n.to_string()));
    if let (Some(f), Some(text)) = (schema["format"].as_str(), text)
        && let Err(e) = orbitlab_sim::pve::formats::check(f, &text)
    {
        err(format!("format {f}: {e}"));
    }
    if let Some(e) = schema["enum"].as_array()
        && !e.contains(v)
    {
        err(format!("not one of {e:?}"));
    }
    if let (Some(min), Some(n)) = (schema["minimum"].as_f64(), v.as_f64())
        && n < min
    {
        err(format!("below {min}"));
    }
    if let (Some(max), Some(n)) = (schema["maximum"].as_f64(), v.as_f64())
        && n > max
    {
        err(format!("above {max}"));
    }
}

/// Assert that `data` is what the official schema of `version` says
/// `method template` returns (nothing checked without the schema files).
pub fn assert_schema_true(version: PveVersion, method: &str, template: &str, data: &Value) {
    let Some(schema) = returns(version, method, template) else {
        return;
    };
    let mut errs = Vec::new();
    check_value(&schema, data, "data", &mut errs);
    assert!(
        errs.is_empty(),
        "[{version}] {method} {template} answer is not schema-true:\n{}\n{data}",
        errs.join("\n")
    );
}
