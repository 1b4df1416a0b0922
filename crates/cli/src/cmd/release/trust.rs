//! `sotto release trust`: the trust configuration clients pin for a deployment (its log key,
//! witnesses and release keys with their quorums, and how fresh cosignatures must be).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use sotto_release::trust::{LogPin, Quorum, TrustFile, TRUST_FORMAT};
use sotto_release::Trust;

use super::manifest::write_out;
use super::{keys, AnyError};

#[derive(Args)]
pub struct TrustArgs {
    /// The log's vkey (its name is the log's origin).
    #[arg(long)]
    pub log_vkey: String,
    /// A witness's cosignature vkey (repeatable).
    #[arg(long = "witness-vkey", required = true)]
    pub witnesses: Vec<String>,
    /// How many of the witnesses must have cosigned (default: all).
    #[arg(long)]
    pub witness_quorum: Option<usize>,
    /// A release key's vkey (repeatable).
    #[arg(long = "release-vkey", required = true)]
    pub release_keys: Vec<String>,
    /// How many release keys must have signed a release (default: all).
    #[arg(long)]
    pub release_quorum: Option<usize>,
    /// How old a witness cosignature may be.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "24h")]
    pub max_cosignature_age: Duration,
    /// A development configuration (its log's origin starts with dev.sotto.invalid/).
    #[arg(long)]
    pub dev: bool,
    /// Write it here (default: standard output).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// The trust file for a log, its witnesses and its release keys.
pub fn trust_file(
    log: &sotto_tlog::note::Verifier,
    witnesses: Vec<String>,
    witness_quorum: usize,
    release_keys: Vec<String>,
    release_quorum: usize,
    max_age: Duration,
    dev: bool,
) -> Result<Trust, AnyError> {
    Ok(Trust::from_file(TrustFile {
        format: TRUST_FORMAT.into(),
        dev,
        log: LogPin {
            origin: log.name().to_string(),
            vkey: log.to_vkey(),
        },
        witnesses: Quorum {
            quorum: witness_quorum,
            keys: witnesses,
        },
        release_keys: Quorum {
            quorum: release_quorum,
            keys: release_keys,
        },
        max_cosignature_age_secs: max_age.as_secs(),
    })?)
}

pub fn run(args: TrustArgs) -> Result<ExitCode, AnyError> {
    let log = keys::vkey(&args.log_vkey)?;
    let wq = args.witness_quorum.unwrap_or(args.witnesses.len());
    let rq = args.release_quorum.unwrap_or(args.release_keys.len());
    let trust = trust_file(
        &log,
        args.witnesses,
        wq,
        args.release_keys,
        rq,
        args.max_cosignature_age,
        args.dev,
    )?;
    let mut json = trust.to_json();
    json.push('\n');
    write_out(args.output.as_deref(), json.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
