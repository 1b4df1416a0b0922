//! A caller-owned memo of signatures already verified, so that evidence from a platform seen
//! before skips the signature checks of its unchanged certificate chain and collateral.
//!
//! Trust: an entry records one fact about two exact byte strings: "the object whose bytes
//! hash to S carries a valid signature by the key of the certificate whose DER hashes to I"
//! (SHA-256 of the exact bytes, domain-separated by kind of object). That fact does not depend
//! on time or on anything else the verifier is told, so a hit replaces only the signature
//! computation: validity windows, revocation and every other check still run on each call,
//! and a different certificate with the same names hashes differently and misses. Chain links
//! are added only once their whole chain has verified to the trusted anchor, so refused
//! evidence leaves nothing behind; signed objects (CRLs, signed collateral) are added when
//! their signature verifies under a signer the caller has already verified. The cache is
//! bounded: when full, the oldest entry is dropped.

use std::collections::VecDeque;

use sha2::{Digest, Sha256};

/// What kind of object a signature covers; hashed into the entry so that bytes read as one
/// kind can never answer for another.
#[derive(Clone, Copy)]
pub(crate) enum Signed {
    Certificate = 1,
    Crl = 2,
    Data = 3,
}

/// One verified signature: the signer's certificate and the signed object, by digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Link {
    signer: [u8; 32],
    signed: [u8; 32],
}

impl Link {
    /// `parts` are length-prefixed before hashing, so different splits cannot collide.
    pub(crate) fn new(signer_fingerprint: [u8; 32], kind: Signed, parts: &[&[u8]]) -> Link {
        let mut h = Sha256::new();
        h.update([kind as u8]);
        for part in parts {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        Link {
            signer: signer_fingerprint,
            signed: h.finalize().into(),
        }
    }
}

/// Signatures already verified, owned by the caller and passed to the `verify_cached`
/// functions of the platform verifiers. One cache may serve every platform.
#[derive(Clone, Debug)]
pub struct ChainCache {
    links: VecDeque<Link>,
    capacity: usize,
}

impl Default for ChainCache {
    fn default() -> Self {
        ChainCache::new()
    }
}

impl ChainCache {
    /// Room for the chains and collateral of a few dozen platforms (an entry is 64 bytes).
    pub const DEFAULT_CAPACITY: usize = 256;

    pub fn new() -> Self {
        ChainCache::with_capacity(ChainCache::DEFAULT_CAPACITY)
    }

    /// A cache holding at most `capacity` signatures; `0` remembers nothing.
    pub fn with_capacity(capacity: usize) -> Self {
        ChainCache {
            links: VecDeque::new(),
            capacity,
        }
    }

    /// How many verified signatures are remembered.
    pub fn len(&self) -> usize {
        self.links.len()
    }

    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// Forgets everything, e.g. after updating the pinned roots' configuration.
    pub fn clear(&mut self) {
        self.links.clear();
    }

    pub(crate) fn contains(&self, link: &Link) -> bool {
        self.links.contains(link)
    }

    pub(crate) fn insert(&mut self, link: Link) {
        if self.capacity == 0 || self.contains(&link) {
            return;
        }
        while self.links.len() >= self.capacity {
            self.links.pop_front();
        }
        self.links.push_back(link);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(n: u8) -> Link {
        Link::new([n; 32], Signed::Certificate, &[&[n]])
    }

    #[test]
    fn full_cache_drops_the_oldest_entry() {
        let mut cache = ChainCache::with_capacity(2);
        cache.insert(link(1));
        cache.insert(link(2));
        cache.insert(link(2));
        assert_eq!(cache.len(), 2);
        cache.insert(link(3));
        assert_eq!(cache.len(), 2);
        assert!(!cache.contains(&link(1)));
        assert!(cache.contains(&link(2)) && cache.contains(&link(3)));
    }

    #[test]
    fn zero_capacity_remembers_nothing() {
        let mut cache = ChainCache::with_capacity(0);
        cache.insert(link(1));
        assert!(cache.is_empty());
    }

    #[test]
    fn kind_and_part_boundaries_are_part_of_the_key() {
        let cert = Link::new([0; 32], Signed::Certificate, &[b"ab"]);
        assert_ne!(cert, Link::new([0; 32], Signed::Crl, &[b"ab"]));
        assert_ne!(cert, Link::new([0; 32], Signed::Certificate, &[b"a", b"b"]));
        assert_ne!(cert, Link::new([1; 32], Signed::Certificate, &[b"ab"]));
        assert_eq!(cert, Link::new([0; 32], Signed::Certificate, &[b"ab"]));
    }
}
