//! `sotto verify evidence` as an auditor runs it: the real binary on the real vendor evidence
//! in shared/vectors, checking the CLI contract (exit 0 with a JSON verdict on stdout, exit 1
//! with one stderr line naming the failed check, exit 2 for usage or unreadable input).
//! Every run passes `--at`, so no result depends on today's date.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_sotto");

/// Inside the validity of every SEV-SNP certificate in the vectors (the VLEK is the
/// shortest-lived: 2024-12-10 to 2025-12-10); the time the snp crate's own tests use.
const AT_SNP: &str = "2025-06-01T00:00:00Z";
const AT_SNP_UNIX: u64 = 1_748_736_000;
/// Inside tdx_quote's collateral windows (the tdx crate's AT_V4).
const AT_TDX_V4: &str = "2025-06-20T00:00:00Z";
/// Inside tdx_quote_td15ex's collateral windows (the tdx crate's AT_TD15EX).
const AT_TDX_TD15EX: &str = "2026-10-08T02:45:00Z";
/// Inside tdx_quote_outdated's collateral windows (the tdx crate's AT_OUTDATED).
const AT_TDX_OUTDATED: &str = "2026-02-19T00:00:00Z";
/// Inside every certificate of the H100 chain (the nvidia crate's AT).
const AT_GPU: &str = "2024-06-01T00:00:00Z";
/// The nonce of NVIDIA's published H100 report (vectors README).
const GPU_NONCE: &str = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb";

