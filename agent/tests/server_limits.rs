//! The local API under load from clients without a valid credential: idle
//! sockets from one client must not lock out another, credential checks
//! that hang must not hold up callers whose identity is already known, a
//! refused credential is not asked about again at once, and a 503 to an
//! unauthenticated caller names nothing internal.
//!
//! Clients are told apart by their loopback source address (127.0.0.1,
//! 127.0.0.2, 127.0.1.N). No assertion depends on timing: a failure shows
//! as a wrong answer or as a request that does not finish before its
//! generous deadline (10-20 s).

mod server_common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use orbitlab_agent::server::{AuthError, Authenticator, Credential, Identity, Limits, Privileges};
use reqwest::StatusCode;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use server_common::*;

const GOOD: &str = "PVEAPIToken=ui@pve!panel=good-secret";
const DEADLINE: Duration = Duration::from_secs(10);

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// Knows one token (answered at once); every other credential is held at
/// a gate until the test opens it (or 30 s pass, so nothing hangs for
/// ever), then refused.
#[derive(Default)]
struct GatedAuth {
    entered: AtomicUsize,
    open: Mutex<bool>,
    changed: Condvar,
}

impl GatedAuth {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.changed.notify_all();
    }

    fn wait_entered(&self, n: usize) {
        let deadline = Instant::now() + DEADLINE;
        while self.entered.load(Ordering::SeqCst) < n {
            assert!(
                Instant::now() < deadline,
                "only {} checks reached the authenticator, expected {n}",
                self.entered.load(Ordering::SeqCst)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Authenticator for GatedAuth {
    fn authenticate(&self, credential: &Credential, _write: bool) -> Result<Identity, AuthError> {
        if let Credential::Token { id, secret } = credential
            && id == "ui@pve!panel"
            && secret.expose() == "good-secret"
        {
            return Ok(Identity {
                user: id.clone(),
                privileges: Privileges::new(ADMIN.iter().copied()),
            });
        }
        self.entered.fetch_add(1, Ordering::SeqCst);
        let open = self.open.lock().unwrap();
        let _open = self
            .changed
            .wait_timeout_while(open, Duration::from_secs(30), |open| !*open)
            .unwrap();
        Err(AuthError::Refused("authentication failure".into()))
    }
}

/// A TLS connection made from `from` that has sent `request` (the
/// handshake is complete and the bytes written when this returns).
fn send_raw(
    server: SocketAddr,
    from: IpAddr,
    ca_pem: &str,
    request: &str,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let tcp = runtime
        .block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(from, 0))?;
            socket.connect(server).await
        })
        .unwrap()
        .into_std()
        .unwrap();
    tcp.set_nonblocking(false).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    stream.write_all(request.as_bytes()).unwrap();
    stream.flush().unwrap();
    stream
}

/// Everything the server sends until it closes the connection.
fn read_all(mut stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>) -> String {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            // A peer closing without close_notify: the answer is complete.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("reading the answer: {e}"),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn get_request(authorization: &str) -> String {
    format!(
        "GET /api2/json/orbitlab HTTP/1.1\r\nHost: localhost\r\nAuthorization: {authorization}\r\nConnection: close\r\n\r\n"
    )
}

#[test]
fn idle_sockets_from_one_client_do_not_lock_out_another() {
    let s = start(CannedAuth::with(&[("ui@pve!panel", "good-secret", ADMIN)]));
    let addr = s.handle.local_addr();
    // 300 sockets from 127.0.0.1 that never start TLS, all kept open.
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();

    let other = client_from(&s.tls.ca.pem(), ip("127.0.0.2"));
    let response = other
        .get(s.url("/api2/json/orbitlab"))
        .header("Authorization", GOOD)
        .send()
        .expect("a second client is served while the first holds 300 idle sockets");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(idle.len(), 300);
    drop(idle);
}

#[test]
fn hanging_credential_checks_do_not_hold_up_known_callers() {
    let auth = Arc::new(GatedAuth::default());
    let s = start(auth.clone());
    let addr = s.handle.local_addr();
    let ca = s.tls.ca.pem();
    let known = client_from(&ca, ip("127.0.0.2"));
    let get = || {
        known
            .get(s.url("/api2/json/orbitlab"))
            .header("Authorization", GOOD)
            .send()
    };
    assert_eq!(get().unwrap().status(), StatusCode::OK, "warming the cache");

    // 64 callers with bad tokens, each from its own address; their
    // checks hang until the gate opens.
    let bad: Vec<_> = (1..=64u8)
        .map(|i| {
            let from = IpAddr::V4(Ipv4Addr::new(127, 0, 1, i));
            let token = format!("PVEAPIToken=mallory@pve!t{i}=wrong-{i}");
            send_raw(addr, from, &ca, &get_request(&token))
        })
        .collect();
    auth.wait_entered(4);

    let response = get().expect("a cached caller is answered while 64 checks hang");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        auth.entered.load(Ordering::SeqCst),
        Limits::default().max_auth_checks,
        "checks at once"
    );

    auth.open();
    for stream in bad {
        let answer = read_all(stream);
        let status_line = answer.lines().next().unwrap_or_default();
        assert!(
            status_line.starts_with("HTTP/1.1 401") || status_line.starts_with("HTTP/1.1 503"),
            "{answer}"
        );
        assert!(!answer.contains("wrong-"), "{answer}");
    }
}

#[test]
fn a_refused_credential_is_not_asked_about_again_at_once() {
    let auth = CannedAuth::with(&[("ui@pve!panel", "good-secret", ADMIN)]);
    let s = start(auth.clone());
    let with = |token: &str| {
        s.client
            .get(s.url("/api2/json/orbitlab"))
            .header("Authorization", token)
            .send()
            .unwrap()
            .status()
    };
    for _ in 0..5 {
        assert_eq!(
            with("PVEAPIToken=ui@pve!panel=guess"),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(auth.calls(), 1, "a refused token was checked again at once");
    assert_eq!(with(GOOD), StatusCode::OK);
    assert_eq!(
        with("PVEAPIToken=ui@pve!panel=other-guess"),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(auth.calls(), 3, "another credential shared a refusal");
}

/// Proxmox cannot be reached; its error names the internal address.
struct Unreachable;

const INTERNAL: &str = "https://10.11.12.13:8006/api2/json/access/permissions";

impl Authenticator for Unreachable {
    fn authenticate(&self, _: &Credential, _: bool) -> Result<Identity, AuthError> {
        Err(AuthError::Unavailable(format!(
            "cannot reach Proxmox at {INTERNAL}: tcp connect error: Connection refused (os error 111)"
        )))
    }
}

#[test]
fn a_503_to_an_unauthenticated_caller_names_nothing_internal() {
    let s = start(Arc::new(Unreachable));
    let answer = read_all(send_raw(
        s.handle.local_addr(),
        ip("127.0.0.1"),
        &s.tls.ca.pem(),
        &get_request(GOOD),
    ));
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    for internal in ["10.11.12.13", "access/permissions", "os error", "refused"] {
        assert!(!answer.contains(internal), "{internal:?} in {answer}");
    }
    assert!(answer.contains("try again"), "{answer}");
}
