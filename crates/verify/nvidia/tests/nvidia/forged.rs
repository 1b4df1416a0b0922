//! Forged and damaged GPU evidence: every case must be refused with the exact error variant
//! of the check that catches it. Cases past the signature check use reports re-signed under a
//! locally generated test chain and [`verify_with_root`] with that chain's root; the same
//! evidence is shown to be refused under the pinned NVIDIA root.

use sotto_verify_core::x509::CertError;
use sotto_verify_core::UnixTime;
use sotto_verify_nvidia::spdm::{field, MAX_REPORT_LEN, MAX_TRAILING_ZERO_PADDING};
use sotto_verify_nvidia::{
    verify, verify_with_root, CcMode, CertChainInput, GpuError, GpuEvidenceInput, GpuPolicy,
    GpuVerdict, Rim, RimError, SpdmError, SpdmEvidence,
};

use super::resign::{
    basic_constraints_der, key_usage_der, real_fwid_chain, sign, test_chain, vbios_bytes_for,
    ChainSpec, ReportParts, TestChain, BASIC_CONSTRAINTS_OID, FEATURE_FLAG, KEY_USAGE_OID,
};
use super::{
    assert_chain_refusal, chain_link_missing, nonce, pinned, policy, real_evidence, real_report,
    real_rim, rim_xml, signature_flipped, AT, BEFORE_ICA, NONCE_HEX,
};

fn with_report(report: Vec<u8>) -> GpuEvidenceInput {
    GpuEvidenceInput {
        report,
        ..real_evidence()
    }
}

/// The real report with byte `at` set to `value`.
fn with_byte(at: usize, value: u8) -> Vec<u8> {
    let mut report = real_report();
    report[at] = value;
    report
}

/// How the pinned root and the default policy refuse `report` with the real chain.
fn report_refusal(report: Vec<u8>) -> GpuError {
    pinned(&with_report(report)).unwrap_err()
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
    let err = pinned(&signature_flipped()).unwrap_err();
    assert_eq!(err, GpuError::BadReportSignature);
}

#[test]
fn changed_measurement_block_breaks_signature() {
    let mut report = real_report();
    // Request (37) + response header (8) + block 1 header (4) + DMTF header (3): block 1's value.
    report[37 + 8 + 4 + 3] ^= 0x80;
    SpdmEvidence::parse(&report).expect("still well formed");
    let err = report_refusal(report);
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
    let got = pinned(&chain_link_missing());
    assert_chain_refusal(got, |e| matches!(e, CertError::IssuerMismatch { .. }));
}

#[test]
fn chain_before_its_validity_is_refused() {
    let got = verify(&real_evidence(), &policy(), BEFORE_ICA);
    assert_chain_refusal(got, |e| matches!(e, CertError::NotYetValid { .. }));
}

#[test]
fn empty_chain_is_refused() {
    let ev = GpuEvidenceInput {
        cert_chain: CertChainInput::Der(Vec::new()),
        ..real_evidence()
    };
    assert_eq!(pinned(&ev).unwrap_err(), GpuError::EmptyCertChain);
}

#[test]
fn real_evidence_is_refused_by_a_policy_requiring_what_it_lacks() {
    type Row = (fn(&mut GpuPolicy), GpuError);
    let rows: [Row; 2] = [
        // The published report is a legacy one, without the CC feature flag.
        (
            |p| p.require_cc_feature_flag = true,
            GpuError::CcModeNotAttested,
        ),
        // And it comes with no RIM.
        (|p| p.require_rim = true, GpuError::RimRequired),
    ];
    for (require, refusal) in rows {
        let mut strict = policy();
        require(&mut strict);
        let got = verify(&real_evidence(), &strict, AT);
        assert_eq!(got.unwrap_err(), refusal);
    }
}

#[test]
fn rim_for_other_vbios_is_refused() {
    // The published RIM describes VBIOS 96.00.5E.00.01; the published report is 96.00.9F.00.01.
    let ev = GpuEvidenceInput {
        rims: vec![real_rim()],
        ..real_evidence()
    };
    assert_eq!(
        pinned(&ev).unwrap_err(),
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
    let err = report_refusal(cut);
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
        let err = report_refusal(report[..len].to_vec());
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
        report_refusal(report),
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
        report_refusal(report),
        GpuError::Parse(SpdmError::TrailingBytes { count: 3 })
    );
}

#[test]
fn garbage_opaque_data_is_refused() {
    // A driver-version field that claims 255 bytes but holds 1.
    let unsigned =
        ReportParts::from_real().unsigned_with_raw_opaque(&[0x03, 0x00, 0xFF, 0x00, b'5']);
    let report = sign(&real_fwid_chain().leaf_key, &unsigned);
    assert_eq!(
        report_refusal(report),
        GpuError::Parse(SpdmError::OpaqueTruncated { offset: 0 })
    );
}

