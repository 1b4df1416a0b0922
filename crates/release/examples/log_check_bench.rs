//! What the release check adds to opening a channel, measured against the evidence check in
//! the same run: the log check (checkpoint signature, witness cosignatures, entries hashed to
//! the signed root) cold (nothing seen before) and warm (the same tree seen before), plus
//! reading the release set (every statement parsed; only the releases listing the measurement
//! and the revocations naming them have their signatures checked) and admitting an enclave, for
//! logs of several sizes; and the sizes of what is fetched. Also what per-handshake evidence
//! costs the enclave (the simulated attester). Used by `bench/releases.sh`; numbers go to docs/BENCHMARKS.md.
//!
//! Usage: `log_check_bench [--reps 50]`

use std::time::Instant;

use sotto_release::manifest::{Engine, Model, Platforms, Release, Simulated, Statement, FORMAT};
use sotto_release::testing::{signed, sync, Keys};
use sotto_release::trust::DEV_ORIGIN_PREFIX;
use sotto_release::{Claims, LogState, ReleaseSet};
use sotto_verify::{Binding, Policy};
use sotto_verify_core::UnixTime;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn time<T>(reps: usize, mut f: impl FnMut() -> T) -> f64 {
    let mut out = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        std::hint::black_box(f());
        out.push(t.elapsed().as_secs_f64() * 1e3);
    }
    median(out)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut reps = 50usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--reps" => reps = args.next().and_then(|v| v.parse().ok()).ok_or("--reps N")?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let now = 1_800_000_000u64;
    let dir = tempfile::tempdir()?;
    let attester = sotto_attester::Attester::open(
        sotto_attester::PlatformConfig::Simulated {
            data_dir: dir.path().to_path_buf(),
            measurement_input: b"bench".to_vec(),
        },
        sotto_attester::GpuConfig::None,
        UnixTime(now),
    )?;
    let evidence = attester.evidence(&[7; 64], None)?;
    let policy = Policy {
        allow_simulated: true,
        ..Policy::default()
    };
    let binding = Binding {
        report_data: [7; 64],
        gpu_nonce: [0; 32],
        gpu_evidence_sha256: None,
    };
    let verdict = sotto_verify::verify(&evidence, &policy, &binding, UnixTime(now))?;
    let sotto_verify::CpuVerdict::Simulated(v) = &verdict.cpu else {
        return Err("not simulated".into());
    };
    let baseline = time(reps, || {
        sotto_verify::verify(&evidence, &policy, &binding, UnixTime(now)).map(|_| ())
    });
    // What freshness costs the enclave: evidence is made for every handshake (here the
    // simulated attester signing a report; on hardware, a TSM report).
    let attest = time(reps, || attester.evidence(&[7; 64], None).is_ok());

    let keys = Keys::new(&format!("{DEV_ORIGIN_PREFIX}bench"), 1);
    let trust = keys.trust(true);
    let release = |i: usize, m: String| Release {
        format: FORMAT.into(),
        name: "sotto".into(),
        version: format!("0.{i}.0"),
        source_commit: "0".repeat(40),
        platforms: Platforms {
            simulated: Some(Simulated {
                measurements: vec![m],
            }),
            ..Default::default()
        },
        models: vec![Model {
            name: "model.gguf".into(),
            sha256: "ab".repeat(32),
            size: 491_400_032,
        }],
        engine: Engine {
            name: "llama.cpp".into(),
            version: "b1".into(),
            context: 4096,
        },
        gpu: None,
        web: Some(sotto_release::manifest::WebBundle {
            digest: "cd".repeat(32),
            files: [
                "app.js",
                "index.html",
                "markdown.css",
                "sotto_web_bg.wasm",
                "style.css",
            ]
            .iter()
            .map(|f| (f.to_string(), "ef".repeat(32)))
            .collect(),
        }),
        clients: vec![],
    };

    println!("evidence verification (simulated, SEV-SNP path), the baseline: {baseline:.3} ms (median of {reps})");
    println!(
        "evidence made per handshake by the enclave (simulated attester): {attest:.3} ms ({:.2}x the client's check)",
        attest / baseline
    );
    println!();
    println!("| log entries | fetched cold | checkpoint | cold check ms | warm check ms | releases + admit ms | cold / evidence | warm / evidence |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for size in [1usize, 10, 100, 1000] {
        let entries: Vec<Vec<u8>> = (0..size)
            .map(|i| {
                let m = if i + 1 == size {
                    hex::encode(v.measurement)
                } else {
                    format!("{:096x}", i)
                };
                signed(
                    &Statement::Release(Box::new(release(i, m))),
                    &[&keys.release[0], &keys.release[1]],
                )
            })
            .collect();
        let files = keys.log_files(&entries, now - 60);
        let fetched: usize = files.values().map(Vec::len).sum();
        let check = |prior: Option<LogState>| sync(&trust, prior, now, &files).map(|(_, s)| s);
        let state = check(None)?;
        let cold = time(reps, || check(None).is_ok());
        let warm = time(reps, || check(Some(state.clone())).is_ok());
        let claims = Claims {
            release: &format!("0.{}.0", size - 1),
            model_sha256: &"ab".repeat(32),
            model_size: 491_400_032,
            engine_name: "llama.cpp",
            engine_version: "b1",
            engine_context: 4096,
        };
        let admit = time(reps, || {
            ReleaseSet::from_entries(&trust, &state.entries)
                .admit(&verdict, &claims)
                .is_ok()
        });
        if ReleaseSet::from_entries(&trust, &state.entries)
            .admit(&verdict, &claims)
            .is_err()
        {
            return Err("the benchmark's release does not admit its enclave".into());
        }
        println!(
            "| {size} | {fetched} B | {} B | {cold:.3} | {warm:.3} | {admit:.3} | {:.2}x | {:.2}x |",
            files["checkpoint"].len(),
            (cold + admit) / baseline,
            (warm + admit) / baseline
        );
    }
    Ok(())
}
