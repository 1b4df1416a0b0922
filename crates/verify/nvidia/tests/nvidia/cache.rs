//! `verify_cached`: a warm [`ChainCache`] gives the same verdict as no cache and never turns a
//! refusal into an acceptance: the report signature is always computed, cached certificates
//! are still checked for validity at the given time, and a forged leaf under the cached (real)
//! intermediates is refused.

use der::{Decode, Encode};
use p384::ecdsa::signature::Signer;
use p384::ecdsa::{DerSignature, SigningKey};
use sotto_verify_core::x509::CertError;
use sotto_verify_nvidia::{
    verify_cached, CertChainInput, ChainCache, GpuError, GpuEvidenceInput, GpuVerdict,
};
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;

use super::resign::{real_fwid_chain, sign, ReportParts};
use super::{
    assert_chain_refusal, chain_link_missing, pinned, policy, real_evidence, signature_flipped, AT,
    BEFORE_ICA,
};

/// `ev` under the pinned root and the default policy, with `cache`, at [`AT`].
fn cached(ev: &GpuEvidenceInput, cache: &mut ChainCache) -> Result<GpuVerdict, GpuError> {
    verify_cached(ev, &policy(), AT, cache)
}

/// A cache that has verified the real H100 evidence.
fn warm() -> ChainCache {
    let mut cache = ChainCache::new();
    cached(&real_evidence(), &mut cache).expect("real evidence verifies");
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
    let uncached = pinned(&real_evidence()).unwrap();
    assert_eq!(cached(&real_evidence(), &mut cache).unwrap(), uncached);
    assert_eq!(cache.len(), 4);
}

#[test]
fn cached_chain_is_refused_before_it_is_valid() {
    let got = verify_cached(&real_evidence(), &policy(), BEFORE_ICA, &mut warm());
    assert_chain_refusal(got, |e| matches!(e, CertError::NotYetValid { .. }));
}

#[test]
fn report_signature_is_never_answered_from_the_cache() {
    let got = cached(&signature_flipped(), &mut warm());
    assert_eq!(got.unwrap_err(), GpuError::BadReportSignature);
}

#[test]
fn missing_link_is_refused_with_a_warm_cache() {
    let got = cached(&chain_link_missing(), &mut warm());
    assert_chain_refusal(got, |e| matches!(e, CertError::IssuerMismatch { .. }));
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
    let got = cached(&ev, &mut cache);
    assert_chain_refusal(got, |e| matches!(e, CertError::BadSignature { .. }));
    assert_eq!(cache.len(), 4);
}

#[test]
fn test_chain_is_refused_under_the_pinned_root_with_a_warm_cache() {
    let chain = real_fwid_chain();
    let subject = chain.root.subject();
    let got = cached(&chain.real_evidence(), &mut warm());
    assert_eq!(got.unwrap_err(), GpuError::UntrustedRoot { subject });
}
