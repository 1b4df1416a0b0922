//! The verifier against real Intel TDX quotes and their Intel-signed collateral (dcap-qvl's
//! samples), each checked "as of" a time inside the collateral's validity.

use sotto_verify_tdx::{
    attributes, roots, verify, BodyKind, Collateral, Quote, TcbStatus, TdxError, TdxPolicy,
    UnixTime,
};

use super::{read, AT as AT_V4};

fn collateral(name: &str) -> Collateral {
    Collateral::from_json(&read(&format!("{name}_collateral.json"))).expect("collateral parses")
}

/// Inside tdx_quote_td15ex's windows (PCK CRL from 2026-10-08T00:28:26Z).
const AT_TD15EX: UnixTime = UnixTime(1_791_427_500); // 2026-10-08T02:45:00Z
/// Inside tdx_quote_outdated's windows (2026-02-18T10:58:51Z .. 2026-03-20T10:41:15Z).
const AT_OUTDATED: UnixTime = UnixTime(1_771_459_200); // 2026-02-19T00:00:00Z

/// The vector `name`, and its quote parsed, checked to be of `version` with a `kind` body.
fn parsed(name: &str, version: u16, kind: BodyKind) -> (Vec<u8>, Quote) {
    let raw = read(name);
    let quote = Quote::parse(&raw).expect("parses");
    assert_eq!((quote.header.version, quote.body.kind), (version, kind));
    (raw, quote)
}

#[test]
fn pinned_root_is_the_root_of_every_vector_chain() {
    let pinned = roots::intel_sgx_root().expect("pinned root");
    for name in ["tdx_quote", "tdx_quote_td15ex", "tdx_quote_outdated"] {
        let json: serde_json::Value =
            serde_json::from_slice(&read(&format!("{name}_collateral.json"))).expect("json");
        for key in [
            "tcb_info_issuer_chain",
            "qe_identity_issuer_chain",
            "pck_crl_issuer_chain",
        ] {
            let pem = json[key].as_str().expect("chain string");
            let chain = sotto_verify_core::x509::Cert::from_pem_chain(pem.as_bytes()).expect(key);
            assert_eq!(
                chain.last().expect("root").der(),
                pinned.der(),
                "{name} {key}"
            );
        }
        let quote = Quote::parse(&read(name)).expect("quote");
        let chain = sotto_verify_core::x509::Cert::from_pem_chain(&quote.signature.pck_chain_pem)
            .expect("PCK chain");
        assert_eq!(
            chain.last().expect("root").der(),
            pinned.der(),
            "{name} PCK"
        );
    }
}

#[test]
fn v4_quote_parses_with_its_td_fields() {
    let (raw, quote) = parsed("tdx_quote", 4, BodyKind::Td10);
    assert_eq!(quote.signed_bytes(), &raw[..48 + 584]);
    // Fields at their specified offsets (header 48 + body offset).
    assert_eq!(quote.body.tee_tcb_svn, raw[48..64]);
    assert_eq!(quote.body.mrtd, raw[48 + 136..48 + 184]);
    assert_eq!(quote.body.rtmrs[3], raw[48 + 472..48 + 520]);
    assert_eq!(quote.body.report_data, raw[48 + 520..48 + 584]);
    assert!(quote.body.td15.is_none());
    assert!(!quote.body.debug());
    assert_eq!(quote.signature.qe_auth_data.len(), 32);
    assert!(quote
        .signature
        .pck_chain_pem
        .ends_with(b"-----END CERTIFICATE-----\n"));
}

#[test]
fn v4_quote_verifies_up_to_date() {
    let verdict = verify(
        &read("tdx_quote"),
        &collateral("tdx_quote"),
        &TdxPolicy::strict(),
        AT_V4,
    )
    .expect("verifies");
    assert_eq!(verdict.quote_version, 4);
    assert_eq!(verdict.tee_type, "TDX");
    assert_eq!(verdict.tcb_status, TcbStatus::UpToDate);
    assert_eq!(hex::encode(verdict.fmspc), "b0c06f000000");
    let quote = Quote::parse(&read("tdx_quote")).expect("parses");
    assert_eq!(verdict.mrtd, quote.body.mrtd);
    assert_eq!(verdict.report_data, quote.body.report_data);
    assert!(verdict.checks.contains(&"quote_signature"));
    assert!(verdict.checks.contains(&"tcb_level_and_tdx_module"));
    assert!(verdict.checks.contains(&"policy_td_attributes"));
    assert_eq!(verdict.tcb_info_evaluation_data_number, 17);
    assert_eq!(verdict.qe_identity_evaluation_data_number, 17);
    let json = serde_json::to_value(&verdict).expect("serializes");
    assert_eq!(json["mrtd"], hex::encode(quote.body.mrtd));
    assert_eq!(json["tcb_status"], "UpToDate");
    assert_eq!(json["tcb_info_evaluation_data_number"], 17);
    assert_eq!(json["qe_identity_evaluation_data_number"], 17);
}