/// A vector's path as the binary takes it on its command line.
fn vector(rel: &str) -> String {
    let path = sotto_testkit::vector(rel);
    path.to_str().expect("a UTF-8 path").to_owned()
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `sotto verify evidence <args>`.
fn sotto<S: AsRef<OsStr>>(args: &[S]) -> Run {
    let out = Command::new(BIN)
        .args(["verify", "evidence"])
        .args(args)
        .output()
        .expect("run sotto");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `sotto verify evidence --platform <platform>` on the vectors `inputs` (each after its
/// flag), then `extra`.
fn on_platform(platform: &str, inputs: [(&str, String); 2], extra: &[&str]) -> Run {
    let mut args = vec!["--platform".to_owned(), platform.to_owned()];
    for (flag, rel) in inputs {
        args.extend([flag.to_owned(), vector(&rel)]);
    }
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    sotto(&args)
}

/// Exit 0, nothing on stderr, and a JSON verdict that says so; returns the verdict.
fn accepted(run: Run, at_unix: Option<u64>) -> Value {
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert!(run.stderr.is_empty(), "stderr: {}", run.stderr);
    let json: Value = serde_json::from_str(&run.stdout).expect("stdout is one JSON document");
    assert_eq!(json["accepted"], true);
    if let Some(t) = at_unix {
        assert_eq!(json["verified_at"], t);
    }
    json["verdict"].clone()
}

/// Exactly one line on stderr, nothing on stdout; returns the line.
fn one_stderr_line(run: &Run) -> &str {
    assert!(run.stdout.is_empty(), "stdout: {}", run.stdout);
    let line = run
        .stderr
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("stderr not newline-terminated: {:?}", run.stderr));
    assert!(!line.is_empty(), "empty stderr");
    assert!(!line.contains('\n'), "stderr is several lines: {line:?}");
    line
}

/// Exit 1 with one stderr line that names the failed check: it says each of `says`.
fn refused(run: Run, says: &[&str]) {
    assert_eq!(
        run.code,
        Some(1),
        "stdout: {} stderr: {}",
        run.stdout,
        run.stderr
    );
    let line = one_stderr_line(&run);
    assert!(
        line.starts_with("sotto: evidence refused: "),
        "unexpected refusal line: {line}"
    );
    for needle in says {
        assert!(line.contains(needle), "{line:?} does not name {needle:?}");
    }
}

/// Whether a verdict lists `check` among the checks it passed.
fn has_check(verdict: &Value, check: &str) -> bool {
    verdict["checks"]
        .as_array()
        .expect("checks")
        .contains(&Value::from(check))
}

/// Exit 2 with one stderr line containing `needle`.
fn usage(run: Run, needle: &str) -> String {
    assert_eq!(
        run.code,
        Some(2),
        "stdout: {} stderr: {}",
        run.stdout,
        run.stderr
    );
    let line = one_stderr_line(&run);
    assert!(line.starts_with("sotto: "), "unexpected usage line: {line}");
    assert!(
        line.contains(needle),
        "{line:?} does not mention {needle:?}"
    );
    line.to_owned()
}

fn temp_file(dir: &Path, name: &str, contents: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write temp file");
    path.to_str().expect("utf-8 temp path").to_owned()
}

// --- SEV-SNP ----------------------------------------------------------------------------

fn milan_report() -> Vec<u8> {
    let text: Vec<u8> = sotto_testkit::read_vector("sev-snp/report_milan.hex")
        .into_iter()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    hex::decode(text).expect("report_milan.hex is hex")
}

fn snp(report: &str, cert: &str, extra: &[&str]) -> Run {
    let inputs = [
        ("--report", format!("sev-snp/{report}")),
        ("--cert", format!("sev-snp/{cert}")),
    ];
    on_platform("sev-snp", inputs, extra)
}

/// The verdict on an SEV-SNP report and its signing key, verified at `AT_SNP` with `extra`.
fn snp_accepted(report: &str, cert: &str, extra: &[&str]) -> Value {
    let at = [&["--at", AT_SNP], extra].concat();
    accepted(snp(report, cert, &at), Some(AT_SNP_UNIX))
}

/// The verdicts on a Milan SEV-SNP report and its signing key of `key_kind` (`vcek` or
/// `vlek`), once with the host's chain file for that kind and once without (the verifier then
/// uses its pinned chain); each names the platform, the product and the kind of key.
fn accepted_with_and_without_chain(report: &str, cert: &str, key_kind: &str) -> Vec<Value> {
    let chain = vector(&format!("sev-snp/amd-milan-{key_kind}-chain.pem"));
    [vec![], vec!["--chain", &chain]]
        .iter()
        .map(|extra| {
            let v = snp_accepted(report, cert, extra);
            assert_eq!(v["platform"], "sev-snp");
            assert_eq!(v["product"], "milan");
            assert_eq!(v["key_kind"], key_kind);
            v
        })
        .collect()
}

#[test]
fn snp_milan_hex_report_accepted_with_and_without_chain() {
    let raw = milan_report();
    for v in accepted_with_and_without_chain("report_milan.hex", "vcek_milan.der", "vcek") {
        assert_eq!(v["report_version"], 2);
        assert_eq!(v["measurement"], hex::encode(&raw[0x90..0xC0]));
        assert_eq!(v["report_data"], hex::encode(&raw[0x50..0x90]));
        assert_eq!(v["chip_id"], hex::encode(&raw[0x1A0..0x1E0]));
        assert_eq!(v["reported_tcb"]["microcode"], 0x73);
        assert!(has_check(&v, "chain-to-pinned-amd-root"));
    }
}

#[test]
fn snp_trustee_vcek_report_accepted() {
    let raw = sotto_testkit::read_vector("sev-snp/trustee-report.bin");
    for v in accepted_with_and_without_chain("trustee-report.bin", "trustee-vcek.der", "vcek") {
        assert_eq!(v["guest_svn"], 4);
        assert_eq!(v["measurement"], hex::encode(&raw[0x90..0xC0]));
    }
}

#[test]
fn snp_trustee_vlek_report_accepted_with_and_without_chain() {
    for v in accepted_with_and_without_chain("trustee-vlek-report.bin", "trustee-vlek.der", "vlek")
    {
        assert_eq!(v["report_version"], 3);
        assert_eq!(v["vmpl"], 1);
        assert!(!has_check(&v, "chip-id-matches-endorsement"));
    }
}

/// SEV-SNP evidence each check refuses.
#[test]
fn snp_evidence_is_refused_naming_the_failed_check() {
    let vcek_chain = vector("sev-snp/amd-milan-vcek-chain.pem");
    let mut wrong_measurement = milan_report()[0x90..0xC0].to_vec();
    wrong_measurement[0] ^= 1;
    let wrong_measurement = hex::encode(wrong_measurement);
    let wrong_report_data = "ab".repeat(64);
    let dir = tempfile::tempdir().expect("tempdir");
    let vmpl0 = temp_file(dir.path(), "vmpl0.json", br#"{"max_vmpl": 0}"#);
    let newer = temp_file(
        dir.path(),
        "newer.json",
        br#"{"minimum_tcb": {"bootloader": 3, "tee": 0, "snp": 9, "microcode": 115}}"#,
    );
    /// A report, its signing key, the flags after them, and what the refusal says.
    type Case<'a> = (&'a str, &'a str, &'a [&'a str], &'a [&'a str]);
    let cases: [Case<'_>; 9] = [
        (
            "trustee-vlek-report.bin",
            "trustee-vlek.der",
            &["--at", AT_SNP, "--chain", &vcek_chain],
            &["certificate chain refused"],
        ),
        // After the VLEK's certificate expired.
        (
            "trustee-vlek-report.bin",
            "trustee-vlek.der",
            &["--at", "2026-01-01T00:00:00Z"],
            &["expired"],
        ),
        (
            "trustee-report.bin",
            "trustee-vcek-invalid-new.der",
            &["--at", AT_SNP],
            &["certificate chain refused", "SEV-VCEK", "does not verify"],
        ),
        (
            "trustee-report.bin",
            "trustee-vcek-invalid-legacy.der",
            &["--at", AT_SNP],
            &["certificate chain refused", "SEV-VCEK", "does not verify"],
        ),
        // A genuine VCEK of another chip: the chain verifies, the report signature does not.
        (
            "trustee-report.bin",
            "vcek_milan.der",
            &["--at", AT_SNP],
            &["report signature does not verify under the endorsement key"],
        ),
        (
            "report_milan.hex",
            "vcek_milan.der",
            &["--at", AT_SNP, "--expect-measurement", &wrong_measurement],
            &["measurement", "not in the allowed list"],
        ),
        (
            "trustee-report.bin",
            "trustee-vcek.der",
            &["--at", AT_SNP, "--expect-report-data", &wrong_report_data],
            &["REPORT_DATA differs"],
        ),
        (
            "trustee-vlek-report.bin",
            "trustee-vlek.der",
            &["--at", AT_SNP, "--policy", &vmpl0],
            &["VMPL 1, above the allowed 0"],
        ),
        (
            "report_milan.hex",
            "vcek_milan.der",
            &["--at", AT_SNP, "--policy", &newer],
            &["reported TCB snp is 8, below the required 9"],
        ),
    ];
    for (report, cert, flags, says) in cases {
        refused(snp(report, cert, flags), says);
    }
}

/// The report's own measurement and report data, expected by flag or by a policy file that
/// also bounds the VMPL and the TCB: accepted, each check named in the verdict; a policy file
/// with an unknown field is a usage error.
#[test]
fn snp_expectations_that_match_are_accepted() {
    let raw = milan_report();
    let measurement = hex::encode(&raw[0x90..0xC0]);
    let v = snp_accepted(
        "report_milan.hex",
        "vcek_milan.der",
        &["--expect-measurement", &measurement],
    );
    assert!(has_check(&v, "measurement-allowed"));

    let trustee = sotto_testkit::read_vector("sev-snp/trustee-report.bin");
    let report_data = hex::encode(&trustee[0x50..0x90]);
    snp_accepted(
        "trustee-report.bin",
        "trustee-vcek.der",
        &["--expect-report-data", &report_data],
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let exact = format!(
        r#"{{"max_vmpl": 0,
            "minimum_tcb": {{"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115}},
            "allowed_measurements": ["{measurement}"],
            "expected_report_data": "{}"}}"#,
        hex::encode(&raw[0x50..0x90]),
    );
    let exact = temp_file(dir.path(), "exact.json", exact.as_bytes());
    let v = snp_accepted("report_milan.hex", "vcek_milan.der", &["--policy", &exact]);
    for check in ["vmpl", "minimum-tcb", "measurement-allowed", "report-data"] {
        assert!(has_check(&v, check), "{check}");
    }
    let typo = temp_file(dir.path(), "typo.json", br#"{"allow_debugging": true}"#);
    usage(
        snp(
            "report_milan.hex",
            "vcek_milan.der",
            &["--at", AT_SNP, "--policy", &typo],
        ),
        "policy",
    );
}

// --- TDX --------------------------------------------------------------------------------

fn tdx(name: &str, extra: &[&str]) -> Run {
    let inputs = [
        ("--quote", format!("tdx/{name}")),
        ("--collateral", format!("tdx/{name}_collateral.json")),
    ];
    on_platform("tdx", inputs, extra)
}

/// MRTD of a v4 quote: header (48 bytes) + offset 136 in the TD report.
fn v4_mrtd() -> String {
    hex::encode(&sotto_testkit::read_vector("tdx/tdx_quote")[48 + 136..48 + 184])
}

#[test]
fn tdx_v4_quote_accepted_up_to_date() {
    let raw = sotto_testkit::read_vector("tdx/tdx_quote");
    let v = accepted(tdx("tdx_quote", &["--at", AT_TDX_V4]), Some(1_750_377_600));
    assert_eq!(v["quote_version"], 4);
    assert_eq!(v["tee_type"], "TDX");
    assert_eq!(v["body"], "Td10");
    assert_eq!(v["tcb_status"], "UpToDate");
    assert_eq!(v["fmspc"], "b0c06f000000");
    assert_eq!(v["mrtd"], v4_mrtd());
    assert_eq!(v["report_data"], hex::encode(&raw[48 + 520..48 + 584]));
    assert!(has_check(&v, "quote_signature"));
}

#[test]
fn tdx_td15ex_quote_accepted_up_to_date() {
    let v = accepted(
        tdx("tdx_quote_td15ex", &["--at", AT_TDX_TD15EX]),
        Some(1_791_427_500),
    );
    assert_eq!(v["quote_version"], 5);
    assert_eq!(v["body"], "Td15Ex");
    assert_eq!(v["tcb_status"], "UpToDate");
    assert_eq!(v["advisory_ids"], Value::Array(Vec::new()));
}

/// TDX evidence each check refuses.
#[test]
fn tdx_evidence_is_refused_naming_the_failed_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let permissive = temp_file(
        dir.path(),
        "permissive.json",
        br#"{"accepted_tcb_statuses": ["UpToDate", "SWHardeningNeeded", "ConfigurationNeeded",
             "ConfigurationAndSWHardeningNeeded", "OutOfDate", "OutOfDateConfigurationNeeded"]}"#,
    );
    let only_outdated = temp_file(
        dir.path(),
        "outdated-only.json",
        br#"{"accepted_tcb_statuses": ["OutOfDate"]}"#,
    );
    let wrong_mrtd = "00".repeat(48);
    let wrong_report_data = "11".repeat(64);
    let below_every_level = "platform TCB is below every TCB level of the TCB info";
    /// A quote (with its own collateral), the flags after them, and what the refusal says.
    type Case<'a> = (&'a str, &'a [&'a str], &'a str);
    let cases: [Case<'_>; 6] = [
        // The outdated sample's PCK reports SGX TCB component 8 at SVN 3 where every TCB
        // level requires 5, so no level matches (Intel's QVL: "TCB not supported") and the
        // verifier refuses it with TcbLevelNotFound, under the default strict policy and a
        // permissive one.
        (
            "tdx_quote_outdated",
            &["--at", AT_TDX_OUTDATED],
            below_every_level,
        ),
        (
            "tdx_quote_outdated",
            &["--at", AT_TDX_OUTDATED, "--policy", &permissive],
            below_every_level,
        ),
        (
            "tdx_quote",
            &["--at", AT_TDX_V4, "--policy", &only_outdated],
            "TCB status UpToDate is not accepted by the policy",
        ),
        (
            "tdx_quote",
            &["--at", AT_TDX_V4, "--expect-measurement", &wrong_mrtd],
            "MRTD does not match the policy",
        ),
        (
            "tdx_quote",
            &[
                "--at",
                AT_TDX_V4,
                "--expect-report-data",
                &wrong_report_data,
            ],
            "REPORTDATA does not match the policy",
        ),
        // Five minutes after the v4 sample's PCK CRL passed its nextUpdate (10:00:35Z).
        (
            "tdx_quote",
            &["--at", "2025-07-19T10:05:00Z"],
            "PCK CRL is not current",
        ),
    ];
    for (quote, flags, says) in cases {
        refused(tdx(quote, flags), &[says]);
    }
}

/// The quote's own MRTD, expected by flag or pinned by a policy file: accepted; a policy file
/// with a malformed MRTD is a usage error.
#[test]
fn tdx_expectations_that_match_are_accepted() {
    accepted(
        tdx(
            "tdx_quote",
            &["--at", AT_TDX_V4, "--expect-measurement", &v4_mrtd()],
        ),
        None,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let pinned = format!(
        r#"{{"accepted_tcb_statuses": ["UpToDate", "SWHardeningNeeded"],
            "expected_mrtd": "{}"}}"#,
        v4_mrtd()
    );
    let pinned = temp_file(dir.path(), "pinned.json", pinned.as_bytes());
    accepted(
        tdx("tdx_quote", &["--at", AT_TDX_V4, "--policy", &pinned]),
        None,
    );
    let bad_hex = temp_file(dir.path(), "bad.json", br#"{"expected_mrtd": "abcd"}"#);
    usage(
        tdx("tdx_quote", &["--at", AT_TDX_V4, "--policy", &bad_hex]),
        "policy",
    );
}

#[test]
fn tdx_quote_with_another_quotes_collateral_is_refused() {
    let quote = vector("tdx/tdx_quote");
    let collateral = vector("tdx/tdx_quote_outdated_collateral.json");
    refused(
        sotto(&[
            "--platform",
            "tdx",
            "--quote",
            &quote,
            "--collateral",
            &collateral,
            "--at",
            AT_TDX_OUTDATED,
        ]),
        &["PCK FMSPC b0c06f000000 does not match the TCB info's 90c06f000000"],
    );
}

// --- NVIDIA -----------------------------------------------------------------------------

fn gpu(nonce: &str, extra: &[&str]) -> Run {
    let inputs = [
        ("--report", "nvidia/hopperAttestationReport.txt".to_owned()),
        ("--certs", "nvidia/hopperCertChain.txt".to_owned()),
    ];
    on_platform("nvidia", inputs, &[&["--nonce", nonce], extra].concat())
}

#[test]
fn gpu_h100_report_accepted_with_published_nonce() {
    let v = accepted(gpu(GPU_NONCE, &["--at", AT_GPU]), Some(1_717_200_000));
    assert_eq!(v["nonce"], GPU_NONCE);
    assert_eq!(v["driver_version"], "550.90.07");
    assert_eq!(v["vbios_version"], "96.00.9F.00.01");
    assert_eq!(v["cc_mode"], "legacy_unflagged");
    assert_eq!(v["measurement_count"], 64);
    assert_eq!(v["rim_signature_checked"], false);
    // The digest the nvidia crate's test computed independently over the same files.
    assert_eq!(
        v["evidence_digest"],
        "cd60869d545bdea3ce1958fc65e665367f465880e825cee0c0c0b87c00514228"
    );
    assert!(v["leaf_subject"]
        .as_str()
        .expect("leaf subject")
        .contains("GH100 A01 GSP FMC LF"));
}

#[test]
fn gpu_binary_report_accepted_like_hex() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text: Vec<u8> = sotto_testkit::read_vector("nvidia/hopperAttestationReport.txt")
        .into_iter()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let binary = temp_file(
        dir.path(),
        "report.bin",
        &hex::decode(text).expect("report hex"),
    );
    let certs = vector("nvidia/hopperCertChain.txt");
    let v = accepted(
        sotto(&[
            "--platform",
            "nvidia",
            "--report",
            &binary,
            "--certs",
            &certs,
            "--nonce",
            GPU_NONCE,
            "--at",
            AT_GPU,
        ]),
        None,
    );
    assert_eq!(
        v["evidence_digest"],
        "cd60869d545bdea3ce1958fc65e665367f465880e825cee0c0c0b87c00514228"
    );
}

/// NVIDIA evidence each check refuses.
#[test]
fn gpu_evidence_is_refused_naming_the_failed_check() {
    let mut wrong_nonce = GPU_NONCE.to_owned();
    wrong_nonce.replace_range(0..2, "00");
    let other_vbios = vector("nvidia/1010_0200_882_96005E0001_PROD.swidtag");
    let dir = tempfile::tempdir().expect("tempdir");
    let need_rim = temp_file(dir.path(), "rim.json", br#"{"require_rim": true}"#);
    let need_flag = temp_file(
        dir.path(),
        "flag.json",
        br#"{"require_cc_feature_flag": true}"#,
    );
    /// The nonce the client asked for, the flags after it, and what the refusal says.
    type Case<'a> = (&'a str, &'a [&'a str], &'a [&'a str]);
    let cases: [Case<'_>; 5] = [
        (
            &wrong_nonce,
            &["--at", AT_GPU],
            &["request nonce", GPU_NONCE, &wrong_nonce],
        ),
        (
            GPU_NONCE,
            &["--at", AT_GPU, "--rim", &other_vbios],
            &["RIM version 96.00.5E.00.01 is neither", "96.00.9F.00.01"],
        ),
        (
            GPU_NONCE,
            &["--at", AT_GPU, "--policy", &need_rim],
            &["policy requires a RIM and none was given"],
        ),
        (
            GPU_NONCE,
            &["--at", AT_GPU, "--policy", &need_flag],
            &["no signed confidential-computing feature flag"],
        ),
        (
            GPU_NONCE,
            &["--at", "2000-01-01T00:00:00Z"],
            &["not valid before"],
        ),
    ];
    for (nonce, flags, says) in cases {
        refused(gpu(nonce, flags), says);
    }
}

