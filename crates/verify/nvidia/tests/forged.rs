//! Forged and damaged GPU evidence: every case must be refused with the exact error variant
//! of the check that catches it. Cases past the signature check use reports re-signed under a
//! locally generated test chain and [`verify_with_root`] with that chain's root; the same
//! evidence is shown to be refused under the pinned NVIDIA root.

mod common;

use common::*;
use sotto_verify_core::x509::CertError;
use sotto_verify_core::UnixTime;
use sotto_verify_nvidia::spdm::{field, MAX_REPORT_LEN, MAX_TRAILING_ZERO_PADDING};
use sotto_verify_nvidia::{
    verify, verify_with_root, CcMode, CertChainInput, GpuError, GpuEvidenceInput, GpuPolicy, Rim,
    RimError, SpdmError, SpdmEvidence,
};

fn with_report(report: Vec<u8>) -> GpuEvidenceInput {
    GpuEvidenceInput {
        report,
        ..real_evidence()
    }
}

fn real_rim() -> Rim {
    Rim::parse(RIM_XML.as_bytes()).expect("RIM")
}

/// Report parts whose VBIOS version is the RIM's and whose blocks equal the RIM's first
/// reference value at every active index, so that a faithful comparison matches all of them.
fn parts_matching_rim(rim: &Rim) -> ReportParts {
    let mut parts = ReportParts::from_real();
    parts.set_opaque(field::VBIOS_VERSION, &vbios_bytes_for(&rim.version));
    for m in rim.measurements.iter().filter(|m| m.active) {
        parts.set_block(
            u8::try_from(m.index + 1).expect("index"),
            &m.alternatives[0],
        );
    }
    parts
}

// --- caught on the real evidence ---------------------------------------------------------

#[test]
fn wrong_nonce_is_refused() {
    let mut other = nonce();
    other[0] ^= 0xFF;
    let err = verify(&real_evidence(), &GpuPolicy::new(other), AT).unwrap_err();
    assert_eq!(
        err,
        GpuError::NonceMismatch {
            expected: hex::encode(other),
            found: NONCE_HEX.to_string(),
        }
    );
}

#[test]
fn signature_bit_flip_is_refused() {
    let mut report = real_report();
    let last = report.len() - 1;
    report[last] ^= 0x01;
    let err = verify(&with_report(report), &policy(), AT).unwrap_err();
    assert_eq!(err, GpuError::BadReportSignature);
}

#[test]
fn changed_measurement_block_breaks_signature() {
    let mut report = real_report();
    // Request (37) + response header (8) + block 1 header (4) + DMTF header (3): block 1's value.
    report[37 + 8 + 4 + 3] ^= 0x80;
    SpdmEvidence::parse(&report).expect("still well formed");
    let err = verify(&with_report(report), &policy(), AT).unwrap_err();
    assert_eq!(err, GpuError::BadReportSignature);
}

#[test]
fn changed_request_nonce_breaks_signature() {
    let mut report = real_report();
    report[4] ^= 0x01;
    let mut expected = nonce();
    expected[0] ^= 0x01;
    let err = verify(&with_report(report), &GpuPolicy::new(expected), AT).unwrap_err();
    assert_eq!(err, GpuError::BadReportSignature);
}

#[test]
fn missing_chain_link_is_refused() {
    let mut ders = real_evidence().cert_chain.der_certs().expect("ders");
    ders.remove(1); // the GSP BROM certificate that issued the leaf
    let ev = GpuEvidenceInput {
        cert_chain: CertChainInput::Der(ders),
        ..real_evidence()
    };
    let err = verify(&ev, &policy(), AT).unwrap_err();
    assert!(
        matches!(err, GpuError::CertChain(CertError::IssuerMismatch { .. })),
        "{err:?}"
    );
}

