//! Verification time per platform on the real vectors, cold and with a warm [`ChainCache`],
//! printed as a markdown table next to the goals (SEV-SNP under 5 ms and TDX under 10 ms cold).
//!
//! * first call: one verification in a fresh process (no cache, nothing of the verifier run
//!   before), timed in a child process of this example; the median of [`FRESH_PROCESSES`].
//! * cold: the median of [`N`] verifications without a cache, in one process.
//! * warm: the median of [`N`] verifications sharing one cache that has seen the evidence.
//!
//! Each timed verification starts from the bytes as a client receives them (report and
//! certificates; for TDX the quote and the collateral JSON, which is parsed inside the timing).
//! Run in release: `bench/verify.sh`, or
//! `cargo run --release -p sotto-verify --example verify_bench`.

use std::error::Error;
use std::process::Command;
use std::time::{Duration, Instant};

use sotto_testkit::read_vector;
use sotto_verify::ChainCache;
use sotto_verify_core::UnixTime;
use sotto_verify_nvidia as nvidia;
use sotto_verify_snp as snp;
use sotto_verify_tdx as tdx;

const N: usize = 200;
const FRESH_PROCESSES: usize = 7;

/// Times inside each vector's validity, as in the crates' `real_vectors` tests.
const SNP_AT: UnixTime = UnixTime(1_748_736_000);
const TDX_AT: UnixTime = UnixTime(1_750_377_600);
const NVIDIA_AT: UnixTime = UnixTime(1_717_200_000);

#[derive(Clone, Copy)]
enum Platform {
    Snp,
    Tdx,
    Nvidia,
}

impl Platform {
    const ALL: [Platform; 3] = [Platform::Snp, Platform::Tdx, Platform::Nvidia];

    fn arg(self) -> &'static str {
        match self {
            Platform::Snp => "snp",
            Platform::Tdx => "tdx",
            Platform::Nvidia => "nvidia",
        }
    }

    fn from_arg(arg: &str) -> Option<Platform> {
        Platform::ALL.into_iter().find(|p| p.arg() == arg)
    }

    fn row_name(self) -> &'static str {
        match self {
            Platform::Snp => "AMD SEV-SNP (report_milan + vcek_milan)",
            Platform::Tdx => "Intel TDX (tdx_quote + collateral)",
            Platform::Nvidia => "NVIDIA Hopper (SPDM report + 5-cert chain)",
        }
    }

    fn goal(self) -> Option<Duration> {
        match self {
            Platform::Snp => Some(Duration::from_millis(5)),
            Platform::Tdx => Some(Duration::from_millis(10)),
            Platform::Nvidia => None,
        }
    }
}

/// The evidence of every platform, as bytes a client receives.
struct Inputs {
    snp: snp::SnpEvidence,
    tdx_quote: Vec<u8>,
    tdx_collateral_json: Vec<u8>,
    nvidia: nvidia::GpuEvidenceInput,
    nvidia_policy: nvidia::GpuPolicy,
}

impl Inputs {
    fn load() -> Result<Inputs, Box<dyn Error>> {
        let report_hex = String::from_utf8(read_vector("sev-snp/report_milan.hex"))?;
        let gpu_report_hex = String::from_utf8(read_vector("nvidia/hopperAttestationReport.txt"))?;
        let gpu_report = nvidia::SpdmEvidence::parse_hex(&gpu_report_hex)?;
        let nvidia_policy = nvidia::GpuPolicy::new(gpu_report.request_nonce);
        Ok(Inputs {
            snp: snp::SnpEvidence {
                report: snp::parse_hex(&report_hex)?,
                endorsement_der: read_vector("sev-snp/vcek_milan.der"),
                chain_der: Vec::new(),
            },
            tdx_quote: read_vector("tdx/tdx_quote"),
            tdx_collateral_json: read_vector("tdx/tdx_quote_collateral.json"),
            nvidia: nvidia::GpuEvidenceInput {
                report: gpu_report.raw().to_vec(),
                cert_chain: nvidia::CertChainInput::Pem(read_vector("nvidia/hopperCertChain.txt")),
                rims: Vec::new(),
            },
            nvidia_policy,
        })
    }

