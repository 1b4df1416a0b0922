//! The enclave's network face: one task per connection, Noise responder, chat requests.
//!
//! Connections arrive from the untrusted relay. Every read is bounded in size and time, and so
//! is every write: a peer that stops reading (a client that never reads its answer, through a
//! relay that passes the backpressure on) holds its session's few buffers and the generation
//! slot only until [`SessionLimits::send_stall`], never memory that grows. Sessions are capped in number, any
//! framing or decryption failure ends that session only, and a failing session never affects
//! another.
//!
//! What the relay may learn from the shape of an answer is bounded here ([`Shaping`]): the
//! pieces the engine produces within one tick travel as one message, and every message is
//! padded to a bucket, so the frames show how long an answer took and roughly how long it was,
//! never the length of a token (the token-length attack of Weiss et al., USENIX Security 2024).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sotto_channel::frame::{self, Decoder};
use sotto_channel::messages::{
    ClientMessage, ErrorKind, GenParams, Role, ServerMessage, Stats, Stop, WireMessage,
};
use sotto_channel::{ChannelError, Padding, ServerHandshake, Session};
use sotto_engine::{ChatMessage, EngineError, StopReason};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tracing::{info, warn};

use crate::Enclave;

/// Sessions served at once; further connections wait in the listener's backlog. Each holds at
/// most a 64 KiB read buffer, a frame decoder (under 128 KiB), its channel state and one request
/// being reassembled (the channel's 8 MiB message limit): 512 of them, a few GiB at the very
/// worst, above the server's 256 relays by default.
const MAX_SESSIONS: usize = 512;
/// Upper bound on tokens one request may ask for; clients asking more get this many.
const MAX_TOKENS_CAP: u32 = 8192;
/// Pieces an answer may have ready before its session sends them; past that the conversation
/// waits for its reader (and the others decode on).
const PIECES_BUFFERED: usize = 64;

static SESSIONS: AtomicU64 = AtomicU64::new(0);

/// How long a session may wait on its peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    /// For the client's hello, from the connection.
    pub handshake: Duration,
    /// For the next request.
    pub idle: Duration,
    /// The longest one frame may take to write. Past it the peer is taken to have stopped
    /// reading, and the session ends: the engine stops at its next token and frees its
    /// generation slot.
    pub send_stall: Duration,
}

impl SessionLimits {
    /// The stall limit is longer than the server's own write-stall limit (60 s), so a client
    /// that stops reading is closed there first, with a reason it can read.
    pub const DEFAULT: SessionLimits = SessionLimits {
        handshake: Duration::from_secs(15),
        idle: Duration::from_secs(600),
        send_stall: Duration::from_secs(90),
    };
}

/// How the enclave shapes the messages it sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shaping {
    pub padding: Padding,
    /// Pieces of an answer produced within this long of the first travel together.
    pub tick: Duration,
}

impl Shaping {
    /// Padded, and a message at most every 50 ms: a 30-60 token/s model puts 2-3 tokens in a
    /// message, and the first piece waits at most one tick (docs/BENCHMARKS.md).
    pub const DEFAULT: Shaping = Shaping {
        padding: Padding::Buckets,
        tick: Duration::from_millis(50),
    };
    /// A message per piece, unpadded: only to measure what shaping costs and to show, in a
    /// test, what it hides. No command of the `sotto` binary serves this way.
    pub const UNSHAPED: Shaping = Shaping {
        padding: Padding::Off,
        tick: Duration::ZERO,
    };
}

/// Serves connections until the listener fails. Each connection is independent.
pub async fn serve(enclave: Arc<Enclave>, listener: TcpListener) -> std::io::Result<()> {
    serve_shaped(enclave, listener, Shaping::DEFAULT).await
}

/// [`serve`] with the given [`Shaping`].
pub async fn serve_shaped(
    enclave: Arc<Enclave>,
    listener: TcpListener,
    shaping: Shaping,
) -> std::io::Result<()> {
    serve_with(enclave, listener, shaping, SessionLimits::DEFAULT).await
}