#[test]
fn chain_before_its_validity_is_refused() {
    // 2021-12-01: after the root's notBefore, before the Provisioner ICA's (2022-03-01).
    let err = verify(&real_evidence(), &policy(), UnixTime(1_638_316_800)).unwrap_err();
    assert!(
        matches!(err, GpuError::CertChain(CertError::NotYetValid { .. })),
        "{err:?}"
    );
}

#[test]
fn empty_chain_is_refused() {
    let ev = GpuEvidenceInput {
        cert_chain: CertChainInput::Der(Vec::new()),
        ..real_evidence()
    };
    assert_eq!(
        verify(&ev, &policy(), AT).unwrap_err(),
        GpuError::EmptyCertChain
    );
}

#[test]
fn legacy_report_refused_when_policy_requires_cc_flag() {
    let strict = GpuPolicy {
        require_cc_feature_flag: true,
        ..policy()
    };
    assert_eq!(
        verify(&real_evidence(), &strict, AT).unwrap_err(),
        GpuError::CcModeNotAttested
    );
}

#[test]
fn missing_rim_refused_when_policy_requires_one() {
    let strict = GpuPolicy {
        require_rim: true,
        ..policy()
    };
    assert_eq!(
        verify(&real_evidence(), &strict, AT).unwrap_err(),
        GpuError::RimRequired
    );
}

#[test]
fn rim_for_other_vbios_is_refused() {
    // The published RIM describes VBIOS 96.00.5E.00.01; the published report is 96.00.9F.00.01.
    let ev = GpuEvidenceInput {
        rims: vec![real_rim()],
        ..real_evidence()
    };
    assert_eq!(
        verify(&ev, &policy(), AT).unwrap_err(),
        GpuError::RimVersionMismatch {
            rim_version: "96.00.5E.00.01".into(),
            driver_version: Some("550.90.07".into()),
            vbios_version: Some("96.00.9F.00.01".into()),
        }
    );
}

// --- malformed reports -----------------------------------------------------------------

#[test]
fn truncated_report_is_refused() {
    let report = real_report();
    let cut = report[..report.len() - 10].to_vec();
    let err = verify(&with_report(cut), &policy(), AT).unwrap_err();
    assert!(
        matches!(
            err,
            GpuError::Parse(SpdmError::Truncated {
                field: "signature",
                ..
            })
        ),
        "{err:?}"
    );
    for len in [0, 1, 36, 37, 45, 100] {
        let err = verify(&with_report(report[..len].to_vec()), &policy(), AT).unwrap_err();
        assert!(
            matches!(err, GpuError::Parse(SpdmError::Truncated { .. })),
            "{len}: {err:?}"
        );
    }
}

#[test]
fn oversized_report_is_refused() {
    let mut report = real_report();
    report.resize(MAX_REPORT_LEN + 1, 0);
    assert_eq!(
        verify(&with_report(report), &policy(), AT).unwrap_err(),
        GpuError::Parse(SpdmError::TooLarge {
            len: MAX_REPORT_LEN + 1,
            max: MAX_REPORT_LEN
        })
    );
}

#[test]
fn trailing_garbage_is_refused() {
    let mut report = real_report();
    report.extend_from_slice(&[0xAB; 3]);
    assert_eq!(
        verify(&with_report(report), &policy(), AT).unwrap_err(),
        GpuError::Parse(SpdmError::TrailingBytes { count: 3 })
    );
}

#[test]
fn garbage_opaque_data_is_refused() {
    // A driver-version field that claims 255 bytes but holds 1.
    let unsigned =
        ReportParts::from_real().unsigned_with_raw_opaque(&[0x03, 0x00, 0xFF, 0x00, b'5']);
    let report = sign(
        &test_chain(&ChainSpec::default_for_real_fwid()).leaf_key,
        &unsigned,
    );
    assert_eq!(
        verify(&with_report(report), &policy(), AT).unwrap_err(),
        GpuError::Parse(SpdmError::OpaqueTruncated { offset: 0 })
    );
}

