//! Serving the router over TCP with the limits a server facing the internet needs, so a client
//! that opens connections and then goes quiet, or trickles its request, or stops reading the
//! answer (slowloris and its variants), holds a bounded share of the server for a bounded time.
//!
//! HTTP/1.1 only: browsers speak HTTP/2 only over TLS, which a reverse proxy in front ends.
//! A WebSocket relay, once upgraded, is no longer a request: the header, body and request
//! timeouts stop applying to it and the relay's own limits take over (`RelayLimits`), so a long
//! generation streams as long as it needs; only the write-stall limit stays on the socket.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tower::ServiceBuilder;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutBody, TimeoutLayer};
use tracing::{debug, warn};

use crate::address::{Holds, Net};
use crate::error::ConfigError;
use crate::{router, ServerConfig};

/// What one server lets its clients hold. The defaults suit one server process with a few
/// thousand users; each is a field so an operator (and a test) can change it.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Connections served at once; beyond it, new ones wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Connections one client network (an IPv4 address, an IPv6 /64) may hold at once; more
    /// are closed as they arrive. Not applied behind a trusted reverse proxy, from whose
    /// address every connection comes.
    pub per_client: usize,
    /// Time to send a request's headers, counted from when the connection is ready for the
    /// next request: so also how long a kept-alive connection may sit idle.
    pub header_read: Duration,
    /// The longest a request body may pause between two chunks.
    pub body_idle: Duration,
    /// The longest one request may take, its body included, before it is answered 408.
    pub request: Duration,
    /// The longest a write to a client may stall (a client that stopped reading).
    pub write_stall: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 4096,
            // A browser opens about six per origin; this leaves room for a NAT of many.
            per_client: 256,
            header_read: Duration::from_secs(30),
            body_idle: Duration::from_secs(20),
            // An 8 MiB record at 70 KB/s.
            request: Duration::from_secs(120),
            write_stall: Duration::from_secs(60),
        }
    }
}

/// Serves `config`'s router on `listener` until the process ends. Only a misconfigured router
/// is an error; a failed accept (out of file descriptors, say) is logged and retried.
pub async fn serve(listener: TcpListener, config: ServerConfig) -> Result<(), ConfigError> {
    let limits = config.connections;
    let per_client = config
        .trusted_proxy_header
        .is_none()
        .then_some(limits.per_client);
    let app = router(config)?;
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let clients = Holds::default();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return Ok(());
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let held = match per_client {
            Some(cap) => match clients.take(Net::of(peer.ip()), cap) {
                Some(held) => Some(held),
                None => {
                    debug!("closed a connection: its client holds too many");
                    continue;
                }
            },
            None => None,
        };
        // Small JSON answers and relay frames go out at once.
        let _ = stream.set_nodelay(true);
        let service = ServiceBuilder::new()
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                limits.request,
            ))
            .map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            })
            .layer(RequestBodyTimeoutLayer::new(limits.body_idle))
            .map_request(|req: Request<TimeoutBody<Incoming>>| req.map(axum::body::Body::new))
            .service(app.clone());
        let io = TokioIo::new(Stalling::new(stream, limits.write_stall));
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read);
        tokio::spawn(async move {
            let conn = http
                .serve_connection(io, TowerToHyperService::new(service))
                .with_upgrades();
            if let Err(e) = conn.await {
                debug!(error = %e, "connection ended");
            }
            drop((held, slot));
        });
    }
}

/// A socket whose writes fail once one has been pending for `limit`: hyper has no write
/// timeout, and a client that never reads would otherwise hold its connection and the
/// response buffered for it forever.
struct Stalling {
    inner: TcpStream,
    limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl Stalling {
    fn new(inner: TcpStream, limit: Duration) -> Self {
        Stalling {
            inner,
            limit,
            stalled: None,
        }
    }

    /// Passes `result` on, and while it is pending, counts down to a timeout.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if result.is_ready() {
            self.stalled = None;
            return result;
        }
        let limit = self.limit;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(stalled.as_mut().poll(cx));
        self.stalled = None;
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client stopped reading",
        )))
    }
}

impl AsyncRead for Stalling {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stalling {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, result)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
