//! Tests of the software passkey against the real server-side library (webauthn-rs 0.6.2)
//! and of the keyring file edge.

mod ceremonies;
mod common;
mod file;
