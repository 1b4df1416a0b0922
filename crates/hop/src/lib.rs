//! An independent hop: a WebSocket forwarder that a third party runs between Sotto clients and
//! a Sotto server, so that the server sees the hop's address instead of the user's, and the
//! hop sees the user's address and nothing else.
//!
//! Trust: the hop trusts nobody and is trusted with nothing. What passes through it is the
//! attested channel (end-to-end encrypted to the enclave; sotto-channel) and it forwards each
//! binary WebSocket message as it is, without parsing it: this crate depends on no
//! cryptography, so it holds no key by construction. Of the client's request it forwards
//! nothing that could name the user — no cookie, no Origin, no forwarded-for header, no user
//! agent, of the query only the enclave the client picked — except an anonymous token by
//! design (RFC 9577), which the server may require to meter use: an `Authorization:
//! PrivateToken …` header, or from a browser (which cannot set headers on a WebSocket) a
//! `privatetoken.…` subprotocol.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as Client, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as Upstream;
use tracing::{info, warn};

/// The relay's path, on the hop as on the server, so a client uses either alike.
pub const RELAY_PATH: &str = "/v1/relay";
/// The largest message the channel sends (one Noise message, 65,535 bytes).
const MAX_MESSAGE: usize = 65_535;
/// The relay's WebSocket subprotocol, which a browser offers beside its token's; the hop
/// answers with it alone, as the server does, so the token is never echoed.
const SUBPROTOCOL: &str = "sotto.relay";
const TOKEN_SUBPROTOCOL_PREFIX: &str = "privatetoken.";

#[derive(Clone, Debug)]
pub struct HopConfig {
    /// The server's relay, e.g. `wss://sotto.example/v1/relay`.
    pub upstream: String,
    /// Connections forwarded at once; more are refused with 1013.
    pub max_connections: usize,
    /// A connection with no binary message either way for this long is closed.
    pub idle_timeout: Duration,
    /// How long connecting to the upstream may take.
    pub connect_timeout: Duration,
}

impl HopConfig {
    pub fn new(upstream: impl Into<String>) -> Self {
        HopConfig {
            upstream: upstream.into(),
            max_connections: 1024,
            idle_timeout: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HopError {
    #[error("the upstream relay URL {0:?} is not a ws:// or wss:// URL")]
    Upstream(String),
}

struct Hop {
    config: HopConfig,
    slots: Semaphore,
}

/// The hop's routes: the relay path only.
pub fn router(config: HopConfig) -> Result<Router, HopError> {
    if !(config.upstream.starts_with("ws://") || config.upstream.starts_with("wss://")) {
        return Err(HopError::Upstream(config.upstream));
    }
    let hop = Arc::new(Hop {
        slots: Semaphore::new(config.max_connections),
        config,
    });
    Ok(Router::new()
        .route(RELAY_PATH, get(upgrade))
        .with_state(hop))
}

async fn upgrade(
    State(hop): State<Arc<Hop>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> impl IntoResponse {
    let token = private_token(&headers);
    let wanted = enclave_wanted(query.as_deref());
    ws.protocols([SUBPROTOCOL])
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            let Ok(_slot) = hop.slots.try_acquire() else {
                warn!("refused: too many connections");
                let (mut tx, _) = socket.split();
                let _ = tx.send(close(1013, "the hop is full")).await;
                return;
            };
            let (up, down, end) = forward(socket, &hop.config, token, wanted).await;
            info!(
                up_bytes = up,
                down_bytes = down,
                end,
                "hop connection closed"
            );
        })
}

/// The Privacy Pass token of a client's upgrade, as the header that carries it upstream.
#[derive(Debug, PartialEq)]
enum PrivateToken {
    /// `Authorization: PrivateToken …`, passed on as it is.
    Authorization(HeaderValue),
    /// A browser's `privatetoken.…` subprotocol, passed on beside the relay's own.
    Subprotocol(HeaderValue),
}

/// The client's Privacy Pass token, and nothing else of its request.
fn private_token(headers: &HeaderMap) -> Option<PrivateToken> {
    let authorization = headers
        .get_all(axum::http::header::AUTHORIZATION)
        .iter()
        .find(|v| {
            v.as_bytes()
                .get(..13)
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case(b"PrivateToken "))
        });
    if let Some(value) = authorization {
        return Some(PrivateToken::Authorization(value.clone()));
    }
    headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find(|p| p.starts_with(TOKEN_SUBPROTOCOL_PREFIX))
        .and_then(|p| HeaderValue::from_str(&format!("{SUBPROTOCOL}, {p}")).ok())
        .map(PrivateToken::Subprotocol)
}

/// The enclave the client asked the relay for (`enclave=ID` or `prefer=ID`, the client's own
/// pick among the server's enclaves), passed on as that query so that a hop does not take the
/// choice away; any other part of the query stays here.
fn enclave_wanted(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .find(|pair| {
            pair.split_once('=').is_some_and(|(name, id)| {
                matches!(name, "enclave" | "prefer")
                    && (1..=64).contains(&id.len())
                    && id.bytes().all(|b| b.is_ascii_alphanumeric())
            })
        })
        .map(str::to_owned)
}

/// Moves binary messages both ways until either side closes, misbehaves or idles out.
/// Returns the bytes moved up and down and why it ended.
async fn forward(
    socket: WebSocket,
    config: &HopConfig,
    token: Option<PrivateToken>,
    wanted: Option<String>,
) -> (u64, u64, &'static str) {
    let (mut client_tx, mut client_rx) = socket.split();
    let upstream = match connect(config, token, wanted).await {
        Ok(upstream) => upstream,
        Err(why) => {
            let _ = client_tx.send(close(1013, why)).await;
            return (0, 0, why);
        }
    };
    let (mut server_tx, mut server_rx) = upstream.split();
    let (mut up, mut down) = (0u64, 0u64);
    let end = loop {
        tokio::select! {
            msg = tokio::time::timeout(config.idle_timeout, client_rx.next()) => match msg {
                Err(_) => break "idle timeout",
                Ok(None | Some(Err(_)) | Some(Ok(Client::Close(_)))) => break "client closed",
                Ok(Some(Ok(Client::Binary(bytes)))) => {
                    up += bytes.len() as u64;
                    if server_tx.send(Upstream::Binary(bytes)).await.is_err() {
                        break "upstream write failed";
                    }
                }
                Ok(Some(Ok(Client::Text(_)))) => {
                    let _ = client_tx.send(close(1003, "binary messages only")).await;
                    break "client sent text";
                }
                Ok(Some(Ok(Client::Ping(_) | Client::Pong(_)))) => {}
            },
            msg = server_rx.next() => match msg {
                None | Some(Err(_)) => break "upstream closed",
                Some(Ok(Upstream::Close(frame))) => {
                    let reason = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                    let _ = client_tx.send(Client::Close(reason.map(|(code, reason)| CloseFrame {
                        code,
                        reason: reason.into(),
                    }))).await;
                    break "upstream closed";
                }
                Some(Ok(Upstream::Binary(bytes))) => {
                    down += bytes.len() as u64;
                    if client_tx.send(Client::Binary(bytes)).await.is_err() {
                        break "client write failed";
                    }
                }
                Some(Ok(_)) => {}
            },
        }
    };
    let _ = server_tx.close().await;
    (up, down, end)
}

type UpstreamSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(
    config: &HopConfig,
    token: Option<PrivateToken>,
    wanted: Option<String>,
) -> Result<UpstreamSocket, &'static str> {
    let upstream = match wanted {
        Some(pair) => {
            let sep = if config.upstream.contains('?') {
                '&'
            } else {
                '?'
            };
            format!("{}{sep}{pair}", config.upstream)
        }
        None => config.upstream.clone(),
    };
    let mut request = upstream
        .as_str()
        .into_client_request()
        .map_err(|_| "the hop's upstream URL is invalid")?;
    let headers = request.headers_mut();
    match token {
        Some(PrivateToken::Authorization(value)) => {
            headers.insert(axum::http::header::AUTHORIZATION, value);
        }
        Some(PrivateToken::Subprotocol(value)) => {
            headers.insert(axum::http::header::SEC_WEBSOCKET_PROTOCOL, value);
        }
        None => {}
    }
    let limits = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let connecting = tokio_tungstenite::connect_async_with_config(request, Some(limits), false);
    match tokio::time::timeout(config.connect_timeout, connecting).await {
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(_)) | Err(_) => Err("the server is unreachable from the hop"),
    }
}