#[test]
fn duplicated_opaque_field_is_refused() {
    let mut parts = ReportParts::from_real();
    let driver = parts.opaque[7].clone();
    assert_eq!(driver.field_type, field::DRIVER_VERSION);
    parts.opaque.push(driver);
    let report = sign(
        &test_chain(&ChainSpec::default_for_real_fwid()).leaf_key,
        &parts.unsigned(),
    );
    assert_eq!(
        verify(&with_report(report), &policy(), AT).unwrap_err(),
        GpuError::Parse(SpdmError::DuplicateOpaqueField {
            field_type: field::DRIVER_VERSION
        })
    );
}

#[test]
fn non_ascii_driver_version_is_refused() {
    let mut parts = ReportParts::from_real();
    parts.set_opaque(field::DRIVER_VERSION, b"550\xff90\x00");
    let report = sign(
        &test_chain(&ChainSpec::default_for_real_fwid()).leaf_key,
        &parts.unsigned(),
    );
    assert_eq!(
        verify(&with_report(report), &policy(), AT).unwrap_err(),
        GpuError::Parse(SpdmError::OpaqueFieldInvalid {
            field_type: field::DRIVER_VERSION,
            reason: "not a printable ASCII string"
        })
    );
}

#[test]
fn wrong_spdm_version_is_refused() {
    let mut report = real_report();
    report[0] = 0x10;
    assert_eq!(
        verify(&with_report(report), &policy(), AT).unwrap_err(),
        GpuError::Parse(SpdmError::WrongVersion {
            message: "request",
            found: 0x10
        })
    );
    let mut report = real_report();
    report[37] = 0x12;
    assert_eq!(
        verify(&with_report(report), &policy(), AT).unwrap_err(),
        GpuError::Parse(SpdmError::WrongVersion {
            message: "response",
            found: 0x12
        })
    );
}

#[test]
fn wrong_spdm_codes_are_refused() {
    let mut report = real_report();
    report[1] = 0xE1;
    assert_eq!(
        verify(&with_report(report), &policy(), AT).unwrap_err(),
        GpuError::Parse(SpdmError::WrongRequestCode { found: 0xE1 })
    );
    let mut report = real_report();
    report[38] = 0x7F;
    assert_eq!(
        verify(&with_report(report), &policy(), AT).unwrap_err(),
        GpuError::Parse(SpdmError::WrongResponseCode { found: 0x7F })
    );
}

#[test]
fn unsigned_or_partial_request_is_refused() {
    let mut report = real_report();
    report[2] = 0x00;
    assert_eq!(
        verify(&with_report(report), &policy(), AT).unwrap_err(),
        GpuError::Parse(SpdmError::SignatureNotRequested { param1: 0 })
    );
    let mut report = real_report();
    report[3] = 0x01;
    assert_eq!(
        verify(&with_report(report), &policy(), AT).unwrap_err(),
        GpuError::Parse(SpdmError::NotAllMeasurements { param2: 1 })
    );
}

#[test]
fn block_count_mismatch_is_refused() {
    let mut report = real_report();
    report[37 + 4] = 63;
    assert_eq!(
        verify(&with_report(report), &policy(), AT).unwrap_err(),
        GpuError::Parse(SpdmError::BlockCountMismatch {
            declared: 63,
            found: 64
        })
    );
}

// --- re-signed under a test chain ------------------------------------------------------

#[test]
fn test_chain_evidence_verifies_only_under_its_own_root() {
    let chain = test_chain(&ChainSpec::default_for_real_fwid());
    let ev = chain.evidence(&ReportParts::from_real());
    let verdict =
        verify_with_root(&ev, &policy(), AT, &chain.root).expect("valid under the test root");
    assert_eq!(verdict.cc_mode, CcMode::LegacyUnflagged);
    assert_eq!(
        verify(&ev, &policy(), AT).unwrap_err(),
        GpuError::UntrustedRoot {
            subject: chain.root.subject()
        }
    );
}

