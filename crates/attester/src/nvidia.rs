//! NVIDIA GPU evidence through NVML (`libnvidia-ml.so`, loaded at run time by the
//! `nvml-wrapper` crate, whose safe calls wrap nvmlDeviceGetConfComputeGpuAttestationReport and
//! nvmlDeviceGetConfComputeGpuCertificate: no `unsafe` here).
//!
//! The report is the SPDM GET_MEASUREMENTS request (carrying our nonce) and the GPU's signed
//! response; the certificate call gives the device's attestation chain, leaf first.
//!
//! Trust: the NVIDIA driver runs inside the confidential VM and is trusted to relay the GPU's
//! answer; the answer itself is verified by the client against NVIDIA's root. We refuse to
//! start unless the system reports confidential computing on and developer tools off, because
//! evidence from a GPU outside CC mode would only fail later, further from the cause.

use std::ffi::OsStr;

use nvml_wrapper::error::NvmlError;
use nvml_wrapper::Nvml;
use sotto_verify::GpuEvidence;
use thiserror::Error;

use crate::chain::{self, ChainError};

/// Size of the nonce NVML puts into the SPDM request (NVML_CC_GPU_CEC_NONCE_SIZE).
pub const GPU_NONCE_LEN: usize = 32;

/// The runtime soname the driver installs; the unversioned name exists only with dev packages.
const NVML_LIB: &str = "libnvidia-ml.so.1";

/// SPDM GET_MEASUREMENTS request code (DSP0274).
const SPDM_GET_MEASUREMENTS: u8 = 0xE0;
/// Version, code, param1, param2, then the 32-byte nonce.
const SPDM_NONCE_OFFSET: usize = 4;

/// Why GPU evidence could not be collected.
#[derive(Debug, Error)]
pub enum GpuError {
    #[error("NVML is not available (is the NVIDIA driver installed?): {0}")]
    NvmlUnavailable(String),
    #[error("NVML call {call} failed: {message}")]
    Nvml { call: &'static str, message: String },
    #[error("NVML reports no GPU")]
    NoDevice,
    #[error("confidential-computing mode is off on this system")]
    CcModeOff,
    #[error(
        "confidential-computing developer-tools mode is on: the GPU's memory is open to debugging"
    )]
    DevToolsMode,
    #[error("the SPDM request in the GPU report is malformed: {0}")]
    BadSpdmRequest(&'static str),
    #[error("the SPDM request in the GPU report carries another nonce than ours")]
    NonceMismatch,
    #[error("GPU certificate chain: {0}")]
    Chain(#[from] ChainError),
}

fn nvml_err(call: &'static str) -> impl FnOnce(NvmlError) -> GpuError {
    move |e| GpuError::Nvml {
        call,
        message: e.to_string(),
    }
}

/// The first GPU of an NVML instance that was found in CC mode when opened.
pub(crate) struct NvidiaGpu {
    nvml: Nvml,
}

impl NvidiaGpu {
    pub fn open() -> Result<Self, GpuError> {
        let nvml = Nvml::builder()
            .lib_path(OsStr::new(NVML_LIB))
            .init()
            .map_err(|e| match e {
                NvmlError::LibloadingError(_)
                | NvmlError::FailedToLoadSymbol(_)
                | NvmlError::DriverNotLoaded => GpuError::NvmlUnavailable(e.to_string()),
                other => GpuError::Nvml {
                    call: "nvmlInit",
                    message: other.to_string(),
                },
            })?;
        if nvml
            .device_count()
            .map_err(nvml_err("nvmlDeviceGetCount"))?
            == 0
        {
            return Err(GpuError::NoDevice);
        }
        let device = nvml
            .device_by_index(0)
            .map_err(nvml_err("nvmlDeviceGetHandleByIndex"))?;
        if !device
            .is_cc_enabled()
            .map_err(nvml_err("nvmlSystemGetConfComputeSettings"))?
        {
            return Err(GpuError::CcModeOff);
        }
        if device
            .is_cc_dev_mode_enabled()
            .map_err(nvml_err("nvmlSystemGetConfComputeSettings"))?
        {
            return Err(GpuError::DevToolsMode);
        }
        Ok(NvidiaGpu { nvml })
    }

    pub fn evidence(&self, nonce: &[u8; GPU_NONCE_LEN]) -> Result<GpuEvidence, GpuError> {
        let device = self
            .nvml
            .device_by_index(0)
            .map_err(nvml_err("nvmlDeviceGetHandleByIndex"))?;
        let report = device
            .confidential_compute_gpu_attestation_report(*nonce)
            .map_err(nvml_err("nvmlDeviceGetConfComputeGpuAttestationReport"))?;
        check_spdm_nonce(&report.attestation_report, nonce)?;
        let certs = device
            .confidential_compute_gpu_certificate()
            .map_err(nvml_err("nvmlDeviceGetConfComputeGpuCertificate"))?;
        Ok(GpuEvidence {
            spdm_request_response: report.attestation_report,
            cert_chain_der: chain::to_der_list(&certs.attestation_cert_chain)?,
        })
    }
}

/// Checks that the report opens with a GET_MEASUREMENTS request over `nonce`, so that a
/// driver answering some other request is caught before the evidence leaves the enclave.
pub fn check_spdm_nonce(report: &[u8], nonce: &[u8; GPU_NONCE_LEN]) -> Result<(), GpuError> {
    let code = *report
        .get(1)
        .ok_or(GpuError::BadSpdmRequest("shorter than an SPDM header"))?;
    if code != SPDM_GET_MEASUREMENTS {
        return Err(GpuError::BadSpdmRequest("not a GET_MEASUREMENTS request"));
    }
    let carried = report
        .get(SPDM_NONCE_OFFSET..SPDM_NONCE_OFFSET + GPU_NONCE_LEN)
        .ok_or(GpuError::BadSpdmRequest("request ends before its nonce"))?;
    if carried != nonce {
        return Err(GpuError::NonceMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOPPER_REPORT_HEX: &str =
        include_str!("../../../../shared/vectors/nvidia/hopperAttestationReport.txt");
    /// The request nonce of the captured report, from the vectors' README.
    const HOPPER_NONCE: &str = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb";

    fn hopper() -> (Vec<u8>, [u8; 32]) {
        let report = hex::decode(HOPPER_REPORT_HEX.trim()).unwrap();
        let nonce: [u8; 32] = hex::decode(HOPPER_NONCE).unwrap().try_into().unwrap();
        (report, nonce)
    }

    #[test]
    fn real_hopper_report_carries_its_nonce() {
        let (report, nonce) = hopper();
        check_spdm_nonce(&report, &nonce).unwrap();
    }

    #[test]
    fn other_nonce_or_request_is_refused() {
        let (report, mut nonce) = hopper();
        nonce[31] ^= 1;
        assert!(matches!(
            check_spdm_nonce(&report, &nonce),
            Err(GpuError::NonceMismatch)
        ));
        nonce[31] ^= 1;
        let mut other = report.clone();
        other[1] = 0x84;
        assert!(matches!(
            check_spdm_nonce(&other, &nonce),
            Err(GpuError::BadSpdmRequest(_))
        ));
        assert!(matches!(
            check_spdm_nonce(&report[..20], &nonce),
            Err(GpuError::BadSpdmRequest(_))
        ));
        assert!(matches!(
            check_spdm_nonce(&[], &nonce),
            Err(GpuError::BadSpdmRequest(_))
        ));
    }
}
