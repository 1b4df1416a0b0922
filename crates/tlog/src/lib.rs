//! The transparency log's formats, exactly as C2SP and RFC 6962 define them, and nothing else.
//!
//! - [`merkle`]: RFC 6962 leaf and node hashes, tree heads, inclusion and consistency proofs
//!   (making and checking them), and the compact range a verifier grows leaf by leaf.
//! - [`tile`]: c2sp.org/tlog-tiles paths, hash tiles and entry bundles.
//! - [`note`]: c2sp.org/signed-note, with Ed25519 signatures (type 0x01) and timestamped
//!   c2sp.org/tlog-cosignature `cosignature/v1` cosignatures (type 0x04).
//! - [`checkpoint`]: c2sp.org/tlog-checkpoint note texts.
//! - [`witness`]: the c2sp.org/tlog-witness `add-checkpoint` request and response bodies.
//!
//! Trust: none. Every byte handed to a parser here may come from a hostile log, relay or
//! witness; parsers are strict, bounded and never panic, and a signature or proof is only
//! believed after it verified against a key or root the caller supplied. Pure: no I/O, no
//! clock (times are arguments), so the CLI, the server, the witness and the browser (wasm32)
//! share this one implementation.

pub mod checkpoint;
pub mod merkle;
pub mod note;
pub mod tile;
pub mod witness;

pub use checkpoint::Checkpoint;
pub use merkle::Hash;
