//! The client's release checks, each refusal with the forged log or release that causes it:
//! logs built in memory with the real tile, note and cosignature formats, and enclaves
//! verified from real AMD and Intel evidence (../shared/vectors) and the simulated platform.

use std::collections::BTreeMap;

use sotto_release::manifest::{
    Engine, Model, Platforms, Release, Revocation, SevSnp, SnpMeasurement, SnpTcb, Statement, Tdx,
    TdxMeasurement, FORMAT,
};
use sotto_release::trust::{LogPin, Quorum, TrustFile, DEV_ORIGIN_PREFIX, TRUST_FORMAT};
use sotto_release::{AdmitError, Claims, LogError, LogState, LogSync, ReleaseSet, Trust};
use sotto_tlog::merkle::{leaf_hash, root};
use sotto_tlog::note::{Note, Signer, TYPE_COSIGNATURE_V1, TYPE_ED25519};
use sotto_tlog::tile::{all_entry_bundles, encode_bundle, TILE_WIDTH};
use sotto_tlog::Checkpoint;
use sotto_verify::{Binding, CpuEvidence, Evidence, Policy, Verdict};
use sotto_verify_core::UnixTime;

const NOW: u64 = 1_800_000_000;

struct Keys {
    log: Signer,
    witnesses: Vec<Signer>,
    release: Vec<Signer>,
}

fn keys(origin: &str, seed: u8) -> Keys {
    Keys {
        log: Signer::from_seed(origin, TYPE_ED25519, &[seed; 32]).unwrap(),
        witnesses: (0..3u8)
            .map(|i| {
                Signer::from_seed(
                    &format!("witness{i}.example"),
                    TYPE_COSIGNATURE_V1,
                    &[seed.wrapping_add(10 + i); 32],
                )
                .unwrap()
            })
            .collect(),
        release: (0..3u8)
            .map(|i| {
                Signer::from_seed(
                    &format!("release{i}.sotto.example"),
                    TYPE_ED25519,
                    &[seed.wrapping_add(20 + i); 32],
                )
                .unwrap()
            })
            .collect(),
    }
}

fn trust(k: &Keys, dev: bool) -> Trust {
    Trust::from_file(TrustFile {
        format: TRUST_FORMAT.into(),
        dev,
        log: LogPin {
            origin: k.log.name().into(),
            vkey: k.log.verifier().to_vkey(),
        },
        witnesses: Quorum {
            quorum: 2,
            keys: k.witnesses.iter().map(|w| w.verifier().to_vkey()).collect(),
        },
        release_keys: Quorum {
            quorum: 2,
            keys: k.release.iter().map(|r| r.verifier().to_vkey()).collect(),
        },
        max_cosignature_age_secs: 3600,
    })
    .unwrap()
}

/// The files a log of `entries` serves, its checkpoint signed by `log` and cosigned by each
/// witness at the given time.
fn serve(
    entries: &[Vec<u8>],
    log: &Signer,
    cosigs: &[(&Signer, u64)],
) -> BTreeMap<String, Vec<u8>> {
    let leaves: Vec<_> = entries.iter().map(|e| leaf_hash(e)).collect();
    let cp = Checkpoint::new(log.name(), entries.len() as u64, root(&leaves));
    let text = cp.to_text();
    let mut note = Note::new(text.clone()).unwrap();
    note.add_signature(log.sign(&text).unwrap());
    for (w, t) in cosigs {
        note.add_signature(w.cosign(&text, *t).unwrap());
    }
    let mut files = BTreeMap::new();
    files.insert("checkpoint".to_string(), note.to_bytes());
    for tile in all_entry_bundles(entries.len() as u64) {
        let start = (tile.index * TILE_WIDTH) as usize;
        let bundle = encode_bundle(&entries[start..start + usize::from(tile.width)]).unwrap();
        files.insert(tile.path(), bundle);
    }
    files
}

fn fresh(k: &Keys) -> Vec<(&Signer, u64)> {
    k.witnesses.iter().map(|w| (w, NOW - 60)).collect()
}

