//! The HTTP edge of the witness (c2sp.org/tlog-witness): `POST /add-checkpoint` and the
//! monitoring `GET /<origin hash>/checkpoint`, over axum.
//!
//! Every `add-checkpoint` is decided, persisted and answered under one lock, in a task of its
//! own so that a client hanging up cannot interrupt it between the write and the update of
//! the in-memory state: the check against the latest cosigned size and the durable write of
//! the new one are atomic, and nothing is answered before it is on disk.
//!
//! Trust: every request is anonymous and may be hostile; bodies are bounded, never logged,
//! and never panic the handler. Logs record the origin (escaped, truncated), the sizes and
//! the outcome.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use sotto_tlog::note::{Note, Signer, Verifier};
use sotto_tlog::witness::{size_body, AddCheckpoint, SIZE_CONTENT_TYPE};
use sotto_tlog::Checkpoint;
use tokio::net::TcpListener;
use tokio::sync::Mutex;

use crate::core::{origin_hash, Accepted, ConfigError, KnownLogs, Refusal, Witness};
use crate::state::WitnessState;
use crate::store::{StateStore, StoreError};

/// The default bound on an `add-checkpoint` body: 63 proof lines are under 3 KiB, and a
/// checkpoint with a few dozen signatures (even ML-DSA ones) fits with room to spare.
pub const DEFAULT_BODY_LIMIT: usize = 128 * 1024;

/// A source of the current time, in POSIX seconds.
pub type Clock = fn() -> u64;

/// The system clock (0 if it reads before the epoch, which the witness refuses to sign at).
pub fn system_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What a witness needs to run.
#[derive(Debug)]
pub struct WitnessConfig {
    /// The witness's cosignature/v1 key.
    pub signer: Signer,
    /// The logs it cosigns for.
    pub logs: KnownLogs,
    /// Its state file (created empty when missing; locked while the witness runs).
    pub state_path: PathBuf,
    /// The largest `add-checkpoint` body accepted (larger ones get 413).
    pub body_limit: usize,
    /// The clock cosignatures are timestamped with.
    pub clock: Clock,
}

impl WitnessConfig {
    pub fn new(signer: Signer, logs: KnownLogs, state_path: impl Into<PathBuf>) -> Self {
        WitnessConfig {
            signer,
            logs,
            state_path: state_path.into(),
            body_limit: DEFAULT_BODY_LIMIT,
            clock: system_now,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the witness's HTTP server failed: {0}")]
    Http(std::io::Error),
}

struct Inner {
    witness: Witness,
    store: StateStore,
    state: Mutex<WitnessState>,
    clock: Clock,
    body_limit: usize,
}

/// A witness with its state loaded and locked, ready to answer requests.
#[derive(Clone)]
pub struct WitnessService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WitnessService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WitnessService")
            .field("name", &self.inner.witness.name())
            .field("state", &self.inner.store.path())
            .finish_non_exhaustive()
    }
}

/// What became of one `add-checkpoint` request.
#[derive(Debug)]
pub enum Outcome {
    /// Cosigned and persisted.
    Cosigned(Accepted),
    /// Refused, with the spec's status.
    Refused(Refusal),
    /// Could not be persisted: nothing was cosigned, the state is unchanged.
    Failed(String),
}

impl WitnessService {
    /// Checks the configuration, locks and loads the state (refusing a corrupt one).
    pub fn open(config: WitnessConfig) -> Result<Self, ServeError> {
        let witness = Witness::new(config.signer, config.logs)?;
        let (store, state) = StateStore::open(&config.state_path)?;
        Ok(WitnessService {
            inner: Arc::new(Inner {
                witness,
                store,
                state: Mutex::new(state),
                clock: config.clock,
                body_limit: config.body_limit,
            }),
        })
    }

    /// The witness's public key, which log clients pin.
    pub fn verifier(&self) -> Verifier {
        self.inner.witness.verifier()
    }

    /// A snapshot of the state.
    pub async fn state(&self) -> WitnessState {
        self.inner.state.lock().await.clone()
    }

