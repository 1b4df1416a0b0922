//! Real SEV-SNP evidence captured on AMD hardware (shared test vectors) verified against the
//! AMD roots pinned in the crate, plus the refusals the upstream projects expect.

use sotto_verify_core::x509::Cert;
use sotto_verify_snp::{
    roots, verify, AttestationReport, KeyKind, Product, SigningKey, SnpAnchor, SnpEvidence,
    SnpPolicy, TcbVersion,
};

use super::{amd, assert_vcek_signature_refused, milan_raw, vector, AT};

fn evidence(report: Vec<u8>, endorsement: &str) -> SnpEvidence {
    SnpEvidence {
        report,
        endorsement_der: vector(endorsement),
        chain_der: vec![],
    }
}

fn pem_chain_der(name: &str) -> Vec<Vec<u8>> {
    Cert::from_pem_chain(&vector(name))
        .unwrap()
        .iter()
        .map(|c| c.der().to_vec())
        .collect()
}

#[test]
fn milan_report_verifies_under_pinned_amd_roots() {
    let raw = milan_raw();
    let verdict = amd(&evidence(raw.clone(), "vcek_milan.der")).unwrap();
    assert_eq!(verdict.platform, "sev-snp");
    assert_eq!(verdict.product, Product::Milan);
    assert_eq!(verdict.key_kind, KeyKind::Vcek);
    assert_eq!(verdict.report_version, 2);
    assert_eq!(verdict.measurement.as_slice(), &raw[0x90..0xC0]);
    assert_eq!(verdict.report_data.as_slice(), &raw[0x50..0x90]);
    assert_eq!(verdict.chip_id.as_slice(), &raw[0x1A0..0x1E0]);
    let tcb = verdict.reported_tcb;
    assert_eq!(
        (tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode, tcb.fmc),
        (3, 0, 8, 0x73, None)
    );
    assert!(!verdict.policy.debug);
    assert_eq!(
        verdict.checks,
        vec![
            "report-layout",
            "endorsement-kind-matches-report",
            "chain-to-pinned-amd-root",
            "report-signature",
            "reported-tcb-matches-endorsement",
            "chip-id-matches-endorsement",
            "policy-debug",
            "policy-migration-agent",
        ]
    );
}

#[test]
fn milan_report_verifies_with_host_supplied_amd_chain() {
    let mut ev = evidence(milan_raw(), "vcek_milan.der");
    ev.chain_der = pem_chain_der("amd-milan-vcek-chain.pem");
    assert_eq!(ev.chain_der.len(), 2);
    amd(&ev).unwrap();
}

#[test]
fn trustee_vcek_report_verifies() {
    let verdict = amd(&evidence(vector("trustee-report.bin"), "trustee-vcek.der")).unwrap();
    assert_eq!(verdict.product, Product::Milan);
    assert_eq!(verdict.key_kind, KeyKind::Vcek);
    assert_eq!(verdict.guest_svn, 4);
}

#[test]
fn trustee_vlek_report_verifies_through_the_asvk() {
    let mut ev = evidence(vector("trustee-vlek-report.bin"), "trustee-vlek.der");
    let verdict = amd(&ev).unwrap();
    assert_eq!(verdict.key_kind, KeyKind::Vlek);
    assert_eq!(verdict.report_version, 3);
    assert_eq!(verdict.vmpl, 1);
    assert!(!verdict.checks.contains(&"chip-id-matches-endorsement"));
    // The host may also send AMD's VLEK chain; it must be the same ARK.
    ev.chain_der = pem_chain_der("amd-milan-vlek-chain.pem");
    amd(&ev).unwrap();
}

#[test]
fn trustee_invalid_new_vcek_is_refused() {
    let ev = evidence(vector("trustee-report.bin"), "trustee-vcek-invalid-new.der");
    assert_vcek_signature_refused(&amd(&ev));
}

#[test]
fn trustee_invalid_legacy_vcek_is_refused() {
    let ev = evidence(
        vector("trustee-report.bin"),
        "trustee-vcek-invalid-legacy.der",
    );
    assert_vcek_signature_refused(&amd(&ev));
}

#[test]
fn pinned_milan_roots_match_the_captured_kds_chains() {
    let vcek_chain = format!("{}{}", roots::MILAN_ASK_PEM, roots::MILAN_ARK_PEM);
    assert_eq!(vcek_chain.as_bytes(), vector("amd-milan-vcek-chain.pem"));
    let vlek_chain = format!("{}{}", roots::MILAN_ASVK_PEM, roots::MILAN_ARK_PEM);
    assert_eq!(vlek_chain.as_bytes(), vector("amd-milan-vlek-chain.pem"));
}

#[test]
fn every_real_report_round_trips_byte_for_byte() {
    for raw in [
        milan_raw(),
        vector("trustee-report.bin"),
        vector("trustee-vlek-report.bin"),
    ] {
        let report = AttestationReport::parse(&raw).unwrap();
        assert_eq!(report.to_bytes(), raw);
    }
}

