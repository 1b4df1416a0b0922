//! What the release check adds to opening a channel, measured against the evidence check in
//! the same run: the log check (checkpoint signature, witness cosignatures, entries hashed to
//! the signed root) cold (nothing seen before) and warm (the same tree seen before), plus
//! reading the release set (every statement parsed; only the releases listing the measurement
//! and the revocations naming them have their signatures checked) and admitting an enclave, for
//! logs of several sizes; and the sizes of what is fetched. Also what per-handshake evidence
//! costs the enclave (the simulated attester). Used by `bench/releases.sh`; numbers go to docs/BENCHMARKS.md.
//!
//! Usage: `log_check_bench [--reps 50]`

use std::collections::BTreeMap;
use std::time::Instant;

use sotto_release::manifest::{Engine, Model, Platforms, Release, Simulated, Statement, FORMAT};
use sotto_release::trust::{LogPin, Quorum, TrustFile, DEV_ORIGIN_PREFIX, TRUST_FORMAT};
use sotto_release::{Claims, LogState, LogSync, ReleaseSet, Trust};
use sotto_tlog::merkle::{leaf_hash, root};
use sotto_tlog::note::{Note, Signer, TYPE_COSIGNATURE_V1, TYPE_ED25519};
use sotto_tlog::tile::{all_entry_bundles, encode_bundle, TILE_WIDTH};
use sotto_tlog::Checkpoint;
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

    let origin = format!("{DEV_ORIGIN_PREFIX}bench");
    let log = Signer::from_seed(&origin, TYPE_ED25519, &[1; 32])?;
    let witnesses: Vec<Signer> = (0..3u8)
        .map(|i| Signer::from_seed(&format!("w{i}.bench"), TYPE_COSIGNATURE_V1, &[10 + i; 32]))
        .collect::<Result<_, _>>()?;
    let release_keys: Vec<Signer> = (0..3u8)
        .map(|i| Signer::from_seed(&format!("r{i}.bench"), TYPE_ED25519, &[20 + i; 32]))
        .collect::<Result<_, _>>()?;
    let trust = Trust::from_file(TrustFile {
        format: TRUST_FORMAT.into(),
        dev: true,
        log: LogPin {
            origin: origin.clone(),
            vkey: log.verifier().to_vkey(),
        },
        witnesses: Quorum {
            quorum: 2,
            keys: witnesses.iter().map(|w| w.verifier().to_vkey()).collect(),
        },
        release_keys: Quorum {
            quorum: 2,
            keys: release_keys
                .iter()
                .map(|k| k.verifier().to_vkey())
                .collect(),
        },
        max_cosignature_age_secs: 3600,
    })?;
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
                let text = Statement::Release(Box::new(release(i, m)))
                    .to_text()
                    .unwrap_or_default();
                let mut note = Note::new(text.clone()).expect("text");
                for k in &release_keys[..2] {
                    note.add_signature(k.sign(&text).expect("sign"));
                }
                note.to_bytes()
            })
            .collect();
        let leaves: Vec<_> = entries.iter().map(|e| leaf_hash(e)).collect();
        let text = Checkpoint::new(&origin, size as u64, root(&leaves)).to_text();
        let mut cp = Note::new(text.clone())?;
        cp.add_signature(log.sign(&text)?);
        for w in &witnesses {
            cp.add_signature(w.cosign(&text, now - 60)?);
        }
        let mut files = BTreeMap::new();
        files.insert("checkpoint".to_string(), cp.to_bytes());
        for tile in all_entry_bundles(size as u64) {
            let start = (tile.index * TILE_WIDTH) as usize;
            files.insert(
                tile.path(),
                encode_bundle(&entries[start..start + usize::from(tile.width)])?,
            );
        }
        let fetched: usize = files.values().map(Vec::len).sum();
        let sync = |prior: Option<LogState>| -> Result<LogState, Box<dyn std::error::Error>> {
            let mut s = LogSync::new(&trust, prior, now)?;
            loop {
                let wanted = s.wanted();
                if wanted.is_empty() {
                    return Ok(s.finish()?.1);
                }
                for p in wanted {
                    s.give(&p, &files[&p])?;
                }
            }
        };
        let state = sync(None)?;
        let cold = time(reps, || sync(None).map(|_| ()).is_ok());
        let warm = time(reps, || sync(Some(state.clone())).map(|_| ()).is_ok());
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
