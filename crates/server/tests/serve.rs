//! The server on a real socket with short limits: a client that trickles its headers or sits
//! on an idle connection is cut off, one client network cannot hold more than its share of
//! connections, and a WebSocket relay outlives every request timeout (a long generation).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod common;

use common::echo;
use futures_util::{SinkExt, StreamExt};
use sotto_server::{serve, ConnectionLimits, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

const LIMITS: ConnectionLimits = ConnectionLimits {
    max_connections: 64,
    per_client: 4,
    header_read: Duration::from_millis(500),
    body_idle: Duration::from_millis(500),
    request: Duration::from_secs(1),
    write_stall: Duration::from_secs(5),
};

async fn server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = ServerConfig::new(echo().await);
    config.connections = LIMITS;
    tokio::spawn(serve(listener, config));
    addr
}

/// Reads until the server closes the connection; how long that took.
async fn closed_after(conn: &mut TcpStream) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("the server kept the connection open"),
        }
    }
}

#[tokio::test]
async fn trickled_headers_and_idle_connections_are_cut_off() {
    let addr = server().await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(closed_after(&mut slow).await < Duration::from_secs(2));

    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Answered, then kept alive only as long as a new request's headers may take.
    assert!(closed_after(&mut idle).await < Duration::from_secs(2));
}

#[tokio::test]
async fn one_client_holds_at_most_its_share_of_connections() {
    let addr = server().await;
    let mut held = Vec::new();
    for _ in 0..LIMITS.per_client {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    // Give the server time to count them before the next one arrives.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = [0u8; 64];
    let got = tokio::time::timeout(Duration::from_secs(2), extra.read(&mut buf))
        .await
        .expect("closed at once");
    assert!(matches!(got, Ok(0) | Err(_)), "served beyond the share");
    // Once they go, the client is served again.
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut again = TcpStream::connect(addr).await.unwrap();
    again
        .write_all(b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    again.read_to_end(&mut answer).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 404"), "{answer:?}");
}

#[tokio::test]
async fn a_relay_outlives_the_request_timeouts() {
    let addr = server().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v1/relay"))
        .await
        .unwrap();
    // Longer than the header, body and request limits together: a model thinking.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    ws.send(Message::Binary(b"still here".to_vec().into()))
        .await
        .unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("an answer")
        .expect("the relay is open")
        .unwrap();
    assert_eq!(echoed.into_data().as_ref(), b"still here");
}