/// What constrained the strict defaults: every real quote's TDATTRIBUTES is exactly
/// SEPT_VE_DISABLE, and its collateral's evaluation data numbers are 17, 20 and 18.
#[test]
fn real_quotes_carry_only_sept_ve_disable_and_evaluation_numbers_from_17() {
    for (name, number) in [
        ("tdx_quote", 17),
        ("tdx_quote_td15ex", 20),
        ("tdx_quote_outdated", 18),
    ] {
        let quote = Quote::parse(&read(name)).expect("quote");
        assert_eq!(
            quote.body.td_attributes_bits(),
            attributes::SEPT_VE_DISABLE,
            "{name}"
        );
        let json: serde_json::Value =
            serde_json::from_slice(&read(&format!("{name}_collateral.json"))).expect("json");
        for doc in ["tcb_info", "qe_identity"] {
            let doc: serde_json::Value =
                serde_json::from_str(json[doc].as_str().expect("document")).expect("document");
            assert_eq!(doc["tcbEvaluationDataNumber"], number, "{name}");
        }
        let floor = TdxPolicy::strict().minimum_tcb_evaluation_data_number;
        assert!(floor.is_some_and(|floor| floor <= number), "{name}");
    }
}

/// Intel's real TCB info and QE identity signer is the certificate the verifier requires: named
/// "Intel SGX TCB Signing" and issued directly by the root; the PCK chain's certificates are not.
#[test]
fn real_collateral_signer_is_intels_tcb_signing_certificate() {
    for name in ["tdx_quote", "tdx_quote_td15ex", "tdx_quote_outdated"] {
        let json: serde_json::Value =
            serde_json::from_slice(&read(&format!("{name}_collateral.json"))).expect("json");
        for key in ["tcb_info_issuer_chain", "qe_identity_issuer_chain"] {
            let chain = sotto_verify_core::x509::Cert::from_pem_chain(
                json[key].as_str().expect("chain").as_bytes(),
            )
            .expect(key);
            assert_eq!(chain.len(), 2, "{name} {key}: signer and root");
            assert!(
                roots::is_intel_tcb_signing_subject(&chain[0]),
                "{name} {key}"
            );
        }
        let quote = Quote::parse(&read(name)).expect("quote");
        let pck_chain =
            sotto_verify_core::x509::Cert::from_pem_chain(&quote.signature.pck_chain_pem)
                .expect("PCK chain");
        assert!(pck_chain
            .iter()
            .all(|c| !roots::is_intel_tcb_signing_subject(c)));
    }
}

#[test]
fn td15ex_quote_parses_and_verifies_up_to_date() {
    let (raw, quote) = parsed("tdx_quote_td15ex", 5, BodyKind::Td15Ex);
    assert_eq!(quote.signed_bytes().len(), 48 + 6 + 885);
    let td15 = quote.body.td15.as_ref().expect("1.5 fields");
    assert_eq!(td15.tee_tcb_svn2, raw[54 + 584..54 + 600]);
    assert_eq!(quote.body.vmid(), Some(raw[54 + 648]));
    assert_eq!(
        quote.body.td_id().map(|t| t.to_vec()),
        Some(raw[54 + 649..54 + 681].to_vec())
    );

    let verdict = verify(
        &raw,
        &collateral("tdx_quote_td15ex"),
        &TdxPolicy::strict(),
        AT_TD15EX,
    )
    .expect("verifies");
    assert_eq!(verdict.quote_version, 5);
    assert_eq!(verdict.body, BodyKind::Td15Ex);
    assert_eq!(verdict.tcb_status, TcbStatus::UpToDate);
    assert!(verdict.advisory_ids.is_empty());
}

