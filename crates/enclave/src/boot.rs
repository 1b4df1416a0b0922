//! Enclave start-up: model check, key, manifest, evidence, engine.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{fcntl_add_seals, memfd_create, MemfdFlags, SealFlags};
use sha2::{Digest, Sha256};
use sotto_attester::{Attester, GpuConfig, PlatformConfig};
use sotto_channel::binding::{manifest_digest, report_data, NONCE_LEN};
use sotto_channel::handshake::{AttestationPayload, StaticKey};
use sotto_channel::manifest::{EngineManifest, Manifest, ModelManifest, MANIFEST_FORMAT};
use sotto_engine::{BatchConfig, Batcher, Engine, EngineConfig};
use sotto_verify_core::UnixTime;

use crate::backend::Backend;
use crate::upstream::{LlamaServerConfig, Upstream, UpstreamError};

/// The engine as the manifest names it; the version pins the llama.cpp binding.
const ENGINE_NAME: &str = "llama.cpp (llama-cpp-2)";
/// `llama-server`, as the manifest names it (its version line and binary digest follow).
const LLAMA_SERVER_NAME: &str = "llama.cpp llama-server";
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
    #[error("cannot start llama-server: {0}")]
    Upstream(#[from] UpstreamError),
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
    /// Threads and context per conversation, for either engine.
    pub engine: EngineConfig,
    /// Conversations decoded together, and how many may wait for a place.
    pub batch: BatchConfig,
    /// Answer through this `llama-server` binary, started on the checked model, instead of the
    /// embedded engine.
    pub llama_server: Option<PathBuf>,
}

/// A booted enclave, ready to serve.
pub struct Enclave {
    pub(crate) key: StaticKey,
    attester: Attester,
    /// The GPU's evidence (bound to the static key at boot; the manifest commits to it).
    gpu: Option<sotto_verify::GpuEvidence>,
    manifest_bytes: Vec<u8>,
    pub(crate) manifest: Manifest,
    evidence: sotto_verify::Evidence,
    pub(crate) backend: Backend,
}

/// The model as hashed, copied into sealed anonymous memory (a Linux memfd) in the same pass.
///
/// The engine then loads this copy, never the file again: the bytes it runs are exactly the
/// bytes whose digest the manifest (and so the evidence) commits to. Loading the file by path
/// after hashing it would let whoever controls the disk (in a confidential VM: the host)
/// change the weights in between, or serve other blocks when the engine's mapping faults them
/// in later. The seals make the copy immutable, and it lives in the VM's encrypted memory.
pub struct SealedModel {
    file: File,
    /// SHA-256 of the bytes copied.
    pub digest: [u8; 32],
    /// Their length.
    pub size: u64,
}

impl SealedModel {
    /// Copies and hashes `path`, reporting progress as (done, total) bytes. With `inherit`,
    /// processes this one starts inherit the copy (an engine process it hands the model to);
    /// otherwise none do.
    pub fn copy_from(
        path: &Path,
        inherit: bool,
        progress: &mut dyn FnMut(u64, u64),
    ) -> std::io::Result<Self> {
        let mut src = File::open(path)?;
        let total = src.metadata()?.len();
        let flags = if inherit {
            MemfdFlags::ALLOW_SEALING
        } else {
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING
        };
        let fd = memfd_create("sotto-model", flags)?;
        let mut copy = File::from(fd);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut done = 0u64;
        loop {
            let n = src.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            copy.write_all(&buf[..n])?;
            done += n as u64;
            progress(done, total);
        }
        fcntl_add_seals(
            &copy,
            SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL,
        )?;
        Ok(SealedModel {
            file: copy,
            digest: hasher.finalize().into(),
            size: done,
        })
    }

    /// A path that opens the sealed copy, for an engine that loads models by path. Valid in
    /// this process while `self` lives, and in a child that inherited it.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }
}