fn sync(
    trust: &Trust,
    prior: Option<LogState>,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<(sotto_release::LogView, LogState), LogError> {
    let mut s = LogSync::new(trust, prior, NOW)?;
    loop {
        let wanted = s.wanted();
        if wanted.is_empty() {
            return s.finish();
        }
        for path in wanted {
            let body = files.get(&path).cloned().unwrap_or_default();
            s.give(&path, &body)?;
        }
    }
}

fn signed(statement: &Statement, by: &[&Signer]) -> Vec<u8> {
    let text = statement.to_text().unwrap();
    let mut note = Note::new(text.clone()).unwrap();
    for s in by {
        note.add_signature(s.sign(&text).unwrap());
    }
    note.to_bytes()
}

const MODEL: &str = "5b5e4d5ec2d6c0b1b7c1c5d1e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6";

fn release(version: &str, platforms: Platforms) -> Release {
    Release {
        format: FORMAT.into(),
        name: "sotto".into(),
        version: version.into(),
        source_commit: "0123456789abcdef0123456789abcdef01234567".into(),
        platforms,
        models: vec![Model {
            name: "qwen".into(),
            sha256: MODEL.into(),
            size: 491_400_032,
        }],
        engine: Engine {
            name: "llama.cpp".into(),
            version: "b6000".into(),
            context: 4096,
        },
        gpu: None,
        web: None,
        clients: vec![],
    }
}

fn claims(version: &str) -> Claims<'_> {
    Claims {
        release: version,
        model_sha256: MODEL,
        model_size: 491_400_032,
        engine_name: "llama.cpp",
        engine_version: "b6000",
        engine_context: 4096,
    }
}

// ---- real evidence ----

fn vector(path: &str) -> Vec<u8> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo");
    let p = format!("{manifest}/../../../shared/vectors/{path}");
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn snp_verdict() -> Verdict {
    let text = String::from_utf8(vector("sev-snp/report_milan.hex")).unwrap();
    let report = sotto_verify_snp::parse_hex(&text).unwrap();
    let parsed = sotto_verify_snp::AttestationReport::parse(&report).unwrap();
    let evidence = Evidence {
        cpu: CpuEvidence::SevSnp {
            report,
            endorsement_der: vector("sev-snp/vcek_milan.der"),
            chain_der: vec![],
        },
        gpu: None,
    };
    let binding = Binding {
        report_data: parsed.report_data,
        gpu_nonce: [0; 32],
        gpu_evidence_sha256: None,
    };
    sotto_verify::verify(
        &evidence,
        &Policy::default(),
        &binding,
        UnixTime(1_748_736_000),
    )
    .expect("the real Milan report verifies")
}

fn tdx_verdict() -> Verdict {
    let quote = vector("tdx/tdx_quote");
    let parsed = sotto_verify_tdx::Quote::parse(&quote).unwrap();
    let evidence = Evidence {
        cpu: CpuEvidence::Tdx {
            quote,
            collateral_json: vector("tdx/tdx_quote_collateral.json"),
        },
        gpu: None,
    };
    let binding = Binding {
        report_data: parsed.body.report_data,
        gpu_nonce: [0; 32],
        gpu_evidence_sha256: None,
    };
    sotto_verify::verify(
        &evidence,
        &Policy::default(),
        &binding,
        UnixTime(1_750_377_600),
    )
    .expect("the real TDX quote verifies")
}

fn snp_platform(v: &Verdict) -> Platforms {
    let sotto_verify::CpuVerdict::SevSnp(s) = &v.cpu else {
        panic!("not SNP")
    };
    Platforms {
        sev_snp: Some(SevSnp {
            measurements: vec![SnpMeasurement {
                vcpus: 4,
                vcpu_type: "EPYC-Milan".into(),
                vmm: "qemu".into(),
                measurement: hex::encode(s.measurement),
            }],
            minimum_tcb: SnpTcb {
                bootloader: s.reported_tcb.bootloader,
                tee: s.reported_tcb.tee,
                snp: s.reported_tcb.snp,
                microcode: s.reported_tcb.microcode,
                fmc: None,
            },
            vmpl: s.vmpl,
            guest_policy: format!("{:016x}", s.policy.raw),
        }),
        ..Default::default()
    }
}

