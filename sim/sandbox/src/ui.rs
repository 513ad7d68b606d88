//! The Proxmox VE web UI with the OrbitLab panel, served the way pveproxy
//! serves it on a node (`orbitlab-sandbox --ui DIR`), so that people and
//! the browser test use the real UI code on simulators.
//!
//! What a node has and this stands in for (see `../shared/pve-ui/README.md`
//! and `DESIGN.md`, "The web UI panel"):
//! - `/` renders pve-manager's `index.html.tpl` (Template Toolkit; the
//!   handful of constructs that template uses, [`render`]) after the
//!   package's own `ui/orbitlab-ui-hook add` put the panel's `<script>`
//!   line in, exactly as the dpkg trigger does on a node;
//! - `/pve2/js/pvemanagerlib.js` and `/proxmoxlib.js` are concatenations of
//!   the sources in the order their Makefiles list (`JSSRC`), as their
//!   packages build them ([`jssrc`]); `/pve2/js/orbitlab.js` the
//!   same from `ui/Makefile` (built again for every request, so that an
//!   edit shows on the next reload); the package's files are static code, served
//!   without authentication like every `/pve2/` file;
//! - `/pve2/ext6/` is ExtJS: the npm package `extjs-gpl` (6.2 GPL) stands
//!   in for Proxmox's ExtJS 7 build (`libjs-extjs`); `/pve2/fa/` Debian's
//!   `fonts-font-awesome`; `proxmoxlib.js` ends with Debian's `marked.js`
//!   (`libjs-marked`) as the widget toolkit's Makefile appends it;
//! - `/api2/...` is passed to the Proxmox VE simulator (its CA verified);
//!   the panel itself talks to each node's agent on its own port.
//!
//! Every node gets its own address (`127.0.0.N`, N from 1), all on one
//! port: the page for node N says `NodeName: pveN`, and its panel calls
//! the agent at `https://127.0.0.N:8206`, as a node's panel calls its own
//! agent. Listens on loopback only; reads the sources once at start, but
//! the panel's, which it concatenates again for every request.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;

/// pve-manager's version the page claims (`../shared/pve-ui/README.md`).
const PVE_VERSION: &str = "9.2.11";
/// The widget toolkit's version.
const WT_VERSION: &str = "5.2.7";
/// The agent's API port the panel calls by default.
pub const AGENT_PORT: u16 = 8206;
/// Biggest request body passed on to the simulator.
const MAX_BODY: usize = 1 << 20;

/// Where the pieces of the page come from.
#[derive(Debug, Clone)]
pub struct UiSources {
    /// pve-manager's `www/` (with `manager6/Makefile`, `index.html.tpl`).
    pub pve_www: PathBuf,
    /// The widget toolkit's `src/` (with its `Makefile`).
    pub toolkit: PathBuf,
    /// ExtJS's `build/` folder (`ext-all.js`, `classic/`, `packages/`).
    pub extjs: PathBuf,
    /// This repository's `ui/` (its `Makefile` and `orbitlab-ui-hook`).
    pub panel: PathBuf,
    /// Debian's `marked.js`.
    pub marked: PathBuf,
    /// Debian's Font Awesome (`/usr/share/fonts-font-awesome`).
    pub font_awesome: PathBuf,
}

impl UiSources {
    /// The usual layout: `pve_ui` holds `pve-manager/www` and
    /// `proxmox-widget-toolkit/src` (as `../shared/pve-ui/`), `extjs` is
    /// the `extjs-gpl` package's folder (`node_modules/extjs-gpl`), `panel`
    /// this repository's `ui/`; Debian's files at their usual places.
    pub fn new(pve_ui: &Path, extjs: &Path, panel: &Path) -> Result<Self> {
        let sources = UiSources {
            pve_www: pve_ui.join("pve-manager/www"),
            toolkit: pve_ui.join("proxmox-widget-toolkit/src"),
            extjs: extjs.join("build"),
            panel: panel.to_owned(),
            marked: PathBuf::from("/usr/share/javascript/marked/marked.js"),
            font_awesome: PathBuf::from("/usr/share/fonts-font-awesome"),
        };
        for (what, path, hint) in [
            (
                "pve-manager's www/",
                sources.pve_www.join("index.html.tpl"),
                "--ui DIR: the folder with pve-manager/www and proxmox-widget-toolkit/src",
            ),
            (
                "the widget toolkit",
                sources.toolkit.join("Makefile"),
                "--ui DIR: the folder with pve-manager/www and proxmox-widget-toolkit/src",
            ),
            (
                "ExtJS",
                sources.extjs.join("ext-all.js"),
                "npm install extjs-gpl@6.2.0, then --extjs DIR/node_modules/extjs-gpl",
            ),
            (
                "the panel",
                sources.panel.join("Makefile"),
                "the repository's ui/ folder",
            ),
            (
                "marked.js",
                sources.marked.clone(),
                "apt-get install libjs-marked",
            ),
            (
                "Font Awesome",
                sources.font_awesome.join("css/font-awesome.css"),
                "apt-get install fonts-font-awesome",
            ),
        ] {
            if !path.is_file() {
                bail!("{what} is missing ({} not found): {hint}", path.display());
            }
        }
        Ok(sources)
    }
}

