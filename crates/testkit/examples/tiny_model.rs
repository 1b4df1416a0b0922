//! Writes the tiny generated test model (see `sotto_testkit::gguf`) to the path given, so tests
//! outside Rust (the browser end-to-end test) run the real stack without a downloaded model.
//!
//! `cargo run -p sotto-testkit --example tiny_model -- OUT.gguf [SEED]`

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(path) = args.next().map(PathBuf::from) else {
        eprintln!("usage: tiny_model OUT.gguf [SEED]");
        return ExitCode::from(2);
    };
    let seed = match args.next().map(|s| s.to_string_lossy().parse::<u64>()) {
        None => 7,
        Some(Ok(seed)) => seed,
        Some(Err(e)) => {
            eprintln!("tiny_model: SEED must be a whole number: {e}");
            return ExitCode::from(2);
        }
    };
    match sotto_testkit::write_tiny_qwen2_gguf(&path, seed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tiny_model: cannot write {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}