fn tdx_platform(v: &Verdict) -> Platforms {
    let sotto_verify::CpuVerdict::Tdx(t) = &v.cpu else {
        panic!("not TDX")
    };
    Platforms {
        tdx: Some(Tdx {
            measurements: vec![TdxMeasurement {
                profile: "dcap-qvl sample".into(),
                mrtd: hex::encode(t.mrtd),
                rtmr0: hex::encode(t.rtmrs[0]),
                rtmr1: hex::encode(t.rtmrs[1]),
                rtmr2: hex::encode(t.rtmrs[2]),
                rtmr3: None,
                mrconfigid: None,
            }],
            td_attributes: hex::encode(t.td_attributes),
            minimum_tcb_evaluation_data_number: 0,
        }),
        ..Default::default()
    }
}

fn set(trust: &Trust, entries: &[Vec<u8>]) -> ReleaseSet {
    ReleaseSet::from_entries(trust, entries)
}

// ---- the log ----

#[test]
fn a_witnessed_log_verifies_and_grows() {
    let k = keys("log.sotto.example", 1);
    let t = trust(&k, false);
    let mut entries: Vec<Vec<u8>> = (0..300).map(|i| format!("e{i}").into_bytes()).collect();
    let (view, state) = sync(&t, None, &serve(&entries, &k.log, &fresh(&k))).unwrap();
    assert_eq!(view.entries.len(), 300);
    assert_eq!(view.cosigners.len(), 3);
    let stored = LogState::from_json(&state.to_json()).unwrap();
    entries.extend((300..310).map(|i| format!("e{i}").into_bytes()));
    let (view, state) = sync(
        &t,
        Some(stored.clone()),
        &serve(&entries, &k.log, &fresh(&k)),
    )
    .unwrap();
    assert_eq!((view.previous_size, state.size), (Some(300), 310));
    // Unchanged: nothing but the checkpoint is fetched.
    let s = LogSync::new(&t, Some(state.clone()), NOW).unwrap();
    assert_eq!(s.wanted(), ["checkpoint"]);
}