/// The files listed in a Makefile's `JSSRC=` variable, in order.
pub fn jssrc(makefile: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(makefile)
        .with_context(|| format!("cannot read {}", makefile.display()))?;
    let mut files = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let line = if inside {
            line
        } else if let Some(rest) = line.strip_prefix("JSSRC=") {
            inside = true;
            rest
        } else {
            continue;
        };
        // A comment ends the logical line, as in make.
        let (line, comment) = match line.split_once('#') {
            Some((before, _)) => (before, true),
            None => (line, false),
        };
        let continued = !comment && line.trim_end().ends_with('\\');
        files.extend(
            line.trim_end()
                .trim_end_matches('\\')
                .split_whitespace()
                .map(str::to_owned),
        );
        if !continued {
            break;
        }
    }
    if files.is_empty() {
        bail!("{} has no JSSRC list", makefile.display());
    }
    Ok(files)
}

/// `prefix`, then every file of `dir/Makefile`'s JSSRC, then `suffix`
/// files: how the Makefiles build their `.js` bundles.
pub fn concatenate(dir: &Path, prefix: &str, suffix: &[&Path]) -> Result<Vec<u8>> {
    let mut out = prefix.as_bytes().to_vec();
    let files = jssrc(&dir.join("Makefile"))?;
    for file in files
        .iter()
        .map(|f| dir.join(f))
        .chain(suffix.iter().map(|p| p.to_path_buf()))
    {
        let text =
            std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        out.extend_from_slice(&text);
    }
    Ok(out)
}

/// The variables of `index.html.tpl` pveproxy fills for a page without a
/// session (the login window opens; the UI reads the rest from the API).
fn page_vars(node: &str) -> HashMap<&'static str, String> {
    HashMap::from([
        ("nodename", node.to_owned()),
        ("version", PVE_VERSION.to_owned()),
        ("wtversion", WT_VERSION.to_owned()),
        ("lang", "en".to_owned()),
        ("theme", "crisp".to_owned()),
        ("langfile", String::new()),
        ("debug", String::new()),
        ("arch", "x86_64".to_owned()),
        ("username", String::new()),
        ("token", String::new()),
        ("consenttext", String::new()),
        ("i18n_js_mtime", "0".to_owned()),
    ])
}