/// A policy file that asks for no more than the defaults: accepted; one with a field the
/// policy does not have is a usage error.
#[test]
fn gpu_policy_file_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let defaults = temp_file(
        dir.path(),
        "defaults.json",
        br#"{"require_cc_feature_flag": false, "accept_protected_pcie": false, "require_rim": false}"#,
    );
    accepted(
        gpu(GPU_NONCE, &["--at", AT_GPU, "--policy", &defaults]),
        None,
    );
    let unknown = temp_file(dir.path(), "unknown.json", br#"{"expected_nonce": "00"}"#);
    usage(
        gpu(GPU_NONCE, &["--at", AT_GPU, "--policy", &unknown]),
        "policy",
    );
}

// --- usage and unreadable input ---------------------------------------------------------

#[test]
fn missing_platform_is_a_usage_error() {
    let run = sotto(&["--report", "x"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("--platform"), "{}", run.stderr);
}

#[test]
fn missing_platform_inputs_are_usage_errors() {
    let report = vector("sev-snp/trustee-report.bin");
    usage(
        sotto(&["--platform", "sev-snp", "--report", &report, "--at", AT_SNP]),
        "--platform sev-snp needs --cert",
    );
    usage(
        sotto(&["--platform", "tdx", "--at", AT_TDX_V4]),
        "--platform tdx needs --quote",
    );
    let quote = vector("tdx/tdx_quote");
    usage(
        sotto(&["--platform", "tdx", "--quote", &quote, "--at", AT_TDX_V4]),
        "--platform tdx needs --collateral",
    );
    let certs = vector("nvidia/hopperCertChain.txt");
    let gpu_report = vector("nvidia/hopperAttestationReport.txt");
    usage(
        sotto(&[
            "--platform",
            "nvidia",
            "--report",
            &gpu_report,
            "--certs",
            &certs,
            "--at",
            AT_GPU,
        ]),
        "--platform nvidia needs --nonce",
    );
}

#[test]
fn nonexistent_file_is_a_usage_error() {
    let missing = vector("sev-snp/no-such-report.bin");
    usage(
        sotto(&[
            "--platform",
            "sev-snp",
            "--report",
            &missing,
            "--cert",
            &vector("sev-snp/trustee-vcek.der"),
            "--at",
            AT_SNP,
        ]),
        "cannot read",
    );
    let missing = vector("tdx/no-such-collateral.json");
    usage(
        sotto(&[
            "--platform",
            "tdx",
            "--quote",
            &vector("tdx/tdx_quote"),
            "--collateral",
            &missing,
            "--at",
            AT_TDX_V4,
        ]),
        "cannot read",
    );
    usage(
        gpu(
            GPU_NONCE,
            &["--at", AT_GPU, "--rim", "/nonexistent/rim.swidtag"],
        ),
        "cannot read",
    );
}

#[test]
fn malformed_at_is_a_usage_error() {
    for at in ["yesterday", "2025-13-01T00:00:00Z", "1748736000", ""] {
        usage(gpu(GPU_NONCE, &["--at", at]), "--at");
    }
}

#[test]
fn bad_hex_arguments_are_usage_errors() {
    usage(
        gpu(&"zz".repeat(32), &["--at", AT_GPU]),
        "--nonce must be 64 hex digits",
    );
    usage(gpu(&GPU_NONCE[..62], &["--at", AT_GPU]), "--nonce");
    usage(
        snp(
            "trustee-report.bin",
            "trustee-vcek.der",
            &["--at", AT_SNP, "--expect-measurement", "abcd"],
        ),
        "--expect-measurement must be 96 hex digits",
    );
    usage(
        tdx(
            "tdx_quote",
            &["--at", AT_TDX_V4, "--expect-report-data", &"g".repeat(128)],
        ),
        "--expect-report-data must be 128 hex digits",
    );
}

/// A flag the chosen platform does not read would otherwise be ignored and look like a check
/// that passed (a `--nonce` given with SEV-SNP evidence checks nothing).
#[test]
fn flags_of_another_platform_are_usage_errors() {
    usage(
        snp(
            "trustee-report.bin",
            "trustee-vcek.der",
            &["--at", AT_SNP, "--nonce", GPU_NONCE],
        ),
        "--nonce does not apply to --platform sev-snp",
    );
    let rim = vector("nvidia/1010_0200_882_96005E0001_PROD.swidtag");
    usage(
        tdx("tdx_quote", &["--at", AT_TDX_V4, "--rim", &rim]),
        "--rim does not apply to --platform tdx",
    );
    usage(
        gpu(
            GPU_NONCE,
            &["--at", AT_GPU, "--expect-measurement", &"00".repeat(48)],
        ),
        "--expect-measurement does not apply to --platform nvidia",
    );
    usage(
        gpu(
            GPU_NONCE,
            &["--at", AT_GPU, "--expect-report-data", &"00".repeat(64)],
        ),
        "--expect-report-data does not apply to --platform nvidia",
    );
    let chain = vector("sev-snp/amd-milan-vcek-chain.pem");
    usage(
        gpu(GPU_NONCE, &["--at", AT_GPU, "--chain", &chain]),
        "--chain does not apply to --platform nvidia",
    );
    let quote = vector("tdx/tdx_quote");
    usage(
        snp(
            "trustee-report.bin",
            "trustee-vcek.der",
            &["--at", AT_SNP, "--quote", &quote],
        ),
        "--quote does not apply to --platform sev-snp",
    );
}

/// File names are attacker-chosen too: a newline in one must not split the stderr line (a
/// second line could pose as another tool's output).
#[test]
fn control_characters_in_names_stay_on_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no\nsuch\rreport");
    let missing = missing.to_str().expect("utf-8 path");
    let line = usage(
        sotto(&[
            "--platform",
            "sev-snp",
            "--report",
            missing,
            "--cert",
            &vector("sev-snp/trustee-vcek.der"),
            "--at",
            AT_SNP,
        ]),
        "cannot read",
    );
    assert!(line.contains("no\\nsuch\\rreport"), "{line}");
    let bad_rim = temp_file(dir.path(), "rim\naccepted: true", b"<not a rim/>");
    refused(
        gpu(GPU_NONCE, &["--at", AT_GPU, "--rim", &bad_rim]),
        &["RIM ", "rim\\naccepted: true"],
    );
}

