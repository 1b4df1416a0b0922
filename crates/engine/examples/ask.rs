//! Asks a model one question through the engine's chat path (template, sampling, streaming)
//! and prints the streamed answer and the generation statistics.
//!
//! Usage: `ask MODEL.gguf "question" [--threads T] [--max-tokens N]` (greedy decoding).

use std::io::Write;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::ExitCode;

use sotto_engine::{ChatMessage, Engine, EngineConfig, GenParams, Role};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut cfg = EngineConfig::default();
    let mut max_tokens = 256;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--threads" => match args
                .next()
                .and_then(|v| v.parse().ok())
                .and_then(NonZeroU32::new)
            {
                Some(t) => cfg.threads = t,
                None => return usage(),
            },
            "--max-tokens" => match args.next().and_then(|v| v.parse().ok()) {
                Some(n) => max_tokens = n,
                None => return usage(),
            },
            _ => positional.push(arg),
        }
    }
    let [model, question] = positional.as_slice() else {
        return usage();
    };
    let engine = match Engine::load(&PathBuf::from(model), &cfg) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let messages = [ChatMessage::new(Role::User, question.as_str())];
    let mut out = std::io::stdout();
    let result = engine.generate(&messages, &GenParams::greedy(max_tokens), &mut |piece| {
        out.write_all(piece.as_bytes()).is_ok() && out.flush().is_ok()
    });
    println!();
    match result {
        Ok(stats) => {
            eprintln!("{stats:?}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: ask MODEL.gguf QUESTION [--threads T] [--max-tokens N]");
    ExitCode::from(2)
}
