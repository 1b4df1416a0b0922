//! An engine in the same confidential VM instead of the embedded one: llama.cpp's
//! `llama-server`, started by the enclave and reached over loopback through its
//! OpenAI-compatible API.
//!
//! The enclave starts it, so the weights it loads are the ones the manifest commits to: the
//! model's sealed copy (see [`SealedModel`]) is handed to it as an inherited descriptor, never
//! a path on the host's disk. The manifest names it by its own version line and the SHA-256 of
//! its binary, so a release pins the exact engine.
//!
//! What it may learn stays in the VM: it listens on 127.0.0.1 only, wants a random key only the
//! enclave knows, its output goes nowhere (`--log-disable`, and its stdout and stderr are
//! discarded: its logs can never reach the enclave's), its slot-inspection endpoint is off, and
//! no conversation's cache is reused for another (`cache_prompt: false`, no host-memory prompt
//! cache, one KV-cache stream per slot).
//!
//! Trust: its answers are trusted as the embedded engine's are (it runs inside the measured
//! image); its HTTP responses are still parsed with bounds, so a misbehaving engine ends one
//! conversation with an error rather than the enclave. Request bodies and the response bytes
//! pass through the HTTP client's buffers, which are freed without being wiped (like llama.cpp's
//! own); they live in the VM's encrypted memory.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use sotto_engine::{ChatMessage, EngineError, GenParams, GenStats, StopReason};
use tokio::sync::{mpsc, Semaphore};
use zeroize::Zeroizing;

/// How long the engine may take to load the model and answer its health check.
const READY_WITHIN: Duration = Duration::from_secs(600);
/// The longest line of the engine's event stream accepted.
const MAX_LINE: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot run {path}: {source}")]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} --version printed no version line")]
    NoVersion { path: PathBuf },
    #[error(
        "llama-server exited ({status}) before it was ready; its output is discarded, so run \
         it by hand with the same model to see why"
    )]
    Exited { status: String },
    #[error("llama-server was not ready within {0:?}")]
    NotReady(Duration),
    #[error("no free loopback port for llama-server: {0}")]
    Port(std::io::Error),
    #[error("cannot create llama-server's HTTP client: {0}")]
    Client(String),
}

/// How to run `llama-server`.
#[derive(Clone, Debug)]
pub struct LlamaServerConfig {
    /// The `llama-server` binary.
    pub binary: PathBuf,
    pub threads: NonZeroU32,
    /// Tokens of context per conversation.
    pub context: NonZeroU32,
    /// Conversations it decodes together (its `--parallel`).
    pub parallel: NonZeroU32,
    /// Conversations that may wait for a slot; past that the answer is "busy".
    pub queue: usize,
}

/// A running `llama-server`, killed when this is dropped.
pub struct Upstream {
    child: Child,
    base: String,
    key: Zeroizing<String>,
    http: reqwest::Client,
    /// Slots plus queue: a request past them is answered busy at once.
    admitted: Semaphore,
    /// `llama-server`'s version line and the SHA-256 of its binary.
    pub version: String,
    pub context: u32,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The version line `llama-server --version` prints (`version: 7 (abcdef0)`).
fn version_of(binary: &Path) -> Result<String, UpstreamError> {
    let out = Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| UpstreamError::Spawn {
            path: binary.to_path_buf(),
            source,
        })?;
    let text = [out.stdout, out.stderr].concat();
    String::from_utf8_lossy(&text)
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("version:")
                .map(|v| v.trim().to_owned())
        })
        .filter(|v| !v.is_empty() && v.len() <= 100)
        .ok_or_else(|| UpstreamError::NoVersion {
            path: binary.to_path_buf(),
        })
}

