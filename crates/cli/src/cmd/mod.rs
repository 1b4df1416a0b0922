//! One module per `sotto` command, each owning its arguments and its `run`. The work itself is
//! in the library modules beside this one and in the Sotto crates; a command parses, calls and
//! prints. The development stack's commands (`up`, `enclave`, `server`, `model`) exist only
//! with the `stack` feature, so the user's client builds without llama.cpp, PostgreSQL or the
//! server; `hop`, with the `hop` feature.

pub mod account;
pub mod chat;
pub mod enclave_args;
pub mod history;
pub mod release;
pub mod verify;
pub mod witness;

#[cfg(feature = "stack")]
pub mod enclave;
#[cfg(feature = "hop")]
pub mod hop;
#[cfg(feature = "stack")]
pub mod model;
#[cfg(feature = "proxy")]
pub mod proxy;
#[cfg(feature = "stack")]
pub mod server;
#[cfg(feature = "stack")]
pub mod up;

use std::path::PathBuf;

use clap::Args;

pub type AnyError = Box<dyn std::error::Error>;

/// Where this device keeps its account state, for the commands that use it.
#[derive(Args)]
pub struct ProfileArgs {
    /// Where this device's passkey, session and ledger are kept (default: ~/.config/sotto).
    /// A passphrase in SOTTO_PASSPHRASE seals the passkey file.
    #[arg(long, env = "SOTTO_CONFIG_DIR", global = true)]
    pub config_dir: Option<PathBuf>,
}

impl ProfileArgs {
    pub fn profile(&self) -> crate::local::Profile {
        crate::local::Profile::new(self.config_dir.clone())
    }
}

/// A SHA-256 digest given as 64 hex digits.
pub fn parse_digest(s: &str) -> Result<[u8; 32], String> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut out).map_err(|_| "expected 64 hex digits".to_string())?;
    Ok(out)
}

/// A launch measurement (SHA-384) given as 96 hex digits.
pub fn parse_measurement(s: &str) -> Result<[u8; 48], String> {
    let mut out = [0u8; 48];
    hex::decode_to_slice(s.trim(), &mut out).map_err(|_| "expected 96 hex digits".to_string())?;
    Ok(out)
}