#[test]
fn duplicated_opaque_field_is_refused() {
    let mut parts = ReportParts::from_real();
    let driver = parts.opaque[7].clone();
    assert_eq!(driver.field_type, field::DRIVER_VERSION);
    parts.opaque.push(driver);
    let report = sign(&real_fwid_chain().leaf_key, &parts.unsigned());
    assert_eq!(
        report_refusal(report),
        GpuError::Parse(SpdmError::DuplicateOpaqueField {
            field_type: field::DRIVER_VERSION
        })
    );
}

#[test]
fn non_ascii_driver_version_is_refused() {
    let mut parts = ReportParts::from_real();
    parts.set_opaque(field::DRIVER_VERSION, b"550\xff90\x00");
    let report = sign(&real_fwid_chain().leaf_key, &parts.unsigned());
    assert_eq!(
        report_refusal(report),
        GpuError::Parse(SpdmError::OpaqueFieldInvalid {
            field_type: field::DRIVER_VERSION,
            reason: "not a printable ASCII string"
        })
    );
}

#[test]
fn real_report_header_bytes_changed_are_refused() {
    use SpdmError as E;
    for (at, found, message) in [(0, 0x10, "request"), (37, 0x12, "response")] {
        let got = report_refusal(with_byte(at, found));
        assert_eq!(got, GpuError::Parse(E::WrongVersion { message, found }));
    }
    // Each row: the byte, its new value, and the refusal naming that value.
    type Row = (usize, u8, fn(u8) -> SpdmError);
    let rows: [Row; 4] = [
        (1, 0xE1, |found| E::WrongRequestCode { found }),
        (38, 0x7F, |found| E::WrongResponseCode { found }),
        (2, 0x00, |param1| E::SignatureNotRequested { param1 }),
        (3, 0x01, |param2| E::NotAllMeasurements { param2 }),
    ];
    for (at, value, refusal) in rows {
        let got = report_refusal(with_byte(at, value));
        assert_eq!(got, GpuError::Parse(refusal(value)), "byte {at}");
    }
    // The response's block count, one below the blocks it holds.
    let got = report_refusal(with_byte(37 + 4, 63));
    let miscount = E::BlockCountMismatch {
        declared: 63,
        found: 64,
    };
    assert_eq!(got, GpuError::Parse(miscount));
}

// --- re-signed under a test chain ------------------------------------------------------

#[test]
fn test_chain_evidence_verifies_only_under_its_own_root() {
    let chain = real_fwid_chain();
    let ev = chain.real_evidence();
    let verdict = chain.verify(&ev).expect("valid under the test root");
    assert_eq!(verdict.cc_mode, CcMode::LegacyUnflagged);
    assert_eq!(
        pinned(&ev).unwrap_err(),
        GpuError::UntrustedRoot {
            subject: chain.root.subject()
        }
    );
}

#[test]
fn test_chain_without_its_root_is_refused_under_pinned_root() {
    let chain = real_fwid_chain();
    let mut ev = chain.real_evidence();
    ev.cert_chain = CertChainInput::Der(vec![
        chain.leaf.der().to_vec(),
        chain.intermediate.der().to_vec(),
    ]);
    let err = pinned(&ev).unwrap_err();
    assert!(
        matches!(err, GpuError::CertChain(CertError::IssuerMismatch { .. })),
        "{err:?}"
    );
}

#[test]
fn real_chain_with_test_signed_report_is_refused() {
    let chain = real_fwid_chain();
    let report = sign(&chain.leaf_key, &ReportParts::from_real().unsigned());
    assert_eq!(report_refusal(report), GpuError::BadReportSignature);
}

#[test]
fn cc_mode_off_is_refused() {
    let chain = real_fwid_chain();
    let mut parts = ReportParts::from_real();
    parts.set_opaque(FEATURE_FLAG, &[0x03]);
    let err = chain.verify(&chain.evidence(&parts)).unwrap_err();
    assert_eq!(err, GpuError::CcModeOff { feature_flag: 3 });
}

#[test]
fn cc_feature_flags_map_to_modes() {
    let chain = real_fwid_chain();
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
        let verdict = chain
            .verify_with(&chain.evidence(&parts), &strict)
            .expect("CC mode accepted");
        assert_eq!(verdict.cc_mode, mode);
    }
}

#[test]
fn protected_pcie_is_refused_unless_allowed() {
    let chain = real_fwid_chain();
    let mut parts = ReportParts::from_real();
    parts.set_opaque(FEATURE_FLAG, &[0x02]);
    let ev = chain.evidence(&parts);
    assert_eq!(
        chain.verify(&ev).unwrap_err(),
        GpuError::ProtectedPcieRefused
    );
    let allow = GpuPolicy {
        accept_protected_pcie: true,
        ..policy()
    };
    let verdict = chain.verify_with(&ev, &allow).expect("allowed");
    assert_eq!(verdict.cc_mode, CcMode::ProtectedPcie);
}

