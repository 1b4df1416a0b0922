//! `sotto witness`: run a C2SP tlog-witness (sotto-witness) for one or more logs.
//!
//! Thin: key files, log lists and the listener are set up here, everything else is in
//! `sotto-witness`. Trust: the arguments and files named are the operator's; the key file is
//! a secret and is never printed (only its public vkey is).

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use sotto_witness::{keys, KnownLogs, WitnessConfig, WitnessService};

#[derive(Subcommand)]
pub enum WitnessCommand {
    /// Make a new witness key (cosignature/v1, Ed25519) and print its public vkey.
    ///
    /// The key is written to FILE with mode 0600; an existing file is never overwritten.
    Keygen {
        /// The witness's name: a schema-less URL such as `witness.example.com/w1`.
        #[arg(long)]
        name: String,
        /// Where to write the private key.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Print the public vkey of a witness key, for the log clients that pin it.
    Vkey {
        /// The private key written by `sotto witness keygen`.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Serve `POST /add-checkpoint` and `GET /<origin hash>/checkpoint` (c2sp.org/tlog-witness).
    ///
    /// Every cosigned checkpoint is recorded in the state file before it is answered; a
    /// corrupt state file stops the witness rather than letting a log roll it back.
    Serve {
        /// The address to listen on, e.g. 127.0.0.1:7380.
        #[arg(long, value_name = "ADDR")]
        listen: String,
        /// The witness's private key.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The state file (created when missing; locked while serving).
        #[arg(long, value_name = "FILE")]
        state: PathBuf,
        /// A log to witness, as its Ed25519 note vkey; its name must be the log's origin.
        /// Repeat for several logs.
        #[arg(long = "log", value_name = "VKEY")]
        logs: Vec<String>,
        /// A file of log vkeys, one a line (blank lines and `#` comments are skipped).
        #[arg(long = "logs", value_name = "FILE")]
        logs_file: Option<PathBuf>,
    },
}

use super::AnyError;

pub async fn run(command: WitnessCommand) -> Result<ExitCode, AnyError> {
    match command {
        WitnessCommand::Keygen { name, key } => {
            let signer = keys::generate(&name)?;
            keys::write_key(&key, &signer)?;
            eprintln!("wrote the witness key to {}", key.display());
            println!("{}", signer.verifier().to_vkey());
            Ok(ExitCode::SUCCESS)
        }
        WitnessCommand::Vkey { key } => {
            println!("{}", keys::read_key(&key)?.verifier().to_vkey());
            Ok(ExitCode::SUCCESS)
        }
        WitnessCommand::Serve {
            listen,
            key,
            state,
            logs,
            logs_file,
        } => serve(&listen, &key, state, &logs, logs_file.as_deref()).await,
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Another subscriber may already be set (tests, embedding): keep it.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

async fn serve(
    listen: &str,
    key: &Path,
    state: PathBuf,
    vkeys: &[String],
    logs_file: Option<&Path>,
) -> Result<ExitCode, AnyError> {
    let signer = keys::read_key(key)?;
    let mut logs = KnownLogs::from_vkeys(vkeys)?;
    if let Some(path) = logs_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the log list {}: {e}", path.display()))?;
        let listed = KnownLogs::parse_list(&text)
            .map_err(|e| format!("in the log list {}: {e}", path.display()))?;
        logs.extend(listed);
    }
    if logs.is_empty() {
        return Err("no log to witness: give --log VKEY or --logs FILE".into());
    }
    init_logging();
    let service = WitnessService::open(WitnessConfig::new(signer, logs.clone(), state))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    println!("sotto witness listening on http://{addr}");
    println!("witness vkey: {}", service.verifier().to_vkey());
    for origin in logs.origins() {
        println!("witnessing: {origin}");
    }
    service
        .serve_until(listener, async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
        .await?;
    Ok(ExitCode::SUCCESS)
}
