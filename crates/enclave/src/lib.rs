//! The inference enclave: the only code that ever sees a prompt or an answer in the clear.
//!
//! At boot it checks the model file against the digest it was configured with, creates an
//! X25519 static key that exists only in its memory, writes a manifest (release, model digest,
//! engine). It answers each Noise handshake with evidence made for it, whose REPORT_DATA
//! commits to the key, the manifest and the client's nonce (see `sotto_channel::binding`), so
//! no evidence outlives its handshake, and serves chat requests. It is stateless: each request carries the whole conversation, and nothing
//! about its content is stored or logged; log lines carry only session numbers, counts and
//! timings.
//!
//! Trust: it trusts the hardware it runs on and the model file whose digest it checked.
//! Everything that arrives over the network is hostile until the Noise session authenticates
//! it, and even then the client is anonymous and untrusted.

mod backend;
mod boot;
mod service;
mod upstream;

pub use boot::{BootError, Enclave, EnclaveConfig, SealedModel};
pub use service::{serve, serve_shaped, serve_with, SessionLimits, Shaping};
pub use upstream::UpstreamError;
