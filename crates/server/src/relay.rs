//! The relay between browsers/CLIs (WebSocket) and an enclave of the pool (TCP; `crate::pool`
//! picks which), and the collateral folder.
//! Both only move bytes that are either encrypted end to end or signed by hardware vendors.
//!
//! The relay is open to anyone, so it holds under abuse ([`RelayLimits`]): relays are capped in
//! total and per client network; the enclave must answer the handshake soon after the upgrade;
//! only binary messages, either way, keep a relay from idling out (pings do not), and none
//! outlives its lifetime; a browser may open one only from this server's own origin or an
//! allowed one; and each direction holds at most one read chunk and one message, so a client
//! that stops reading stops the enclave's writes (TCP backpressure) instead of growing a
//! buffer here. Every limit closes with a WebSocket close code and a readable reason, and
//! touches no other relay.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::header::{HOST, ORIGIN};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use sotto_api::Enclaves;
use sotto_channel::frame::{self, Decoder, MAX_FRAME};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::address::{client_ip, Hold, Net};
use crate::pool::Wanted;
use crate::AppState;

/// What the relay lets its clients hold. The defaults suit one server in front of one enclave
/// with a few thousand users; each is a field so an operator (and a test) can change it.
#[derive(Clone, Debug)]
pub struct RelayLimits {
    /// Relays open at once on the whole server; more are closed with 1013.
    pub max_total: usize,
    /// Relays one client network (an IPv4 address, an IPv6 /64; behind a trusted proxy, as the
    /// proxy reports it) may hold at once; more are closed with 1013. Below `max_total`, so
    /// one network cannot take every relay.
    pub per_client: usize,
    /// The enclave's answer to the handshake must arrive within this long of the upgrade.
    pub handshake: Duration,
    /// A relay with no binary message either way for this long is closed; pings and pongs do
    /// not count.
    pub idle: Duration,
    /// The longest one relay may stay open, however busy.
    pub lifetime: Duration,
    /// Web origins (`https://chat.example`) besides the server's own from which browsers may
    /// open a relay. Clients that send no `Origin` (the CLI, a hop) are not browsers and are
    /// let through.
    pub allowed_origins: Vec<String>,
}

impl Default for RelayLimits {
    fn default() -> Self {
        RelayLimits {
            max_total: 256,
            // A user holds one relay per open chat; this leaves room for a NAT of several.
            per_client: 32,
            // The client sends its hello at once and the enclave attests in well under a
            // second; the enclave itself gives up on a missing hello after 15 s.
            handshake: Duration::from_secs(10),
            idle: Duration::from_secs(600),
            lifetime: Duration::from_secs(2 * 3600),
            allowed_origins: Vec::new(),
        }
    }
}

impl RelayLimits {
    /// Whether `text` is a web origin as `allowed_origins` takes it: `http(s)://host[:port]`.
    pub fn is_origin(text: &str) -> bool {
        Origin::parse(text).is_some()
    }
}

/// Bytes read from the enclave at once: with the frame decoder's partial frame and the one
/// message being written, what a relay holds per direction.
const READ_CHUNK: usize = 64 * 1024;

/// Up while any enclave is (as the last connect or probe found it), with the pool's state.
pub(crate) async fn health(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let up = state.pool.any_up();
    let code = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let status = if up { "ok" } else { "enclave unreachable" };
    (
        code,
        Json(serde_json::json!({ "status": status, "enclave": up, "enclaves": state.pool.list() })),
    )
}

/// The pool's enclaves by id, for clients that pick one themselves.
pub(crate) async fn enclaves(State(state): State<Arc<AppState>>) -> Json<Enclaves> {
    Json(Enclaves {
        enclaves: state.pool.list(),
    })
}

/// `/v1/relay?enclave=ID` (that enclave or none) or `?prefer=ID` (that one first).
#[derive(serde::Deserialize)]
pub(crate) struct RelayQuery {
    enclave: Option<String>,
    prefer: Option<String>,
}

impl RelayQuery {
    fn wanted(&self) -> Option<Wanted<'_>> {
        match (&self.enclave, &self.prefer) {
            (Some(id), _) => Some(Wanted::Only(id)),
            (None, Some(id)) => Some(Wanted::Prefer(id)),
            (None, None) => None,
        }
    }
}

/// Collateral files by name, base64-encoded. Sizes are bounded by the operator's folder.
pub(crate) async fn collateral(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let mut files = BTreeMap::new();
    if let Some(dir) = &state.config.collateral_dir {
        if let Ok(mut entries) = tokio::fs::read_dir(dir).await {
            while let Ok(Some(entry)) = entries.next_entry().await {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Ok(bytes) = tokio::fs::read(entry.path()).await {
                    files.insert(
                        name,
                        base64::engine::general_purpose::STANDARD.encode(bytes),
                    );
                }
            }
        }
    }
    Json(serde_json::json!({ "files": files }))
}

