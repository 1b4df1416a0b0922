//! Forged and altered evidence: every case must be refused by the exact check it defeats.
//! Cases marked "real" tamper with the genuine Intel-signed quote/collateral; cases marked
//! "re-signed" build consistent evidence under a throwaway PKI (the `forge` kit) so that only the
//! property under test is wrong.

use der::flagset::FlagSet;
use sotto_verify_core::crl::CrlError;
use sotto_verify_core::x509::CertError;
use sotto_verify_tdx::{
    attributes, verify, Collateral, Quote, TcbStatus, TdxError, TdxPolicy, TdxVerdict, UnixTime,
    MAX_QUOTE_LEN,
};
use x509_cert::ext::pkix::KeyUsages;
use x509_cert::ext::Extension;

use super::forge::{
    basic_constraints, ca, crl, issue, key_usage, signing_leaf, Forge, PkiSpec, PCK_CA_NAME,
    TCB_SIGNING_NAME, Y2020, Y2040,
};
use super::{
    assert_pck_crl_expired, flipped, qe_identity_downgraded, read, real_collateral, real_quote,
    tcb_info_upgraded, AFTER_PCK_CRL, AT, BEFORE_QE_IDENTITY, QE_IDENTITY_NOT_YET_VALID, SIG,
};

const MRTD: usize = 48 + 136;
const RTMR0: usize = 48 + 328;
const REPORT_DATA: usize = 48 + 520;
/// Offsets in the TD report body (without the header), as `Forge::body` holds it.
const BODY_TD_ATTRIBUTES: usize = 120;
const BODY_MRCONFIGID: usize = 184;
const BODY_RTMR0: usize = 328;
const ATT_KEY: usize = SIG + 64;
const QE_REPORT: usize = SIG + 128 + 6;
const QE_AUTH_DATA: usize = QE_REPORT + 384 + 64 + 2;

/// `quote` with the real collateral under the pinned root and `policy`, at [`AT`].
fn real_with(quote: &[u8], policy: &TdxPolicy) -> Result<TdxVerdict, TdxError> {
    verify(quote, &real_collateral(), policy, AT)
}

/// `quote` with the real collateral, under the pinned root and the strict policy.
fn real(quote: &[u8]) -> Result<TdxVerdict, TdxError> {
    real_with(quote, &TdxPolicy::strict())
}

/// The real quote with `collateral`, under the pinned root and the strict policy, at `at`.
fn real_quote_with(collateral: &Collateral, at: UnixTime) -> Result<TdxVerdict, TdxError> {
    verify(&real_quote(), collateral, &TdxPolicy::strict(), at)
}

// --- real evidence, altered -------------------------------------------------------------

#[test]
fn real_quote_bytes_changed_are_refused_by_the_signature_they_break() {
    let rows = [
        ("MRTD", MRTD + 5, TdxError::QuoteSignature),
        ("REPORT_DATA", REPORT_DATA + 1, TdxError::QuoteSignature),
        ("RTMR3", RTMR0 + 48 * 3 + 7, TdxError::QuoteSignature),
        ("the quote signature", SIG + 40, TdxError::QuoteSignature),
        (
            "the QE report",
            QE_REPORT + 258,
            TdxError::QeReportSignature,
        ),
        // The QE report binds the attestation key and the auth data by hash.
        (
            "the QE auth data",
            QE_AUTH_DATA + 3,
            TdxError::QeReportDataMismatch,
        ),
    ];
    for (what, at, refusal) in rows {
        assert_eq!(real(&flipped(at)), Err(refusal), "{what}");
    }
}

#[test]
fn real_attestation_key_swapped_is_not_bound_by_the_qe() {
    let mut q = real_quote();
    let other = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let point = other.verifying_key().to_encoded_point(false);
    q[ATT_KEY..ATT_KEY + 64].copy_from_slice(&point.as_bytes()[1..]);
    assert_eq!(real(&q), Err(TdxError::QeReportDataMismatch));
}

#[test]
fn real_collateral_tampered_breaks_its_signatures() {
    assert_eq!(
        real_quote_with(&tcb_info_upgraded(), AT),
        Err(TdxError::TcbInfoSignature)
    );
    assert_eq!(
        real_quote_with(&qe_identity_downgraded(), AT),
        Err(TdxError::QeIdentitySignature)
    );
}

#[test]
fn real_collateral_expired_after_pck_crl_next_update() {
    assert_pck_crl_expired(&real_quote_with(&real_collateral(), AFTER_PCK_CRL));
}

