//! `sotto verify`: checks that need no account: raw TEE evidence offline ([`evidence`]), and
//! the web client a server serves against the release log ([`web`]).

pub mod evidence;
pub mod web;

use std::process::ExitCode;

use clap::Subcommand;

use super::AnyError;

#[derive(Subcommand)]
pub enum VerifyCommand {
    /// Verify raw TEE evidence (SEV-SNP report, TDX quote, NVIDIA GPU report) against the
    /// vendors' pinned roots. Prints the verdict as JSON; exit 0 accepted, 1 refused, 2 bad input.
    Evidence(Box<evidence::VerifyEvidenceArgs>),
    /// Check that the web client a server serves is exactly the files of a logged, unrevoked
    /// release (exit 1 naming the first file that differs).
    Web(web::VerifyWebArgs),
}

pub async fn run(command: VerifyCommand) -> Result<ExitCode, AnyError> {
    match command {
        VerifyCommand::Evidence(args) => Ok(evidence::run(&args)),
        VerifyCommand::Web(args) => web::run(args).await,
    }
}
