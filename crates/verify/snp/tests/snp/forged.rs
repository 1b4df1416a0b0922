//! Forged and mismatched SEV-SNP evidence: every case must be refused with the specific
//! error naming the failed check. Forgeries start from the real Milan report and VCEK; where
//! a forgery needs a valid signature over changed fields, it is re-signed by a simulated
//! authority whose chip id and TCB mirror the real chip, so only the mutated field differs.

use sotto_verify_snp::sim::{forge, SimAuthority};
use sotto_verify_snp::{
    roots, verify, AttestationReport, CertError, GuestPolicy, KeyInfo, KeyKind, ParseError,
    Product, SigningKey, SnpAnchor, SnpError, SnpEvidence, SnpPolicy, SnpVerdict, TcbVersion,
};

use super::{
    amd, assert_vcek_expired, assert_vcek_not_yet_valid, assert_vcek_signature_refused,
    impostor_ask, milan, milan_report, milan_tcb, mirror_authority, pem_der, rng, sim_anchor,
    swapped_intermediate, vector, AFTER_VCEK, AT, BEFORE_VCEK,
};

fn amd_with(ev: &SnpEvidence, policy: &SnpPolicy) -> Result<SnpVerdict, SnpError> {
    verify(ev, &SnpAnchor::Amd, policy, AT)
}

fn simulated(sim: &SimAuthority, ev: &SnpEvidence) -> Result<SnpVerdict, SnpError> {
    verify(ev, &sim_anchor(sim), &SnpPolicy::default(), AT)
}

fn tampered(mutate: impl FnOnce(&mut AttestationReport)) -> SnpEvidence {
    forge::tampered(&milan(), mutate).unwrap()
}

/// The real Milan report changed by `mutate` and re-signed by `sim`.
fn resigned(sim: &SimAuthority, mutate: impl FnOnce(&mut AttestationReport)) -> SnpEvidence {
    forge::resigned(sim, &milan_report(), mutate).unwrap()
}

/// The real Milan report with `bit` set in its guest policy, re-signed by `sim`.
fn with_policy_bit(sim: &SimAuthority, bit: u64) -> SnpEvidence {
    resigned(sim, |r| r.policy = GuestPolicy(r.policy.0 | bit))
}

/// `ev` under `sim`'s root and a policy that allows VMPL `max` at most.
fn with_max_vmpl(sim: &SimAuthority, ev: &SnpEvidence, max: u32) -> Result<SnpVerdict, SnpError> {
    let policy = SnpPolicy {
        max_vmpl: Some(max),
        ..SnpPolicy::default()
    };
    verify(ev, &sim_anchor(sim), &policy, AT)
}

// Controls: the unmodified inputs pass, so each refusal below is caused by its mutation.

#[test]
fn control_real_milan_evidence_is_accepted() {
    amd(&milan()).expect("the real Milan evidence");
}

#[test]
fn control_resigned_unchanged_report_is_accepted_under_its_simulated_root() {
    let sim = mirror_authority();
    let ev = resigned(&sim, |_| {});
    simulated(&sim, &ev).expect("the re-signed report");
}

// Signed fields changed without re-signing.