/// An endless input (a device file) is refused after a bounded read instead of exhausting
/// memory.
#[cfg(unix)]
#[test]
fn endless_input_is_refused_after_a_bounded_read() {
    usage(
        sotto(&[
            "--platform",
            "sev-snp",
            "--report",
            "/dev/zero",
            "--cert",
            &vector("sev-snp/trustee-vcek.der"),
            "--at",
            AT_SNP,
        ]),
        "larger than",
    );
}

/// Garbage where evidence belongs: no panic, exit 1 (refused) or 2 (unreadable input), one
/// stderr line, never an acceptance.
#[test]
fn garbage_evidence_never_panics_or_passes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let genuine = sotto_testkit::read_vector("sev-snp/trustee-report.bin");
    let mut garbage: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("text", b"this is not evidence\n".to_vec()),
        ("zeros-report-size", vec![0u8; 1184]),
        ("odd-hex", b"abc".to_vec()),
        ("short-hex", b"00112233".to_vec()),
        ("truncated-report", genuine[..1000].to_vec()),
        ("high-bytes", (0..=255u8).cycle().take(5000).collect()),
    ];
    let mut flipped = genuine.clone();
    flipped[0x2A0] ^= 0xFF;
    garbage.push(("flipped-signature", flipped));

    let snp_report = vector("sev-snp/trustee-report.bin");
    let snp_cert = vector("sev-snp/trustee-vcek.der");
    let quote = vector("tdx/tdx_quote");
    let collateral = vector("tdx/tdx_quote_collateral.json");
    let gpu_report = vector("nvidia/hopperAttestationReport.txt");
    let gpu_certs = vector("nvidia/hopperCertChain.txt");
    let mut cases = 0;
    for (name, bytes) in &garbage {
        let g = temp_file(dir.path(), name, bytes);
        let runs: [&[&str]; 7] = [
            &["--platform", "sev-snp", "--report", &g, "--cert", &snp_cert],
            &[
                "--platform",
                "sev-snp",
                "--report",
                &snp_report,
                "--cert",
                &g,
            ],
            &[
                "--platform",
                "tdx",
                "--quote",
                &g,
                "--collateral",
                &collateral,
            ],
            &["--platform", "tdx", "--quote", &quote, "--collateral", &g],
            &[
                "--platform",
                "nvidia",
                "--report",
                &g,
                "--certs",
                &gpu_certs,
            ],
            &[
                "--platform",
                "nvidia",
                "--report",
                &gpu_report,
                "--certs",
                &g,
            ],
            &[
                "--platform",
                "nvidia",
                "--report",
                &gpu_report,
                "--certs",
                &gpu_certs,
                "--rim",
                &g,
            ],
        ];
        for (i, args) in runs.iter().enumerate() {
            let mut args = args.to_vec();
            let at = match args[1] {
                "sev-snp" => AT_SNP,
                "tdx" => AT_TDX_V4,
                _ => AT_GPU,
            };
            args.extend_from_slice(&["--at", at]);
            if args[1] == "nvidia" {
                args.extend_from_slice(&["--nonce", GPU_NONCE]);
            }
            let run = sotto(&args);
            assert!(
                matches!(run.code, Some(1) | Some(2)),
                "{name} case {i}: exit {:?}, stdout {}, stderr {}",
                run.code,
                run.stdout,
                run.stderr
            );
            one_stderr_line(&run);
            assert!(!run.stderr.contains("panicked"), "{name} case {i}");
            cases += 1;
        }
    }
    assert_eq!(cases, garbage.len() * 7);
}

/// A reader that goes away (`sotto verify evidence ... | head -1`) must not make the verifier
/// panic, nor exit 0 when the verdict was never delivered.
#[test]
fn closed_stdout_is_reported_not_panicked_on() {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = Command::new(BIN)
        .args(["verify", "evidence", "--platform", "nvidia"])
        .args(["--report", &vector("nvidia/hopperAttestationReport.txt")])
        .args(["--certs", &vector("nvidia/hopperCertChain.txt")])
        .args(["--nonce", GPU_NONCE, "--at", AT_GPU])
        .env("RUST_BACKTRACE", "0")
        .stdout(writer)
        .output()
        .expect("run sotto");
    let run = Run {
        code: out.status.code(),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    usage(run, "cannot write the verdict to stdout");
}
