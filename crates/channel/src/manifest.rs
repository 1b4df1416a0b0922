//! The enclave manifest: what a verified enclave claims to run.
//!
//! The enclave sends its manifest as exact bytes; the client hashes those bytes (never a
//! re-serialisation) for the REPORT_DATA binding, then parses them strictly.

use serde::{Deserialize, Serialize};

use crate::ChannelError;

pub const MANIFEST_FORMAT: u32 = 1;
const MAX_MANIFEST: usize = 16 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    /// The Sotto release the enclave was built from.
    pub release: String,
    /// The attestation platform the enclave reports ("sev-snp", "tdx", "simulated").
    pub platform: String,
    pub model: ModelManifest,
    pub engine: EngineManifest,
    /// SHA-256 of the GPU evidence, when a GPU in confidential-computing mode serves the model.
    pub gpu_evidence_sha256: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelManifest {
    pub name: String,
    /// Lower-case hex SHA-256 of the GGUF file, checked by the enclave before loading.
    pub sha256: String,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineManifest {
    pub name: String,
    pub version: String,
    pub context: u32,
}

impl Manifest {
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising a plain struct of strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, ChannelError> {
        if bytes.len() > MAX_MANIFEST {
            return Err(ChannelError::Manifest(format!(
                "larger than {MAX_MANIFEST} bytes"
            )));
        }
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| ChannelError::Manifest(e.to_string()))?;
        if m.format != MANIFEST_FORMAT {
            return Err(ChannelError::Manifest(format!(
                "unsupported manifest format {}",
                m.format
            )));
        }
        Ok(m)
    }

    pub fn model_sha256(&self) -> Result<[u8; 32], ChannelError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(&self.model.sha256, &mut out)
            .map_err(|_| ChannelError::Manifest("model sha256 is not 64 hex digits".into()))?;
        Ok(out)
    }
}
