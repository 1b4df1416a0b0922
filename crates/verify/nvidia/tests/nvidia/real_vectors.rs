//! The real H100 evidence NVIDIA publishes with its local verifier: it must parse field by
//! field as NVIDIA's tools read it, and verify under the pinned root with the published nonce.

use sotto_verify_core::x509::Cert;
use sotto_verify_nvidia::{
    gpu_evidence_digest, gpu_nonce, verify, CcMode, CertChainInput, GpuEvidenceInput, SpdmEvidence,
    NVIDIA_DEVICE_IDENTITY_ROOT_PEM, NVIDIA_DEVICE_IDENTITY_ROOT_SHA256,
};

use super::{
    chain_pem, nonce, pinned, policy, real_evidence, real_rim, report_hex, rim_xml, AT, NONCE_HEX,
};

#[test]
fn vector_paths_resolve_to_shared_vectors() {
    assert!(report_hex().trim().starts_with("11e001ff"));
    assert_eq!(chain_pem().matches("BEGIN CERTIFICATE").count(), 5);
    assert!(rim_xml().starts_with("<SoftwareIdentity"));
}

#[test]
fn real_report_parses_every_field() {
    let ev = SpdmEvidence::parse_hex(&report_hex()).expect("real report parses");
    assert_eq!(ev.raw().len(), 4117);
    assert_eq!(ev.request_nonce, nonce());
    assert_eq!(
        (ev.request_param1, ev.request_param2, ev.slot_id),
        (0x01, 0xFF, 0)
    );
    assert_eq!(ev.blocks.len(), 64);
    assert!(ev
        .blocks
        .iter()
        .enumerate()
        .all(|(i, b)| usize::from(b.index) == i + 1 && b.value.len() == 48));
    assert_eq!(
        hex::encode(&ev.block(4).expect("block 4").value),
        "73bbf35822549e28ba8fb2671fb7b58f46424a0069205b3ecf1d0fa762adef90b538cc9d692eb5c050147f2f1e8214ab"
    );
    assert_eq!(
        hex::encode(ev.responder_nonce),
        "b4b8a06aaaa35542839388e159d447a5d6f6194998fd86513e2d591ccf640985"
    );
    assert_eq!(ev.opaque.len(), 14);
    assert_eq!(ev.driver_version().as_deref(), Some("550.90.07"));
    assert_eq!(ev.vbios_version().as_deref(), Some("96.00.9F.00.01"));
    assert_eq!(ev.chip_sku().as_deref(), Some("882"));
    assert_eq!(ev.project().as_deref(), Some("1010"));
    assert_eq!(ev.project_sku().as_deref(), Some("0200"));
    assert_eq!(ev.nvdec0_status(), Some(0x55));
    assert_eq!(ev.feature_flag(), None);
    assert_eq!(ev.fwid().map(<[u8]>::len), Some(48));
    assert_eq!(ev.signed_bytes().len(), 4117 - 96);
}

#[test]
fn pinned_root_is_the_last_certificate_of_the_vector_chain() {
    let chain = Cert::from_pem_chain(chain_pem().as_bytes()).expect("chain");
    let pinned = Cert::from_pem_chain(NVIDIA_DEVICE_IDENTITY_ROOT_PEM.as_bytes()).expect("pin");
    assert_eq!(chain.last().expect("root").der(), pinned[0].der());
    assert_eq!(
        pinned[0].sha256_fingerprint(),
        NVIDIA_DEVICE_IDENTITY_ROOT_SHA256
    );
    assert!(pinned[0].subject().contains("CN=NVIDIA Device Identity CA"));
}

#[test]
fn real_report_verifies_under_pinned_root() {
    let verdict = pinned(&real_evidence()).expect("real evidence verifies");
    assert_eq!(verdict.nonce, NONCE_HEX);
    assert_eq!(verdict.driver_version.as_deref(), Some("550.90.07"));
    assert_eq!(verdict.vbios_version.as_deref(), Some("96.00.9F.00.01"));
    assert_eq!(verdict.cc_mode, CcMode::LegacyUnflagged);
    assert_eq!(verdict.measurement_count, 64);
    assert!(verdict.matched_indices.is_empty());
    assert!(!verdict.rim_signature_checked);
    assert!(verdict.leaf_subject.contains("GH100 A01 GSP FMC LF"));
    assert_eq!(
        verdict.checks,
        vec![
            "report_parsed",
            "cert_chain_to_root",
            "report_signature",
            "nonce",
            "cc_mode",
            "fwid_matches_leaf"
        ]
    );
    // Digest computed independently (Python hashlib) over the published files.
    assert_eq!(
        verdict.evidence_digest,
        "cd60869d545bdea3ce1958fc65e665367f465880e825cee0c0c0b87c00514228"
    );
}

#[test]
fn der_chain_input_verifies_like_pem() {
    let pem = real_evidence();
    let der = GpuEvidenceInput {
        cert_chain: CertChainInput::Der(pem.cert_chain.der_certs().expect("ders")),
        ..pem.clone()
    };
    let a = verify(&pem, &policy(), AT).expect("pem");
    let b = verify(&der, &policy(), AT).expect("der");
    assert_eq!(a, b);
}