impl Enclave {
    /// Boots the enclave. `progress` receives (step label, done, total) for long steps.
    pub fn boot(
        config: EnclaveConfig,
        now: UnixTime,
        progress: &mut dyn FnMut(&str, u64, u64),
    ) -> Result<Self, BootError> {
        let path = config.model_path.clone();
        let inherit = config.llama_server.is_some();
        let model = SealedModel::copy_from(&path, inherit, &mut |d, t| {
            progress("checking model", d, t);
        })
        .map_err(|source| BootError::ModelRead {
            path: path.clone(),
            source,
        })?;
        let (digest, size) = (model.digest, model.size);
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
        let model_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let context = config.engine.context_size.get();
        let (backend, engine) = match &config.llama_server {
            None => {
                let engine = Engine::load(&model.path(), &config.engine)?;
                let batcher = Batcher::start(Arc::new(engine), config.batch)?;
                let named = EngineManifest {
                    name: ENGINE_NAME.into(),
                    version: ENGINE_VERSION.into(),
                    context,
                };
                (Backend::Embedded(Arc::new(batcher)), named)
            }
            Some(binary) => {
                progress("starting llama-server", 0, 1);
                let server = LlamaServerConfig {
                    binary: binary.clone(),
                    threads: config.engine.threads,
                    context: config.engine.context_size,
                    parallel: config.batch.sequences,
                    queue: config.batch.queue,
                };
                let upstream = Upstream::start(&server, &model.path(), &model_name)?;
                let named = EngineManifest {
                    name: LLAMA_SERVER_NAME.into(),
                    version: upstream.version.clone(),
                    context,
                };
                (Backend::LlamaServer(Arc::new(upstream)), named)
            }
        };
        // The engine holds what it loaded (mapped or copied); the descriptor can go.
        drop(model);
        let key = StaticKey::generate()?;

        let gpu_nonce = sotto_verify::gpu_nonce(key.public());
        let gpu = attester.gpu_evidence(&gpu_nonce)?;
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            release: env!("CARGO_PKG_VERSION").to_string(),
            platform: attester.platform_name().to_string(),
            model: ModelManifest {
                name: model_name,
                sha256: hex::encode(digest),
                size,
            },
            engine,
            gpu_evidence_sha256: gpu
                .as_ref()
                .map(|g| hex::encode(sotto_verify::gpu_evidence_digest(g))),
        };
        let manifest_bytes = manifest.to_bytes();
        // Evidence over the all-zero nonce, made once: it shows what this enclave reports (its
        // measurement, the simulated root) and proves the attester works before serving.
        // Every handshake gets evidence of its own (`payload_for`).
        let rd = report_data(key.public(), &manifest_digest(&manifest_bytes), &[0; 32]);
        let evidence = attester.evidence(&rd, gpu.clone())?;
        Ok(Enclave {
            key,
            attester,
            gpu,
            manifest_bytes,
            manifest,
            evidence,
            backend,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// What the hardware measured this guest as at launch (SEV-SNP MEASUREMENT, TDX MRTD, or
    /// the simulated MEASUREMENT): the value its release publishes.
    pub fn launch_measurement(&self) -> &[u8; sotto_attester::MEASUREMENT_LEN] {
        self.attester.launch_measurement()
    }

    /// Evidence made at boot over the all-zero nonce, for showing what the enclave reports;
    /// handshakes never present it.
    pub fn evidence(&self) -> &sotto_verify::Evidence {
        &self.evidence
    }

    /// The attestation payload for one handshake: the manifest and fresh evidence whose
    /// REPORT_DATA commits to the static key, the manifest and the client's nonce. Blocks on
    /// the attester (a TSM report, or a simulated signature).
    pub fn payload_for(&self, nonce: &[u8; NONCE_LEN]) -> Result<Vec<u8>, BootError> {
        let rd = report_data(
            self.key.public(),
            &manifest_digest(&self.manifest_bytes),
            nonce,
        );
        let evidence = self.attester.evidence(&rd, self.gpu.clone())?;
        Ok(AttestationPayload {
            manifest: self.manifest_bytes.clone(),
            evidence,
        }
        .encode()?)
    }

    pub fn static_public_key(&self) -> &[u8; 32] {
        self.key.public()
    }
}

#[cfg(test)]
mod tests {
    use std::fs::{self, OpenOptions};

    use sha2::{Digest, Sha256};

    use super::SealedModel;

    #[test]
    fn the_sealed_copy_is_what_was_hashed_and_stays_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.gguf");
        let original: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&path, &original).unwrap();
        let mut seen = 0;
        let model = SealedModel::copy_from(&path, false, &mut |done, total| {
            assert_eq!(total, original.len() as u64);
            seen = done;
        })
        .unwrap();
        assert_eq!(seen, original.len() as u64);
        assert_eq!(model.size, original.len() as u64);
        assert_eq!(model.digest, <[u8; 32]>::from(Sha256::digest(&original)));
        assert_eq!(fs::read(model.path()).unwrap(), original);

        // Whoever controls the disk changes the file after the check: the copy is unaffected.
        fs::write(&path, b"other weights").unwrap();
        assert_eq!(fs::read(model.path()).unwrap(), original);
        // And the copy itself cannot be changed, by this process or anyone it is handed to.
        let err = OpenOptions::new()
            .write(true)
            .open(model.path())
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"x"));
        assert!(err.is_err(), "the sealed copy accepted a write");
    }
}
