//! Attester-level tests against the configfs-tsm stand-in and real captured evidence.

use std::path::{Path, PathBuf};

use sotto_testkit::read_vector;
use sotto_verify::evidence::CpuEvidence;
use sotto_verify_core::x509::Cert;

use crate::cert_table::{self, ARK_GUID, ASK_GUID, VCEK_GUID};
use crate::fake_tsm::{FakeTsm, Firmware, SNP_REPORT, TDX_QUOTE};
use crate::*;

/// The VCEK of the captured Trustee report.
fn vcek() -> Vec<u8> {
    read_vector("sev-snp/trustee-vcek.der")
}

/// AMD's Milan ASK and ARK, in PEM.
fn milan_chain() -> Vec<u8> {
    read_vector("sev-snp/amd-milan-vcek-chain.pem")
}

fn tdx_collateral() -> Vec<u8> {
    read_vector("tdx/tdx_quote_collateral.json")
}

const NOW: UnixTime = UnixTime(1_750_000_000);

fn root() -> PathBuf {
    PathBuf::from("/fake/sys/kernel/config/tsm/report")
}

fn milan_ask_ark() -> Vec<Vec<u8>> {
    Cert::from_pem_chain(&milan_chain())
        .unwrap()
        .iter()
        .map(|c| c.der().to_vec())
        .collect()
}

fn snp_table() -> Vec<u8> {
    let chain = milan_ask_ark();
    cert_table::build(&[
        (VCEK_GUID, &vcek()),
        (ASK_GUID, &chain[0]),
        (ARK_GUID, &chain[1]),
    ])
}

/// An SEV-SNP guest whose firmware supplies the VCEK, ASK and ARK.
fn snp_guest() -> FakeTsm {
    let firmware = Firmware::Snp {
        auxblob: snp_table(),
    };
    FakeTsm::new(&root(), "sev_guest", firmware)
}

fn snp_config(privlevel: Option<u8>, endorsement_pem: Option<PathBuf>) -> PlatformConfig {
    PlatformConfig::SevSnp {
        tsm_root: root(),
        privlevel,
        endorsement_pem,
    }
}

fn open(fake: &FakeTsm, platform: PlatformConfig) -> Result<Attester, AttestError> {
    Attester::open_with_fs(platform, GpuConfig::None, NOW, Box::new(fake.clone()))
}

/// Why an SEV-SNP attester on the real file system, with its configfs-tsm at `tsm_root`,
/// does not open.
fn open_snp_at(tsm_root: PathBuf) -> AttestError {
    let platform = PlatformConfig::SevSnp {
        tsm_root,
        privlevel: None,
        endorsement_pem: None,
    };
    Attester::open(platform, GpuConfig::None, NOW)
        .err()
        .expect("no configfs-tsm there")
}

fn report_data(seed: u8) -> [u8; 64] {
    std::array::from_fn(|i| seed.wrapping_add(i as u8))
}

#[test]
fn snp_happy_path() {
    let fake = snp_guest();
    let attester = open(&fake, snp_config(Some(1), None)).unwrap();
    assert_eq!(attester.platform_name(), "sev-snp");
    assert!(!attester.has_gpu());
    let parsed = sotto_verify_snp::AttestationReport::parse(SNP_REPORT).unwrap();
    assert_eq!(attester.launch_measurement(), &parsed.measurement);

    let rd = report_data(7);
    let evidence = attester.evidence(&rd, None).unwrap();
    assert!(evidence.gpu.is_none());
    let CpuEvidence::SevSnp {
        report,
        endorsement_der,
        chain_der,
    } = evidence.cpu
    else {
        panic!("expected SEV-SNP evidence");
    };
    assert_eq!(report.len(), 1184);
    assert_eq!(&report[0x50..0x90], &rd);
    // The requested VMPL reached the firmware.
    assert_eq!(&report[0x30..0x34], &1u32.to_le_bytes());
    // Everything but REPORT_DATA and VMPL is the firmware's own report.
    assert_eq!(&report[..0x30], &SNP_REPORT[..0x30]);
    assert_eq!(&report[0x90..], &SNP_REPORT[0x90..]);
    assert_eq!(endorsement_der, vcek());
    assert_eq!(chain_der, milan_ask_ark());
    // The relayed chain is the genuine one: VCEK <- ASK <- ARK.
    let vcek = Cert::from_der(&endorsement_der).unwrap();
    let ask = Cert::from_der(&chain_der[0]).unwrap();
    let ark = Cert::from_der(&chain_der[1]).unwrap();
    vcek.verify_issued_by(&ask).unwrap();
    ask.verify_issued_by(&ark).unwrap();

    // At open a probe instance and a trial report, then one per report; none left behind.
    assert_eq!(fake.created_instances(), 3);
    assert_eq!(fake.live_instances(), 0);
}

