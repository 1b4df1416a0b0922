//! The relay under abuse, on the real server over loopback sockets, with short limits: one
//! network opening relays in a loop gets its share and no more while another still relays;
//! pings do not keep a relay open, nor does anything past its lifetime; a relay whose enclave
//! does not answer the handshake is closed at the deadline; a browser page from another site
//! gets no relay; and a client that never reads holds a bounded number of bytes, however much
//! the enclave sends, until the write-stall limit lets the enclave go. Each refusal is checked
//! for its close code and reason.
//!
//! The "enclaves" here are plain TCP servers (an echo, a flood): the relay never looks inside
//! a frame, and these make each direction's behaviour visible.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod common;

use common::echo;
use futures_util::{SinkExt, StreamExt};
use sotto_channel::frame;
use sotto_server::{serve, ConnectionLimits, RelayLimits, ServerConfig};
use sotto_testkit::memory_kib;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longer than any limit set here: how long a test waits for something before it calls the
/// server hung. Not a measure of speed.
const PATIENCE: Duration = Duration::from_secs(30);

fn limits() -> RelayLimits {
    RelayLimits {
        max_total: 6,
        per_client: 3,
        handshake: Duration::from_secs(1),
        idle: Duration::from_secs(2),
        lifetime: Duration::from_secs(600),
        allowed_origins: vec!["https://chat.example".into()],
    }
}

/// The real server in front of `enclave`, with `relay` limits and, if named, a trusted proxy
/// header through which a test plays many client networks from one loopback address.
async fn server(enclave: SocketAddr, relay: RelayLimits, proxy: Option<&'static str>) -> String {
    server_stalling(
        enclave,
        relay,
        proxy,
        ConnectionLimits::default().write_stall,
    )
    .await
}

async fn server_stalling(
    enclave: SocketAddr,
    relay: RelayLimits,
    proxy: Option<&'static str>,
    write_stall: Duration,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = ServerConfig::new(enclave);
    config.relay = relay;
    config.connections.write_stall = write_stall;
    config.trusted_proxy_header = proxy.map(HeaderName::from_static);
    tokio::spawn(serve(listener, config));
    format!("ws://{addr}/v1/relay")
}

/// Opens a relay with the given request headers.
async fn open(url: &str, headers: &[(&'static str, &str)]) -> Result<Ws, StatusCode> {
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    match tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(request))
        .await
        .expect("the server answers the upgrade")
    {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status()),
        Err(e) => panic!("the upgrade failed other than by an HTTP refusal: {e}"),
    }
}

fn from(address: &str) -> [(&'static str, &str); 1] {
    [("x-forwarded-for", address)]
}

/// Sends one binary message and reads it back through the echo.
async fn round_trip(ws: &mut Ws, payload: &[u8]) {
    ws.send(Message::Binary(payload.to_vec().into()))
        .await
        .expect("the relay takes a message");
    let back = next(ws).await.expect("the relay is open");
    assert_eq!(back, Message::Binary(payload.to_vec().into()));
}

/// The next message other than a pong, or `None` once the socket ended without a close frame.
async fn next(ws: &mut Ws) -> Option<Message> {
    loop {
        match tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("the relay neither answered nor closed")
        {
            Some(Ok(Message::Pong(_))) => continue,
            Some(Ok(m)) => return Some(m),
            Some(Err(_)) | None => return None,
        }
    }
}

/// Reads until the relay closes; its close code and reason.
async fn closed(ws: &mut Ws) -> (u16, String) {
    loop {
        match next(ws).await {
            Some(Message::Close(Some(frame))) => {
                return (u16::from(frame.code), frame.reason.to_string())
            }
            Some(Message::Close(None)) | None => panic!("the relay closed without a reason"),
            Some(_) => {}
        }
    }
}

/// Pings every `spacing` until the relay closes; its close code and reason.
async fn closed_while_pinging(ws: Ws, spacing: Duration) -> (u16, String) {
    let (mut tx, mut rx) = ws.split();
    let mut tick = tokio::time::interval(spacing);
    loop {
        tokio::select! {
            msg = rx.next() => match msg {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (u16::from(frame.code), frame.reason.to_string())
                }
                Some(Ok(Message::Pong(_))) => {}
                other => panic!("expected pongs and then a close frame, got {other:?}"),
            },
            _ = tick.tick() => {
                let _ = tx.send(Message::Ping(b"still here".to_vec().into())).await;
            }
        }
    }
}

