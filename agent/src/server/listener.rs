//! Accepting connections: the per-client and global bounds of
//! [`super::admission`] (a handshake place on accept, a connection place
//! only once the TLS handshake is done), TLS handshake and header
//! timeouts, HTTP/1.1 with keep-alive, and a graceful stop that lets
//! requests in flight finish for a moment.
//!
//! A connection over a limit is closed at once without an answer; each is
//! logged at debug level, and at most one warning a minute says how many
//! were refused.

use std::net::SocketAddr;
use std::time::Duration;

use axum::{Extension, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::Limits;
use super::admission::{Admission, Handshake, Refusal, Throttle};
use super::routes::Peer;

/// Warnings about refused connections: at most one a minute.
static WARNINGS: Throttle = Throttle::new(Duration::from_secs(60));

fn refused(peer: SocketAddr, why: Refusal) {
    tracing::debug!(%peer, "closing a connection: {why}");
    if let Some(held) = WARNINGS.allow() {
        tracing::warn!(
            %peer,
            "closing connections to the OrbitLab API: {why} ({held} more refused since the last warning)"
        );
    }
}

/// Serves until `stop` turns true, then waits up to
/// [`Limits::shutdown_grace`] for open requests.
pub(crate) async fn run(
    listener: TcpListener,
    tls: TlsAcceptor,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let admission = Admission::new(limits);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: breathe.
                        tracing::warn!("accepting a connection failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let handshake = match admission.admit(peer.ip()) {
                    Ok(handshake) => handshake,
                    Err(why) => {
                        refused(peer, why);
                        continue;
                    }
                };
                let service = app.clone().layer(Extension(Peer(peer)));
                connections.spawn(connection(tcp, peer, tls.clone(), service, limits, stop.clone(), handshake));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.shutdown_grace, drain)
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still running after {:?}; abandoning them",
            limits.shutdown_grace
        );
        connections.shutdown().await;
    }
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: TlsAcceptor,
    service: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    handshake: Handshake,
) {
    let _ = tcp.set_nodelay(true);
    let stream = match tokio::time::timeout(limits.handshake_timeout, tls.accept(tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(%peer, "TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let _slot = match handshake.established() {
        Ok(slot) => slot,
        Err(why) => {
            refused(peer, why);
            return;
        }
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(64 * 1024)
        .keep_alive(true);
    let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!("connection ended: {e}");
            }
        }
        () = async { let _ = stop.wait_for(|stopped| *stopped).await; } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
