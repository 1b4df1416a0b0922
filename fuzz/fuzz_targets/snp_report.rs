//! Fuzzes the SEV-SNP report parser and the verifier's handling of hostile evidence: any
//! input must parse-and-round-trip exactly or be refused, and verification must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sotto_verify_snp::{
    verify, AttestationReport, SnpAnchor, SnpEvidence, SnpPolicy, UnixTime, REPORT_SIZE,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = AttestationReport::parse(data) {
        assert_eq!(report.to_bytes(), data);
    }
    // The first REPORT_SIZE bytes as the report, the rest as the endorsement certificate.
    let (report, endorsement) = data.split_at(data.len().min(REPORT_SIZE));
    let evidence = SnpEvidence {
        report: report.to_vec(),
        endorsement_der: endorsement.to_vec(),
        chain_der: Vec::new(),
    };
    let _ = verify(
        &evidence,
        &SnpAnchor::Amd,
        &SnpPolicy::default(),
        UnixTime(1_748_736_000),
    );
});
