//! Sotto's evidence provider: runs inside the enclave (a confidential VM) and turns 64 bytes of
//! REPORT_DATA into hardware evidence — an AMD SEV-SNP report or an Intel TDX quote through
//! the kernel's configfs-tsm interface, NVIDIA GPU evidence through NVML, or, on machines
//! without a TEE, a report of the simulated platform signed by a locally generated authority.
//!
//! Trust: the guest kernel and drivers are part of the measured enclave and are trusted to relay
//! what the hardware signed. Everything the untrusted host contributes (SNP certificate table,
//! TDX collateral file) is passed through for the client's verifier to judge, after checks that
//! catch garbage early. [`Attester::open`] refuses a platform it cannot attest, so an enclave
//! misconfigured for its hardware fails at boot, not at a client's first handshake.

pub mod cert_table;
pub mod chain;
mod nvidia;
mod sim;
mod tsm;

#[cfg(test)]
mod fake_tsm;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use sotto_verify::evidence::CpuEvidence;
use sotto_verify::{Evidence, GpuEvidence};
use sotto_verify_core::UnixTime;
use thiserror::Error;

pub use cert_table::CertTableError;
pub use chain::ChainError;
pub use nvidia::{GpuError, GPU_NONCE_LEN};
pub use sim::SimError;
pub use tsm::{TsmError, TsmProvider, INBLOB_LEN};

use nvidia::NvidiaGpu;
use sim::SimPlatform;
use tsm::{StdFs, Tsm, TsmFs};

/// Where the kernel mounts the configfs-tsm report group.
pub const DEFAULT_TSM_ROOT: &str = "/sys/kernel/config/tsm/report";

/// Size of the SEV-SNP ATTESTATION_REPORT (SEV-SNP firmware ABI, report versions 2 to 5).
const SNP_REPORT_LEN: usize = 0x4A0;
const SNP_REPORT_DATA_OFFSET: usize = 0x50;
const SNP_MEASUREMENT_OFFSET: usize = 0x90;

/// TDX DCAP quote layout: a 48-byte header, then (v5 only) a body type and size, then the TD
/// report body, whose REPORT_DATA sits after the TCB SVN, MRSEAM, MRSIGNERSEAM, attributes,
/// XFAM, MRTD, the three config/owner measurements and the four RTMRs.
const TDX_HEADER_LEN: usize = 48;
const TDX_TEE_TYPE: u32 = 0x81;
const TDX_BODY_REPORT_DATA_OFFSET: usize = 520;
const TDX_BODY_MRTD_OFFSET: usize = 136;
const TDX_V5_BODY_DESCRIPTOR_LEN: usize = 6;
const TDX_V5_SGX_BODY_TYPE: u16 = 1;

/// Which CPU TEE to attest with, and what the untrusted host provides for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlatformConfig {
    /// No TEE: reports in the SEV-SNP layout signed by an authority kept under `data_dir`.
    /// `measurement_input` is the enclave's build identity (e.g. its binary's digest); the
    /// report's MEASUREMENT is derived from it so that a different build is visible.
    Simulated {
        data_dir: PathBuf,
        measurement_input: Vec<u8>,
    },
    /// AMD SEV-SNP through configfs-tsm (`sev_guest`). `privlevel`, when given, is the VMPL the
    /// report is requested for (at least the kernel's `privlevel_floor`, at most 3; the kernel
    /// asks for VMPL 0 when it is absent). `endorsement_pem` is a host-fetched PEM file (VCEK
    /// or VLEK first, then ASK/ASVK and ARK), read only when the hypervisor attached no
    /// certificate table to the report.
    SevSnp {
        tsm_root: PathBuf,
        privlevel: Option<u8>,
        endorsement_pem: Option<PathBuf>,
    },
    /// Intel TDX through configfs-tsm (`tdx_guest`). `collateral_json` is the host-fetched DCAP
    /// collateral (dcap-qvl JSON layout), re-read for every quote so the host can refresh it;
    /// without it the evidence carries empty collateral and the client must obtain it itself.
    Tdx {
        tsm_root: PathBuf,
        collateral_json: Option<PathBuf>,
    },
}

impl PlatformConfig {
    /// SEV-SNP at the default configfs-tsm root, with the kernel's default VMPL.
    pub fn sev_snp() -> Self {
        PlatformConfig::SevSnp {
            tsm_root: PathBuf::from(DEFAULT_TSM_ROOT),
            privlevel: None,
            endorsement_pem: None,
        }
    }

