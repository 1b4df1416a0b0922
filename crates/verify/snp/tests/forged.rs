//! Forged and mismatched SEV-SNP evidence: every case must be refused with the specific
//! error naming the failed check. Forgeries start from the real Milan report and VCEK; where
//! a forgery needs a valid signature over changed fields, it is re-signed by a simulated
//! authority whose chip id and TCB mirror the real chip, so only the mutated field differs.

mod common;

use common::{milan, vector, AT};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sotto_verify_core::x509::Cert;
use sotto_verify_snp::sim::{forge, SimAuthority};
use sotto_verify_snp::{
    roots, verify, AttestationReport, CertError, GuestPolicy, KeyInfo, KeyKind, Product,
    SigningKey, SnpAnchor, SnpError, SnpEvidence, SnpPolicy, TcbVersion, UnixTime,
};

fn milan_report() -> AttestationReport {
    AttestationReport::parse(&milan().report).unwrap()
}

fn milan_tcb() -> TcbVersion {
    TcbVersion::decode(milan_report().reported_tcb, Product::Milan)
}

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// A simulated chip that mirrors the real Milan chip's id and TCB.
fn mirror_authority() -> SimAuthority {
    let report = milan_report();
    SimAuthority::generate(&mut rng(1), AT, report.chip_id, milan_tcb()).unwrap()
}

fn sim_anchor(sim: &SimAuthority) -> SnpAnchor {
    SnpAnchor::Simulated {
        root_der: sim.root_der().to_vec(),
    }
}

fn amd(ev: &SnpEvidence) -> Result<(), SnpError> {
    verify(ev, &SnpAnchor::Amd, &SnpPolicy::default(), AT).map(|_| ())
}

fn amd_with(ev: &SnpEvidence, policy: &SnpPolicy) -> Result<(), SnpError> {
    verify(ev, &SnpAnchor::Amd, policy, AT).map(|_| ())
}

fn simulated(sim: &SimAuthority, ev: &SnpEvidence) -> Result<(), SnpError> {
    verify(ev, &sim_anchor(sim), &SnpPolicy::default(), AT).map(|_| ())
}

fn tampered(mutate: impl FnOnce(&mut AttestationReport)) -> SnpEvidence {
    forge::tampered(&milan(), mutate).unwrap()
}

fn pem_der(pem: &str) -> Vec<u8> {
    Cert::from_pem_chain(pem.as_bytes()).unwrap()[0]
        .der()
        .to_vec()
}

// Controls: the unmodified inputs pass, so each refusal below is caused by its mutation.

#[test]
fn control_real_milan_evidence_is_accepted() {
    assert_eq!(amd(&milan()), Ok(()));
}

#[test]
fn control_resigned_unchanged_report_is_accepted_under_its_simulated_root() {
    let sim = mirror_authority();
    let ev = forge::resigned(&sim, &milan_report(), |_| {}).unwrap();
    assert_eq!(simulated(&sim, &ev), Ok(()));
}

// Signed fields changed without re-signing.

#[test]
fn changed_measurement_breaks_the_signature() {
    let ev = tampered(|r| r.measurement[0] ^= 1);
    assert_eq!(amd(&ev), Err(SnpError::SignatureInvalid));
}

#[test]
fn changed_report_data_breaks_the_signature() {
    let ev = tampered(|r| r.report_data = [0x42; 64]);
    assert_eq!(amd(&ev), Err(SnpError::SignatureInvalid));
}

#[test]
fn changed_policy_breaks_the_signature() {
    let ev = tampered(|r| r.policy = GuestPolicy(r.policy.0 | GuestPolicy::SINGLE_SOCKET));
    assert_eq!(amd(&ev), Err(SnpError::SignatureInvalid));
}

#[test]
fn changed_reported_tcb_breaks_the_signature() {
    let ev = tampered(|r| r.reported_tcb += 1 << 56);
    assert_eq!(amd(&ev), Err(SnpError::SignatureInvalid));
}

#[test]
fn changed_chip_id_breaks_the_signature() {
    let ev = tampered(|r| r.chip_id[63] ^= 0x80);
    assert_eq!(amd(&ev), Err(SnpError::SignatureInvalid));
}

#[test]
fn changed_vmpl_breaks_the_signature() {
    let ev = tampered(|r| r.vmpl = 3);
    assert_eq!(amd(&ev), Err(SnpError::SignatureInvalid));
}

