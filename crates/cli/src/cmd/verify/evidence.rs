//! `sotto verify evidence`: offline verification of raw TEE evidence, for auditors and for
//! anyone who doubts us. The same verifier crates the clients use; no network.
//!
//! Exit codes: 0 accepted (verdict as JSON on stdout), 1 refused (one line on stderr naming the
//! failed check), 2 usage error or unreadable input.
//!
//! Trust: every input file is untrusted, and so are the strings derived from it (paths,
//! certificate subjects): they are size-capped on read and control characters are escaped on
//! output so that the refusal stays one line.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use serde::Serialize;
use sotto_verify_core::x509::Cert;
use sotto_verify_core::UnixTime;
use sotto_verify_nvidia as nvidia;
use sotto_verify_snp as snp;
use sotto_verify_tdx as tdx;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EvidencePlatform {
    SevSnp,
    Tdx,
    Nvidia,
}

#[derive(Args)]
pub struct VerifyEvidenceArgs {
    /// The kind of evidence.
    #[arg(long, value_enum)]
    platform: EvidencePlatform,
    /// SEV-SNP: the attestation report (1184 bytes binary, or hex). NVIDIA: the SPDM
    /// request+response (hex text or binary).
    #[arg(long)]
    report: Option<PathBuf>,
    /// SEV-SNP: the VCEK or VLEK certificate (DER or PEM).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// SEV-SNP: the ASK/ASVK (+ ARK) chain as PEM; AMD's roots are pinned either way.
    #[arg(long)]
    chain: Option<PathBuf>,
    /// TDX: the DCAP quote (v4 or v5).
    #[arg(long)]
    quote: Option<PathBuf>,
    /// TDX: the collateral JSON (dcap-qvl layout).
    #[arg(long)]
    collateral: Option<PathBuf>,
    /// NVIDIA: the device certificate chain (PEM).
    #[arg(long)]
    certs: Option<PathBuf>,
    /// NVIDIA: the nonce the request must carry (64 hex digits).
    #[arg(long)]
    nonce: Option<String>,
    /// NVIDIA: reference integrity manifests (RIM, SWID XML); may be repeated.
    #[arg(long)]
    rim: Vec<PathBuf>,
    /// Verify as of this time (RFC 3339, e.g. 2025-06-01T00:00:00Z); default now.
    #[arg(long)]
    at: Option<String>,
    /// Require this measurement (SEV-SNP MEASUREMENT or TDX MRTD, hex).
    #[arg(long)]
    expect_measurement: Option<String>,
    /// Require this REPORT_DATA (128 hex digits).
    #[arg(long)]
    expect_report_data: Option<String>,
    /// A JSON policy file for the platform (see docs/VERIFY.md).
    #[arg(long)]
    policy: Option<PathBuf>,
}

/// A usage problem or unreadable input (exit 2).
struct Usage(String);

fn usage<T>(msg: impl Into<String>) -> Result<T, Usage> {
    Err(Usage(msg.into()))
}

/// Far above any genuine input (the largest, a RIM, is capped at 1 MiB by its parser); the cap
/// keeps a device file such as /dev/zero from exhausting memory.
const MAX_INPUT_LEN: u64 = 16 * 1024 * 1024;

fn read(path: &Path) -> Result<Vec<u8>, Usage> {
    let cannot = |e: std::io::Error| Usage(format!("cannot read {}: {e}", path.display()));
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_INPUT_LEN + 1).read_to_end(&mut bytes))
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_INPUT_LEN {
        return usage(format!(
            "cannot read {}: larger than {MAX_INPUT_LEN} bytes",
            path.display()
        ));
    }
    Ok(bytes)
}

fn platform_name(platform: EvidencePlatform) -> &'static str {
    match platform {
        EvidencePlatform::SevSnp => "sev-snp",
        EvidencePlatform::Tdx => "tdx",
        EvidencePlatform::Nvidia => "nvidia",
    }
}

