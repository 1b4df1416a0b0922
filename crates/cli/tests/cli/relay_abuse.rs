//! The relay under abuse in front of a real enclave (simulated platform, tiny model), on the
//! real server with its default limits: one network opening relays in a loop gets its share
//! and another still chats; a client that sends and never reads what comes back is stopped by
//! backpressure after a bounded number of bytes, whatever it offers, while others still chat;
//! and a relay that stops reading holds its enclave session only until the stall limit.
//! The trusted proxy header plays the other networks from one loopback address.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use sotto_channel::frame::{self, Decoder};
use sotto_channel::handshake::{ClientHandshake, Expectations};
use sotto_channel::messages::{ErrorKind, GenParams, Role, ServerMessage, WireMessage};
use sotto_channel::Session;
use sotto_enclave::{SessionLimits, Shaping};
use sotto_server::{RelayLimits, ServerConfig};
use sotto_testkit::memory_kib;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use zeroize::Zeroizing;

use crate::common;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a step may take before the test calls the stack hung; not a measure of speed.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

struct Stack {
    _data_dir: tempfile::TempDir,
    url: String,
    relay: String,
    policy: sotto_verify::Policy,
    releases: sotto_release::ReleaseSet,
}

/// The enclave behind the real server (`serve`, its limits and connection info), which takes
/// the client's address from `X-Forwarded-For`.
async fn stack() -> Stack {
    let data_dir = tempfile::tempdir().unwrap();
    let enclave = common::boot_tiny(data_dir.path()).await;
    let log = common::dev_log(data_dir.path(), &enclave).await;
    let enclave_addr = common::start_enclave(enclave).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let mut config = ServerConfig::new(enclave_addr);
    config.log_dir = Some(log.public_dir.clone());
    config.trusted_proxy_header = Some("x-forwarded-for".parse().unwrap());
    tokio::spawn(sotto_server::serve(listener, config));
    let url = format!("http://{addr}");
    let policy = common::policy(data_dir.path());
    let releases = common::releases(&url, &log.trust, &data_dir.path().join("client")).await;
    Stack {
        _data_dir: data_dir,
        relay: sotto::client::relay_url(&url).unwrap(),
        url,
        policy,
        releases,
    }
}

/// A relay opened from `address`.
async fn open_from(relay: &str, address: &str) -> Ws {
    let mut request = relay.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("x-forwarded-for", HeaderValue::from_str(address).unwrap());
    tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(request))
        .await
        .expect("the server answers the upgrade")
        .expect("upgraded")
        .0
}

