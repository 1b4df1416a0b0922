//! `sotto proxy`'s HTTP edge: a local OpenAI-compatible endpoint in front of a verified
//! enclave. Every request opens its own connection and verifies it as `sotto chat` does
//! (evidence, binding, release log; [`Checks::open`]) before anything is sent; a request that
//! cannot be verified is answered with an error saying why, never by an unverified enclave.
//! The OpenAI shapes are in [`crate::openai`].
//!
//! Trust: requests come from programs on this machine. The proxy listens on loopback by
//! default, answers only requests whose Host header it was told to expect (so a web page
//! cannot reach it through DNS rebinding), and can require a bearer key. It logs no request
//! content.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sotto_channel::messages::Stats;
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use crate::client::{now, ClientError, Connection};
use crate::cmd::enclave_args::{Checks, Route};
use crate::local::Profile;
use crate::openai::{self, ApiError, ChatRequest, StopFilter};
use crate::transparency::Checked;

/// The largest request body accepted (a long conversation).
const MAX_BODY: usize = 8 * 1024 * 1024;

pub struct ProxyConfig {
    /// The server (whose release log is checked), a hop in front of its relay, an enclave.
    pub route: Route,
    pub checks: Checks,
    pub profile: Profile,
    /// The Host header values requests must carry (`host:port`).
    pub allowed_hosts: Vec<String>,
    /// When set, requests need `Authorization: Bearer KEY`; kept as its SHA-256 so the check
    /// compares digests.
    pub api_key: Option<[u8; 32]>,
    /// An answer's length when the request sets none.
    pub max_tokens: u32,
    /// Serializes use of the profile's relay-token wallet.
    pub wallet: tokio::sync::Mutex<()>,
}

impl ProxyConfig {
    pub fn key_digest(key: &str) -> [u8; 32] {
        Sha256::digest(key.as_bytes()).into()
    }
}

pub fn router(config: ProxyConfig) -> Router {
    let config = Arc::new(config);
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/verification", get(verification))
        .route("/v1/chat/completions", post(completions))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(config.clone(), guard))
        .with_state(config)
}

fn error(e: ApiError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_GATEWAY);
    (status, Json(e.body())).into_response()
}

