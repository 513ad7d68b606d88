//! The OrbitLab panel in the REAL Proxmox web UI, in headless Chromium:
//! the sandbox with `--ui` serves pve-manager 9.2's `www/` and the widget
//! toolkit 5.2 (`../shared/pve-ui`, concatenated as their Makefiles list)
//! on ExtJS 6.2 GPL (npm `extjs-gpl`, the stand-in for Proxmox's ExtJS 7
//! build), with the panel's `<script>` line put into `index.html.tpl` by
//! `ui/orbitlab-ui-hook`, the code the package's dpkg trigger runs; its
//! `/api2/` goes to the Proxmox VE simulator and the panel talks to each
//! node's agent on port 8206, as on a node.
//!
//! One test, one sandbox and one browser (starting them costs a minute),
//! in the order a person would go: log in through the login window, open
//! Datacenter -> OrbitLab and every view (a screenshot of each, into
//! `<target>/tmp/panel-screenshots/`), find what the sandbox made, create
//! a Sector through the form and see it Ready, a bad CIDR marked on its
//! field, create an instance, use pve2's page against pve2's agent; then a
//! write without the CSRF token is refused, and a PVEAuditor user sees no
//! write button and gets 403 when writing anyway.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use common::browser::Browser;
use common::panel::{self, click, fill, open, rows};

fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("panel-screenshots")
}

/// The row of `name` in the grid `query`, once its phase is `phase`.
fn wait_phase(b: &Browser, query: &str, name: &str, phase: &str, limit: Duration) -> Value {
    b.wait_true(
        &format!("{name} {phase} in {query}"),
        limit,
        "let grid = Ext.ComponentQuery.query(arguments[0])[0];
         let rec = grid && grid.getStore().findRecord('name', arguments[1], 0, false, true, true);
         return !!rec && rec.get('phase') === arguments[2];",
        &[json!(query), json!(name), json!(phase)],
    );
    rows(b, query)
        .into_iter()
        .find(|r| r["name"] == name)
        .unwrap()
}

/// Clicks the row whose `field` is `value` in the grid `query`.
fn select_by(b: &Browser, query: &str, field: &str, value: Value) {
    b.click_found(
        &format!("the row of {value} in {query}"),
        "let g = Ext.ComponentQuery.query(arguments[0])[0];
         let r = g && g.getStore().findRecord(arguments[1], arguments[2], 0, false, true, true);
         return r ? g.getView().getNode(r) : null;",
        &[json!(query), json!(field), value],
    );
}

/// Clicks the row of `name` in the grid `query`.
fn select_row(b: &Browser, query: &str, name: &str) {
    select_by(b, query, "name", json!(name));
}

/// Waits until the plan preview lists `kind` `name` with `action`.
fn wait_preview(b: &Browser, kind: &str, name: &str, action: &str) {
    b.wait_true(
        &format!("the plan preview: {kind} {name} {action}"),
        Duration::from_secs(30),
        "let g = Ext.ComponentQuery.query('orbitlabPlanPreview #changes')[0];
         let r = g && g.getStore().findRecord('name', arguments[1], 0, false, true, true);
         return !!r && r.get('kind') === arguments[0] && r.get('action') === arguments[2];",
        &[json!(kind), json!(name), json!(action)],
    );
}

/// Waits until the grid `query` holds `count` rows.
fn wait_count(b: &Browser, query: &str, count: usize) {
    b.wait_true(
        &format!("{count} rows in {query}"),
        Duration::from_secs(30),
        "let g = Ext.ComponentQuery.query(arguments[0])[0];
         return !!g && g.getStore().getCount() === arguments[1];",
        &[json!(query), json!(count)],
    );
}

/// `fetch()` from the page to this page's agent: `[status, body]`.
fn fetch(b: &Browser, method: &str, path: &str, body: &str, csrf: bool) -> (u64, Value) {
    let answer = b.js_async(
        "let [method, path, body, csrf, done] = arguments;
         let headers = {'Content-Type': 'application/x-www-form-urlencoded'};
         if (csrf) { headers.CSRFPreventionToken = Proxmox.CSRFPreventionToken; }
         fetch(OrbitLab.Utils.agentOrigin() + path, {method: method, credentials: 'include', headers: headers, body: body || undefined})
             .then((r) => r.text().then((t) => done([r.status, t])))
             .catch((e) => done([0, String(e)]));",
        &[json!(method), json!(path), json!(body), json!(csrf)],
    );
    let status = answer[0].as_u64().unwrap();
    let text = answer[1].as_str().unwrap_or_default();
    (status, serde_json::from_str(text).unwrap_or(json!(text)))
}

