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

/// Refuses input of `len` bytes when it is longer than `max`, as `too_large(len, max)`: each
/// verifier bounds what an untrusted host may make it read before parsing any of it.
pub fn at_most<E>(
    len: usize,
    max: usize,
    too_large: impl FnOnce(usize, usize) -> E,
) -> Result<(), E> {
    if len > max {
        return Err(too_large(len, max));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::at_most;

    #[test]
    fn at_most_admits_the_bound_and_refuses_one_more() {
        let too_large = |len, max| (len, max);
        assert_eq!(at_most(10, 10, too_large), Ok(()));
        assert_eq!(at_most(11, 10, too_large), Err((11, 10)));
    }
}