    /// TDX at the default configfs-tsm root.
    pub fn tdx(collateral_json: Option<PathBuf>) -> Self {
        PlatformConfig::Tdx {
            tsm_root: PathBuf::from(DEFAULT_TSM_ROOT),
            collateral_json,
        }
    }
}

/// Whether the enclave drives a GPU whose evidence joins the CPU's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpuConfig {
    None,
    /// The first NVIDIA GPU NVML reports, which must be in confidential-computing mode.
    Nvidia,
}

/// Why evidence could not be produced, or why the attester refused to start.
#[derive(Debug, Error)]
pub enum AttestError {
    #[error("configfs-tsm: {0}")]
    Tsm(#[from] TsmError),
    #[error("SEV-SNP certificate table from the host: {0}")]
    CertTable(#[from] CertTableError),
    #[error("host endorsement file {path}: {source}")]
    EndorsementChain { path: PathBuf, source: ChainError },
    #[error("the hypervisor attached no certificates to the SEV-SNP report and no endorsement file is configured")]
    NoEndorsement,
    #[error("cannot read {what} {path}: {source}")]
    HostFile {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("NVIDIA GPU: {0}")]
    Gpu(#[from] GpuError),
    #[error("simulated platform: {0}")]
    Sim(#[from] SimError),
    #[error("SEV-SNP report is {len} bytes, expected {SNP_REPORT_LEN}")]
    SnpReportSize { len: usize },
    #[error("TDX quote is malformed: {0}")]
    TdxQuote(&'static str),
    #[error("TDX quote version {0} is not supported (expected 4 or 5)")]
    TdxQuoteVersion(u16),
    #[error("the report does not carry the REPORT_DATA that was requested")]
    ReportDataMismatch,
    #[error("a GPU is configured, so its evidence must join the CPU's")]
    GpuEvidenceMissing,
    #[error("GPU evidence was given, but no GPU is configured")]
    NoGpuConfigured,
}

enum Cpu {
    SevSnp {
        tsm: Tsm,
        privlevel: Option<u8>,
        endorsement_pem: Option<PathBuf>,
    },
    Tdx {
        tsm: Tsm,
        collateral_json: Option<PathBuf>,
    },
    Simulated(Box<SimPlatform>),
}

/// An evidence provider that was checked, when opened, to be able to attest on this machine.
pub struct Attester {
    cpu: Cpu,
    gpu: Option<NvidiaGpu>,
    measurement: [u8; MEASUREMENT_LEN],
}

/// Length of a launch measurement: SEV-SNP MEASUREMENT and TDX MRTD are both SHA-384.
pub const MEASUREMENT_LEN: usize = 48;

impl Attester {
    /// Opens the platform and refuses with a typed error if it cannot attest here: configfs-tsm
    /// missing or speaking another TSM's format, NVML missing or the GPU outside CC mode, a
    /// host file configured but unreadable, a simulated authority that is present but corrupt,
    /// or a trial report that fails. `now` dates the simulated authority's certificates when one has to be created.
    pub fn open(
        platform: PlatformConfig,
        gpu: GpuConfig,
        now: UnixTime,
    ) -> Result<Attester, AttestError> {
        Self::open_with_fs(platform, gpu, now, Box::new(StdFs))
    }

    fn open_with_fs(
        platform: PlatformConfig,
        gpu: GpuConfig,
        now: UnixTime,
        fs: Box<dyn TsmFs>,
    ) -> Result<Attester, AttestError> {
        let cpu = match platform {
            PlatformConfig::SevSnp {
                tsm_root,
                privlevel,
                endorsement_pem,
            } => {
                if let Some(level) = privlevel.filter(|l| *l > tsm::PRIVLEVEL_MAX) {
                    return Err(TsmError::PrivlevelTooHigh(level).into());
                }
                if let Some(path) = &endorsement_pem {
                    read_host_file("endorsement file", path)?;
                }
                Cpu::SevSnp {
                    tsm: Tsm::open(fs, tsm_root, TsmProvider::SevGuest)?,
                    privlevel,
                    endorsement_pem,
                }
            }
            PlatformConfig::Tdx {
                tsm_root,
                collateral_json,
            } => {
                if let Some(path) = &collateral_json {
                    read_host_file("TDX collateral", path)?;
                }
                Cpu::Tdx {
                    tsm: Tsm::open(fs, tsm_root, TsmProvider::TdxGuest)?,
                    collateral_json,
                }
            }
            PlatformConfig::Simulated {
                data_dir,
                measurement_input,
            } => Cpu::Simulated(Box::new(SimPlatform::open(
                &data_dir,
                &measurement_input,
                now,
            )?)),
        };
        let gpu = match gpu {
            GpuConfig::None => None,
            GpuConfig::Nvidia => Some(NvidiaGpu::open()?),
        };
        let mut attester = Attester {
            cpu,
            gpu,
            measurement: [0; MEASUREMENT_LEN],
        };
        // A trial run: what only shows when the hardware is asked (a TDX quoting service that
        // is not running, a disabled VMPCK, an SNP host that supplies no certificates) then
        // stops the enclave at boot rather than at a client's handshake. Its report also says
        // what this guest was launched as.
        let gpu = attester.gpu_evidence(&[0u8; GPU_NONCE_LEN])?;
        let trial = attester.evidence(&[0u8; INBLOB_LEN], gpu)?;
        attester.measurement = launch_measurement(&trial.cpu)?;
        Ok(attester)
    }

    /// A short name of the CPU platform: `sev-snp`, `tdx` or `simulated`.
    pub fn platform_name(&self) -> &'static str {
        match self.cpu {
            Cpu::SevSnp { .. } => "sev-snp",
            Cpu::Tdx { .. } => "tdx",
            Cpu::Simulated(_) => "simulated",
        }
    }

    /// The development root that simulated evidence chains to, for clients to pin; `None` on
    /// real hardware.
    pub fn simulated_root_der(&self) -> Option<&[u8]> {
        match &self.cpu {
            Cpu::Simulated(sim) => Some(sim.root_der()),
            Cpu::SevSnp { .. } | Cpu::Tdx { .. } => None,
        }
    }

    /// What the hardware measured at launch (SEV-SNP MEASUREMENT, TDX MRTD, or the simulated
    /// MEASUREMENT), as read from this guest's own report when it was opened: the value a
    /// release publishes and clients pin.
    pub fn launch_measurement(&self) -> &[u8; MEASUREMENT_LEN] {
        &self.measurement
    }

    /// Whether GPU evidence is collected.
    pub fn has_gpu(&self) -> bool {
        self.gpu.is_some()
    }

    /// GPU evidence whose SPDM request carries `gpu_nonce`, or `None` without a GPU. Collected
    /// before the CPU evidence because the manifest that REPORT_DATA commits to records the
    /// GPU evidence's digest.
    pub fn gpu_evidence(
        &self,
        gpu_nonce: &[u8; GPU_NONCE_LEN],
    ) -> Result<Option<GpuEvidence>, AttestError> {
        match &self.gpu {
            Some(gpu) => Ok(Some(gpu.evidence(gpu_nonce)?)),
            None => Ok(None),
        }
    }

    /// Evidence whose REPORT_DATA is `report_data`, joined with GPU evidence from
    /// [`Attester::gpu_evidence`] (required exactly when a GPU is configured).
    pub fn evidence(
        &self,
        report_data: &[u8; INBLOB_LEN],
        gpu: Option<GpuEvidence>,
    ) -> Result<Evidence, AttestError> {
        match (&self.gpu, &gpu) {
            (Some(_), None) => return Err(AttestError::GpuEvidenceMissing),
            (None, Some(_)) => return Err(AttestError::NoGpuConfigured),
            _ => {}
        }
        let cpu = match &self.cpu {
            Cpu::SevSnp {
                tsm,
                privlevel,
                endorsement_pem,
            } => snp_evidence(tsm, *privlevel, endorsement_pem.as_deref(), report_data)?,
            Cpu::Tdx {
                tsm,
                collateral_json,
            } => tdx_evidence(tsm, collateral_json.as_deref(), report_data)?,
            Cpu::Simulated(sim) => sim.evidence(report_data)?,
        };
        Ok(Evidence { cpu, gpu })
    }
}

fn snp_evidence(
    tsm: &Tsm,
    privlevel: Option<u8>,
    endorsement_pem: Option<&Path>,
    report_data: &[u8; INBLOB_LEN],
) -> Result<CpuEvidence, AttestError> {
    let out = tsm.report(report_data, privlevel, true)?;
    if out.outblob.len() != SNP_REPORT_LEN {
        return Err(AttestError::SnpReportSize {
            len: out.outblob.len(),
        });
    }
    check_report_data(&out.outblob, SNP_REPORT_DATA_OFFSET, report_data)?;
    let entries = cert_table::parse(&out.auxblob)?;
    let (endorsement_der, chain_der) = match (entries.is_empty(), endorsement_pem) {
        (false, _) => {
            let certs = cert_table::snp_certs(&entries)?;
            (certs.endorsement_der, certs.chain_der)
        }
        (true, Some(path)) => {
            let pem = read_host_file("endorsement file", path)?;
            let chain_error = |source| AttestError::EndorsementChain {
                path: path.to_path_buf(),
                source,
            };
            let mut ders = chain::to_der_list(&pem).map_err(chain_error)?.into_iter();
            let leaf = ders.next().ok_or_else(|| chain_error(ChainError::Empty))?;
            (leaf, ders.collect())
        }
        (true, None) => return Err(AttestError::NoEndorsement),
    };
    Ok(CpuEvidence::SevSnp {
        report: out.outblob,
        endorsement_der,
        chain_der,
    })
}

fn tdx_evidence(
    tsm: &Tsm,
    collateral_json: Option<&Path>,
    report_data: &[u8; INBLOB_LEN],
) -> Result<CpuEvidence, AttestError> {
    let out = tsm.report(report_data, None, false)?;
    check_report_data(
        &out.outblob,
        tdx_report_data_offset(&out.outblob)?,
        report_data,
    )?;
    let collateral_json = match collateral_json {
        Some(path) => read_host_file("TDX collateral", path)?,
        None => Vec::new(),
    };
    Ok(CpuEvidence::Tdx {
        quote: out.outblob,
        collateral_json,
    })
}

/// The launch measurement a report of this guest carries.
fn launch_measurement(cpu: &CpuEvidence) -> Result<[u8; MEASUREMENT_LEN], AttestError> {
    let at = |blob: &[u8], offset: usize| -> Option<[u8; MEASUREMENT_LEN]> {
        blob.get(offset..offset + MEASUREMENT_LEN)?.try_into().ok()
    };
    match cpu {
        CpuEvidence::SevSnp { report, .. } | CpuEvidence::Simulated { report, .. } => {
            at(report, SNP_MEASUREMENT_OFFSET)
                .ok_or(AttestError::SnpReportSize { len: report.len() })
        }
        CpuEvidence::Tdx { quote, .. } => {
            let body = tdx_report_data_offset(quote)? - TDX_BODY_REPORT_DATA_OFFSET;
            at(quote, body + TDX_BODY_MRTD_OFFSET)
                .ok_or(AttestError::TdxQuote("shorter than its TD report"))
        }
    }
}

/// Where REPORT_DATA sits in a TDX quote of version 4 or 5.
fn tdx_report_data_offset(quote: &[u8]) -> Result<usize, AttestError> {
    let u16_at = |at: usize| {
        quote
            .get(at..at + 2)
            .and_then(|b| b.try_into().ok())
            .map(u16::from_le_bytes)
            .ok_or(AttestError::TdxQuote("shorter than its header"))
    };
    let tee_type = quote
        .get(4..8)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or(AttestError::TdxQuote("shorter than its header"))?;
    if tee_type != TDX_TEE_TYPE {
        return Err(AttestError::TdxQuote("TEE type is not TDX"));
    }
    match u16_at(0)? {
        4 => Ok(TDX_HEADER_LEN + TDX_BODY_REPORT_DATA_OFFSET),
        5 => {
            if u16_at(TDX_HEADER_LEN)? == TDX_V5_SGX_BODY_TYPE {
                return Err(AttestError::TdxQuote("v5 body is an SGX enclave report"));
            }
            Ok(TDX_HEADER_LEN + TDX_V5_BODY_DESCRIPTOR_LEN + TDX_BODY_REPORT_DATA_OFFSET)
        }
        other => Err(AttestError::TdxQuoteVersion(other)),
    }
}

/// Catches a TSM that answered some other request before the evidence leaves the enclave.
fn check_report_data(
    blob: &[u8],
    offset: usize,
    report_data: &[u8; INBLOB_LEN],
) -> Result<(), AttestError> {
    let carried = blob
        .get(offset..offset + INBLOB_LEN)
        .ok_or(AttestError::ReportDataMismatch)?;
    if carried != report_data {
        return Err(AttestError::ReportDataMismatch);
    }
    Ok(())
}

fn read_host_file(what: &'static str, path: &Path) -> Result<Vec<u8>, AttestError> {
    std::fs::read(path).map_err(|source| AttestError::HostFile {
        what,
        path: path.to_path_buf(),
        source,
    })
}