#[test]
fn changed_host_data_breaks_the_signature() {
    let ev = tampered(|r| r.host_data[5] = 0xff);
    assert_eq!(amd(&ev), Err(SnpError::SignatureInvalid));
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
    let ev = forge::resigned(&sim, &milan_report(), |r| {
        r.policy = GuestPolicy(r.policy.0 | GuestPolicy::DEBUG)
    })
    .unwrap();
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
    let ev = forge::resigned(&sim, &milan_report(), |r| {
        r.policy = GuestPolicy(r.policy.0 | GuestPolicy::MIGRATE_MA)
    })
    .unwrap();
    assert_eq!(simulated(&sim, &ev), Err(SnpError::MigrationAgent));
}

#[test]
fn resigned_vmpl_above_maximum_is_refused() {
    let sim = mirror_authority();
    let ev = forge::resigned(&sim, &milan_report(), |r| r.vmpl = 2).unwrap();
    let policy = SnpPolicy {
        max_vmpl: Some(0),
        ..SnpPolicy::default()
    };
    assert_eq!(
        verify(&ev, &sim_anchor(&sim), &policy, AT).map(|_| ()),
        Err(SnpError::Vmpl { vmpl: 2, max: 0 })
    );
}

#[test]
fn resigned_vmpl_1_is_refused_when_only_vmpl_0_is_allowed() {
    let sim = mirror_authority();
    let ev = forge::resigned(&sim, &milan_report(), |r| r.vmpl = 1).unwrap();
    let vmpl0 = SnpPolicy {
        max_vmpl: Some(0),
        ..SnpPolicy::default()
    };
    assert_eq!(
        verify(&ev, &sim_anchor(&sim), &vmpl0, AT).map(|_| ()),
        Err(SnpError::Vmpl { vmpl: 1, max: 0 })
    );
    let vmpl1 = SnpPolicy {
        max_vmpl: Some(1),
        ..SnpPolicy::default()
    };
    let verdict = verify(&ev, &sim_anchor(&sim), &vmpl1, AT).expect("VMPL 1 allowed");
    assert_eq!(verdict.vmpl, 1);
    assert!(verdict.checks.contains(&"vmpl"));
}

#[test]
fn each_reported_tcb_component_below_its_minimum_is_refused() {
    let have = milan_tcb();
    let cases: [(&str, TcbVersion, u8, u8); 5] = [
        (
            "bootloader",
            TcbVersion {
                bootloader: have.bootloader + 1,
                ..have
            },
            have.bootloader,
            have.bootloader + 1,
        ),
        (
            "tee",
            TcbVersion {
                tee: have.tee + 1,
                ..have
            },
            have.tee,
            have.tee + 1,
        ),
        (
            "snp",
            TcbVersion {
                snp: have.snp + 1,
                ..have
            },
            have.snp,
            have.snp + 1,
        ),
        (
            "microcode",
            TcbVersion {
                microcode: have.microcode + 1,
                ..have
            },
            have.microcode,
            have.microcode + 1,
        ),
        // Milan has no FMC: a minimum that names one is never met.
        (
            "fmc",
            TcbVersion {
                fmc: Some(1),
                ..have
            },
            0,
            1,
        ),
    ];
    for (field, minimum, reported, required) in cases {
        let policy = SnpPolicy {
            minimum_tcb: Some(minimum),
            ..SnpPolicy::default()
        };
        assert_eq!(
            amd_with(&milan(), &policy),
            Err(SnpError::TcbBelowMinimum {
                field,
                reported,
                minimum: required
            }),
            "{field}"
        );
    }
    let exact = SnpPolicy {
        minimum_tcb: Some(have),
        ..SnpPolicy::default()
    };
    assert_eq!(amd_with(&milan(), &exact), Ok(()));
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
    let policy = SnpPolicy {
        minimum_tcb: Some(minimum),
        ..SnpPolicy::default()
    };
    assert_eq!(
        amd_with(&milan(), &policy),
        Err(SnpError::TcbBelowMinimum {
            field: "snp",
            reported: 8,
            minimum: 9
        })
    );
}

