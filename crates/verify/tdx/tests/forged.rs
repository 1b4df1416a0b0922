//! Forged and altered evidence: every case must be refused by the exact check it defeats.
//! Cases marked "real" tamper with the genuine Intel-signed quote/collateral; cases marked
//! "re-signed" build consistent evidence under a throwaway PKI (tests/common) so that only the
//! property under test is wrong.

mod common;

use common::*;
use sotto_verify_core::crl::CrlError;
use sotto_verify_core::x509::CertError;
use sotto_verify_tdx::{
    attributes, verify, Quote, TcbStatus, TdxError, TdxPolicy, UnixTime, MAX_QUOTE_LEN,
};
use x509_cert::ext::pkix::KeyUsages;

const MRTD: usize = 48 + 136;
const RTMR0: usize = 48 + 328;
const REPORT_DATA: usize = 48 + 520;
/// Offsets in the TD report body (without the header), as `Forge::body` holds it.
const BODY_TD_ATTRIBUTES: usize = 120;
const BODY_MRCONFIGID: usize = 184;
const BODY_RTMR0: usize = 328;
/// Start of the signature data in the v4 quote (after the 4-byte length).
const SIG: usize = 48 + 584 + 4;
const ATT_KEY: usize = SIG + 64;
const QE_REPORT: usize = SIG + 128 + 6;
const QE_AUTH_DATA: usize = QE_REPORT + 384 + 64 + 2;

fn verify_real(quote: &[u8], policy: &TdxPolicy) -> Result<sotto_verify_tdx::TdxVerdict, TdxError> {
    verify(quote, &real_collateral(), policy, AT)
}

fn flipped(at: usize) -> Vec<u8> {
    let mut q = real_quote();
    q[at] ^= 1;
    q
}

// --- real evidence, altered -------------------------------------------------------------

#[test]
fn real_mrtd_changed_breaks_quote_signature() {
    assert_eq!(
        verify_real(&flipped(MRTD + 5), &TdxPolicy::strict()),
        Err(TdxError::QuoteSignature)
    );
}

#[test]
fn real_report_data_changed_breaks_quote_signature() {
    assert_eq!(
        verify_real(&flipped(REPORT_DATA + 1), &TdxPolicy::strict()),
        Err(TdxError::QuoteSignature)
    );
}

#[test]
fn real_rtmr_changed_breaks_quote_signature() {
    assert_eq!(
        verify_real(&flipped(RTMR0 + 48 * 3 + 7), &TdxPolicy::strict()),
        Err(TdxError::QuoteSignature)
    );
}

#[test]
fn real_quote_signature_bit_flip_is_refused() {
    assert_eq!(
        verify_real(&flipped(SIG + 40), &TdxPolicy::strict()),
        Err(TdxError::QuoteSignature)
    );
}

#[test]
fn real_attestation_key_swapped_is_not_bound_by_the_qe() {
    let mut q = real_quote();
    let other = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let point = other.verifying_key().to_encoded_point(false);
    q[ATT_KEY..ATT_KEY + 64].copy_from_slice(&point.as_bytes()[1..]);
    assert_eq!(
        verify_real(&q, &TdxPolicy::strict()),
        Err(TdxError::QeReportDataMismatch)
    );
}

#[test]
fn real_qe_report_changed_breaks_qe_report_signature() {
    assert_eq!(
        verify_real(&flipped(QE_REPORT + 258), &TdxPolicy::strict()),
        Err(TdxError::QeReportSignature)
    );
}

#[test]
fn real_qe_auth_data_changed_breaks_the_binding() {
    assert_eq!(
        verify_real(&flipped(QE_AUTH_DATA + 3), &TdxPolicy::strict()),
        Err(TdxError::QeReportDataMismatch)
    );
}

#[test]
fn real_tcb_info_tampered_breaks_its_signature() {
    let mut json = real_collateral_json();
    let tampered = json["tcb_info"].as_str().expect("tcb_info").replacen(
        "\"tcbStatus\":\"OutOfDate\"",
        "\"tcbStatus\":\"UpToDate\"",
        1,
    );
    json["tcb_info"] = tampered.into();
    assert_eq!(
        verify(
            &real_quote(),
            &collateral_from(&json),
            &TdxPolicy::strict(),
            AT
        ),
        Err(TdxError::TcbInfoSignature)
    );
}

