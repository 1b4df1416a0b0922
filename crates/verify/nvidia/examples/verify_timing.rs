//! Times verification of the published H100 evidence (run with `--release`): parsing the
//! report, the five-certificate chain to the pinned root, the report signature and the checks.

use std::time::Instant;

use sotto_verify_core::UnixTime;
use sotto_verify_nvidia::{verify, CertChainInput, GpuEvidenceInput, GpuPolicy, Rim, SpdmEvidence};

const REPORT_HEX: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../../shared/vectors/nvidia/hopperAttestationReport.txt"
));
const CHAIN_PEM: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../../shared/vectors/nvidia/hopperCertChain.txt"
));
const RIM_XML: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../../shared/vectors/nvidia/1010_0200_882_96005E0001_PROD.swidtag"
));

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let report = SpdmEvidence::parse_hex(REPORT_HEX)?;
    let evidence = GpuEvidenceInput {
        report: report.raw().to_vec(),
        cert_chain: CertChainInput::Pem(CHAIN_PEM.as_bytes().to_vec()),
        rims: Vec::new(),
    };
    let policy = GpuPolicy::new(report.request_nonce);
    let at = UnixTime(1_717_200_000);
    const N: u32 = 50;

    verify(&evidence, &policy, at)?;
    let start = Instant::now();
    for _ in 0..N {
        verify(&evidence, &policy, at)?;
    }
    let per_verify = start.elapsed() / N;

    let start = Instant::now();
    for _ in 0..N {
        SpdmEvidence::parse(&evidence.report)?;
    }
    let per_parse = start.elapsed() / N;

    let start = Instant::now();
    for _ in 0..N {
        Rim::parse(RIM_XML.as_bytes())?;
    }
    let per_rim = start.elapsed() / N;

    println!("verify (parse + 5-cert chain + report signature + checks): {per_verify:?}");
    println!("SpdmEvidence::parse: {per_parse:?}");
    println!("Rim::parse: {per_rim:?}");
    Ok(())
}