/// Evidence re-signed by the test chain, its blocks matching the real RIM but for `edit`, sent
/// with that RIM and verified under the test root.
fn against_the_rim(edit: impl FnOnce(&mut ReportParts, &Rim)) -> Result<GpuVerdict, GpuError> {
    let rim = real_rim();
    let chain = real_fwid_chain();
    let mut parts = parts_matching_rim(&rim);
    edit(&mut parts, &rim);
    let mut ev = chain.evidence(&parts);
    ev.rims = vec![rim];
    chain.verify(&ev)
}

#[test]
fn rim_match_reports_matched_indices() {
    let verdict = against_the_rim(|_, _| {}).expect("matches RIM");
    assert_eq!(
        verdict.matched_indices,
        vec![1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13]
    );
    assert!(verdict.skipped_indices.is_empty());
    assert_eq!(verdict.rim_sha256, vec![hex::encode(real_rim().sha256)]);
    assert!(!verdict.rim_signature_checked);
    assert!(verdict.checks.contains(&"measurements_match_rim"));
}

#[test]
fn measurement_not_matching_rim_is_refused() {
    let err = against_the_rim(|parts, _| parts.set_block(10, &[0x5A; 48])).unwrap_err();
    assert_eq!(
        err,
        GpuError::MeasurementMismatch {
            index: 10,
            rim_index: 9
        }
    );
}

#[test]
fn measurement_matching_any_rim_alternative_is_accepted() {
    against_the_rim(|parts, rim| {
        let third = &rim.measurement(12).expect("index 12").alternatives[3];
        parts.set_block(13, third);
    })
    .expect("alternative 3 accepted");
}

#[test]
fn measurement_missing_from_report_is_refused() {
    let without_13 = |parts: &mut ReportParts, _: &Rim| parts.blocks.retain(|(i, _)| *i != 13);
    assert_eq!(
        against_the_rim(without_13).unwrap_err(),
        GpuError::MeasurementMissing {
            index: 13,
            rim_index: 12
        }
    );
}

