//! The role checks: issuers must be CAs allowed to sign certificates within their path
//! length, and the leaf must be allowed to sign data. (Forged chains that break each rule are
//! in the TDX and NVIDIA forged suites.)

use sotto_verify_core::x509::{Cert, CertError, ChainRules};
use sotto_verify_core::ChainCache;

use super::{milan, AT};

#[test]
fn real_chain_meets_the_vendor_rules() {
    let m = milan();
    for rules in [ChainRules::VENDOR, ChainRules::BASELINE] {
        Cert::verify_chain_to_anchor_with(
            &m.vcek,
            std::slice::from_ref(&m.ask),
            &m.ark,
            AT,
            &mut ChainCache::new(),
            rules,
        )
        .expect("real Milan chain");
    }
}

#[test]
fn a_ca_key_presented_as_the_signing_leaf_is_refused() {
    // The ASK's keyUsage is keyCertSign only: it may issue VCEKs but never sign a report.
    let m = milan();
    let err = Cert::verify_chain_to_anchor(&m.ask, &[], &m.ark, AT, &mut ChainCache::new());
    assert!(
        matches!(err, Err(CertError::DigitalSignatureNotAllowed { ref subject }) if subject.contains("SEV-Milan")),
        "{err:?}"
    );
}

#[test]
fn a_vcek_is_no_ca_and_carries_no_key_usage() {
    // So it can never be an issuer (basicConstraints) and only a present keyUsage is checked
    // on signing leaves.
    let vcek = milan().vcek;
    assert!(!vcek.is_ca());
    assert_eq!(vcek.basic_constraints(), Ok(None));
    assert_eq!(vcek.key_usage(), Ok(None));
    vcek.check_may_sign_data()
        .expect("no keyUsage to forbid it");
}

#[test]
fn the_asks_path_length_admits_no_intermediate_below_it() {
    // The ASK (pathLenConstraint 0) as the anchor of VCEK -> ASK: zero intermediates, allowed.
    let m = milan();
    let bc = m
        .ask
        .basic_constraints()
        .expect("well formed")
        .expect("present");
    assert_eq!((bc.ca, bc.path_len_constraint), (true, Some(0)));
    Cert::verify_chain_to_anchor(&m.vcek, &[], &m.ask, AT, &mut ChainCache::new())
        .expect("no intermediate below the ASK");
}