#[test]
fn real_qe_identity_tampered_breaks_its_signature() {
    let mut json = real_collateral_json();
    let tampered = json["qe_identity"].as_str().expect("qe_identity").replacen(
        "\"isvsvn\":4",
        "\"isvsvn\":0",
        1,
    );
    json["qe_identity"] = tampered.into();
    assert_eq!(
        verify(
            &real_quote(),
            &collateral_from(&json),
            &TdxPolicy::strict(),
            AT
        ),
        Err(TdxError::QeIdentitySignature)
    );
}

#[test]
fn real_collateral_expired_after_pck_crl_next_update() {
    // 2025-07-19T10:05:00Z: after the PCK CRL's nextUpdate (10:00:35Z).
    let err = verify(
        &real_quote(),
        &real_collateral(),
        &TdxPolicy::strict(),
        UnixTime(1_752_919_500),
    );
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
fn real_collateral_not_yet_valid_before_qe_identity_issue_date() {
    // 2025-06-19T10:20:00Z: CRLs already current, QE identity issued at 10:32:27Z.
    assert_eq!(
        verify(
            &real_quote(),
            &real_collateral(),
            &TdxPolicy::strict(),
            UnixTime(1_750_328_400)
        ),
        Err(TdxError::QeIdentityNotYetValid {
            issue_date: 1_750_329_147,
            at: 1_750_328_400
        })
    );
}

#[test]
fn real_quote_with_another_platforms_collateral_is_an_fmspc_mismatch() {
    // The outdated sample's collateral is Intel-signed too, but for FMSPC 90C06F000000.
    let other =
        sotto_verify_tdx::Collateral::from_json(&read("tdx_quote_outdated_collateral.json"))
            .expect("collateral");
    assert_eq!(
        verify(
            &real_quote(),
            &other,
            &TdxPolicy::strict(),
            UnixTime(1_771_459_200)
        ),
        Err(TdxError::FmspcMismatch {
            pck: "b0c06f000000".into(),
            tcb_info: "90c06f000000".into()
        })
    );
}

#[test]
fn truncated_quote_is_a_parse_error() {
    let q = real_quote();
    for len in [0, 47, 48 + 583, SIG + 100, 4935] {
        let err = verify_real(&q[..len], &TdxPolicy::strict());
        assert!(
            matches!(err, Err(TdxError::QuoteParse(_))),
            "{len}: {err:?}"
        );
    }
}

#[test]
fn oversized_quote_is_refused_before_parsing() {
    let mut q = real_quote();
    q.resize(MAX_QUOTE_LEN + 1, 0);
    assert_eq!(
        verify_real(&q, &TdxPolicy::strict()),
        Err(TdxError::QuoteTooLarge {
            len: MAX_QUOTE_LEN + 1,
            max: MAX_QUOTE_LEN
        })
    );
}

#[test]
fn unsupported_quote_version_is_refused() {
    let mut q = real_quote();
    q[0] = 3;
    assert_eq!(
        verify_real(&q, &TdxPolicy::strict()),
        Err(TdxError::UnsupportedVersion(3))
    );
}

#[test]
fn sgx_tee_type_is_refused() {
    let mut q = real_quote();
    q[4] = 0;
    assert_eq!(
        verify_real(&q, &TdxPolicy::strict()),
        Err(TdxError::UnsupportedTeeType(0))
    );
}

#[test]
fn unsigned_trailing_bytes_are_refused() {
    let mut q = real_quote();
    *q.last_mut().expect("padding") = 1;
    assert!(matches!(
        verify_real(&q, &TdxPolicy::strict()),
        Err(TdxError::QuoteParse(_))
    ));
}

#[test]
fn policy_mrtd_mismatch() {
    let policy = TdxPolicy {
        expected_mrtd: Some([0x11; 48]),
        ..TdxPolicy::strict()
    };
    assert_eq!(
        verify_real(&real_quote(), &policy),
        Err(TdxError::MrtdMismatch)
    );
}

#[test]
fn policy_rtmr_mismatch_names_the_register() {
    let quote = Quote::parse(&real_quote()).expect("quote");
    let mut expected = quote.body.rtmrs.map(Some);
    expected[2] = Some([0x22; 48]);
    let policy = TdxPolicy {
        expected_rtmrs: expected,
        ..TdxPolicy::strict()
    };
    assert_eq!(
        verify_real(&real_quote(), &policy),
        Err(TdxError::RtmrMismatch { index: 2 })
    );
}

#[test]
fn policy_report_data_mismatch() {
    let policy = TdxPolicy {
        expected_report_data: Some([0x33; 64]),
        ..TdxPolicy::strict()
    };
    assert_eq!(
        verify_real(&real_quote(), &policy),
        Err(TdxError::ReportDataMismatch)
    );
}

#[test]
fn policy_mrconfigid_mismatch() {
    let policy = TdxPolicy {
        expected_mrconfigid: Some([0x44; 48]),
        ..TdxPolicy::strict()
    };
    assert_eq!(
        verify_real(&real_quote(), &policy),
        Err(TdxError::MrConfigIdMismatch)
    );
}

// --- re-signed under the test PKI --------------------------------------------------------

#[test]
fn resigned_baseline_verifies_under_the_test_root_only() {
    let forge = Forge::new();
    let verdict = forge
        .verify(&TdxPolicy::strict(), AT)
        .expect("consistent forgery verifies under its own root");
    assert_eq!(verdict.tcb_status, TcbStatus::UpToDate);
}

#[test]
fn resigned_pck_chain_with_a_foreign_root_is_refused_by_the_pinned_root() {
    let forge = Forge::new();
    // The test root calls itself "Intel SGX Root CA"; only the pinned key tells them apart.
    let err = verify(
        &forge.quote(),
        &forge.collateral(),
        &TdxPolicy::strict(),
        AT,
    );
    assert!(
        matches!(err, Err(TdxError::PckChain(CertError::BadSignature { .. }))),
        "{err:?}"
    );
}

#[test]
fn resigned_pck_leaf_revoked_by_the_pck_crl() {
    let mut forge = Forge::new();
    forge.pck_crl_revoked = vec![forge.pck.serial()];
    assert!(matches!(
        forge.verify(&TdxPolicy::strict(), AT),
        Err(TdxError::PckRevoked { subject }) if subject.contains("PCK Certificate")
    ));
}

#[test]
fn resigned_pck_ca_revoked_by_the_root_crl() {
    let mut forge = Forge::new();
    forge.root_crl_revoked = vec![forge.pck_ca.serial()];
    assert!(matches!(
        forge.verify(&TdxPolicy::strict(), AT),
        Err(TdxError::PckRevoked { subject }) if subject.contains("PCK Platform CA")
    ));
}

#[test]
fn resigned_pck_crl_signed_by_the_wrong_key_is_invalid() {
    let forge = Forge::new();
    let mut json = forge.collateral_json();
    let impostor = issue(
        "C=US,ST=CA,L=Santa Clara,O=Intel Corporation,CN=Intel SGX PCK Platform CA",
        9,
        Some(&forge.root),
        (1_577_836_800, 2_208_988_800),
        None,
    );
    json["pck_crl"] = hex::encode(crl(&impostor, forge.crl_window, &[])).into();
    let err = sotto_verify_tdx::verify_with_test_root(
        &forge.quote(),
        &collateral_from(&json),
        &TdxPolicy::strict(),
        AT,
        &forge.root_der(),
    );
    assert!(
        matches!(
            err,
            Err(TdxError::CrlInvalid {
                crl: "PCK CRL",
                error: CrlError::BadSignature(_)
            })
        ),
        "{err:?}"
    );
}

#[test]
fn resigned_pck_cert_expired() {
    // Leaf valid 2020-01-01 .. 2025-01-01, checked in June 2025.
    let forge = Forge::with_leaf_validity((1_577_836_800, 1_735_689_600));
    let err = forge.verify(&TdxPolicy::strict(), AT);
    assert!(
        matches!(err, Err(TdxError::PckChain(CertError::Expired { .. }))),
        "{err:?}"
    );
}

#[test]
fn resigned_debug_td_is_refused_unless_allowed() {
    let mut forge = Forge::new();
    forge.body[120] |= 1; // TDATTRIBUTES.TUD.DEBUG
    assert_eq!(
        forge.verify(&TdxPolicy::strict(), AT),
        Err(TdxError::DebugEnabled)
    );
    let allow = TdxPolicy {
        allow_debug: true,
        ..TdxPolicy::strict()
    };
    let verdict = forge.verify(&allow, AT).expect("debug allowed");
    assert_eq!(verdict.td_attributes[0] & 1, 1);
}

#[test]
fn resigned_tcb_info_for_another_fmspc_is_refused() {
    let mut forge = Forge::new();
    forge.tcb_info = forge.tcb_info.replacen(
        "\"fmspc\":\"B0C06F000000\"",
        "\"fmspc\":\"00906ED50000\"",
        1,
    );
    assert_eq!(
        forge.verify(&TdxPolicy::strict(), AT),
        Err(TdxError::FmspcMismatch {
            pck: "b0c06f000000".into(),
            tcb_info: "00906ed50000".into()
        })
    );
}

#[test]
fn resigned_tcb_info_expired() {
    let mut forge = Forge::new();
    forge.tcb_info = forge.tcb_info.replacen(
        "\"nextUpdate\":\"2025-07-19T10:16:03Z\"",
        "\"nextUpdate\":\"2025-06-19T23:00:00Z\"",
        1,
    );
    assert_eq!(
        forge.verify(&TdxPolicy::strict(), AT),
        Err(TdxError::TcbInfoExpired {
            next_update: 1_750_374_000,
            at: AT.0
        })
    );
}

#[test]
fn resigned_tcb_info_not_yet_valid() {
    let mut forge = Forge::new();
    forge.tcb_info = forge.tcb_info.replacen(
        "\"issueDate\":\"2025-06-19T10:16:03Z\"",
        "\"issueDate\":\"2025-06-21T00:00:00Z\"",
        1,
    );
    assert_eq!(
        forge.verify(&TdxPolicy::strict(), AT),
        Err(TdxError::TcbInfoNotYetValid {
            issue_date: 1_750_464_000,
            at: AT.0
        })
    );
}

#[test]
fn resigned_qe_identity_with_another_signer_is_a_mismatch() {
    let mut forge = Forge::new();
    forge.qe_identity =
        forge
            .qe_identity
            .replacen("\"mrsigner\":\"DC9E2A7C", "\"mrsigner\":\"DC9E2A7D", 1);
    assert_eq!(
        forge.verify(&TdxPolicy::strict(), AT),
        Err(TdxError::QeIdentityMismatch { field: "MRSIGNER" })
    );
}

/// Marks every platform TCB level of the (v4) TCB info with `status` and an advisory.
fn all_levels(tcb_info: &str, status: &str) -> String {
    let mut info: serde_json::Value = serde_json::from_str(tcb_info).expect("tcb info");
    for level in info["tcbLevels"].as_array_mut().expect("levels") {
        level["tcbStatus"] = status.into();
        level["advisoryIDs"] = serde_json::json!(["INTEL-SA-99999"]);
    }
    info.to_string()
}

#[test]
fn resigned_out_of_date_platform_strict_refuses_permissive_reports() {
    let mut forge = Forge::new();
    forge.tcb_info = all_levels(&forge.tcb_info, "OutOfDate");
    assert_eq!(
        forge.verify(&TdxPolicy::strict(), AT),
        Err(TdxError::TcbStatusNotAccepted {
            status: TcbStatus::OutOfDate
        })
    );
    let verdict = forge
        .verify(&TdxPolicy::permissive(), AT)
        .expect("permissive accepts OutOfDate");
    assert_eq!(verdict.tcb_status, TcbStatus::OutOfDate);
    assert_eq!(verdict.advisory_ids, vec!["INTEL-SA-99999".to_string()]);
}

#[test]
fn resigned_revoked_platform_is_refused_even_by_a_permissive_policy() {
    let mut forge = Forge::new();
    forge.tcb_info = all_levels(&forge.tcb_info, "Revoked");
    assert_eq!(
        forge.verify(&TdxPolicy::permissive(), AT),
        Err(TdxError::TcbRevoked)
    );
}

#[test]
fn resigned_platform_below_every_tcb_level_is_refused() {
    let mut forge = Forge::new();
    let mut info: serde_json::Value = serde_json::from_str(&forge.tcb_info).expect("tcb info");
    for level in info["tcbLevels"].as_array_mut().expect("levels") {
        level["tcb"]["pcesvn"] = 255.into();
    }
    forge.tcb_info = info.to_string();
    assert_eq!(
        forge.verify(&TdxPolicy::permissive(), AT),
        Err(TdxError::TcbLevelNotFound)
    );
}

// --- the collateral signer must be Intel's TCB signing certificate ----------------------

const PCK_ISSUED_SIGNER_NAME: &str =
    "C=US,ST=CA,L=Santa Clara,O=Intel Corporation,CN=Intel SGX TCB Signing";

#[test]
fn resigned_tcb_info_signed_by_the_pck_leaf_is_refused() {
    // The PCK key chains to the root through the Platform CA, so the signature and the chain
    // both verify: only the signer's role is wrong.
    let forge = Forge::new();
    let pck = CollateralSigner {
        key: &forge.pck.key,
        chain_pem: [forge.pck.pem(), forge.pck_ca.pem(), forge.root.pem()].concat(),
    };
    let json = forge.collateral_json_signed_by(&pck, &forge.tcb_signing());
    assert_eq!(
        forge.verify_with(&json, &TdxPolicy::strict(), AT),
        Err(TdxError::TcbSignerNotIssuedByRoot {
            collateral: "TCB info",
            subject: forge.pck.cert.tbs_certificate.subject.to_string(),
            intermediates: 1,
        })
    );
}

#[test]
fn resigned_qe_identity_signed_by_the_pck_leaf_is_refused() {
    let forge = Forge::new();
    let pck = CollateralSigner {
        key: &forge.pck.key,
        chain_pem: [forge.pck.pem(), forge.pck_ca.pem(), forge.root.pem()].concat(),
    };
    let json = forge.collateral_json_signed_by(&forge.tcb_signing(), &pck);
    assert_eq!(
        forge.verify_with(&json, &TdxPolicy::strict(), AT),
        Err(TdxError::TcbSignerNotIssuedByRoot {
            collateral: "QE identity",
            subject: forge.pck.cert.tbs_certificate.subject.to_string(),
            intermediates: 1,
        })
    );
}

#[test]
fn resigned_tcb_info_signed_by_the_pck_platform_ca_is_refused() {
    // Issued directly by the root, but it is the Platform CA, not the TCB signing certificate.
    let forge = Forge::new();
    let platform_ca = CollateralSigner {
        key: &forge.pck_ca.key,
        chain_pem: [forge.pck_ca.pem(), forge.root.pem()].concat(),
    };
    let json = forge.collateral_json_signed_by(&platform_ca, &forge.tcb_signing());
    assert_eq!(
        forge.verify_with(&json, &TdxPolicy::strict(), AT),
        Err(TdxError::TcbSignerSubject {
            collateral: "TCB info",
            subject: forge.pck_ca.cert.tbs_certificate.subject.to_string(),
        })
    );
}

#[test]
fn resigned_tcb_signer_named_like_intels_but_issued_by_the_platform_ca_is_refused() {
    // Intel's name alone is not enough: this "Intel SGX TCB Signing" hangs under the PCK CA.
    let forge = Forge::new();
    let impostor = issue(
        PCK_ISSUED_SIGNER_NAME,
        7,
        Some(&forge.pck_ca),
        (1_577_836_800, 2_208_988_800),
        Some(signing_leaf()),
    );
    let signer = CollateralSigner {
        key: &impostor.key,
        chain_pem: [impostor.pem(), forge.pck_ca.pem(), forge.root.pem()].concat(),
    };
    let json = forge.collateral_json_signed_by(&signer, &forge.tcb_signing());
    assert_eq!(
        forge.verify_with(&json, &TdxPolicy::strict(), AT),
        Err(TdxError::TcbSignerNotIssuedByRoot {
            collateral: "TCB info",
            subject: impostor.cert.tbs_certificate.subject.to_string(),
            intermediates: 1,
        })
    );
}

#[test]
fn resigned_tcb_signer_without_digital_signature_is_refused() {
    let forge = Forge::new();
    let no_signing = issue(
        PCK_ISSUED_SIGNER_NAME,
        8,
        Some(&forge.root),
        (1_577_836_800, 2_208_988_800),
        Some(vec![
            basic_constraints(false, None),
            key_usage(KeyUsages::KeyAgreement),
        ]),
    );
    let signer = CollateralSigner {
        key: &no_signing.key,
        chain_pem: [no_signing.pem(), forge.root.pem()].concat(),
    };
    let json = forge.collateral_json_signed_by(&signer, &forge.tcb_signing());
    let err = forge.verify_with(&json, &TdxPolicy::strict(), AT);
    assert!(
        matches!(
            err,
            Err(TdxError::TcbSigningChain {
                collateral: "TCB info",
                error: CertError::DigitalSignatureNotAllowed { .. }
            })
        ),
        "{err:?}"
    );
}

// --- keyUsage, basicConstraints and path length in the PCK chain -------------------------

#[test]
fn resigned_pck_platform_ca_that_is_not_a_ca_is_refused() {
    let forge = Forge::with_pki(PkiSpec {
        pck_ca_extensions: Some(vec![
            basic_constraints(false, None),
            key_usage(KeyUsages::KeyCertSign | KeyUsages::CRLSign),
        ]),
        ..PkiSpec::intel()
    });
    assert_eq!(
        forge.verify(&TdxPolicy::strict(), AT),
        Err(TdxError::PckChain(CertError::NotCa {
            subject: forge.pck_ca.cert.tbs_certificate.subject.to_string()
        }))
    );
}

#[test]
fn resigned_pck_platform_ca_without_key_cert_sign_is_refused() {
    let forge = Forge::with_pki(PkiSpec {
        pck_ca_extensions: Some(vec![
            basic_constraints(true, Some(0)),
            key_usage(KeyUsages::CRLSign),
        ]),
        ..PkiSpec::intel()
    });
    assert_eq!(
        forge.verify(&TdxPolicy::strict(), AT),
        Err(TdxError::PckChain(CertError::KeyCertSignNotAllowed {
            subject: forge.pck_ca.cert.tbs_certificate.subject.to_string()
        }))
    );
}

#[test]
fn resigned_pck_platform_ca_without_key_usage_is_refused() {
    // Every real Intel issuer carries keyUsage, so the vendor rules require it.
    let forge = Forge::with_pki(PkiSpec {
        pck_ca_extensions: Some(vec![basic_constraints(true, Some(0))]),
        ..PkiSpec::intel()
    });
    assert_eq!(
        forge.verify(&TdxPolicy::strict(), AT),
        Err(TdxError::PckChain(CertError::KeyUsageMissing {
            subject: forge.pck_ca.cert.tbs_certificate.subject.to_string()
        }))
    );
}

#[test]
fn resigned_pck_chain_longer_than_the_platform_cas_path_length_is_refused() {
    // Root (pathlen 1) -> Platform CA (pathlen 0) -> extra CA -> PCK: one CA too many below
    // the Platform CA.
    let forge = Forge::with_pki(PkiSpec {
        extra_ca_extensions: Some(ca()),
        ..PkiSpec::intel()
    });
    assert_eq!(
        forge.verify(&TdxPolicy::strict(), AT),
        Err(TdxError::PckChain(CertError::PathLenExceeded {
            subject: forge.pck_ca.cert.tbs_certificate.subject.to_string(),
            max: 0,
            found: 1,
        }))
    );
}

#[test]
fn resigned_pck_leaf_without_digital_signature_is_refused() {
    let forge = Forge::with_pki(PkiSpec {
        pck_extensions: vec![
            basic_constraints(false, None),
            key_usage(KeyUsages::KeyEncipherment),
        ],
        ..PkiSpec::intel()
    });
    assert_eq!(
        forge.verify(&TdxPolicy::strict(), AT),
        Err(TdxError::PckChain(CertError::DigitalSignatureNotAllowed {
            subject: forge.pck.cert.tbs_certificate.subject.to_string()
        }))
    );
}

#[test]
fn resigned_pck_crl_from_an_issuer_without_crl_sign_is_refused() {
    let forge = Forge::with_pki(PkiSpec {
        pck_ca_extensions: Some(vec![
            basic_constraints(true, Some(0)),
            key_usage(KeyUsages::KeyCertSign),
        ]),
        ..PkiSpec::intel()
    });
    assert_eq!(
        forge.verify(&TdxPolicy::strict(), AT),
        Err(TdxError::CrlInvalid {
            crl: "PCK CRL",
            error: CrlError::IssuerNotCrlSigner {
                issuer: forge.pck_ca.cert.tbs_certificate.subject.to_string()
            }
        })
    );
}

// --- TD attributes -----------------------------------------------------------------------

fn set_attributes(forge: &mut Forge, bits: u64) {
    forge.body[BODY_TD_ATTRIBUTES..BODY_TD_ATTRIBUTES + 8].copy_from_slice(&bits.to_le_bytes());
}

#[test]
fn resigned_td_without_sept_ve_disable_is_refused() {
    let mut forge = Forge::new();
    set_attributes(&mut forge, 0);
    assert_eq!(
        forge.verify(&TdxPolicy::strict(), AT),
        Err(TdxError::TdAttributesMissing {
            missing: attributes::SEPT_VE_DISABLE
        })
    );
    let lenient = TdxPolicy {
        td_attributes_required: 0,
        ..TdxPolicy::strict()
    };
    let verdict = forge.verify(&lenient, AT).expect("not required");
    assert_eq!(verdict.td_attributes, [0; 8]);
}

#[test]
fn resigned_td_with_unwanted_attributes_is_refused() {
    for bit in [
        attributes::MIGRATABLE,
        attributes::PKS,
        attributes::KL,
        attributes::PERFMON,
        attributes::TPA,
        attributes::PERF_PROF,
        1 << 40, // reserved
    ] {
        let mut forge = Forge::new();
        set_attributes(&mut forge, attributes::SEPT_VE_DISABLE | bit);
        assert_eq!(
            forge.verify(&TdxPolicy::strict(), AT),
            Err(TdxError::TdAttributesForbidden { forbidden: bit }),
            "{}",
            attributes::names(bit)
        );
        let allowed = TdxPolicy {
            td_attributes_forbidden: TdxPolicy::STRICT_TD_ATTRIBUTES_FORBIDDEN & !bit,
            ..TdxPolicy::strict()
        };
        let verdict = forge.verify(&allowed, AT).expect("bit allowed");
        assert_eq!(
            u64::from_le_bytes(verdict.td_attributes),
            attributes::SEPT_VE_DISABLE | bit
        );
    }
}

#[test]
fn resigned_debug_td_is_refused_by_the_forbidden_mask_even_when_debug_is_allowed() {
    let mut forge = Forge::new();
    set_attributes(&mut forge, attributes::SEPT_VE_DISABLE | attributes::DEBUG);
    let policy = TdxPolicy {
        allow_debug: true,
        td_attributes_forbidden: TdxPolicy::STRICT_TD_ATTRIBUTES_FORBIDDEN | attributes::DEBUG,
        ..TdxPolicy::strict()
    };
    assert_eq!(
        forge.verify(&policy, AT),
        Err(TdxError::TdAttributesForbidden {
            forbidden: attributes::DEBUG
        })
    );
}

// --- TCB evaluation data number ----------------------------------------------------------

fn with_evaluation_number(json: &str, number: u32) -> String {
    let mut doc: serde_json::Value = serde_json::from_str(json).expect("collateral document");
    doc["tcbEvaluationDataNumber"] = number.into();
    doc.to_string()
}

#[test]
fn resigned_tcb_info_below_the_evaluation_floor_is_refused() {
    let mut forge = Forge::new();
    forge.tcb_info = with_evaluation_number(&forge.tcb_info, 16);
    assert_eq!(
        forge.verify(&TdxPolicy::strict(), AT),
        Err(TdxError::TcbEvaluationDataNumberTooLow {
            collateral: "TCB info",
            number: 16,
            minimum: 17
        })
    );
    let no_floor = TdxPolicy {
        minimum_tcb_evaluation_data_number: None,
        ..TdxPolicy::strict()
    };
    let verdict = forge.verify(&no_floor, AT).expect("no floor");
    assert_eq!(verdict.tcb_info_evaluation_data_number, 16);
    assert_eq!(verdict.qe_identity_evaluation_data_number, 17);
}

#[test]
fn resigned_qe_identity_below_the_evaluation_floor_is_refused() {
    let mut forge = Forge::new();
    forge.qe_identity = with_evaluation_number(&forge.qe_identity, 16);
    assert_eq!(
        forge.verify(&TdxPolicy::strict(), AT),
        Err(TdxError::TcbEvaluationDataNumberTooLow {
            collateral: "QE identity",
            number: 16,
            minimum: 17
        })
    );
}

#[test]
fn real_collateral_below_a_raised_evaluation_floor_is_refused() {
    let policy = TdxPolicy {
        minimum_tcb_evaluation_data_number: Some(18),
        ..TdxPolicy::strict()
    };
    assert_eq!(
        verify_real(&real_quote(), &policy),
        Err(TdxError::TcbEvaluationDataNumberTooLow {
            collateral: "QE identity",
            number: 17,
            minimum: 18
        })
    );
}

// --- RTMR and MRCONFIGID pinning on genuinely signed quotes ------------------------------

#[test]
fn resigned_rtmr_change_is_refused_by_rtmr_pinning() {
    let real = Quote::parse(&real_quote()).expect("quote").body;
    let mut forge = Forge::new();
    let rtmr1 = BODY_RTMR0 + 48;
    forge.body[rtmr1] ^= 0x01;
    let pinned = TdxPolicy {
        expected_rtmrs: real.rtmrs.map(Some),
        ..TdxPolicy::strict()
    };
    assert_eq!(
        forge.verify(&pinned, AT),
        Err(TdxError::RtmrMismatch { index: 1 })
    );
    let mut changed = real.rtmrs;
    changed[1][0] ^= 0x01;
    let repinned = TdxPolicy {
        expected_rtmrs: changed.map(Some),
        ..TdxPolicy::strict()
    };
    let verdict = forge
        .verify(&repinned, AT)
        .expect("pinned to the new value");
    assert_eq!(verdict.rtmrs, changed);
}

#[test]
fn resigned_mrconfigid_change_is_refused_by_mrconfigid_pinning() {
    let real = Quote::parse(&real_quote()).expect("quote").body;
    let mut forge = Forge::new();
    forge.body[BODY_MRCONFIGID + 47] ^= 0x80;
    let pinned = TdxPolicy {
        expected_mrconfigid: Some(real.mrconfigid),
        ..TdxPolicy::strict()
    };
    assert_eq!(forge.verify(&pinned, AT), Err(TdxError::MrConfigIdMismatch));
    let mut changed = real.mrconfigid;
    changed[47] ^= 0x80;
    let repinned = TdxPolicy {
        expected_mrconfigid: Some(changed),
        ..TdxPolicy::strict()
    };
    let verdict = forge
        .verify(&repinned, AT)
        .expect("pinned to the new value");
    assert_eq!(verdict.mrconfigid, changed);
}