#[test]
fn the_panel_works_inside_the_real_proxmox_ui() {
    let sb = common::start_with(&panel::ui_args());
    let pages = panel::pages(&sb);
    assert_eq!(pages.len(), 3, "one page per node: {pages:?}");
    let b = panel::browser(&sb);
    panel::login(&b, &pages[0], "root", orbitlab_sim_password(), "pam");

    // The overview: the Backplane and every node's agent.
    open(&b, "orbitlab");
    b.wait_true(
        "three agents alive",
        Duration::from_secs(30),
        "let g = Ext.ComponentQuery.query('orbitlabOverview #agents')[0];
         return !!g && g.getStore().getRange().filter((r) => r.get('agent') === 'alive').length === 3;",
        &[],
    );
    b.wait_true(
        "the Backplane Ready, quorate",
        Duration::from_secs(30),
        "let html = Ext.ComponentQuery.query('orbitlabOverview #backplane')[0].el.dom.innerText;
         return /Ready/.test(html) && /10\\.200\\.0\\.0\\/16/.test(html) && /Quorum\\s+Yes/.test(html);",
        &[],
    );
    b.screenshot(&shots().join("overview.png"));

    // What the sandbox made.
    open(&b, "orbitlab-sectors");
    wait_phase(
        &b,
        "orbitlabSectors #sectors",
        "web",
        "Ready",
        Duration::from_secs(30),
    );
    select_row(&b, "orbitlabSectors #sectors", "web");
    b.wait_true(
        "web's ingress rule to the selector tier=web",
        Duration::from_secs(20),
        "let g = Ext.ComponentQuery.query('orbitlabSectors #ingress')[0];
         let r = g && g.getStore().findRecord('name', 'web');
         return !!r && /tier=web/.test(r.get('target')) && r.get('port') === 8080 && r.get('to_port') === 80;",
        &[],
    );
    b.screenshot(&shots().join("sectors.png"));
    open(&b, "orbitlab-instances");
    let app = wait_phase(
        &b,
        "orbitlabInstances",
        "app",
        "Ready",
        Duration::from_secs(30),
    );
    assert_eq!(app["outputs"]["fqdn"], "app.web.orbitlab.internal", "{app}");
    assert_eq!(app["outputs"]["power"], "running", "{app}");
    b.screenshot(&shots().join("instances.png"));
    open(&b, "orbitlab-appliances");
    b.wait_true(
        "the gateway and DNS containers of web",
        Duration::from_secs(30),
        "let g = Ext.ComponentQuery.query('orbitlabAppliances #containers')[0];
         return !!g && g.getStore().getCount() === 2 && g.getStore().getRange().every((r) => r.get('health') === 'healthy');",
        &[],
    );
    b.screenshot(&shots().join("appliances.png"));
    open(&b, "orbitlab-secrets");
    b.wait_true(
        "the secret app/db-password, its version",
        Duration::from_secs(30),
        "let g = Ext.ComponentQuery.query('orbitlabSecrets #secrets')[0];
         let r = g && g.getStore().findRecord('path', 'app/db-password', 0, false, true, true);
         return !!r && r.get('latest') === 1;",
        &[],
    );
    let text = b.js("return document.body.innerText;", &[]);
    assert!(
        !text.as_str().unwrap().contains("db-s3cret"),
        "a secret value is on the page"
    );
    select_by(
        &b,
        "orbitlabSecrets #secrets",
        "path",
        json!("app/db-password"),
    );
    wait_count(&b, "orbitlabSecrets #versions", 1);
    b.screenshot(&shots().join("secrets.png"));
    // A new value through the form: version 2.
    click(&b, "Set new value", "orbitlabSecrets #set");
    fill(&b, "orbitlabSecretEdit", "value", "db-s3cret-2");
    click(&b, "Set", "orbitlabSecretEdit button[text=Set]");
    wait_count(&b, "orbitlabSecrets #versions", 2);
    // Shown only when asked for, confirmed, and gone with its window.
    click(&b, "Reveal value", "orbitlabSecrets #reveal");
    click(&b, "Yes", "messagebox #yes");
    b.wait_true(
        "the newest value shown",
        Duration::from_secs(20),
        "return Ext.ComponentQuery.query('window textarea').some((t) => t.isVisible() && t.getValue() === 'db-s3cret-2');",
        &[],
    );
    click(&b, "Close", "window button[text=Close]");
    let text = b.js("return document.body.innerHTML;", &[]);
    assert!(
        !text.as_str().unwrap().contains("db-s3cret"),
        "a secret value stays in the page after its window closed"
    );
    // Roll back to version 1: written again as version 3.
    select_by(&b, "orbitlabSecrets #versions", "version", json!(1));
    click(&b, "Roll back", "orbitlabSecrets #rollback");
    click(&b, "Yes", "messagebox #yes");
    wait_count(&b, "orbitlabSecrets #versions", 3);
    open(&b, "orbitlab-certificates");
    wait_phase(
        &b,
        "orbitlabCertificates",
        "app-tls",
        "Ready",
        Duration::from_secs(30),
    );
    b.screenshot(&shots().join("certificates.png"));
    open(&b, "orbitlab-sshkeys");
    let key = wait_phase(
        &b,
        "orbitlabSshKeys",
        "deploy",
        "Ready",
        Duration::from_secs(30),
    );
    assert!(
        key["outputs"]["fingerprint"]
            .as_str()
            .is_some_and(|f| f.starts_with("SHA256:")),
        "{key}"
    );
    b.screenshot(&shots().join("ssh-keys.png"));

    // A Sector through the form: preview first, then apply; Ready.
    open(&b, "orbitlab-sectors");
    click(&b, "Create", "orbitlabSectors #create");
    fill(&b, "orbitlabSectorEdit", "metadata.name", "shop");
    fill(&b, "orbitlabSectorEdit", "spec.cidr", "172.20.0.0/24");
    click(&b, "Preview", "orbitlabSectorEdit button[text=Preview]");
    wait_preview(&b, "Sector", "shop", "created");
    b.screenshot(&shots().join("plan-preview.png"));
    // Nothing is written by the preview.
    let before = rows(&b, "orbitlabSectors #sectors");
    assert!(!before.iter().any(|r| r["name"] == "shop"), "{before:?}");
    click(&b, "Apply", "orbitlabPlanPreview #apply");
    wait_phase(
        &b,
        "orbitlabSectors #sectors",
        "shop",
        "Ready",
        Duration::from_secs(90),
    );

    // A bad CIDR: the error is on that field, nothing is written.
    click(&b, "Create", "orbitlabSectors #create");
    fill(&b, "orbitlabSectorEdit", "metadata.name", "bad");
    fill(&b, "orbitlabSectorEdit", "spec.cidr", "172.20.0.0/33");
    click(&b, "Preview", "orbitlabSectorEdit button[text=Preview]");
    b.wait_true(
        "the CIDR field marked invalid",
        Duration::from_secs(30),
        "let f = Ext.ComponentQuery.query('orbitlabSectorEdit field[name=spec.cidr]')[0];
         return !!f && /not an IPv4 network in CIDR form/.test(f.getActiveError());",
        &[],
    );
    let error = b.js(
        "let m = Ext.ComponentQuery.query('messagebox').find((w) => w.isVisible());
         return m ? m.el.dom.innerText : '';",
        &[],
    );
    assert!(
        error.as_str().unwrap().contains("spec.cidr"),
        "the error names the field: {error}"
    );
    b.screenshot(&shots().join("bad-cidr.png"));
    click(&b, "OK", "messagebox #ok");
    b.js(
        "Ext.ComponentQuery.query('orbitlabSectorEdit')[0].close();",
        &[],
    );
    assert!(
        !rows(&b, "orbitlabSectors #sectors")
            .iter()
            .any(|r| r["name"] == "bad")
    );

    // An instance in the new Sector.
    open(&b, "orbitlab-instances");
    click(&b, "Create", "orbitlabInstances #create");
    fill(&b, "orbitlabInstanceEdit", "metadata.name", "shop-1");
    b.click_found(
        "the Sector list",
        "let c = Ext.ComponentQuery.query('orbitlabInstanceEdit field[name=spec.sector]')[0];
         return c && c.getStore().findRecord('name', 'shop') ? c.getTrigger('picker').el.dom : null;",
        &[],
    );
    b.click_found(
        "Sector shop in the list",
        "let c = Ext.ComponentQuery.query('orbitlabInstanceEdit field[name=spec.sector]')[0];
         let picker = c.getPicker();
         return picker.isVisible() ? picker.getNode(c.getStore().findRecord('name', 'shop')) : null;",
        &[],
    );
    fill(
        &b,
        "orbitlabInstanceEdit",
        "spec.template",
        "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
    );
    click(&b, "Preview", "orbitlabInstanceEdit button[text=Preview]");
    wait_preview(&b, "Lxc", "shop-1", "created");
    click(&b, "Apply", "orbitlabPlanPreview #apply");
    let shop1 = wait_phase(
        &b,
        "orbitlabInstances",
        "shop-1",
        "Ready",
        Duration::from_secs(90),
    );
    assert!(
        shop1["outputs"]["address"]
            .as_str()
            .is_some_and(|a| a.starts_with("172.20.0.")),
        "{shop1}"
    );
    b.screenshot(&shots().join("instances-created.png"));

    // An ingress rule on shop to shop-1, through the form.
    open(&b, "orbitlab-sectors");
    select_row(&b, "orbitlabSectors #sectors", "shop");
    click(&b, "Add", "orbitlabSectors #addIngress");
    fill(&b, "orbitlabIngressEdit", "name", "https");
    fill(&b, "orbitlabIngressEdit", "port", "8443");
    fill(&b, "orbitlabIngressEdit", "to", "shop-1");
    fill(&b, "orbitlabIngressEdit", "to_port", "443");
    click(&b, "Preview", "orbitlabIngressEdit button[text=Preview]");
    wait_preview(&b, "Sector", "shop", "configured");
    click(&b, "Apply", "orbitlabPlanPreview #apply");
    b.wait_true(
        "shop's ingress rule https",
        Duration::from_secs(30),
        "let g = Ext.ComponentQuery.query('orbitlabSectors #ingress')[0];
         let r = g && g.getStore().findRecord('name', 'https');
         return !!r && /shop-1/.test(r.get('target')) && r.get('port') === 8443 && r.get('to_port') === 443;",
        &[],
    );
    wait_phase(
        &b,
        "orbitlabSectors #sectors",
        "shop",
        "Ready",
        Duration::from_secs(90),
    );

    // The rule removed again (previewed), then removals: a Sector an
    // instance still uses is refused, naming it; the instance goes.
    select_by(&b, "orbitlabSectors #ingress", "name", json!("https"));
    click(&b, "Remove", "orbitlabSectors #removeIngress");
    wait_preview(&b, "Sector", "shop", "configured");
    click(&b, "Apply", "orbitlabPlanPreview #apply");
    wait_count(&b, "orbitlabSectors #ingress", 0);
    select_row(&b, "orbitlabSectors #sectors", "shop");
    click(&b, "Remove", "orbitlabSectors #remove");
    click(&b, "Yes", "messagebox #yes");
    b.wait_true(
        "the refusal, naming shop-1",
        Duration::from_secs(20),
        "let m = Ext.ComponentQuery.query('messagebox').find((w) => w.isVisible() && w.title === 'Error');
         return !!m && /shop-1/.test(m.el.dom.innerText);",
        &[],
    );
    click(&b, "OK", "messagebox #ok");
    open(&b, "orbitlab-instances");
    select_row(&b, "orbitlabInstances", "shop-1");
    click(&b, "Remove", "orbitlabInstances #remove");
    click(&b, "Yes", "messagebox #yes");
    b.wait_true(
        "shop-1 gone",
        Duration::from_secs(60),
        "let g = Ext.ComponentQuery.query('orbitlabInstances')[0];
         return !!g && !g.getStore().findRecord('name', 'shop-1', 0, false, true, true);",
        &[],
    );
    assert_clean_console(&b);

    // A write without the CSRF prevention token is refused (the ticket
    // alone is not enough).
    let (status, body) = fetch(
        &b,
        "POST",
        "/api2/json/orbitlab/sectors",
        "name=nocsrf&cidr=172.21.0.0/24",
        false,
    );
    assert_eq!(status, 401, "{body}");
    assert!(body.to_string().contains("CSRF"), "{body}");
    let (status, body) = fetch(&b, "GET", "/api2/json/orbitlab/sectors/nocsrf", "", false);
    assert_eq!(status, 404, "nothing was made: {body}");
    drop(b);

    // pve2's page uses pve2's agent (127.0.0.2:8206) and sees the same.
    let b = panel::browser(&sb);
    panel::login(&b, &pages[1], "root", orbitlab_sim_password(), "pam");
    open(&b, "orbitlab-sectors");
    wait_phase(
        &b,
        "orbitlabSectors #sectors",
        "shop",
        "Ready",
        Duration::from_secs(30),
    );
    let agent = b.js("return OrbitLab.Utils.agentOrigin();", &[]);
    assert_eq!(agent, "https://127.0.0.2:8206");
    let used = b.js(
        "return performance.getEntriesByType('resource').map((e) => e.name).filter((n) => n.indexOf('/orbitlab/sectors') !== -1);",
        &[],
    );
    assert!(
        used.as_array()
            .unwrap()
            .iter()
            .all(|u| u.as_str().unwrap().starts_with("https://127.0.0.2:8206/")),
        "{used}"
    );
    assert_clean_console(&b);
    drop(b);

    // A PVEAuditor: no write button, and a write anyway is refused (403).
    let api = sim_api(&sb);
    api.post(
        "/access/users",
        &[("userid", "auditor@pve"), ("password", "auditor-pass-1")],
    );
    api.put(
        "/access/acl",
        &[
            ("path", "/"),
            ("roles", "PVEAuditor"),
            ("users", "auditor@pve"),
        ],
    );
    let b = panel::browser(&sb);
    panel::login(&b, &pages[0], "auditor", "auditor-pass-1", "pve");
    open(&b, "orbitlab-sectors");
    wait_phase(
        &b,
        "orbitlabSectors #sectors",
        "shop",
        "Ready",
        Duration::from_secs(30),
    );
    // Privileges are known once Proxmox answered; then no write button.
    b.wait_true(
        "the auditor's privileges known",
        Duration::from_secs(20),
        "return !!OrbitLab.Utils.privileges && OrbitLab.Utils.privileges.user === 'auditor@pve';",
        &[],
    );
    for view in ["orbitlab-sectors", "orbitlab-instances", "orbitlab-secrets"] {
        open(&b, view);
        let visible = b.js(
            "let cfg = Ext.ComponentQuery.query('panel').find((c) => c instanceof PVE.dc.Config);
             return cfg.getLayout().getActiveItem().query('button').filter((b) => b.isVisible(true)).map((b) => b.text);",
            &[],
        );
        let visible: Vec<&str> = visible
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for write in [
            "Create",
            "Edit",
            "Remove",
            "Add",
            "Start",
            "Stop",
            "Set new value",
            "Reveal value",
            "Roll back to this version",
        ] {
            assert!(
                !visible.contains(&write),
                "{view} shows {write} to an auditor: {visible:?}"
            );
        }
    }
    open(&b, "orbitlab-sectors");
    b.screenshot(&shots().join("auditor-sectors.png"));
    assert_clean_console(&b);
    let (status, body) = fetch(
        &b,
        "POST",
        "/api2/json/orbitlab/sectors",
        "name=audited&cidr=172.22.0.0/24",
        true,
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.to_string().contains("Sys.Modify"), "{body}");
}

