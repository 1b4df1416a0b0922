//! Writes the tiny generated test model (see `sotto_testkit::gguf`) to the path given, so tests
//! outside Rust (the browser end-to-end test) run the real stack without a downloaded model.
//!
//! `cargo run -p sotto-testkit --example tiny_model -- OUT.gguf [SEED [LAYERS]]`

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(path) = args.next().map(PathBuf::from) else {
        eprintln!("usage: tiny_model OUT.gguf [SEED [LAYERS]]");
        return ExitCode::from(2);
    };
    let mut number =
        |name: &str, default: u64| match args.next().map(|s| s.to_string_lossy().parse::<u64>()) {
            None => Ok(default),
            Some(Ok(n)) => Ok(n),
            Some(Err(e)) => Err(format!("tiny_model: {name} must be a whole number: {e}")),
        };
    let (seed, layers) = match (number("SEED", 7), number("LAYERS", 2)) {
        (Ok(seed), Ok(layers)) => (seed, layers),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let model = sotto_testkit::TinyQwen2 {
        layers: u32::try_from(layers).unwrap_or(u32::MAX).max(1),
        ..sotto_testkit::TinyQwen2::new(seed)
    };
    match std::fs::write(&path, model.to_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tiny_model: cannot write {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}
