//! Sotto's Rust core as the browser runs it (wasm32, through wasm-bindgen): the web app keeps
//! the CLI's promise, verifying the enclave's evidence and encrypting everything itself with
//! the very same code, never a second implementation in JavaScript.
//!
//! Trust: the JS around this module does I/O only (WebSocket, fetch, WebAuthn, IndexedDB) and
//! is trusted as the page is; what it hands in from the server or the relay is untrusted and
//! is judged here by `sotto_channel`, `sotto_release` and `sotto_client` (over `sotto_vault`).
//! The logic lives in [`channel`], [`release`] (the transparency-log check and which trust
//! configuration applies, fixed at compile time), [`flows`] (the client core's account and
//! history flows, stepped by JS) and [`tokens`] (the relay tokens a page spends), plain Rust
//! over JSON and bytes so it is tested natively; [`bindings`] only converts types at the JS
//! boundary. [`markdown`] turns untrusted message text into a sanitized element tree for the
//! page to build.

pub mod bindings;
pub mod channel;
mod error;
pub mod flows;
pub mod markdown;
pub mod release;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tokens;

pub use error::{whole_number, WebError};
