//! `sotto enclave`: only the enclave, what runs inside the confidential VM: boot (hash the
//! model, open the attester, load the engine) and serve attested sessions to the relay.

use std::io::IsTerminal;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::ExitCode;

use super::AnyError;
use crate::stack::{self, EnclaveOptions, PlatformChoice};

#[derive(clap::Args)]
pub struct Args {
    /// Address the enclave accepts relay connections on.
    #[arg(long, default_value = "127.0.0.1:7000")]
    pub listen: String,
    /// Write the (unsigned) release statement of this simulated enclave here: its
    /// measurement, model and engine, for `sotto release sign` or `sotto server
    /// --dev-release` (development only).
    #[arg(long)]
    pub write_release: Option<PathBuf>,
    #[command(flatten)]
    pub enclave: EnclaveArgs,
}

/// How to boot an enclave, shared by `sotto enclave` and `sotto up`.
#[derive(clap::Args)]
pub struct EnclaveArgs {
    /// Where keys, logs, models and the simulated platform's chain live.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// A GGUF model to serve instead of the default Qwen2.5-Coder-0.5B-Instruct.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Refuse to start unless the model file has this SHA-256 (hex).
    #[arg(long, value_parser = super::parse_digest)]
    pub model_sha256: Option<[u8; 32]>,
    /// The attestation platform.
    #[arg(long, value_enum, default_value = "simulated")]
    pub platform: PlatformChoice,
    /// TDX collateral (JSON) fetched by the host, relayed with each quote.
    #[arg(long)]
    pub tdx_collateral: Option<PathBuf>,
    /// Also attest an NVIDIA GPU in confidential-computing mode (through NVML).
    #[arg(long)]
    pub gpu: bool,
    /// Inference threads (default: all cores).
    #[arg(long)]
    pub threads: Option<NonZeroU32>,
    /// Context window in tokens, for each conversation.
    #[arg(long, default_value = "4096")]
    pub context: NonZeroU32,
    /// Conversations decoded together in one batch (each holds a full context of cache).
    #[arg(long, default_value = "4")]
    pub parallel: NonZeroU32,
    /// Conversations that may wait for a place in the batch; past that the enclave answers
    /// "busy".
    #[arg(long, default_value = "64")]
    pub queue: usize,
    /// Answer through llama.cpp's llama-server (this binary), which the enclave starts on
    /// loopback on the checked copy of the model, instead of the embedded engine. The manifest
    /// names its version and binary digest.
    #[arg(long, value_name = "PATH")]
    pub llama_server: Option<PathBuf>,
}

impl EnclaveArgs {
    pub fn options(self) -> EnclaveOptions {
        EnclaveOptions {
            data_dir: self.data_dir.unwrap_or_else(crate::local::default_data_dir),
            model: self.model,
            model_sha256: self.model_sha256,
            platform: self.platform,
            tdx_collateral: self.tdx_collateral,
            gpu: self.gpu,
            threads: self.threads,
            context: self.context,
            batch: sotto_engine::BatchConfig {
                sequences: self.parallel,
                queue: self.queue,
            },
            llama_server: self.llama_server,
            progress: std::io::stderr().is_terminal(),
        }
    }
}

pub async fn run(args: Args) -> Result<ExitCode, AnyError> {
    let opts = args.enclave.options();
    stack::init_logging(&opts.data_dir)?;
    let enclave = tokio::task::spawn_blocking(move || stack::boot_enclave(opts)).await??;
    if let Some(path) = args.write_release {
        let measurement = stack::simulated_measurement(&enclave)
            .ok_or("--write-release describes a simulated enclave only")?;
        let release = crate::devlog::release_of(&crate::devlog::EnclaveRelease {
            manifest: enclave.manifest(),
            measurement: &measurement,
            web: None,
        });
        let text = sotto_release::Statement::Release(Box::new(release)).to_text()?;
        super::release::manifest::write_out(Some(&path), text.as_bytes())?;
    }
    let listener = stack::bind(&args.listen).await?;
    println!(
        "sotto enclave listening on {}",
        stack::local_addr(&listener)
    );
    sotto_enclave::serve(std::sync::Arc::new(enclave), listener).await?;
    Ok(ExitCode::SUCCESS)
}