/// Renders the Template Toolkit constructs `index.html.tpl` uses:
/// `[% var %]`, `[% IF var %]`, `[% IF var != 'text' %]`, `[% ELSE %]`,
/// `[% END %]`, with `-` chomping one newline and the blanks before
/// (`[%-`) or after (`-%]`). Unknown variables are empty; anything else is
/// an error.
pub fn render(template: &str, vars: &HashMap<&str, String>) -> Result<String> {
    let mut out = String::with_capacity(template.len());
    // One entry per open IF: (this branch shown, the IF's parent shown).
    let mut stack: Vec<(bool, bool)> = Vec::new();
    let shown = |stack: &[(bool, bool)]| stack.last().is_none_or(|&(on, parent)| on && parent);
    let mut rest = template;
    let mut chomp_next = false;
    while !rest.is_empty() {
        let (mut text, tail) = match rest.find("[%") {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if chomp_next {
            text = text.trim_start_matches([' ', '\t']);
            text = text.strip_prefix('\n').unwrap_or(text);
        }
        let Some(tag) = tail.strip_prefix("[%") else {
            if shown(&stack) {
                out.push_str(text);
            }
            break;
        };
        let end = tag.find("%]").context("index.html.tpl: a [% without %]")?;
        let (mut inner, after) = (&tag[..end], &tag[end + 2..]);
        if let Some(i) = inner.strip_prefix('-') {
            inner = i;
            text = text.trim_end_matches([' ', '\t']);
            text = text.strip_suffix('\n').unwrap_or(text);
        }
        chomp_next = inner.ends_with('-');
        let inner = inner.trim_end_matches('-').trim();
        if shown(&stack) {
            out.push_str(text);
        }
        let value = |name: &str| vars.get(name).cloned().unwrap_or_default();
        if let Some(cond) = inner.strip_prefix("IF ") {
            let on = match cond.split_once("!=") {
                Some((name, text)) => value(name.trim()) != text.trim().trim_matches('\''),
                None => !value(cond.trim()).is_empty(),
            };
            stack.push((on, shown(&stack)));
        } else if inner == "ELSE" {
            let top = stack
                .last_mut()
                .context("index.html.tpl: ELSE without IF")?;
            top.0 = !top.0;
        } else if inner == "END" {
            stack.pop().context("index.html.tpl: END without IF")?;
        } else if inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            if shown(&stack) {
                out.push_str(&value(inner));
            }
        } else {
            bail!("index.html.tpl: unsupported directive [% {inner} %]");
        }
        rest = after;
    }
    if !stack.is_empty() {
        bail!("index.html.tpl: IF without END");
    }
    Ok(out)
}

/// Built once at start.
#[derive(Debug)]
struct Site {
    sources: UiSources,
    /// The template with the panel's line.
    template: String,
    proxmoxlib: Bytes,
    pvemanagerlib: Bytes,
    /// The simulator's origin (`https://127.0.0.1:PORT`).
    api: String,
    client: reqwest::Client,
    /// Node name by the address a page was asked on.
    nodes: HashMap<IpAddr, String>,
}

/// The address of node `index` (0-based) for the UI and its agent.
pub fn node_address(index: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, (index + 1) as u8))
}

/// A running UI server.
#[derive(Debug)]
pub struct UiServer {
    /// The port every node's address serves on.
    pub port: u16,
    _runtime: tokio::runtime::Runtime,
}

impl UiServer {
    /// Builds the page's files from `sources` (the panel into `work`, its
    /// line into a copy of the template there) and serves node `nodes[i]`
    /// on [`node_address`]`(i)`, one free port for all, with `cert`/`key`
    /// (PEM), passing `/api2/` to `api` (its CA `api_ca`, PEM).
    pub fn start(
        sources: UiSources,
        work: &Path,
        nodes: &[&str],
        (cert, key): (&Path, &Path),
        api: &str,
        api_ca: &Path,
    ) -> Result<Self> {
        std::fs::create_dir_all(work)?;
        let panel = concatenate(&sources.panel, "", &[])?;
        let panel_file = work.join("orbitlab.js");
        std::fs::write(&panel_file, &panel)?;
        let template_file = work.join("index.html.tpl");
        std::fs::copy(sources.pve_www.join("index.html.tpl"), &template_file)?;
        let hook = sources.panel.join("orbitlab-ui-hook");
        let status = std::process::Command::new("sh")
            .arg(&hook)
            .arg("add")
            .arg(&template_file)
            .arg(&panel_file)
            .status()
            .with_context(|| format!("cannot run {}", hook.display()))?;
        let template = std::fs::read_to_string(&template_file)?;
        if !status.success() || !template.contains("<!-- orbitlab-panel -->") {
            bail!(
                "{} did not add the panel's line to index.html.tpl",
                hook.display()
            );
        }
        let proxmoxlib = concatenate(
            &sources.toolkit,
            &format!("// v{WT_VERSION}-sandbox\n"),
            &[&sources.marked],
        )?;
        // OnlineHelpInfo.js comes from pve-docs tooling; an empty map serves.
        let pvemanagerlib = concatenate(
            &sources.pve_www.join("manager6"),
            "const proxmoxOnlineHelpInfo = {};\n",
            &[],
        )?;
        let ca = reqwest::Certificate::from_pem(&std::fs::read(api_ca)?)
            .context("the simulator's CA")?;
        let client = reqwest::Client::builder()
            .add_root_certificate(ca)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let site = Arc::new(Site {
            sources,
            template,
            proxmoxlib: proxmoxlib.into(),
            pvemanagerlib: pvemanagerlib.into(),
            api: api.trim_end_matches('/').to_owned(),
            client,
            nodes: nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (node_address(i), (*n).to_owned()))
                .collect(),
        });
        let tls = tls_acceptor(cert, key)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let port = runtime.block_on(async {
            let mut port = 0;
            let mut listeners = Vec::new();
            for i in 0..nodes.len() {
                let listener =
                    tokio::net::TcpListener::bind(SocketAddr::new(node_address(i), port))
                        .await
                        .with_context(|| format!("cannot listen on {}", node_address(i)))?;
                port = listener.local_addr()?.port();
                listeners.push(listener);
            }
            for listener in listeners {
                tokio::spawn(serve(listener, router(Arc::clone(&site)), tls.clone()));
            }
            anyhow::Ok(port)
        })?;
        Ok(UiServer {
            port,
            _runtime: runtime,
        })
    }
}

