//! The attested channel between a Sotto client and an inference enclave.
//!
//! Shared, byte for byte, by the CLI, the local proxy, the browser (wasm32) and the enclave, so
//! there is exactly one implementation of each protocol step. Pure: no I/O and no clock; the
//! network edges feed bytes in and take bytes out.
//!
//! Trust: everything that arrives here came through the untrusted relay. A client learns the
//! enclave's static key from the hybrid (X25519 + ML-KEM-768) Noise NX handshake and may only
//! obtain a [`Session`] after the evidence in the handshake payload has been verified and shown
//! to commit to that key and to the manifest (see [`binding`]), and that a release in a verified
//! transparency log lists the measured build (`sotto-release`); the type system makes "send
//! before verify" unrepresentable.

pub mod binding;
pub mod frame;
pub mod handshake;
pub mod manifest;
pub mod messages;
pub mod pq;
pub mod transport;

pub use handshake::{
    AttestationPayload, Attested, ClientHandshake, ClientHello, Expectations, PendingSession,
    ServerHandshake, ServerHello, StaticKey, Verified,
};
pub use transport::{Padding, Session};

/// Everything that can end a channel. None of these carries payload bytes.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("noise handshake failed: {0}")]
    Handshake(String),
    #[error("a transport frame failed authentication (tampered, replayed or reordered)")]
    Decrypt,
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge { len: usize, max: usize },
    #[error("message of more than {max} bytes refused")]
    MessageTooLarge { max: usize },
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    #[error("attestation payload is malformed: {0}")]
    Payload(String),
    #[error("protocol message is malformed: {0}")]
    Message(String),
    #[error("evidence refused: {0}")]
    Evidence(#[from] sotto_verify::VerifyError),
    #[error("evidence is not bound to this channel: {0}")]
    Binding(&'static str),
    #[error("manifest refused: {0}")]
    Manifest(String),
    #[error("release refused: {0}")]
    Release(#[from] sotto_release::AdmitError),
}
