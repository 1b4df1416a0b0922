//! `verify_cached`: a warm [`ChainCache`] gives the same verdicts as no cache, and never turns
//! a refusal into an acceptance: cached links are still checked for validity at the given
//! time, a look-alike certificate is not taken for a cached one, and forged evidence under a
//! cached intermediate is refused by the same check as without a cache.

mod common;

use common::{milan, vector, AT};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sotto_verify_core::x509::Cert;
use sotto_verify_snp::sim::{forge, SimAuthority};
use sotto_verify_snp::{
    roots, verify, verify_cached, AttestationReport, CertError, ChainCache, Product, SnpAnchor,
    SnpError, SnpEvidence, SnpPolicy, SnpVerdict, TcbVersion, UnixTime,
};

fn pem_der(pem: &str) -> Vec<u8> {
    Cert::from_pem_chain(pem.as_bytes()).unwrap()[0]
        .der()
        .to_vec()
}

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn amd(ev: &SnpEvidence, at: UnixTime, cache: &mut ChainCache) -> Result<SnpVerdict, SnpError> {
    verify_cached(ev, &SnpAnchor::Amd, &SnpPolicy::default(), at, cache)
}

/// A cache that has verified the real Milan evidence.
fn warm() -> ChainCache {
    let mut cache = ChainCache::new();
    amd(&milan(), AT, &mut cache).expect("real evidence verifies");
    cache
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
        let uncached = verify(&ev, &SnpAnchor::Amd, &SnpPolicy::default(), AT).unwrap();
        assert_eq!(amd(&ev, AT, &mut cache).unwrap(), uncached);
        assert_eq!(cache.len(), 1);
    }
}

#[test]
fn cached_vcek_is_refused_after_it_expires() {
    let mut cache = warm();
    // 2031-01-01: the Milan VCEK expired on 2030-04-03.
    let err = amd(&milan(), UnixTime(1_924_992_000), &mut cache);
    assert!(
        matches!(err, Err(SnpError::Chain(CertError::Expired { ref subject, .. })) if subject.contains("SEV-VCEK")),
        "{err:?}"
    );
}

#[test]
fn cached_vcek_is_refused_before_it_is_valid() {
    let mut cache = warm();
    // 2023-01-01: before the Milan VCEK's notBefore (2023-04-03).
    let err = amd(&milan(), UnixTime(1_672_531_200), &mut cache);
    assert!(
        matches!(err, Err(SnpError::Chain(CertError::NotYetValid { ref subject, .. })) if subject.contains("SEV-VCEK")),
        "{err:?}"
    );
}

#[test]
fn impostor_ask_with_the_cached_asks_name_is_not_taken_for_it() {
    let mut cache = warm();
    let impostor = forge::impostor_of(&mut rng(4), &pem_der(roots::MILAN_ASK_PEM)).unwrap();
    let ev = SnpEvidence {
        chain_der: vec![impostor, pem_der(roots::MILAN_ARK_PEM)],
        ..milan()
    };
    let err = amd(&ev, AT, &mut cache);
    assert!(
        matches!(err, Err(SnpError::Chain(CertError::BadSignature { ref subject })) if subject.contains("SEV-VCEK")),
        "{err:?}"
    );
    assert_eq!(cache.len(), 1);
}

#[test]
fn forged_vcek_under_the_cached_ask_is_refused() {
    let mut cache = warm();
    let ev = SnpEvidence {
        endorsement_der: forge::impostor_of(&mut rng(9), &vector("vcek_milan.der")).unwrap(),
        ..milan()
    };
    let err = amd(&ev, AT, &mut cache);
    assert!(
        matches!(err, Err(SnpError::Chain(CertError::BadSignature { ref subject })) if subject.contains("SEV-VCEK")),
        "{err:?}"
    );
    assert_eq!(cache.len(), 1);
}

#[test]
fn report_signature_is_checked_under_a_cached_vcek() {
    let mut cache = warm();
    let mut ev = milan();
    // The first byte of the signature's R.
    ev.report[0x2A0] ^= 1;
    assert_eq!(amd(&ev, AT, &mut cache), Err(SnpError::SignatureInvalid));
    let ev = forge::tampered(&milan(), |r| r.measurement[0] ^= 1).unwrap();
    assert_eq!(amd(&ev, AT, &mut cache), Err(SnpError::SignatureInvalid));
}

#[test]
fn other_products_ask_is_refused_with_a_warm_cache() {
    let mut cache = warm();
    let ev = SnpEvidence {
        chain_der: vec![pem_der(roots::GENOA_ASK_PEM)],
        ..milan()
    };
    assert!(matches!(
        amd(&ev, AT, &mut cache),
        Err(SnpError::Chain(CertError::IssuerMismatch { .. }))
    ));
}

#[test]
fn simulated_chain_with_a_swapped_intermediate_caches_nothing() {
    let report = AttestationReport::parse(&milan().report).unwrap();
    let tcb = TcbVersion::decode(report.reported_tcb, Product::Milan);
    let trusted = SimAuthority::generate(&mut rng(1), AT, report.chip_id, tcb).unwrap();
    let other = SimAuthority::generate(&mut rng(8), AT, [7; 64], tcb).unwrap();
    let anchor = SnpAnchor::Simulated {
        root_der: trusted.root_der().to_vec(),
    };
    let mut cache = ChainCache::new();
    let mut ev = other.evidence(&other.issue_report([1; 48], [2; 64]).unwrap());
    // The other authority's chip and intermediate (a valid link), presented with the trusted
    // root: refused, and the valid link is not remembered.
    ev.chain_der = vec![other.chain_der()[0].clone(), trusted.root_der().to_vec()];
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
