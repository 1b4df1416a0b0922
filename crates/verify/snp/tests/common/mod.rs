//! Fixtures shared by the SEV-SNP integration tests: the real vectors and the time they are
//! verified at.

#![allow(dead_code)]

use sotto_verify_snp::{parse_hex, SnpEvidence, UnixTime};

/// 2025-06-01T00:00:00Z, inside the validity of the real Milan VCEK (2023-04-03..2030-04-03).
pub const AT: UnixTime = UnixTime(1_748_736_000);

/// A file of `shared/vectors/sev-snp`, beside the repository.
pub fn vector(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../../../shared/vectors/sev-snp/{name}",
        std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// The real Milan report and its VCEK, with no host-supplied chain.
pub fn milan() -> SnpEvidence {
    let text = String::from_utf8(vector("report_milan.hex")).unwrap();
    SnpEvidence {
        report: parse_hex(&text).unwrap(),
        endorsement_der: vector("vcek_milan.der"),
        chain_der: vec![],
    }
}