fn close(code: u16, reason: &'static str) -> Client {
    Client::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_private_token_is_passed_on() {
        let mut headers = HeaderMap::new();
        headers.insert("cookie", HeaderValue::from_static("__Host-sotto=secret"));
        headers.append(
            "authorization",
            HeaderValue::from_static("Bearer account-token"),
        );
        headers.append(
            "sec-websocket-protocol",
            HeaderValue::from_static("sotto.relay, x-tracking.abc"),
        );
        assert_eq!(private_token(&headers), None);
        headers.append(
            "sec-websocket-protocol",
            HeaderValue::from_static("privatetoken.AAEC"),
        );
        assert_eq!(
            private_token(&headers),
            Some(PrivateToken::Subprotocol(HeaderValue::from_static(
                "sotto.relay, privatetoken.AAEC"
            )))
        );
        headers.append(
            "authorization",
            HeaderValue::from_static("privatetoken token=\"abc\""),
        );
        assert_eq!(
            private_token(&headers),
            Some(PrivateToken::Authorization(HeaderValue::from_static(
                "privatetoken token=\"abc\""
            )))
        );
    }

    #[test]
    fn only_the_enclave_the_client_picked_is_passed_on() {
        assert_eq!(
            enclave_wanted(Some("x=1&enclave=0a1b2c&user=me")),
            Some("enclave=0a1b2c".into())
        );
        assert_eq!(
            enclave_wanted(Some("prefer=0a1b2c")),
            Some("prefer=0a1b2c".into())
        );
        assert_eq!(enclave_wanted(Some("enclave=a%26b")), None);
        assert_eq!(enclave_wanted(Some("enclave=")), None);
        assert_eq!(enclave_wanted(None), None);
    }

    #[test]
    fn the_upstream_must_be_a_websocket_url() {
        let err = router(HopConfig::new("http://server")).err().unwrap();
        assert!(err.to_string().contains("ws://"), "{err}");
        assert!(router(HopConfig::new("wss://server/v1/relay")).is_ok());
    }
}
