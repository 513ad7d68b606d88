//! The access log names users and requests, never credentials: every
//! line the agent logs while serving requests with a token, a wrong token,
//! a ticket and a CSRF token is captured and searched for the secrets.
//! (Its own test binary: it installs the process-wide log subscriber.)

mod server_common;

use std::io::Write;
use std::sync::{Arc, Mutex};

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

#[test]
fn logs_name_users_but_never_credentials() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "orbitlab=trace,orbitlab_agent=trace",
        ))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

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

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("admin@pve!ui"), "{text}");
    assert!(text.contains("status=401"), "{text}");
    assert!(text.contains("eve@pve"), "{text}");
    for secret in [
        "admin-secret-1234",
        "wrong-secret-5678",
        "ticket-signature-9abc",
        "csrf-value-def0",
    ] {
        assert!(!text.contains(secret), "{secret} was logged:\n{text}");
    }
}