    /// The routes, at the root: nest them under a prefix to serve them elsewhere.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/add-checkpoint", post(add_checkpoint))
            .route("/{origin_hash}/checkpoint", get(monitor))
            .layer(DefaultBodyLimit::max(self.inner.body_limit))
            .with_state(self.clone())
    }

    /// Decides on one body, persists the new state and only then returns. Runs to its end
    /// even if the caller's future is dropped.
    pub async fn add_checkpoint(&self, body: Bytes) -> Outcome {
        let me = self.clone();
        match tokio::spawn(async move { me.decide_and_persist(&body).await }).await {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Failed(format!("the cosigning task failed: {e}")),
        }
    }

    async fn decide_and_persist(&self, body: &[u8]) -> Outcome {
        let inner = &self.inner;
        let mut state = inner.state.lock().await;
        let accepted = match inner
            .witness
            .add_checkpoint_body(&state, body, (inner.clock)())
        {
            Ok(a) => a,
            Err(r) => return Outcome::Refused(r),
        };
        let mut next = state.clone();
        if let Err(e) = next.apply(&accepted.origin, accepted.record.clone()) {
            return Outcome::Failed(e.to_string());
        }
        let me = self.clone();
        let saved = tokio::task::spawn_blocking(move || {
            let r = me.inner.store.save(&next);
            (r, next)
        })
        .await;
        match saved {
            Ok((Ok(()), next)) => {
                *state = next;
                Outcome::Cosigned(accepted)
            }
            Ok((Err(e), _)) => Outcome::Failed(e.to_string()),
            Err(e) => Outcome::Failed(format!("the state writer failed: {e}")),
        }
    }

    /// Serves the witness on `listener` until `shutdown` completes, then finishes the
    /// requests in flight.
    pub async fn serve_until(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        tracing::info!(
            witness = %self.verifier().to_vkey(),
            logs = self.inner.witness.logs().len(),
            addr = ?listener.local_addr().ok(),
            "witness serving"
        );
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ServeError::Http)
    }
}

/// Opens the witness (see [`WitnessService::open`]) and serves it on `listener` forever.
pub async fn serve(listener: TcpListener, config: WitnessConfig) -> Result<(), ServeError> {
    serve_until(listener, config, std::future::pending()).await
}

/// Opens the witness and serves it on `listener` until `shutdown` completes.
pub async fn serve_until(
    listener: TcpListener,
    config: WitnessConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    WitnessService::open(config)?
        .serve_until(listener, shutdown)
        .await
}

/// What a request claims, for the log line only (nothing here is trusted).
struct Claim {
    origin: Option<String>,
    old: Option<u64>,
    size: Option<u64>,
}

fn claim(body: &[u8]) -> Claim {
    let request = AddCheckpoint::parse(body).ok();
    let checkpoint = request
        .as_ref()
        .and_then(|r| Note::parse(&r.checkpoint).ok())
        .and_then(|n| Checkpoint::parse(n.text()).ok());
    Claim {
        origin: checkpoint
            .as_ref()
            .map(|c| c.origin.chars().take(128).collect()),
        old: request.map(|r| r.old_size),
        size: checkpoint.map(|c| c.size),
    }
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn add_checkpoint(State(service): State<WitnessService>, body: Bytes) -> Response {
    let c = claim(&body);
    let outcome = service.add_checkpoint(body).await;
    match outcome {
        Outcome::Cosigned(a) => {
            tracing::info!(
                origin = ?a.origin,
                old = a.old_size,
                size = a.record.size,
                status = 200,
                outcome = "cosigned",
                "add-checkpoint"
            );
            text(StatusCode::OK, a.body())
        }
        Outcome::Refused(r) => {
            let status =
                StatusCode::from_u16(r.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            tracing::info!(
                origin = ?c.origin,
                old = ?c.old,
                size = ?c.size,
                status = status.as_u16(),
                outcome = r.kind(),
                reason = %r.to_string().chars().take(300).collect::<String>(),
                "add-checkpoint"
            );
            match r.latest_size() {
                Some(latest) => (
                    status,
                    [(header::CONTENT_TYPE, SIZE_CONTENT_TYPE)],
                    size_body(latest),
                )
                    .into_response(),
                None => text(status, format!("{r}\n")),
            }
        }
        Outcome::Failed(e) => {
            tracing::error!(
                origin = ?c.origin,
                old = ?c.old,
                size = ?c.size,
                status = 500,
                outcome = "not_persisted",
                error = %e,
                "add-checkpoint"
            );
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the witness could not record the checkpoint; nothing was cosigned\n".into(),
            )
        }
    }
}

async fn monitor(State(service): State<WitnessService>, Path(hash): Path<String>) -> Response {
    let well_formed =
        hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if well_formed {
        let found = {
            let state = service.inner.state.lock().await;
            let found = state
                .records()
                .find(|(o, _)| origin_hash(o) == hash)
                .map(|(_, r)| r.checkpoint.clone());
            found
        };
        if let Some(checkpoint) = found {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                checkpoint,
            )
                .into_response();
        }
    }
    text(
        StatusCode::NOT_FOUND,
        "this witness has cosigned no checkpoint of that log\n".into(),
    )
}