/// [`serve`] with the given [`Shaping`] and [`SessionLimits`].
pub async fn serve_with(
    enclave: Arc<Enclave>,
    listener: TcpListener,
    shaping: Shaping,
    limits: SessionLimits,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(MAX_SESSIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return Ok(());
        };
        let (stream, _) = listener.accept().await?;
        let enclave = enclave.clone();
        let id = SESSIONS.fetch_add(1, Ordering::Relaxed) + 1;
        tokio::spawn(async move {
            let _slot = slot;
            let started = Instant::now();
            match handle(enclave, stream, id, shaping, limits).await {
                Ok(requests) => info!(
                    session = id,
                    requests,
                    secs = started.elapsed().as_secs_f64(),
                    "session closed"
                ),
                Err(e) => warn!(session = id, error = %e, "session ended"),
            }
        });
    }
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("no evidence for this handshake: {0}")]
    Attest(String),
    #[error("{0}")]
    Channel(#[from] ChannelError),
    #[error("peer closed the connection mid-frame")]
    Truncated,
    #[error("timed out waiting for the peer")]
    Timeout,
    #[error("the peer stopped reading: a write stalled for {0:?}")]
    Stalled(Duration),
}

struct Conn {
    stream: TcpStream,
    send_stall: Duration,
    decoder: Decoder,
    buf: Vec<u8>,
}

impl Conn {
    /// The next frame, or `None` on a clean close between frames.
    async fn read_frame(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>, SessionError> {
        loop {
            if let Some(f) = self.decoder.next_frame()? {
                return Ok(Some(f));
            }
            let n = tokio::time::timeout(timeout, self.stream.read(&mut self.buf))
                .await
                .map_err(|_| SessionError::Timeout)??;
            if n == 0 {
                return if self.decoder.pending() == 0 {
                    Ok(None)
                } else {
                    Err(SessionError::Truncated)
                };
            }
            self.decoder.push(&self.buf[..n]);
        }
    }

    async fn write_frame(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        let framed = frame::encode(bytes)?;
        tokio::time::timeout(self.send_stall, self.stream.write_all(&framed))
            .await
            .map_err(|_| SessionError::Stalled(self.send_stall))??;
        Ok(())
    }

    async fn send(
        &mut self,
        session: &mut Session,
        msg: &ServerMessage,
    ) -> Result<(), SessionError> {
        for part in session.seal(&msg.encode())? {
            self.write_frame(&part).await?;
        }
        Ok(())
    }
}

async fn handle(
    enclave: Arc<Enclave>,
    stream: TcpStream,
    id: u64,
    shaping: Shaping,
    limits: SessionLimits,
) -> Result<u64, SessionError> {
    stream.set_nodelay(true)?;
    let mut conn = Conn {
        stream,
        send_stall: limits.send_stall,
        decoder: Decoder::new(),
        buf: vec![0u8; 64 * 1024],
    };
    let Some(hello) = conn.read_frame(limits.handshake).await? else {
        return Ok(0);
    };
    let hello = ServerHandshake::read_hello(&enclave.key, &hello)?;
    let nonce = *hello.nonce();
    let attesting = enclave.clone();
    // The attester blocks (a TSM report, or a signature): off the async workers.
    let payload = tokio::task::spawn_blocking(move || attesting.payload_for(&nonce))
        .await
        .map_err(|e| SessionError::Attest(format!("the attestation task failed: {e}")))?
        .map_err(|e| SessionError::Attest(e.to_string()))?;
    let (reply, mut session) = hello.respond(&payload)?;
    session.set_padding(shaping.padding);
    conn.write_frame(&reply).await?;
    info!(session = id, "handshake answered");

    let mut requests = 0u64;
    loop {
        let message = loop {
            let Some(f) = conn.read_frame(limits.idle).await? else {
                return Ok(requests);
            };
            if let Some(m) = session.open(&f)? {
                break m;
            }
        };
        let request = match ClientMessage::decode(&message) {
            Ok(r) => r,
            Err(_) => {
                let reply = ServerMessage::Error {
                    kind: ErrorKind::BadRequest,
                    message: "malformed request".into(),
                };
                conn.send(&mut session, &reply).await?;
                continue;
            }
        };
        requests += 1;
        match request {
            ClientMessage::Chat { messages, params } => {
                chat(
                    &enclave,
                    &mut conn,
                    &mut session,
                    id,
                    shaping.tick,
                    messages,
                    params,
                )
                .await?;
            }
        }
    }
}

fn validate(messages: &[WireMessage]) -> Result<(), &'static str> {
    match messages.last() {
        None => Err("the conversation is empty"),
        Some(m) if m.role != Role::User => Err("the last message must be the user's"),
        Some(_) => Ok(()),
    }
}

