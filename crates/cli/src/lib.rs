//! The Sotto command-line client and local stack.
//!
//! [`client`] is the user's side of the promise: it verifies an enclave before sending a byte
//! of conversation, using the same channel and verifier crates as every other client;
//! [`account`] and [`history`] carry out the account and history flows of `sotto-client`;
//! [`transparency`] checks the release log; [`openai`] and, with the `proxy` feature,
//! [`proxy`] are `sotto proxy`'s OpenAI-compatible API. [`cmd`] has one module per command.
//! With the `stack` feature (on by default), [`stack`] starts the untrusted server and a
//! (simulated-platform) enclave on this machine for `sotto up`; without it the client builds
//! without llama.cpp, PostgreSQL or the server. The CLI is a thin edge: protocol logic lives in
//! the library crates.

pub mod account;
pub mod api;
pub mod client;
pub mod cmd;
pub mod history;
pub mod local;
pub mod openai;
pub mod relay_tokens;
pub mod term;
pub mod transparency;

#[cfg(feature = "stack")]
pub mod devlog;
#[cfg(feature = "stack")]
pub mod model_fetch;
#[cfg(feature = "proxy")]
pub mod proxy;
#[cfg(feature = "stack")]
pub mod stack;
