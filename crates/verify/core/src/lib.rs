//! Shared, pure building blocks of Sotto's attestation verifiers.
//!
//! Trust: nothing here trusts its input. Every function takes bytes that came from the
//! untrusted host and either proves a property of them or returns a typed error. There is no
//! I/O and no clock: the verification time is always an argument ([`UnixTime`]), so captured
//! evidence verifies "as of" a chosen instant and the browser build behaves like the native one.

pub mod cache;
pub mod crl;
pub mod x509;

pub use cache::ChainCache;

/// Seconds since the Unix epoch, supplied by the caller (never read from a clock here).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(pub u64);

impl UnixTime {
    pub fn secs(self) -> u64 {
        self.0
    }
}
