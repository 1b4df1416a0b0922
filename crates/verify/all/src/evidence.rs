//! Evidence as it travels from an enclave's attester to a client's verifier.
//!
//! Everything here is produced inside the TEE but relayed by untrusted hosts, so these are
//! plain byte containers: no field is trusted until verified.

use serde::{Deserialize, Serialize};

/// The confidential-computing evidence of one enclave: CPU evidence, and GPU evidence when the
/// enclave drives a GPU in confidential-computing mode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub cpu: CpuEvidence,
    pub gpu: Option<GpuEvidence>,
}

/// Evidence from the CPU TEE.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CpuEvidence {
    /// An AMD SEV-SNP attestation report (the raw ABI bytes), the DER certificate of the key
    /// that signed it (VCEK or VLEK) and, optionally, the DER intermediates and root (ASK/ASVK,
    /// ARK) the host had; the verifier still pins AMD's roots itself.
    SevSnp {
        report: Vec<u8>,
        endorsement_der: Vec<u8>,
        chain_der: Vec<Vec<u8>>,
    },
    /// An Intel TDX DCAP quote (v4 or v5) and its collateral in the JSON layout of the dcap-qvl
    /// crate (vendor-signed, fetched by the host).
    Tdx {
        quote: Vec<u8>,
        collateral_json: Vec<u8>,
    },
    /// The simulated platform: a report in the SEV-SNP layout signed by a chip key of a locally
    /// generated P-384 chain. `chain_der` is `[intermediate, root]`. Accepted only by clients
    /// explicitly told to trust development evidence.
    Simulated {
        report: Vec<u8>,
        endorsement_der: Vec<u8>,
        chain_der: Vec<Vec<u8>>,
    },
}

/// NVIDIA GPU evidence: the SPDM GET_MEASUREMENTS request and response, and the device
/// certificate chain (DER, leaf first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuEvidence {
    pub spdm_request_response: Vec<u8>,
    pub cert_chain_der: Vec<Vec<u8>>,
}
