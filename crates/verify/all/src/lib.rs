//! The one entry point a client uses to decide whether an enclave is genuine.
//!
//! Trust: the [`Evidence`] arrives through the untrusted relay; nothing in it is believed until
//! the platform verifier has chained it to a root pinned in code (or, for the simulated
//! platform, to a development root the user explicitly accepted). Pure: the verification time
//! is an argument, and this crate builds for wasm32 so the browser runs the same checks.

pub mod evidence;

use serde::Serialize;
use sotto_verify_core::UnixTime;

pub use sotto_verify_core::ChainCache;
use sotto_verify_nvidia as nvidia;
use sotto_verify_snp as snp;
use sotto_verify_tdx as tdx;

pub use evidence::{CpuEvidence, Evidence, GpuEvidence};

/// What a client accepts. The default is strict: real hardware only, debug off, TDX
/// UpToDate only, no GPU required.
#[derive(Clone, Debug)]
pub struct Policy {
    pub snp: snp::SnpPolicy,
    pub tdx: tdx::TdxPolicy,
    /// GPU checks; its nonce is replaced by the channel's binding.
    pub gpu: nvidia::GpuPolicy,
    /// Reference manifests the GPU's measurements must match (from the release).
    pub gpu_rims: Vec<nvidia::Rim>,
    /// Accept the simulated development platform. Only ever set by an explicit, loudly
    /// named user choice (`--insecure-simulated`).
    pub allow_simulated: bool,
    /// When set, the simulated platform's root must be exactly this certificate (DER).
    pub simulated_root: Option<Vec<u8>>,
    /// Refuse enclaves that do not also attest a GPU.
    pub require_gpu: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            snp: snp::SnpPolicy::default(),
            tdx: tdx::TdxPolicy::strict(),
            gpu: nvidia::GpuPolicy::new([0; 32]),
            gpu_rims: Vec::new(),
            allow_simulated: false,
            simulated_root: None,
            require_gpu: false,
        }
    }
}

/// What the evidence must commit to, computed by the caller from the channel.
#[derive(Clone, Debug)]
pub struct Binding {
    pub report_data: [u8; 64],
    pub gpu_nonce: [u8; 32],
    /// The manifest's record of the GPU evidence digest (hex), if it claims a GPU.
    pub gpu_evidence_sha256: Option<String>,
}

/// The outcome of a successful verification.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub cpu: CpuVerdict,
    pub gpu: Option<nvidia::GpuVerdict>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "platform", rename_all = "kebab-case")]
pub enum CpuVerdict {
    SevSnp(snp::SnpVerdict),
    Tdx(tdx::TdxVerdict),
    Simulated(snp::SnpVerdict),
}

