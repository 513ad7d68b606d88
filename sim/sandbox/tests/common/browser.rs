//! Headless Chromium driven through ChromeDriver (W3C WebDriver over
//! HTTP on loopback), for the panel's browser test and benchmark.
//!
//! Debian's `chromium` and `chromium-driver` (`/usr/bin/chromium`,
//! `/usr/bin/chromedriver`). The browser trusts exactly the certificates
//! given ([`Browser::start`]: their public keys are pinned with
//! `--ignore-certificate-errors-spki-list`), a profile of its own in a
//! temporary directory, a 1440x1400 window so that the whole Datacenter
//! menu fits. Elements are found through ExtJS (`Ext.ComponentQuery` in
//! a script that returns the DOM node) and then clicked and typed into
//! as a user would, through WebDriver.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser session.
pub struct Browser {
    driver: Child,
    base: String,
    http: reqwest::blocking::Client,
    _profile: tempfile::TempDir,
    /// Where a failed wait saves a screenshot, if set.
    pub failure_shot: Option<std::path::PathBuf>,
}

/// A DOM element of the page.
#[derive(Debug, Clone)]
pub struct Element(String);

/// The SHA-256 of a PEM certificate's public key (SubjectPublicKeyInfo),
/// base64, as Chromium's `--ignore-certificate-errors-spki-list` takes it.
pub fn spki_pin(cert_pem: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg("openssl x509 -in \"$1\" -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64")
        .arg("sh")
        .arg(cert_pem)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "cannot read {}", cert_pem.display());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium that trusts the
    /// certificates whose public keys are `pins` ([`spki_pin`]).
    pub fn start(pins: &[String]) -> Browser {
        for program in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: apt-get install chromium chromium-driver (tests/run.sh does)"
            );
        }
        let port = free_port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap();
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while http.get(format!("{base}/status")).send().is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1440,1400".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--ignore-certificate-errors-spki-list={}", pins.join(",")),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .and_then(|r| r.json())
            .expect("a browser session");
        let id = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {answer}"))
            .to_owned();
        Browser {
            driver,
            base: format!("{base}/session/{id}"),
            http,
            _profile: profile,
            failure_shot: None,
        }
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        self.try_call(method, path, body)
            .unwrap_or_else(|e| panic!("webdriver {path}: {e}"))
    }

    /// A WebDriver command; its error (`stale element reference: ...`) as
    /// text.
    fn try_call(&self, method: reqwest::Method, path: &str, body: Value) -> Result<Value, String> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if !body.is_null() {
            request = request.json(&body);
        }
        let answer: Value = request
            .send()
            .and_then(|r| r.json())
            .map_err(|e| e.to_string())?;
        if let Some(error) = answer["value"]["error"].as_str() {
            return Err(format!("{error}: {}", answer["value"]["message"]));
        }
        Ok(answer["value"].clone())
    }

    /// Opens `url`.
    pub fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({"url": url}));
    }

    /// Runs `script` (a function body; `arguments` are `args`) and
    /// returns what it returns.
    pub fn js(&self, script: &str, args: &[Value]) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
    }

    /// Runs `script` whose last argument is a callback to call with the
    /// result.
    pub fn js_async(&self, script: &str, args: &[Value]) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/async",
            json!({"script": script, "args": args}),
        )
    }

    /// The element a script returns (a DOM node), if any.
    pub fn element(&self, script: &str, args: &[Value]) -> Option<Element> {
        let v = self.js(script, args);
        v.get(ELEMENT)
            .and_then(Value::as_str)
            .map(|id| Element(id.to_owned()))
    }

    /// Waits until `script` returns an element, and returns it.
    pub fn wait_element(&self, what: &str, script: &str, args: &[Value]) -> Element {
        let started = Instant::now();
        loop {
            if let Some(e) = self.element(script, args) {
                return e;
            }
            if started.elapsed() > Duration::from_secs(60) {
                self.fail(&format!("{what} did not appear within 60 s"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until `script` returns true (at most `limit`).
    pub fn wait_true(&self, what: &str, limit: Duration, script: &str, args: &[Value]) {
        let started = Instant::now();
        while self.js(script, args) != Value::Bool(true) {
            if started.elapsed() > limit {
                self.fail(&format!("{what}: not so within {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Panics with `message`, after a screenshot and the console's
    /// messages.
    pub fn fail(&self, message: &str) -> ! {
        if let Some(file) = &self.failure_shot {
            self.screenshot(file);
        }
        panic!("{message}\nbrowser console:\n{}", self.console().join("\n"));
    }

    /// Clicks an element, as a user would (scrolled into view first).
    pub fn click(&self, e: &Element) {
        if let Err(error) = self.try_click(e) {
            self.fail(&format!("click: {error}"));
        }
    }

    fn try_click(&self, e: &Element) -> Result<Value, String> {
        self.try_call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({
                "script": "arguments[0].scrollIntoView({block: 'center'});",
                "args": [{ ELEMENT: e.0 }],
            }),
        )?;
        self.try_call(
            reqwest::Method::POST,
            &format!("/element/{}/click", e.0),
            json!({}),
        )
    }

    /// Clicks the element `script` returns once it is there; found again
    /// if the page drew it anew in between (ExtJS redraws rows and tree
    /// nodes as their stores refresh).
    pub fn click_found(&self, what: &str, script: &str, args: &[Value]) {
        let started = Instant::now();
        loop {
            let e = self.wait_element(what, script, args);
            match self.try_click(&e) {
                Ok(_) => return,
                Err(error) if error.starts_with("stale element reference") => {}
                Err(error) => self.fail(&format!("clicking {what}: {error}")),
            }
            if started.elapsed() > Duration::from_secs(60) {
                self.fail(&format!("{what} kept being redrawn for 60 s"));
            }
        }
    }

    /// Types `text` into an element.
    pub fn type_into(&self, e: &Element, text: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{}/value", e.0),
            json!({ "text": text }),
        );
    }

    /// Saves a screenshot of the window as PNG.
    pub fn screenshot(&self, file: &Path) {
        let data = self.call(reqwest::Method::GET, "/screenshot", Value::Null);
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or_default())
            .expect("a PNG");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, png).unwrap();
    }

    /// The browser's console messages so far, one per line.
    pub fn console(&self) -> Vec<String> {
        let v = self.call(reqwest::Method::POST, "/se/log", json!({"type": "browser"}));
        v.as_array()
            .into_iter()
            .flatten()
            .map(|e| format!("{} {}", e["level"], e["message"]))
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self
            .http
            .delete(&self.base)
            .timeout(Duration::from_secs(10))
            .send();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
