//! Many conversations at once, for `bench/batching.sh`: aggregate generated tokens per second
//! and time to first token (p50, p99) with N conversations started together, answered either
//! on a context each (`Engine::generate` on N threads, how the enclave ran before batching) or
//! by one `Batcher` decoding them together.
//!
//! Usage: `concurrency MODEL.gguf [--threads T] [--tokens 64] [--context 4096]
//! [--conversations 1,4,8,16] [--mode separate|batched|both]`
//! Prints a human line per run and a final `RESULT {json}` line for scripts. The prompts are
//! fixed and the decoding greedy, so both ways generate the same tokens.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use sotto_engine::{
    BatchConfig, Batcher, ChatMessage, Engine, EngineConfig, EngineError, GenParams, GenStats,
    Offer, Role, Sink,
};
use zeroize::Zeroizing;

const TOPICS: [&str; 16] = [
    "a lighthouse keeper",
    "a river delta",
    "a clockmaker",
    "a mountain pass",
    "a night market",
    "an old library",
    "a salt mine",
    "a glass blower",
    "a winter harbour",
    "a desert observatory",
    "a violin maker",
    "a ferry crossing",
    "a beekeeper",
    "a paper mill",
    "a tram depot",
    "a kelp forest",
];

/// The prompt of conversation `i`: the bench's prompts, shared with `bench/batching.sh`'s
/// llama-server client.
fn prompt(i: usize) -> String {
    format!(
        "Write a long, detailed story about {}. Do not stop early.",
        TOPICS[i % TOPICS.len()]
    )
}

struct Args {
    model: PathBuf,
    threads: Option<NonZeroU32>,
    tokens: u32,
    context: NonZeroU32,
    conversations: Vec<usize>,
    separate: bool,
    batched: bool,
}

fn parse() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        model: PathBuf::new(),
        threads: None,
        tokens: 64,
        context: NonZeroU32::new(4096).ok_or("context")?,
        conversations: vec![1, 4, 8, 16],
        separate: true,
        batched: true,
    };
    let mut model = None;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let number = |v: String, name: &str| -> Result<u32, String> {
            v.parse().map_err(|_| format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--threads" => parsed.threads = NonZeroU32::new(number(value(&arg)?, &arg)?),
            "--tokens" => parsed.tokens = number(value(&arg)?, &arg)?.max(1),
            "--context" => {
                parsed.context =
                    NonZeroU32::new(number(value(&arg)?, &arg)?).ok_or("--context must be > 0")?
            }
            "--conversations" => {
                parsed.conversations = value(&arg)?
                    .split(',')
                    .map(|n| n.trim().parse().map_err(|_| format!("bad count {n}")))
                    .collect::<Result<_, _>>()?;
                if parsed.conversations.contains(&0) {
                    return Err("--conversations must be positive".into());
                }
            }
            "--mode" => match value(&arg)?.as_str() {
                "separate" => parsed.batched = false,
                "batched" => parsed.separate = false,
                "both" => {}
                other => return Err(format!("unknown mode {other}")),
            },
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            path => model = Some(PathBuf::from(path)),
        }
    }
    parsed.model = model.ok_or("usage: concurrency MODEL.gguf [options]")?;
    Ok(parsed)
}

fn conversation(i: usize) -> Vec<ChatMessage> {
    vec![ChatMessage::new(Role::User, prompt(i))]
}

/// One run: every conversation's stats and the wall time from the first start to the last end.
struct Run {
    stats: Vec<GenStats>,
    wall: Duration,
}

impl Run {
    fn tokens_per_second(&self) -> f64 {
        let tokens: usize = self.stats.iter().map(|s| s.generated_tokens).sum();
        tokens as f64 / self.wall.as_secs_f64()
    }

    /// The `q` quantile (nearest rank) of time to first token, in milliseconds.
    fn ttft_ms(&self, q: f64) -> f64 {
        let mut t: Vec<f64> = self
            .stats
            .iter()
            .map(|s| s.time_to_first_token.as_secs_f64() * 1e3)
            .collect();
        t.sort_by(f64::total_cmp);
        let rank = ((q * t.len() as f64).ceil() as usize).clamp(1, t.len());
        t[rank - 1]
    }
}

fn separate(engine: &Engine, n: usize, params: &GenParams) -> Result<Run, EngineError> {
    let started = Instant::now();
    let stats = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| s.spawn(move || engine.generate(&conversation(i), params, &mut |_| true)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(EngineError::Internal)))
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(Run {
        stats,
        wall: started.elapsed(),
    })
}

/// Takes every piece at once and reports the end.
struct Collect(mpsc::Sender<Result<GenStats, EngineError>>);

impl Sink for Collect {
    fn offer(&mut self, _piece: Zeroizing<String>) -> Offer {
        Offer::Taken
    }
    fn finish(&mut self, result: Result<GenStats, EngineError>) {
        let _ = self.0.send(result);
    }
}

fn batched(engine: &Arc<Engine>, n: usize, params: &GenParams) -> Result<Run, EngineError> {
    let config = BatchConfig {
        sequences: NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX))
            .ok_or(EngineError::Busy)?,
        queue: n,
    };
    let batcher = Batcher::start(engine.clone(), config)?;
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    for i in 0..n {
        batcher.submit(&conversation(i), params, Box::new(Collect(tx.clone())))?;
    }
    drop(tx);
    let stats = rx.iter().collect::<Result<Vec<_>, _>>()?;
    Ok(Run {
        stats,
        wall: started.elapsed(),
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
    let mut config = EngineConfig {
        context_size: args.context,
        ..EngineConfig::default()
    };
    if let Some(t) = args.threads {
        config.threads = t;
    }
    let engine = match Engine::load(&args.model, &config) {
        Ok(e) => Arc::new(e),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let params = GenParams::greedy(args.tokens);
    let mut rows = Vec::new();
    for &n in &args.conversations {
        let modes = [("separate", args.separate), ("batched", args.batched)];
        for (mode, wanted) in modes {
            if !wanted {
                continue;
            }
            let run = match mode {
                "separate" => separate(&engine, n, &params),
                _ => batched(&engine, n, &params),
            };
            let run = match run {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("{mode} with {n} conversations: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let (tps, p50, p99) = (run.tokens_per_second(), run.ttft_ms(0.5), run.ttft_ms(0.99));
            let tokens: usize = run.stats.iter().map(|s| s.generated_tokens).sum();
            println!(
                "{mode:>8} n={n:<3} {tokens:>5} tokens in {:>7.2} s: {tps:>7.1} tok/s, TTFT p50 {p50:>7.0} ms, p99 {p99:>7.0} ms",
                run.wall.as_secs_f64()
            );
            rows.push(format!(
                r#"{{"mode":"{mode}","n":{n},"tokens":{tokens},"wall_s":{:.3},"tok_s":{tps:.2},"ttft_p50_ms":{p50:.1},"ttft_p99_ms":{p99:.1}}}"#,
                run.wall.as_secs_f64()
            ));
        }
    }
    println!("RESULT [{}]", rows.join(","));
    ExitCode::SUCCESS
}
