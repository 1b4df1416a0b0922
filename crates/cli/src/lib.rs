//! The Sotto command-line client and local stack.
//!
//! [`client`] is the user's side of the promise: it verifies an enclave before sending a byte
//! of conversation, using the same channel and verifier crates as every other client.
//! [`stack`] starts the untrusted server and a (simulated-platform) enclave on this machine
//! for `sotto up`. The CLI is a thin edge: protocol logic lives in the library crates.

pub mod account;
pub mod api;
pub mod client;
pub mod commands;
pub mod devlog;
pub mod history;
pub mod local;
pub mod model_fetch;
pub mod release;
pub mod stack;
pub mod transparency;
pub mod verify_cmd;
pub mod verify_web;
pub mod witness_cmd;