fn binary_digest(binary: &Path) -> Result<String, UpstreamError> {
    let spawn = |source| UpstreamError::Spawn {
        path: binary.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(binary).map_err(spawn)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(spawn)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn free_port() -> Result<u16, UpstreamError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(UpstreamError::Port)?;
    Ok(listener.local_addr().map_err(UpstreamError::Port)?.port())
}

/// Whether `GET /health` answers 200 (it answers 503 while the model loads).
fn healthy(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

impl Upstream {
    /// Starts `llama-server` on the model at `model_path` (the sealed copy's descriptor, which
    /// the child inherits) and waits until it is ready. Blocks.
    pub fn start(
        config: &LlamaServerConfig,
        model_path: &Path,
        alias: &str,
    ) -> Result<Upstream, UpstreamError> {
        let version = format!(
            "{} sha256:{}",
            version_of(&config.binary)?,
            binary_digest(&config.binary)?
        );
        let port = free_port()?;
        let mut key_bytes = Zeroizing::new([0u8; 32]);
        getrandom::getrandom(key_bytes.as_mut_slice())
            .map_err(|e| UpstreamError::Client(e.to_string()))?;
        let key = Zeroizing::new(hex::encode(key_bytes.as_slice()));
        let total_context = config.context.get().saturating_mul(config.parallel.get());
        let mut child = Command::new(&config.binary)
            .arg("--model")
            .arg(model_path)
            .args(["--alias", alias, "--host", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .arg("--threads")
            .arg(config.threads.to_string())
            .arg("--threads-batch")
            .arg(config.threads.to_string())
            .arg("--ctx-size")
            .arg(total_context.to_string())
            .arg("--parallel")
            .arg(config.parallel.to_string())
            .args([
                "--no-webui",
                "--no-slots",
                "--log-disable",
                "--no-context-shift",
                "--cache-ram",
                "0",
                "--no-kv-unified",
                "--jinja",
            ])
            // In the environment, not the command line, which every local user can read.
            .env("LLAMA_API_KEY", key.as_str())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| UpstreamError::Spawn {
                path: config.binary.clone(),
                source,
            })?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(UpstreamError::Exited {
                    status: status.to_string(),
                });
            }
            if healthy(addr) {
                break;
            }
            if started.elapsed() > READY_WITHIN {
                let _ = child.kill();
                let _ = child.wait();
                return Err(UpstreamError::NotReady(READY_WITHIN));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| UpstreamError::Client(e.to_string()))?;
        tracing::info!(version = %version, port, parallel = config.parallel.get(), "llama-server ready");
        Ok(Upstream {
            child,
            base: format!("http://{addr}"),
            key,
            http,
            admitted: Semaphore::new((config.parallel.get() as usize).saturating_add(config.queue)),
            version,
            context: config.context.get(),
        })
    }

    /// Answers one conversation, sending its pieces to `pieces` as they stream in. Stops (and
    /// so lets the engine stop) when `pieces` is closed.
    pub async fn answer(
        &self,
        messages: &[ChatMessage],
        params: &GenParams,
        pieces: &mpsc::Sender<Zeroizing<String>>,
    ) -> Result<GenStats, EngineError> {
        let Ok(_admitted) = self.admitted.try_acquire() else {
            return Err(EngineError::Busy);
        };
        let started = Instant::now();
        let body = Zeroizing::new(request_body(messages, params).to_string());
        let mut response = self
            .http
            .post(format!("{}/v1/chat/completions", self.base))
            .bearer_auth(self.key.as_str())
            .header("content-type", "application/json")
            .body(body.as_bytes().to_vec())
            .send()
            .await
            .map_err(|_| EngineError::Internal)?;
        if !response.status().is_success() {
            let status = response.status().as_u16();
            let body = read_capped(response, 64 << 10).await;
            return Err(refusal(status, &body, self.context));
        }
        let mut stream = EventStream::default();
        let mut end = StreamEnd::default();
        let mut first_token = None;
        while let Some(chunk) = response.chunk().await.map_err(|_| EngineError::Internal)? {
            for event in stream.push(&chunk)? {
                if let Some(text) = event.text {
                    first_token.get_or_insert_with(Instant::now);
                    if pieces.send(text).await.is_err() {
                        return Ok(stats(started, first_token, &end, StopReason::Cancelled));
                    }
                }
                end.merge(event.end);
            }
        }
        let stop = match end.finish_reason.as_deref() {
            Some("stop") => StopReason::EndOfGeneration,
            Some("length") => StopReason::MaxTokens,
            _ => return Err(EngineError::Internal),
        };
        Ok(stats(started, first_token, &end, stop))
    }
}

fn stats(
    started: Instant,
    first_token: Option<Instant>,
    end: &StreamEnd,
    stop: StopReason,
) -> GenStats {
    let first = first_token.unwrap_or_else(Instant::now);
    GenStats {
        prompt_tokens: end.prompt_tokens,
        generated_tokens: end.completion_tokens,
        prompt_eval: first.duration_since(started),
        time_to_first_token: first.duration_since(started),
        generation: first.elapsed(),
        stop,
    }
}

async fn read_capped(mut response: reqwest::Response, max: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk[..chunk.len().min(max - body.len())]);
        if body.len() >= max {
            break;
        }
    }
    body
}

/// The request llama-server is sent: the conversation, the sampling the client asked for, and
/// no reuse of any cached prompt.
fn request_body(messages: &[ChatMessage], params: &GenParams) -> serde_json::Value {
    let messages: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| json!({"role": m.role.as_str(), "content": m.content.as_str()}))
        .collect();
    let mut body = json!({
        "messages": messages,
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "stream": true,
        "stream_options": {"include_usage": true},
        "cache_prompt": false,
    });
    if let Some(seed) = params.seed {
        body["seed"] = json!(seed);
    }
    if let Some(k) = params.top_k {
        body["top_k"] = json!(k.get());
    }
    body
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    n_prompt_tokens: Option<usize>,
}