/// Intel's evaluation compares each SGX TCB component separately. This platform's PCK reports
/// component 8 (SEAMLDR ACM) at SVN 3 while every level of its TCB info requires 5, so no level
/// matches: Intel's QVL answers "TCB not supported", and neither policy may accept it. (A
/// lexicographic comparison of the CPUSVN would wrongly match the OutOfDate level.)
#[test]
fn outdated_quote_matches_no_tcb_level_and_is_refused_by_any_policy() {
    for policy in [TdxPolicy::strict(), TdxPolicy::permissive()] {
        assert_eq!(
            verify(
                &read("tdx_quote_outdated"),
                &collateral("tdx_quote_outdated"),
                &policy,
                AT_OUTDATED,
            ),
            Err(TdxError::TcbLevelNotFound)
        );
    }
    let quote = Quote::parse(&read("tdx_quote_outdated")).expect("parses");
    let chain = sotto_verify_core::x509::Cert::from_pem_chain(&quote.signature.pck_chain_pem)
        .expect("chain");
    let platform = sotto_verify_tdx::PckPlatform::from_cert(&chain[0]).expect("SGX extension");
    assert_eq!(platform.tcb_components[7], 3);
    assert_eq!(hex::encode(platform.fmspc), "90c06f000000");
    assert_eq!(quote.body.kind, BodyKind::Td15);
}

