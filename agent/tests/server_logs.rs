//! The access log names users and requests, never credentials: every
//! line the agent logs while serving requests with a token, a wrong token,
//! a ticket and a CSRF token is captured and searched for the secrets.
//! A user is named only once Proxmox has vouched for it; what a caller
//! claims cannot forge journal lines.
//! (Its own test binary: it installs the process-wide log subscriber,
//! once, shared by the tests; each looks only at the lines of its paths.)

mod server_common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use server_common::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// Everything logged by this process, from the first call on.
fn captured() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "orbitlab=trace,orbitlab_agent=trace,orbitlab_engine=trace",
            ))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .init();
        captured
    })
}

#[test]
fn logs_name_users_but_never_credentials() {
    let captured = captured();

    let s = start(CannedAuth::with(&[(
        "admin@pve!ui",
        "admin-secret-1234",
        ADMIN,
    )]));
    let sectors = s.url("/api2/json/orbitlab/sectors");
    let send = |r: reqwest::blocking::RequestBuilder| r.send().unwrap().status().as_u16();
    assert_eq!(
        send(s.client.get(&sectors).header(
            "Authorization",
            "PVEAPIToken=admin@pve!ui=admin-secret-1234"
        )),
        200
    );
    assert_eq!(
        send(
            s.client
                .post(&sectors)
                .header(
                    "Authorization",
                    "PVEAPIToken=admin@pve!ui=admin-secret-1234"
                )
                .form(&[("name", "web"), ("cidr", "172.16.0.0/24")])
        ),
        200
    );
    assert_eq!(
        send(s.client.get(&sectors).header(
            "Authorization",
            "PVEAPIToken=admin@pve!ui=wrong-secret-5678"
        )),
        401
    );
    assert_eq!(
        send(
            s.client
                .post(&sectors)
                .header(
                    "Cookie",
                    "PVEAuthCookie=PVE:eve@pve:6650A1B2::ticket-signature-9abc"
                )
                .header("CSRFPreventionToken", "6650A1B2:csrf-value-def0")
                .form(&[("name", "db"), ("cidr", "172.16.1.0/24")])
        ),
        401
    );
    s.handle.shutdown();

    let text = captured.text();
    assert!(text.contains("admin@pve!ui"), "{text}");
    assert!(text.contains("status=401"), "{text}");
    // Proxmox did not accept eve's ticket: her name is only a claim.
    assert!(!text.contains("eve@pve"), "{text}");
    assert!(text.contains("user=unauthenticated"), "{text}");
    for secret in [
        "admin-secret-1234",
        "wrong-secret-5678",
        "ticket-signature-9abc",
        "csrf-value-def0",
    ] {
        assert!(!text.contains(secret), "{secret} was logged:\n{text}");
    }
}

#[test]
fn a_forged_ticket_cannot_write_journal_lines() {
    let captured = captured();
    let s = start(CannedAuth::with(&[]));
    let path = "/api2/json/orbitlab/certificates";
    let status = s
        .client
        .get(s.url(path))
        .header(
            "Cookie",
            "PVEAuthCookie=PVE:mallory@pve%0A2026-01-01T00:00:00Z%20INFO%20orbitlab::api:%20request%20user=root@pam%20status=200%0A:6650A1B2::sig",
        )
        .send()
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 401);
    // An unknown path of an unknown collection, with an escaped newline
    // of its own: logged as sent, on one line.
    let odd = "/api2/json/orbitlab/x%0Auser=root@pam";
    let status = s.client.get(s.url(odd)).send().unwrap().status().as_u16();
    assert_eq!(status, 401);
    s.handle.shutdown();

    let text = captured.text();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(path) || l.contains("mallory") || l.contains("root@pam"))
        .collect();
    let requests: Vec<&&str> = lines.iter().filter(|l| l.contains(path)).collect();
    assert_eq!(requests.len(), 1, "{lines:#?}");
    assert!(requests[0].contains("user=unauthenticated"), "{lines:#?}");
    assert!(
        !text.contains("mallory"),
        "an unverified user was logged:\n{text}"
    );
    // The only line naming root@pam is the odd path's own, escaped as sent.
    let odd_lines: Vec<&&str> = lines.iter().filter(|l| l.contains("root@pam")).collect();
    assert_eq!(odd_lines.len(), 1, "{lines:#?}");
    assert!(
        odd_lines[0].contains("path=/api2/json/orbitlab/x%0Auser=root@pam"),
        "{lines:#?}"
    );
    assert!(odd_lines[0].contains("status=401"), "{lines:#?}");
}