#[test]
fn snp_without_table_uses_the_host_endorsement_file_or_refuses() {
    let fake = FakeTsm::new(&root(), "sev_guest", Firmware::Snp { auxblob: vec![] });
    let dir = tempfile::tempdir().unwrap();
    let pem_path = dir.path().join("vcek-chain.pem");
    let mut pem = pem_rfc7468::encode_string("CERTIFICATE", pem_rfc7468::LineEnding::LF, &vcek())
        .unwrap()
        .into_bytes();
    pem.extend_from_slice(&milan_chain());
    std::fs::write(&pem_path, &pem).unwrap();

    let attester = open(&fake, snp_config(None, Some(pem_path))).unwrap();
    let CpuEvidence::SevSnp {
        endorsement_der,
        chain_der,
        ..
    } = attester.evidence(&report_data(1), None).unwrap().cpu
    else {
        panic!("expected SEV-SNP evidence");
    };
    assert_eq!(endorsement_der, vcek());
    assert_eq!(chain_der, milan_ask_ark());

    assert!(matches!(
        open(&fake, snp_config(None, None)),
        Err(AttestError::NoEndorsement)
    ));

    let missing = dir.path().join("absent.pem");
    assert!(matches!(
        open(&fake, snp_config(None, Some(missing))),
        Err(AttestError::HostFile { .. })
    ));
    assert_eq!(fake.live_instances(), 0);
}

#[test]
fn tdx_happy_path() {
    let fake = FakeTsm::new(&root(), "tdx_guest", Firmware::Tdx);
    let dir = tempfile::tempdir().unwrap();
    let collateral = dir.path().join("collateral.json");
    std::fs::write(&collateral, tdx_collateral()).unwrap();
    let attester = open(
        &fake,
        PlatformConfig::Tdx {
            tsm_root: root(),
            collateral_json: Some(collateral.clone()),
        },
    )
    .unwrap();
    assert_eq!(attester.platform_name(), "tdx");
    let parsed = sotto_verify_tdx::quote::Quote::parse(TDX_QUOTE).unwrap();
    assert_eq!(attester.launch_measurement(), &parsed.body.mrtd);

    let rd = report_data(42);
    let CpuEvidence::Tdx {
        quote,
        collateral_json,
    } = attester.evidence(&rd, None).unwrap().cpu
    else {
        panic!("expected TDX evidence");
    };
    assert_eq!(quote.len(), TDX_QUOTE.len());
    assert_eq!(&quote[568..632], &rd);
    assert_eq!(&quote[..568], &TDX_QUOTE[..568]);
    assert_eq!(collateral_json, tdx_collateral());

    // The host refreshes the collateral file; the next quote carries the new one.
    std::fs::write(&collateral, b"{\"refreshed\":true}").unwrap();
    let CpuEvidence::Tdx {
        collateral_json, ..
    } = attester.evidence(&rd, None).unwrap().cpu
    else {
        panic!("expected TDX evidence");
    };
    assert_eq!(collateral_json, b"{\"refreshed\":true}");
    assert_eq!(fake.live_instances(), 0);
}