/// The WebSocket upgrade of `/v1/relay`. A browser from a foreign origin is refused before
/// the upgrade (403: a cross-site page must not get a socket at all); a relay over a cap is
/// upgraded only to be closed with its reason, which a browser cannot read from a refused
/// upgrade.
pub(crate) async fn relay(
    State(state): State<Arc<AppState>>,
    Query(query): Query<RelayQuery>,
    extensions: Extensions,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if !origin_allowed(&state, &headers) {
        warn!("refused a relay: a browser page from another origin");
        return (
            StatusCode::FORBIDDEN,
            "this relay serves only pages from its own origin",
        )
            .into_response();
    }
    let admitted = admit(&state, &extensions, &headers);
    // Only a connection that has its place spends a token, so a full relay burns none.
    if admitted.is_ok() {
        if let Err(refused) = crate::tokens::redeem(state.tokens.as_deref(), &headers).await {
            return refused;
        }
    }
    ws.protocols([crate::tokens::SUBPROTOCOL])
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        // Each message is flushed as it is sent; the buffer never holds more than a few.
        .write_buffer_size(0)
        .max_write_buffer_size(4 * MAX_FRAME)
        .on_upgrade(move |socket| async move {
            let id = state.next_id.fetch_add(1, Ordering::Relaxed);
            let _held = match admitted {
                Ok(held) => held,
                Err(refusal) => {
                    warn!(relay = id, "refused: {}", refusal.log);
                    let (mut tx, _) = socket.split();
                    let _ = tx.send(close(1013, refusal.reason)).await;
                    return;
                }
            };
            let started = Instant::now();
            let outcome = pump(socket, &state, query.wanted()).await;
            info!(
                relay = id,
                enclave = outcome.enclave.as_deref().unwrap_or("none"),
                up_bytes = outcome.up,
                down_bytes = outcome.down,
                secs = started.elapsed().as_secs_f64(),
                end = outcome.end,
                "relay closed"
            );
        })
}

/// How a relay ends when the enclave hangs up first (done with the session, or gone).
const ENCLAVE_CLOSED: &str = "enclave closed";

struct Refusal {
    log: &'static str,
    reason: &'static str,
}

/// A place among the relays, on the whole server and for the client's network.
fn admit(
    state: &AppState,
    extensions: &Extensions,
    headers: &HeaderMap,
) -> Result<(OwnedSemaphorePermit, Hold), Refusal> {
    let limits = &state.config.relay;
    // Without connection info (a router served without `serve`), every client is one network.
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let ip = client_ip(peer, headers, state.config.trusted_proxy_header.as_ref());
    let hold = state
        .relay_holds
        .take(Net::of(ip), limits.per_client)
        .ok_or(Refusal {
            log: "its network holds too many relays",
            reason: "too many relays from your network; close one or try again later",
        })?;
    let permit = state
        .relays
        .clone()
        .try_acquire_owned()
        .map_err(|_| Refusal {
            log: "too many relays",
            reason: "the relay is at capacity; try again later",
        })?;
    Ok((permit, hold))
}

/// Whether the request may open a relay as far as its `Origin` goes: none (not a browser), or
/// the server's own origin (the one the request is addressed to, or the configured accounts
/// origin), or one the operator allowed.
fn origin_allowed(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let Some(origin) = origin.to_str().ok().and_then(Origin::parse) else {
        // `null` (a sandboxed frame, a file), or not an origin at all.
        return false;
    };
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    if host.is_some_and(|host| origin.is_host(host)) {
        return true;
    }
    if let Some(accounts) = &state.config.accounts {
        if let Some(own) = Origin::parse(&accounts.origin) {
            if own == origin
                || (accounts.any_port && own.host == origin.host && own.https == origin.https)
            {
                return true;
            }
        }
    }
    state
        .config
        .relay
        .allowed_origins
        .iter()
        .filter_map(|a| Origin::parse(a))
        .any(|a| a == origin)
}

/// A web origin, `http(s)://host[:port]`, compared as browsers write it: case-insensitively,
/// with the scheme's default port left out.
#[derive(PartialEq, Eq, Debug)]
struct Origin {
    https: bool,
    host: String,
    port: Option<u16>,
}

impl Origin {
    fn parse(text: &str) -> Option<Origin> {
        let (scheme, authority) = text.trim().trim_end_matches('/').split_once("://")?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let (host, port) = split_authority(authority, https)?;
        Some(Origin { https, host, port })
    }

    /// Whether a `Host` header names this origin's host and port. The scheme cannot be
    /// compared (a TLS-terminating proxy forwards plain HTTP, and `Host` never carries it), but
    /// one port serves one scheme.
    fn is_host(&self, host: &str) -> bool {
        split_authority(host, self.https)
            .is_some_and(|(h, port)| h == self.host && port == self.port)
    }
}