#[test]
fn tcb_below_minimum_is_refused() {
    let policy = SnpPolicy {
        minimum_tcb: Some(TcbVersion {
            snp: milan_tcb().snp + 1,
            ..milan_tcb()
        }),
        ..SnpPolicy::default()
    };
    assert_eq!(
        amd_with(&milan(), &policy),
        Err(SnpError::TcbBelowMinimum {
            field: "snp",
            reported: 8,
            minimum: 9
        })
    );
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

#[test]
fn vcek_tcb_extension_mismatch_is_refused() {
    let newer = TcbVersion {
        microcode: milan_tcb().microcode + 1,
        ..milan_tcb()
    };
    let sim = SimAuthority::generate(&mut rng(2), AT, milan_report().chip_id, newer).unwrap();
    let ev = forge::resigned(&sim, &milan_report(), |_| {}).unwrap();
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
    let ev = forge::resigned(&sim, &milan_report(), |_| {}).unwrap();
    assert_eq!(simulated(&sim, &ev), Err(SnpError::ChipIdMismatch));
}

#[test]
fn vcek_presented_for_vlek_signed_report_is_refused() {
    let ev = SnpEvidence {
        report: vector("trustee-vlek-report.bin"),
        endorsement_der: vector("trustee-vcek.der"),
        chain_der: vec![],
    };
    assert_eq!(
        amd(&ev),
        Err(SnpError::CertKindMismatch {
            report: SigningKey::Vlek,
            cert: KeyKind::Vcek
        })
    );
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
    assert_eq!(
        amd(&ev),
        Err(SnpError::CertKindMismatch {
            report: SigningKey::Vlek,
            cert: KeyKind::Vcek
        })
    );
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
    let impostor = forge::impostor_of(&mut rng(4), &pem_der(roots::MILAN_ASK_PEM)).unwrap();
    let ev = SnpEvidence {
        chain_der: vec![impostor, pem_der(roots::MILAN_ARK_PEM)],
        ..milan()
    };
    assert!(matches!(
        amd(&ev),
        Err(SnpError::Chain(CertError::BadSignature { ref subject })) if subject.contains("SEV-VCEK")
    ));
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
    let other = SimAuthority::generate(&mut rng(8), AT, [7; 64], milan_tcb()).unwrap();
    let mut ev = other.evidence(&other.issue_report([1; 48], [2; 64]).unwrap());
    // The other authority's chip and intermediate, presented with the trusted root.
    ev.chain_der = vec![other.chain_der()[0].clone(), trusted.root_der().to_vec()];
    assert!(matches!(
        simulated(&trusted, &ev),
        Err(SnpError::Chain(CertError::BadSignature { .. }))
    ));
}

#[test]
fn expired_vcek_is_refused() {
    // 2031-01-01: the Milan VCEK expired on 2030-04-03.
    let err = verify(
        &milan(),
        &SnpAnchor::Amd,
        &SnpPolicy::default(),
        UnixTime(1_924_992_000),
    );
    assert!(matches!(
        err,
        Err(SnpError::Chain(CertError::Expired { ref subject, .. })) if subject.contains("SEV-VCEK")
    ));
}

#[test]
fn not_yet_valid_vcek_is_refused() {
    // 2023-01-01: before the Milan VCEK's notBefore (2023-04-03).
    let err = verify(
        &milan(),
        &SnpAnchor::Amd,
        &SnpPolicy::default(),
        UnixTime(1_672_531_200),
    );
    assert!(matches!(
        err,
        Err(SnpError::Chain(CertError::NotYetValid { ref subject, .. })) if subject.contains("SEV-VCEK")
    ));
}

// Malformed reports.

#[test]
fn truncated_report_is_refused() {
    let mut ev = milan();
    ev.report.pop();
    assert!(matches!(
        amd(&ev),
        Err(SnpError::Parse(sotto_verify_snp::ParseError::Length {
            found: 1183,
            ..
        }))
    ));
}

#[test]
fn oversized_report_is_refused() {
    let mut ev = milan();
    ev.report.push(0);
    assert!(matches!(
        amd(&ev),
        Err(SnpError::Parse(sotto_verify_snp::ParseError::Length {
            found: 1185,
            ..
        }))
    ));
}

#[test]
fn unsupported_version_is_refused() {
    for version in [0u32, 1, 4, 6] {
        let mut ev = milan();
        ev.report[..4].copy_from_slice(&version.to_le_bytes());
        assert_eq!(amd(&ev), Err(SnpError::UnsupportedVersion(version)));
    }
}