#[test]
fn real_collateral_not_yet_valid_before_qe_identity_issue_date() {
    let got = real_quote_with(&real_collateral(), BEFORE_QE_IDENTITY);
    assert_eq!(got, Err(QE_IDENTITY_NOT_YET_VALID));
}

#[test]
fn real_quote_with_another_platforms_collateral_is_an_fmspc_mismatch() {
    // The outdated sample's collateral is Intel-signed too, but for FMSPC 90C06F000000.
    let other =
        sotto_verify_tdx::Collateral::from_json(&read("tdx_quote_outdated_collateral.json"))
            .expect("collateral");
    assert_eq!(
        real_quote_with(&other, UnixTime(1_771_459_200)),
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
        let err = real(&q[..len]);
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
        real(&q),
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
    assert_eq!(real(&q), Err(TdxError::UnsupportedVersion(3)));
}

#[test]
fn sgx_tee_type_is_refused() {
    let mut q = real_quote();
    q[4] = 0;
    assert_eq!(real(&q), Err(TdxError::UnsupportedTeeType(0)));
}

#[test]
fn unsigned_trailing_bytes_are_refused() {
    let mut q = real_quote();
    *q.last_mut().expect("padding") = 1;
    assert!(matches!(real(&q), Err(TdxError::QuoteParse(_))));
}

#[test]
fn policy_pins_that_the_real_quote_does_not_match_are_refused() {
    use TdxError as E;
    let quote = Quote::parse(&real_quote()).expect("quote");
    // Every row pins the real RTMRs and changes one pin, so the refusal names that one.
    type Row = (fn(&mut TdxPolicy), TdxError);
    let rows: [Row; 4] = [
        (|p| p.expected_mrtd = Some([0x11; 48]), E::MrtdMismatch),
        (
            |p| p.expected_rtmrs[2] = Some([0x22; 48]),
            E::RtmrMismatch { index: 2 },
        ),
        (
            |p| p.expected_report_data = Some([0x33; 64]),
            E::ReportDataMismatch,
        ),
        (
            |p| p.expected_mrconfigid = Some([0x44; 48]),
            E::MrConfigIdMismatch,
        ),
    ];
    for (pin, refusal) in rows {
        let mut policy = TdxPolicy {
            expected_rtmrs: quote.body.rtmrs.map(Some),
            ..TdxPolicy::strict()
        };
        pin(&mut policy);
        let got = real_with(&real_quote(), &policy);
        assert_eq!(got, Err(refusal));
    }
}

// --- re-signed under the test PKI --------------------------------------------------------

#[test]
fn resigned_baseline_verifies_under_the_test_root_only() {
    let forge = Forge::new();
    let verdict = forge
        .strict()
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
fn resigned_pck_chain_certificates_revoked_by_their_crls_are_refused() {
    type Row = (fn(&mut Forge), &'static str);
    let rows: [Row; 2] = [
        // The PCK leaf, on the Platform CA's CRL.
        (
            |f| f.pck_crl_revoked = vec![f.pck.serial()],
            "PCK Certificate",
        ),
        // The Platform CA, on the root's CRL.
        (
            |f| f.root_crl_revoked = vec![f.pck_ca.serial()],
            "PCK Platform CA",
        ),
    ];
    for (revoke, name) in rows {
        let mut forge = Forge::new();
        revoke(&mut forge);
        let got = forge.strict();
        assert!(
            matches!(&got, Err(TdxError::PckRevoked { subject }) if subject.contains(name)),
            "{got:?}"
        );
    }
}

#[test]
fn resigned_pck_crl_signed_by_the_wrong_key_is_invalid() {
    let forge = Forge::new();
    let mut json = forge.collateral_json();
    let impostor = issue(PCK_CA_NAME, 9, Some(&forge.root), (Y2020, Y2040), None);
    json["pck_crl"] = hex::encode(crl(&impostor, forge.crl_window, &[])).into();
    let err = forge.verify_with(&json, &TdxPolicy::strict(), AT);
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
    let forge = Forge::with_leaf_validity((Y2020, 1_735_689_600));
    let err = forge.strict();
    assert!(
        matches!(err, Err(TdxError::PckChain(CertError::Expired { .. }))),
        "{err:?}"
    );
}

#[test]
fn resigned_debug_td_is_refused_unless_allowed() {
    let mut forge = Forge::new();
    forge.body[120] |= 1; // TDATTRIBUTES.TUD.DEBUG
    assert_eq!(forge.strict(), Err(TdxError::DebugEnabled));
    let allow = TdxPolicy {
        allow_debug: true,
        ..TdxPolicy::strict()
    };
    let verdict = forge.verify(&allow, AT).expect("debug allowed");
    assert_eq!(verdict.td_attributes[0] & 1, 1);
}

#[test]
fn resigned_tcb_info_for_another_platform_or_time_is_refused() {
    let rows = [
        (
            "fmspc",
            "00906ED50000",
            TdxError::FmspcMismatch {
                pck: "b0c06f000000".into(),
                tcb_info: "00906ed50000".into(),
            },
        ),
        // Expired before AT (the real one is valid until 2025-07-19T10:16:03Z).
        (
            "nextUpdate",
            "2025-06-19T23:00:00Z",
            TdxError::TcbInfoExpired {
                next_update: 1_750_374_000,
                at: AT.0,
            },
        ),
        // Issued after AT (the real one on 2025-06-19T10:16:03Z).
        (
            "issueDate",
            "2025-06-21T00:00:00Z",
            TdxError::TcbInfoNotYetValid {
                issue_date: 1_750_464_000,
                at: AT.0,
            },
        ),
    ];
    for (field, value, refusal) in rows {
        let mut forge = Forge::new();
        let mut info: serde_json::Value = serde_json::from_str(&forge.tcb_info).expect("tcb info");
        info[field] = value.into();
        forge.tcb_info = info.to_string();
        assert_eq!(forge.strict(), Err(refusal), "{field}");
    }
}

#[test]
fn resigned_qe_identity_with_another_signer_is_a_mismatch() {
    let mut forge = Forge::new();
    forge.qe_identity =
        forge
            .qe_identity
            .replacen("\"mrsigner\":\"DC9E2A7C", "\"mrsigner\":\"DC9E2A7D", 1);
    assert_eq!(
        forge.strict(),
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
        forge.strict(),
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

#[test]
fn resigned_collateral_signed_by_the_pck_leaf_is_refused() {
    // The PCK key chains to the root through the Platform CA, so the signature and the chain
    // both verify: only the signer's role is wrong.
    let forge = Forge::new();
    let pck = forge.pck.signer(&[&forge.pck_ca, &forge.root]);
    for collateral in ["TCB info", "QE identity"] {
        assert_eq!(
            forge.with_collateral_signed_by(collateral, &pck),
            Err(TdxError::TcbSignerNotIssuedByRoot {
                collateral,
                subject: forge.pck.name().to_string(),
                intermediates: 1,
            })
        );
    }
}

#[test]
fn resigned_tcb_info_signed_by_the_pck_platform_ca_is_refused() {
    // Issued directly by the root, but it is the Platform CA, not the TCB signing certificate.
    let forge = Forge::new();
    let platform_ca = forge.pck_ca.signer(&[&forge.root]);
    let subject = forge.pck_ca.name().to_string();
    assert_eq!(
        forge.with_collateral_signed_by("TCB info", &platform_ca),
        Err(TdxError::TcbSignerSubject {
            collateral: "TCB info",
            subject,
        })
    );
}

#[test]
fn resigned_tcb_signer_named_like_intels_but_issued_by_the_platform_ca_is_refused() {
    // Intel's name alone is not enough: this "Intel SGX TCB Signing" hangs under the PCK CA.
    let forge = Forge::new();
    let ca = Some(&forge.pck_ca);
    let impostor = issue(
        TCB_SIGNING_NAME,
        7,
        ca,
        (Y2020, Y2040),
        Some(signing_leaf()),
    );
    let signer = impostor.signer(&[&forge.pck_ca, &forge.root]);
    let refusal = forge.with_collateral_signed_by("TCB info", &signer);
    assert_eq!(
        refusal,
        Err(TdxError::TcbSignerNotIssuedByRoot {
            collateral: "TCB info",
            subject: impostor.name().to_string(),
            intermediates: 1,
        })
    );
}

#[test]
fn resigned_tcb_signer_without_digital_signature_is_refused() {
    let forge = Forge::new();
    let key_agreement = role(false, None, KeyUsages::KeyAgreement.into());
    let no_signing = issue(
        TCB_SIGNING_NAME,
        8,
        Some(&forge.root),
        (Y2020, Y2040),
        Some(key_agreement),
    );
    let err = forge.with_collateral_signed_by("TCB info", &no_signing.signer(&[&forge.root]));
    let Err(TdxError::TcbSigningChain { collateral, error }) = err else {
        panic!("not a TCB signing chain refusal: {err:?}");
    };
    assert_eq!(collateral, "TCB info");
    assert!(
        matches!(error, CertError::DigitalSignatureNotAllowed { .. }),
        "{error:?}"
    );
}

// --- keyUsage, basicConstraints and path length in the PCK chain -------------------------

/// basicConstraints (CA or not, with a path length) and keyUsage, as one certificate carries.
fn role(ca: bool, path_len: Option<u8>, usages: FlagSet<KeyUsages>) -> Vec<Extension> {
    vec![basic_constraints(ca, path_len), key_usage(usages)]
}

/// The refusal of `forge` by the PCK chain check.
fn pck_chain_refusal(forge: &Forge) -> CertError {
    match forge.strict() {
        Err(TdxError::PckChain(error)) => error,
        other => panic!("not a PCK chain refusal: {other:?}"),
    }
}

#[test]
fn resigned_pck_platform_ca_without_its_role_is_refused() {
    use KeyUsages::{CRLSign, KeyCertSign};
    type Row = (&'static str, Vec<Extension>, fn(String) -> CertError);
    let rows: [Row; 3] = [
        (
            "not a CA",
            role(false, None, KeyCertSign | CRLSign),
            |subject| CertError::NotCa { subject },
        ),
        (
            "without keyCertSign",
            role(true, Some(0), CRLSign.into()),
            |subject| CertError::KeyCertSignNotAllowed { subject },
        ),
        // Every real Intel issuer carries keyUsage, so the vendor rules require it.
        (
            "without keyUsage",
            vec![basic_constraints(true, Some(0))],
            |subject| CertError::KeyUsageMissing { subject },
        ),
    ];
    for (what, extensions, refusal) in rows {
        let forge = Forge::with_pki(PkiSpec {
            pck_ca_extensions: Some(extensions),
            ..PkiSpec::intel()
        });
        let subject = forge.pck_ca.name().to_string();
        assert_eq!(pck_chain_refusal(&forge), refusal(subject), "{what}");
    }
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
        pck_chain_refusal(&forge),
        CertError::PathLenExceeded {
            subject: forge.pck_ca.name().to_string(),
            max: 0,
            found: 1,
        }
    );
}

#[test]
fn resigned_pck_leaf_without_digital_signature_is_refused() {
    let forge = Forge::with_pki(PkiSpec {
        pck_extensions: role(false, None, KeyUsages::KeyEncipherment.into()),
        ..PkiSpec::intel()
    });
    let subject = forge.pck.name().to_string();
    assert_eq!(
        pck_chain_refusal(&forge),
        CertError::DigitalSignatureNotAllowed { subject }
    );
}

#[test]
fn resigned_pck_crl_from_an_issuer_without_crl_sign_is_refused() {
    let forge = Forge::with_pki(PkiSpec {
        pck_ca_extensions: Some(role(true, Some(0), KeyUsages::KeyCertSign.into())),
        ..PkiSpec::intel()
    });
    let issuer = forge.pck_ca.name().to_string();
    assert_eq!(
        forge.strict(),
        Err(TdxError::CrlInvalid {
            crl: "PCK CRL",
            error: CrlError::IssuerNotCrlSigner { issuer }
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
        forge.strict(),
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
            forge.strict(),
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
fn resigned_collateral_below_the_evaluation_floor_is_refused() {
    let no_floor = TdxPolicy {
        minimum_tcb_evaluation_data_number: None,
        ..TdxPolicy::strict()
    };
    // Each row: the document numbered 16, and the (TCB info, QE identity) numbers then.
    for (collateral, numbers) in [("TCB info", (16, 17)), ("QE identity", (17, 16))] {
        let mut forge = Forge::new();
        let document = match collateral {
            "TCB info" => &mut forge.tcb_info,
            _ => &mut forge.qe_identity,
        };
        *document = with_evaluation_number(document, 16);
        assert_eq!(
            forge.strict(),
            Err(TdxError::TcbEvaluationDataNumberTooLow {
                collateral,
                number: 16,
                minimum: 17
            })
        );
        let verdict = forge.verify(&no_floor, AT).expect("no floor");
        assert_eq!(
            (
                verdict.tcb_info_evaluation_data_number,
                verdict.qe_identity_evaluation_data_number
            ),
            numbers,
            "{collateral}"
        );
    }
}

#[test]
fn real_collateral_below_a_raised_evaluation_floor_is_refused() {
    let policy = TdxPolicy {
        minimum_tcb_evaluation_data_number: Some(18),
        ..TdxPolicy::strict()
    };
    assert_eq!(
        real_with(&real_quote(), &policy),
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
