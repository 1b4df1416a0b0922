//! `verify_cached`: a warm [`ChainCache`] gives the same verdict as no cache and never turns a
//! refusal into an acceptance: the report signature is always computed, cached certificates
//! are still checked for validity at the given time, and a forged leaf under the cached (real)
//! intermediates is refused.

mod common;

use common::*;
use der::{Decode, Encode};
use p384::ecdsa::signature::Signer;
use p384::ecdsa::{DerSignature, SigningKey};
use sotto_verify_core::x509::CertError;
use sotto_verify_core::UnixTime;
use sotto_verify_nvidia::{
    verify, verify_cached, CertChainInput, ChainCache, GpuError, GpuEvidenceInput,
};
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;

/// A cache that has verified the real H100 evidence.
fn warm() -> ChainCache {
    let mut cache = ChainCache::new();
    verify_cached(&real_evidence(), &policy(), AT, &mut cache).expect("real evidence verifies");
    cache
}

/// `genuine_der` with its key replaced by `key`, which also signs it: same names, validity and
/// extensions as the genuine certificate.
fn impostor_of(genuine_der: &[u8], key: &SigningKey) -> Vec<u8> {
    let mut cert = Certificate::from_der(genuine_der).expect("genuine cert");
    cert.tbs_certificate.subject_public_key_info =
        SubjectPublicKeyInfoOwned::from_key(*key.verifying_key()).expect("spki");
    let tbs = cert.tbs_certificate.to_der().expect("tbs");
    let sig: DerSignature = key.sign(&tbs);
    cert.signature = der::asn1::BitString::from_bytes(sig.as_bytes()).expect("bits");
    cert.to_der().expect("der")
}

#[test]
fn cached_verdict_equals_the_uncached_one() {
    let mut cache = warm();
    // Four links below the pinned root: leaf, GSP BROM, device identity, provisioner ICA.
    assert_eq!(cache.len(), 4);
    let uncached = verify(&real_evidence(), &policy(), AT).unwrap();
    assert_eq!(
        verify_cached(&real_evidence(), &policy(), AT, &mut cache).unwrap(),
        uncached
    );
    assert_eq!(cache.len(), 4);
}

#[test]
fn cached_chain_is_refused_before_it_is_valid() {
    let mut cache = warm();
    // 2021-12-01: after the root's notBefore, before the Provisioner ICA's (2022-03-01).
    let err = verify_cached(
        &real_evidence(),
        &policy(),
        UnixTime(1_638_316_800),
        &mut cache,
    )
    .unwrap_err();
    assert!(
        matches!(err, GpuError::CertChain(CertError::NotYetValid { .. })),
        "{err:?}"
    );
}

#[test]
fn report_signature_is_never_answered_from_the_cache() {
    let mut cache = warm();
    let mut report = real_report();
    let last = report.len() - 1;
    report[last] ^= 0x01;
    let ev = GpuEvidenceInput {
        report,
        ..real_evidence()
    };
    assert_eq!(
        verify_cached(&ev, &policy(), AT, &mut cache).unwrap_err(),
        GpuError::BadReportSignature
    );
}

#[test]
fn missing_link_is_refused_with_a_warm_cache() {
    let mut cache = warm();
    let mut ders = real_evidence().cert_chain.der_certs().expect("ders");
    ders.remove(1);
    let ev = GpuEvidenceInput {
        cert_chain: CertChainInput::Der(ders),
        ..real_evidence()
    };
    let err = verify_cached(&ev, &policy(), AT, &mut cache).unwrap_err();
    assert!(
        matches!(err, GpuError::CertChain(CertError::IssuerMismatch { .. })),
        "{err:?}"
    );
}

#[test]
fn forged_leaf_under_the_cached_intermediates_is_refused() {
    let mut cache = warm();
    let key = SigningKey::from_slice(&[0x22; 48]).expect("key");
    let mut ders = real_evidence().cert_chain.der_certs().expect("ders");
    ders[0] = impostor_of(&ders[0], &key);
    // The report is signed by the impostor's key, so only the leaf's own signature is wrong.
    let ev = GpuEvidenceInput {
        report: sign(&key, &ReportParts::from_real().unsigned()),
        cert_chain: CertChainInput::Der(ders),
        rims: Vec::new(),
    };
    let err = verify_cached(&ev, &policy(), AT, &mut cache).unwrap_err();
    assert!(
        matches!(err, GpuError::CertChain(CertError::BadSignature { .. })),
        "{err:?}"
    );
    assert_eq!(cache.len(), 4);
}

#[test]
fn test_chain_is_refused_under_the_pinned_root_with_a_warm_cache() {
    let mut cache = warm();
    let chain = test_chain(&ChainSpec::default_for_real_fwid());
    let ev = chain.evidence(&ReportParts::from_real());
    assert_eq!(
        verify_cached(&ev, &policy(), AT, &mut cache).unwrap_err(),
        GpuError::UntrustedRoot {
            subject: chain.root.subject()
        }
    );
}
