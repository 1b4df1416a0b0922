//! Measures the engine the way llama.cpp's `llama-bench` measures llama.cpp (see
//! `sotto_engine::bench`), for `bench/engine-vs-llamacpp.sh`.
//!
//! Usage: `bench MODEL.gguf [--threads T] [--pp 128] [--tg 64] [--reps 3]`
//! Prints a human line per test and a final `RESULT {json}` line for scripts.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::ExitCode;

use sotto_engine::{Engine, EngineConfig};

struct Args {
    model: PathBuf,
    threads: Option<NonZeroU32>,
    pp: u32,
    tg: u32,
    reps: u32,
}

fn parse() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut model = None;
    let (mut threads, mut pp, mut tg, mut reps) = (None, 128, 64, 3);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<u32, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--threads" | "-t" => threads = NonZeroU32::new(number("--threads")?),
            "--pp" | "-p" => pp = number("--pp")?,
            "--tg" | "-n" => tg = number("--tg")?,
            "--reps" | "-r" => reps = number("--reps")?,
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            path => model = Some(PathBuf::from(path)),
        }
    }
    Ok(Args {
        model: model.ok_or("usage: bench MODEL.gguf [--threads T] [--pp N] [--tg N] [--reps N]")?,
        threads,
        pp,
        tg,
        reps,
    })
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut cfg = EngineConfig::default();
    if let Some(t) = args.threads {
        cfg.threads = t;
    }
    let engine = match Engine::load(&args.model, &cfg) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let report = match engine.bench(args.pp, args.tg, args.reps) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let (pp, pp_sd) = report.prompt_tokens_per_second();
    let (tg, tg_sd) = report.gen_tokens_per_second();
    println!("sotto-engine threads={} reps={}", cfg.threads, args.reps);
    println!("pp{}: {pp:.2} ± {pp_sd:.2} tok/s", args.pp);
    println!("tg{}: {tg:.2} ± {tg_sd:.2} tok/s", args.tg);
    println!(
        "RESULT {{\"pp\":{},\"tg\":{},\"pp_ts\":{pp:.3},\"pp_sd\":{pp_sd:.3},\"tg_ts\":{tg:.3},\"tg_sd\":{tg_sd:.3}}}",
        args.pp, args.tg
    );
    ExitCode::SUCCESS
}