fn tls_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read {}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn serve(listener: tokio::net::TcpListener, app: Router, tls: tokio_rustls::TlsAcceptor) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            // Out of file descriptors, say: wait rather than spin.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let local = tcp.local_addr().ok();
        let svc = TowerToHyperService::new(app.clone().layer(axum::Extension(Local(local))));
        let tls = tls.clone();
        tokio::spawn(async move {
            if let Ok(stream) = tls.accept(tcp).await {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            }
        });
    }
}

/// The address a request came in on (which node's page it is).
#[derive(Debug, Clone, Copy)]
struct Local(Option<SocketAddr>);

fn router(site: Arc<Site>) -> Router {
    Router::new().fallback(handle).with_state(site)
}

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Body>) -> Response {
    let mut response = (status, body.into()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "js" => "application/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "png" => "image/png",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "eot" => "application/vnd.ms-fontobject",
        "html" => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `rest` below `base`, refusing anything but plain names.
fn below(base: &Path, rest: &str) -> Option<PathBuf> {
    let rel = Path::new(rest);
    rel.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| base.join(rel))
}

/// The file a static URL maps to, as pveproxy's directory aliases map it.
fn static_file(s: &UiSources, path: &str) -> Option<PathBuf> {
    let ext = &s.extjs;
    if let Some(rest) = path.strip_prefix("/pve2/ext6/") {
        return match rest {
            "ext-all.js" | "ext-all-debug.js" => Some(ext.join(rest)),
            "charts.js" | "charts-debug.js" => Some(ext.join("packages/charts/classic").join(rest)),
            // Proxmox's build names it charts-all.css; this one has the
            // debug build only.
            "crisp/resources/charts-all.css" => {
                Some(ext.join("packages/charts/classic/crisp/resources/charts-all-debug.css"))
            }
            _ => rest
                .strip_prefix("theme-crisp/")
                .and_then(|r| below(&ext.join("classic/theme-crisp"), r))
                .or_else(|| {
                    rest.strip_prefix("locale/")
                        .and_then(|r| below(&ext.join("classic/locale"), r))
                }),
        };
    }
    for (prefix, base) in [
        ("/pve2/fa/", s.font_awesome.clone()),
        ("/pve2/css/", s.pve_www.join("css")),
        ("/pve2/images/", s.pve_www.join("images")),
        ("/pwt/css/", s.toolkit.join("css")),
        ("/pwt/images/", s.toolkit.join("images")),
    ] {
        if let Some(rest) = path.strip_prefix(prefix) {
            return below(&base, rest);
        }
    }
    (path == "/pve2/js/u2f-api.js").then(|| s.pve_www.join("u2f-api.js"))
}

async fn handle(
    State(site): State<Arc<Site>>,
    axum::Extension(Local(local)): axum::Extension<Local>,
    request: Request,
) -> Response {
    let path = request.uri().path().to_owned();
    let js = "application/javascript; charset=utf-8";
    match path.as_str() {
        "/" => {
            let node = local
                .and_then(|a| site.nodes.get(&a.ip()))
                .cloned()
                .unwrap_or_default();
            match render(&site.template, &page_vars(&node)) {
                Ok(page) => reply(StatusCode::OK, "text/html; charset=utf-8", page),
                Err(e) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    e.to_string(),
                ),
            }
        }
        "/proxmoxlib.js" => reply(StatusCode::OK, js, site.proxmoxlib.clone()),
        "/pve2/js/pvemanagerlib.js" => reply(StatusCode::OK, js, site.pvemanagerlib.clone()),
        // Built again on every request: edit ui/src, reload the page.
        "/pve2/js/orbitlab.js" => match concatenate(&site.sources.panel, "", &[]) {
            Ok(panel) => reply(StatusCode::OK, js, panel),
            Err(e) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                format!("{e:#}"),
            ),
        },
        // Not packaged in Debian 12; the UI works without it.
        "/qrcode.min.js" => reply(StatusCode::OK, js, ""),
        p if p.starts_with("/api2/") => proxy(&site, request).await,
        p => match static_file(&site.sources, p) {
            Some(file) => match std::fs::read(&file) {
                Ok(bytes) => reply(StatusCode::OK, content_type(&file), bytes),
                Err(_) => reply(StatusCode::NOT_FOUND, "text/plain", "not found"),
            },
            None => reply(StatusCode::NOT_FOUND, "text/plain", "not found"),
        },
    }
}

