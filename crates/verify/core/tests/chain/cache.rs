//! [`ChainCache`]: a cached link saves only its signature check, never a validity check,
//! never another certificate's, and refused chains leave nothing in the cache.

use sotto_verify_core::x509::{Cert, CertError};
use sotto_verify_core::{ChainCache, UnixTime};

use super::{milan, read, AT};

/// The ASVK, the CA of the VLEKs, under the same ARK as the ASK.
fn asvk() -> Cert {
    Cert::from_pem_chain(&read("amd-milan-vlek-chain.pem"))
        .expect("vlek chain")
        .swap_remove(0)
}

#[test]
fn verified_links_are_cached_and_reused() {
    let m = milan();
    let mut cache = ChainCache::new();
    m.verify(AT, &mut cache).expect("real chain");
    assert_eq!(cache.len(), 2);
    m.verify(AT, &mut cache).expect("real chain, cached");
    assert_eq!(cache.len(), 2);
}

#[test]
fn cached_links_are_still_checked_for_validity() {
    let m = milan();
    let mut cache = ChainCache::new();
    m.verify(AT, &mut cache).expect("warms the cache");
    // 2031-01-01: after the VCEK's notAfter.
    let late = m.verify(UnixTime(1_924_992_000), &mut cache);
    assert!(
        matches!(late, Err(CertError::Expired { ref subject, .. }) if subject.contains("SEV-VCEK")),
        "{late:?}"
    );
    // 2023-01-01: before the VCEK's notBefore.
    let early = m.verify(UnixTime(1_672_531_200), &mut cache);
    assert!(
        matches!(early, Err(CertError::NotYetValid { ref subject, .. }) if subject.contains("SEV-VCEK")),
        "{early:?}"
    );
}

#[test]
fn a_link_is_cached_for_its_exact_issuer_only() {
    let m = milan();
    let mut cache = ChainCache::new();
    m.verify(AT, &mut cache).expect("warms the cache");
    // The cached VCEK presented under the ASVK (same ARK, different key and name) must be
    // checked, not answered from the VCEK -> ASK entry.
    let err = Cert::verify_chain_to_anchor(&m.vcek, &[asvk()], &m.ark, AT, &mut cache);
    assert!(
        matches!(err, Err(CertError::IssuerMismatch { .. })),
        "{err:?}"
    );
}

#[test]
fn a_refused_chain_caches_none_of_its_links() {
    let m = milan();
    let mut cache = ChainCache::new();
    // VCEK -> ASK verifies, but the ASK was not issued by the ASVK given as anchor.
    let err = Cert::verify_chain_to_anchor(
        &m.vcek,
        std::slice::from_ref(&m.ask),
        &asvk(),
        AT,
        &mut cache,
    );
    assert!(
        matches!(err, Err(CertError::IssuerMismatch { .. })),
        "{err:?}"
    );
    assert!(cache.is_empty());
}

#[test]
fn an_evicted_link_is_verified_again() {
    let m = milan();
    let mut cache = ChainCache::with_capacity(1);
    for _ in 0..2 {
        m.verify(AT, &mut cache).expect("real chain");
        assert_eq!(cache.len(), 1);
    }
}

#[test]
fn verify_chain_still_checks_the_roots_self_signature() {
    let m = milan();
    // The ASK is no self-signed root: verify_chain refuses it as one, while as an anchor it
    // is trusted by configuration.
    let err = Cert::verify_chain(&m.vcek, &[], &m.ask, AT);
    assert!(
        matches!(err, Err(CertError::IssuerMismatch { .. })),
        "{err:?}"
    );
    Cert::verify_chain_to_anchor(&m.vcek, &[], &m.ask, AT, &mut ChainCache::new())
        .expect("the ASK as a configured anchor");
}
