//! Test fixtures shared by Sotto's crates: data made in memory so tests need no network and
//! no large shipped files, and throwaway PostgreSQL databases for the tests of that backend.
//!
//! Nothing here is used in production builds; fixtures are deterministic for a given seed.

pub mod gguf;
pub mod postgres;

pub use gguf::{write_tiny_qwen2_gguf, TinyQwen2};