#[test]
fn test_chain_without_its_root_is_refused_under_pinned_root() {
    let chain = test_chain(&ChainSpec::default_for_real_fwid());
    let mut ev = chain.evidence(&ReportParts::from_real());
    ev.cert_chain = CertChainInput::Der(vec![
        chain.leaf.der().to_vec(),
        chain.intermediate.der().to_vec(),
    ]);
    let err = verify(&ev, &policy(), AT).unwrap_err();
    assert!(
        matches!(err, GpuError::CertChain(CertError::IssuerMismatch { .. })),
        "{err:?}"
    );
}

#[test]
fn real_chain_with_test_signed_report_is_refused() {
    let chain = test_chain(&ChainSpec::default_for_real_fwid());
    let report = sign(&chain.leaf_key, &ReportParts::from_real().unsigned());
    assert_eq!(
        verify(&with_report(report), &policy(), AT).unwrap_err(),
        GpuError::BadReportSignature
    );
}

#[test]
fn cc_mode_off_is_refused() {
    let chain = test_chain(&ChainSpec::default_for_real_fwid());
    let mut parts = ReportParts::from_real();
    parts.set_opaque(FEATURE_FLAG, &[0x03]);
    let err = verify_with_root(&chain.evidence(&parts), &policy(), AT, &chain.root).unwrap_err();
    assert_eq!(err, GpuError::CcModeOff { feature_flag: 3 });
}

#[test]
fn cc_feature_flags_map_to_modes() {
    let chain = test_chain(&ChainSpec::default_for_real_fwid());
    let strict = GpuPolicy {
        require_cc_feature_flag: true,
        ..policy()
    };
    for (flag, mode) in [
        (0u8, CcMode::MultiGpuPassthrough),
        (1, CcMode::SingleGpuPassthrough),
    ] {
        let mut parts = ReportParts::from_real();
        parts.set_opaque(FEATURE_FLAG, &[flag]);
        let verdict = verify_with_root(&chain.evidence(&parts), &strict, AT, &chain.root)
            .expect("CC mode accepted");
        assert_eq!(verdict.cc_mode, mode);
    }
}

#[test]
fn protected_pcie_is_refused_unless_allowed() {
    let chain = test_chain(&ChainSpec::default_for_real_fwid());
    let mut parts = ReportParts::from_real();
    parts.set_opaque(FEATURE_FLAG, &[0x02]);
    let ev = chain.evidence(&parts);
    assert_eq!(
        verify_with_root(&ev, &policy(), AT, &chain.root).unwrap_err(),
        GpuError::ProtectedPcieRefused
    );
    let allow = GpuPolicy {
        accept_protected_pcie: true,
        ..policy()
    };
    let verdict = verify_with_root(&ev, &allow, AT, &chain.root).expect("allowed");
    assert_eq!(verdict.cc_mode, CcMode::ProtectedPcie);
}

#[test]
fn rim_match_reports_matched_indices() {
    let rim = real_rim();
    let chain = test_chain(&ChainSpec::default_for_real_fwid());
    let mut ev = chain.evidence(&parts_matching_rim(&rim));
    ev.rims = vec![rim];
    let verdict = verify_with_root(&ev, &policy(), AT, &chain.root).expect("matches RIM");
    assert_eq!(
        verdict.matched_indices,
        vec![1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13]
    );
    assert!(verdict.skipped_indices.is_empty());
    assert_eq!(verdict.rim_sha256, vec![hex::encode(ev.rims[0].sha256)]);
    assert!(!verdict.rim_signature_checked);
    assert!(verdict.checks.contains(&"measurements_match_rim"));
}

#[test]
fn measurement_not_matching_rim_is_refused() {
    let rim = real_rim();
    let chain = test_chain(&ChainSpec::default_for_real_fwid());
    let mut parts = parts_matching_rim(&rim);
    parts.set_block(10, &[0x5A; 48]);
    let mut ev = chain.evidence(&parts);
    ev.rims = vec![rim];
    assert_eq!(
        verify_with_root(&ev, &policy(), AT, &chain.root).unwrap_err(),
        GpuError::MeasurementMismatch {
            index: 10,
            rim_index: 9
        }
    );
}

