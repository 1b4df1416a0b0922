//! `verify_cached`: a warm [`ChainCache`] gives the same verdicts as no cache, and never turns
//! a refusal into an acceptance: cached links are still checked for validity at the given
//! time, a look-alike certificate is not taken for a cached one, and forged evidence under a
//! cached intermediate is refused by the same check as without a cache.

use sotto_verify_snp::sim::forge;
use sotto_verify_snp::{
    roots, verify_cached, CertError, ChainCache, SnpAnchor, SnpError, SnpEvidence, SnpPolicy,
    SnpVerdict, UnixTime,
};

use super::{
    amd, assert_vcek_expired, assert_vcek_not_yet_valid, assert_vcek_signature_refused,
    impostor_ask, milan, mirror_authority, pem_der, rng, sim_anchor, swapped_intermediate, vector,
    AFTER_VCEK, AT, BEFORE_VCEK,
};

/// `ev` under the pinned AMD roots and the default policy, with `cache`.
fn cached(ev: &SnpEvidence, at: UnixTime, cache: &mut ChainCache) -> Result<SnpVerdict, SnpError> {
    verify_cached(ev, &SnpAnchor::Amd, &SnpPolicy::default(), at, cache)
}

/// A cache that has verified the real Milan evidence.
fn warm() -> ChainCache {
    let mut cache = ChainCache::new();
    cached(&milan(), AT, &mut cache).expect("real evidence verifies");
    cache
}

/// `ev` is refused for the VCEK's signature with a warm cache, which keeps its one link.
fn refused_for_the_vcek_signature_when_warm(ev: &SnpEvidence) {
    let mut cache = warm();
    assert_vcek_signature_refused(&cached(ev, AT, &mut cache));
    assert_eq!(cache.len(), 1);
}

#[test]
fn cached_verdicts_equal_uncached_ones_for_every_chain_shape() {
    let mut cache = warm();
    // Only the VCEK's signature by the pinned ASK was computed; the ASK's by the ARK is a
    // constant proven by the roots tests.
    assert_eq!(cache.len(), 1);
    let ask = pem_der(roots::MILAN_ASK_PEM);
    let ark = pem_der(roots::MILAN_ARK_PEM);
    for chain_der in [vec![], vec![ask.clone()], vec![ask, ark]] {
        let ev = SnpEvidence {
            chain_der,
            ..milan()
        };
        let uncached = amd(&ev).unwrap();
        assert_eq!(cached(&ev, AT, &mut cache).unwrap(), uncached);
        assert_eq!(cache.len(), 1);
    }
}

#[test]
fn cached_vcek_is_refused_after_it_expires() {
    assert_vcek_expired(&cached(&milan(), AFTER_VCEK, &mut warm()));
}

#[test]
fn cached_vcek_is_refused_before_it_is_valid() {
    assert_vcek_not_yet_valid(&cached(&milan(), BEFORE_VCEK, &mut warm()));
}

#[test]
fn impostor_ask_with_the_cached_asks_name_is_not_taken_for_it() {
    refused_for_the_vcek_signature_when_warm(&impostor_ask());
}

#[test]
fn forged_vcek_under_the_cached_ask_is_refused() {
    let ev = SnpEvidence {
        endorsement_der: forge::impostor_of(&mut rng(9), &vector("vcek_milan.der")).unwrap(),
        ..milan()
    };
    refused_for_the_vcek_signature_when_warm(&ev);
}

#[test]
fn report_signature_is_checked_under_a_cached_vcek() {
    let mut cache = warm();
    let mut ev = milan();
    // The first byte of the signature's R.
    ev.report[0x2A0] ^= 1;
    assert_eq!(cached(&ev, AT, &mut cache), Err(SnpError::SignatureInvalid));
    let ev = forge::tampered(&milan(), |r| r.measurement[0] ^= 1).unwrap();
    assert_eq!(cached(&ev, AT, &mut cache), Err(SnpError::SignatureInvalid));
}

#[test]
fn other_products_ask_is_refused_with_a_warm_cache() {
    let mut cache = warm();
    let ev = SnpEvidence {
        chain_der: vec![pem_der(roots::GENOA_ASK_PEM)],
        ..milan()
    };
    assert!(matches!(
        cached(&ev, AT, &mut cache),
        Err(SnpError::Chain(CertError::IssuerMismatch { .. }))
    ));
}

#[test]
fn simulated_chain_with_a_swapped_intermediate_caches_nothing() {
    let trusted = mirror_authority();
    let anchor = sim_anchor(&trusted);
    let mut cache = ChainCache::new();
    // Refused, and the other authority's valid link is not remembered.
    let ev = swapped_intermediate(&trusted);
    let err = verify_cached(&ev, &anchor, &SnpPolicy::default(), AT, &mut cache);
    assert!(
        matches!(err, Err(SnpError::Chain(CertError::BadSignature { .. }))),
        "{err:?}"
    );
    assert!(cache.is_empty());

    let good = trusted.evidence(&trusted.issue_report([1; 48], [2; 64]).unwrap());
    for _ in 0..2 {
        let verdict = verify_cached(&good, &anchor, &SnpPolicy::default(), AT, &mut cache)
            .expect("trusted simulated evidence");
        assert_eq!(verdict.platform, "simulated");
        assert_eq!(cache.len(), 2);
    }
}