    /// One full verification of `platform`'s evidence, through `cache`.
    fn verify(&self, platform: Platform, cache: &mut ChainCache) -> Result<(), Box<dyn Error>> {
        match platform {
            Platform::Snp => {
                let policy = snp::SnpPolicy::default();
                snp::verify_cached(&self.snp, &snp::SnpAnchor::Amd, &policy, SNP_AT, cache)?;
            }
            Platform::Tdx => {
                let collateral = tdx::Collateral::from_json(&self.tdx_collateral_json)?;
                let policy = tdx::TdxPolicy::strict();
                tdx::verify_cached(&self.tdx_quote, &collateral, &policy, TDX_AT, cache)?;
            }
            Platform::Nvidia => {
                nvidia::verify_cached(&self.nvidia, &self.nvidia_policy, NVIDIA_AT, cache)?;
            }
        }
        Ok(())
    }

    fn timed(
        &self,
        platform: Platform,
        cache: &mut ChainCache,
    ) -> Result<Duration, Box<dyn Error>> {
        let start = Instant::now();
        self.verify(platform, cache)?;
        Ok(start.elapsed())
    }

    /// The median of [`N`] verifications, each with a fresh cache (`warm == false`) or all
    /// sharing one cache already warmed by a first verification.
    fn median(&self, platform: Platform, warm: bool) -> Result<Duration, Box<dyn Error>> {
        let mut shared = ChainCache::new();
        if warm {
            self.verify(platform, &mut shared)?;
        }
        let mut times = Vec::with_capacity(N);
        for _ in 0..N {
            let time = if warm {
                self.timed(platform, &mut shared)?
            } else {
                self.timed(platform, &mut ChainCache::new())?
            };
            times.push(time);
        }
        median(times).ok_or_else(|| "no samples".into())
    }
}

fn median(mut times: Vec<Duration>) -> Option<Duration> {
    times.sort();
    times.get(times.len() / 2).copied()
}

/// The first verification in this (fresh) process, printed in nanoseconds for the parent.
fn first_call(platform: Platform) -> Result<(), Box<dyn Error>> {
    let inputs = Inputs::load()?;
    let time = inputs.timed(platform, &mut ChainCache::new())?;
    println!("{}", time.as_nanos());
    Ok(())
}

/// The median over fresh child processes of their first verification.
fn fresh_process_first_call(platform: Platform) -> Result<Duration, Box<dyn Error>> {
    let exe = std::env::current_exe()?;
    let mut times = Vec::with_capacity(FRESH_PROCESSES);
    for _ in 0..FRESH_PROCESSES {
        let out = Command::new(&exe)
            .args(["--first-call", platform.arg()])
            .output()?;
        if !out.status.success() {
            return Err(format!(
                "child for {} failed: {}",
                platform.arg(),
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        let nanos: u64 = String::from_utf8(out.stdout)?.trim().parse()?;
        times.push(Duration::from_nanos(nanos));
    }
    median(times).ok_or_else(|| "no samples".into())
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, platform] = args.as_slice() {
        if flag == "--first-call" {
            let platform = Platform::from_arg(platform).ok_or("unknown platform")?;
            return first_call(platform);
        }
    }
    if !args.is_empty() {
        return Err("usage: verify_bench [--first-call snp|tdx|nvidia]".into());
    }

    let inputs = Inputs::load()?;
    println!(
        "| Platform | Goal (cold) | First call, fresh process (median of {FRESH_PROCESSES}) \
         | Cold, no cache (median of {N}) | Warm cache (median of {N}) | Goal met (cold) |"
    );
    println!("|---|---|---|---|---|---|");
    for platform in Platform::ALL {
        let first = fresh_process_first_call(platform)?;
        let cold = inputs.median(platform, false)?;
        let warm = inputs.median(platform, true)?;
        let (goal, met) = match platform.goal() {
            Some(goal) => (
                format!("< {}", ms(goal)),
                if first < goal && cold < goal {
                    "yes"
                } else {
                    "no"
                },
            ),
            None => ("none".to_string(), "n/a"),
        };
        println!(
            "| {} | {goal} | {} | {} | {} | {met} |",
            platform.row_name(),
            ms(first),
            ms(cold),
            ms(warm),
        );
    }
    Ok(())
}