#[test]
fn measurement_matching_any_rim_alternative_is_accepted() {
    let rim = real_rim();
    let chain = test_chain(&ChainSpec::default_for_real_fwid());
    let mut parts = parts_matching_rim(&rim);
    let third = rim.measurement(12).expect("index 12").alternatives[3].clone();
    parts.set_block(13, &third);
    let mut ev = chain.evidence(&parts);
    ev.rims = vec![rim];
    verify_with_root(&ev, &policy(), AT, &chain.root).expect("alternative 3 accepted");
}

#[test]
fn measurement_missing_from_report_is_refused() {
    let rim = real_rim();
    let chain = test_chain(&ChainSpec::default_for_real_fwid());
    let mut parts = parts_matching_rim(&rim);
    parts.blocks.retain(|(index, _)| *index != 13);
    let mut ev = chain.evidence(&parts);
    ev.rims = vec![rim];
    assert_eq!(
        verify_with_root(&ev, &policy(), AT, &chain.root).unwrap_err(),
        GpuError::MeasurementMissing {
            index: 13,
            rim_index: 12
        }
    );
}

#[test]
fn two_rims_claiming_one_index_are_refused() {
    let rim = real_rim();
    let chain = test_chain(&ChainSpec::default_for_real_fwid());
    let mut ev = chain.evidence(&parts_matching_rim(&rim));
    ev.rims = vec![rim.clone(), rim];
    assert_eq!(
        verify_with_root(&ev, &policy(), AT, &chain.root).unwrap_err(),
        GpuError::RimIndexConflict { rim_index: 0 }
    );
}

#[test]
fn expired_certificate_is_refused() {
    let spec = ChainSpec {
        not_before: 1_577_836_800, // 2020-01-01
        not_after: 1_609_459_199,  // 2020-12-31
        ..ChainSpec::default_for_real_fwid()
    };
    let chain = test_chain(&spec);
    let ev = chain.evidence(&ReportParts::from_real());
    verify_with_root(&ev, &policy(), UnixTime(1_600_000_000), &chain.root)
        .expect("valid inside its window");
    let err = verify_with_root(&ev, &policy(), AT, &chain.root).unwrap_err();
    assert!(
        matches!(err, GpuError::CertChain(CertError::Expired { .. })),
        "{err:?}"
    );
}

#[test]
fn fwid_differing_from_leaf_is_refused() {
    let spec = ChainSpec {
        leaf_fwid: Some(vec![0x42; 48]),
        ..ChainSpec::default_for_real_fwid()
    };
    let chain = test_chain(&spec);
    let ev = chain.evidence(&ReportParts::from_real());
    assert_eq!(
        verify_with_root(&ev, &policy(), AT, &chain.root).unwrap_err(),
        GpuError::FwidMismatch
    );
}

#[test]
fn leaf_without_fwid_is_refused_when_report_has_one() {
    let spec = ChainSpec {
        leaf_fwid: None,
        ..ChainSpec::default_for_real_fwid()
    };
    let chain = test_chain(&spec);
    let ev = chain.evidence(&ReportParts::from_real());
    assert_eq!(
        verify_with_root(&ev, &policy(), AT, &chain.root).unwrap_err(),
        GpuError::LeafFwidMissing
    );
}

#[test]
fn non_ca_intermediate_is_refused() {
    let spec = ChainSpec {
        intermediate_is_leaf: true,
        ..ChainSpec::default_for_real_fwid()
    };
    let chain = test_chain(&spec);
    let ev = chain.evidence(&ReportParts::from_real());
    assert_eq!(
        verify_with_root(&ev, &policy(), AT, &chain.root).unwrap_err(),
        GpuError::CertChain(CertError::NotCa {
            subject: chain.intermediate.subject()
        })
    );
}