#[test]
fn policy_json_uses_hex_and_defaults_to_strict() {
    let quote = Quote::parse(&read("tdx_quote")).expect("parses");
    let json = format!(
        r#"{{"expected_mrtd":"{}","expected_rtmrs":[null,null,"{}",null]}}"#,
        hex::encode(quote.body.mrtd),
        hex::encode(quote.body.rtmrs[2])
    );
    let policy: TdxPolicy = serde_json::from_str(&json).expect("policy parses");
    assert_eq!(policy.accepted_tcb_statuses, vec![TcbStatus::UpToDate]);
    assert!(!policy.allow_debug);
    assert_eq!(policy.expected_mrtd, Some(quote.body.mrtd));
    assert_eq!(policy.expected_rtmrs[2], Some(quote.body.rtmrs[2]));
    verify(&read("tdx_quote"), &collateral("tdx_quote"), &policy, AT_V4).expect("matches");

    let masks: TdxPolicy = serde_json::from_str(
        r#"{"td_attributes_required": 268435456,
            "td_attributes_forbidden": "0x8000000060000000",
            "minimum_tcb_evaluation_data_number": 17}"#,
    )
    .expect("masks as a number and as hex");
    assert_eq!(masks.td_attributes_required, attributes::SEPT_VE_DISABLE);
    assert_eq!(
        masks.td_attributes_forbidden,
        attributes::PERFMON | attributes::PKS | attributes::MIGRATABLE
    );
    assert_eq!(masks.minimum_tcb_evaluation_data_number, Some(17));
    verify(&read("tdx_quote"), &collateral("tdx_quote"), &masks, AT_V4).expect("matches");
    for bad in [
        r#"{"td_attributes_forbidden": "ff"}"#,
        r#"{"td_attributes_forbidden": "0x"}"#,
        r#"{"td_attributes_forbidden": "0x+1"}"#,
        r#"{"td_attributes_forbidden": "0x10000000000000000"}"#,
        r#"{"td_attributes_forbidden": -1}"#,
    ] {
        assert!(serde_json::from_str::<TdxPolicy>(bad).is_err(), "{bad}");
    }
    let no_floor: TdxPolicy =
        serde_json::from_str(r#"{"minimum_tcb_evaluation_data_number": null}"#).expect("null");
    assert_eq!(no_floor.minimum_tcb_evaluation_data_number, None);

    // A policy serializes to the same JSON form it is read from (masks as "0x" hex strings).
    let pinned = TdxPolicy {
        expected_mrtd: Some(quote.body.mrtd),
        expected_rtmrs: [None, Some(quote.body.rtmrs[1]), None, None],
        ..TdxPolicy::permissive()
    };
    let json = serde_json::to_value(&pinned).expect("serializes");
    assert_eq!(json["td_attributes_required"], "0x0000000010000000");
    assert_eq!(json["td_attributes_forbidden"], "0xffffffffeffffffe");
    assert_eq!(json["minimum_tcb_evaluation_data_number"], 17);
    assert_eq!(json["expected_mrtd"], hex::encode(quote.body.mrtd));
    assert_eq!(json["expected_rtmrs"][0], serde_json::Value::Null);
    let back: TdxPolicy = serde_json::from_value(json).expect("reads back");
    assert_eq!(back, pinned);

    assert!(serde_json::from_str::<TdxPolicy>(r#"{"expected_mrtd":"abcd"}"#).is_err());
    assert!(serde_json::from_str::<TdxPolicy>(r#"{"allow_debugg":true}"#).is_err());
    let default: TdxPolicy = serde_json::from_str("{}").expect("empty policy");
    assert_eq!(default, TdxPolicy::strict());
}

/// Cold verification time of the v4 quote (parse collateral + verify). Run with
/// `cargo test --release -p sotto-verify-tdx --test tdx -- --ignored --nocapture`.
#[test]
#[ignore = "timing, run explicitly in release"]
fn measure_cold_verification_time() {
    let quote = read("tdx_quote");
    let json = read("tdx_quote_collateral.json");
    let start = std::time::Instant::now();
    let collateral = Collateral::from_json(&json).expect("collateral");
    let parsed = start.elapsed();
    verify(&quote, &collateral, &TdxPolicy::strict(), AT_V4).expect("verifies");
    let total = start.elapsed();
    let mut warm = Vec::new();
    for _ in 0..20 {
        let t = std::time::Instant::now();
        let c = Collateral::from_json(&json).expect("collateral");
        verify(&quote, &c, &TdxPolicy::strict(), AT_V4).expect("verifies");
        warm.push(t.elapsed());
    }
    warm.sort();
    println!(
        "tdx_quote: cold {:?} (collateral parse {:?}); warm median {:?}",
        total,
        parsed,
        warm[warm.len() / 2]
    );
}

/// A policy pinning every measurement register of the real quote (MRTD, all four RTMRs,
/// MRCONFIGID) accepts it, so the pinning refusals in `forged` are caused by the change.
#[test]
fn real_quote_pinned_to_every_register_verifies() {
    for (name, at) in [("tdx_quote", AT_V4), ("tdx_quote_td15ex", AT_TD15EX)] {
        let quote = Quote::parse(&read(name)).expect("quote");
        let policy = TdxPolicy {
            expected_mrtd: Some(quote.body.mrtd),
            expected_rtmrs: quote.body.rtmrs.map(Some),
            expected_mrconfigid: Some(quote.body.mrconfigid),
            expected_report_data: Some(quote.body.report_data),
            ..TdxPolicy::strict()
        };
        let verdict = verify(&read(name), &collateral(name), &policy, at).expect(name);
        assert_eq!(verdict.rtmrs, quote.body.rtmrs);
        assert_eq!(verdict.mrconfigid, quote.body.mrconfigid);
    }
}

/// What the keyUsage rules in sotto-verify-core rest on: Intel's root (pathlen 1) and PCK
/// Platform CA (pathlen 0) are CAs whose keyUsage allows keyCertSign and cRLSign; the PCK leaf
/// and the TCB signing certificate are not CAs and allow digitalSignature.
#[test]
fn intel_certificates_carry_the_key_usage_of_their_role() {
    use sotto_verify_core::x509::Cert;
    let json: serde_json::Value =
        serde_json::from_slice(&read("tdx_quote_collateral.json")).expect("json");
    let quote = Quote::parse(&read("tdx_quote")).expect("quote");
    let pck_chain = Cert::from_pem_chain(&quote.signature.pck_chain_pem).expect("PCK chain");
    let tcb_chain = Cert::from_pem_chain(
        json["tcb_info_issuer_chain"]
            .as_str()
            .expect("chain")
            .as_bytes(),
    )
    .expect("TCB chain");
    let issuers = [(&pck_chain[1], Some(0)), (&pck_chain[2], Some(1))];
    for (cert, path_len) in issuers {
        let bc = cert.basic_constraints().unwrap().expect("basicConstraints");
        assert!(
            bc.ca && bc.path_len_constraint == path_len,
            "{}",
            cert.subject()
        );
        let ku = cert.key_usage().unwrap().expect("keyUsage");
        assert!(ku.key_cert_sign() && ku.crl_sign(), "{}", cert.subject());
    }
    for leaf in [&pck_chain[0], &tcb_chain[0]] {
        assert!(!leaf.is_ca(), "{}", leaf.subject());
        let ku = leaf.key_usage().unwrap().expect("keyUsage");
        assert!(
            ku.digital_signature() && !ku.key_cert_sign(),
            "{}",
            leaf.subject()
        );
    }
}
