//! Malformed frames, oversized frames, half-open connections and garbage never crash the
//! server or the enclave, and other sessions keep working.

use crate::common;

use std::time::Duration;

use crate::common::{stack, TapMode};
use futures_util::{SinkExt, StreamExt};
use sotto::client::{now, relay_url};
use sotto_channel::handshake::{ClientHandshake, Expectations};
use sotto_channel::messages::{GenParams, Role, WireMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use zeroize::Zeroizing;

async fn chat_works(s: &common::Stack) {
    let mut conn = s.connect().await.expect("verified");
    let msg = [WireMessage {
        role: Role::User,
        content: Zeroizing::new("ping".into()),
    }];
    let stats = conn
        .chat(
            &msg,
            GenParams {
                max_tokens: 3,
                ..GenParams::default()
            },
            &mut |_| {},
        )
        .await
        .expect("a healthy session still works");
    assert!(stats.generated_tokens > 0);
}

/// Waits for the server to close a WebSocket; returns true if it did within the timeout.
async fn closed_by_server(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return false,
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return true,
            Ok(Some(Ok(_))) => continue,
        }
    }
}

async fn ws(
    s: &common::Stack,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    tokio_tungstenite::connect_async(relay_url(&s.url).unwrap())
        .await
        .expect("ws")
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_websocket_closes_only_that_session() {
    let s = stack(TapMode::Pass).await;

    let mut text = ws(&s).await;
    text.send(Message::Text("hello".into())).await.unwrap();
    assert!(
        closed_by_server(&mut text).await,
        "text message closes the relay"
    );

    let mut junk = ws(&s).await;
    junk.send(Message::Binary(vec![0xAB; 1000].into()))
        .await
        .unwrap();
    assert!(
        closed_by_server(&mut junk).await,
        "a garbage handshake ends the session"
    );

    let mut big = ws(&s).await;
    let _ = big.send(Message::Binary(vec![0u8; 70_000].into())).await;
    assert!(
        closed_by_server(&mut big).await,
        "an oversized message closes the relay"
    );

    // A valid handshake followed by a garbage transport frame.
    let mut bad_frame = ws(&s).await;
    let (hs, hello) = ClientHandshake::start().unwrap();
    bad_frame
        .send(Message::Binary(hello.0.into()))
        .await
        .unwrap();
    let reply = match bad_frame.next().await {
        Some(Ok(Message::Binary(b))) => b,
        other => panic!("expected the handshake answer, got {other:?}"),
    };
    let (_session, _) = hs
        .read_response(&reply)
        .unwrap()
        .verify(&s.policy, &Expectations::default(), now())
        .unwrap()
        .admit(&s.releases)
        .unwrap();
    bad_frame
        .send(Message::Binary(vec![1u8; 64].into()))
        .await
        .unwrap();
    assert!(
        closed_by_server(&mut bad_frame).await,
        "an unauthenticated frame ends the session"
    );

    chat_works(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_and_malformed_connections_do_not_block_others() {
    let s = stack(TapMode::Pass).await;
    let mut idle_ws = Vec::new();
    let mut idle_tcp = Vec::new();
    for _ in 0..16 {
        // Half-open: a WebSocket that never speaks, and a raw connection to the enclave that
        // stops mid-frame.
        idle_ws.push(ws(&s).await);
        let mut raw = TcpStream::connect(s.enclave_addr).await.unwrap();
        raw.write_all(&[0, 0, 1]).await.unwrap();
        idle_tcp.push(raw);
    }
    chat_works(&s).await;

    // A frame header announcing 4 GiB straight at the enclave: refused, connection closed.
    let mut huge = TcpStream::connect(s.enclave_addr).await.unwrap();
    huge.write_all(&[0xFF, 0xFF, 0xFF, 0xFF]).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(10), huge.read(&mut buf))
        .await
        .expect("closed promptly");
    assert!(matches!(n, Ok(0) | Err(_)));

    // Garbage instead of HTTP at the server.
    let addr = s.url.trim_start_matches("http://");
    let mut http = TcpStream::connect(addr).await.unwrap();
    http.write_all(b"\x00\x01\x02 NOT HTTP\r\n\r\n")
        .await
        .unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), http.read(&mut buf)).await;

    chat_works(&s).await;
    drop((idle_ws, idle_tcp));
}
