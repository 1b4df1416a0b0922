//! A c2sp.org/tlog-witness: it cosigns a transparency log's checkpoints with a timestamped
//! `cosignature/v1`, and only when each is consistent with the latest one it cosigned for that
//! log, so that a log that showed one client a tree cannot show another client a fork, or an
//! older tree, with a quorum of fresh cosignatures.
//!
//! - [`core`]: the decision, pure (state, request and time in; new record and cosignature, or
//!   a refusal with its HTTP status, out).
//! - [`state`]: what the witness remembers per log, and its strict JSON encoding.
//! - [`store`]: the state file: locked, loaded strictly, replaced atomically and durably.
//! - [`server`]: the axum edge, `POST /add-checkpoint` and `GET /<origin hash>/checkpoint`.
//! - [`keys`]: the witness key file.
//!
//! Starting a witness in-process:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use sotto_witness::{keys, KnownLogs, WitnessConfig, WitnessService};
//! let signer = keys::read_key("witness.key".as_ref())?;
//! let logs = KnownLogs::from_vkeys(["example.com/log+f2a4a5b7+AQ..."])?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let service = WitnessService::open(WitnessConfig::new(signer, logs, "witness-state.json"))?;
//! println!("witness {} on {}", service.verifier().to_vkey(), listener.local_addr()?);
//! service.serve_until(listener, std::future::pending()).await?;
//! # Ok(()) }
//! ```
//!
//! Trust: requests are anonymous and may be hostile; only a checkpoint signed by the key
//! configured for its origin is considered, and the witness's own record (on disk, under its
//! operator's control) is the reference it is checked against.

pub mod core;
pub mod keys;
pub mod server;
pub mod state;
pub mod store;

pub use crate::core::{origin_hash, Accepted, ConfigError, KnownLogs, Refusal, Witness};
pub use crate::server::{
    serve, serve_until, system_now, Clock, Outcome, ServeError, WitnessConfig, WitnessService,
    DEFAULT_BODY_LIMIT,
};
pub use crate::state::{LogRecord, StateError, WitnessState};
pub use crate::store::{StateStore, StoreError};