#[test]
fn each_changed_signed_field_breaks_the_signature() {
    type Row = (&'static str, fn(&mut AttestationReport));
    let rows: [Row; 7] = [
        ("measurement", |r| r.measurement[0] ^= 1),
        ("report_data", |r| r.report_data = [0x42; 64]),
        ("policy", |r| {
            r.policy = GuestPolicy(r.policy.0 | GuestPolicy::SINGLE_SOCKET)
        }),
        ("reported_tcb", |r| r.reported_tcb += 1 << 56),
        ("chip_id", |r| r.chip_id[63] ^= 0x80),
        ("vmpl", |r| r.vmpl = 3),
        ("host_data", |r| r.host_data[5] = 0xff),
    ];
    for (field, change) in rows {
        let ev = tampered(change);
        assert_eq!(amd(&ev), Err(SnpError::SignatureInvalid), "{field}");
    }
}

#[test]
fn signature_bit_flip_is_refused() {
    let mut ev = milan();
    ev.report[0x2A0 + 10] ^= 0x04;
    assert_eq!(amd(&ev), Err(SnpError::SignatureInvalid));
}

#[test]
fn signature_padding_above_48_bytes_is_refused() {
    let mut ev = milan();
    ev.report[0x2E8 + 60] = 1;
    assert_eq!(amd(&ev), Err(SnpError::SignatureEncoding));
}

#[test]
fn unknown_signature_algorithm_is_refused() {
    let ev = tampered(|r| r.signature_algo = 2);
    assert_eq!(amd(&ev), Err(SnpError::UnsupportedSignatureAlgorithm(2)));
}

// Re-signed, genuinely signed forgeries that the policy must refuse.

#[test]
fn resigned_with_debug_bit_is_refused() {
    let sim = mirror_authority();
    let ev = with_policy_bit(&sim, GuestPolicy::DEBUG);
    assert_eq!(simulated(&sim, &ev), Err(SnpError::DebugAllowed));
    let lenient = SnpPolicy {
        allow_debug: true,
        ..SnpPolicy::default()
    };
    assert!(verify(&ev, &sim_anchor(&sim), &lenient, AT).is_ok());
}

#[test]
fn resigned_with_migration_agent_is_refused() {
    let sim = mirror_authority();
    let ev = with_policy_bit(&sim, GuestPolicy::MIGRATE_MA);
    assert_eq!(simulated(&sim, &ev), Err(SnpError::MigrationAgent));
}

#[test]
fn resigned_vmpl_above_the_maximum_is_refused() {
    let sim = mirror_authority();
    for vmpl in [2, 1] {
        let ev = resigned(&sim, |r| r.vmpl = vmpl);
        assert_eq!(
            with_max_vmpl(&sim, &ev, 0),
            Err(SnpError::Vmpl { vmpl, max: 0 })
        );
    }
    // VMPL 1 passes where it is allowed.
    let ev = resigned(&sim, |r| r.vmpl = 1);
    let verdict = with_max_vmpl(&sim, &ev, 1).expect("VMPL 1 allowed");
    assert_eq!(verdict.vmpl, 1);
    assert!(verdict.checks.contains(&"vmpl"));
}

/// The real Milan evidence under a policy that requires at least `minimum`.
fn with_minimum_tcb(minimum: TcbVersion) -> Result<SnpVerdict, SnpError> {
    let policy = SnpPolicy {
        minimum_tcb: Some(minimum),
        ..SnpPolicy::default()
    };
    amd_with(&milan(), &policy)
}

/// The real report's SNP SVN 8 below a minimum of 9.
const SNP_8_BELOW_9: SnpError = SnpError::TcbBelowMinimum {
    field: "snp",
    reported: 8,
    minimum: 9,
};

#[test]
fn each_reported_tcb_component_below_its_minimum_is_refused() {
    let have = milan_tcb();
    // Each row: the component, a minimum one above what the report carries, and that value.
    type Row = (&'static str, fn(&mut TcbVersion), u8);
    let cases: [Row; 5] = [
        ("bootloader", |t| t.bootloader += 1, have.bootloader),
        ("tee", |t| t.tee += 1, have.tee),
        ("snp", |t| t.snp += 1, have.snp),
        ("microcode", |t| t.microcode += 1, have.microcode),
        // Milan has no FMC: a minimum that names one is never met.
        ("fmc", |t| t.fmc = Some(1), 0),
    ];
    for (field, raise, reported) in cases {
        let mut minimum = have;
        raise(&mut minimum);
        assert_eq!(
            with_minimum_tcb(minimum),
            Err(SnpError::TcbBelowMinimum {
                field,
                reported,
                minimum: reported + 1
            }),
            "{field}"
        );
    }
    with_minimum_tcb(have).expect("the exact minimum");
}

#[test]
fn minimum_tcb_is_compared_componentwise_not_as_one_number() {
    // As one packed TCB_VERSION, the report (microcode 0x73 in the top byte) is far above this
    // minimum (microcode 0x10); component by component, its SNP SVN 8 is below 9.
    let minimum = TcbVersion {
        fmc: None,
        bootloader: 0,
        tee: 0,
        snp: 9,
        microcode: 0x10,
    };
    assert!(milan_report().reported_tcb > minimum.encode(Product::Milan));
    assert_eq!(with_minimum_tcb(minimum), Err(SNP_8_BELOW_9));
}

#[test]
fn tcb_below_minimum_is_refused() {
    let minimum = TcbVersion {
        snp: milan_tcb().snp + 1,
        ..milan_tcb()
    };
    assert_eq!(with_minimum_tcb(minimum), Err(SNP_8_BELOW_9));
}

#[test]
fn unexpected_measurement_is_refused() {
    let policy = SnpPolicy {
        allowed_measurements: vec![[0x11; 48], [0x22; 48]],
        ..SnpPolicy::default()
    };
    assert!(matches!(
        amd_with(&milan(), &policy),
        Err(SnpError::MeasurementNotAllowed(ref m)) if m == &hex::encode(milan_report().measurement)
    ));
}

#[test]
fn unexpected_report_data_is_refused() {
    let policy = SnpPolicy {
        expected_report_data: Some([0x33; 64]),
        ..SnpPolicy::default()
    };
    assert_eq!(
        amd_with(&milan(), &policy),
        Err(SnpError::ReportDataMismatch)
    );
}

#[test]
fn unexpected_host_data_is_refused() {
    let policy = SnpPolicy {
        expected_host_data: Some([0x44; 32]),
        ..SnpPolicy::default()
    };
    assert_eq!(amd_with(&milan(), &policy), Err(SnpError::HostDataMismatch));
}

// Endorsement certificate does not match the report.

/// A report signed by a VLEK, as its KEY_INFO says, presented with a VCEK.
const VLEK_REPORT_UNDER_A_VCEK: SnpError = SnpError::CertKindMismatch {
    report: SigningKey::Vlek,
    cert: KeyKind::Vcek,
};

#[test]
fn vcek_tcb_extension_mismatch_is_refused() {
    let newer = TcbVersion {
        microcode: milan_tcb().microcode + 1,
        ..milan_tcb()
    };
    let sim = SimAuthority::generate(&mut rng(2), AT, milan_report().chip_id, newer).unwrap();
    let ev = resigned(&sim, |_| {});
    assert_eq!(
        simulated(&sim, &ev),
        Err(SnpError::TcbMismatch {
            field: "microcode",
            report: 0x73,
            cert: 0x74
        })
    );
}

#[test]
fn hwid_mismatch_is_refused() {
    let sim = SimAuthority::generate(&mut rng(3), AT, [0xEE; 64], milan_tcb()).unwrap();
    let ev = resigned(&sim, |_| {});
    assert_eq!(simulated(&sim, &ev), Err(SnpError::ChipIdMismatch));
}

#[test]
fn vcek_presented_for_vlek_signed_report_is_refused() {
    let ev = SnpEvidence {
        report: vector("trustee-vlek-report.bin"),
        endorsement_der: vector("trustee-vcek.der"),
        chain_der: vec![],
    };
    assert_eq!(amd(&ev), Err(VLEK_REPORT_UNDER_A_VCEK));
}

#[test]
fn vlek_presented_for_vcek_signed_report_is_refused() {
    let ev = SnpEvidence {
        endorsement_der: vector("trustee-vlek.der"),
        ..milan()
    };
    assert_eq!(
        amd(&ev),
        Err(SnpError::CertKindMismatch {
            report: SigningKey::Vcek,
            cert: KeyKind::Vlek
        })
    );
}

#[test]
fn report_claiming_vlek_with_vcek_endorsement_is_refused() {
    let ev = tampered(|r| r.key_info = KeyInfo(KeyInfo::VLEK));
    assert_eq!(amd(&ev), Err(VLEK_REPORT_UNDER_A_VCEK));
}

#[test]
fn ask_as_endorsement_is_refused() {
    let ev = SnpEvidence {
        endorsement_der: pem_der(roots::MILAN_ASK_PEM),
        ..milan()
    };
    assert_eq!(amd(&ev), Err(SnpError::UnknownEndorsementKind));
}

// Chain and anchor.

#[test]
fn wrong_ask_from_another_product_is_refused() {
    let ev = SnpEvidence {
        chain_der: vec![pem_der(roots::GENOA_ASK_PEM)],
        ..milan()
    };
    assert!(matches!(
        amd(&ev),
        Err(SnpError::Chain(CertError::IssuerMismatch { .. }))
    ));
}

#[test]
fn impostor_ask_with_amds_name_is_refused() {
    assert_vcek_signature_refused(&amd(&impostor_ask()));
}

#[test]
fn chain_ending_at_non_amd_root_is_refused() {
    let fake_ark = forge::impostor_of(&mut rng(5), &pem_der(roots::MILAN_ARK_PEM)).unwrap();
    let ev = SnpEvidence {
        chain_der: vec![pem_der(roots::MILAN_ASK_PEM), fake_ark],
        ..milan()
    };
    assert_eq!(amd(&ev), Err(SnpError::NotAmdRoot));
}

#[test]
fn simulated_evidence_under_amd_anchor_is_refused() {
    let sim = mirror_authority();
    let ev = sim.evidence(&sim.issue_report([1; 48], [2; 64]).unwrap());
    assert_eq!(amd(&ev), Err(SnpError::NotAmdRoot));
    let without_chain = SnpEvidence {
        chain_der: vec![],
        ..ev
    };
    assert_eq!(amd(&without_chain), Err(SnpError::NotAmdRoot));
}

#[test]
fn amd_evidence_under_simulated_anchor_is_refused() {
    let sim = mirror_authority();
    let with_amd_chain = SnpEvidence {
        chain_der: vec![pem_der(roots::MILAN_ASK_PEM), pem_der(roots::MILAN_ARK_PEM)],
        ..milan()
    };
    assert_eq!(
        simulated(&sim, &with_amd_chain),
        Err(SnpError::SimulatedRootMismatch)
    );
    assert_eq!(
        simulated(&sim, &milan()),
        Err(SnpError::ChainShape {
            found: 0,
            expected: "2"
        })
    );
}

#[test]
fn evidence_from_another_simulated_root_is_refused() {
    let trusted = mirror_authority();
    let other = SimAuthority::generate(&mut rng(6), AT, [7; 64], milan_tcb()).unwrap();
    let ev = other.evidence(&other.issue_report([1; 48], [2; 64]).unwrap());
    assert_eq!(
        simulated(&trusted, &ev),
        Err(SnpError::SimulatedRootMismatch)
    );
}

#[test]
fn swapped_simulated_intermediate_is_refused() {
    let trusted = mirror_authority();
    assert!(matches!(
        simulated(&trusted, &swapped_intermediate(&trusted)),
        Err(SnpError::Chain(CertError::BadSignature { .. }))
    ));
}

#[test]
fn expired_vcek_is_refused() {
    assert_vcek_expired(&verify(
        &milan(),
        &SnpAnchor::Amd,
        &SnpPolicy::default(),
        AFTER_VCEK,
    ));
}

#[test]
fn not_yet_valid_vcek_is_refused() {
    assert_vcek_not_yet_valid(&verify(
        &milan(),
        &SnpAnchor::Amd,
        &SnpPolicy::default(),
        BEFORE_VCEK,
    ));
}

// Malformed reports.

/// Refused as a report of the wrong length: `found` bytes.
fn assert_length_refused(ev: &SnpEvidence, found: usize) {
    let got = amd(ev);
    assert!(
        matches!(got, Err(SnpError::Parse(ParseError::Length { found: f, .. })) if f == found),
        "{got:?}"
    );
}

#[test]
fn truncated_report_is_refused() {
    let mut ev = milan();
    ev.report.pop();
    assert_length_refused(&ev, 1183);
}

#[test]
fn oversized_report_is_refused() {
    let mut ev = milan();
    ev.report.push(0);
    assert_length_refused(&ev, 1185);
}

#[test]
fn unsupported_version_is_refused() {
    for version in [0u32, 1, 4, 6] {
        let mut ev = milan();
        ev.report[..4].copy_from_slice(&version.to_le_bytes());
        assert_eq!(amd(&ev), Err(SnpError::UnsupportedVersion(version)));
    }
}
