//! [`ChainCache`] through [`Cert::verify_chain_to_anchor`] on AMD's real Milan chain: a cached
//! link saves only its signature check, never a validity check, never another certificate's,
//! and refused chains leave nothing in the cache.

use sotto_verify_core::x509::{Cert, CertError};
use sotto_verify_core::{ChainCache, UnixTime};

// Found at run time (cargo sets CARGO_MANIFEST_DIR for tests and examples), not baked in at
// compile time: a target directory shared by checkouts at different paths would otherwise run
// a binary that looks for the vectors where another checkout keeps them.
fn dir() -> String {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo");
    format!("{manifest}/../../../../shared/vectors/sev-snp/")
}
/// Inside the VCEK's validity (2023-04-03 .. 2030-04-03) and the ASK's and ARK's.
const AT: UnixTime = UnixTime(1_748_736_000);

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}{name}", dir())).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `(vcek, ask, ark)`.
fn milan() -> (Cert, Cert, Cert) {
    let vcek = Cert::from_der(&read("vcek_milan.der")).expect("vcek");
    let mut chain = Cert::from_pem_chain(&read("amd-milan-vcek-chain.pem")).expect("chain");
    let ark = chain.pop().expect("ark");
    let ask = chain.pop().expect("ask");
    (vcek, ask, ark)
}

fn asvk() -> Cert {
    Cert::from_pem_chain(&read("amd-milan-vlek-chain.pem"))
        .expect("vlek chain")
        .swap_remove(0)
}

#[test]
fn verified_links_are_cached_and_reused() {
    let (vcek, ask, ark) = milan();
    let mut cache = ChainCache::new();
    Cert::verify_chain_to_anchor(&vcek, std::slice::from_ref(&ask), &ark, AT, &mut cache)
        .expect("real chain");
    assert_eq!(cache.len(), 2);
    Cert::verify_chain_to_anchor(&vcek, std::slice::from_ref(&ask), &ark, AT, &mut cache)
        .expect("real chain, cached");
    assert_eq!(cache.len(), 2);
}

#[test]
fn cached_links_are_still_checked_for_validity() {
    let (vcek, ask, ark) = milan();
    let mut cache = ChainCache::new();
    Cert::verify_chain_to_anchor(&vcek, std::slice::from_ref(&ask), &ark, AT, &mut cache)
        .expect("warms the cache");
    // 2031-01-01: after the VCEK's notAfter.
    let late = Cert::verify_chain_to_anchor(
        &vcek,
        std::slice::from_ref(&ask),
        &ark,
        UnixTime(1_924_992_000),
        &mut cache,
    );
    assert!(
        matches!(late, Err(CertError::Expired { ref subject, .. }) if subject.contains("SEV-VCEK")),
        "{late:?}"
    );
    // 2023-01-01: before the VCEK's notBefore.
    let early = Cert::verify_chain_to_anchor(
        &vcek,
        std::slice::from_ref(&ask),
        &ark,
        UnixTime(1_672_531_200),
        &mut cache,
    );
    assert!(
        matches!(early, Err(CertError::NotYetValid { ref subject, .. }) if subject.contains("SEV-VCEK")),
        "{early:?}"
    );
}

#[test]
fn a_link_is_cached_for_its_exact_issuer_only() {
    let (vcek, ask, ark) = milan();
    let mut cache = ChainCache::new();
    Cert::verify_chain_to_anchor(&vcek, std::slice::from_ref(&ask), &ark, AT, &mut cache)
        .expect("warms the cache");
    // The cached VCEK presented under the ASVK (same ARK, different key and name) must be
    // checked, not answered from the VCEK -> ASK entry.
    let err = Cert::verify_chain_to_anchor(&vcek, &[asvk()], &ark, AT, &mut cache);
    assert!(
        matches!(err, Err(CertError::IssuerMismatch { .. })),
        "{err:?}"
    );
}

#[test]
fn a_refused_chain_caches_none_of_its_links() {
    let (vcek, ask, _ark) = milan();
    let mut cache = ChainCache::new();
    // VCEK -> ASK verifies, but the ASK was not issued by the ASVK given as anchor.
    let err =
        Cert::verify_chain_to_anchor(&vcek, std::slice::from_ref(&ask), &asvk(), AT, &mut cache);
    assert!(
        matches!(err, Err(CertError::IssuerMismatch { .. })),
        "{err:?}"
    );
    assert!(cache.is_empty());
}

#[test]
fn an_evicted_link_is_verified_again() {
    let (vcek, ask, ark) = milan();
    let mut cache = ChainCache::with_capacity(1);
    for _ in 0..2 {
        Cert::verify_chain_to_anchor(&vcek, std::slice::from_ref(&ask), &ark, AT, &mut cache)
            .expect("real chain");
        assert_eq!(cache.len(), 1);
    }
}

#[test]
fn verify_chain_still_checks_the_roots_self_signature() {
    let (vcek, ask, _ark) = milan();
    // The ASK is no self-signed root: verify_chain refuses it as one, while as an anchor it
    // is trusted by configuration.
    let err = Cert::verify_chain(&vcek, &[], &ask, AT);
    assert!(
        matches!(err, Err(CertError::IssuerMismatch { .. })),
        "{err:?}"
    );
    Cert::verify_chain_to_anchor(&vcek, &[], &ask, AT, &mut ChainCache::new())
        .expect("the ASK as a configured anchor");
}