/// Passes an API request to the simulator with the headers pveproxy
/// passes on, and its answer back.
async fn proxy(site: &Site, request: Request) -> Response {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let headers = request.headers().clone();
    let Ok(body) = axum::body::to_bytes(request.into_body(), MAX_BODY).await else {
        return reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            "text/plain",
            "body too large",
        );
    };
    let url = format!(
        "{}{}",
        site.api,
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut out = HeaderMap::new();
    for name in [
        header::COOKIE,
        header::CONTENT_TYPE,
        header::AUTHORIZATION,
        header::ACCEPT,
    ]
    .into_iter()
    .chain([header::HeaderName::from_static("csrfpreventiontoken")])
    {
        if let Some(v) = headers.get(&name) {
            out.insert(name, v.clone());
        }
    }
    let answer = site
        .client
        .request(method, url)
        .headers(out)
        .body(body)
        .send()
        .await;
    match answer {
        Ok(answer) => {
            let status = answer.status();
            let kind = answer.headers().get(header::CONTENT_TYPE).cloned();
            let bytes = answer.bytes().await.unwrap_or_default();
            let mut response = (status, bytes).into_response();
            if let Some(kind) = kind {
                response.headers_mut().insert(header::CONTENT_TYPE, kind);
            }
            response
        }
        Err(e) => reply(
            StatusCode::BAD_GATEWAY,
            "text/plain",
            format!("the Proxmox VE simulator did not answer: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_constructs_of_index_html_tpl() {
        let vars = HashMap::from([
            ("theme", "crisp".to_owned()),
            ("nodename", "pve1".to_owned()),
        ]);
        let tpl = "a [% nodename %]\n    [%- IF theme != 'crisp' %]\nX\n    [%- END %]\n[% IF debug %]D[% ELSE %]N[% END %]\n";
        assert_eq!(render(tpl, &vars).unwrap(), "a pve1\nN\n");
        assert!(render("[% IF x %]", &vars).is_err());
        assert!(render("[% FOREACH x %]", &vars).is_err());
    }

    #[test]
    fn reads_a_makefile_jssrc_list() {
        let dir = tempfile::tempdir().unwrap();
        let mk = dir.path().join("Makefile");
        std::fs::write(
            &mk,
            "X=1\nJSSRC=\t\\\n\ta.js\t\\\n\tb/c.js\t\\\n# end\n\nall:\n",
        )
        .unwrap();
        assert_eq!(jssrc(&mk).unwrap(), ["a.js", "b/c.js"]);
    }

    #[test]
    fn static_paths_never_leave_their_folder() {
        let s = UiSources {
            pve_www: "/w".into(),
            toolkit: "/t".into(),
            extjs: "/e".into(),
            panel: "/p".into(),
            marked: "/m".into(),
            font_awesome: "/fa".into(),
        };
        assert_eq!(
            static_file(&s, "/pve2/css/ext6-pve.css"),
            Some("/w/css/ext6-pve.css".into())
        );
        assert_eq!(
            static_file(&s, "/pve2/ext6/theme-crisp/resources/theme-crisp-all.css"),
            Some("/e/classic/theme-crisp/resources/theme-crisp-all.css".into())
        );
        assert_eq!(static_file(&s, "/pve2/css/../../etc/passwd"), None);
        assert_eq!(static_file(&s, "/pve2/js/secret"), None);
    }
}
