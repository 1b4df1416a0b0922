//! The client's release checks, each refusal with the forged log or release that causes it:
//! logs built in memory with the real tile, note and cosignature formats, and enclaves
//! verified from real AMD and Intel evidence (../shared/vectors) and the simulated platform.

use sotto_release::manifest::{
    Engine, Model, Platforms, Release, Revocation, SevSnp, SnpMeasurement, SnpTcb, Statement, Tdx,
    TdxMeasurement, FORMAT,
};
use sotto_release::testing::{log_files, signed, sync, Keys};
use sotto_release::trust::DEV_ORIGIN_PREFIX;
use sotto_release::{AdmitError, Claims, LogError, LogState, LogSync, ReleaseSet, Trust};
use sotto_testkit::read_vector;
use sotto_tlog::note::{Signer, TYPE_COSIGNATURE_V1, TYPE_ED25519};
use sotto_tlog::tile::encode_bundle;
use sotto_verify::{Binding, CpuEvidence, Evidence, Policy, Verdict};
use sotto_verify_core::UnixTime;

const NOW: u64 = 1_800_000_000;
/// When a fresh cosignature was made: a minute before [`NOW`].
const FRESH: u64 = NOW - 60;

const MODEL: &str = "5b5e4d5ec2d6c0b1b7c1c5d1e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6";

