//! `sotto`: the command-line face of Sotto. Each command lives in its own module under
//! `sotto::cmd`; this file lists them, runs the chosen one and turns every error into one
//! readable line (escaped: an error may quote what a server sent).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sotto::cmd;

#[derive(Parser)]
#[command(
    name = "sotto",
    version,
    about = "End-to-end encrypted chat with an attested open-weight model"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole stack on this machine: untrusted server + enclave (simulated platform) +
    /// the default model, fetched on first run.
    #[cfg(feature = "stack")]
    Up(cmd::up::Args),
    /// Run only the enclave (what runs inside the confidential VM).
    #[cfg(feature = "stack")]
    Enclave(cmd::enclave::Args),
    /// Run only the untrusted server (relay, collateral, health), in front of an enclave.
    #[cfg(feature = "stack")]
    Server(cmd::server::Args),
    /// Your account: passkeys (a software passkey in your config directory), recovery code.
    Account(cmd::account::Args),
    /// Your saved conversations, decrypted on this machine.
    History(cmd::history::Args),
    /// Chat with the model: verifies the enclave, then sends the conversation encrypted.
    Chat(cmd::chat::Args),
    /// Verify things offline.
    Verify {
        #[command(subcommand)]
        command: cmd::verify::VerifyCommand,
    },
    /// Describe, sign, publish and revoke releases; recompute launch measurements.
    Release {
        #[command(subcommand)]
        command: cmd::release::ReleaseCommand,
    },
    /// A local OpenAI-compatible API (`http://127.0.0.1:8000/v1`) that verifies the enclave on
    /// every request before it forwards anything.
    #[cfg(feature = "proxy")]
    Proxy(cmd::proxy::Args),
    /// Run an independent hop in front of a server: clients chatting through it (`chat
    /// --via`) show the server the hop's address, not theirs.
    #[cfg(feature = "hop")]
    Hop(cmd::hop::Args),
    /// Run a transparency-log witness (C2SP tlog-witness): anyone can, for any log.
    Witness {
        #[command(subcommand)]
        command: cmd::witness::WitnessCommand,
    },
    /// Manage the default model.
    #[cfg(feature = "stack")]
    Model {
        #[command(subcommand)]
        command: cmd::model::ModelCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sotto: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sotto: {}", sotto::term::one_line(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<ExitCode, cmd::AnyError> {
    match command {
        #[cfg(feature = "stack")]
        Command::Up(args) => cmd::up::run(args).await,
        #[cfg(feature = "stack")]
        Command::Enclave(args) => cmd::enclave::run(args).await,
        #[cfg(feature = "stack")]
        Command::Server(args) => cmd::server::run(args).await,
        Command::Account(args) => cmd::account::run(args).await,
        Command::History(args) => cmd::history::run(args).await,
        Command::Chat(args) => cmd::chat::run(args).await,
        Command::Verify { command } => cmd::verify::run(command).await,
        Command::Release { command } => cmd::release::run(command).await,
        Command::Witness { command } => cmd::witness::run(command).await,
        #[cfg(feature = "hop")]
        Command::Hop(args) => cmd::hop::run(args).await,
        #[cfg(feature = "proxy")]
        Command::Proxy(args) => cmd::proxy::run(args).await,
        #[cfg(feature = "stack")]
        Command::Model { command } => cmd::model::run(command).await,
    }
}
