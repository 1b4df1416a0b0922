//! `sotto up`, `sotto enclave`, `sotto server`: the processes of a Sotto deployment, and the
//! whole stack on one machine (untrusted server + simulated-platform enclave) for local use.

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressStyle};
use sotto_attester::{GpuConfig, PlatformConfig};
use sotto_enclave::{Enclave, EnclaveConfig};
use sotto_engine::EngineConfig;
use sotto_server::ServerConfig;
use tokio::net::TcpListener;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::local::SIMULATED_ROOT_FILE;

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Model(#[from] crate::model_fetch::FetchError),
    #[error("{0}")]
    Boot(#[from] sotto_enclave::BootError),
    #[error("the enclave task failed: {0}")]
    Join(String),
    #[error("{0}")]
    Config(#[from] sotto_server::ConfigError),
    #[error("cannot open the account store {spec}: {source}")]
    Store {
        spec: String,
        source: sotto_store::StoreError,
    },
}

fn ensure_dir(path: &Path) -> Result<(), StackError> {
    std::fs::create_dir_all(path).map_err(|source| StackError::DataDir {
        path: path.to_path_buf(),
        source,
    })
}

/// Logs go to `<data_dir>/logs/sotto.log` as JSON lines and to stderr. No code in the server or
/// enclave hands payload bytes to a log macro; the canary tests read both sinks to prove it.
pub fn init_logging(data_dir: &Path) -> Result<(), StackError> {
    let logs = data_dir.join("logs");
    ensure_dir(&logs)?;
    let path = logs.join("sotto.log");
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|source| StackError::DataDir {
            path: path.clone(),
            source,
        })?;
    let filter = || EnvFilter::try_from_env("SOTTO_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let file_layer = tracing_subscriber::fmt::layer()
        .json()
        .with_writer(Mutex::new(file))
        .with_filter(filter());
    let stderr_layer = tracing_subscriber::fmt::layer()
        .compact()
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_filter(filter());
    // A second initialisation (tests running several stacks) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(file_layer)
        .with(stderr_layer)
        .try_init();
    Ok(())
}

pub struct EnclaveOptions {
    pub data_dir: PathBuf,
    pub model: Option<PathBuf>,
    pub model_sha256: Option<[u8; 32]>,
    pub platform: PlatformChoice,
    pub tdx_collateral: Option<PathBuf>,
    pub gpu: bool,
    pub threads: Option<NonZeroU32>,
    pub context: NonZeroU32,
    pub batch: sotto_engine::BatchConfig,
    pub llama_server: Option<PathBuf>,
    pub progress: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PlatformChoice {
    /// A locally generated P-384 chain standing in for AMD's (development only; clients
    /// refuse it unless run with --insecure-simulated).
    Simulated,
    /// AMD SEV-SNP through the kernel's configfs-tsm interface.
    SevSnp,
    /// Intel TDX through the kernel's configfs-tsm interface.
    Tdx,
}

fn bar(progress: bool) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(0);
    pb.set_style(
        ProgressStyle::with_template("{msg:>16} [{bar:32}] {bytes}/{total_bytes} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb
}

/// Boots an enclave: fetches the default model if none was given, checks it, attests.
pub fn boot_enclave(opts: EnclaveOptions) -> Result<Enclave, StackError> {
    ensure_dir(&opts.data_dir)?;
    let (model_path, model_sha256) = match opts.model {
        Some(p) => (p, opts.model_sha256),
        None => {
            let path = crate::model_fetch::ensure_default_model(&opts.data_dir, opts.progress)?;
            (
                path,
                Some(crate::model_fetch::Expected::default_model().sha256),
            )
        }
    };
    let platform = match opts.platform {
        PlatformChoice::Simulated => PlatformConfig::Simulated {
            data_dir: opts.data_dir.clone(),
            measurement_input: format!("sotto-enclave {}", env!("CARGO_PKG_VERSION")).into_bytes(),
        },
        PlatformChoice::SevSnp => PlatformConfig::sev_snp(),
        PlatformChoice::Tdx => PlatformConfig::tdx(opts.tdx_collateral),
    };
    let mut engine = EngineConfig::default();
    if let Some(t) = opts.threads {
        engine.threads = t;
    }
    engine.context_size = opts.context;
    let config = EnclaveConfig {
        model_path,
        model_sha256,
        platform,
        gpu: if opts.gpu {
            GpuConfig::Nvidia
        } else {
            GpuConfig::None
        },
        engine,
        batch: opts.batch,
        llama_server: opts.llama_server,
    };
    let data_dir = opts.data_dir.clone();
    let pb = bar(opts.progress);
    let enclave = Enclave::boot(config, crate::client::now(), &mut |step, done, total| {
        pb.set_message(step.to_string());
        pb.set_length(total);
        pb.set_position(done);
    })?;
    pb.finish_and_clear();
    if let sotto_verify::CpuEvidence::Simulated { chain_der, .. } = &enclave.evidence().cpu {
        if let Some(root) = chain_der.last() {
            let dir = data_dir.join("collateral");
            ensure_dir(&dir)?;
            let path = dir.join(SIMULATED_ROOT_FILE);
            std::fs::write(&path, root).map_err(|source| StackError::DataDir { path, source })?;
        }
    }
    Ok(enclave)
}

/// The launch measurement (hex) of an enclave on the simulated platform, for the development
/// release log that lists it; `None` on real hardware, whose releases are published offline.
pub fn simulated_measurement(enclave: &Enclave) -> Option<String> {
    (enclave.manifest().platform == "simulated").then(|| hex::encode(enclave.launch_measurement()))
}

pub async fn bind(addr: &str) -> Result<TcpListener, StackError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StackError::Listen {
            addr: addr.to_string(),
            source,
        })
}

/// Runs the enclave on `listener` until the process ends.
pub fn spawn_enclave(
    enclave: Enclave,
    listener: TcpListener,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    tokio::spawn(sotto_enclave::serve(Arc::new(enclave), listener))
}

/// Serves with the server's connection limits and timeouts (`sotto_server::serve`).
pub async fn run_server(listener: TcpListener, config: ServerConfig) -> Result<(), StackError> {
    Ok(sotto_server::serve(listener, config).await?)
}

/// Where accounts live unless told otherwise: a SQLite file in the data directory.
pub fn default_store(data_dir: &Path) -> String {
    format!("sqlite:{}", data_dir.join("accounts.sqlite").display())
}

/// The accounts half of the server: the store, and the WebAuthn relying party.
pub async fn accounts_config(
    store: &str,
    rp_id: &str,
    origin: &str,
) -> Result<sotto_server::AccountsConfig, StackError> {
    let opened = sotto_store::open(store)
        .await
        .map_err(|source| StackError::Store {
            spec: redact_url(store),
            source,
        })?;
    let mut config = sotto_server::AccountsConfig::new(opened, rp_id, origin);
    config.any_port = rp_id == "localhost";
    Ok(config)
}

/// A store spec without its password, for messages.
fn redact_url(spec: &str) -> String {
    match (spec.find("://"), spec.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &spec[..s], &spec[at + 1..]),
        _ => spec.to_owned(),
    }
}

/// The address a listener is bound to, for printing.
pub fn local_addr(listener: &TcpListener) -> SocketAddr {
    listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
}