#[test]
fn tdx_report_data_offsets_follow_the_quote_version() {
    assert_eq!(tdx_report_data_offset(TDX_QUOTE).unwrap(), 568);
    let td15 = read_vector("tdx/tdx_quote_td15ex");
    assert_eq!(tdx_report_data_offset(&td15).unwrap(), 574);
    let mut v3 = TDX_QUOTE.to_vec();
    v3[0] = 3;
    assert!(matches!(
        tdx_report_data_offset(&v3),
        Err(AttestError::TdxQuoteVersion(3))
    ));
    let mut sgx = TDX_QUOTE.to_vec();
    sgx[4] = 0;
    assert!(matches!(
        tdx_report_data_offset(&sgx),
        Err(AttestError::TdxQuote(_))
    ));
    assert!(tdx_report_data_offset(&TDX_QUOTE[..6]).is_err());
}

#[test]
fn report_answering_another_request_is_caught() {
    let rd = report_data(5);
    let mut report = SNP_REPORT.to_vec();
    report[0x50..0x90].copy_from_slice(&rd);
    check_report_data(&report, 0x50, &rd).unwrap();
    report[0x8f] ^= 1;
    assert!(matches!(
        check_report_data(&report, 0x50, &rd),
        Err(AttestError::ReportDataMismatch)
    ));
    assert!(matches!(
        check_report_data(&report[..0x60], 0x50, &rd),
        Err(AttestError::ReportDataMismatch)
    ));
}

#[test]
fn provider_mismatch_is_refused_at_open() {
    let fake = FakeTsm::new(&root(), "tdx_guest", Firmware::Tdx);
    let err = open(&fake, snp_config(None, None)).err().unwrap();
    assert!(
        matches!(
            &err,
            AttestError::Tsm(TsmError::ProviderMismatch { expected: "sev_guest", found })
                if found == "tdx_guest"
        ),
        "{err}"
    );
    assert_eq!(fake.live_instances(), 0);

    let fake = FakeTsm::new(&root(), "sev_guest", Firmware::Snp { auxblob: vec![] });
    let err = open(
        &fake,
        PlatformConfig::Tdx {
            tsm_root: root(),
            collateral_json: None,
        },
    )
    .err()
    .unwrap();
    assert!(matches!(
        err,
        AttestError::Tsm(TsmError::ProviderMismatch {
            expected: "tdx_guest",
            ..
        })
    ));
}

#[test]
fn missing_tsm_root_is_refused() {
    let fake = FakeTsm::new(&root(), "sev_guest", Firmware::Snp { auxblob: vec![] }).without_root();
    assert!(matches!(
        open(&fake, snp_config(None, None)),
        Err(AttestError::Tsm(TsmError::RootMissing { .. }))
    ));

    // The real file system, on a machine without configfs-tsm at that path.
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("tsm/report");
    let err = open_snp_at(absent.clone());
    assert!(
        matches!(&err, AttestError::Tsm(TsmError::RootMissing { path }) if path == &absent),
        "{err}"
    );
}