#[test]
fn overlong_chain_is_refused() {
    let ders = real_evidence().cert_chain.der_certs().expect("ders");
    let ev = GpuEvidenceInput {
        cert_chain: CertChainInput::Der(std::iter::repeat_n(ders[0].clone(), 9).collect()),
        ..real_evidence()
    };
    assert_eq!(
        verify(&ev, &policy(), AT).unwrap_err(),
        GpuError::CertChainTooLong { len: 9, max: 8 }
    );
}

// --- malformed RIMs ----------------------------------------------------------------------

#[test]
fn rim_with_dtd_is_refused() {
    let xml = format!("<!DOCTYPE x [<!ENTITY a \"b\">]>{RIM_XML}");
    assert!(matches!(Rim::parse(xml.as_bytes()), Err(RimError::Xml(_))));
}

#[test]
fn rim_hash_of_wrong_length_is_refused() {
    let xml = RIM_XML.replacen(
        "Hash0=\"c3f65ef79a19c029868cd7ce54b10e44f192444edb3506dde29cef2aac4e916c90a4f438e55aa7581a9e384c74d82db6\"",
        "Hash0=\"c3f65e\"",
        1,
    );
    assert_eq!(
        Rim::parse(xml.as_bytes()),
        Err(RimError::BadMeasurement {
            position: 1,
            reason: "hash length differs from size"
        })
    );
}

#[test]
fn rim_with_duplicate_index_is_refused() {
    let xml = RIM_XML.replacen("index=\"2\"", "index=\"1\"", 1);
    assert_eq!(
        Rim::parse(xml.as_bytes()),
        Err(RimError::DuplicateIndex { index: 1 })
    );
}

#[test]
fn oversized_rim_is_refused() {
    let big = vec![b' '; sotto_verify_nvidia::rim::MAX_RIM_LEN + 1];
    assert_eq!(
        Rim::parse(&big),
        Err(RimError::TooLarge {
            len: sotto_verify_nvidia::rim::MAX_RIM_LEN + 1,
            max: sotto_verify_nvidia::rim::MAX_RIM_LEN
        })
    );
}

#[test]
fn non_swid_xml_is_refused() {
    assert_eq!(
        Rim::parse(b"<SoftwareIdentity/>"),
        Err(RimError::NotSwidTag)
    );
}

// --- unsigned trailing zero padding --------------------------------------------------------

fn padded(bytes: &[u8]) -> Vec<u8> {
    let mut report = real_report();
    report.extend_from_slice(bytes);
    report
}

#[test]
fn one_trailing_zero_after_the_signature_is_accepted() {
    // The Confidential Containers capture of a genuine Hopper report: one zero byte after
    // the signature, which NVIDIA's and CoCo's verifiers ignore.
    let plain = verify(&real_evidence(), &policy(), AT).expect("unpadded");
    let ev = with_report(padded(&[0]));
    let verdict = verify(&ev, &policy(), AT).expect("one zero byte of padding is accepted");
    assert_eq!(verdict.trailing_padding, 1);
    // The digest commits to the bytes as presented; everything else is what the signed
    // report says, exactly as without the padding.
    assert_eq!(
        verdict.evidence_digest,
        hex::encode(ev.evidence_digest().expect("digest"))
    );
    assert_ne!(verdict.evidence_digest, plain.evidence_digest);
    assert_eq!(signed_content(verdict), signed_content(plain));
}

/// A verdict with the two fields that describe the presented bytes (not the signed report)
/// blanked, for comparing padded and unpadded evidence.
fn signed_content(mut v: sotto_verify_nvidia::GpuVerdict) -> sotto_verify_nvidia::GpuVerdict {
    v.evidence_digest.clear();
    v.trailing_padding = 0;
    v
}