/// What an error answer from llama-server means for the client. Its message is not passed
/// on: it may quote the conversation.
fn refusal(status: u16, body: &[u8], context: u32) -> EngineError {
    let detail = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|b| b.error);
    match (status, detail) {
        (_, Some(d)) if d.kind == "exceed_context_size_error" => EngineError::ContextExceeded {
            prompt_tokens: d.n_prompt_tokens.unwrap_or(0),
            context,
        },
        (503, _) => EngineError::Busy,
        (400, _) => EngineError::InvalidParams("the engine refused the request's parameters"),
        _ => EngineError::Internal,
    }
}

/// One event of the stream: text to pass on, and what it says about the end.
#[derive(Default)]
struct Event {
    text: Option<Zeroizing<String>>,
    end: StreamEnd,
}

#[derive(Default, Debug, PartialEq)]
struct StreamEnd {
    finish_reason: Option<String>,
    prompt_tokens: usize,
    completion_tokens: usize,
}

impl StreamEnd {
    fn merge(&mut self, other: StreamEnd) {
        if other.finish_reason.is_some() {
            self.finish_reason = other.finish_reason;
        }
        self.prompt_tokens = self.prompt_tokens.max(other.prompt_tokens);
        self.completion_tokens = self.completion_tokens.max(other.completion_tokens);
    }
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Delta,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: usize,
    completion_tokens: usize,
}

/// Server-sent events, split into `data:` payloads as bytes arrive. Pure.
#[derive(Default)]
struct EventStream {
    line: Zeroizing<Vec<u8>>,
}

impl EventStream {
    fn push(&mut self, bytes: &[u8]) -> Result<Vec<Event>, EngineError> {
        let mut events = Vec::new();
        for &b in bytes {
            if b != b'\n' {
                if self.line.len() >= MAX_LINE {
                    return Err(EngineError::Internal);
                }
                self.line.push(b);
                continue;
            }
            let line = std::mem::take(&mut *self.line);
            let line = Zeroizing::new(line);
            let text = line.strip_suffix(b"\r").unwrap_or(&line);
            let Some(data) = text.strip_prefix(b"data:") else {
                continue;
            };
            let data = data.strip_prefix(b" ").unwrap_or(data);
            if data == b"[DONE]" {
                continue;
            }
            events.push(event(data)?);
        }
        Ok(events)
    }
}

fn event(data: &[u8]) -> Result<Event, EngineError> {
    let chunk: Chunk = serde_json::from_slice(data).map_err(|_| EngineError::Internal)?;
    let mut out = Event::default();
    if let Some(usage) = chunk.usage {
        out.end.prompt_tokens = usage.prompt_tokens;
        out.end.completion_tokens = usage.completion_tokens;
    }
    for choice in chunk.choices {
        if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
            out.text = Some(Zeroizing::new(text));
        }
        if choice.finish_reason.is_some() {
            out.end.finish_reason = choice.finish_reason;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_come_out_whole() {
        let mut s = EventStream::default();
        let all = b"data: {\"choices\":[{\"delta\":{\"content\":\"Par\"}}]}\n\n\
                    data: {\"choices\":[{\"delta\":{\"content\":\"is\"},\"finish_reason\":null}]}\r\n\r\n\
                    data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"length\"}]}\n\n\
                    data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}}\n\n\
                    data: [DONE]\n\n";
        let mut text = String::new();
        let mut end = StreamEnd::default();
        for piece in all.chunks(7) {
            for e in s.push(piece).unwrap() {
                if let Some(t) = e.text {
                    text.push_str(&t);
                }
                end.merge(e.end);
            }
        }
        assert_eq!(text, "Paris");
        assert_eq!(
            end,
            StreamEnd {
                finish_reason: Some("length".into()),
                prompt_tokens: 9,
                completion_tokens: 2,
            }
        );
    }

    #[test]
    fn a_broken_or_endless_line_is_an_error() {
        assert!(EventStream::default().push(b"data: {not json\n").is_err());
        let mut s = EventStream::default();
        let long = vec![b'x'; MAX_LINE + 1];
        assert!(s.push(&long).is_err());
    }

    #[test]
    fn error_answers_map_to_what_the_client_is_told() {
        let body = br#"{"error":{"code":400,"message":"the request exceeds the available context size","type":"exceed_context_size_error","n_prompt_tokens":5000,"n_ctx":4096}}"#;
        match refusal(400, body, 4096) {
            EngineError::ContextExceeded {
                prompt_tokens,
                context,
            } => assert_eq!((prompt_tokens, context), (5000, 4096)),
            other => panic!("{other}"),
        }
        assert!(matches!(refusal(503, b"", 1), EngineError::Busy));
        assert!(matches!(refusal(500, b"<html>", 1), EngineError::Internal));
    }
}
