//! `verify_cached`: a warm [`ChainCache`] gives the same verdict as no cache and never turns a
//! refusal into an acceptance: validity windows are checked at the given time whatever is
//! cached, changed collateral or a changed quote signature is verified afresh, and a forged
//! PCK certificate under the cached (real) PCK Platform CA is refused.

use sotto_verify_core::x509::{Cert, CertError};
use sotto_verify_tdx::{
    verify, verify_cached, ChainCache, Collateral, Quote, TdxError, TdxPolicy, TdxVerdict, UnixTime,
};

use super::forge::{issue, real_sgx_extension, Forge, PCK_NAME};
use super::{
    assert_pck_crl_expired, flipped, qe_identity_downgraded, real_collateral, real_quote,
    tcb_info_upgraded, AFTER_PCK_CRL, AT, BEFORE_QE_IDENTITY, QE_IDENTITY_NOT_YET_VALID, SIG,
};

/// `quote` with `collateral` under the pinned root and the strict policy, with `cache`.
fn cached(
    quote: &[u8],
    collateral: &Collateral,
    cache: &mut ChainCache,
) -> Result<TdxVerdict, TdxError> {
    verify_cached(quote, collateral, &TdxPolicy::strict(), AT, cache)
}

/// The real quote and collateral at `at`, with `cache`.
fn real(at: UnixTime, cache: &mut ChainCache) -> Result<TdxVerdict, TdxError> {
    verify_cached(
        &real_quote(),
        &real_collateral(),
        &TdxPolicy::strict(),
        at,
        cache,
    )
}

/// A cache that has verified the real quote and collateral.
fn warm() -> ChainCache {
    let mut cache = ChainCache::new();
    real(AT, &mut cache).expect("real quote verifies");
    cache
}

#[test]
fn cached_verdict_equals_the_uncached_one() {
    let mut cache = warm();
    // PCK -> Platform CA -> root, TCB signing -> root (once for both collateral chains), two
    // CRLs, the QE report, the QE identity and the TCB info.
    assert_eq!(cache.len(), 8);
    let uncached = verify(&real_quote(), &real_collateral(), &TdxPolicy::strict(), AT).unwrap();
    assert_eq!(real(AT, &mut cache).unwrap(), uncached);
    assert_eq!(cache.len(), 8);
}

#[test]
fn cached_pck_chain_is_refused_after_it_expires() {
    let mut cache = warm();
    // 2040-01-01: after the PCK certificate's notAfter.
    let err = real(UnixTime(2_208_988_800), &mut cache);
    assert!(
        matches!(err, Err(TdxError::PckChain(CertError::Expired { .. }))),
        "{err:?}"
    );
}

#[test]
fn cached_crl_is_refused_after_its_next_update() {
    assert_pck_crl_expired(&real(AFTER_PCK_CRL, &mut warm()));
}

#[test]
fn cached_qe_identity_is_refused_before_its_issue_date() {
    assert_eq!(
        real(BEFORE_QE_IDENTITY, &mut warm()),
        Err(QE_IDENTITY_NOT_YET_VALID)
    );
}

#[test]
fn tampered_collateral_is_verified_afresh() {
    let mut cache = warm();
    let err = cached(&real_quote(), &tcb_info_upgraded(), &mut cache);
    assert_eq!(err, Err(TdxError::TcbInfoSignature));
    let err = cached(&real_quote(), &qe_identity_downgraded(), &mut cache);
    assert_eq!(err, Err(TdxError::QeIdentitySignature));
}

#[test]
fn quote_signature_is_never_answered_from_the_cache() {
    // The first byte of the quote signature.
    let err = cached(&flipped(SIG), &real_collateral(), &mut warm());
    assert_eq!(err, Err(TdxError::QuoteSignature));
}

#[test]
fn forged_pck_under_the_cached_platform_ca_is_refused() {
    let mut cache = warm();
    let before = cache.len();
    let quote = Quote::parse(&real_quote()).unwrap();
    let real_chain = Cert::from_pem_chain(&quote.signature.pck_chain_pem).expect("real PCK chain");
    let [real_pck, real_ca, real_root] = real_chain.as_slice() else {
        panic!("real PCK chain is not leaf, CA, root");
    };
    // The real Platform CA and root, presented with a PCK that names the CA as its issuer but
    // is signed by a key of the forger's (which also signs the QE report, so only the PCK's
    // own signature is wrong).
    let mut forge = Forge::new();
    forge.pck_ca.cert = real_ca.inner().clone();
    forge.root.cert = real_root.inner().clone();
    forge.pck = issue(
        PCK_NAME,
        3,
        Some(&forge.pck_ca),
        (real_pck.not_before(), real_pck.not_after()),
        Some(vec![real_sgx_extension(&quote)]),
    );
    let err = cached(&forge.quote(), &real_collateral(), &mut cache);
    assert!(
        matches!(err, Err(TdxError::PckChain(CertError::BadSignature { ref subject })) if subject.contains("PCK Certificate")),
        "{err:?}"
    );
    assert_eq!(cache.len(), before);
}

#[test]
fn foreign_root_named_like_intels_is_refused_with_a_warm_cache() {
    let mut cache = warm();
    let forge = Forge::new();
    let err = cached(&forge.quote(), &forge.collateral(), &mut cache);
    assert!(
        matches!(err, Err(TdxError::PckChain(CertError::BadSignature { .. }))),
        "{err:?}"
    );
}