/// Refuses flags that the chosen platform does not read: silently ignored, a `--nonce` or
/// `--rim` given with the wrong platform would look like a check that passed.
fn reject_foreign_flags(args: &VerifyEvidenceArgs) -> Result<(), Usage> {
    use EvidencePlatform::{Nvidia, SevSnp, Tdx};
    let flags: [(&str, bool, &[EvidencePlatform]); 10] = [
        ("--report", args.report.is_some(), &[SevSnp, Nvidia]),
        ("--cert", args.cert.is_some(), &[SevSnp]),
        ("--chain", args.chain.is_some(), &[SevSnp]),
        ("--quote", args.quote.is_some(), &[Tdx]),
        ("--collateral", args.collateral.is_some(), &[Tdx]),
        ("--certs", args.certs.is_some(), &[Nvidia]),
        ("--nonce", args.nonce.is_some(), &[Nvidia]),
        ("--rim", !args.rim.is_empty(), &[Nvidia]),
        (
            "--expect-measurement",
            args.expect_measurement.is_some(),
            &[SevSnp, Tdx],
        ),
        (
            "--expect-report-data",
            args.expect_report_data.is_some(),
            &[SevSnp, Tdx],
        ),
    ];
    match flags
        .iter()
        .find(|(_, given, platforms)| *given && !platforms.contains(&args.platform))
    {
        Some((flag, _, _)) => usage(format!(
            "{flag} does not apply to --platform {}",
            platform_name(args.platform)
        )),
        None => Ok(()),
    }
}

fn required<'a>(value: &'a Option<PathBuf>, flag: &str, platform: &str) -> Result<&'a Path, Usage> {
    value
        .as_deref()
        .ok_or_else(|| Usage(format!("--platform {platform} needs {flag}")))
}

fn hex_array<const N: usize>(text: &str, what: &str) -> Result<[u8; N], Usage> {
    let mut out = [0u8; N];
    hex::decode_to_slice(text.trim(), &mut out)
        .map_err(|_| Usage(format!("{what} must be {} hex digits", N * 2)))?;
    Ok(out)
}

/// Hex text (whitespace ignored) or raw bytes.
fn hex_or_binary(bytes: Vec<u8>) -> Vec<u8> {
    let text: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if !text.is_empty() && text.len().is_multiple_of(2) && text.iter().all(u8::is_ascii_hexdigit) {
        hex::decode(&text).unwrap_or(bytes)
    } else {
        bytes
    }
}

fn der_certs(bytes: &[u8], path: &Path) -> Result<Vec<Vec<u8>>, Usage> {
    if bytes.starts_with(b"-----BEGIN") || bytes.windows(10).any(|w| w == b"-----BEGIN") {
        let certs =
            Cert::from_pem_chain(bytes).map_err(|e| Usage(format!("{}: {e}", path.display())))?;
        Ok(certs.into_iter().map(|c| c.der().to_vec()).collect())
    } else {
        Ok(vec![bytes.to_vec()])
    }
}

fn at_time(at: &Option<String>) -> Result<UnixTime, Usage> {
    let t = match at {
        Some(s) => humantime::parse_rfc3339_weak(s).map_err(|e| Usage(format!("--at {s}: {e}")))?,
        None => SystemTime::now(),
    };
    Ok(UnixTime(
        t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    ))
}

fn policy_json<T: serde::de::DeserializeOwned>(path: &Option<PathBuf>) -> Result<Option<T>, Usage> {
    match path {
        None => Ok(None),
        Some(p) => serde_json::from_slice(&read(p)?)
            .map(Some)
            .map_err(|e| Usage(format!("policy {}: {e}", p.display()))),
    }
}

/// The NVIDIA policy file: the switches of `GpuPolicy` (the nonce comes from --nonce).
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct GpuPolicyFile {
    require_cc_feature_flag: bool,
    accept_protected_pcie: bool,
    require_rim: bool,
}

#[derive(Serialize)]
struct Accepted<V: Serialize> {
    accepted: bool,
    verified_at: u64,
    verdict: V,
}

enum Outcome {
    Accepted(String),
    Refused(String),
}

fn outcome<V: Serialize, E: std::fmt::Display>(r: Result<V, E>, at: UnixTime) -> Outcome {
    match r {
        Ok(verdict) => Outcome::Accepted(
            serde_json::to_string_pretty(&Accepted {
                accepted: true,
                verified_at: at.0,
                verdict,
            })
            .unwrap_or_default(),
        ),
        Err(e) => Outcome::Refused(e.to_string()),
    }
}

