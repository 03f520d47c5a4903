//! Serving connections: the accept loop, the connection limit, per-connection deadlines
//! ([`watchdog`]) and the body reader ([`body`]).
//!
//! axum's `serve` has no connection limit and no way to time out a client that sends its
//! head slowly, idles, or stops halfway through a body, so connections are served here
//! with hyper's HTTP/1.1 connection builder directly:
//!
//! - At most `max_connections` connections are served at once. When all are in use, the
//!   accept loop stops accepting: new connections wait in the kernel's listen backlog (and
//!   are served once a slot frees) rather than being refused. One warning is logged when
//!   the limit is reached and one info line when there is room again, not one per
//!   connection.
//! - Each connection has a [`watchdog::Watch`]: `header_read_timeout` for a request head,
//!   `idle_timeout` between keep-alive requests; `body_read_timeout` is applied by the
//!   handler while it reads the body ([`body::read`]).
//! - With TLS ([`tls`]), the handshake must finish within `header_read_timeout`; each
//!   connection takes the certificate current at its accept, so a reload applies to new
//!   connections.
//! - On shutdown the loop stops accepting, asks every connection to finish its current
//!   request and close, and waits until all have.
//!
//! What answers the requests is a [`Front`]: a `Router`, or the seal gate's front, which
//! hands the AWS API's requests to their handler directly and everything else to its router.

pub mod body;
pub mod forwarded;
pub mod tls;
pub mod watchdog;

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower_service::Service as _;

use watchdog::{TimedIo, Watch};

/// The connection-level limits (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// What answers a connection's requests.
pub trait Front: Clone + Send + Sync + 'static {
    fn answer(
        &self,
        request: Request,
        peer: SocketAddr,
    ) -> impl Future<Output = Response> + Send + use<Self>;
}

/// A router answers with `ConnectInfo` (the peer's address) among the request's extensions.
impl Front for Router {
    fn answer(
        &self,
        mut request: Request,
        peer: SocketAddr,
    ) -> impl Future<Output = Response> + Send + use<> {
        request.extensions_mut().insert(ConnectInfo(peer));
        let mut router = self.clone();
        async move {
            match router.call(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    }
}

/// Accepts and serves connections until `shutdown` completes, then drains them.
pub async fn serve(
    listener: TcpListener,
    front: impl Front,
    limits: Limits,
    tls: Option<tls::TlsReload>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    let mut at_limit = false;
    let mut accept_failing = false;
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => {
                if at_limit {
                    tracing::info!(
                        max_connections = limits.max_connections,
                        "below the connection limit again; accepting"
                    );
                    at_limit = false;
                }
                permit
            }
            Err(_) => {
                if !at_limit {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "connection limit reached: new connections wait in the listen backlog until one closes"
                    );
                    at_limit = true;
                }
                tokio::select! {
                    permit = slots.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    accept_failing = false;
                    accepted
                }
                Err(e) => {
                    // Typically EMFILE: out of file descriptors. Back off briefly rather
                    // than spin; log once until accepting works again.
                    if !accept_failing {
                        tracing::warn!(error = %e, "accepting a connection failed; retrying");
                        accept_failing = true;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_tcp(
            stream,
            peer,
            front.clone(),
            limits,
            tls.as_ref().map(tls::TlsReload::acceptor),
            permit,
            stop_rx.clone(),
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a slot: all slots back means all connections closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

async fn serve_tcp(
    stream: TcpStream,
    peer: SocketAddr,
    front: impl Front,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    permit: OwnedSemaphorePermit,
    stop: watch::Receiver<bool>,
) {
    match tls {
        None => serve_connection(stream, peer, front, limits, stop).await,
        Some(acceptor) => {
            match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => serve_connection(stream, peer, front, limits, stop).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
    drop(permit);
}

/// Serves one connection until the client closes it, a deadline passes, or shutdown.
async fn serve_connection<S>(
    io: S,
    peer: SocketAddr,
    front: impl Front,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let watch = Watch::new(limits.header_read_timeout, limits.idle_timeout);
    let service_watch = watch.clone();
    let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
        let watch = service_watch.clone();
        let answer = front.answer(request.map(Body::new), peer);
        watch.request_started();
        async move {
            let response = answer.await;
            watch.request_finished();
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let connection = http1::Builder::new()
        .keep_alive(true)
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(TimedIo::new(io, watch.clone())), service);
    let mut connection = pin!(connection);
    let mut stopping = false;
    loop {
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            expired = watch.expired() => {
                tracing::debug!(%peer, ?expired, "closing the connection: timed out");
                return;
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