#[test]
fn chain_without_root_verifies_too() {
    let mut ders = real_evidence().cert_chain.der_certs().expect("ders");
    ders.pop();
    let ev = GpuEvidenceInput {
        cert_chain: CertChainInput::Der(ders),
        ..real_evidence()
    };
    verify(&ev, &policy(), AT).expect("root is supplied by the pin");
}

#[test]
fn verdict_serialises_to_json() {
    let verdict = pinned(&real_evidence()).expect("verifies");
    let json = serde_json::to_value(&verdict).expect("json");
    assert_eq!(json["cc_mode"], "legacy_unflagged");
    assert_eq!(json["rim_signature_checked"], false);
    assert_eq!(json["measurement_count"], 64);
}

#[test]
fn real_rim_parses() {
    let rim = real_rim();
    assert_eq!(rim.version, "96.00.5E.00.01");
    assert_eq!(rim.product, "GH100");
    assert_eq!(rim.measurements.len(), 64);
    let active: Vec<u32> = rim
        .measurements
        .iter()
        .filter(|m| m.active)
        .map(|m| m.index)
        .collect();
    assert_eq!(active, vec![0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12]);
    let m12 = rim.measurement(12).expect("index 12");
    assert_eq!(m12.alternatives.len(), 4);
    assert_eq!(m12.size, 48);
    assert_eq!(
        hex::encode(&m12.alternatives[1]),
        "758af96044c700f98a85347be27124d51c05b8784ba216b629b9aaab6d538c759aed9922a133e4ac473564d359b271d5"
    );
    assert_eq!(
        hex::encode(rim.sha256),
        "7e8ea28e7961a9ef83b87ca5c5685312014eae871977b720ae08553aa917bc50"
    );
}

#[test]
fn real_rim_shares_fsp_measurements_with_real_report() {
    // The RIM is for VBIOS 96.00.5E.00.01 and the report for 96.00.9F.00.01; the FSP
    // measurements at RIM indices 3..=6 (and some all-zero ones) are common to both, the
    // others are not (expected list computed independently with Python).
    let rim = real_rim();
    let ev = SpdmEvidence::parse_hex(&report_hex()).expect("report");
    let same: Vec<u32> = rim
        .measurements
        .iter()
        .filter(|m| m.active)
        .filter(|m| {
            let block = ev.block(u8::try_from(m.index + 1).expect("index"));
            block.is_some_and(|b| m.alternatives.contains(&b.value))
        })
        .map(|m| m.index)
        .collect();
    assert_eq!(same, vec![0, 3, 4, 5, 6, 8, 10, 12]);
}

#[test]
fn gpu_nonce_known_answer() {
    let pk: [u8; 32] = std::array::from_fn(|i| i as u8);
    // SHA-256("sotto/gpu-nonce/v1" || 00 01 .. 1f), computed with Python hashlib.
    assert_eq!(
        hex::encode(gpu_nonce(&pk)),
        "4de4d8da3150ea6f906f686d094cb20c9320a00ca9d464e037ffc4479ead5382"
    );
}

#[test]
fn evidence_digest_covers_report_and_every_certificate() {
    let ev = real_evidence();
    let ders = ev.cert_chain.der_certs().expect("ders");
    let base = gpu_evidence_digest(&ev.report, &ders);
    assert_eq!(ev.evidence_digest().expect("digest"), base);

    let mut report = ev.report.clone();
    report[100] ^= 1;
    assert_ne!(gpu_evidence_digest(&report, &ders), base);

    let mut fewer = ders.clone();
    fewer.pop();
    assert_ne!(gpu_evidence_digest(&ev.report, &fewer), base);

    // Moving bytes between the report and the first certificate changes the digest
    // (lengths are framed).
    let mut shifted_report = ev.report.clone();
    let mut shifted = ders.clone();
    shifted_report.push(shifted[0].remove(0));
    assert_ne!(gpu_evidence_digest(&shifted_report, &shifted), base);
}

/// What the keyUsage rules in sotto-verify-core rest on: every issuer of NVIDIA's real chain
/// is a CA whose keyUsage allows keyCertSign (none sets a path length), and the leaf that signs
/// the report allows digitalSignature.
#[test]
fn real_chain_key_usages_allow_what_each_certificate_does() {
    let chain = Cert::from_pem_chain(chain_pem().as_bytes()).expect("chain");
    let (leaf, issuers) = chain.split_first().expect("leaf");
    let leaf_ku = leaf
        .key_usage()
        .expect("well formed")
        .expect("leaf keyUsage");
    assert!(leaf_ku.digital_signature());
    assert!(!leaf.is_ca());
    for issuer in issuers {
        let bc = issuer
            .basic_constraints()
            .expect("well formed")
            .expect("basicConstraints");
        assert!(bc.ca, "{}", issuer.subject());
        assert_eq!(bc.path_len_constraint, None, "{}", issuer.subject());
        let ku = issuer.key_usage().expect("well formed").expect("keyUsage");
        assert!(ku.key_cert_sign(), "{}", issuer.subject());
    }
}
