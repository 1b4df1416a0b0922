//! Test fixtures shared by Sotto's crates: data made in memory so tests need no network and
//! no large shipped files, throwaway PostgreSQL databases for the tests of that backend, and
//! the one way to find the real vendor evidence in `../shared/vectors`, and this process's
//! memory for the tests that show a bound holds.
//!
//! Nothing here is used in production builds; fixtures are deterministic for a given seed.

pub mod gguf;
pub mod memory;
pub mod postgres;
pub mod vectors;

pub use gguf::{write_tiny_qwen2_gguf, TinyQwen2};
pub use memory::memory_kib;
pub use vectors::{read_vector, vector, vectors_dir};