/// The Host allowlist and the bearer key, before any handler runs.
async fn guard(State(config): State<Arc<ProxyConfig>>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !config
        .allowed_hosts
        .iter()
        .any(|h| h.eq_ignore_ascii_case(host))
    {
        return error(ApiError {
            status: 403,
            kind: "invalid_request_error",
            code: Some("host_not_allowed"),
            param: None,
            message: format!(
                "this proxy answers requests for {} only (see --allow-host)",
                config.allowed_hosts.join(", ")
            ),
        });
    }
    if let Some(want) = &config.api_key {
        let given = bearer(request.headers()).map(ProxyConfig::key_digest);
        if given.as_ref() != Some(want) {
            return error(ApiError::unauthorized());
        }
    }
    next.run(request).await
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// A verified connection for one request, paid with a relay token when the relay requires
/// one (taken from the profile's wallet one request at a time, so two never spend the same).
async fn open(config: &ProxyConfig) -> Result<(Connection, Checked), ApiError> {
    let paid = {
        let _wallet = config.wallet.lock().await;
        crate::relay_tokens::for_connection(&config.route.server, &config.profile)
            .await
            .map_err(|e| ApiError::no_token(e.to_string()))?
    };
    let token = paid
        .as_ref()
        .map(|(authorization, _)| authorization.as_str());
    let opened = config
        .checks
        .open(&config.route, token, &config.profile)
        .await
        .map_err(|e| ApiError::unverified(e.to_string()))?;
    if let Some((_, policy)) = &paid {
        let _wallet = config.wallet.lock().await;
        crate::relay_tokens::refill(&config.route.server, &config.profile, policy).await;
    }
    Ok(opened)
}

async fn models(State(config): State<Arc<ProxyConfig>>) -> Response {
    match open(&config).await {
        Ok((conn, _)) => {
            let model = conn.verified().manifest.model.name.clone();
            conn.close().await;
            Json(openai::models(&model, now().0)).into_response()
        }
        Err(e) => error(e),
    }
}

/// What was verified for a fresh connection, as `sotto chat -v` shows it.
async fn verification(State(config): State<Arc<ProxyConfig>>) -> Response {
    let (conn, checked) = match open(&config).await {
        Ok(opened) => opened,
        Err(e) => return error(e),
    };
    let v = conn.verified();
    let r = &v.release;
    let body = json!({
        "platform": v.manifest.platform,
        "launch_measurement": hex::encode(v.verdict.launch_measurement()),
        "enclave_static_key": hex::encode(v.enclave_static_key),
        "model": { "name": v.manifest.model.name, "sha256": v.manifest.model.sha256 },
        "release": {
            "name": r.name, "version": r.version, "source_commit": r.source_commit,
            "log_index": r.index, "signers": r.signers,
        },
        "log": {
            "origin": checked.view.checkpoint.origin,
            "size": checked.view.checkpoint.size,
            "previous_size": checked.view.previous_size,
            "witnesses": checked.view.cosigners.iter().map(|w| &w.name).collect::<Vec<_>>(),
        },
    });
    conn.close().await;
    Json(body).into_response()
}

fn completion_id() -> String {
    let mut bytes = [0u8; 12];
    // An id that repeats would still work; randomness only keeps ids apart.
    let _ = getrandom::getrandom(&mut bytes);
    format!("chatcmpl-{}", hex::encode(bytes))
}

fn answer_error(e: ClientError) -> ApiError {
    match e {
        ClientError::ContextExceeded(message) => ApiError::context_exceeded(message),
        ClientError::Busy(message) => ApiError::busy(message),
        e => ApiError::upstream(e.to_string()),
    }
}

async fn completions(State(config): State<Arc<ProxyConfig>>, body: Bytes) -> Response {
    let request = match ChatRequest::parse(&body, config.max_tokens) {
        Ok(r) => r,
        Err(e) => return error(e),
    };
    let (conn, _) = match open(&config).await {
        Ok(opened) => opened,
        Err(e) => return error(e),
    };
    let served = conn.verified().manifest.model.name.clone();
    if request.model != served {
        conn.close().await;
        return error(ApiError::model_not_found(&request.model, &served));
    }
    if request.stream {
        stream(conn, request, served).into_response()
    } else {
        whole(conn, request, served).await
    }
}

async fn whole(mut conn: Connection, request: ChatRequest, model: String) -> Response {
    let mut filter = StopFilter::new(request.stops);
    let mut text = Zeroizing::new(String::new());
    let result = conn
        .chat(&request.messages, request.params, &mut |piece| {
            text.push_str(&filter.push(piece))
        })
        .await;
    conn.close().await;
    match result {
        Ok(stats) => {
            if !filter.stopped() {
                text.push_str(&filter.finish());
            }
            let finish = openai::finish_reason(stats.stop, filter.stopped());
            let body = openai::completion(&completion_id(), now().0, &model, &text, finish, &stats);
            Json(body).into_response()
        }
        Err(e) => error(answer_error(e)),
    }
}

/// What the chat task hands the SSE stream.
enum Piece {
    Text(Zeroizing<String>),
    Done(Result<Stats, ClientError>),
}

/// Streams the answer as server-sent events. The chat runs in its own task; when the client
/// goes away or a stop sequence ends the answer, the task is aborted, which closes the
/// connection and makes the enclave stop.
fn stream(
    mut conn: Connection,
    request: ChatRequest,
    model: String,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let messages = request.messages;
    let params = request.params;
    let task = tokio::spawn(async move {
        let pieces = tx.clone();
        let result = conn
            .chat(&messages, params, &mut |p| {
                let _ = pieces.send(Piece::Text(Zeroizing::new(p.to_string())));
            })
            .await;
        conn.close().await;
        let _ = tx.send(Piece::Done(result));
    });
    let state = Streaming {
        rx,
        task: Abort(task),
        filter: StopFilter::new(request.stops),
        id: completion_id(),
        created: now().0,
        model,
        include_usage: request.include_usage,
        queued: Default::default(),
        ended: false,
        done_sent: false,
    };
    let first = state.chunk(json!({ "role": "assistant", "content": "" }), None, None);
    let mut state = state;
    state.queued.push_back(first);
    let events = futures_util::stream::unfold(state, |mut s| async move {
        let event = s.next().await?;
        Some((Ok(event), s))
    });
    Sse::new(events)
}

/// Aborts the chat task when the stream is dropped (the HTTP client went away).
struct Abort(tokio::task::JoinHandle<()>);

impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Streaming {
    rx: mpsc::UnboundedReceiver<Piece>,
    task: Abort,
    filter: StopFilter,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    /// Chunks decided but not yet sent (JSON), in order; `[DONE]` follows the last.
    queued: std::collections::VecDeque<Value>,
    ended: bool,
    done_sent: bool,
}

impl Streaming {
    fn chunk(&self, delta: Value, finish: Option<&str>, usage: Option<Value>) -> Value {
        openai::chunk(&self.id, self.created, &self.model, delta, finish, usage)
    }

    /// The end of the answer: the finish reason, the usage when asked for, then `[DONE]`.
    fn end(&mut self, stats: Option<&Stats>, stop_sequence: bool) {
        let reason = match stats {
            Some(s) => openai::finish_reason(s.stop, stop_sequence),
            None => "stop",
        };
        let last = self.chunk(json!({}), Some(reason), None);
        self.queued.push_back(last);
        if let (true, Some(stats)) = (self.include_usage, stats) {
            let usage = self.chunk(json!({}), None, Some(openai::usage(stats)));
            self.queued.push_back(usage);
        }
        self.ended = true;
        self.task.0.abort();
    }

    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(chunk) = self.queued.pop_front() {
                return Some(Event::default().data(chunk.to_string()));
            }
            if self.ended {
                if self.done_sent {
                    return None;
                }
                self.done_sent = true;
                return Some(Event::default().data("[DONE]"));
            }
            match self.rx.recv().await {
                Some(Piece::Text(piece)) => {
                    let shown = self.filter.push(&piece);
                    if !shown.is_empty() {
                        let chunk = self.chunk(json!({ "content": &*shown }), None, None);
                        self.queued.push_back(chunk);
                    }
                    if self.filter.stopped() {
                        // Generation goes on in the enclave until the task is aborted; the
                        // usage is not known, so a stop-sequence end reports none.
                        self.end(None, true);
                    }
                }
                Some(Piece::Done(Ok(stats))) => {
                    let rest = self.filter.finish();
                    if !rest.is_empty() {
                        let chunk = self.chunk(json!({ "content": &*rest }), None, None);
                        self.queued.push_back(chunk);
                    }
                    self.end(Some(&stats), false);
                }
                Some(Piece::Done(Err(e))) => {
                    self.queued.push_back(answer_error(e).body());
                    self.ended = true;
                }
                None => {
                    self.ended = true;
                }
            }
        }
    }
}