fn evaluate(args: &VerifyEvidenceArgs) -> Result<Outcome, Usage> {
    reject_foreign_flags(args)?;
    let at = at_time(&args.at)?;
    match args.platform {
        EvidencePlatform::SevSnp => {
            let report_path = required(&args.report, "--report", "sev-snp")?;
            let raw = read(report_path)?;
            let report = if raw.len() == snp::REPORT_SIZE {
                raw
            } else {
                snp::parse_hex(&String::from_utf8_lossy(&raw)).map_err(|e| {
                    Usage(format!(
                        "{}: neither a binary report nor hex: {e}",
                        report_path.display()
                    ))
                })?
            };
            let cert_path = required(&args.cert, "--cert (the VCEK or VLEK)", "sev-snp")?;
            let endorsement_der = der_certs(&read(cert_path)?, cert_path)?
                .into_iter()
                .next()
                .unwrap_or_default();
            let chain_der = match &args.chain {
                Some(p) => der_certs(&read(p)?, p)?,
                None => Vec::new(),
            };
            let mut policy: snp::SnpPolicy = policy_json(&args.policy)?.unwrap_or_default();
            if let Some(m) = &args.expect_measurement {
                policy.allowed_measurements = vec![hex_array::<48>(m, "--expect-measurement")?];
            }
            if let Some(rd) = &args.expect_report_data {
                policy.expected_report_data = Some(hex_array::<64>(rd, "--expect-report-data")?);
            }
            let evidence = snp::SnpEvidence {
                report,
                endorsement_der,
                chain_der,
            };
            Ok(outcome(
                snp::verify(&evidence, &snp::SnpAnchor::Amd, &policy, at),
                at,
            ))
        }
        EvidencePlatform::Tdx => {
            let quote = read(required(&args.quote, "--quote", "tdx")?)?;
            let collateral_path = required(&args.collateral, "--collateral", "tdx")?;
            let collateral = match tdx::Collateral::from_json(&read(collateral_path)?) {
                Ok(c) => c,
                Err(e) => return Ok(Outcome::Refused(e.to_string())),
            };
            let mut policy: tdx::TdxPolicy =
                policy_json(&args.policy)?.unwrap_or_else(tdx::TdxPolicy::strict);
            if let Some(m) = &args.expect_measurement {
                policy.expected_mrtd = Some(hex_array::<48>(m, "--expect-measurement")?);
            }
            if let Some(rd) = &args.expect_report_data {
                policy.expected_report_data = Some(hex_array::<64>(rd, "--expect-report-data")?);
            }
            Ok(outcome(tdx::verify(&quote, &collateral, &policy, at), at))
        }
        EvidencePlatform::Nvidia => {
            let report = hex_or_binary(read(required(&args.report, "--report", "nvidia")?)?);
            let certs_path = required(&args.certs, "--certs", "nvidia")?;
            let certs = der_certs(&read(certs_path)?, certs_path)?;
            let nonce = match &args.nonce {
                Some(n) => hex_array::<32>(n, "--nonce")?,
                None => return usage("--platform nvidia needs --nonce"),
            };
            let mut rims = Vec::new();
            for path in &args.rim {
                match nvidia::Rim::parse(&read(path)?) {
                    Ok(r) => rims.push(r),
                    Err(e) => return Ok(Outcome::Refused(format!("RIM {}: {e}", path.display()))),
                }
            }
            let file: GpuPolicyFile = policy_json(&args.policy)?.unwrap_or_default();
            let mut policy = nvidia::GpuPolicy::new(nonce);
            policy.require_cc_feature_flag = file.require_cc_feature_flag;
            policy.accept_protected_pcie = file.accept_protected_pcie;
            policy.require_rim = file.require_rim;
            let input = nvidia::GpuEvidenceInput {
                report,
                cert_chain: nvidia::CertChainInput::Der(certs),
                rims,
            };
            Ok(outcome(nvidia::verify(&input, &policy, at), at))
        }
    }
}

/// Writes one line to stderr. A failure is ignored: stderr is the last channel left to report
/// it on, and the exit code still carries the outcome.
fn tell(line: &str) {
    let _ = writeln!(
        std::io::stderr().lock(),
        "sotto: {}",
        crate::term::one_line(line)
    );
}

pub fn run(args: &VerifyEvidenceArgs) -> ExitCode {
    match evaluate(args) {
        Ok(Outcome::Accepted(json)) => {
            // `println!` would panic on a closed pipe; an undelivered verdict is not exit 0.
            let mut stdout = std::io::stdout().lock();
            match writeln!(stdout, "{json}").and_then(|()| stdout.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tell(&format!("cannot write the verdict to stdout: {e}"));
                    ExitCode::from(2)
                }
            }
        }
        Ok(Outcome::Refused(why)) => {
            tell(&format!("evidence refused: {why}"));
            ExitCode::from(1)
        }
        Err(Usage(why)) => {
            tell(&why);
            ExitCode::from(2)
        }
    }
}