#[test]
fn padding_is_outside_everything_signed() {
    let plain = SpdmEvidence::parse(&real_report()).expect("unpadded");
    for n in 1..=MAX_TRAILING_ZERO_PADDING {
        let report = padded(&vec![0; n]);
        let ev = SpdmEvidence::parse(&report).expect("padded");
        assert_eq!(ev.signed_bytes(), plain.signed_bytes(), "{n}");
        assert_eq!(ev.signature, plain.signature, "{n}");
        assert_eq!(ev.unpadded(), real_report().as_slice(), "{n}");
        assert_eq!(ev.raw(), report.as_slice(), "{n}");
        assert_eq!(ev.trailing_padding(), n);
        verify(&with_report(report), &policy(), AT).expect("bounded zero padding");
    }
}

#[test]
fn padding_cannot_stand_in_for_a_signature_byte() {
    // The last signature byte dropped and a zero "padding" byte appended: same length, but the
    // zero is now read as the signature's last byte, which no longer verifies.
    let mut report = real_report();
    let last = report.pop().expect("signature byte");
    assert_ne!(last, 0, "the real signature does not end in a zero byte");
    report.push(0);
    assert_eq!(
        verify(&with_report(report), &policy(), AT).unwrap_err(),
        GpuError::BadReportSignature
    );
}

#[test]
fn trailing_non_zero_bytes_are_refused_even_after_zero_padding() {
    for (tail, count) in [
        (&[0x01][..], 1),
        (&[0x00, 0x01][..], 2),
        (&[0x00, 0x00, 0x80][..], 3),
    ] {
        assert_eq!(
            verify(&with_report(padded(tail)), &policy(), AT).unwrap_err(),
            GpuError::Parse(SpdmError::TrailingBytes { count }),
            "{tail:?}"
        );
    }
}

#[test]
fn zero_padding_beyond_its_bound_is_refused() {
    let n = MAX_TRAILING_ZERO_PADDING + 1;
    assert_eq!(
        verify(&with_report(padded(&vec![0; n])), &policy(), AT).unwrap_err(),
        GpuError::Parse(SpdmError::TrailingPaddingTooLong {
            count: n,
            max: MAX_TRAILING_ZERO_PADDING
        })
    );
}

#[test]
fn padded_report_re_signed_with_cc_off_is_still_refused() {
    // Padding changes nothing the policy reads: a signed CC-off flag stays refused.
    let chain = test_chain(&ChainSpec::default_for_real_fwid());
    let mut parts = ReportParts::from_real();
    parts.set_opaque(FEATURE_FLAG, &[0x03]);
    let mut ev = chain.evidence(&parts);
    ev.report.push(0);
    assert_eq!(
        verify_with_root(&ev, &policy(), AT, &chain.root).unwrap_err(),
        GpuError::CcModeOff { feature_flag: 3 }
    );
}

// --- CC mode and RIM requirements reported in the verdict ---------------------------------

#[test]
fn strict_gpu_policy_reports_the_cc_flag_and_the_matched_rim() {
    let rim = real_rim();
    let chain = test_chain(&ChainSpec::default_for_real_fwid());
    let mut parts = parts_matching_rim(&rim);
    parts.set_opaque(FEATURE_FLAG, &[0x01]);
    let ev = GpuEvidenceInput {
        rims: vec![rim.clone()],
        ..chain.evidence(&parts)
    };
    let strict = GpuPolicy {
        require_cc_feature_flag: true,
        require_rim: true,
        ..policy()
    };
    let verdict = verify_with_root(&ev, &strict, AT, &chain.root).expect("strict GPU policy");
    assert_eq!(verdict.cc_mode, CcMode::SingleGpuPassthrough);
    assert_eq!(verdict.cc_feature_flag, Some(1));
    assert_eq!(verdict.rims.len(), 1);
    assert_eq!(verdict.rims[0].sha256, hex::encode(rim.sha256));
    assert_eq!(verdict.rims[0].version, rim.version);
    assert_eq!(verdict.rims[0].tag_id, rim.tag_id);
    assert_eq!(verdict.rims[0].matched_indices, verdict.matched_indices);
    assert!(!verdict.matched_indices.is_empty());
    // The same evidence without its RIM, or without the flag, is refused by that policy.
    let no_rim = GpuEvidenceInput {
        rims: Vec::new(),
        ..ev.clone()
    };
    assert_eq!(
        verify_with_root(&no_rim, &strict, AT, &chain.root).unwrap_err(),
        GpuError::RimRequired
    );
    let mut unflagged = parts_matching_rim(&rim);
    unflagged.remove_opaque(FEATURE_FLAG);
    let ev = GpuEvidenceInput {
        rims: vec![rim],
        ..chain.evidence(&unflagged)
    };
    assert_eq!(
        verify_with_root(&ev, &strict, AT, &chain.root).unwrap_err(),
        GpuError::CcModeNotAttested
    );
}

