//! The price of the promise: the full encrypted path (client -> WebSocket relay -> Noise ->
//! enclave) against the same engine called in-process, the latency of opening a verified
//! channel, and what the release-log check adds to it (cold: a client that has never seen the
//! log; warm: one that has). Used by `bench/e2e.sh`; numbers go to docs/BENCHMARKS.md.
//!
//! Usage: `bench_e2e MODEL.gguf [--threads T] [--tokens 64] [--reps 5] [--handshakes 20]`

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sotto::client::{now, Connection};
use sotto::stack::{self, EnclaveOptions, PlatformChoice};
use sotto_channel::binding::{manifest_digest, report_data};
use sotto_channel::handshake::Expectations;
use sotto_channel::messages::{GenParams, Role, WireMessage};
use sotto_engine::{ChatMessage, Engine, EngineConfig};
use sotto_server::ServerConfig;
use zeroize::Zeroizing;

const PROMPT: &str =
    "Write a short story about a lighthouse keeper who finds a message in a bottle.";

struct Args {
    model: PathBuf,
    threads: NonZeroU32,
    tokens: u32,
    reps: usize,
    handshakes: usize,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut args = Args {
        model: PathBuf::new(),
        threads: NonZeroU32::MIN,
        tokens: 64,
        reps: 5,
        handshakes: 20,
    };
    let mut model = None;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    args.threads = NonZeroU32::new(cores).unwrap_or(NonZeroU32::MIN);
    while let Some(a) = it.next() {
        let mut num = |name: &str| {
            it.next()
                .and_then(|v| v.parse::<u32>().ok())
                .ok_or(format!("{name} needs a number"))
        };
        match a.as_str() {
            "--threads" => {
                args.threads = NonZeroU32::new(num("--threads")?).ok_or("threads must be > 0")?
            }
            "--tokens" => args.tokens = num("--tokens")?,
            "--reps" => args.reps = num("--reps")? as usize,
            "--handshakes" => args.handshakes = num("--handshakes")? as usize,
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            path => model = Some(PathBuf::from(path)),
        }
    }
    args.model = model.ok_or(
        "usage: bench_e2e MODEL.gguf [--threads T] [--tokens N] [--reps R] [--handshakes H]",
    )?;
    Ok(args)
}

/// Time to first token and decode rate (tokens after the first / time after the first).
#[derive(Clone, Copy)]
struct Run {
    ttft: Duration,
    tok_per_s: f64,
}

