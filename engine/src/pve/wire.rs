//! The one blocking HTTP(S) client of the engine and the `orbitlab`
//! command: ureq (no async runtime), TLS only through our rustls
//! [`client_config`] (`tls.rs`), connections kept alive and reused.
//!
//! - every request has a whole-call timeout and a connect timeout;
//! - redirects are never followed, proxies from the environment are not
//!   used (the client talks to one configured node);
//! - header values are checked here, so a malformed secret is reported by
//!   the header's name, never by its value;
//! - error texts are made here from the error's kind and its causes: the
//!   URL (and ureq's own messages, which can quote a header) never appear;
//! - a request marked [`Request::once`] never rides a reused connection
//!   when ureq could replay it on a stale one (an idempotent method
//!   without a body): it is sent exactly once.
//!
//! Side effects: network I/O to the URLs given, nothing else.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

pub use http::Method;
use zeroize::Zeroizing;

use super::error::PveError;
use super::tls::{RustlsConnector, Trust, client_config};

/// Timeouts and identity of an [`HttpClient`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpOptions {
    /// Whole-call timeout (connect, send, answer read), unless a request
    /// gives its own.
    pub timeout: Duration,
    /// TCP connect timeout (the TLS handshake counts in `timeout`).
    pub connect_timeout: Duration,
    /// The `User-Agent` header.
    pub user_agent: &'static str,
}

/// A blocking HTTP(S) client trusting what a [`Trust`] says. Cheap to
/// clone: clones share the connection pool.
#[derive(Clone)]
pub struct HttpClient {
    /// Keeps connections alive and reuses them.
    pooled: ureq::Agent,
    /// Never reuses a connection (see [`Request::once`]).
    fresh: ureq::Agent,
    timeout: Duration,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A request body.
pub enum Body<'a> {
    /// No body.
    Empty,
    /// Bytes of a content type.
    Bytes(&'a str, Vec<u8>),
    /// `len` bytes read from `reader` (an upload), of a content type.
    Stream {
        /// `Content-Type`.
        content_type: String,
        /// Exactly how many bytes `reader` gives (`Content-Length`).
        len: u64,
        /// The bytes.
        reader: Box<dyn Read + 'a>,
    },
}

impl Body<'_> {
    /// Form parameters, `application/x-www-form-urlencoded`.
    pub fn form<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Body<'static> {
        Body::Bytes(FORM, encode_form(pairs).into_bytes())
    }

    fn is_empty(&self) -> bool {
        matches!(self, Body::Empty)
    }
}

impl std::fmt::Debug for Body<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Bodies can hold passwords: only their shape is shown.
        match self {
            Body::Empty => f.write_str("Empty"),
            Body::Bytes(t, b) => write!(f, "Bytes({t}, {} bytes)", b.len()),
            Body::Stream {
                content_type, len, ..
            } => write!(f, "Stream({content_type}, {len} bytes)"),
        }
    }
}

const FORM: &str = "application/x-www-form-urlencoded";

/// True when `url` names this host (`localhost`, `127.0.0.0/8`, `::1`):
/// the only place a plain-HTTP connection to Proxmox is ever accepted.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(h) => h
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// `k=v&...`, form-encoded as Proxmox expects.
pub fn encode_form<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k.as_ref(), v.as_ref());
    }
    s.finish()
}

/// `url?k=v&...` (`url` unchanged without pairs). Queries are logged by
/// proxies and servers: never put a secret in one.
pub fn with_query<K: AsRef<str>, V: AsRef<str>>(url: &str, pairs: &[(K, V)]) -> String {
    if pairs.is_empty() {
        url.to_owned()
    } else {
        format!("{url}?{}", encode_form(pairs))
    }
}

/// One request.
#[derive(Debug)]
pub struct Request<'a> {
    method: Method,
    url: String,
    headers: Vec<(&'static str, Zeroizing<String>)>,
    body: Body<'a>,
    timeout: Option<Duration>,
    once: bool,
}

impl<'a> Request<'a> {
    /// `method url` without headers or body.
    pub fn new(method: Method, url: String) -> Self {
        Request {
            method,
            url,
            headers: Vec::new(),
            body: Body::Empty,
            timeout: None,
            once: false,
        }
    }

    /// Adds a header; the value may be a secret (it is wiped when the
    /// request is dropped and never printed).
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, Zeroizing::new(value.into())));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: Body<'a>) -> Self {
        self.body = body;
        self
    }

    /// A whole-call timeout of its own (uploads).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sent exactly once: never replayed by the HTTP layer on a stale
    /// reused connection (writes that are not safe to repeat).
    pub fn once(mut self) -> Self {
        self.once = true;
        self
    }

    /// Whether ureq would resend this request by itself when a reused
    /// connection turns out closed (idempotent methods without a body).
    fn replayable(&self) -> bool {
        self.body.is_empty()
            && [
                Method::GET,
                Method::HEAD,
                Method::PUT,
                Method::DELETE,
                Method::OPTIONS,
                Method::TRACE,
            ]
            .contains(&self.method)
    }
}

