//! `verify_cached`: a warm [`ChainCache`] gives the same verdict as no cache and never turns a
//! refusal into an acceptance: validity windows are checked at the given time whatever is
//! cached, changed collateral or a changed quote signature is verified afresh, and a forged
//! PCK certificate under the cached (real) PCK Platform CA is refused.

#[allow(dead_code)]
mod common;

use common::*;
use sotto_verify_core::crl::CrlError;
use sotto_verify_core::x509::{Cert, CertError};
use sotto_verify_tdx::{
    verify, verify_cached, ChainCache, Quote, TdxError, TdxPolicy, TdxVerdict, UnixTime,
};

const SGX_EXTENSIONS: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.2.840.113741.1.13.1");

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
    let mut cache = warm();
    // 2025-07-19T10:05:00Z: after the PCK CRL's nextUpdate (10:00:35Z).
    let err = real(UnixTime(1_752_919_500), &mut cache);
    assert!(
        matches!(
            err,
            Err(TdxError::CrlExpired {
                crl: "PCK CRL",
                error: CrlError::Expired { .. }
            })
        ),
        "{err:?}"
    );
}

#[test]
fn cached_qe_identity_is_refused_before_its_issue_date() {
    let mut cache = warm();
    // 2025-06-19T10:20:00Z: CRLs already current, QE identity issued at 10:32:27Z.
    assert_eq!(
        real(UnixTime(1_750_328_400), &mut cache),
        Err(TdxError::QeIdentityNotYetValid {
            issue_date: 1_750_329_147,
            at: 1_750_328_400
        })
    );
}

#[test]
fn tampered_collateral_is_verified_afresh() {
    let mut cache = warm();
    let mut json = real_collateral_json();
    json["tcb_info"] = json["tcb_info"]
        .as_str()
        .expect("tcb_info")
        .replacen(
            "\"tcbStatus\":\"OutOfDate\"",
            "\"tcbStatus\":\"UpToDate\"",
            1,
        )
        .into();
    let err = verify_cached(
        &real_quote(),
        &collateral_from(&json),
        &TdxPolicy::strict(),
        AT,
        &mut cache,
    );
    assert_eq!(err, Err(TdxError::TcbInfoSignature));

    let mut json = real_collateral_json();
    json["qe_identity"] = json["qe_identity"]
        .as_str()
        .expect("qe_identity")
        .replacen("\"isvsvn\":4", "\"isvsvn\":0", 1)
        .into();
    let err = verify_cached(
        &real_quote(),
        &collateral_from(&json),
        &TdxPolicy::strict(),
        AT,
        &mut cache,
    );
    assert_eq!(err, Err(TdxError::QeIdentitySignature));
}

#[test]
fn quote_signature_is_never_answered_from_the_cache() {
    let mut cache = warm();
    // The first byte of the quote signature, after the header, body and 4-byte length.
    let mut quote = real_quote();
    quote[48 + 584 + 4] ^= 1;
    let err = verify_cached(
        &quote,
        &real_collateral(),
        &TdxPolicy::strict(),
        AT,
        &mut cache,
    );
    assert_eq!(err, Err(TdxError::QuoteSignature));
}

#[test]
fn forged_pck_under_the_cached_platform_ca_is_refused() {
    let mut cache = warm();
    let before = cache.len();
    let raw = real_quote();
    let real_chain = Cert::from_pem_chain(&Quote::parse(&raw).unwrap().signature.pck_chain_pem)
        .expect("real PCK chain");
    let [real_pck, real_ca, real_root] = real_chain.as_slice() else {
        panic!("real PCK chain is not leaf, CA, root");
    };
    let sgx_ext = real_pck
        .inner()
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == SGX_EXTENSIONS)
        .expect("SGX extension")
        .clone();
    // The real Platform CA and root, presented with a PCK that names the CA as its issuer but
    // is signed by a key of the forger's (which also signs the QE report, so only the PCK's
    // own signature is wrong).
    let mut forge = Forge::new();
    forge.pck_ca.cert = real_ca.inner().clone();
    forge.root.cert = real_root.inner().clone();
    forge.pck = issue(
        "C=US,ST=CA,L=Santa Clara,O=Intel Corporation,CN=Intel SGX PCK Certificate",
        3,
        Some(&forge.pck_ca),
        (real_pck.not_before(), real_pck.not_after()),
        Some(vec![sgx_ext]),
    );
    let err = verify_cached(
        &forge.quote(),
        &real_collateral(),
        &TdxPolicy::strict(),
        AT,
        &mut cache,
    );
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
    let err = verify_cached(
        &forge.quote(),
        &forge.collateral(),
        &TdxPolicy::strict(),
        AT,
        &mut cache,
    );
    assert!(
        matches!(err, Err(TdxError::PckChain(CertError::BadSignature { .. }))),
        "{err:?}"
    );
}