impl Verdict {
    /// The platform name as manifests spell it.
    pub fn platform_name(&self) -> &'static str {
        match self.cpu {
            CpuVerdict::SevSnp(_) => "sev-snp",
            CpuVerdict::Tdx(_) => "tdx",
            CpuVerdict::Simulated(_) => "simulated",
        }
    }

    pub fn is_simulated(&self) -> bool {
        matches!(self.cpu, CpuVerdict::Simulated(_))
    }

    /// The launch measurement releases pin: SEV-SNP (or simulated) MEASUREMENT, or TDX MRTD.
    pub fn launch_measurement(&self) -> [u8; 48] {
        match &self.cpu {
            CpuVerdict::SevSnp(v) | CpuVerdict::Simulated(v) => v.measurement,
            CpuVerdict::Tdx(v) => v.mrtd,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "the enclave runs on the SIMULATED development platform, whose evidence proves nothing; \
         refusing to send (only a client set up for local development accepts it: \
         `sotto chat --insecure-simulated`, or a web client built with SOTTO_WEB_ALLOW_SIMULATED=1)"
    )]
    SimulatedNotAllowed,
    #[error("simulated evidence carries no root certificate")]
    SimulatedChainMissing,
    #[error("SEV-SNP evidence refused: {0}")]
    Snp(#[from] snp::SnpError),
    #[error("TDX evidence refused: {0}")]
    Tdx(#[from] tdx::TdxError),
    #[error("GPU evidence refused: {0}")]
    Gpu(#[from] nvidia::GpuError),
    #[error("the policy requires an attested GPU, but the enclave presented none")]
    GpuRequired,
    #[error("the manifest claims GPU evidence, but none was presented")]
    GpuEvidenceMissing,
    #[error("GPU evidence was presented, but the manifest does not commit to it")]
    GpuEvidenceUnbound,
    #[error("the GPU evidence differs from the one the manifest commits to")]
    GpuEvidenceDigestMismatch,
}

/// The GPU nonce an enclave with this channel key must have used (see `sotto_verify_nvidia`).
pub fn gpu_nonce(static_pubkey: &[u8; 32]) -> [u8; 32] {
    nvidia::gpu_nonce(static_pubkey)
}

/// The digest of GPU evidence that the manifest records.
pub fn gpu_evidence_digest(gpu: &GpuEvidence) -> [u8; 32] {
    nvidia::gpu_evidence_digest(&gpu.spdm_request_response, &gpu.cert_chain_der)
}

/// Verifies evidence against the policy and the channel binding, as of `at`.
pub fn verify(
    evidence: &Evidence,
    policy: &Policy,
    binding: &Binding,
    at: UnixTime,
) -> Result<Verdict, VerifyError> {
    verify_cached(evidence, policy, binding, at, &mut ChainCache::new())
}

/// [`verify`], skipping the certificate-chain and collateral signatures already proven in
/// `cache` and remembering the ones it proves (one cache serves every platform). The
/// evidence's own signatures and every other check, validity at `at` included, run each call.
pub fn verify_cached(
    evidence: &Evidence,
    policy: &Policy,
    binding: &Binding,
    at: UnixTime,
    cache: &mut ChainCache,
) -> Result<Verdict, VerifyError> {
    // The real SEV-SNP and the simulated platform share one code path; only the anchor
    // differs, and the simulated one is reachable only with the user's explicit consent.
    let snp_verify = |report: &[u8],
                      endorsement_der: &[u8],
                      chain_der: &[Vec<u8>],
                      anchor: &snp::SnpAnchor,
                      cache: &mut ChainCache| {
        let mut p = policy.snp.clone();
        p.expected_report_data = Some(binding.report_data);
        let ev = snp::SnpEvidence {
            report: report.to_vec(),
            endorsement_der: endorsement_der.to_vec(),
            chain_der: chain_der.to_vec(),
        };
        snp::verify_cached(&ev, anchor, &p, at, cache)
    };
    let cpu = match &evidence.cpu {
        CpuEvidence::SevSnp {
            report,
            endorsement_der,
            chain_der,
        } => CpuVerdict::SevSnp(snp_verify(
            report,
            endorsement_der,
            chain_der,
            &snp::SnpAnchor::Amd,
            cache,
        )?),
        CpuEvidence::Simulated {
            report,
            endorsement_der,
            chain_der,
        } => {
            if !policy.allow_simulated {
                return Err(VerifyError::SimulatedNotAllowed);
            }
            let root_der = match &policy.simulated_root {
                Some(pinned) => pinned.clone(),
                None => chain_der
                    .last()
                    .cloned()
                    .ok_or(VerifyError::SimulatedChainMissing)?,
            };
            CpuVerdict::Simulated(snp_verify(
                report,
                endorsement_der,
                chain_der,
                &snp::SnpAnchor::Simulated { root_der },
                cache,
            )?)
        }
        CpuEvidence::Tdx {
            quote,
            collateral_json,
        } => {
            let collateral = tdx::Collateral::from_json(collateral_json)?;
            let mut p = policy.tdx.clone();
            p.expected_report_data = Some(binding.report_data);
            CpuVerdict::Tdx(tdx::verify_cached(quote, &collateral, &p, at, cache)?)
        }
    };
    let gpu = match (&evidence.gpu, &binding.gpu_evidence_sha256) {
        (None, None) if policy.require_gpu => return Err(VerifyError::GpuRequired),
        (None, None) => None,
        (None, Some(_)) => return Err(VerifyError::GpuEvidenceMissing),
        (Some(_), None) => return Err(VerifyError::GpuEvidenceUnbound),
        (Some(g), Some(recorded)) => {
            if hex::encode(gpu_evidence_digest(g)) != recorded.to_ascii_lowercase() {
                return Err(VerifyError::GpuEvidenceDigestMismatch);
            }
            let mut p = policy.gpu.clone();
            p.expected_nonce = binding.gpu_nonce;
            let input = nvidia::GpuEvidenceInput {
                report: g.spdm_request_response.clone(),
                cert_chain: nvidia::CertChainInput::Der(g.cert_chain_der.clone()),
                rims: policy.gpu_rims.clone(),
            };
            Some(nvidia::verify_cached(&input, &p, at, cache)?)
        }
    };
    Ok(Verdict { cpu, gpu })
}