#[test]
fn two_rims_claiming_one_index_are_refused() {
    let rim = real_rim();
    let chain = real_fwid_chain();
    let mut ev = chain.evidence(&parts_matching_rim(&rim));
    ev.rims = vec![rim.clone(), rim];
    assert_eq!(
        chain.verify(&ev).unwrap_err(),
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
    let ev = chain.real_evidence();
    verify_with_root(&ev, &policy(), UnixTime(1_600_000_000), &chain.root)
        .expect("valid inside its window");
    let err = chain.verify(&ev).unwrap_err();
    assert!(
        matches!(err, GpuError::CertChain(CertError::Expired { .. })),
        "{err:?}"
    );
}

#[test]
fn test_chains_with_a_wrong_leaf_fwid_or_intermediate_are_refused() {
    type Row = (&'static str, fn(&mut ChainSpec), fn(&TestChain) -> GpuError);
    let rows: [Row; 3] = [
        (
            "a leaf FWID other than the report's",
            |s| s.leaf_fwid = Some(vec![0x42; 48]),
            |_| GpuError::FwidMismatch,
        ),
        (
            "a leaf without the FWID the report carries",
            |s| s.leaf_fwid = None,
            |_| GpuError::LeafFwidMissing,
        ),
        (
            "an intermediate that is no CA",
            |s| s.intermediate_is_leaf = true,
            |c| {
                GpuError::CertChain(CertError::NotCa {
                    subject: c.intermediate.subject(),
                })
            },
        ),
    ];
    for (what, edit, refusal) in rows {
        let mut spec = ChainSpec::default_for_real_fwid();
        edit(&mut spec);
        let chain = test_chain(&spec);
        let got = chain.verify(&chain.real_evidence());
        assert_eq!(got.unwrap_err(), refusal(&chain), "{what}");
    }
}

#[test]
fn overlong_chain_is_refused() {
    let ders = real_evidence().cert_chain.der_certs().expect("ders");
    let ev = GpuEvidenceInput {
        cert_chain: CertChainInput::Der(std::iter::repeat_n(ders[0].clone(), 9).collect()),
        ..real_evidence()
    };
    assert_eq!(
        pinned(&ev).unwrap_err(),
        GpuError::CertChainTooLong { len: 9, max: 8 }
    );
}

// --- malformed RIMs ----------------------------------------------------------------------

#[test]
fn rim_with_dtd_is_refused() {
    let xml = format!("<!DOCTYPE x [<!ENTITY a \"b\">]>{}", rim_xml());
    assert!(matches!(Rim::parse(xml.as_bytes()), Err(RimError::Xml(_))));
}

#[test]
fn rim_hash_of_wrong_length_is_refused() {
    let xml = rim_xml().replacen(
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
    let xml = rim_xml().replacen("index=\"2\"", "index=\"1\"", 1);
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
    assert_eq!(report_refusal(report), GpuError::BadReportSignature);
}

#[test]
fn trailing_non_zero_bytes_are_refused_even_after_zero_padding() {
    for (tail, count) in [
        (&[0x01][..], 1),
        (&[0x00, 0x01][..], 2),
        (&[0x00, 0x00, 0x80][..], 3),
    ] {
        assert_eq!(
            report_refusal(padded(tail)),
            GpuError::Parse(SpdmError::TrailingBytes { count }),
            "{tail:?}"
        );
    }
}

#[test]
fn zero_padding_beyond_its_bound_is_refused() {
    let n = MAX_TRAILING_ZERO_PADDING + 1;
    assert_eq!(
        report_refusal(padded(&vec![0; n])),
        GpuError::Parse(SpdmError::TrailingPaddingTooLong {
            count: n,
            max: MAX_TRAILING_ZERO_PADDING
        })
    );
}

#[test]
fn padded_report_re_signed_with_cc_off_is_still_refused() {
    // Padding changes nothing the policy reads: a signed CC-off flag stays refused.
    let chain = real_fwid_chain();
    let mut parts = ReportParts::from_real();
    parts.set_opaque(FEATURE_FLAG, &[0x03]);
    let mut ev = chain.evidence(&parts);
    ev.report.push(0);
    assert_eq!(
        chain.verify(&ev).unwrap_err(),
        GpuError::CcModeOff { feature_flag: 3 }
    );
}

// --- CC mode and RIM requirements reported in the verdict ---------------------------------

#[test]
fn strict_gpu_policy_reports_the_cc_flag_and_the_matched_rim() {
    let rim = real_rim();
    let chain = real_fwid_chain();
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
    let verdict = chain.verify_with(&ev, &strict).expect("strict GPU policy");
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
        chain.verify_with(&no_rim, &strict).unwrap_err(),
        GpuError::RimRequired
    );
    let mut unflagged = parts_matching_rim(&rim);
    unflagged.remove_opaque(FEATURE_FLAG);
    let ev = GpuEvidenceInput {
        rims: vec![rim],
        ..chain.evidence(&unflagged)
    };
    assert_eq!(
        chain.verify_with(&ev, &strict).unwrap_err(),
        GpuError::CcModeNotAttested
    );
}

// --- keyUsage, basicConstraints and path length in the device chain ----------------------

#[test]
fn device_chain_certificates_without_the_key_usage_of_their_role_are_refused() {
    use x509_cert::ext::pkix::KeyUsages;
    type Row = (
        &'static str,
        fn(&mut TestChain),
        fn(&TestChain) -> CertError,
    );
    let rows: [Row; 3] = [
        (
            "an intermediate without keyCertSign",
            |c| {
                c.set_intermediate_extension(KEY_USAGE_OID, Some(key_usage_der(KeyUsages::CRLSign)))
            },
            |c| CertError::KeyCertSignNotAllowed {
                subject: c.intermediate.subject(),
            },
        ),
        // Every real NVIDIA issuer carries keyUsage with keyCertSign, so vendor chains require it.
        (
            "an intermediate without keyUsage",
            |c| c.set_intermediate_extension(KEY_USAGE_OID, None),
            |c| CertError::KeyUsageMissing {
                subject: c.intermediate.subject(),
            },
        ),
        (
            "a leaf without digitalSignature",
            |c| c.set_leaf_extension(KEY_USAGE_OID, Some(key_usage_der(KeyUsages::KeyAgreement))),
            |c| CertError::DigitalSignatureNotAllowed {
                subject: c.leaf.subject(),
            },
        ),
    ];
    for (what, edit, refusal) in rows {
        let mut chain = real_fwid_chain();
        edit(&mut chain);
        assert_eq!(chain.chain_refusal(), refusal(&chain), "{what}");
    }
}

#[test]
fn chain_longer_than_the_roots_path_length_is_refused() {
    // A root that allows no intermediate CA below it, with one intermediate.
    let mut chain = real_fwid_chain();
    let path_len = |n| Some(basic_constraints_der(true, Some(n)));
    chain.set_root_extension(BASIC_CONSTRAINTS_OID, path_len(0));
    assert_eq!(
        chain.chain_refusal(),
        CertError::PathLenExceeded {
            subject: chain.root.subject(),
            max: 0,
            found: 1
        }
    );
    // Path length 1 admits it.
    chain.set_root_extension(BASIC_CONSTRAINTS_OID, path_len(1));
    chain.verify(&chain.real_evidence()).expect("pathlen 1");
}
