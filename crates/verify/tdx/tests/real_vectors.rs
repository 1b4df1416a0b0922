//! The verifier against real Intel TDX quotes and their Intel-signed collateral (dcap-qvl's
//! samples), each checked "as of" a time inside the collateral's validity.

use sotto_verify_tdx::{
    roots, verify, BodyKind, Collateral, Quote, TcbStatus, TdxError, TdxPolicy, UnixTime,
};

// Found at run time (cargo sets CARGO_MANIFEST_DIR for tests and examples), not baked in at
// compile time: a target directory shared by checkouts at different paths would otherwise run
// a binary that looks for the vectors where another checkout keeps them.
fn dir() -> String {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo");
    format!("{manifest}/../../../../shared/vectors/tdx/")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}{name}", dir())).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn collateral(name: &str) -> Collateral {
    Collateral::from_json(&read(&format!("{name}_collateral.json"))).expect("collateral parses")
}

/// Inside every window of tdx_quote's collateral: QE identity issued 2025-06-19T10:32:27Z,
/// PCK CRL next update 2025-07-19T10:00:35Z.
const AT_V4: UnixTime = UnixTime(1_750_377_600); // 2025-06-20T00:00:00Z
/// Inside tdx_quote_td15ex's windows (PCK CRL from 2026-10-08T00:28:26Z).
const AT_TD15EX: UnixTime = UnixTime(1_791_427_500); // 2026-10-08T02:45:00Z
/// Inside tdx_quote_outdated's windows (2026-02-18T10:58:51Z .. 2026-03-20T10:41:15Z).
const AT_OUTDATED: UnixTime = UnixTime(1_771_459_200); // 2026-02-19T00:00:00Z

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
    let raw = read("tdx_quote");
    let quote = Quote::parse(&raw).expect("parses");
    assert_eq!(quote.header.version, 4);
    assert_eq!(quote.body.kind, BodyKind::Td10);
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
    let json = serde_json::to_value(&verdict).expect("serializes");
    assert_eq!(json["mrtd"], hex::encode(quote.body.mrtd));
    assert_eq!(json["tcb_status"], "UpToDate");
}

#[test]
fn td15ex_quote_parses_and_verifies_up_to_date() {
    let raw = read("tdx_quote_td15ex");
    let quote = Quote::parse(&raw).expect("parses");
    assert_eq!(quote.header.version, 5);
    assert_eq!(quote.body.kind, BodyKind::Td15Ex);
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

    assert!(serde_json::from_str::<TdxPolicy>(r#"{"expected_mrtd":"abcd"}"#).is_err());
    assert!(serde_json::from_str::<TdxPolicy>(r#"{"allow_debugg":true}"#).is_err());
    let default: TdxPolicy = serde_json::from_str("{}").expect("empty policy");
    assert_eq!(default, TdxPolicy::strict());
}

/// Cold verification time of the v4 quote (parse collateral + verify). Run with
/// `cargo test --release -p sotto-verify-tdx --test real_vectors -- --ignored --nocapture`.
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
