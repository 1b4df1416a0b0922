//! The relay between browsers/CLIs (WebSocket) and the enclave (TCP), and the collateral folder.
//! Both only move bytes that are either encrypted end to end or signed by hardware vendors.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use sotto_channel::frame::{self, Decoder, MAX_FRAME};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{info, warn};

use crate::{AppState, ServerConfig};

pub(crate) async fn health(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let enclave = tokio::time::timeout(
        Duration::from_secs(2),
        TcpStream::connect(state.config.enclave_addr),
    )
    .await
    .map(|r| r.is_ok())
    .unwrap_or(false);
    let code = if enclave {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(
            serde_json::json!({ "status": if enclave { "ok" } else { "enclave unreachable" }, "enclave": enclave }),
        ),
    )
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

pub(crate) async fn relay(
    State(state): State<Arc<AppState>>,
    ws: WebSocketUpgrade,
) -> impl IntoResponse {
    ws.max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket| async move {
            let id = state.next_id.fetch_add(1, Ordering::Relaxed);
            let Ok(_permit) = state.relays.try_acquire() else {
                warn!(relay = id, "refused: too many relays");
                return;
            };
            let started = Instant::now();
            let outcome = pump(socket, &state.config).await;
            info!(
                relay = id,
                up_bytes = outcome.up,
                down_bytes = outcome.down,
                secs = started.elapsed().as_secs_f64(),
                end = outcome.end,
                "relay closed"
            );
        })
}

struct Outcome {
    up: u64,
    down: u64,
    end: &'static str,
}

/// Moves WebSocket binary messages to length-prefixed TCP frames and back, until either side
/// closes, misbehaves or idles out. Never looks inside a message.
async fn pump(socket: WebSocket, config: &ServerConfig) -> Outcome {
    let mut outcome = Outcome {
        up: 0,
        down: 0,
        end: "client closed",
    };
    let tcp = match tokio::time::timeout(
        Duration::from_secs(5),
        TcpStream::connect(config.enclave_addr),
    )
    .await
    {
        Ok(Ok(s)) => s,
        _ => {
            outcome.end = "enclave unreachable";
            let (mut tx, _) = socket.split();
            let _ = tx.send(close(1013, "enclave unreachable")).await;
            return outcome;
        }
    };
    let _ = tcp.set_nodelay(true);
    let (mut tcp_rx, mut tcp_tx) = tcp.into_split();
    let (mut ws_tx, mut ws_rx) = socket.split();
    let mut decoder = Decoder::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            msg = tokio::time::timeout(config.idle_timeout, ws_rx.next()) => {
                match msg {
                    Err(_) => { outcome.end = "idle timeout"; break; }
                    Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => break,
                    Ok(Some(Ok(Message::Binary(bytes)))) => {
                        let Ok(framed) = frame::encode(&bytes) else {
                            outcome.end = "oversized client message";
                            let _ = ws_tx.send(close(1009, "message too large")).await;
                            break;
                        };
                        if tcp_tx.write_all(&framed).await.is_err() {
                            outcome.end = "enclave write failed";
                            break;
                        }
                        outcome.up += bytes.len() as u64;
                    }
                    Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
                    Ok(Some(Ok(Message::Text(_)))) => {
                        outcome.end = "client sent text";
                        let _ = ws_tx.send(close(1003, "binary messages only")).await;
                        break;
                    }
                }
            }
            read = tcp_rx.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => { outcome.end = "enclave closed"; let _ = ws_tx.send(close(1000, "enclave closed")).await; break; }
                    Ok(n) => n,
                };
                decoder.push(&buf[..n]);
                let mut failed = false;
                loop {
                    match decoder.next_frame() {
                        Ok(Some(f)) => {
                            outcome.down += f.len() as u64;
                            if ws_tx.send(Message::Binary(f.into())).await.is_err() { failed = true; break; }
                        }
                        Ok(None) => break,
                        Err(_) => { outcome.end = "enclave sent a bad frame"; failed = true; break; }
                    }
                }
                if failed { break; }
            }
        }
    }
    let _ = tcp_tx.shutdown().await;
    outcome
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}
