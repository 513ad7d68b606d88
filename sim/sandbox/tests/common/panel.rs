//! The Proxmox web UI as a person uses it, for the panel's browser test
//! and benchmark: the sandbox started with `--ui` (the real pve-manager and
//! widget toolkit code from `../shared/pve-ui`, ExtJS from the npm package
//! `extjs-gpl` in `ui/test-deps`), logging in through the login window,
//! opening Datacenter entries.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use super::Running;
use super::browser::{Browser, spki_pin};

/// The Proxmox UI's sources and ExtJS: `ORBITLAB_PVE_UI` (default
/// `<repo>/../shared/pve-ui`) and `ORBITLAB_EXTJS` (default
/// `<repo>/ui/test-deps/node_modules/extjs-gpl`, which `tests/run.sh`
/// installs with `npm ci`).
pub fn ui_args() -> Vec<String> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let pve_ui = std::env::var_os("ORBITLAB_PVE_UI")
        .map_or_else(|| repo.join("../shared/pve-ui"), PathBuf::from);
    let extjs = std::env::var_os("ORBITLAB_EXTJS").map_or_else(
        || repo.join("ui/test-deps/node_modules/extjs-gpl"),
        PathBuf::from,
    );
    assert!(
        pve_ui.join("pve-manager/www/index.html.tpl").is_file(),
        "the Proxmox UI sources are not at {} (set ORBITLAB_PVE_UI)",
        pve_ui.display()
    );
    assert!(
        extjs.join("build/ext-all.js").is_file(),
        "ExtJS is not at {}: run `npm ci --prefix ui/test-deps` (tests/run.sh does) or set ORBITLAB_EXTJS",
        extjs.display()
    );
    vec![
        "--pve-version".into(),
        "9.1".into(),
        "--ui".into(),
        pve_ui.display().to_string(),
        "--extjs".into(),
        extjs.display().to_string(),
    ]
}

/// Each node's page, from the sandbox's guide
/// (`https://127.0.0.N:PORT/ (pveN)`).
pub fn pages(sb: &Running) -> Vec<String> {
    let line = sb.line("Proxmox VE web UI with the OrbitLab panel:");
    line.split("https://")
        .skip(1)
        .map(|rest| format!("https://{}", rest.split_whitespace().next().unwrap()))
        .collect()
}

/// A browser that trusts the sandbox's node certificate (the pages and
/// the agents serve it).
pub fn browser(sb: &Running) -> Browser {
    let mut b = Browser::start(&[spki_pin(&sb.dir.join("etc-pve/local/pve-ssl.pem"))]);
    b.failure_shot =
        Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("panel-screenshots/failure.png"));
    b
}

/// Opens `page` and logs in through Proxmox's login window; closes the
/// "No valid subscription" notice a community node shows.
pub fn login(b: &Browser, page: &str, user: &str, password: &str, realm: &str) {
    b.open(page);
    let field = |name: &str| {
        b.wait_element(
            &format!("the login window's {name}"),
            "let f = Ext.ComponentQuery.query('window[title=Proxmox VE Login] field[name=' + arguments[0] + ']')[0];
             return f && f.isVisible() ? f.inputEl.dom : null;",
            &[json!(name)],
        )
    };
    b.type_into(&field("username"), user);
    b.type_into(&field("password"), password);
    b.js(
        "Ext.ComponentQuery.query('window[title=Proxmox VE Login] field[name=realm]')[0].setValue(arguments[0]);",
        &[json!(realm)],
    );
    b.click_found(
        "the Login button",
        "return Ext.ComponentQuery.query('window[title=Proxmox VE Login] button[text=Login]')[0].el.dom;",
        &[],
    );
    b.click_found(
        "the subscription notice",
        "let m = Ext.ComponentQuery.query('messagebox').find((w) => w.isVisible() && /subscription/i.test(w.title));
         return m ? m.down('#ok').el.dom : null;",
        &[],
    );
    b.wait_true(
        "logged in",
        Duration::from_secs(30),
        "return Proxmox.UserName === arguments[0] && !Ext.ComponentQuery.query('window').some((w) => w.isVisible());",
        &[json!(format!("{user}@{realm}"))],
    );
}

/// Selects Datacenter in the resource tree, then the menu entry
/// `item_id` of the Datacenter view (`orbitlab`, `orbitlab-sectors`...).
pub fn open(b: &Browser, item_id: &str) {
    b.click_found(
        "Datacenter in the resource tree",
        "let tree = Ext.ComponentQuery.query('pveResourceTree')[0];
         let rec = tree && tree.getStore().getNodeById('root');
         return rec ? tree.getView().getNode(rec) : null;",
        &[],
    );
    b.click_found(
        &format!("the Datacenter menu entry {item_id}"),
        "let cfg = Ext.ComponentQuery.query('panel').find((c) => c instanceof PVE.dc.Config);
         let menu = cfg && cfg.down('#menu');
         let rec = menu && menu.getStore().getRoot().findChild('id', arguments[0], true);
         return rec ? menu.getItem(rec).rowElement.dom : null;",
        &[json!(item_id)],
    );
    b.wait_true(
        &format!("{item_id} shown"),
        Duration::from_secs(20),
        "let cfg = Ext.ComponentQuery.query('panel').find((c) => c instanceof PVE.dc.Config);
         let card = cfg && cfg.getLayout().getActiveItem();
         return !!card && card.itemId === arguments[0];",
        &[json!(item_id)],
    );
}

/// The rows of the first grid matching `query` as `[{name, phase, ...}]`
/// (the records' data).
pub fn rows(b: &Browser, query: &str) -> Vec<Value> {
    b.js(
        "let grid = Ext.ComponentQuery.query(arguments[0])[0];
         if (!grid) { return []; }
         return grid.getStore().getRange().map((r) => {
             let d = Ext.apply({}, r.getData());
             delete d.spec; delete d.status;
             return JSON.parse(JSON.stringify(d));
         });",
        &[json!(query)],
    )
    .as_array()
    .cloned()
    .unwrap_or_default()
}

/// Clicks the button `query` (an ExtJS component query).
pub fn click(b: &Browser, what: &str, query: &str) {
    b.click_found(
        what,
        "let c = Ext.ComponentQuery.query(arguments[0]).find((c) => c.isVisible() && !c.isDisabled());
         return c ? c.el.dom : null;",
        &[json!(query)],
    );
}

/// Types into the visible form field `name` of the window `window`.
pub fn fill(b: &Browser, window: &str, name: &str, text: &str) {
    let field = b.wait_element(
        &format!("field {name}"),
        "let f = Ext.ComponentQuery.query(arguments[0] + ' field[name=' + arguments[1] + ']')[0];
         return f && f.isVisible() ? f.inputEl.dom : null;",
        &[json!(window), json!(name)],
    );
    b.type_into(&field, text);
}
