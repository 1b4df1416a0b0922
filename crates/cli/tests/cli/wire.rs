//! What the wire carries: the WebSocket bytes between the client and the server, recorded by a
//! TCP proxy in between, for a 64-token answer from an enclave that shapes its messages
//! (padding to buckets, pieces coalesced on a tick) and from one that does not; a chat through
//! an independent hop (`sotto hop`); and what a client says to an enclave of the previous
//! protocol.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::common::{
    boot_tiny, connect, dev_log, policy, releases, releases_listing, start_server,
    start_server_with_log,
};
use sotto::client::ClientError;
use sotto_channel::frame::Decoder;
use sotto_channel::handshake::HELLO_LEN;
use sotto_channel::messages::{GenParams, Role, ServerMessage, WireMessage};
use sotto_channel::transport::BUCKETS;
use sotto_enclave::Shaping;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zeroize::Zeroizing;

/// Bytes a channel message gains on the wire unpadded: the chunk's flag and u16 length, and
/// the AEAD tag.
const UNPADDED_OVERHEAD: usize = 3 + 16;
const TOKENS: u32 = 64;

/// The bytes of one TCP connection, each direction on its own.
#[derive(Default)]
struct Recording {
    up: Vec<u8>,
    down: Vec<u8>,
}

/// A TCP proxy in front of `target` that records every connection.
async fn recorder(target: SocketAddr) -> (String, Arc<Mutex<Vec<Arc<Mutex<Recording>>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let all: Arc<Mutex<Vec<Arc<Mutex<Recording>>>>> = Arc::default();
    let conns = all.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(target).await.unwrap();
            let rec = Arc::new(Mutex::new(Recording::default()));
            conns.lock().unwrap().push(rec.clone());
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(copy(cr, sw, rec.clone(), true));
            tokio::spawn(copy(sr, cw, rec, false));
        }
    });
    (url, all)
}

async fn copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    rec: Arc<Mutex<Recording>>,
    up: bool,
) {
    let mut buf = vec![0u8; 65536];
    while let Ok(n @ 1..) = from.read(&mut buf).await {
        {
            let mut r = rec.lock().unwrap();
            if up { &mut r.up } else { &mut r.down }.extend_from_slice(&buf[..n]);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
    let _ = to.shutdown().await;
}

/// The payload lengths of the binary WebSocket frames (RFC 6455, section 5.2) in one direction
/// of a recorded connection, after its HTTP upgrade.
fn binary_frames(bytes: &[u8]) -> Vec<usize> {
    let start = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut rest = &bytes[start..];
    let mut lengths = Vec::new();
    while rest.len() >= 2 {
        let opcode = rest[0] & 0x0f;
        let masked = rest[1] & 0x80 != 0;
        let (len, mut at) = match rest[1] & 0x7f {
            126 => (usize::from(u16::from_be_bytes([rest[2], rest[3]])), 4),
            127 => (
                usize::try_from(u64::from_be_bytes(rest[2..10].try_into().unwrap())).unwrap(),
                10,
            ),
            n => (usize::from(n), 2),
        };
        if masked {
            at += 4;
        }
        if opcode == 2 {
            lengths.push(len);
        }
        rest = &rest[at + len..];
    }
    lengths
}

/// Runs one 64-token answer through the recorder; returns the pieces the client received and
/// the binary frame lengths each way on the relay connection.
async fn answer(shaping: Shaping) -> (Vec<String>, Vec<usize>, Vec<usize>) {
    let dir = tempfile::tempdir().unwrap();
    let enclave = boot_tiny(dir.path()).await;
    let log = dev_log(dir.path(), &enclave).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let enclave_addr = listener.local_addr().unwrap();
    tokio::spawn(sotto_enclave::serve_shaped(
        Arc::new(enclave),
        listener,
        shaping,
    ));
    let url = start_server_with_log(enclave_addr, Some(log.public_dir.clone())).await;
    let found = releases(&url, &log.trust, &dir.path().join("client")).await;
    let server: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let (via, recordings) = recorder(server).await;

    let mut conn = connect(&via, &policy(dir.path()), &found).await.unwrap();
    let question = WireMessage {
        role: Role::User,
        content: Zeroizing::new("tell me a long story".into()),
    };
    let params = GenParams {
        max_tokens: TOKENS,
        ..GenParams::default()
    };
    let mut pieces = Vec::new();
    let stats = conn
        .chat(&[question], params, &mut |p| pieces.push(p.to_string()))
        .await
        .unwrap();
    assert_eq!(stats.generated_tokens, TOKENS, "{stats:?}");
    conn.close().await;

    let recordings = recordings.lock().unwrap();
    let [relay] = &recordings[..] else {
        panic!("the client opened {} connections", recordings.len());
    };
    let relay = relay.lock().unwrap();
    (pieces, binary_frames(&relay.up), binary_frames(&relay.down))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn padded_answers_hide_token_lengths_that_unpadded_ones_show() {
    let (pieces, up, down) = answer(Shaping::DEFAULT).await;
    // The hello carries the ML-KEM key; the answer to it, the ciphertext and the evidence.
    assert_eq!(up[0], HELLO_LEN);
    let (after_up, after_down) = (&up[1..], &down[1..]);
    assert!(after_up.iter().all(|l| BUCKETS.contains(l)), "{after_up:?}");
    assert!(
        after_down.iter().all(|l| BUCKETS.contains(l)),
        "{after_down:?}"
    );
    let mut distinct: Vec<usize> = after_up.iter().chain(after_down).copied().collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() <= 3, "{distinct:?}");
    // One frame per coalesced message, and the last one the end of the answer.
    assert_eq!(after_down.len(), pieces.len() + 1);

    // The same answer unshaped: one frame per piece the engine produced (a token, or a few
    // whose bytes complete one character), and each frame's length is its piece's.
    let (unshaped, _, down) = answer(Shaping::UNSHAPED).await;
    assert_eq!(
        unshaped.concat(),
        pieces.concat(),
        "greedy decoding, the same answer"
    );
    let tokens = &down[1..down.len() - 1];
    let expected: Vec<usize> = unshaped
        .iter()
        .map(|p| {
            let message = ServerMessage::Token(Zeroizing::new(p.clone())).encode();
            message.len() + UNPADDED_OVERHEAD
        })
        .collect();
    assert_eq!(tokens, expected);
    let mut distinct = tokens.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(
        distinct.len() > 3,
        "the tiny model's tokens vary in length: {distinct:?}"
    );
}

/// An enclave of protocol v2 reads the hello, cannot make sense of it and hangs up: the client
/// says so at once, naming the protocol it speaks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enclave_of_the_previous_protocol_is_named_not_waited_for() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hellos: Arc<Mutex<Vec<usize>>> = Arc::default();
    let seen = hellos.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut decoder = Decoder::new();
            let mut buf = vec![0u8; 4096];
            while let Ok(n @ 1..) = stream.read(&mut buf).await {
                decoder.push(&buf[..n]);
                if let Ok(Some(hello)) = decoder.next_frame() {
                    seen.lock().unwrap().push(hello.len());
                    break;
                }
            }
        }
    });
    let url = start_server(addr).await;
    let dir = tempfile::tempdir().unwrap();
    let enclave = boot_tiny(dir.path()).await;
    let releases = releases_listing(&crate::common::release_of(&enclave, None));
    let err = connect(&url, &policy(dir.path()), &releases)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ClientError::Unanswered(_)), "{err}");
    assert!(err.to_string().contains("sotto/channel/v3"), "{err}");
    assert_eq!(*hellos.lock().unwrap(), [HELLO_LEN]);
}