/// `host[:port]` (IPv6 hosts in brackets), lowercased, the default port for the scheme dropped.
fn split_authority(authority: &str, https: bool) -> Option<(String, Option<u16>)> {
    if authority.is_empty() || authority.contains(['/', '@', '?', '#', ' ']) {
        return None;
    }
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => (
            &authority[..i],
            Some(authority[i + 1..].parse::<u16>().ok()?),
        ),
        _ => (authority, None),
    };
    if host.is_empty() {
        return None;
    }
    let default = if https { 443 } else { 80 };
    Some((host.to_ascii_lowercase(), port.filter(|&p| p != default)))
}

struct Outcome {
    up: u64,
    down: u64,
    end: &'static str,
    /// The id of the enclave it reached.
    enclave: Option<String>,
}

/// Why a relay ended: for the log, and the close frame the client gets, if any.
struct End {
    why: &'static str,
    close: Option<(u16, &'static str)>,
}

impl End {
    fn quiet(why: &'static str) -> End {
        End { why, close: None }
    }

    fn closing(why: &'static str, code: u16, reason: &'static str) -> End {
        End {
            why,
            close: Some((code, reason)),
        }
    }
}

/// What both directions of one relay share: the byte counts, and when the last binary message
/// passed, in milliseconds since the relay started.
struct Traffic {
    started: Instant,
    up: AtomicU64,
    down: AtomicU64,
    last_ms: AtomicU64,
    answered: AtomicBool,
}

impl Traffic {
    fn passed(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.started + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// Moves WebSocket binary messages to length-prefixed TCP frames and back, until either side
/// closes, misbehaves or a deadline passes. Never looks inside a message. The two directions
/// run side by side, each waiting for its own writes, so a stalled reader on one side stalls
/// only the direction that feeds it.
async fn pump(socket: WebSocket, state: &AppState, wanted: Option<Wanted<'_>>) -> Outcome {
    let limits = &state.config.relay;
    let traffic = Traffic {
        started: Instant::now(),
        up: AtomicU64::new(0),
        down: AtomicU64::new(0),
        last_ms: AtomicU64::new(0),
        answered: AtomicBool::new(false),
    };
    let (mut ws_tx, mut ws_rx) = socket.split();
    let mut enclave = None;
    let end = match state.pool.connect(wanted).await {
        Ok((tcp, lease)) => {
            enclave = Some(lease.id().to_owned());
            let _ = tcp.set_nodelay(true);
            let (mut tcp_rx, mut tcp_tx) = tcp.into_split();
            let end = tokio::select! {
                end = upstream(&mut ws_rx, &mut tcp_tx, &traffic) => end,
                end = downstream(&mut tcp_rx, &mut ws_tx, &traffic) => end,
                end = deadlines(limits, &traffic) => end,
            };
            let _ = tcp_tx.shutdown().await;
            if end.why == ENCLAVE_CLOSED {
                state.pool.recheck(&lease).await;
            }
            end
        }
        Err(unavailable) => End::closing(unavailable.reason(), 1013, unavailable.reason()),
    };
    if let Some((code, reason)) = end.close {
        // Bounded like any write: a client that stopped reading gets no close frame.
        let _ = tokio::time::timeout(Duration::from_secs(5), ws_tx.send(close(code, reason))).await;
    }
    Outcome {
        up: traffic.up.load(Ordering::Relaxed),
        down: traffic.down.load(Ordering::Relaxed),
        end: end.why,
        enclave,
    }
}

/// Client to enclave: one message at a time, the next read only once it is written.
async fn upstream(
    ws_rx: &mut SplitStream<WebSocket>,
    tcp_tx: &mut OwnedWriteHalf,
    traffic: &Traffic,
) -> End {
    loop {
        match ws_rx.next().await {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => {
                return End::quiet("client closed")
            }
            Some(Ok(Message::Binary(bytes))) => {
                let Ok(framed) = frame::encode(&bytes) else {
                    return End::closing("oversized client message", 1009, "message too large");
                };
                if tcp_tx.write_all(&framed).await.is_err() {
                    return End::closing("enclave write failed", 1011, "the enclave went away");
                }
                traffic.up.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                traffic.passed();
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Text(_))) => {
                return End::closing("client sent text", 1003, "binary messages only")
            }
        }
    }
}

/// Enclave to client: one read chunk at a time, the next read only once its frames are sent.
async fn downstream(
    tcp_rx: &mut OwnedReadHalf,
    ws_tx: &mut SplitSink<WebSocket, Message>,
    traffic: &Traffic,
) -> End {
    let mut decoder = Decoder::new();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match tcp_rx.read(&mut buf).await {
            Ok(0) | Err(_) => {
                return End::closing(ENCLAVE_CLOSED, 1000, "the enclave closed the connection")
            }
            Ok(n) => n,
        };
        decoder.push(&buf[..n]);
        loop {
            match decoder.next_frame() {
                Ok(Some(f)) => {
                    let len = f.len() as u64;
                    if ws_tx.send(Message::Binary(f.into())).await.is_err() {
                        return End::quiet("client write failed");
                    }
                    traffic.down.fetch_add(len, Ordering::Relaxed);
                    traffic.answered.store(true, Ordering::Relaxed);
                    traffic.passed();
                }
                Ok(None) => break,
                Err(_) => {
                    return End::closing(
                        "enclave sent a bad frame",
                        1011,
                        "the enclave sent a malformed frame",
                    )
                }
            }
        }
    }
}

/// Ends the relay at the first of its [`Deadline`]s to pass.
async fn deadlines(limits: &RelayLimits, traffic: &Traffic) -> End {
    loop {
        let (due, deadline) = Deadline::next(
            limits,
            traffic.started,
            traffic.last(),
            traffic.answered.load(Ordering::Relaxed),
        );
        if Instant::now() >= due {
            return deadline.end();
        }
        tokio::time::sleep_until(due).await;
    }
}

/// The deadlines of a relay: the handshake's (counted from the upgrade until the enclave's
/// first message), the idle one (from the last binary message either way) and the lifetime.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Deadline {
    Handshake,
    Idle,
    Lifetime,
}

