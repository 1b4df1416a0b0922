//! `sotto release`: what a release builder runs to describe, sign, publish and revoke a Sotto
//! release, to keep the log's witness cosignatures fresh, to write the trust configuration
//! clients pin, and to recompute the launch measurements a release lists. Each subcommand
//! lives in its own module; the formats and checks are in `sotto-release`, `sotto-log`,
//! `sotto-tlog` and `sotto-measure`.

pub mod keys;
pub mod manifest;
pub mod measure;
pub mod publish;
pub mod trust;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use sotto_tlog::note::TYPE_ED25519;

use super::AnyError;

#[derive(Clone, Copy, ValueEnum)]
pub enum KeyKind {
    /// A log's checkpoint key (its name is the log's origin).
    Log,
    /// A release key (k of n of them sign each release).
    Release,
}

#[derive(Subcommand)]
pub enum ReleaseCommand {
    /// Make a new signing key (Ed25519, in Go's note key format) and print its public vkey.
    Keygen {
        #[arg(long, value_enum)]
        kind: KeyKind,
        /// The key's name: the log's origin (e.g. `log.example.org/sotto`) or the signer's
        /// name (e.g. `release.example.org/alice`).
        #[arg(long)]
        name: String,
        /// Where to write the private key (mode 0600; never overwritten).
        #[arg(long)]
        key: PathBuf,
    },
    /// Write a release statement: the measurements, models, engine, web files and binaries
    /// of one release, as canonical JSON, for release keys to sign.
    Manifest(Box<manifest::ManifestArgs>),
    /// Add a release key's signature to a statement (or to a statement others have signed).
    Sign {
        /// The release key.
        #[arg(long)]
        key: PathBuf,
        /// Write the signed statement here (default: replace the input file).
        #[arg(long)]
        output: Option<PathBuf>,
        /// A statement, or a signed statement.
        input: PathBuf,
    },
    /// Append a signed statement (a release or a revocation) to a log directory and collect
    /// witness cosignatures on the new checkpoint.
    Publish(publish::PublishArgs),
    /// Write the revocation of a logged release, for release keys to sign and `publish`.
    Revoke(publish::RevokeArgs),
    /// Ask the witnesses to cosign the log's current checkpoint again, so that clients find
    /// fresh cosignatures; with --every, keep doing it.
    Refresh(publish::RefreshArgs),
    /// Write the trust configuration clients pin (`sotto chat --trust FILE`).
    Trust(trust::TrustArgs),
    /// Recompute a launch measurement from the images a release boots.
    Measure {
        #[command(subcommand)]
        command: measure::MeasureCommand,
    },
}

pub async fn run(command: ReleaseCommand) -> Result<ExitCode, AnyError> {
    match command {
        ReleaseCommand::Keygen { kind, name, key } => {
            let kind_byte = match kind {
                KeyKind::Log | KeyKind::Release => TYPE_ED25519,
            };
            let signer = keys::generate(&key, &name, kind_byte)?;
            println!("{}", signer.verifier().to_vkey());
            Ok(ExitCode::SUCCESS)
        }
        ReleaseCommand::Manifest(args) => manifest::run(*args),
        ReleaseCommand::Sign { key, output, input } => manifest::sign(&key, &input, output),
        ReleaseCommand::Publish(args) => publish::publish(args).await,
        ReleaseCommand::Revoke(args) => publish::revoke(args),
        ReleaseCommand::Refresh(args) => publish::refresh(args).await,
        ReleaseCommand::Trust(args) => trust::run(args),
        ReleaseCommand::Measure { command } => measure::run(command),
    }
}