#[test]
fn real_report_fields_decode() {
    let vlek = AttestationReport::parse(&vector("trustee-vlek-report.bin")).unwrap();
    assert_eq!(vlek.key_info.signing_key(), SigningKey::Vlek);
    assert_eq!(vlek.cpuid(), Some((0x19, 0x01, 0x01)));
    assert_eq!(vlek.mit_vectors(), None);
    assert_eq!(
        TcbVersion::decode(vlek.reported_tcb, Product::Milan),
        TcbVersion {
            fmc: None,
            bootloader: 4,
            tee: 0,
            snp: 0x18,
            microcode: 0xd9
        }
    );
    let milan = AttestationReport::parse(&milan_raw()).unwrap();
    assert_eq!(milan.key_info.signing_key(), SigningKey::Vcek);
    assert_eq!(milan.cpuid(), None);
    assert!(milan.platform_info.smt_enabled());
    assert_eq!(milan.policy.abi_major(), 0);
    assert!(milan.policy.smt_allowed());
}

#[test]
fn strict_policy_from_json_accepts_the_matching_report() {
    let raw = milan_raw();
    let json = serde_json::json!({
        "max_vmpl": 0,
        "minimum_tcb": {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115},
        "allowed_measurements": [hex::encode(&raw[0x90..0xC0])],
        "expected_report_data": hex::encode(&raw[0x50..0x90]),
    });
    let policy: SnpPolicy = serde_json::from_value(json).unwrap();
    assert!(!policy.allow_debug);
    let verdict = verify(
        &evidence(raw, "vcek_milan.der"),
        &SnpAnchor::Amd,
        &policy,
        AT,
    )
    .unwrap();
    for check in ["vmpl", "minimum-tcb", "measurement-allowed", "report-data"] {
        assert!(verdict.checks.contains(&check), "{check}");
    }
}

#[test]
fn policy_json_refuses_unknown_fields_and_bad_hex() {
    assert!(serde_json::from_str::<SnpPolicy>(r#"{"allow_debugging": true}"#).is_err());
    assert!(serde_json::from_str::<SnpPolicy>(r#"{"expected_report_data": "abcd"}"#).is_err());
    assert!(serde_json::from_str::<SnpPolicy>(r#"{"allowed_measurements": ["zz"]}"#).is_err());
    assert_eq!(
        serde_json::from_str::<SnpPolicy>("{}").unwrap(),
        SnpPolicy::default()
    );
}

#[test]
fn verdict_serializes_to_json_with_hex_fields() {
    let raw = milan_raw();
    let verdict = amd(&evidence(raw.clone(), "vcek_milan.der")).unwrap();
    let json: serde_json::Value = serde_json::to_value(&verdict).unwrap();
    assert_eq!(json["platform"], "sev-snp");
    assert_eq!(json["product"], "milan");
    assert_eq!(json["key_kind"], "vcek");
    assert_eq!(json["measurement"], hex::encode(&raw[0x90..0xC0]));
    assert_eq!(json["reported_tcb"]["microcode"], 0x73);
    assert_eq!(json["policy"]["debug"], false);
}

/// What the keyUsage rules in sotto-verify-core rest on: every pinned AMD issuer (ARK, ASK,
/// ASVK of Milan, Genoa and Turin) is a CA whose keyUsage allows keyCertSign, the ASK and
/// ASVK limit the path to no further CA (pathLenConstraint 0), and the VCEKs and VLEK that
/// sign reports carry no keyUsage at all (so only a present keyUsage is checked on a leaf).
#[test]
fn amd_issuers_carry_key_cert_sign_and_endorsements_no_key_usage() {
    for pem in [
        roots::MILAN_ARK_PEM,
        roots::GENOA_ARK_PEM,
        roots::TURIN_ARK_PEM,
        roots::MILAN_ASK_PEM,
        roots::GENOA_ASK_PEM,
        roots::TURIN_ASK_PEM,
        roots::MILAN_ASVK_PEM,
        roots::GENOA_ASVK_PEM,
        roots::TURIN_ASVK_PEM,
    ] {
        let cert = Cert::from_pem_chain(pem.as_bytes()).unwrap().remove(0);
        let bc = cert.basic_constraints().unwrap().expect("basicConstraints");
        assert!(bc.ca, "{}", cert.subject());
        let is_root = cert.subject() == cert.issuer();
        assert_eq!(
            bc.path_len_constraint,
            if is_root { None } else { Some(0) },
            "{}",
            cert.subject()
        );
        let ku = cert.key_usage().unwrap().expect("keyUsage");
        assert!(ku.key_cert_sign(), "{}", cert.subject());
    }
    for der in ["vcek_milan.der", "trustee-vcek.der", "trustee-vlek.der"] {
        let cert = Cert::from_der(&vector(der)).unwrap();
        assert_eq!(cert.key_usage().unwrap(), None, "{der}");
        assert!(!cert.is_ca(), "{der}");
    }
}