#[test]
fn a_bad_log_signature_is_refused() {
    let k = keys("log.sotto.example", 1);
    let entries = vec![b"e".to_vec()];
    let impostor = Signer::from_seed("log.sotto.example", TYPE_ED25519, &[99; 32]).unwrap();
    let files = serve(&entries, &impostor, &fresh(&k));
    assert_eq!(
        sync(&trust(&k, false), None, &files).unwrap_err(),
        LogError::LogSignature
    );
    // The right key name and ID but a signature over other bytes.
    let mut files = serve(&entries, &k.log, &fresh(&k));
    let cp = files.get_mut("checkpoint").unwrap();
    let s = String::from_utf8(cp.clone()).unwrap();
    let line = s
        .lines()
        .find(|l| l.contains("log.sotto.example "))
        .unwrap()
        .to_string();
    let sig = line.rsplit(' ').next().unwrap();
    let mut raw = base64_decode(sig);
    raw[10] ^= 1;
    *cp = s.replace(sig, &base64_encode(&raw)).into_bytes();
    assert_eq!(
        sync(&trust(&k, false), None, &files).unwrap_err(),
        LogError::LogSignature
    );
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[test]
fn fewer_cosignatures_than_the_quorum_are_refused() {
    let k = keys("log.sotto.example", 1);
    let entries = vec![b"e".to_vec()];
    let stranger = Signer::from_seed("witness1.example", TYPE_COSIGNATURE_V1, &[77; 32]).unwrap();
    let files = serve(
        &entries,
        &k.log,
        &[(&k.witnesses[0], NOW), (&stranger, NOW)],
    );
    assert_eq!(
        sync(&trust(&k, false), None, &files).unwrap_err(),
        LogError::TooFewCosignatures { have: 1, need: 2 }
    );
}

#[test]
fn stale_cosignatures_are_refused() {
    let k = keys("log.sotto.example", 1);
    let entries = vec![b"e".to_vec()];
    let files = serve(
        &entries,
        &k.log,
        &[
            (&k.witnesses[0], NOW - 30),
            (&k.witnesses[1], NOW - 7200),
            (&k.witnesses[2], NOW + 86_400),
        ],
    );
    assert_eq!(
        sync(&trust(&k, false), None, &files).unwrap_err(),
        LogError::StaleCosignatures {
            fresh: 1,
            need: 2,
            age_secs: 0,
            max_secs: 3600
        }
    );
}

#[test]
fn a_split_view_is_refused() {
    let k = keys("log.sotto.example", 1);
    let t = trust(&k, false);
    let a: Vec<Vec<u8>> = vec![b"a".to_vec(), b"b".to_vec()];
    let (_, seen) = sync(&t, None, &serve(&a, &k.log, &fresh(&k))).unwrap();
    // Same size, other root: the log showed someone else another tree.
    let b: Vec<Vec<u8>> = vec![b"a".to_vec(), b"other".to_vec()];
    assert_eq!(
        sync(&t, Some(seen.clone()), &serve(&b, &k.log, &fresh(&k))).unwrap_err(),
        LogError::SplitView { size: 2 }
    );
    // Larger, but not an extension of what this client saw.
    let c: Vec<Vec<u8>> = vec![b"a".to_vec(), b"other".to_vec(), b"c".to_vec()];
    assert_eq!(
        sync(&t, Some(seen), &serve(&c, &k.log, &fresh(&k))).unwrap_err(),
        LogError::Inconsistent { seen: 2, now: 3 }
    );
}

#[test]
fn a_rolled_back_log_is_refused() {
    let k = keys("log.sotto.example", 1);
    let t = trust(&k, false);
    let entries: Vec<Vec<u8>> = (0..5).map(|i| vec![i]).collect();
    let (_, seen) = sync(&t, None, &serve(&entries, &k.log, &fresh(&k))).unwrap();
    assert_eq!(
        sync(&t, Some(seen), &serve(&entries[..3], &k.log, &fresh(&k))).unwrap_err(),
        LogError::RolledBack { seen: 5, now: 3 }
    );
}

#[test]
fn entries_that_do_not_hash_to_the_root_are_refused() {
    let k = keys("log.sotto.example", 1);
    let entries: Vec<Vec<u8>> = (0..5).map(|i| vec![i; 10]).collect();
    let mut files = serve(&entries, &k.log, &fresh(&k));
    let bundle = files.get_mut("tile/entries/000.p/5").unwrap();
    let last = bundle.len() - 1;
    bundle[last] ^= 1;
    assert_eq!(
        sync(&trust(&k, false), None, &files).unwrap_err(),
        LogError::EntriesDoNotMatchRoot
    );
    let mut files = serve(&entries, &k.log, &fresh(&k));
    files.insert(
        "tile/entries/000.p/5".into(),
        encode_bundle(&entries[..4]).unwrap(),
    );
    assert!(matches!(
        sync(&trust(&k, false), None, &files).unwrap_err(),
        LogError::Tile(_)
    ));
}

#[test]
fn a_client_of_another_log_refuses_this_one() {
    let ours = keys("log.sotto.example", 1);
    let theirs = keys("other.example/log", 2);
    let files = serve(&[b"e".to_vec()], &theirs.log, &fresh(&theirs));
    assert!(matches!(
        sync(&trust(&ours, false), None, &files).unwrap_err(),
        LogError::OtherLog { .. }
    ));
    let dev = keys(&format!("{DEV_ORIGIN_PREFIX}stack-a"), 3);
    let other_dev = keys(&format!("{DEV_ORIGIN_PREFIX}stack-a"), 4);
    let files = serve(&[b"e".to_vec()], &other_dev.log, &fresh(&other_dev));
    assert_eq!(
        sync(&trust(&dev, true), None, &files).unwrap_err(),
        LogError::LogSignature
    );
}

// ---- admission ----

#[test]
fn real_snp_and_tdx_enclaves_are_admitted_only_by_their_release() {
    let k = keys("log.sotto.example", 1);
    let t = trust(&k, false);
    let snp = snp_verdict();
    let tdx = tdx_verdict();
    let two = [&k.release[0], &k.release[2]];
    let entries = vec![
        signed(
            &Statement::Release(Box::new(release("1.0.0", snp_platform(&snp)))),
            &two,
        ),
        signed(
            &Statement::Release(Box::new(release("1.1.0", tdx_platform(&tdx)))),
            &two,
        ),
    ];
    let set = set(&t, &entries);
    assert_eq!(set.releases().len(), 2);
    let a = set.admit(&snp, &claims("1.0.0")).unwrap();
    assert_eq!((a.version.as_str(), a.index), ("1.0.0", 0));
    assert_eq!(a.signers.len(), 2);
    assert_eq!(set.admit(&tdx, &claims("1.1.0")).unwrap().index, 1);
    // A release listing only the TDX build does not admit the SNP one.
    let only_tdx = ReleaseSet::from_entries(&t, &entries[1..]);
    assert!(matches!(
        only_tdx.admit(&snp, &claims("1.0.0")),
        Err(AdmitError::NotListed {
            platform: "SEV-SNP",
            ..
        })
    ));
}

#[test]
fn a_measurement_no_release_lists_is_refused() {
    let k = keys("log.sotto.example", 1);
    let t = trust(&k, false);
    let tdx = tdx_verdict();
    let mut p = tdx_platform(&tdx);
    p.tdx.as_mut().unwrap().measurements[0].rtmr2 = "00".repeat(48);
    let entries = vec![signed(
        &Statement::Release(Box::new(release("1.0.0", p))),
        &[&k.release[0], &k.release[1]],
    )];
    assert!(matches!(
        ReleaseSet::from_entries(&t, &entries).admit(&tdx, &claims("1.0.0")),
        Err(AdmitError::NotListed { .. })
    ));
}

#[test]
fn a_revoked_release_is_refused() {
    let k = keys("log.sotto.example", 1);
    let t = trust(&k, false);
    let snp = snp_verdict();
    let statement = Statement::Release(Box::new(release("1.0.0", snp_platform(&snp))));
    let two = [&k.release[0], &k.release[1]];
    let revocation = Statement::Revocation(Revocation {
        format: FORMAT.into(),
        name: "sotto".into(),
        version: "1.0.0".into(),
        release_sha256: sotto_release::manifest::statement_digest(&statement.to_text().unwrap()),
        reason: "CVE-2026-0001 in the guest kernel".into(),
    });
    let entries = vec![signed(&statement, &two), signed(&revocation, &two)];
    let err = ReleaseSet::from_entries(&t, &entries)
        .admit(&snp, &claims("1.0.0"))
        .unwrap_err();
    assert_eq!(
        err,
        AdmitError::Revoked {
            version: "1.0.0".into(),
            reason: "CVE-2026-0001 in the guest kernel".into()
        }
    );
    // A revocation signed below the quorum revokes nothing.
    let entries = vec![
        signed(&statement, &two),
        signed(&revocation, &[&k.release[2]]),
    ];
    ReleaseSet::from_entries(&t, &entries)
        .admit(&snp, &claims("1.0.0"))
        .unwrap();
}

#[test]
fn a_release_signed_below_the_quorum_is_refused() {
    let k = keys("log.sotto.example", 1);
    let t = trust(&k, false);
    let snp = snp_verdict();
    let statement = Statement::Release(Box::new(release("1.0.0", snp_platform(&snp))));
    let stranger = Signer::from_seed("release1.sotto.example", TYPE_ED25519, &[55; 32]).unwrap();
    let entries = vec![signed(&statement, &[&k.release[0], &stranger])];
    assert_eq!(
        ReleaseSet::from_entries(&t, &entries)
            .admit(&snp, &claims("1.0.0"))
            .unwrap_err(),
        AdmitError::BelowQuorum {
            version: "1.0.0".into(),
            have: 1,
            need: 2
        }
    );
}

#[test]
fn a_model_the_release_does_not_list_is_refused() {
    let k = keys("log.sotto.example", 1);
    let t = trust(&k, false);
    let snp = snp_verdict();
    let entries = vec![signed(
        &Statement::Release(Box::new(release("1.0.0", snp_platform(&snp)))),
        &[&k.release[0], &k.release[1]],
    )];
    let set = ReleaseSet::from_entries(&t, &entries);
    let other = "00".repeat(32);
    let c = Claims {
        model_sha256: &other,
        ..claims("1.0.0")
    };
    assert!(matches!(set.admit(&snp, &c), Err(AdmitError::Model { .. })));
    assert!(matches!(
        set.admit(&snp, &claims("0.9.0")),
        Err(AdmitError::Version { .. })
    ));
    let c = Claims {
        engine_context: 8192,
        ..claims("1.0.0")
    };
    assert!(matches!(
        set.admit(&snp, &c),
        Err(AdmitError::Engine { .. })
    ));
}

#[test]
fn the_release_floor_applies_to_tcb_vmpl_policy_and_td_attributes() {
    let k = keys("log.sotto.example", 1);
    let t = trust(&k, false);
    let two = [&k.release[0], &k.release[1]];
    let snp = snp_verdict();
    let mut p = snp_platform(&snp);
    p.sev_snp.as_mut().unwrap().minimum_tcb.microcode += 1;
    let set = ReleaseSet::from_entries(
        &t,
        &[signed(&Statement::Release(Box::new(release("1", p))), &two)],
    );
    let err = set.admit(&snp, &claims("1")).unwrap_err().to_string();
    assert!(err.contains("microcode TCB level"), "{err}");
    let mut p = snp_platform(&snp);
    p.sev_snp.as_mut().unwrap().vmpl += 1;
    let set = ReleaseSet::from_entries(
        &t,
        &[signed(&Statement::Release(Box::new(release("1", p))), &two)],
    );
    assert!(set
        .admit(&snp, &claims("1"))
        .unwrap_err()
        .to_string()
        .contains("VMPL"));
    let mut p = snp_platform(&snp);
    p.sev_snp.as_mut().unwrap().guest_policy = "0000000000000000".into();
    let set = ReleaseSet::from_entries(
        &t,
        &[signed(&Statement::Release(Box::new(release("1", p))), &two)],
    );
    assert!(set
        .admit(&snp, &claims("1"))
        .unwrap_err()
        .to_string()
        .contains("guest policy"));
    let tdx = tdx_verdict();
    let mut p = tdx_platform(&tdx);
    p.tdx.as_mut().unwrap().td_attributes = "0000000010000000".into();
    let set = ReleaseSet::from_entries(
        &t,
        &[signed(&Statement::Release(Box::new(release("1", p))), &two)],
    );
    assert!(set
        .admit(&tdx, &claims("1"))
        .unwrap_err()
        .to_string()
        .contains("TD attributes"));
    let mut p = tdx_platform(&tdx);
    p.tdx.as_mut().unwrap().minimum_tcb_evaluation_data_number = 18;
    let set = ReleaseSet::from_entries(
        &t,
        &[signed(&Statement::Release(Box::new(release("1", p))), &two)],
    );
    let err = set.admit(&tdx, &claims("1")).unwrap_err().to_string();
    assert!(
        err.contains("evaluation data number 17, below the release's minimum 18"),
        "{err}"
    );
}

#[test]
fn simulated_enclaves_need_a_dev_trust_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let attester = sotto_attester::Attester::open(
        sotto_attester::PlatformConfig::Simulated {
            data_dir: dir.path().to_path_buf(),
            measurement_input: b"sotto-enclave test".to_vec(),
        },
        sotto_attester::GpuConfig::None,
        UnixTime(NOW),
    )
    .unwrap();
    let evidence = attester.evidence(&[3; 64], None).unwrap();
    let policy = Policy {
        allow_simulated: true,
        ..Policy::default()
    };
    let binding = Binding {
        report_data: [3; 64],
        gpu_nonce: [0; 32],
        gpu_evidence_sha256: None,
    };
    let verdict = sotto_verify::verify(&evidence, &policy, &binding, UnixTime(NOW)).unwrap();
    let sotto_verify::CpuVerdict::Simulated(v) = &verdict.cpu else {
        panic!("simulated")
    };
    let platforms = Platforms {
        simulated: Some(sotto_release::manifest::Simulated {
            measurements: vec![hex::encode(v.measurement)],
        }),
        ..Default::default()
    };
    let dev_keys = keys(&format!("{DEV_ORIGIN_PREFIX}x"), 5);
    let entry = signed(
        &Statement::Release(Box::new(release("0.1.0", platforms))),
        &[&dev_keys.release[0], &dev_keys.release[1]],
    );
    let dev = trust(&dev_keys, true);
    ReleaseSet::from_entries(&dev, std::slice::from_ref(&entry))
        .admit(&verdict, &claims("0.1.0"))
        .unwrap();
    let prod_keys = keys("log.sotto.example", 5);
    let prod = trust(&prod_keys, false);
    assert_eq!(
        ReleaseSet::from_entries(&prod, &[entry])
            .admit(&verdict, &claims("0.1.0"))
            .unwrap_err(),
        AdmitError::SimulatedInProduction
    );
}