fn measure(started: Instant, first: Option<Instant>, end: Instant, pieces: usize) -> Run {
    let first = first.unwrap_or(end);
    let rest = end.duration_since(first).as_secs_f64();
    Run {
        ttft: first.duration_since(started),
        tok_per_s: if rest > 0.0 {
            (pieces.saturating_sub(1)) as f64 / rest
        } else {
            0.0
        },
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse()?;
    let data = tempfile::tempdir()?;
    let opts = EnclaveOptions {
        data_dir: data.path().to_path_buf(),
        model: Some(args.model.clone()),
        model_sha256: None,
        platform: PlatformChoice::Simulated,
        tdx_collateral: None,
        gpu: false,
        threads: Some(args.threads),
        context: NonZeroU32::new(2048).unwrap_or(NonZeroU32::MIN),
        batch: sotto_engine::BatchConfig {
            sequences: NonZeroU32::MIN,
            queue: 4,
        },
        llama_server: None,
        progress: false,
    };
    let enclave = tokio::task::spawn_blocking(move || stack::boot_enclave(opts)).await??;
    let measurement = stack::simulated_measurement(&enclave).ok_or("not simulated")?;
    let devlog = sotto::devlog::DevLog::start(
        data.path(),
        sotto::devlog::release_of(&sotto::devlog::EnclaveRelease {
            manifest: enclave.manifest(),
            measurement: &measurement,
            web: None,
        }),
    )
    .await?;
    let evidence = enclave.evidence().clone();
    let manifest_bytes = enclave.manifest().to_bytes();
    let static_key = *enclave.static_public_key();
    let enclave_listener = stack::bind("127.0.0.1:0").await?;
    let enclave_addr = stack::local_addr(&enclave_listener);
    stack::spawn_enclave(enclave, enclave_listener);
    let server_listener = stack::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", stack::local_addr(&server_listener));
    let mut server_config = ServerConfig::new(enclave_addr);
    server_config.log_dir = Some(devlog.public_dir.clone());
    tokio::spawn(stack::run_server(server_listener, server_config));
    let profile = sotto::local::Profile::new(Some(data.path().join("client")));
    let releases = sotto::transparency::check(&url, &devlog.trust, &profile, now().0)
        .await?
        .releases;

    // The in-process baseline: the same engine build and settings, no channel.
    let cfg = EngineConfig {
        threads: args.threads,
        context_size: NonZeroU32::new(2048).unwrap_or(NonZeroU32::MIN),
        ..EngineConfig::default()
    };
    let engine = Engine::load(&args.model, &cfg)?;
    let direct_messages = [ChatMessage::new(sotto_engine::Role::User, PROMPT)];
    let greedy = sotto_engine::GenParams::greedy(args.tokens);

    let root = std::fs::read(
        data.path()
            .join("collateral")
            .join(sotto::local::SIMULATED_ROOT_FILE),
    )?;
    let policy = sotto_verify::Policy {
        allow_simulated: true,
        simulated_root: Some(root),
        ..Default::default()
    };
    let mut conn =
        Connection::open(&url, &policy, &releases, &Expectations::default(), now()).await?;
    let wire = [WireMessage {
        role: Role::User,
        content: Zeroizing::new(PROMPT.to_string()),
    }];
    let params = GenParams {
        max_tokens: args.tokens,
        temperature: 0.0,
        top_p: 1.0,
        seed: None,
    };

    let (mut direct, mut remote) = (Vec::new(), Vec::new());
    for rep in 0..=args.reps {
        let started = Instant::now();
        let mut first = None;
        let mut pieces = 0usize;
        engine.generate(&direct_messages, &greedy, &mut |_| {
            first.get_or_insert_with(Instant::now);
            pieces += 1;
            true
        })?;
        let d = measure(started, first, Instant::now(), pieces);

        let started = Instant::now();
        let mut first = None;
        let mut pieces = 0usize;
        conn.chat(&wire, params, &mut |_| {
            first.get_or_insert_with(Instant::now);
            pieces += 1;
        })
        .await?;
        let r = measure(started, first, Instant::now(), pieces);
        // The first round warms caches and is not counted.
        if rep > 0 {
            direct.push(d);
            remote.push(r);
        }
    }

    let mut opens = Vec::new();
    for _ in 0..args.handshakes {
        let t = Instant::now();
        let c = Connection::open(&url, &policy, &releases, &Expectations::default(), now()).await?;
        opens.push(t.elapsed().as_secs_f64() * 1e3);
        c.close().await;
    }
    // The same, each preceded by the log check a client runs first: warm (this profile has
    // seen the log: only the checkpoint is fetched) and cold (a new profile each time: the
    // checkpoint and every entry bundle).
    let (mut warm, mut cold) = (Vec::new(), Vec::new());
    for i in 0..args.handshakes {
        for (fresh, out) in [(false, &mut warm), (true, &mut cold)] {
            let p = if fresh {
                sotto::local::Profile::new(Some(data.path().join(format!("cold-{i}"))))
            } else {
                profile.clone()
            };
            let t = Instant::now();
            let checked = sotto::transparency::check(&url, &devlog.trust, &p, now().0).await?;
            let c = Connection::open(
                &url,
                &policy,
                &checked.releases,
                &Expectations::default(),
                now(),
            )
            .await?;
            out.push(t.elapsed().as_secs_f64() * 1e3);
            c.close().await;
        }
    }
    let binding = sotto_verify::Binding {
        report_data: report_data(&static_key, &manifest_digest(&manifest_bytes), &[0; 32]),
        gpu_nonce: sotto_verify::gpu_nonce(&static_key),
        gpu_evidence_sha256: None,
    };
    let mut verifies = Vec::new();
    for _ in 0..args.handshakes {
        let t = Instant::now();
        sotto_verify::verify(&evidence, &policy, &binding, now())?;
        verifies.push(t.elapsed().as_secs_f64() * 1e3);
    }

    let ttft = |v: &[Run]| median(v.iter().map(|r| r.ttft.as_secs_f64() * 1e3).collect());
    let tps = |v: &[Run]| median(v.iter().map(|r| r.tok_per_s).collect());
    let (dt, rt, dr, rr) = (ttft(&direct), ttft(&remote), tps(&direct), tps(&remote));
    println!(
        "model: {}, threads: {}, {} tokens, {} reps (medians)",
        args.model.display(),
        args.threads,
        args.tokens,
        args.reps
    );
    println!("| path | TTFT ms | decode tok/s |");
    println!("| --- | --- | --- |");
    println!("| in-process engine | {dt:.1} | {dr:.2} |");
    println!("| encrypted (CLI client -> relay -> enclave) | {rt:.1} | {rr:.2} |");
    println!(
        "| ratio encrypted / in-process | {:.3}x | {:.3}x |",
        rt / dt,
        rr / dr
    );
    println!();
    println!("| step | median ms |");
    println!("| --- | --- |");
    println!(
        "| open a verified channel (WebSocket + Noise NX + verify) | {:.2} |",
        median(opens)
    );
    println!(
        "| log check + open, warm (checkpoint fetched, cosignatures verified) | {:.2} |",
        median(warm)
    );
    println!(
        "| log check + open, cold (checkpoint and all {} entries fetched and hashed) | {:.2} |",
        devlog.size,
        median(cold)
    );
    println!(
        "| evidence verification alone (simulated, SEV-SNP path) | {:.2} |",
        median(verifies)
    );
    Ok(())
}