#[tokio::test]
async fn one_network_in_a_loop_gets_its_share_and_others_still_relay() {
    let limits = limits();
    let url = server(echo().await, limits.clone(), Some("x-forwarded-for")).await;
    let mut held = Vec::new();
    let mut refused = Vec::new();
    for i in 0..20 {
        let mut ws = open(&url, &from("203.0.113.9")).await.expect("upgraded");
        if held.len() < limits.per_client {
            round_trip(&mut ws, format!("mine {i}").as_bytes()).await;
            held.push(ws);
        } else {
            refused.push(closed(&mut ws).await);
        }
    }
    assert_eq!(held.len(), limits.per_client);
    for (code, reason) in &refused {
        assert_eq!(*code, 1013, "{reason}");
        assert!(
            reason.contains("too many relays from your network"),
            "{reason}"
        );
    }
    // Any other network is counted apart.
    let mut other = open(&url, &from("198.51.100.7")).await.unwrap();
    round_trip(&mut other, b"another network relays").await;
    for ws in &mut held {
        round_trip(ws, b"and the first network's relays still work").await;
    }
    // The whole server's cap holds too: three networks fill the remaining places.
    let mut third = open(&url, &from("2001:db8:1:2::1")).await.unwrap();
    round_trip(&mut third, b"a sixth relay").await;
    // The same /64 is one network, with its own share.
    let mut neighbour = open(&url, &from("2001:db8:1:2::2")).await.unwrap();
    round_trip(&mut neighbour, b"a seventh relay would be one too many").await;
    let mut seventh = open(&url, &from("192.0.2.1")).await.unwrap();
    let (code, reason) = closed(&mut seventh).await;
    assert_eq!(code, 1013, "{reason}");
    assert!(reason.contains("at capacity"), "{reason}");
    // A relay that goes frees its place.
    drop(held.pop());
    let mut later = None;
    for _ in 0..100 {
        let mut ws = open(&url, &from("203.0.113.9")).await.unwrap();
        ws.send(Message::Binary(b"again".to_vec().into()))
            .await
            .unwrap();
        match next(&mut ws).await {
            Some(Message::Binary(b)) if b.as_ref() == b"again" => {
                later = Some(ws);
                break;
            }
            // The server had not yet counted the dropped relay out.
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(later.is_some(), "a freed place was never given again");
}

#[tokio::test]
async fn pings_do_not_keep_a_relay_open_but_binary_messages_do() {
    let limits = limits();
    let url = server(echo().await, limits.clone(), None).await;

    let mut busy = open(&url, &[]).await.unwrap();
    // Binary messages for twice the idle limit, well inside it apart: the relay stays open.
    let spacing = limits.idle / 10;
    for i in 0..20 {
        round_trip(&mut busy, format!("message {i}").as_bytes()).await;
        tokio::time::sleep(spacing).await;
    }

    let mut pinging = open(&url, &[]).await.unwrap();
    round_trip(&mut pinging, b"hello").await;
    let (code, reason) = tokio::time::timeout(PATIENCE, closed_while_pinging(pinging, spacing))
        .await
        .unwrap_or_else(|_| panic!("pings kept the relay open for {PATIENCE:?}"));
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.starts_with("idle"), "{reason}");
    // The busy relay, left alone since, idled out the same way.
    let (code, reason) = closed(&mut busy).await;
    assert_eq!((code, reason.starts_with("idle")), (1008, true), "{reason}");
}

#[tokio::test]
async fn a_relay_lives_no_longer_than_its_lifetime_however_busy() {
    let mut limits = limits();
    limits.lifetime = Duration::from_secs(2);
    let url = server(echo().await, limits.clone(), None).await;
    let mut ws = open(&url, &[]).await.unwrap();
    let end = tokio::time::timeout(PATIENCE, async {
        loop {
            if ws
                .send(Message::Binary(b"busy".to_vec().into()))
                .await
                .is_err()
            {
                break closed(&mut ws).await;
            }
            match next(&mut ws).await {
                Some(Message::Binary(_)) => tokio::time::sleep(limits.idle / 10).await,
                Some(Message::Close(Some(frame))) => {
                    break (u16::from(frame.code), frame.reason.to_string())
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await
    .expect("the relay outlived its lifetime");
    assert_eq!(end.0, 1008, "{}", end.1);
    assert!(end.1.contains("lifetime"), "{}", end.1);
}

#[tokio::test]
async fn a_relay_without_the_enclaves_answer_closes_at_the_handshake_deadline() {
    let url = server(echo().await, limits(), None).await;
    // Never sends its hello, so the echo never answers.
    let mut silent = open(&url, &[]).await.unwrap();
    let (code, reason) = closed(&mut silent).await;
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("did not answer the handshake"), "{reason}");

    // An enclave that takes the hello and never answers: the same.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mute = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let url = server(mute, limits(), None).await;
    let mut ws = open(&url, &[]).await.unwrap();
    ws.send(Message::Binary(b"hello".to_vec().into()))
        .await
        .unwrap();
    let (code, reason) = closed(&mut ws).await;
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("did not answer the handshake"), "{reason}");
}

#[tokio::test]
async fn browser_pages_from_other_origins_get_no_relay() {
    let url = server(echo().await, limits(), None).await;
    let own = url
        .trim_start_matches("ws://")
        .trim_end_matches("/v1/relay")
        .to_owned();
    for origin in [
        "https://evil.example",
        "null",
        "http://localhost.evil.example",
        // The server's host on another port is another site.
        &format!("http://{}:1", own.split(':').next().unwrap()),
    ] {
        let refused = open(&url, &[("origin", origin)]).await.err();
        assert_eq!(refused, Some(StatusCode::FORBIDDEN), "Origin {origin}");
    }
    for origin in [
        format!("http://{own}"),
        format!("HTTP://{}", own.to_uppercase()),
        "https://chat.example".into(),
    ] {
        let mut ws = open(&url, &[("origin", &origin)]).await.unwrap();
        round_trip(&mut ws, origin.as_bytes()).await;
    }
    // Clients that are not browsers send no Origin.
    let mut cli = open(&url, &[]).await.unwrap();
    round_trip(&mut cli, b"no origin").await;
}

#[tokio::test]
async fn a_client_that_never_reads_holds_bounded_memory_until_the_write_stall_ends_it() {
    // The enclave offers this much; a relay that buffered for a client that does not read
    // would take it all.
    const OFFERED: u64 = 512 * 1024 * 1024;
    let written = Arc::new(AtomicU64::new(0));
    let (ended_tx, ended_rx) = tokio::sync::oneshot::channel();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let flood = listener.local_addr().unwrap();
    let counter = written.clone();
    tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        // Later relays get an echo, to show they are not held up by the stalled one.
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = conn.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        let chunk = frame::encode(&[0x5a; 60_000]).unwrap();
        let mut sent = 0u64;
        let end = loop {
            if sent >= OFFERED {
                break "everything was taken";
            }
            if conn.write_all(&chunk).await.is_err() {
                break "the relay let go";
            }
            sent += chunk.len() as u64;
            counter.store(sent, Ordering::Relaxed);
        };
        let _ = ended_tx.send(end);
    });
    let write_stall = Duration::from_secs(4);
    let url = server_stalling(flood, limits(), None, write_stall).await;
    let before = memory_kib();
    let _never_read = open(&url, &[]).await.unwrap();

    // Wait until the enclave's writes stop making progress: the backpressure reached it.
    let mut last = 0;
    let stalled_at = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = written.load(Ordering::Relaxed);
        if now == last && now > 0 {
            break now;
        }
        assert!(now < OFFERED, "the relay took all {OFFERED} bytes offered");
        last = now;
    };
    let during = memory_kib();
    // Bounded: the relay's chunk and message, and the kernel's socket buffers on both
    // loopback connections, which Linux grows to a few MiB each.
    assert!(
        stalled_at < 64 * 1024 * 1024,
        "{stalled_at} bytes were taken for a client that never reads"
    );
    // Another relay is not held up by the stalled one.
    let mut other = open(&url, &[]).await.unwrap();
    round_trip(&mut other, b"unaffected").await;
    let end = tokio::time::timeout(PATIENCE, ended_rx)
        .await
        .expect("the stalled relay held on to the enclave")
        .unwrap();
    assert_eq!(end, "the relay let go");
    let after = memory_kib();
    println!(
        "a client that never reads: the enclave wrote {stalled_at} bytes ({:.1} MiB, of \
         {} MiB offered) before backpressure stopped it; this process's memory (VmRSS, VmHWM, \
         KiB) before {before:?}, stalled {during:?}, after {after:?}",
        stalled_at as f64 / (1024.0 * 1024.0),
        OFFERED / (1024 * 1024),
    );
}
