//! Times verification of the published H100 evidence (run with `--release`): parsing the
//! report, the five-certificate chain to the pinned root, the report signature and the checks.

use std::time::Instant;

use sotto_testkit::read_vector;
use sotto_verify_core::UnixTime;
use sotto_verify_nvidia::{verify, CertChainInput, GpuEvidenceInput, GpuPolicy, Rim, SpdmEvidence};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let text = |name: &str| String::from_utf8(read_vector(&format!("nvidia/{name}")));
    let report = SpdmEvidence::parse_hex(&text("hopperAttestationReport.txt")?)?;
    let rim_xml = text("1010_0200_882_96005E0001_PROD.swidtag")?;
    let evidence = GpuEvidenceInput {
        report: report.raw().to_vec(),
        cert_chain: CertChainInput::Pem(read_vector("nvidia/hopperCertChain.txt")),
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
        Rim::parse(rim_xml.as_bytes())?;
    }
    let per_rim = start.elapsed() / N;

    println!("verify (parse + 5-cert chain + report signature + checks): {per_verify:?}");
    println!("SpdmEvidence::parse: {per_parse:?}");
    println!("Rim::parse: {per_rim:?}");
    Ok(())
}
