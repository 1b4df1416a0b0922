//! The `sotto` crate's integration tests, in one binary: each module is one area, run against
//! real sockets, a real server and store, and an enclave on the simulated platform with a tiny
//! generated model ([`common`] builds that stack).

mod common;

mod accounts;
mod attested_chat;
mod binding;
mod canary;
mod cross_client;
mod durability;
mod pool;
mod proxy;
mod relay_abuse;
mod releases;
mod robustness;
mod tokens;
mod up;
mod upstream;
mod verify_evidence;
mod verify_web;
mod wire;
