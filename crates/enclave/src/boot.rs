//! Enclave start-up: model check, key, manifest, evidence, engine.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use sotto_attester::{Attester, GpuConfig, PlatformConfig};
use sotto_channel::binding::{manifest_digest, report_data};
use sotto_channel::handshake::{AttestationPayload, StaticKey};
use sotto_channel::manifest::{EngineManifest, Manifest, ModelManifest, MANIFEST_FORMAT};
use sotto_engine::{Engine, EngineConfig};
use sotto_verify_core::UnixTime;

/// The engine as the manifest names it; the version pins the llama.cpp binding.
const ENGINE_NAME: &str = "llama.cpp (llama-cpp-2)";
const ENGINE_VERSION: &str = "0.1.160";

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("cannot read model file {path}: {source}")]
    ModelRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("model file {path} has SHA-256 {actual}, but the manifest requires {expected}")]
    ModelDigest {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("cannot attest: {0}")]
    Attest(#[from] sotto_attester::AttestError),
    #[error("cannot load the model: {0}")]
    Engine(#[from] sotto_engine::EngineError),
    #[error("channel set-up failed: {0}")]
    Channel(#[from] sotto_channel::ChannelError),
}

pub struct EnclaveConfig {
    pub model_path: PathBuf,
    /// The digest the release manifest requires; `None` pins whatever file is given (the
    /// manifest then tells clients which file that was).
    pub model_sha256: Option<[u8; 32]>,
    pub platform: PlatformConfig,
    pub gpu: GpuConfig,
    pub engine: EngineConfig,
    /// Concurrent generations; further requests wait their turn.
    pub max_concurrent: usize,
}

/// A booted enclave, ready to serve.
pub struct Enclave {
    pub(crate) key: StaticKey,
    pub(crate) payload: Vec<u8>,
    pub(crate) manifest: Manifest,
    pub(crate) evidence: sotto_verify::Evidence,
    pub(crate) engine: Arc<Engine>,
    pub(crate) generations: Arc<tokio::sync::Semaphore>,
}

/// SHA-256 and size of a file, reporting progress as a fraction.
pub fn hash_file(
    path: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> std::io::Result<([u8; 32], u64)> {
    let mut file = File::open(path)?;
    let total = file.metadata()?.len();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        done += n as u64;
        progress(done, total);
    }
    Ok((hasher.finalize().into(), done))
}

impl Enclave {
    /// Boots the enclave. `progress` receives (step label, done, total) for long steps.
    pub fn boot(
        config: EnclaveConfig,
        now: UnixTime,
        progress: &mut dyn FnMut(&str, u64, u64),
    ) -> Result<Self, BootError> {
        let path = config.model_path.clone();
        let (digest, size) = hash_file(&path, &mut |d, t| progress("checking model", d, t))
            .map_err(|source| BootError::ModelRead {
                path: path.clone(),
                source,
            })?;
        if let Some(expected) = config.model_sha256 {
            if expected != digest {
                return Err(BootError::ModelDigest {
                    path,
                    expected: hex::encode(expected),
                    actual: hex::encode(digest),
                });
            }
        }
        let attester = Attester::open(config.platform, config.gpu, now)?;
        let engine = Engine::load(&path, &config.engine)?;
        let key = StaticKey::generate()?;

        let gpu_nonce = sotto_verify::gpu_nonce(key.public());
        let gpu = attester.gpu_evidence(&gpu_nonce)?;
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            release: env!("CARGO_PKG_VERSION").to_string(),
            platform: attester.platform_name().to_string(),
            model: ModelManifest {
                name: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                sha256: hex::encode(digest),
                size,
            },
            engine: EngineManifest {
                name: ENGINE_NAME.into(),
                version: ENGINE_VERSION.into(),
                context: config.engine.context_size.get(),
            },
            gpu_evidence_sha256: gpu
                .as_ref()
                .map(|g| hex::encode(sotto_verify::gpu_evidence_digest(g))),
        };
        let manifest_bytes = manifest.to_bytes();
        let rd = report_data(key.public(), &manifest_digest(&manifest_bytes));
        let evidence = attester.evidence(&rd, gpu)?;
        let payload = AttestationPayload {
            manifest: manifest_bytes,
            evidence: evidence.clone(),
        }
        .encode()?;
        Ok(Enclave {
            key,
            payload,
            manifest,
            evidence,
            engine: Arc::new(engine),
            generations: Arc::new(tokio::sync::Semaphore::new(config.max_concurrent.max(1))),
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The evidence this enclave presents in every handshake.
    pub fn evidence(&self) -> &sotto_verify::Evidence {
        &self.evidence
    }

    pub fn static_public_key(&self) -> &[u8; 32] {
        self.key.public()
    }
}
