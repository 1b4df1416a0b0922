//! The one entry point a client uses to decide whether an enclave is genuine.
//!
//! Trust: the [`Evidence`] arrives through the untrusted relay; nothing in it is believed until
//! the platform verifier has chained it to a root pinned in code (or, for the simulated
//! platform, to a development root the user explicitly accepted).

pub mod evidence;

pub use evidence::{Evidence, GpuEvidence};