/// The next binary message, or the close frame's code and reason.
async fn answer(ws: &mut Ws) -> Result<Vec<u8>, (u16, String)> {
    loop {
        let msg = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("the relay neither answered nor closed");
        match msg {
            Some(Ok(Message::Binary(b))) => return Ok(b.to_vec()),
            Some(Ok(Message::Close(Some(f)))) => {
                return Err((u16::from(f.code), f.reason.to_string()))
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("the relay ended without a close reason: {other:?}"),
        }
    }
}

/// A chat as `sotto chat` has it, from the loopback address itself.
async fn chats(s: &Stack) {
    chats_at(&s.url, &s.policy, &s.releases).await;
}

async fn chats_at(url: &str, policy: &sotto_verify::Policy, releases: &sotto_release::ReleaseSet) {
    let mut conn = common::connect(url, policy, releases)
        .await
        .expect("verified and admitted");
    let stats = conn
        .chat(
            &[WireMessage {
                role: Role::User,
                content: Zeroizing::new("hello".into()),
            }],
            GenParams {
                max_tokens: 4,
                ..GenParams::default()
            },
            &mut |_| {},
        )
        .await
        .expect("the chat is answered");
    assert!(stats.generated_tokens > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_network_opening_relays_in_a_loop_does_not_stop_another_from_chatting() {
    let s = stack().await;
    let share = RelayLimits::default().per_client;
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..2 * share {
        let mut ws = open_from(&s.relay, "203.0.113.9").await;
        let (_, hello) = ClientHandshake::start().unwrap();
        ws.send(Message::Binary(hello.0.into())).await.unwrap();
        match answer(&mut ws).await {
            // The enclave answered: this relay holds a session.
            Ok(_) => held.push(ws),
            Err((code, reason)) => {
                assert_eq!(code, 1013, "{reason}");
                assert!(
                    reason.contains("too many relays from your network"),
                    "{reason}"
                );
                refused += 1;
            }
        }
    }
    assert_eq!((held.len(), refused), (share, share));
    // While that network holds all it may, another chats.
    tokio::time::timeout(PATIENCE, chats(&s))
        .await
        .expect("the other network's chat finished");
}

/// A relay through which `attest` verified the enclave and the release log admitted it.
async fn attested(s: &Stack) -> (Ws, Session) {
    let mut ws = open_from(&s.relay, "198.51.100.20").await;
    let (handshake, hello) = ClientHandshake::start().unwrap();
    ws.send(Message::Binary(hello.0.into())).await.unwrap();
    let reply = answer(&mut ws).await.expect("the enclave answers");
    let (session, _) = handshake
        .read_response(&reply)
        .unwrap()
        .verify(&s.policy, &Expectations::default(), sotto::client::now())
        .expect("the evidence verifies")
        .admit(&s.releases)
        .expect("the release is logged");
    (ws, session)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_client_never_reads_is_stopped_by_backpressure() {
    // Each request is a sealed message that is not a chat request, which the enclave answers
    // at once with an error: an answer per request, as cheap as can be, and never read.
    const OFFERED: usize = 1_000_000;
    let s = stack().await;
    let before = memory_kib();
    let (mut ws, mut session) = attested(&s).await;
    let mut sent = 0usize;
    let mut bytes = 0usize;
    let blocked = 'offer: loop {
        if sent == OFFERED {
            break false;
        }
        for part in session.seal(b"not a request").unwrap() {
            bytes += part.len();
            let send = ws.send(Message::Binary(part.into()));
            // A send that cannot finish: the relay stopped reading, because the enclave stopped
            // reading, because its answers have nowhere to go.
            match tokio::time::timeout(std::time::Duration::from_secs(3), send).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("the relay closed a client that only sent: {e}"),
                Err(_) => break 'offer true,
            }
        }
        sent += 1;
    };
    let during = memory_kib();
    assert!(
        blocked,
        "all {OFFERED} requests were taken, their answers unread"
    );
    // What was taken sits in the sockets' kernel buffers and a message or two per hop.
    assert!(
        bytes < 64 * 1024 * 1024,
        "{bytes} bytes were taken from a client that never reads"
    );
    // The enclave and the relay serve everyone else meanwhile.
    tokio::time::timeout(PATIENCE, chats(&s))
        .await
        .expect("another chat finished while one client does not read");
    println!(
        "a client that never reads: {sent} requests ({bytes} bytes, {:.1} MiB) taken before \
         backpressure stopped it, of {OFFERED} offered; this process's memory (VmRSS, VmHWM, \
         KiB) before {before:?}, stalled {during:?}",
        bytes as f64 / (1024.0 * 1024.0)
    );
}

/// The next length-prefixed frame from the enclave.
async fn read_frame(stream: &mut TcpStream, decoder: &mut Decoder) -> Vec<u8> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Some(f) = decoder.next_frame().unwrap() {
            return f;
        }
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("the enclave answers")
            .unwrap();
        assert!(n > 0, "the enclave closed before answering");
        decoder.push(&buf[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_stops_reading_holds_its_enclave_session_only_until_the_stall_limit() {
    let data_dir = tempfile::tempdir().unwrap();
    let enclave = common::boot_tiny(data_dir.path()).await;
    let releases = common::releases_listing(&common::release_of(&enclave, None));
    let policy = common::policy(data_dir.path());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let enclave_addr = listener.local_addr().unwrap();
    let limits = SessionLimits {
        send_stall: std::time::Duration::from_secs(2),
        ..SessionLimits::DEFAULT
    };
    tokio::spawn(sotto_enclave::serve_with(
        std::sync::Arc::new(enclave),
        listener,
        Shaping::DEFAULT,
        limits,
    ));

    // A relay of its own making: the handshake, then requests whose answers it never reads.
    let mut relay = TcpStream::connect(enclave_addr).await.unwrap();
    let (handshake, hello) = ClientHandshake::start().unwrap();
    relay
        .write_all(&frame::encode(&hello.0).unwrap())
        .await
        .unwrap();
    let mut decoder = Decoder::new();
    let reply = read_frame(&mut relay, &mut decoder).await;
    let (mut session, _) = handshake
        .read_response(&reply)
        .unwrap()
        .verify(&policy, &Expectations::default(), sotto::client::now())
        .expect("the evidence verifies")
        .admit(&releases)
        .expect("the release is listed");
    // A request that is not one is answered, and the session goes on: so the only way the
    // flood below can end is the enclave giving up on a session that does not read.
    for part in session.seal(b"not a request").unwrap() {
        relay
            .write_all(&frame::encode(&part).unwrap())
            .await
            .unwrap();
    }
    let answer = session
        .open(&read_frame(&mut relay, &mut decoder).await)
        .unwrap()
        .expect("a one-part answer");
    assert!(matches!(
        ServerMessage::decode(&answer).unwrap(),
        ServerMessage::Error {
            kind: ErrorKind::BadRequest,
            ..
        }
    ));
    let mut written = 0usize;
    let flood = async {
        loop {
            for part in session.seal(b"not a request").unwrap() {
                let framed = frame::encode(&part).unwrap();
                if let Err(e) = relay.write_all(&framed).await {
                    return e;
                }
                written += framed.len();
            }
        }
    };
    // Without the stall limit the enclave would wait on this session for ever, and so would
    // the flood.
    let ended = tokio::time::timeout(PATIENCE, flood)
        .await
        .expect("the enclave held on to a session whose relay never reads");
    println!(
        "a relay that never reads: {written} bytes of requests taken before the enclave \
         stopped reading them; then the enclave ended the session ({ended})"
    );

    // The enclave serves everyone else as before.
    let url = common::start_server(enclave_addr).await;
    tokio::time::timeout(PATIENCE, chats_at(&url, &policy, &releases))
        .await
        .expect("a chat after the stalled session finished");
}