#[test]
fn plain_directory_is_not_configfs() {
    // A directory that is not configfs accepts the mkdir but has no `provider` attribute; the
    // probe instance must still be cleaned up.
    let dir = tempfile::tempdir().unwrap();
    let err = open_snp_at(dir.path().to_path_buf());
    assert!(
        matches!(
            &err,
            AttestError::Tsm(TsmError::Read {
                attribute: "provider",
                ..
            })
        ),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn concurrent_writer_is_detected() {
    let fake = snp_guest();
    let attester = open(&fake, snp_config(Some(0), None)).unwrap();
    fake.enable_intruder();
    let err = attester.evidence(&report_data(3), None).err().unwrap();
    assert!(
        matches!(
            err,
            AttestError::Tsm(TsmError::GenerationMismatch {
                before: 0,
                writes: 2,
                after: 3
            })
        ),
        "{err}"
    );
    assert_eq!(fake.live_instances(), 0);
}

#[test]
fn malformed_aux_blob_is_refused() {
    let mut table = snp_table();
    // Point the VCEK entry past the end of the blob.
    table[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    let fake = FakeTsm::new(&root(), "sev_guest", Firmware::Snp { auxblob: table });
    assert!(matches!(
        open(&fake, snp_config(None, None)),
        Err(AttestError::CertTable(CertTableError::OutOfBounds {
            index: 0,
            ..
        }))
    ));

    let fake = FakeTsm::new(
        &root(),
        "sev_guest",
        Firmware::Snp {
            auxblob: vec![1; 30],
        },
    );
    assert!(matches!(
        open(&fake, snp_config(None, None)),
        Err(AttestError::CertTable(CertTableError::Unterminated { .. }))
    ));
    assert_eq!(fake.live_instances(), 0);
}

#[test]
fn privlevel_above_the_abi_maximum_is_refused_at_open() {
    let fake = FakeTsm::new(&root(), "sev_guest", Firmware::Snp { auxblob: vec![] });
    assert!(matches!(
        open(&fake, snp_config(Some(4), None)),
        Err(AttestError::Tsm(TsmError::PrivlevelTooHigh(4)))
    ));
}

#[test]
fn gpu_evidence_must_match_the_gpu_configuration() {
    let fake = snp_guest();
    let attester = open(&fake, snp_config(None, None)).unwrap();
    assert!(matches!(
        attester.evidence(
            &report_data(0),
            Some(sotto_verify::GpuEvidence {
                spdm_request_response: vec![0; 8],
                cert_chain_der: Vec::new()
            })
        ),
        Err(AttestError::NoGpuConfigured)
    ));
}

#[test]
fn nvidia_gpu_without_nvml_is_refused_at_open() {
    let fake = snp_guest();
    let result = Attester::open_with_fs(
        snp_config(None, None),
        GpuConfig::Nvidia,
        NOW,
        Box::new(fake.clone()),
    );
    let err = result.err().unwrap();
    // Where the driver is installed but the GPU is not in CC mode the refusal names that
    // instead; on a machine without the NVIDIA driver it must name the missing library.
    let nvml_present = nvml_library_present();
    match &err {
        AttestError::Gpu(GpuError::NvmlUnavailable(_)) => assert!(!nvml_present, "{err}"),
        AttestError::Gpu(_) => assert!(nvml_present, "{err}"),
        other => panic!("expected a GPU refusal, got {other}"),
    }
    assert!(err.to_string().contains("NVIDIA GPU"));
    assert_eq!(fake.live_instances(), 0);
}

fn nvml_library_present() -> bool {
    [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
        "/lib/x86_64-linux-gnu",
    ]
    .iter()
    .any(|d| Path::new(d).join("libnvidia-ml.so.1").exists())
}

#[test]
fn attester_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Attester>();
}

mod simulated {
    use std::os::unix::fs::PermissionsExt;

    use sha2::{Digest, Sha384};
    use sotto_verify_snp::{verify, SnpAnchor, SnpError, SnpEvidence, SnpPolicy};

    use super::*;

    fn open_sim(data_dir: &Path, build: &[u8]) -> Result<Attester, AttestError> {
        Attester::open(
            PlatformConfig::Simulated {
                data_dir: data_dir.to_path_buf(),
                measurement_input: build.to_vec(),
            },
            GpuConfig::None,
            NOW,
        )
    }

    fn snp_evidence(evidence: Evidence) -> SnpEvidence {
        let CpuEvidence::Simulated {
            report,
            endorsement_der,
            chain_der,
        } = evidence.cpu
        else {
            panic!("expected simulated evidence");
        };
        SnpEvidence {
            report,
            endorsement_der,
            chain_der,
        }
    }

    fn expected_measurement(build: &[u8]) -> [u8; 48] {
        let mut h = Sha384::new();
        h.update(b"sotto simulated SEV-SNP measurement v1\0");
        h.update(build);
        h.finalize().into()
    }

    #[test]
    fn evidence_verifies_under_the_persisted_root() {
        let dir = tempfile::tempdir().unwrap();
        let attester = open_sim(dir.path(), b"enclave build A").unwrap();
        assert_eq!(attester.platform_name(), "simulated");
        assert_eq!(
            attester.launch_measurement(),
            &expected_measurement(b"enclave build A")
        );
        let root = attester.simulated_root_der().unwrap().to_vec();

        let rd = report_data(0x33);
        let evidence = snp_evidence(attester.evidence(&rd, None).unwrap());
        assert_eq!(evidence.chain_der.last(), Some(&root));
        let policy = SnpPolicy {
            max_vmpl: Some(0),
            allowed_measurements: vec![expected_measurement(b"enclave build A")],
            expected_report_data: Some(rd),
            ..SnpPolicy::default()
        };
        let anchor = SnpAnchor::Simulated {
            root_der: root.clone(),
        };
        let verdict = verify(&evidence, &anchor, &policy, NOW).unwrap();
        assert_eq!(verdict.platform, "simulated");
        assert_eq!(verdict.report_data, rd);
        assert_eq!(verdict.vmpl, 0);
        assert!(!verdict.policy.debug);

        // Another build identity yields another measurement, which the policy refuses.
        let other = open_sim(dir.path(), b"enclave build B").unwrap();
        let evidence = snp_evidence(other.evidence(&rd, None).unwrap());
        assert!(matches!(
            verify(&evidence, &anchor, &policy, NOW),
            Err(SnpError::MeasurementNotAllowed { .. })
        ));

        // Someone else's development root is not this one.
        let elsewhere = tempfile::tempdir().unwrap();
        let stranger = open_sim(elsewhere.path(), b"enclave build A").unwrap();
        let evidence = snp_evidence(stranger.evidence(&rd, None).unwrap());
        assert!(verify(&evidence, &anchor, &policy, NOW).is_err());
    }

    #[test]
    fn authority_is_persisted_privately_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let first = open_sim(dir.path(), b"build").unwrap();
        let root = first.simulated_root_der().unwrap().to_vec();

        let sim_dir = dir.path().join("sim-attestation");
        let file = sim_dir.join("authority.bin");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&sim_dir), 0o700);
        let names: Vec<_> = std::fs::read_dir(&sim_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("authority.bin")]);
        let stored = std::fs::read(&file).unwrap();

        let second = open_sim(dir.path(), b"build").unwrap();
        assert_eq!(second.simulated_root_der().unwrap(), root.as_slice());
        assert_eq!(std::fs::read(&file).unwrap(), stored);
        let rd = report_data(1);
        let evidence = snp_evidence(second.evidence(&rd, None).unwrap());
        let anchor = SnpAnchor::Simulated { root_der: root };
        assert_eq!(
            verify(&evidence, &anchor, &SnpPolicy::default(), NOW)
                .unwrap()
                .report_data,
            rd
        );
    }

    #[test]
    fn corrupt_authority_is_an_error_not_a_new_root() {
        let dir = tempfile::tempdir().unwrap();
        open_sim(dir.path(), b"build").unwrap();
        let file = dir.path().join("sim-attestation/authority.bin");
        let stored = std::fs::read(&file).unwrap();

        for damaged in [
            stored[..stored.len() - 10].to_vec(),
            b"not an authority".to_vec(),
            Vec::new(),
        ] {
            std::fs::write(&file, &damaged).unwrap();
            let err = open_sim(dir.path(), b"build").err().unwrap();
            assert!(
                matches!(&err, AttestError::Sim(SimError::CorruptAuthority { path, .. }) if path == &file),
                "{err}"
            );
            assert_eq!(std::fs::read(&file).unwrap(), damaged);
        }
    }

    #[test]
    fn concurrent_first_use_agrees_on_one_root() {
        let dir = tempfile::tempdir().unwrap();
        let roots: Vec<Vec<u8>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        open_sim(dir.path(), b"build")
                            .unwrap()
                            .simulated_root_der()
                            .unwrap()
                            .to_vec()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(roots.windows(2).all(|w| w[0] == w[1]));
        let on_disk = open_sim(dir.path(), b"build").unwrap();
        assert_eq!(on_disk.simulated_root_der().unwrap(), roots[0].as_slice());
    }
}