impl Deadline {
    /// The earliest deadline of a relay that started at `started` and last passed a binary
    /// message at `last`, and when it falls.
    fn next(
        limits: &RelayLimits,
        started: Instant,
        last: Instant,
        answered: bool,
    ) -> (Instant, Deadline) {
        let mut next = (last + limits.idle, Deadline::Idle);
        let lifetime = started + limits.lifetime;
        if lifetime < next.0 {
            next = (lifetime, Deadline::Lifetime);
        }
        let handshake = started + limits.handshake;
        if !answered && handshake <= next.0 {
            next = (handshake, Deadline::Handshake);
        }
        next
    }

    fn end(self) -> End {
        match self {
            Deadline::Handshake => End::closing(
                "handshake timeout",
                1008,
                "the enclave did not answer the handshake in time",
            ),
            Deadline::Idle => {
                End::closing("idle timeout", 1008, "idle: no data passed for too long")
            }
            Deadline::Lifetime => End::closing(
                "lifetime reached",
                1008,
                "this relay reached its lifetime; open a new one",
            ),
        }
    }
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_deadline_counts_and_the_idle_one_moves_with_the_last_message() {
        let limits = RelayLimits {
            handshake: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            lifetime: Duration::from_secs(100),
            ..RelayLimits::default()
        };
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        assert_eq!(
            Deadline::next(&limits, t0, t0, false),
            (at(10), Deadline::Handshake)
        );
        assert_eq!(
            Deadline::next(&limits, t0, t0, true),
            (at(60), Deadline::Idle)
        );
        assert_eq!(
            Deadline::next(&limits, t0, at(30), true),
            (at(90), Deadline::Idle)
        );
        assert_eq!(
            Deadline::next(&limits, t0, at(50), true),
            (at(100), Deadline::Lifetime)
        );
        // A handshake limit longer than the idle one: the idle one comes first.
        let slow = RelayLimits {
            handshake: Duration::from_secs(70),
            ..limits
        };
        assert_eq!(
            Deadline::next(&slow, t0, t0, false),
            (at(60), Deadline::Idle)
        );
    }

    #[test]
    fn origins_compare_as_browsers_write_them() {
        let own = Origin::parse("https://Sotto.example").unwrap();
        assert_eq!(own, Origin::parse("https://sotto.example:443/").unwrap());
        assert_ne!(own, Origin::parse("http://sotto.example").unwrap());
        assert_ne!(own, Origin::parse("https://sotto.example:8443").unwrap());
        assert_ne!(own, Origin::parse("https://evil.example").unwrap());
        assert!(own.is_host("sotto.example"));
        assert!(own.is_host("sotto.example:443"));
        assert!(!own.is_host("sotto.example:80"));
        assert!(!own.is_host("sotto.example.evil.example"));
        let v6 = Origin::parse("http://[::1]:8080").unwrap();
        assert!(v6.is_host("[::1]:8080"));
        assert!(!v6.is_host("[::1]"));
        for bad in [
            "null",
            "file://",
            "ftp://sotto.example",
            "https://",
            "https://user@sotto.example",
            "https://sotto.example:99999",
            "https://sotto.example/path",
        ] {
            assert_eq!(Origin::parse(bad), None, "{bad}");
        }
    }
}