/// An answer, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// The status line's reason when it is not the standard one for the
    /// status (Proxmox puts its message there).
    pub reason: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `404 Not Found` (the standard reason).
    pub fn status_line(&self) -> String {
        status_line(self.status)
    }
}

/// `404 Not Found`, or the number alone for an unknown status.
pub fn status_line(status: u16) -> String {
    match http::StatusCode::from_u16(status) {
        Ok(s) => s.to_string(),
        Err(_) => status.to_string(),
    }
}

/// Why a request got no answer. The texts name no URL and no header value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// No complete answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// A header value that HTTP cannot carry (named, never shown).
    #[error("the {0} header holds characters not allowed in a header")]
    BadHeader(&'static str),
    /// Connecting, TLS, sending or reading failed.
    #[error("{0}")]
    Transport(String),
    /// The server answered, but not in valid HTTP (for example a status
    /// line with non-ASCII text, which ureq refuses): repeating the call
    /// would get the same answer.
    #[error("{0}")]
    Malformed(String),
}

/// Visible ASCII, space and tab: what ureq accepts in a header value.
fn header_ok(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b' ' || b == b'\t' || (0x21..=0x7e).contains(&b))
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    )
}

/// The causes of an error, `: `-separated, after `first`.
fn with_causes(first: &str, mut source: Option<&(dyn std::error::Error + 'static)>) -> String {
    let mut text = first.to_owned();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

fn transport_error(e: &ureq::Transport, timeout: Duration) -> WireError {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>().is_some_and(is_timeout) {
            return WireError::Timeout(timeout);
        }
        source = s.source();
    }
    use ureq::ErrorKind as K;
    let what = match e.kind() {
        K::Dns => "the host name could not be resolved",
        K::ConnectionFailed => "could not connect",
        K::Io => "the connection failed",
        // ureq's own words on what is wrong with the answer (fixed texts;
        // they quote nothing we sent).
        K::BadStatus | K::BadHeader => {
            return WireError::Malformed(format!(
                "the server's answer is not valid HTTP ({}); a status line with non-ASCII text (Proxmox puts its error message there) is refused",
                e.message().unwrap_or("bad status line or header")
            ));
        }
        K::InvalidUrl | K::UnknownScheme => "the URL is not valid",
        K::TooManyRedirects => "redirected",
        _ => "the request failed",
    };
    WireError::Transport(with_causes(what, std::error::Error::source(e)))
}

impl HttpClient {
    /// A client trusting `trust` (plain HTTP only with
    /// [`Trust::LoopbackHttp`]; the callers check the URL is loopback).
    pub fn new(trust: &Trust, opts: HttpOptions) -> Result<Self, PveError> {
        let tls = client_config(trust)?;
        let agent = |pool: bool| {
            let mut b = ureq::AgentBuilder::new()
                .timeout(opts.timeout)
                .timeout_connect(opts.connect_timeout)
                .redirects(0)
                .user_agent(opts.user_agent);
            if !pool {
                b = b.max_idle_connections(0).max_idle_connections_per_host(0);
            }
            match &tls {
                Some(config) => b
                    .tls_connector(Arc::new(RustlsConnector(Arc::new(config.clone()))))
                    .https_only(true),
                None => b,
            }
            .build()
        };
        Ok(HttpClient {
            pooled: agent(true),
            fresh: agent(false),
            timeout: opts.timeout,
        })
    }

    /// Sends `req` and reads the whole answer (the connection then goes
    /// back to the pool). Any status is an answer.
    pub fn send(&self, req: Request<'_>) -> Result<Response, WireError> {
        let agent = if req.once && req.replayable() {
            &self.fresh
        } else {
            &self.pooled
        };
        let timeout = req.timeout.unwrap_or(self.timeout);
        let mut r = agent.request(req.method.as_str(), &req.url);
        if let Some(t) = req.timeout {
            r = r.timeout(t);
        }
        for (name, value) in &req.headers {
            if !header_ok(value) {
                return Err(WireError::BadHeader(name));
            }
            r = r.set(name, value);
        }
        let sent = match req.body {
            Body::Empty => r.call(),
            Body::Bytes(content_type, bytes) => {
                r.set("Content-Type", content_type).send_bytes(&bytes)
            }
            Body::Stream {
                content_type,
                len,
                reader,
            } => {
                if !header_ok(&content_type) {
                    return Err(WireError::BadHeader("Content-Type"));
                }
                r.set("Content-Type", &content_type)
                    .set("Content-Length", &len.to_string())
                    .send(reader)
            }
        };
        let answer = match sent {
            Ok(a) | Err(ureq::Error::Status(_, a)) => a,
            Err(ureq::Error::Transport(e)) => return Err(transport_error(&e, timeout)),
        };
        let status = answer.status();
        let standard = http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason());
        let reason = Some(answer.status_text().trim())
            .filter(|r| !r.is_empty() && Some(*r) != standard)
            .map(str::to_owned);
        let mut body = Vec::new();
        answer.into_reader().read_to_end(&mut body).map_err(|e| {
            if is_timeout(&e) {
                WireError::Timeout(timeout)
            } else {
                WireError::Transport(with_causes("reading the answer failed", Some(&e)))
            }
        })?;
        Ok(Response {
            status,
            reason,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_queries_are_encoded() {
        let pairs = [("path", "/"), ("net0", "name=eth0,ip=10.0.0.2/24")];
        assert_eq!(
            encode_form(&pairs),
            "path=%2F&net0=name%3Deth0%2Cip%3D10.0.0.2%2F24"
        );
        assert_eq!(
            with_query("http://h/x", &[] as &[(&str, &str)]),
            "http://h/x"
        );
        assert_eq!(
            with_query("http://h/x", &[("a", "b c")]),
            "http://h/x?a=b+c"
        );
        assert_eq!(status_line(404), "404 Not Found");
    }

    #[test]
    fn bad_header_values_are_named_not_shown() {
        let client = HttpClient::new(
            &Trust::LoopbackHttp,
            HttpOptions {
                timeout: Duration::from_secs(1),
                connect_timeout: Duration::from_secs(1),
                user_agent: "test",
            },
        )
        .expect("client");
        let req = Request::new(Method::GET, "http://127.0.0.1:1/".into())
            .header("Authorization", "PVEAPIToken=a@pam!t=sec\nret");
        let e = client.send(req).expect_err("refused before sending");
        assert_eq!(e, WireError::BadHeader("Authorization"));
        assert!(!format!("{e} {e:?}").contains("sec"), "{e}");
        // Nothing listens on port 1: a transport error without the URL.
        let e = client
            .send(Request::new(Method::GET, "http://127.0.0.1:1/x?q=1".into()))
            .expect_err("refused");
        let text = e.to_string();
        assert!(matches!(e, WireError::Transport(_)), "{e:?}");
        assert!(
            !text.contains("127.0.0.1") && !text.contains("q=1"),
            "{text}"
        );
    }

    /// A server that answers GETs (keeping the connection) and counts
    /// DELETEs, dropping the connection without an answer after each (a
    /// request that got through but whose answer was lost).
    fn dropping_server() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{BufRead, BufReader, Write};
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let deletes = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&deletes);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let counted = Arc::clone(&counted);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                    let mut writer = conn;
                    loop {
                        let mut head = String::new();
                        let mut line = String::new();
                        while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                            head.push_str(&line);
                            line.clear();
                        }
                        if head.starts_with("GET ") {
                            let _ =
                                writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
                        } else {
                            if head.starts_with("DELETE ") {
                                counted.fetch_add(1, Ordering::SeqCst);
                            }
                            return;
                        }
                    }
                });
            }
        });
        (url, deletes)
    }

    #[test]
    fn a_request_sent_once_is_not_replayed_on_a_lost_answer() {
        use std::sync::atomic::Ordering;
        let client = HttpClient::new(
            &Trust::LoopbackHttp,
            HttpOptions {
                timeout: Duration::from_secs(10),
                connect_timeout: Duration::from_secs(5),
                user_agent: "test",
            },
        )
        .expect("client");
        for (once, sent) in [(true, 1), (false, 2)] {
            let (url, deletes) = dropping_server();
            let answer = client
                .send(Request::new(Method::GET, format!("{url}/a")))
                .expect("GET answered");
            assert_eq!((answer.status, answer.body), (200, b"{}".to_vec()));
            let mut delete = Request::new(Method::DELETE, format!("{url}/b"));
            if once {
                delete = delete.once();
            }
            let e = client.send(delete).expect_err("no answer");
            assert!(matches!(e, WireError::Transport(_)), "{e:?}");
            // Without `once`, the HTTP layer replays the DELETE on a new
            // connection by itself (the kept-alive one looked stale).
            assert_eq!(deletes.load(Ordering::SeqCst), sent, "once: {once}");
        }
    }
}