/// No error in the browser's console (but the 404 of `font-logos.css`,
/// which Debian 12 does not package).
fn assert_clean_console(b: &Browser) {
    let errors: Vec<String> = b
        .console()
        .into_iter()
        .filter(|l| l.contains("SEVERE") && !l.contains("font-logos"))
        .collect();
    assert!(
        errors.is_empty(),
        "errors in the browser console: {errors:#?}"
    );
}

fn orbitlab_sim_password() -> &'static str {
    orbitlab_sim::pve::DEFAULT_PASSWORD
}

/// The Proxmox VE simulator's API as root (the sandbox's token).
struct SimApi {
    url: String,
    header: String,
    http: reqwest::blocking::Client,
}

fn sim_api(sb: &common::Running) -> SimApi {
    // `[3/7] Proxmox VE 9.1 simulator, nodes ...: https://127.0.0.1:PORT (CA FILE)`
    let line = sb.line("simulator, nodes");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("https://"))
        .unwrap()
        .to_owned();
    let ca = std::fs::read(sb.dir.join("pve/pve-root-ca.pem")).unwrap();
    let header = std::fs::read_to_string(sb.dir.join("api-token.header")).unwrap();
    SimApi {
        url,
        header: header
            .trim()
            .strip_prefix("Authorization: ")
            .unwrap()
            .to_owned(),
        http: reqwest::blocking::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap(),
    }
}

impl SimApi {
    fn send(&self, method: reqwest::Method, path: &str, form: &[(&str, &str)]) {
        let answer = self
            .http
            .request(method, format!("{}/api2/json{path}", self.url))
            .header("Authorization", &self.header)
            .form(form)
            .send()
            .unwrap();
        assert!(answer.status().is_success(), "{path}: {:?}", answer.text());
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) {
        self.send(reqwest::Method::POST, path, form);
    }

    fn put(&self, path: &str, form: &[(&str, &str)]) {
        self.send(reqwest::Method::PUT, path, form);
    }
}