// --- keyUsage, basicConstraints and path length in the device chain ----------------------

fn chain_evidence(chain: &TestChain) -> GpuEvidenceInput {
    chain.evidence(&ReportParts::from_real())
}

#[test]
fn intermediate_without_key_cert_sign_is_refused() {
    let mut chain = test_chain(&ChainSpec::default_for_real_fwid());
    chain.intermediate = reissue(&chain.intermediate, &chain.root_key, |tbs| {
        set_extension(
            tbs,
            KEY_USAGE_OID,
            Some(key_usage_der(x509_cert::ext::pkix::KeyUsages::CRLSign)),
        )
    });
    assert_eq!(
        verify_with_root(&chain_evidence(&chain), &policy(), AT, &chain.root).unwrap_err(),
        GpuError::CertChain(CertError::KeyCertSignNotAllowed {
            subject: chain.intermediate.subject()
        })
    );
}

#[test]
fn intermediate_without_key_usage_is_refused() {
    // Every real NVIDIA issuer carries keyUsage with keyCertSign, so vendor chains require it.
    let mut chain = test_chain(&ChainSpec::default_for_real_fwid());
    chain.intermediate = reissue(&chain.intermediate, &chain.root_key, |tbs| {
        set_extension(tbs, KEY_USAGE_OID, None)
    });
    assert_eq!(
        verify_with_root(&chain_evidence(&chain), &policy(), AT, &chain.root).unwrap_err(),
        GpuError::CertChain(CertError::KeyUsageMissing {
            subject: chain.intermediate.subject()
        })
    );
}

#[test]
fn chain_longer_than_the_roots_path_length_is_refused() {
    // A root that allows no intermediate CA below it, with one intermediate.
    let mut chain = test_chain(&ChainSpec::default_for_real_fwid());
    chain.root = reissue(&chain.root, &chain.root_key, |tbs| {
        set_extension(
            tbs,
            BASIC_CONSTRAINTS_OID,
            Some(basic_constraints_der(true, Some(0))),
        )
    });
    assert_eq!(
        verify_with_root(&chain_evidence(&chain), &policy(), AT, &chain.root).unwrap_err(),
        GpuError::CertChain(CertError::PathLenExceeded {
            subject: chain.root.subject(),
            max: 0,
            found: 1
        })
    );
    // Path length 1 admits it.
    chain.root = reissue(&chain.root, &chain.root_key, |tbs| {
        set_extension(
            tbs,
            BASIC_CONSTRAINTS_OID,
            Some(basic_constraints_der(true, Some(1))),
        )
    });
    verify_with_root(&chain_evidence(&chain), &policy(), AT, &chain.root).expect("pathlen 1");
}

#[test]
fn leaf_without_digital_signature_is_refused() {
    let mut chain = test_chain(&ChainSpec::default_for_real_fwid());
    chain.leaf = reissue(&chain.leaf, &chain.intermediate_key, |tbs| {
        set_extension(
            tbs,
            KEY_USAGE_OID,
            Some(key_usage_der(x509_cert::ext::pkix::KeyUsages::KeyAgreement)),
        )
    });
    assert_eq!(
        verify_with_root(&chain_evidence(&chain), &policy(), AT, &chain.root).unwrap_err(),
        GpuError::CertChain(CertError::DigitalSignatureNotAllowed {
            subject: chain.leaf.subject()
        })
    );
}