/// The release statement of build `version`, listing `platforms`.
fn release(version: &str, platforms: Platforms) -> Statement {
    Statement::Release(Box::new(Release {
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
    }))
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

/// What a client makes of CPU evidence with no GPU whose REPORT_DATA is `report_data`.
fn verdict(cpu: CpuEvidence, report_data: [u8; 64], policy: &Policy, at: u64) -> Verdict {
    let binding = Binding {
        report_data,
        gpu_nonce: [0; 32],
        gpu_evidence_sha256: None,
    };
    let evidence = Evidence { cpu, gpu: None };
    sotto_verify::verify(&evidence, policy, &binding, UnixTime(at)).expect("the evidence verifies")
}

/// The real Milan report, at a time inside its VCEK's validity.
fn snp_verdict() -> Verdict {
    let text = String::from_utf8(read_vector("sev-snp/report_milan.hex")).unwrap();
    let report = sotto_verify_snp::parse_hex(&text).unwrap();
    let report_data = sotto_verify_snp::AttestationReport::parse(&report)
        .unwrap()
        .report_data;
    let cpu = CpuEvidence::SevSnp {
        report,
        endorsement_der: read_vector("sev-snp/vcek_milan.der"),
        chain_der: vec![],
    };
    verdict(cpu, report_data, &Policy::default(), 1_748_736_000)
}

/// The real TDX quote, at a time inside its collateral's windows.
fn tdx_verdict() -> Verdict {
    let quote = read_vector("tdx/tdx_quote");
    let report_data = sotto_verify_tdx::Quote::parse(&quote)
        .unwrap()
        .body
        .report_data;
    let cpu = CpuEvidence::Tdx {
        quote,
        collateral_json: read_vector("tdx/tdx_quote_collateral.json"),
    };
    verdict(cpu, report_data, &Policy::default(), 1_750_377_600)
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

/// The production deployment most checks run against, and the trust that pins it.
fn production() -> (Keys, Trust) {
    let k = Keys::new("log.sotto.example", 1);
    let t = k.trust(false);
    (k, t)
}

// ---- the log ----

#[test]
fn a_witnessed_log_verifies_and_grows() {
    let (k, t) = production();
    let mut entries: Vec<Vec<u8>> = (0..300).map(|i| format!("e{i}").into_bytes()).collect();
    let (view, state) = sync(&t, None, NOW, &k.log_files(&entries, FRESH)).unwrap();
    assert_eq!(view.entries.len(), 300);
    assert_eq!(view.cosigners.len(), 3);
    let stored = LogState::from_json(&state.to_json()).unwrap();
    entries.extend((300..310).map(|i| format!("e{i}").into_bytes()));
    let (view, state) = sync(&t, Some(stored.clone()), NOW, &k.log_files(&entries, FRESH)).unwrap();
    assert_eq!((view.previous_size, state.size), (Some(300), 310));
    // Unchanged: nothing but the checkpoint is fetched.
    let s = LogSync::new(&t, Some(state.clone()), NOW).unwrap();
    assert_eq!(s.wanted(), ["checkpoint"]);
}

#[test]
fn a_bad_log_signature_is_refused() {
    let (k, t) = production();
    let entries = vec![b"e".to_vec()];
    let impostor = Signer::from_seed("log.sotto.example", TYPE_ED25519, &[99; 32]).unwrap();
    let files = log_files(&entries, &impostor, &k.cosigned_at(FRESH));
    assert_eq!(
        sync(&t, None, NOW, &files).unwrap_err(),
        LogError::LogSignature
    );
    // The right key name and ID but a signature over other bytes.
    let mut files = k.log_files(&entries, FRESH);
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
        sync(&t, None, NOW, &files).unwrap_err(),
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
    let (k, t) = production();
    let entries = vec![b"e".to_vec()];
    let stranger = Signer::from_seed("witness1.example", TYPE_COSIGNATURE_V1, &[77; 32]).unwrap();
    let files = log_files(
        &entries,
        &k.log,
        &[(&k.witnesses[0], NOW), (&stranger, NOW)],
    );
    assert_eq!(
        sync(&t, None, NOW, &files).unwrap_err(),
        LogError::TooFewCosignatures { have: 1, need: 2 }
    );
}

#[test]
fn stale_cosignatures_are_refused() {
    let (k, t) = production();
    let entries = vec![b"e".to_vec()];
    let files = log_files(
        &entries,
        &k.log,
        &[
            (&k.witnesses[0], NOW - 30),
            (&k.witnesses[1], NOW - 7200),
            (&k.witnesses[2], NOW + 86_400),
        ],
    );
    assert_eq!(
        sync(&t, None, NOW, &files).unwrap_err(),
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
    let (k, t) = production();
    let a: Vec<Vec<u8>> = vec![b"a".to_vec(), b"b".to_vec()];
    let (_, seen) = sync(&t, None, NOW, &k.log_files(&a, FRESH)).unwrap();
    // Same size, other root: the log showed someone else another tree.
    let b: Vec<Vec<u8>> = vec![b"a".to_vec(), b"other".to_vec()];
    assert_eq!(
        sync(&t, Some(seen.clone()), NOW, &k.log_files(&b, FRESH)).unwrap_err(),
        LogError::SplitView { size: 2 }
    );
    // Larger, but not an extension of what this client saw.
    let c: Vec<Vec<u8>> = vec![b"a".to_vec(), b"other".to_vec(), b"c".to_vec()];
    assert_eq!(
        sync(&t, Some(seen), NOW, &k.log_files(&c, FRESH)).unwrap_err(),
        LogError::Inconsistent { seen: 2, now: 3 }
    );
}

#[test]
fn a_rolled_back_log_is_refused() {
    let (k, t) = production();
    let entries: Vec<Vec<u8>> = (0..5).map(|i| vec![i]).collect();
    let (_, seen) = sync(&t, None, NOW, &k.log_files(&entries, FRESH)).unwrap();
    assert_eq!(
        sync(&t, Some(seen), NOW, &k.log_files(&entries[..3], FRESH)).unwrap_err(),
        LogError::RolledBack { seen: 5, now: 3 }
    );
}

#[test]
fn entries_that_do_not_hash_to_the_root_are_refused() {
    let (k, t) = production();
    let entries: Vec<Vec<u8>> = (0..5).map(|i| vec![i; 10]).collect();
    let mut files = k.log_files(&entries, FRESH);
    let bundle = files.get_mut("tile/entries/000.p/5").unwrap();
    let last = bundle.len() - 1;
    bundle[last] ^= 1;
    assert_eq!(
        sync(&t, None, NOW, &files).unwrap_err(),
        LogError::EntriesDoNotMatchRoot
    );
    let mut files = k.log_files(&entries, FRESH);
    files.insert(
        "tile/entries/000.p/5".into(),
        encode_bundle(&entries[..4]).unwrap(),
    );
    assert!(matches!(
        sync(&t, None, NOW, &files).unwrap_err(),
        LogError::Tile(_)
    ));
}

#[test]
fn a_client_of_another_log_refuses_this_one() {
    let (_, ours) = production();
    let theirs = Keys::new("other.example/log", 2);
    let files = theirs.log_files(&[b"e".to_vec()], FRESH);
    assert!(matches!(
        sync(&ours, None, NOW, &files).unwrap_err(),
        LogError::OtherLog { .. }
    ));
    let dev = Keys::new(&format!("{DEV_ORIGIN_PREFIX}stack-a"), 3);
    let other_dev = Keys::new(&format!("{DEV_ORIGIN_PREFIX}stack-a"), 4);
    let files = other_dev.log_files(&[b"e".to_vec()], FRESH);
    assert_eq!(
        sync(&dev.trust(true), None, NOW, &files).unwrap_err(),
        LogError::LogSignature
    );
}

// ---- admission ----

#[test]
fn real_snp_and_tdx_enclaves_are_admitted_only_by_their_release() {
    let (k, t) = production();
    let snp = snp_verdict();
    let tdx = tdx_verdict();
    let two = [&k.release[0], &k.release[2]];
    let entries = vec![
        signed(&release("1.0.0", snp_platform(&snp)), &two),
        signed(&release("1.1.0", tdx_platform(&tdx)), &two),
    ];
    let set = ReleaseSet::from_entries(&t, &entries);
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
    let (k, t) = production();
    let tdx = tdx_verdict();
    let mut p = tdx_platform(&tdx);
    p.tdx.as_mut().unwrap().measurements[0].rtmr2 = "00".repeat(48);
    let entries = vec![signed(
        &release("1.0.0", p),
        &[&k.release[0], &k.release[1]],
    )];
    assert!(matches!(
        ReleaseSet::from_entries(&t, &entries).admit(&tdx, &claims("1.0.0")),
        Err(AdmitError::NotListed { .. })
    ));
}

#[test]
fn a_revoked_release_is_refused() {
    let (k, t) = production();
    let snp = snp_verdict();
    let statement = release("1.0.0", snp_platform(&snp));
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
    let (k, t) = production();
    let snp = snp_verdict();
    let statement = release("1.0.0", snp_platform(&snp));
    let stranger = Signer::from_seed("release1.example", TYPE_ED25519, &[55; 32]).unwrap();
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
    let (k, t) = production();
    let snp = snp_verdict();
    let entries = vec![signed(
        &release("1.0.0", snp_platform(&snp)),
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
    let (k, t) = production();
    let two = [&k.release[0], &k.release[1]];
    let (snp, tdx) = (snp_verdict(), tdx_verdict());
    // Each row: the enclave, its release's platform, that platform with one floor raised
    // above what the enclave reports, and what the refusal must name.
    type Row<'a> = (
        &'a Verdict,
        fn(&Verdict) -> Platforms,
        fn(&mut Platforms),
        &'a str,
    );
    let rows: [Row<'_>; 5] = [
        (
            &snp,
            snp_platform,
            |p| p.sev_snp.as_mut().unwrap().minimum_tcb.microcode += 1,
            "microcode TCB level",
        ),
        (
            &snp,
            snp_platform,
            |p| p.sev_snp.as_mut().unwrap().vmpl += 1,
            "VMPL",
        ),
        (
            &snp,
            snp_platform,
            |p| p.sev_snp.as_mut().unwrap().guest_policy = "0000000000000000".into(),
            "guest policy",
        ),
        (
            &tdx,
            tdx_platform,
            |p| p.tdx.as_mut().unwrap().td_attributes = "0000000010000000".into(),
            "TD attributes",
        ),
        (
            &tdx,
            tdx_platform,
            |p| p.tdx.as_mut().unwrap().minimum_tcb_evaluation_data_number = 18,
            "evaluation data number 17, below the release's minimum 18",
        ),
    ];
    for (verdict, platform, raise, refusal) in rows {
        let mut p = platform(verdict);
        raise(&mut p);
        let set = ReleaseSet::from_entries(&t, &[signed(&release("1", p), &two)]);
        let err = set.admit(verdict, &claims("1")).unwrap_err().to_string();
        assert!(err.contains(refusal), "{err}");
    }
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
    let verdict = verdict(evidence.cpu, [3; 64], &policy, NOW);
    let sotto_verify::CpuVerdict::Simulated(v) = &verdict.cpu else {
        panic!("simulated")
    };
    let platforms = Platforms {
        simulated: Some(sotto_release::manifest::Simulated {
            measurements: vec![hex::encode(v.measurement)],
        }),
        ..Default::default()
    };
    let dev_keys = Keys::new(&format!("{DEV_ORIGIN_PREFIX}x"), 5);
    let entry = signed(
        &release("0.1.0", platforms),
        &[&dev_keys.release[0], &dev_keys.release[1]],
    );
    let dev = dev_keys.trust(true);
    ReleaseSet::from_entries(&dev, std::slice::from_ref(&entry))
        .admit(&verdict, &claims("0.1.0"))
        .unwrap();
    let prod_keys = Keys::new("log.sotto.example", 5);
    let prod = prod_keys.trust(false);
    assert_eq!(
        ReleaseSet::from_entries(&prod, &[entry])
            .admit(&verdict, &claims("0.1.0"))
            .unwrap_err(),
        AdmitError::SimulatedInProduction
    );
}