/// `first` and the pieces that follow it within `tick`, as one text.
async fn gather(
    rx: &mut mpsc::Receiver<zeroize::Zeroizing<String>>,
    first: zeroize::Zeroizing<String>,
    tick: Duration,
) -> zeroize::Zeroizing<String> {
    if tick.is_zero() {
        return first;
    }
    // Reserved up front: a String that grows leaves its old buffer behind unzeroed.
    let mut text = zeroize::Zeroizing::new(String::with_capacity(first.len().max(1024)));
    text.push_str(&first);
    let deadline = tokio::time::Instant::now() + tick;
    while let Ok(Some(piece)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        text.push_str(&piece);
    }
    text
}

fn engine_error(e: &EngineError) -> (ErrorKind, String) {
    match e {
        EngineError::ContextExceeded { .. } => (ErrorKind::ContextExceeded, e.to_string()),
        EngineError::InvalidParams(_) | EngineError::TemplateRejected(_) => {
            (ErrorKind::BadRequest, e.to_string())
        }
        EngineError::Busy => (ErrorKind::Busy, e.to_string()),
        _ => (ErrorKind::Internal, "the engine failed".to_string()),
    }
}

async fn chat(
    enclave: &Enclave,
    conn: &mut Conn,
    session: &mut Session,
    id: u64,
    tick: Duration,
    messages: Vec<WireMessage>,
    params: GenParams,
) -> Result<(), SessionError> {
    if let Err(why) = validate(&messages) {
        let reply = ServerMessage::Error {
            kind: ErrorKind::BadRequest,
            message: why.into(),
        };
        return conn.send(session, &reply).await;
    }
    let chat: Vec<ChatMessage> = messages
        .into_iter()
        .map(|m| ChatMessage {
            role: m.role,
            content: m.content,
        })
        .collect();
    let gen = sotto_engine::GenParams {
        max_tokens: params.max_tokens.min(MAX_TOKENS_CAP),
        temperature: params.temperature,
        top_p: params.top_p,
        top_k: None,
        // The sampler takes a 32-bit seed; folding keeps every bit of the client's choice.
        seed: params.seed.map(|s| (s ^ (s >> 32)) as u32),
    };
    let (pieces, mut rx) = mpsc::channel(PIECES_BUFFERED);
    let (done, finished) = oneshot::channel();
    let result = match enclave.backend.start(chat, gen, pieces, done).await {
        Ok(()) => {
            while let Some(first) = rx.recv().await {
                let text = gather(&mut rx, first, tick).await;
                // An error drops the receiver, and the engine stops before its next token.
                conn.send(session, &ServerMessage::Token(text)).await?;
            }
            finished.await.unwrap_or(Err(EngineError::Internal))
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(stats) => {
            info!(
                session = id,
                prompt_tokens = stats.prompt_tokens,
                generated_tokens = stats.generated_tokens,
                ttft_ms = stats.time_to_first_token.as_secs_f64() * 1e3,
                "generation finished"
            );
            let stop = match stats.stop {
                StopReason::EndOfGeneration => Stop::End,
                StopReason::MaxTokens => Stop::MaxTokens,
                StopReason::ContextFull => Stop::ContextFull,
                // Generation is cancelled only when its pieces had nowhere to go: the client
                // is gone, and nothing more would reach it.
                StopReason::Cancelled => return Ok(()),
            };
            let done = Stats {
                prompt_tokens: u32::try_from(stats.prompt_tokens).unwrap_or(u32::MAX),
                generated_tokens: u32::try_from(stats.generated_tokens).unwrap_or(u32::MAX),
                time_to_first_token_ms: stats.time_to_first_token.as_secs_f64() * 1e3,
                generation_ms: stats.generation.as_secs_f64() * 1e3,
                stop,
            };
            conn.send(session, &ServerMessage::Done(done)).await
        }
        Err(e) => {
            let (kind, message) = engine_error(&e);
            warn!(session = id, kind = ?kind, "generation failed");
            conn.send(session, &ServerMessage::Error { kind, message })
                .await
        }
    }
}
