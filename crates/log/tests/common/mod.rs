//! Helpers for `tests/log.rs`: building and running the Go reference checker
//! (`tests/c2sp-check/main.go`, on golang.org/x/mod's sumdb/note and sumdb/tlog), building the
//! `append_loop` example the crash test kills, and small log fixtures.
//!
//! Nothing here is cached in the repository: the Go program is built into a temporary directory
//! each time (Go's own build cache is wherever `go` keeps it, outside the tree), and the example
//! is built by cargo into the target directory like any other target.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use sotto_tlog::note::{Signer, TYPE_COSIGNATURE_V1, TYPE_ED25519};

/// Where Debian's golang-golang-x-mod-dev puts golang.org/x/mod (a GOPATH tree).
pub const GOPATH: &str = "/usr/share/gocode";
const DEBIAN_PACKAGES: &str = "golang-go golang-golang-x-mod-dev";

/// The Go checker, built into a temporary directory that lives as long as this value.
pub struct GoChecker {
    _dir: tempfile::TempDir,
    exe: PathBuf,
    /// How long `go build` took.
    pub build_time: Duration,
}

/// What a log directory is checked against, beyond the log key.
#[derive(Default, Clone)]
pub struct Expect {
    /// Witness vkeys (cosignature/v1).
    pub witnesses: Vec<String>,
    /// How many distinct ones of `witnesses` must have cosigned.
    pub cosignatures: usize,
    /// A string some entry must contain.
    pub contains: Option<String>,
    /// The exact number of entries.
    pub size: Option<u64>,
}

impl GoChecker {
    /// Builds the checker, or fails the test (never skips it) when Go or golang.org/x/mod is
    /// missing, naming the Debian packages that provide them.
    pub fn build() -> GoChecker {
        let missing = |what: &str| -> ! {
            panic!(
                "{what}: the Go interop checks need Go and golang.org/x/mod; on Debian bookworm \
                 install them with `apt-get install {DEBIAN_PACKAGES}` (or run scripts/test-deps)"
            )
        };
        match Command::new("go").arg("version").output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => missing(&format!(
                "`go version` failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => missing(&format!("cannot run `go` ({e})")),
        }
        for pkg in ["note", "tlog"] {
            let src = Path::new(GOPATH)
                .join("src/golang.org/x/mod/sumdb")
                .join(pkg);
            if !src.join(format!("{pkg}.go")).is_file() {
                missing(&format!("{} is missing", src.display()));
            }
        }
        let dir = tempfile::tempdir().expect("temporary directory");
        let exe = dir.path().join("c2sp-check");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c2sp-check/main.go");
        let mut cmd = Command::new("go");
        cmd.arg("build")
            .arg("-o")
            .arg(&exe)
            .arg(&src)
            .current_dir(dir.path())
            .env("GO111MODULE", "off")
            .env("GOPATH", GOPATH)
            .env("CGO_ENABLED", "0")
            .env_remove("GOFLAGS");
        if std::env::var_os("GOCACHE").is_none()
            && std::env::var_os("HOME").is_none()
            && std::env::var_os("XDG_CACHE_HOME").is_none()
        {
            cmd.env("GOCACHE", dir.path().join("go-cache"));
        }
        let start = Instant::now();
        let out = cmd.output().expect("run go build");
        let build_time = start.elapsed();
        assert!(
            out.status.success(),
            "go build {} failed:\n{}{}",
            src.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("go build of the C2SP checker: {build_time:.2?}");
        GoChecker {
            _dir: dir,
            exe,
            build_time,
        }
    }

    pub fn run(&self, dir: &Path, log_vkey: &str, expect: &Expect) -> Output {
        let mut cmd = Command::new(&self.exe);
        for w in &expect.witnesses {
            cmd.arg("-witness").arg(w);
        }
        cmd.arg("-cosignatures")
            .arg(expect.cosignatures.to_string());
        if let Some(s) = &expect.contains {
            cmd.arg("-contains").arg(s);
        }
        if let Some(n) = expect.size {
            cmd.arg("-size").arg(n.to_string());
        }
        cmd.arg(dir).arg(log_vkey);
        cmd.output().expect("run the Go checker")
    }

    /// Runs the checker and fails the test unless it accepts; returns its summary line.
    pub fn accept(&self, dir: &Path, log_vkey: &str, expect: &Expect) -> String {
        let out = self.run(dir, log_vkey, expect);
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            out.status.success() && stdout.starts_with("c2sp-check: ok "),
            "the Go checker refused {}: {}\n{stdout}\n{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Runs the checker and fails the test unless it refuses (exit status 1, not a usage
    /// error) with a message containing `why`.
    pub fn reject(&self, dir: &Path, log_vkey: &str, expect: &Expect, why: &str) -> String {
        let out = self.run(dir, log_vkey, expect);
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(
            out.status.code(),
            Some(1),
            "the Go checker should have refused {} ({why}): {stdout}\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.starts_with("c2sp-check: FAIL: ") && stdout.contains(why),
            "the Go checker refused {} for another reason than {why:?}: {stdout}",
            dir.display()
        );
        stdout
    }
}

/// Builds an example of this package with the same cargo and profile as this test binary and
/// returns its path. Examples are not built by `cargo test --test log`, and one built earlier
/// may be stale, so this always asks cargo (a no-op when it is up to date).
pub fn build_example(name: &str) -> PathBuf {
    let me = std::env::current_exe().expect("the test binary's path");
    // <target dir>/[<triple>/]<profile dir>/deps/<test binary>
    let profile_dir = me
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lies in <profile>/deps");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_string(),
        Some(other) => other.to_string(),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let start = Instant::now();
    let mut cmd = Command::new(&cargo);
    // Cargo runs this test with the package's CARGO_MANIFEST_DIR, CARGO_PKG_* etc. set; a build
    // script that watches one of them (ring's watches CARGO_MANIFEST_DIR) would see it change
    // and rebuild itself and everything above it, for this build and for the next ordinary one
    // in the shared target directory. Build in the environment a shell would have.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "OUT_DIR",
            ]
            .contains(&key.as_ref())
        {
            cmd.env_remove(key.as_ref());
        }
    }
    let out = cmd
        .args(["build", "--offline", "--message-format=json", "--profile"])
        .arg(&profile)
        .args(["-p", env!("CARGO_PKG_NAME"), "--example", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "cargo build --example {name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The artifact message names the executable; fall back to where cargo puts examples.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let from_json = stdout
        .lines()
        .filter(|l| {
            l.contains("\"reason\":\"compiler-artifact\"")
                && l.contains(&format!("\"name\":\"{name}\""))
                && l.contains("\"kind\":[\"example\"]")
        })
        .find_map(|l| {
            let rest = &l[l.find("\"executable\":\"")? + "\"executable\":\"".len()..];
            Some(PathBuf::from(&rest[..rest.find('"')?]))
        });
    let exe = from_json.unwrap_or_else(|| profile_dir.join("examples").join(name));
    eprintln!(
        "cargo build --example {name}: {:.2?} ({})",
        start.elapsed(),
        exe.display()
    );
    assert!(
        exe.is_file(),
        "cargo built the example {name} but it is not at {}",
        exe.display()
    );
    exe
}

/// The log key every test log uses, by origin.
pub fn log_signer(origin: &str, seed: u8) -> Signer {
    Signer::from_seed(origin, TYPE_ED25519, &[seed; 32]).expect("log key")
}

/// A cosignature/v1 witness key.
pub fn witness(name: &str, seed: u8) -> Signer {
    Signer::from_seed(name, TYPE_COSIGNATURE_V1, &[seed; 32]).expect("witness key")
}
