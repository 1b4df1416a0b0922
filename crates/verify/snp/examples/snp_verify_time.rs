//! Measures full SEV-SNP verification of the real Milan vector (report parse, pinned PEM
//! parse, VCEK -> ASK -> ARK chain, report signature, extension and policy checks).
//! Run with `cargo run --release -p sotto-verify-snp --example snp_verify_time`.

use std::time::Instant;

use sotto_testkit::read_vector;
use sotto_verify_snp::{parse_hex, verify, SnpAnchor, SnpEvidence, SnpPolicy, UnixTime};

const AT: UnixTime = UnixTime(1_748_736_000);
const RUNS: u32 = 200;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let report_hex = String::from_utf8(read_vector("sev-snp/report_milan.hex"))?;
    let evidence = SnpEvidence {
        report: parse_hex(&report_hex)?,
        endorsement_der: read_vector("sev-snp/vcek_milan.der"),
        chain_der: vec![],
    };
    let policy = SnpPolicy::default();

    let start = Instant::now();
    verify(&evidence, &SnpAnchor::Amd, &policy, AT)?;
    let first = start.elapsed();

    let mut times = Vec::with_capacity(RUNS as usize);
    for _ in 0..RUNS {
        let start = Instant::now();
        verify(&evidence, &SnpAnchor::Amd, &policy, AT)?;
        times.push(start.elapsed());
    }
    times.sort();
    let median = times[times.len() / 2];
    let min = times[0];
    println!(
        "snp verify (report_milan + vcek_milan, pinned Milan ARK/ASK): first call {:.3} ms, \
         median {:.3} ms, min {:.3} ms over {RUNS} runs",
        first.as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e3,
        min.as_secs_f64() * 1e3,
    );
    Ok(())
}