/// Serves a hop in front of the server at `server_url`; returns the hop's URL.
async fn start_hop(server_url: &str) -> String {
    let upstream = sotto::client::relay_url(server_url).unwrap();
    let router = sotto_hop::router(sotto_hop::HopConfig::new(upstream)).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// A chat through a hop works; between the hop and the server there is no trace of the
/// user's request headers or of the conversation, only the channel's encrypted messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_through_a_hop_shows_the_server_nothing_of_the_client() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let dir = tempfile::tempdir().unwrap();
    let enclave = boot_tiny(dir.path()).await;
    let log = dev_log(dir.path(), &enclave).await;
    let enclave_addr = crate::common::start_enclave(enclave).await;
    let url = start_server_with_log(enclave_addr, Some(log.public_dir.clone())).await;
    let found = releases(&url, &log.trust, &dir.path().join("client")).await;
    let server: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let (to_server, upstream) = recorder(server).await;
    let hop = start_hop(&to_server).await;

    // What a browser would send the hop: a cookie, its Origin, a forwarded-for header.
    let mut request = sotto::client::relay_url(&hop)
        .unwrap()
        .into_client_request()
        .unwrap();
    for (name, value) in [
        ("cookie", "__Host-sotto-session=SESSION-CANARY"),
        ("origin", "https://user.example"),
        ("x-forwarded-for", "203.0.113.7"),
        ("user-agent", "UA-CANARY"),
    ] {
        request.headers_mut().insert(name, value.parse().unwrap());
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let (_, hello) = sotto_channel::ClientHandshake::start().unwrap();
    ws.send(Message::Binary(hello.0.into())).await.unwrap();
    let answer = ws.next().await.unwrap().unwrap();
    assert!(
        answer.len() > sotto_channel::pq::CIPHERTEXT_LEN,
        "the enclave answered"
    );
    drop(ws);

    let mut conn = connect(&hop, &policy(dir.path()), &found).await.unwrap();
    let canary = "HOP-CANARY-7d1f";
    let question = WireMessage {
        role: Role::User,
        content: Zeroizing::new(format!("remember {canary}")),
    };
    let mut answer = String::new();
    conn.chat(&[question], GenParams::default(), &mut |p| {
        answer.push_str(p)
    })
    .await
    .unwrap();
    assert!(!answer.is_empty());
    conn.close().await;

    let upstream = upstream.lock().unwrap();
    assert_eq!(
        upstream.len(),
        2,
        "the hop opened one upstream connection per client"
    );
    for rec in upstream.iter() {
        let rec = rec.lock().unwrap();
        let head_end = rec.up.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&rec.up[..head_end]).to_lowercase();
        for absent in [
            "cookie",
            "origin",
            "x-forwarded-for",
            "203.0.113.7",
            "ua-canary",
        ] {
            assert!(
                !head.contains(absent),
                "{absent} reached the server: {head}"
            );
        }
        for bytes in [&rec.up, &rec.down] {
            assert!(!bytes.windows(canary.len()).any(|w| w == canary.as_bytes()));
        }
    }
}
